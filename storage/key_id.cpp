#include "storage/key_id.hpp"

#include <openssl/rand.h>

#include <cstring>

namespace cvqkd::storage {

expected<key_id> key_id::generate() {
  key_id id;
  if (RAND_bytes(id.bytes.data(), static_cast<int>(id.bytes.size())) != 1)
    return fail(errc::io_error, "OpenSSL's random generator failed; check the system entropy source");
  id.bytes[6] = static_cast<std::uint8_t>((id.bytes[6] & 0x0f) | 0x40);  // version 4 (RFC 4122 sec. 4.4)
  id.bytes[8] = static_cast<std::uint8_t>((id.bytes[8] & 0x3f) | 0x80);  // variant 10
  return id;
}

namespace {
int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}
}  // namespace

expected<key_id> key_id::parse(std::string_view text) {
  const auto bad = [&] {
    return fail(errc::parse_error, "'" + std::string(text.substr(0, 64)) +
                                     "' is not a UUID; key IDs look like 123e4567-e89b-42d3-a456-426614174000");
  };
  if (text.size() != 36) return bad();
  key_id id;
  std::size_t b = 0;
  for (std::size_t i = 0; i < text.size();) {
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (text[i] != '-') return bad();
      ++i;
      continue;
    }
    const int hi = hex_value(text[i]), lo = hex_value(text[i + 1]);
    if (hi < 0 || lo < 0) return bad();
    id.bytes[b++] = static_cast<std::uint8_t>(hi * 16 + lo);
    i += 2;
  }
  return id;
}

std::string key_id::to_string() const {
  static constexpr char hex[] = "0123456789abcdef";
  std::string out;
  out.reserve(36);
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) out.push_back('-');
    out.push_back(hex[bytes[i] >> 4]);
    out.push_back(hex[bytes[i] & 15]);
  }
  return out;
}

std::size_t key_id_hash::operator()(const key_id& id) const noexcept {
  std::size_t h;
  std::memcpy(&h, id.bytes.data(), sizeof h);  // the bytes are random already
  return h;
}

}  // namespace cvqkd::storage
