#include "reconciliation/verification/hash.hpp"

#include <cmath>
#include <cstddef>

namespace cvqkd::reconciliation::verification {

gf128 multiply(gf128 a, gf128 b) noexcept {
  gf128 r;
  for (int i = 127; i >= 0; --i) {
    // r = r * x mod p(x)
    const std::uint64_t carry = r.hi >> 63;
    r.hi = (r.hi << 1) | (r.lo >> 63);
    r.lo = (r.lo << 1) ^ (carry * 0x87u);
    const std::uint64_t bit = i >= 64 ? (b.hi >> (i - 64)) & 1u : (b.lo >> i) & 1u;
    const std::uint64_t mask = 0 - bit;  // branch-free: the key must not steer branches
    r.lo ^= a.lo & mask;
    r.hi ^= a.hi & mask;
  }
  return r;
}

gf128 draw_key(random_source& rng) {
  gf128 k;
  k.lo = rng.next_u64();
  k.hi = rng.next_u64();
  return k;
}

gf128 tag(gf128 key, std::span<const std::uint8_t> bits) noexcept {
  gf128 acc;
  for (std::size_t base = 0; base < bits.size(); base += 128) {
    gf128 block;
    const std::size_t end = std::min(bits.size(), base + 128);
    for (std::size_t i = base; i < end; ++i) {
      const std::size_t j = i - base;
      const std::uint64_t b = bits[i] & 1u;
      if (j < 64) block.lo |= b << j;
      else block.hi |= b << (j - 64);
    }
    acc.lo ^= block.lo;
    acc.hi ^= block.hi;
    acc = multiply(acc, key);
  }
  acc.lo ^= static_cast<std::uint64_t>(bits.size());
  return multiply(acc, key);
}

double collision_bound(std::size_t n_bits) noexcept {
  return (std::ceil(double(n_bits) / 128.0) + 1.0) * std::ldexp(1.0, -128);
}

}  // namespace cvqkd::reconciliation::verification
