#include "reconciliation/privacy/bit_vector.hpp"

#include <bit>
#include <cstring>
#include <utility>

namespace cvqkd::reconciliation::privacy {

static_assert(std::endian::native == std::endian::little,
              "bit_vector's byte view (to_key_bytes) assumes a little-endian machine");

bit_vector::bit_vector(std::size_t bits) : storage_(((bits + 63) / 64) * 8), bits_(bits) {}

bit_vector bit_vector::from_bits(std::span<const std::uint8_t> bits) {
  bit_vector v(bits.size());
  for (std::size_t i = 0; i < bits.size(); ++i)
    if (bits[i] != 0) v.set(i, true);
  return v;
}

void bit_vector::set(std::size_t i, bool v) noexcept {
  std::uint64_t& w = words()[i / 64];
  const std::uint64_t m = std::uint64_t{1} << (i % 64);
  w = v ? (w | m) : (w & ~m);
}

// The storage comes from `new std::byte[]`, which implicitly creates the uint64_t objects
// (C++20 [intro.object]/13) and is suitably aligned for them.
std::span<std::uint64_t> bit_vector::words() noexcept {
  return {reinterpret_cast<std::uint64_t*>(storage_.data()), word_count()};
}
std::span<const std::uint64_t> bit_vector::words() const noexcept {
  return {reinterpret_cast<const std::uint64_t*>(storage_.data()), word_count()};
}

void bit_vector::clear_padding() noexcept {
  if (bits_ % 64 != 0) words().back() &= (std::uint64_t{1} << (bits_ % 64)) - 1;
}

std::size_t bit_vector::popcount() const noexcept {
  std::size_t n = 0;
  for (const std::uint64_t w : words()) n += static_cast<std::size_t>(std::popcount(w));
  return n;
}

bit_vector bit_vector::clone() const {
  bit_vector c(bits_);
  if (!storage_.empty()) std::memcpy(c.storage_.data(), storage_.data(), storage_.size());
  return c;
}

secure_buffer bit_vector::to_key_bytes() && {
  const std::size_t n = (bits_ + 7) / 8;
  secure_buffer out;
  if (n == storage_.size()) {
    out = std::move(storage_);
  } else {
    out = secure_buffer(storage_.bytes().first(n));
    storage_.reset();
  }
  bits_ = 0;
  return out;
}

bool operator==(const bit_vector& a, const bit_vector& b) noexcept {
  if (a.size() != b.size()) return false;
  const auto wa = a.words();
  const auto wb = b.words();
  return constant_time_equal(std::as_bytes(wa), std::as_bytes(wb));
}

}  // namespace cvqkd::reconciliation::privacy
