#pragma once
// Simulated GG02 hardware for one link: Alice's Gaussian modulation, a lossy noisy fibre with
// optional eavesdroppers, and Bob's coherent receiver with efficiency, electronic noise, LO phase
// noise, shot-noise calibration and an ADC. Statistics follow cvqkd-theory.md ("Channel and
// detector"): homodyne Var(y) = eta T V_A + 1 + v_el + eta T xi; heterodyne per arm
// Var(y) = eta T V_A / 2 + 1 + v_el + eta T xi / 2.
//
// Randomness: Alice's symbols come from an injected random_source (a QRNG in production; here a
// seeded_drbg, AES-256-CTR, domain "alice-symbols"); channel and detector noise come from
// xoshiro256++ seeded by seeded_drbg(seed, "sim-noise"), which models nature, not a secret.

#include <cstdint>
#include <memory>

#include "core/hardware_profile.hpp"
#include "hw/driver.hpp"

namespace cvqkd::hw {

/// An eavesdropper on the fibre. Both attacks appear to Alice and Bob only as excess noise.
struct eavesdropper {
  enum class kind { none, intercept_resend, entangling_cloner };
  kind type = kind::none;
  /// intercept_resend: fraction of symbols Eve heterodynes and re-prepares, (0, 1]; adds 2 SNU
  /// of input-referred excess noise on those symbols (Grosshans & Grangier, PRL 88, 057902, 2002).
  /// entangling_cloner: variance W >= 1 (SNU) of Eve's EPR mode mixed in on the channel's beam
  /// splitter; adds xi = (1 - T)(W - 1)/T (Grosshans et al., Quantum Inf. Comput. 3, 535, 2003).
  double parameter = 0.0;
};

/// Faults an operator drill can inject (operations.md, "Failure modes").
struct fault_state {
  double excess_noise_spike = 0.0;     // extra input-referred xi, SNU (dirty connector, interference)
  double lo_drift_rad2_per_symbol = 0.0;  // extra Wiener step variance of the LO phase, rad^2
  double optical_power_factor = 1.0;   // > 1: a failed attenuator lets more light in (ADC saturation)
  double sample_loss_probability = 0.0;   // digitizer drops a symbol with this probability
  double shot_noise_drift = 0.0;       // relative change of LO power since the last calibration
                                       // (temperature): signal and shot noise scale by 1 + drift
  double crosstalk_xi = 0.0;           // input-referred xi of WDM crosstalk from a co-propagating
                                       // classical channel (crosstalk_excess_noise), SNU
};

/// A classical channel sharing the quantum channel's fibre (WDM), for crosstalk_excess_noise.
struct classical_channel {
  double launch_power_mw = 1.0;    // launch power of the classical channel, mW, > 0
  double isolation_db = 90.0;      // isolation of the quantum receiver's DWDM filter from it, dB, >= 0
  double length_km = 1.0;          // shared fibre, km, >= 0
  double transmittance = 1.0;      // the quantum channel's T over that fibre (the classical light
                                   // is attenuated alike), (0, 1]
  double symbol_rate_baud = 1e9;   // the receiver's detection bandwidth (one temporal mode per symbol)
  double wavelength_nm = 1550.0;   // of the quantum channel
  double raman_per_km_nm = 1e-9;   // effective forward Raman scattering coefficient rho, 1/(km nm)
};

/// The excess noise, referred to the channel input (SNU), that a co-propagating classical channel
/// adds at Bob: noise photons per detected mode n = n_Raman + n_leak, xi = 2 n / T (a thermal
/// mode of mean photon number n adds 2n SNU to each quadrature at the fibre's output).
///   forward spontaneous Raman power inside the receiver's band: P_ram = P_launch T rho L dlambda
///   (Eraerds et al., New J. Phys. 12, 063027 (2010), co-propagating case), so per mode
///   n_Raman = P_launch T rho L lambda^3 / (h c^2);
///   in-band leakage through the demultiplexer of isolation I: n_leak = P_launch T 10^(-I/10) / (h nu B)
///   with B the symbol rate (Kumar, Qin, Alléaume, New J. Phys. 17, 043027 (2015): Raman and
///   leakage are the two noises that decide CV-QKD/DWDM coexistence).
/// Errors: invalid_argument naming the field.
expected<double> crosstalk_excess_noise(const classical_channel& c);

struct simulator_config {
  hardware_profile profile;
  double transmittance = 0.5;   // channel T (fibre and insertion loss), (0, 1]
  std::uint64_t seed = 1;
  eavesdropper eve;
  fault_state faults;
};

/// Checks every field (profile domains included). Errors: invalid_argument naming the field.
expected<void> validate(const simulator_config& c);

/// What the simulator knows and the estimator should find (SNU, input-referred).
struct true_parameters {
  double transmittance = 0.0;          // configured channel T
  double xi = 0.0;                     // channel excess noise: profile xi + spike + eavesdropper
  double xi_effective = 0.0;           // what the estimator converges to: xi plus the residual phase
                                       // noise and drift: (xi + V_A (1 - c^2)) / c^2, c = E[cos phi]
  double transmittance_effective = 0.0;  // T c^2: residual phase noise lowers the apparent T
  double xi_bob = 0.0;                 // eta T xi
  double snr = 0.0;                    // per real dimension, at the configured T and xi
};

/// The simulated pair of devices. Alice's emitted symbols travel through an internal queue to
/// Bob's receiver; Bob can only measure what Alice has emitted (insufficient_data otherwise).
class simulated_link {
public:
  /// Errors: those of validate(config).
  static expected<std::unique_ptr<simulated_link>> create(const simulator_config& config,
                                                         std::unique_ptr<random_source> alice_rng);
  ~simulated_link();
  simulated_link(const simulated_link&) = delete;
  simulated_link& operator=(const simulated_link&) = delete;

  transmitter& alice() noexcept;
  receiver& bob() noexcept;
  /// Changes the injected faults from the next symbol on. Errors: invalid_argument.
  expected<void> set_faults(const fault_state& faults);
  const simulator_config& config() const noexcept;
  true_parameters truth() const noexcept;

  struct impl;

private:
  explicit simulated_link(std::unique_ptr<impl> p);
  std::unique_ptr<impl> impl_;
  std::unique_ptr<transmitter> alice_;
  std::unique_ptr<receiver> bob_;
};

/// Convenience: a link whose Alice draws from seeded_drbg(seed, "alice-symbols").
expected<std::unique_ptr<simulated_link>> make_simulated_link(const simulator_config& config);

}  // namespace cvqkd::hw
