#pragma once
// Driver interfaces for the optical hardware of one CV-QKD link. The simulator (hw/simulator.hpp)
// and the replay driver (hw/replay.hpp) implement them; a vendor driver would sit in hw/<vendor>/.
// Conventions: symbols are numbered from 0 in emission order; all quadrature values are in SNU
// (vacuum variance = 1) once they leave a driver.

#include <cstddef>
#include <cstdint>
#include <vector>

#include "core/drbg.hpp"
#include "core/error.hpp"
#include "core/physics.hpp"

namespace cvqkd::hw {

/// Alice's modulation for a run of consecutive symbols: displacement of q and p, SNU.
/// Shapes: q.size() == p.size() == number of symbols.
struct alice_frame {
  std::uint64_t first_symbol = 0;
  std::vector<double> q;
  std::vector<double> p;
  std::size_t size() const noexcept { return q.size(); }
};

/// Bob's calibrated measurements for the same run of symbols (SNU).
/// Homodyne: y_q[i] holds the value of the quadrature named by basis[i] (0 = q, 1 = p); y_p is
/// empty. Heterodyne: y_q and y_p hold both quadratures (each arm after the 50:50 split); basis is
/// empty. valid[i] == 0 marks a symbol the digitizer lost (its values are meaningless).
struct bob_frame {
  std::uint64_t first_symbol = 0;
  detection det = detection::heterodyne;
  std::vector<double> y_q;
  std::vector<double> y_p;
  std::vector<std::uint8_t> basis;
  std::vector<std::uint8_t> valid;
  std::uint64_t clipped_samples = 0;  // ADC samples at or beyond full scale in this frame
  std::uint64_t lost_symbols = 0;     // symbols with valid[i] == 0
  std::size_t size() const noexcept { return y_q.size(); }
};

/// Result of a shot-noise calibration as hardware does it: with the signal input blocked, measure
/// the variance with the LO on (shot noise + electronic noise) and with the LO off (electronic
/// noise only); N0 = Var_on - Var_off is the SNU scale, v_el = Var_off / N0.
struct shot_noise_calibration {
  double n0_raw = 0.0;        // shot-noise variance in ADC input units (V^2)
  double v_el = 0.0;          // electronic noise, SNU (per arm for heterodyne)
  std::uint64_t samples = 0;  // samples used for each of the two measurements
};

/// Alice's transmitter: prepares Gaussian-modulated coherent states.
class transmitter {
public:
  virtual ~transmitter() = default;
  /// Emits the next `n` symbols (n >= 1) and returns their modulation values.
  /// Errors: device_fault when the device cannot emit; io_error/parse_error for a replay source.
  virtual expected<alice_frame> emit(std::size_t n) = 0;
};

/// Bob's receiver: coherent detection, digitisation and conversion to SNU.
class receiver {
public:
  virtual ~receiver() = default;
  virtual detection detection_type() const noexcept = 0;
  /// Runs a shot-noise calibration and applies it to subsequent measurements.
  virtual expected<shot_noise_calibration> calibrate() = 0;
  /// The calibration in use (zero-initialised before the first calibrate()).
  virtual shot_noise_calibration calibration() const noexcept = 0;
  /// Measures the next `n` symbols (n >= 1). Errors as for transmitter::emit, plus
  /// insufficient_data when fewer than `n` symbols have arrived.
  virtual expected<bob_frame> measure(std::size_t n) = 0;
};

/// A hardware quantum random-number generator. Alice's modulation must come from one in
/// production; the simulator accepts any random_source, of which a QRNG driver is one.
class qrng : public random_source {
public:
  /// Health test (e.g. NIST SP 800-90B repetition/adaptive-proportion tests); a failing QRNG
  /// must stop key generation. Errors: device_fault with the failing test named.
  virtual expected<void> health_check() = 0;
};

}  // namespace cvqkd::hw
