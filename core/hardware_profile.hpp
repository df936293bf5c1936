#pragma once
// A CV-QKD hardware profile: what one link's transmitter/receiver pair can do. Parsed from TOML by
// config/, consumed by hw/ (simulator) and reconciliation/ (bounds). All variances in SNU.

#include <cstdint>
#include <string>

#include "core/physics.hpp"

namespace cvqkd {

struct hardware_profile {
  std::string name;             // e.g. "llo_metro"
  std::string description;      // free text for people
  std::string source;           // the publication the numbers are anchored on
  cvqkd::detection detection = cvqkd::detection::heterodyne;
  lo_type lo = lo_type::local;
  double symbol_rate_baud = 1e8;  // symbols per second on the fibre
  // Transmitter (Alice)
  double v_a = 4.0;             // modulation variance per quadrature, SNU, (0, 1e4]
  // Channel: excess noise the system itself adds, referred to the channel input (SNU, >= 0)
  double xi = 0.01;             // [0, 100]
  // Receiver (Bob)
  double eta = 0.6;             // detector efficiency, (0, 1]
  double v_el = 0.05;           // electronic noise per detector arm, SNU, >= 0
  double shot_noise_raw = 1e-4; // shot-noise variance in ADC input units (V^2): the SNU scale, > 0
  unsigned adc_bits = 12;       // ADC resolution, 2..24
  double adc_full_scale_sigma = 6.0;  // ADC full scale (+-) in standard deviations of the nominal signal, > 0
  double residual_phase_noise_rad2 = 1e-4;  // phase error left after LO phase correction, rad^2, >= 0
  double phase_drift_rad2_per_symbol = 0.0; // Wiener step variance of uncorrected LO drift, rad^2, >= 0
  std::uint64_t relock_symbols = 10000;     // symbols between phase re-locks that reset the drift, >= 1
  std::uint64_t calibration_samples = 4000000;  // samples per shot-noise calibration measurement, 1e3..1e9
  // Post-processing targets
  double beta_target = 0.95;    // reconciliation efficiency the codes are chosen for, (0, 1)
  std::uint64_t block_symbols = 10000000;  // finite-size block N (symbols), 1e3..1e10
};

}  // namespace cvqkd
