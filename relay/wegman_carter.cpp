#include "relay/wegman_carter.hpp"

#include <openssl/crypto.h>

#include <cassert>

namespace cvqkd::relay::wegman_carter {
namespace {

__extension__ typedef unsigned __int128 u128;

std::uint64_t reduce(u128 x) noexcept {
  // x < 2^122; 2^61 = 1 (mod p), so fold the high bits twice.
  std::uint64_t lo = static_cast<std::uint64_t>(x & prime);
  std::uint64_t hi = static_cast<std::uint64_t>(x >> 61);
  std::uint64_t v = lo + hi;  // < 2^62
  v = (v & prime) + (v >> 61);
  if (v >= prime) v -= prime;
  return v;
}

std::uint64_t mul(std::uint64_t a, std::uint64_t b) noexcept { return reduce(static_cast<u128>(a) * b); }

std::uint64_t add(std::uint64_t a, std::uint64_t b) noexcept {
  std::uint64_t v = a + b;  // both < 2^61
  if (v >= prime) v -= prime;
  return v;
}

std::uint64_t load_le(std::span<const std::byte> b) noexcept {
  std::uint64_t v = 0;
  for (std::size_t i = 0; i < b.size(); ++i) v |= static_cast<std::uint64_t>(b[i]) << (8 * i);
  return v;
}

std::uint64_t field_element(std::span<const std::byte> eight) noexcept { return load_le(eight) % prime; }

}  // namespace

std::uint64_t poly_hash(std::uint64_t r, std::span<const std::byte> message) noexcept {
  std::uint64_t acc = 0;
  for (std::size_t i = 0; i < message.size(); i += 7) {
    const std::size_t n = message.size() - i < 7 ? message.size() - i : 7;
    acc = mul(add(acc, load_le(message.subspan(i, n))), r);
  }
  return mul(add(acc, static_cast<std::uint64_t>(message.size()) % prime), r);
}

std::uint64_t tag(std::span<const std::byte> key, std::span<const std::byte> message) noexcept {
  assert(key.size() == key_bytes);
  const std::uint64_t r = field_element(key.first(8));
  const std::uint64_t s = field_element(key.subspan(8, 8));
  return add(poly_hash(r, message), s);
}

bool verify(std::span<const std::byte> key, std::span<const std::byte> message, std::uint64_t t) noexcept {
  const std::uint64_t expected_tag = tag(key, message);
  return CRYPTO_memcmp(&expected_tag, &t, sizeof t) == 0;
}

double forgery_bound(std::size_t message_bytes) noexcept {
  return static_cast<double>((message_bytes + 6) / 7 + 1) / static_cast<double>(prime);
}

}  // namespace cvqkd::relay::wegman_carter
