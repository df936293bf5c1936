#pragma once
// Multidimensional reconciliation (MDR), reverse direction: Bob's bits are the reference.
// Leverrier, Alleaume, Boutros, Zemor, Grangier, PRA 77, 042325 (2008); cvqkd-theory.md, "Multidimensional
// reconciliation". Bob's d real values y and his d random bits b give u = (1 - 2b)/sqrt(d); he publishes
// the mapping m = u * conj(y/|y|) (a unit element, uniform on the sphere and independent of u) and |y|.
// Alice rotates her x with the same m: v = m * (x/|x|) is u plus a rotated Gaussian noise, so each bit sees
// a binary-input AWGN channel. Homodyne gives one real dimension per sifted symbol, heterodyne two (pass
// q and p interleaved, see interleave_quadratures).

#include <cstdint>
#include <span>
#include <vector>

#include "core/error.hpp"

namespace cvqkd::reconciliation::mdr {

/// Bob's public message for one frame of n reals (n a multiple of d): `mapping` holds m block by block
/// (n reals), `norms` holds |y| of each block (n/d values).
struct mapping_message {
  unsigned dimension = 8;
  std::vector<double> mapping;
  std::vector<double> norms;
};

/// True for the supported dimensions 1, 2, 4, 8.
bool supported_dimension(unsigned d) noexcept;

/// Heterodyne samples as one real sequence q0 p0 q1 p1 ...; q and p have the same length.
std::vector<double> interleave_quadratures(std::span<const double> q, std::span<const double> p);

/// Bob's side: bits b (one 0/1 per byte, n of them, the frame he will send the syndrome of) and his
/// measured y (n reals). Errors: invalid_argument when d is unsupported, n is not a multiple of d, the
/// lengths differ, a bit is not 0/1, or a block of y is all zeros (its direction is undefined: drop it).
expected<mapping_message> bob_map(std::span<const double> y, std::span<const std::uint8_t> bits, unsigned d);

/// Alice's side: LLRs of Bob's bits from her x (n reals) and Bob's message, with noise_variance =
/// sigma^2 the variance of z in y = x + z in the units of x (sigma^2 = Var(x)/SNR).
/// LLR_i = 2 |x| |y| v_i / (sigma^2 sqrt(d)), v = m * x/|x| (cvqkd-theory.md, MDR step 4; a positive
/// LLR favours bit 0). Writes n values to `llr`. Errors: invalid_argument on mismatched lengths, a
/// non-positive or non-finite noise_variance, or an unsupported dimension.
expected<void> alice_llr(std::span<const double> x, const mapping_message& message, double noise_variance,
                         std::span<float> llr);

/// Alice's rotated values v (n reals) without the LLR scaling; for tests and diagnostics.
expected<std::vector<double>> alice_rotate(std::span<const double> x, const mapping_message& message);

}  // namespace cvqkd::reconciliation::mdr
