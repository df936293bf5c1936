#pragma once
// Encryption at rest: AES-256-GCM (NIST SP 800-38D) through OpenSSL EVP, with a random 96-bit
// nonce per seal. Internal to storage/; key_store uses it for every value that holds key bytes.
//
// Sealed layout: nonce (12 bytes) || ciphertext (same length as the plaintext) || tag (16 bytes).
// Random nonces under one key stay below the SP 800-38D sec. 8.3 collision bound (2^-32) for up
// to 2^32 seals: rotate the KEK before a store has written that many values (not automated yet).

#include <cstddef>
#include <span>
#include <string>
#include <string_view>

#include "core/error.hpp"
#include "core/secure_buffer.hpp"

namespace cvqkd::storage {

inline constexpr std::size_t aead_nonce_bytes = 12;
inline constexpr std::size_t aead_tag_bytes = 16;
inline constexpr std::size_t aead_overhead = aead_nonce_bytes + aead_tag_bytes;
inline constexpr std::size_t kek_bytes = 32;

/// Parses a key-encryption key file's content: exactly 32 raw bytes, or 64 hex digits with
/// optional surrounding whitespace. Errors: config_error (naming `origin`) for anything else.
expected<secure_buffer> parse_kek(std::span<const std::byte> content, std::string_view origin);

class aead {
public:
  /// `kek` must be 32 bytes (AES-256).
  explicit aead(secure_buffer kek) : kek_(std::move(kek)) {}

  /// Appends nonce || AES-256-GCM(plain, aad) || tag to `out`. Errors: io_error if OpenSSL's
  /// random generator or cipher fails.
  expected<void> seal(std::span<const std::byte> plain, std::string_view aad, std::string& out) const;
  /// Inverse of seal. Errors: parse_error if `sealed` is too short or the tag does not verify
  /// (wrong KEK, tampered value, or AAD mismatch: a record moved to another key or state).
  expected<secure_buffer> open(std::string_view sealed, std::string_view aad) const;

private:
  secure_buffer kek_;
};

}  // namespace cvqkd::storage
