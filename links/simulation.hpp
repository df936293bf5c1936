#pragma once
// One link, both ends in one process: simulated hardware -> sifting -> parameter estimation ->
// finite-size key-rate bound. The later stages (reconciliation, privacy amplification) join
// here as they land. Streams frame by frame: memory is bounded by the frame, not the block.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "hw/simulator.hpp"
#include "reconciliation/security/key_rate.hpp"

namespace cvqkd::links {

struct simulation_config {
  hw::simulator_config hardware;       // profile, channel T, seed, eavesdropper, faults
  std::uint64_t symbols = 10'000'000;  // block size N (symbols)
  std::uint64_t n_pe = 0;              // symbols disclosed for estimation; 0 = N/2
  security::epsilons eps;
  detector_model model = detector_model::trusted;
  double beta = 0.0;                   // reconciliation efficiency; 0 = the profile's target
  std::uint64_t frame_symbols = 1u << 18;
};

/// Checks the fields outside hw::simulator_config (those are checked by hw::validate).
/// Errors: invalid_argument naming the field.
expected<void> validate(const simulation_config& c);

struct estimated_parameters {
  double transmittance = 0.0;  // T_hat
  double xi = 0.0;             // xi_hat, input-referred, SNU
  double xi_bob = 0.0;         // eta T_hat xi_hat, SNU
  double snr = 0.0;            // per real dimension at (T_hat, xi_hat)
  double v_a = 0.0;            // Alice's empirical modulation variance over the disclosed symbols
};

struct simulation_report {
  hw::true_parameters truth;
  std::optional<estimated_parameters> estimated;
  std::optional<security::finite_size_result> finite;  // absent when T cannot be bounded
  double key_rate_asymptotic_true = 0.0;  // beta I_AB - chi_BE at the true parameters, bits/symbol
  double key_rate_asymptotic_estimated = 0.0;  // at (T_hat, xi_hat)
  double plob_bound = 0.0;
  double beta = 0.0;
  std::uint64_t n_total = 0, n_pe = 0, pe_samples = 0;
  hw::shot_noise_calibration calibration;
  std::uint64_t clipped_samples = 0, lost_symbols = 0;
  bool key_released = false;           // K_fin > 0 and no alarm vetoed the block
  double key_rate_bps = 0.0;           // K_fin x symbol rate when released, else 0: what the hardware would give
  std::string no_key_reason;           // empty when key_released
  std::vector<std::string> alarms;     // what an operator would be paged for (saturation, sample loss, ...)
  double elapsed_seconds = 0.0;        // wall clock of the simulation and estimation
};

/// ADC clipping above this fraction of samples vetoes the block: a saturated receiver no longer
/// measures in calibrated SNU, so no bound computed from its data holds (operations.md).
inline constexpr double max_clipped_fraction = 1e-4;
/// A worst-case transmittance above this multiple of the link's design T vetoes the block (0.4 dB).
inline constexpr double max_transmittance_over_design = 1.1;

/// Runs the chain on a fresh simulated link. Errors: those of validate(), hw::validate(), and
/// device faults (e.g. a failed shot-noise calibration).
expected<simulation_report> simulate(const simulation_config& config);

}  // namespace cvqkd::links
