#pragma once
// Internal: the additive FFT over GF(2^64) in Lin-Chung-Han's novel polynomial basis built on
// Cantor's basis, and the basis conversions, used to multiply long GF(2) polynomials.
//
//   S. Lin, W.-H. Chung, Y. S. Han, "Novel polynomial basis and its application to Reed-Solomon
//   erasure codes", FOCS 2014 (the transform); D. Cantor, "On arithmetical algorithms over finite
//   fields", JCTA 50 (1989) (the basis beta_0 = 1, beta_i^2 + beta_i = beta_{i-1}, for which the
//   subspace polynomials s_j(y) = (y^2 + y)^{o j} = sum_{t subset of j} y^(2^t) have 0/1
//   coefficients and s_j(beta_j) = 1); M.-S. Chen et al., "Faster multiplication for long binary
//   polynomials", arXiv:1708.09746 (this use of it for GF(2)[x] products).
//
// A length-2^K array d holds a polynomial D(y) = sum_i d[i] X_i(y) in the novel basis
// X_i = prod_{bits j of i} s_j(y). The forward transform replaces it by D(omega_u) at position u,
// with omega_u = XOR of beta_l over the bits l of u; the inverse undoes it. Products of evaluations
// give the product polynomial modulo s_K(y), exact when its degree is below 2^K.

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "reconciliation/privacy/gf2_kernels.hpp"

namespace cvqkd::reconciliation::privacy::detail {

/// Cantor basis and twiddle tables (computed once, thread-safe).
const field_tables& tables();

/// The fastest kernel tier this CPU supports (checked once with cpuid).
const kernel_table& best_kernels();
/// A tier by name ("portable", "pclmulqdq", "avx512-vpclmulqdq"), or nullptr when it is not
/// compiled in or this CPU lacks its instructions.
const kernel_table* kernels_by_name(std::string_view name);

/// GF(2^64) product (portable; for tests and table set-up).
std::uint64_t gf_mul_slow(std::uint64_t a, std::uint64_t b);

/// Smallest supported transform: 2^5 elements.
inline constexpr int min_log_size = 5;

/// In-place conversion of f (2^k 32-bit coefficients, monomial basis) to the novel basis. Only
/// f[0, len) may be non-zero (len <= 2^k); all-zero blocks are skipped.
void to_novel(const kernel_table& kt, std::uint32_t* f, int k, std::size_t len);
/// In-place conversion of f (2^k 64-bit coefficients, novel basis) to the monomial basis.
void to_mono(const kernel_table& kt, std::uint64_t* f, int k);
/// Forward / inverse additive FFT of length 2^k in place (k >= min_log_size).
void fft_forward(const kernel_table& kt, std::uint64_t* d, int k);
void fft_inverse(const kernel_table& kt, std::uint64_t* d, int k);

}  // namespace cvqkd::reconciliation::privacy::detail
