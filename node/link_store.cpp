#include "node/link_store.hpp"

#include <cstring>

namespace cvqkd::node {
namespace {

using storage::direction;
using storage::pool_id;

// A held round: u64 key length (LE), key, reserve.
secure_buffer pack_held(const secure_buffer& key, const secure_buffer& reserve) {
  secure_buffer out(8 + key.size() + reserve.size());
  const std::uint64_t n = key.size();
  for (int i = 0; i < 8; ++i) out.data()[i] = static_cast<std::byte>(n >> (8 * i));
  if (!key.empty()) std::memcpy(out.data() + 8, key.data(), key.size());
  if (!reserve.empty()) std::memcpy(out.data() + 8 + key.size(), reserve.data(), reserve.size());
  return out;
}

class store_link_state final : public links::link_state_store {
public:
  store_link_state(storage::key_store& s, const std::string& link)
    : s_(s), fwd_{link, direction::forward}, rev_{link, direction::reverse}, auth_{link + "/auth", direction::forward},
      held_{link + "/held", direction::forward} {}

  expected<void> bootstrap(std::span<const std::byte> psk) {
    auto a = s_.status(auth_);
    if (!a) return std::unexpected(a.error());
    if (a->next_seq) return {};  // commissioned before: the secret is not used again
    if (psk.size() < 2 * links::round_auth_budget)
      return fail(errc::invalid_argument, "the link's pre-shared secret is too short (" + std::to_string(psk.size()) +
                                            " bytes); issue a new one with `cvqkd pki issue --link`");
    auto r = s_.append_block(auth_, 0, psk);
    if (!r) return std::unexpected(r.error());
    return {};
  }

  expected<std::uint64_t> committed_round() override {
    auto a = s_.status(auth_);
    if (!a) return std::unexpected(a.error());
    return a->next_seq && *a->next_seq > 0 ? *a->next_seq - 1 : 0;
  }

  expected<void> commit(std::uint64_t round, const secure_buffer& key, const secure_buffer& reserve) override {
    if (round == 0) return fail(errc::invalid_argument, "round 0 is the commissioning secret; rounds start at 1");
    std::vector<storage::key_store::block_append> blocks;
    // The key's two halves feed the two directions (the relay's two one-way streams).
    const auto half = key.size() / 2;
    if (half > 0) {
      blocks.push_back({fwd_, round, key.bytes().first(half)});
      blocks.push_back({rev_, round, key.bytes().subspan(half)});
    }
    // The auth block marks the round committed, so it is never empty.
    static constexpr std::byte marker[1] = {std::byte{0}};
    blocks.push_back({auth_, round, reserve.empty() ? std::span<const std::byte>(marker) : reserve.bytes()});
    auto r = s_.append_blocks(blocks);
    if (!r) return std::unexpected(r.error());
    return {};
  }

  expected<void> hold(std::uint64_t round, const secure_buffer& key, const secure_buffer& reserve) override {
    auto h = held_round();
    if (!h) return std::unexpected(h.error());
    if (*h && **h != round) return fail(errc::invalid_argument, "a round is already held; settle it first");
    auto r = s_.append_block(held_, round, pack_held(key, reserve).bytes());
    if (!r) return std::unexpected(r.error());
    return {};
  }

  expected<std::optional<std::uint64_t>> held_round() override {
    auto h = s_.status(held_);
    if (!h) return std::unexpected(h.error());
    if (!h->head) return std::optional<std::uint64_t>{};
    auto c = committed_round();
    if (!c) return std::unexpected(c.error());
    if (h->head->seq <= *c) {  // committed already (a crash between commit and clean-up)
      if (auto t = s_.take(held_, h->available_bits); !t) return std::unexpected(t.error());
      return std::optional<std::uint64_t>{};
    }
    return std::optional<std::uint64_t>{h->head->seq};
  }

  expected<void> settle_held(bool commit_it) override {
    auto h = s_.status(held_);
    if (!h) return std::unexpected(h.error());
    if (!h->head) return {};
    const auto round = h->head->seq;
    if (commit_it) {
      // Commit first (idempotent), then remove the held copy: a crash in between leaves a held
      // block at or below the committed round, which held_round() cleans up.
      auto t = s_.peek(held_, h->available_bits);
      if (!t) return std::unexpected(t.error());
      const auto& packed = t->bytes;
      if (packed.size() < 8) return fail(errc::parse_error, "the held round's record is damaged; re-commission the link");
      std::uint64_t n = 0;
      for (int i = 0; i < 8; ++i) n |= std::to_integer<std::uint64_t>(packed.data()[i]) << (8 * i);
      if (n > packed.size() - 8) return fail(errc::parse_error, "the held round's record is damaged; re-commission the link");
      secure_buffer key(packed.bytes().subspan(8, n));
      secure_buffer reserve(packed.bytes().subspan(8 + n));
      if (auto ok = commit(round, key, reserve); !ok) return ok;
    }
    auto t = s_.take(held_, h->available_bits);
    if (!t) return std::unexpected(t.error());
    return {};
  }

  expected<links::auth_position> auth_head() override {
    auto a = s_.status(auth_);
    if (!a) return std::unexpected(a.error());
    if (!a->head) return fail(errc::no_secret_key, "the authentication pool of link " + fwd_.link_id + " is empty");
    return links::auth_position{a->head->seq, a->head->offset};
  }

  expected<secure_buffer> take_auth(links::auth_position from, std::size_t bytes) override {
    auto t = s_.take_at(auth_, storage::pool_position{from.block, from.offset}, 8 * bytes);
    if (!t) {
      if (t.error().code == errc::insufficient_data) return fail(errc::no_secret_key, t.error().message);
      return std::unexpected(t.error());
    }
    return std::move(t->bytes);
  }

  expected<std::uint64_t> pool_bits() override {
    auto f = s_.status(fwd_);
    if (!f) return std::unexpected(f.error());
    auto r = s_.status(rev_);
    if (!r) return std::unexpected(r.error());
    return f->available_bits + r->available_bits;
  }

private:
  storage::key_store& s_;
  pool_id fwd_, rev_, auth_, held_;
};

}  // namespace

expected<std::unique_ptr<links::link_state_store>> open_link_state(storage::key_store& store, const std::string& link_id,
                                                                   std::span<const std::byte> pre_shared_secret) {
  if (link_id.empty()) return fail(errc::invalid_argument, "a link needs an ID");
  auto s = std::make_unique<store_link_state>(store, link_id);
  if (auto ok = s->bootstrap(pre_shared_secret); !ok) return std::unexpected(ok.error());
  return std::unique_ptr<links::link_state_store>(std::move(s));
}

}  // namespace cvqkd::node
