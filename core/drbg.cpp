#include "core/drbg.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <array>
#include <cmath>
#include <cstdlib>
#include <cstring>

namespace cvqkd {

std::uint64_t random_source::next_u64() {
  std::array<std::byte, 8> b;
  fill(b);
  std::uint64_t v;
  std::memcpy(&v, b.data(), sizeof v);
  return v;
}

double random_source::next_unit() {
  return static_cast<double>(next_u64() >> 11) * 0x1.0p-53;
}

struct seeded_drbg::impl {
  EVP_CIPHER_CTX* ctx = nullptr;
  std::array<std::byte, 4096> zeros{};
  std::array<std::byte, 4096> block{};
  std::size_t pos = block.size();

  void refill() {
    int len = 0;
    if (EVP_EncryptUpdate(ctx, reinterpret_cast<unsigned char*>(block.data()), &len,
                          reinterpret_cast<const unsigned char*>(zeros.data()),
                          static_cast<int>(zeros.size())) != 1
        || static_cast<std::size_t>(len) != block.size())
      std::abort();  // AES-CTR cannot fail on valid input; a failure means a broken libcrypto
    pos = 0;
  }
};

seeded_drbg::seeded_drbg(std::uint64_t seed, std::string_view domain) : impl_(std::make_unique<impl>()) {
  std::array<unsigned char, 32> key{};
  std::array<unsigned char, 16> iv{};
  EVP_MD_CTX* md = EVP_MD_CTX_new();
  unsigned int key_len = 0;
  unsigned char seed_le[8];
  for (int i = 0; i < 8; ++i) seed_le[i] = static_cast<unsigned char>(seed >> (8 * i));
  if (md == nullptr || EVP_DigestInit_ex(md, EVP_sha256(), nullptr) != 1
      || EVP_DigestUpdate(md, domain.data(), domain.size()) != 1
      || EVP_DigestUpdate(md, "\0", 1) != 1
      || EVP_DigestUpdate(md, seed_le, sizeof seed_le) != 1
      || EVP_DigestFinal_ex(md, key.data(), &key_len) != 1)
    std::abort();
  EVP_MD_CTX_free(md);
  impl_->ctx = EVP_CIPHER_CTX_new();
  if (impl_->ctx == nullptr
      || EVP_EncryptInit_ex(impl_->ctx, EVP_aes_256_ctr(), nullptr, key.data(), iv.data()) != 1)
    std::abort();
  OPENSSL_cleanse(key.data(), key.size());
}

seeded_drbg::~seeded_drbg() {
  if (impl_) {
    EVP_CIPHER_CTX_free(impl_->ctx);
    OPENSSL_cleanse(impl_->block.data(), impl_->block.size());
  }
}

void seeded_drbg::fill(std::span<std::byte> out) {
  auto& s = *impl_;
  while (!out.empty()) {
    if (s.pos == s.block.size()) s.refill();
    const std::size_t n = std::min(out.size(), s.block.size() - s.pos);
    std::memcpy(out.data(), s.block.data() + s.pos, n);
    s.pos += n;
    out = out.subspan(n);
  }
}

void system_random::fill(std::span<std::byte> out) {
  if (out.empty()) return;
  if (RAND_priv_bytes(reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(out.size())) != 1)
    std::abort();
}

gaussian_sampler::~gaussian_sampler() {
  OPENSSL_cleanse(words_.data(), sizeof words_);
  polar_.clear();
}

void polar_normal::clear() noexcept {
  OPENSSL_cleanse(&spare_, sizeof spare_);
  has_spare_ = false;
}

double gaussian_sampler::next_unit() {
  if (next_word_ == words_.size()) {
    source_->fill(std::as_writable_bytes(std::span{words_}));
    next_word_ = 0;
  }
  return static_cast<double>(words_[next_word_++] >> 11) * 0x1.0p-53;
}

double gaussian_sampler::next() {
  return polar_.next([this] { return next_unit(); });
}

void gaussian_sampler::fill(std::span<double> out, double sigma) {
  for (double& v : out) v = sigma * next();
}

}  // namespace cvqkd
