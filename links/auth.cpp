#include "links/auth.hpp"

#include <fmt/format.h>
#include <openssl/crypto.h>

#include <cstring>

namespace cvqkd::links {
namespace {

gf128 load(std::span<const std::byte> b) noexcept {
  std::array<std::byte, 16> block{};
  std::memcpy(block.data(), b.data(), std::min<std::size_t>(b.size(), 16));
  gf128 g;
  std::memcpy(&g.lo, block.data(), 8);
  std::memcpy(&g.hi, block.data() + 8, 8);
  return g;
}

}  // namespace

gf128 poly_hash(gf128 key, std::span<const std::byte> message) noexcept { return poly_hash_update(key, gf128{}, message); }

gf128 poly_hash_update(gf128 key, gf128 state, std::span<const std::byte> message) noexcept {
  gf128 h = state;
  for (std::size_t off = 0; off < message.size(); off += 16) {
    const gf128 m = load(message.subspan(off, std::min<std::size_t>(16, message.size() - off)));
    h = reconciliation::verification::multiply(gf128{h.lo ^ m.lo, h.hi ^ m.hi}, key);
  }
  // The length block makes messages that differ only in trailing zero bytes hash differently.
  h = reconciliation::verification::multiply(gf128{h.lo ^ static_cast<std::uint64_t>(message.size()), h.hi}, key);
  return h;
}

auth_key_stream::auth_key_stream(secure_buffer pre_shared) : buffer_(std::move(pre_shared)), pre_shared_(true) {}

void auth_key_stream::replenish(secure_buffer key) {
  // The new key replaces whatever is left: the two ends may have drawn different numbers of pads
  // (each draws up to the highest message index it saw), so only a fresh start keeps them
  // aligned, and the commissioning secret is retired for good.
  buffer_ = std::move(key);
  cursor_ = 0;
  pre_shared_ = false;
}

expected<secure_buffer> auth_key_stream::take(std::size_t n) {
  if (available() < n)
    return fail(errc::no_secret_key,
                fmt::format("authentication key exhausted: {} bytes needed, {} left; feed the link's stream from its "
                            "key pool or re-commission it with a new pre-shared secret",
                            n, available()));
  secure_buffer out(std::span<const std::byte>(buffer_.data() + cursor_, n));
  OPENSSL_cleanse(buffer_.data() + cursor_, n);  // consumed key is never readable again
  cursor_ += n;
  consumed_ += n;
  return out;
}

expected<authenticator> authenticator::begin_round(auth_key_stream& keys) {
  auto k = keys.take(hash_key_bytes);
  if (!k) return std::unexpected(k.error());
  return authenticator(keys, load(k->bytes()));
}

expected<gf128> authenticator::pad(std::uint64_t index) {
  while (pads_.size() <= index) {
    auto p = keys_->take(tag_bytes);
    if (!p) return std::unexpected(p.error());
    pads_.push_back(load(p->bytes()));
    consumed_bytes_ += tag_bytes;
  }
  return pads_[index];
}

expected<gf128> authenticator::tag(gf128 h, std::uint64_t pad_index) {
  auto p = pad(pad_index);
  if (!p) return std::unexpected(p.error());
  return gf128{h.lo ^ p->lo, h.hi ^ p->hi};
}

expected<void> authenticator::verify(gf128 h, std::uint64_t pad_index, gf128 received) {
  auto t = tag(h, pad_index);
  if (!t) return std::unexpected(t.error());
  // Constant time: a timing difference must not tell a forger how many tag bytes were right.
  if (CRYPTO_memcmp(&*t, &received, sizeof received) != 0)
    return fail(errc::invalid_argument,
                "classical message failed authentication (forged or corrupted): the round is aborted and its "
                "material discarded; check the link's classical channel and its authentication key");
  return {};
}

}  // namespace cvqkd::links
