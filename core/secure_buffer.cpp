#include "core/secure_buffer.hpp"

#include <openssl/crypto.h>

#include <cstring>
#include <new>
#include <utility>

namespace cvqkd {

secure_buffer::secure_buffer(std::size_t size) {
  if (size == 0) return;
  data_ = new std::byte[size]();
  size_ = size;
}

secure_buffer::secure_buffer(std::span<const std::byte> bytes) : secure_buffer(bytes.size()) {
  if (!bytes.empty()) std::memcpy(data_, bytes.data(), bytes.size());
}

secure_buffer::~secure_buffer() { reset(); }

secure_buffer::secure_buffer(secure_buffer&& other) noexcept
  : data_(std::exchange(other.data_, nullptr)), size_(std::exchange(other.size_, 0)) {}

secure_buffer& secure_buffer::operator=(secure_buffer&& other) noexcept {
  if (this != &other) {
    reset();
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
  }
  return *this;
}

secure_buffer secure_buffer::clone() const { return secure_buffer{bytes()}; }

void secure_buffer::reset() noexcept {
  if (data_ != nullptr) {
    OPENSSL_cleanse(data_, size_);
    delete[] data_;
  }
  data_ = nullptr;
  size_ = 0;
}

bool constant_time_equal(std::span<const std::byte> a, std::span<const std::byte> b) noexcept {
  if (a.size() != b.size()) return false;
  if (a.empty()) return true;
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace cvqkd
