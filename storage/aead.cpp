#include "storage/aead.hpp"

#include <openssl/evp.h>
#include <openssl/rand.h>

#include <cctype>
#include <memory>

namespace cvqkd::storage {

namespace {

struct ctx_deleter {
  void operator()(EVP_CIPHER_CTX* c) const noexcept { EVP_CIPHER_CTX_free(c); }
};
using ctx_ptr = std::unique_ptr<EVP_CIPHER_CTX, ctx_deleter>;

const unsigned char* uc(const void* p) { return static_cast<const unsigned char*>(p); }
unsigned char* uc(void* p) { return static_cast<unsigned char*>(p); }

int hex_value(std::byte b) {
  const char c = static_cast<char>(b);
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

expected<secure_buffer> parse_kek(std::span<const std::byte> content, std::string_view origin) {
  if (content.size() == kek_bytes) return secure_buffer(content);
  std::size_t first = 0, last = content.size();
  const auto space = [](std::byte b) { return std::isspace(static_cast<unsigned char>(b)) != 0; };
  while (first < last && space(content[first])) ++first;
  while (last > first && space(content[last - 1])) --last;
  if (last - first == 2 * kek_bytes) {
    secure_buffer key(kek_bytes);
    bool ok = true;
    for (std::size_t i = 0; i < kek_bytes; ++i) {
      const int hi = hex_value(content[first + 2 * i]), lo = hex_value(content[first + 2 * i + 1]);
      ok = ok && hi >= 0 && lo >= 0;
      key.data()[i] = static_cast<std::byte>(((hi & 15) << 4) | (lo & 15));
    }
    if (ok) return key;
  }
  return fail(errc::config_error, std::string(origin) +
                                    " does not hold a 256-bit key: expected 32 raw bytes or 64 hex digits "
                                    "(create one with cvqkd::storage::create_kek_file or `openssl rand -hex 32`)");
}

expected<void> aead::seal(std::span<const std::byte> plain, std::string_view aad, std::string& out) const {
  const std::size_t base = out.size();
  out.resize(base + aead_nonce_bytes + plain.size() + aead_tag_bytes);
  unsigned char* nonce = uc(out.data() + base);
  unsigned char* ct = nonce + aead_nonce_bytes;
  unsigned char* tag = ct + plain.size();
  const auto failed = [&] {
    out.resize(base);
    return fail(errc::io_error, "AES-256-GCM encryption failed in OpenSSL; check the OpenSSL installation");
  };
  if (RAND_bytes(nonce, static_cast<int>(aead_nonce_bytes)) != 1) return failed();
  ctx_ptr ctx(EVP_CIPHER_CTX_new());
  int len = 0;
  if (!ctx || EVP_EncryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, uc(kek_.data()), nonce) != 1) return failed();
  if (!aad.empty() && EVP_EncryptUpdate(ctx.get(), nullptr, &len, uc(aad.data()), static_cast<int>(aad.size())) != 1)
    return failed();
  if (!plain.empty() && EVP_EncryptUpdate(ctx.get(), ct, &len, uc(plain.data()), static_cast<int>(plain.size())) != 1)
    return failed();
  if (EVP_EncryptFinal_ex(ctx.get(), ct + plain.size(), &len) != 1) return failed();
  if (EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, static_cast<int>(aead_tag_bytes), tag) != 1) return failed();
  return {};
}

expected<secure_buffer> aead::open(std::string_view sealed, std::string_view aad) const {
  if (sealed.size() < aead_overhead)
    return fail(errc::parse_error, "a stored value is truncated; the database is damaged — restore it from a backup");
  const std::size_t n = sealed.size() - aead_overhead;
  const unsigned char* nonce = uc(sealed.data());
  const unsigned char* ct = nonce + aead_nonce_bytes;
  secure_buffer plain(n);
  ctx_ptr ctx(EVP_CIPHER_CTX_new());
  int len = 0;
  const auto bad = [] {
    return fail(errc::parse_error,
                "a stored value failed authentication (wrong key-encryption key, or the record was altered); "
                "open the store with its original KEK file or restore the database from a backup");
  };
  if (!ctx || EVP_DecryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, uc(kek_.data()), nonce) != 1) return bad();
  if (!aad.empty() && EVP_DecryptUpdate(ctx.get(), nullptr, &len, uc(aad.data()), static_cast<int>(aad.size())) != 1)
    return bad();
  if (n > 0 && EVP_DecryptUpdate(ctx.get(), uc(plain.data()), &len, ct, static_cast<int>(n)) != 1) return bad();
  // The tag must be set before the final call; EVP wants a non-const pointer but does not write.
  if (EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, static_cast<int>(aead_tag_bytes),
                          const_cast<unsigned char*>(ct + n)) != 1)
    return bad();
  if (EVP_DecryptFinal_ex(ctx.get(), uc(plain.data()) + n, &len) != 1) return bad();  // plain is cleansed on return
  return plain;
}

}  // namespace cvqkd::storage
