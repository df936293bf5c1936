#pragma once
// Move-only byte buffer for key material: zeroized with OPENSSL_cleanse when freed or
// overwritten, never copied implicitly. Everything that carries key bytes uses it.

#include <cstddef>
#include <cstdint>
#include <span>

namespace cvqkd {

class secure_buffer {
public:
  secure_buffer() noexcept = default;
  /// A zero-filled buffer of `size` bytes.
  explicit secure_buffer(std::size_t size);
  /// Copies `bytes` in; the caller remains responsible for cleansing its own copy.
  explicit secure_buffer(std::span<const std::byte> bytes);
  ~secure_buffer();

  secure_buffer(const secure_buffer&) = delete;
  secure_buffer& operator=(const secure_buffer&) = delete;
  secure_buffer(secure_buffer&& other) noexcept;
  secure_buffer& operator=(secure_buffer&& other) noexcept;

  std::size_t size() const noexcept { return size_; }
  bool empty() const noexcept { return size_ == 0; }
  std::byte* data() noexcept { return data_; }
  const std::byte* data() const noexcept { return data_; }
  std::span<std::byte> bytes() noexcept { return {data_, size_}; }
  std::span<const std::byte> bytes() const noexcept { return {data_, size_}; }

  /// An explicit deep copy (key material is never duplicated by accident).
  secure_buffer clone() const;
  /// Zeroizes and frees the storage.
  void reset() noexcept;

private:
  std::byte* data_ = nullptr;
  std::size_t size_ = 0;
};

/// Constant-time equality of two byte ranges of the same length (CRYPTO_memcmp).
bool constant_time_equal(std::span<const std::byte> a, std::span<const std::byte> b) noexcept;

}  // namespace cvqkd
