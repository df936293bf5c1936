#pragma once
// End-to-end key identifiers: RFC 4122 UUIDs, version 4 (random), as ETSI GS QKD 014 requires.

#include <array>
#include <compare>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/error.hpp"

namespace cvqkd::storage {

struct key_id {
  std::array<std::uint8_t, 16> bytes{};

  /// A fresh random UUIDv4 (122 bits from OpenSSL's RAND_bytes). Errors: io_error if OpenSSL's
  /// generator fails.
  static expected<key_id> generate();
  /// Parses the canonical 8-4-4-4-12 hex form (either case). Errors: parse_error.
  static expected<key_id> parse(std::string_view text);
  /// Canonical lower-case 8-4-4-4-12 form.
  std::string to_string() const;

  auto operator<=>(const key_id&) const = default;
};

struct key_id_hash {
  std::size_t operator()(const key_id& id) const noexcept;
};

}  // namespace cvqkd::storage
