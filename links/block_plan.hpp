#pragma once
// How large a link's finite-size block must be. A block of N symbols is the unit of the security
// bound: below some N the statistical penalties (T_min, xi_max, Delta(n)) eat the whole key, and each
// extra decade of N costs that much more time before the first key. The plan takes the link's design
// parameters (T from its loss, the profile's xi, eta, v_el, V_A), the beta its codes give at that SNR
// (reconciliation/ldpc/operating_point.hpp) and finds the smallest N with a positive key.

#include <cstdint>
#include <optional>
#include <string>

#include "core/error.hpp"
#include "core/hardware_profile.hpp"
#include "reconciliation/security/key_rate.hpp"

namespace cvqkd::links {

struct block_plan_inputs {
  hardware_profile profile;               // detection, V_A, xi, eta, v_el, symbol rate
  double transmittance = 0.0;             // design T of the channel (fibre and insertion loss), (0, 1]
  detector_model model = detector_model::trusted;
  security::epsilons eps;
  double beta_target = 0.0;               // 0: the profile's beta_target (an upper limit, as in a round)
  double pe_fraction = 0.5;               // n_pe / N
  bool short_codes = false;               // the CI-sized code members (no FER table: the target beta, FER 0 assumed)
  std::uint64_t overhead_bits = 4096;     // per block: verification tags and authentication key, bits
  double key_fraction = 0.25;             // the finite-size key per key symbol must reach this share of
                                          // (1 - FER)(beta I_AB - chi_BE): at the bare break-even N the
                                          // estimates' fluctuation aborts about half of the rounds
  std::uint64_t max_symbols = 10'000'000'000;  // the largest block considered
};

struct block_plan {
  std::uint64_t block_symbols = 0;  // smallest N on the grid 10^(k/10) with positive expected key
  double snr = 0.0;                 // design SNR per real dimension
  double beta = 0.0;                // the beta a round would ask there
  double expected_fer = 0.0;
  double key_rate = 0.0;            // expected K_fin at that N, bits per symbol
  double key_bits = 0.0;            // expected secret bits of one block, overhead subtracted
  double seconds_per_block = 0.0;   // N / symbol rate: hardware time to collect the block
  double key_rate_asymptotic = 0.0; // beta I_AB - chi_BE at the design parameters (N -> infinity)
};

/// The smallest block size N (symbols, on the grid 10^(k/10) from 1e4 to max_symbols) whose expected
/// finite-size key (LGG 2010, eq. 2, with the operating beta and measured FER of the long codes) minus
/// overhead_bits is positive and, per key symbol, at least key_fraction of the asymptotic key at that
/// beta, assuming the estimates equal the design values. A round reconciles whole
/// code frames only, so the key symbols are those of the whole frames that fit in N - n_pe (at least one). Errors: invalid_argument
/// for T outside (0, 1], pe_fraction or key_fraction outside (0, 1) or a bad profile; no_secret_key,
/// saying why, when no shipped code offers the rate the SNR asks, the link makes no key even
/// asymptotically, or not below max_symbols.
expected<block_plan> plan_block(const block_plan_inputs& in);

}  // namespace cvqkd::links
