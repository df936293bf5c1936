#pragma once
// One-time message authentication for hop messages (Wegman & Carter, J. Comput. Syst. Sci. 22,
// 265 (1981)): tag = h_r(m) + s mod p, with h_r a polynomial hash over GF(p), p = 2^61 - 1, and
// (r, s) fresh link-key bits used for one message only.
//
// h_r(m): m is cut into L = ceil(len/7) blocks of 7 bytes (little-endian, each < 2^56 < p),
// followed by one block holding len; h_r(m) = sum_i b_i r^(L+2-i) (Horner). For m != m' the
// difference h_r(m) - h_r(m') is a non-zero polynomial in r of degree <= L+1, so for every delta
// Pr_r[h_r(m) - h_r(m') = delta] <= (L+1)/p: h is epsilon-almost-Delta-universal with
// epsilon = (L+1)/p, and with the uniform pad s the family is epsilon-almost-strongly-universal:
// a forger who saw one (m, tag) succeeds with probability <= (L+1)/p (Stinson, "Universal
// hashing and authentication codes", 1994, thm. 6.2). For a 200-byte message, (29+1)/p ~ 1.3e-17.
// r and s are 8-byte little-endian words reduced mod p; the reduction biases them by less than
// 2^-58 in statistical distance.

#include <cstddef>
#include <cstdint>
#include <span>

namespace cvqkd::relay::wegman_carter {

inline constexpr std::uint64_t prime = (std::uint64_t{1} << 61) - 1;
/// Key bytes per tag: 8 for the hash key r, 8 for the one-time pad s.
inline constexpr std::size_t key_bytes = 16;

/// h_r(m) as above; r must be < prime.
std::uint64_t poly_hash(std::uint64_t r, std::span<const std::byte> message) noexcept;
/// The tag of `message` under `key` (key_bytes bytes: r then s). Shapes are the caller's duty:
/// a key of another size is a programming error (asserted).
std::uint64_t tag(std::span<const std::byte> key, std::span<const std::byte> message) noexcept;
/// Whether `t` is the tag of `message` (comparison in constant time).
bool verify(std::span<const std::byte> key, std::span<const std::byte> message, std::uint64_t t) noexcept;
/// epsilon = (ceil(len/7) + 1) / p: the forgery probability bound for a message of `message_bytes`.
double forgery_bound(std::size_t message_bytes) noexcept;

}  // namespace cvqkd::relay::wegman_carter
