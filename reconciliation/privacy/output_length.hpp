#pragma once
// How many secret bits privacy amplification may output for one block.

#include <cstdint>

#include "core/error.hpp"
#include "reconciliation/security/key_rate.hpp"

namespace cvqkd::reconciliation::privacy {

/// What the output length of one block depends on.
struct output_length_inputs {
  std::uint64_t key_symbols = 0;        // n: symbols of the block used for key (N minus those disclosed), > 0
  double beta = 0.0;                    // reconciliation efficiency, (0, 1]
  double fer = 0.0;                     // frame error rate of reconciliation, [0, 1)
  security::finite_size_result bound;   // I_AB, chi_BE(T_min, xi_max), Delta(n) at this block's estimates
  std::uint64_t verification_bits = 0;  // disclosed by the verification hashes of the block
  std::uint64_t auth_bits = 0;          // authentication key consumed by the block's classical messages
};

/// n_out = floor(n (1 - FER) (beta I_AB - chi_BE(T_min, xi_max) - Delta(n)) - verification_bits
/// - auth_bits), in bits (Leverrier, Grosshans, Grangier, PRA 81, 062343 (2010), eq. 2, per
/// key symbol; the frames that failed reconciliation are discarded, hence the (1 - FER) factor).
/// The terms come from security::key_rate_finite (bound.i_ab, bound.chi_be_worst, bound.delta_n);
/// nothing is recomputed here.
/// Errors: invalid_argument for inputs outside their domain (named); no_secret_key when n_out <= 0,
/// saying which term made it so: the asymptotic part beta I_AB - chi_BE (the channel or the
/// reconciliation efficiency leaves no key), the finite-size correction Delta(n) (the block is
/// too short), or the verification and authentication bits (the block is too short to pay for them).
expected<std::uint64_t> secret_key_length(const output_length_inputs& in);

}  // namespace cvqkd::reconciliation::privacy
