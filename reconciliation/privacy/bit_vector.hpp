#pragma once
// Packed bit vectors for key material (reconciled keys, Toeplitz seeds, final keys).

#include <cstddef>
#include <cstdint>
#include <span>

#include "core/secure_buffer.hpp"

namespace cvqkd::reconciliation::privacy {

/// A vector of bits packed into 64-bit words, least significant bit first: bit i is
/// (words()[i / 64] >> (i % 64)) & 1. On a little-endian machine the bytes of the storage are
/// therefore also LSB-first (bit i is (byte[i / 8] >> (i % 8)) & 1), which is the byte order of
/// to_key_bytes(). Bits past size() in the last word are always zero (every mutator keeps them so;
/// code writing through words() must too, or call clear_padding()). The storage is a secure_buffer
/// (zeroized when freed), since the bits are usually key material; copies are explicit (clone()).
class bit_vector {
public:
  bit_vector() noexcept = default;
  /// `bits` zero bits.
  explicit bit_vector(std::size_t bits);
  /// From one 0/1 value per bit (any non-zero value counts as 1); for tests and small vectors.
  static bit_vector from_bits(std::span<const std::uint8_t> bits);

  bit_vector(bit_vector&&) noexcept = default;
  bit_vector& operator=(bit_vector&&) noexcept = default;
  bit_vector(const bit_vector&) = delete;
  bit_vector& operator=(const bit_vector&) = delete;

  std::size_t size() const noexcept { return bits_; }
  bool empty() const noexcept { return bits_ == 0; }
  std::size_t word_count() const noexcept { return (bits_ + 63) / 64; }

  bool get(std::size_t i) const noexcept { return (words()[i / 64] >> (i % 64)) & 1U; }
  void set(std::size_t i, bool v) noexcept;

  std::span<std::uint64_t> words() noexcept;
  std::span<const std::uint64_t> words() const noexcept;

  /// Zeroes the unused bits of the last word.
  void clear_padding() noexcept;
  /// Number of one bits.
  std::size_t popcount() const noexcept;
  /// An explicit deep copy.
  bit_vector clone() const;

  /// The bits as ceil(size()/8) bytes, LSB-first (see above), moved out of this vector's storage
  /// without a copy; the vector is left empty.
  secure_buffer to_key_bytes() &&;

private:
  secure_buffer storage_;  // word_count() * 8 bytes
  std::size_t bits_ = 0;
};

/// Equality of size and bits (constant time in the contents).
bool operator==(const bit_vector& a, const bit_vector& b) noexcept;

}  // namespace cvqkd::reconciliation::privacy
