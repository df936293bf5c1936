#pragma once
// Verification of a decoded frame: both sides compute a polynomial hash over GF(2^128) (Carter & Wegman,
// J. Comput. Syst. Sci. 18, 143 (1979); Bernstein, "Polynomial evaluation and message authentication"
// (2007)) of their frame under a fresh public key k and compare the 128-bit tags. Two different frames of
// L 128-bit blocks (plus one length block) collide with probability at most (L + 1) / 2^128 over k, i.e.
// <= 2^-64 for any frame shorter than 2^71 bits. The key is drawn per frame and sent over the
// authenticated channel; the tag (tag_bits) is disclosed and counts as leakage in the key length, not in beta.

#include <array>
#include <cstdint>
#include <span>

#include "core/drbg.hpp"

namespace cvqkd::reconciliation::verification {

/// Bits disclosed per verified frame.
inline constexpr unsigned tag_bits = 128;

/// An element of GF(2^128) = GF(2)[x] / (x^128 + x^7 + x^2 + x + 1): lo holds the coefficients of
/// x^0..x^63, hi those of x^64..x^127.
struct gf128 {
  std::uint64_t lo = 0, hi = 0;
  friend bool operator==(const gf128&, const gf128&) = default;
};

/// Product in GF(2^128) (shift-and-add with reduction by x^7 + x^2 + x + 1).
gf128 multiply(gf128 a, gf128 b) noexcept;

/// A fresh hash key from `rng` (use a system or quantum source in production; it is public once sent).
gf128 draw_key(random_source& rng);

/// Tag of a frame given as one bit (0/1) per byte: Horner evaluation of the message polynomial, 128 bits
/// per block (bit i of a block at x^i), then a final block holding the bit length, all multiplied by k.
gf128 tag(gf128 key, std::span<const std::uint8_t> bits) noexcept;

/// Upper bound on the collision probability for frames of n_bits: (ceil(n_bits/128) + 1) / 2^128.
double collision_bound(std::size_t n_bits) noexcept;

}  // namespace cvqkd::reconciliation::verification
