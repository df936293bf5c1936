#include "relay/memory_pool.hpp"

#include <openssl/crypto.h>

#include <algorithm>
#include <cstring>

namespace cvqkd::relay {

struct memory_key_pools::stream_state {
  stream_state(std::uint64_t seed, const node_id& from, const node_id& to)
    : drbg(seed, "relay-pool:" + from + ">" + to) {}
  ~stream_state() {
    if (!content.empty()) OPENSSL_cleanse(content.data(), content.size());
  }
  seeded_drbg drbg;
  std::vector<std::byte> content;
  std::uint64_t sender_cursor = 0;
  // Receiver: disjoint consumed (taken or burnt) intervals, offset -> end.
  std::map<std::uint64_t, std::uint64_t> consumed;
  std::uint64_t consumed_bytes = 0;

  bool overlaps(pool_range r) const {
    auto it = consumed.upper_bound(r.offset);
    if (it != consumed.begin() && std::prev(it)->second > r.offset) return true;
    return it != consumed.end() && it->first < r.end();
  }
  // Marks [lo, hi) consumed; returns the sub-ranges that were not consumed before.
  std::vector<pool_range> consume(std::uint64_t lo, std::uint64_t hi) {
    std::vector<pool_range> fresh;
    if (lo >= hi) return fresh;
    auto it = consumed.upper_bound(lo);
    if (it != consumed.begin() && std::prev(it)->second >= lo) --it;
    std::uint64_t new_lo = lo, new_hi = hi, cursor = lo;
    while (it != consumed.end() && it->first <= hi) {
      if (it->first > cursor) fresh.push_back({cursor, it->first - cursor});
      cursor = std::max(cursor, it->second);
      new_lo = std::min(new_lo, it->first);
      new_hi = std::max(new_hi, it->second);
      it = consumed.erase(it);
    }
    if (cursor < hi) fresh.push_back({cursor, hi - cursor});
    consumed.emplace(new_lo, new_hi);
    for (const auto& f : fresh) consumed_bytes += f.bytes;
    return fresh;
  }
};

class memory_key_pools::end_view final : public link_key_source {
public:
  end_view(memory_key_pools& pools, node_id self) : pools_(pools), self_(std::move(self)) {}

  std::uint64_t available(const node_id& neighbour, stream s) const override {
    if (s == stream::outgoing) {
      const auto* st = pools_.find(self_, neighbour);
      return st == nullptr ? 0 : st->content.size() - st->sender_cursor;
    }
    const auto* st = pools_.find(neighbour, self_);
    return st == nullptr ? 0 : st->content.size() - st->consumed_bytes;
  }

  expected<taken_key> take_next(const node_id& neighbour, std::size_t bytes) override {
    auto* st = pools_.find(self_, neighbour);
    if (st == nullptr)
      return fail(errc::invalid_argument, "no link key pool between " + self_ + " and " + neighbour + "; add the link first");
    if (st->content.size() - st->sender_cursor < bytes)
      return fail(errc::insufficient_data, "link key pool " + self_ + "->" + neighbour + " holds " +
                                             std::to_string(st->content.size() - st->sender_cursor) + " bytes, " +
                                             std::to_string(bytes) + " needed; wait for the link to produce key or route elsewhere");
    const pool_range r{st->sender_cursor, bytes};
    st->sender_cursor += bytes;
    pools_.log_.push_back({self_, neighbour, self_, op::take_next, r});
    return taken_key{r, secure_buffer{std::span{st->content}.subspan(r.offset, r.bytes)}};
  }

  expected<secure_buffer> take_at(const node_id& neighbour, pool_range r) override {
    auto* st = pools_.find(neighbour, self_);
    if (st == nullptr)
      return fail(errc::invalid_argument, "no link key pool between " + neighbour + " and " + self_ + "; add the link first");
    if (r.bytes == 0 || r.end() < r.offset || r.end() > st->content.size())
      return fail(errc::insufficient_data, "range [" + std::to_string(r.offset) + ", " + std::to_string(r.end()) +
                                             ") of pool " + neighbour + "->" + self_ + " is not in the pool yet; resynchronise the link");
    if (st->overlaps(r))
      return fail(errc::invalid_argument, "range [" + std::to_string(r.offset) + ", " + std::to_string(r.end()) +
                                            ") of pool " + neighbour + "->" + self_ + " was already used; the message is a replay or duplicate");
    st->consume(r.offset, r.end());
    pools_.log_.push_back({neighbour, self_, self_, op::take_at, r});
    return secure_buffer{std::span{st->content}.subspan(r.offset, r.bytes)};
  }

  void discard_incoming(const node_id& neighbour, pool_range r) override {
    auto* st = pools_.find(neighbour, self_);
    if (st == nullptr || r.bytes == 0) return;
    const std::uint64_t hi = std::min<std::uint64_t>(r.end(), st->content.size());
    for (const auto& f : st->consume(r.offset, hi)) pools_.log_.push_back({neighbour, self_, self_, op::discard, f});
  }

  void discard_incoming_below(const node_id& neighbour, std::uint64_t cursor) override {
    auto* st = pools_.find(neighbour, self_);
    if (st == nullptr) return;
    const std::uint64_t hi = std::min<std::uint64_t>(cursor, st->content.size());
    for (const auto& f : st->consume(0, hi)) pools_.log_.push_back({neighbour, self_, self_, op::discard, f});
  }

  std::uint64_t outgoing_cursor(const node_id& neighbour) const override {
    const auto* st = pools_.find(self_, neighbour);
    return st == nullptr ? 0 : st->sender_cursor;
  }

private:
  memory_key_pools& pools_;
  node_id self_;
};

memory_key_pools::memory_key_pools(std::uint64_t seed) : seed_(seed) {}
memory_key_pools::~memory_key_pools() = default;

memory_key_pools::stream_state* memory_key_pools::find(const node_id& from, const node_id& to) const {
  const auto it = streams_.find({from, to});
  return it == streams_.end() ? nullptr : it->second.get();
}

void memory_key_pools::fill(const node_id& a, const node_id& b, std::size_t bytes) {
  fill_stream(a, b, bytes);
  fill_stream(b, a, bytes);
}

void memory_key_pools::fill_stream(const node_id& from, const node_id& to, std::size_t bytes) {
  auto& slot = streams_[{from, to}];
  if (!slot) slot = std::make_unique<stream_state>(seed_, from, to);
  auto& c = slot->content;
  const std::size_t old = c.size();
  if (c.capacity() < old + bytes) {
    // Grow by hand so that the old buffer is cleansed, not just freed.
    std::vector<std::byte> bigger;
    bigger.reserve(std::max(old + bytes, 2 * old));
    bigger.insert(bigger.end(), c.begin(), c.end());
    if (!c.empty()) OPENSSL_cleanse(c.data(), c.size());
    c.swap(bigger);
  }
  c.resize(old + bytes);
  slot->drbg.fill(std::span{c}.subspan(old));
}

link_key_source& memory_key_pools::end(const node_id& n) {
  auto& slot = ends_[n];
  if (!slot) slot = std::make_unique<end_view>(*this, n);
  return *slot;
}

std::uint64_t memory_key_pools::remaining(const node_id& from, const node_id& to, const node_id& at) const {
  const auto* st = find(from, to);
  if (st == nullptr) return 0;
  return at == from ? st->content.size() - st->sender_cursor : st->content.size() - st->consumed_bytes;
}

std::uint64_t memory_key_pools::unclaimed_below(const node_id& from, const node_id& to, std::uint64_t below) const {
  const auto* st = find(from, to);
  if (st == nullptr) return 0;
  std::uint64_t claimed = 0;
  for (const auto& [lo, hi] : st->consumed) {
    if (lo >= below) break;
    claimed += std::min(hi, below) - lo;
  }
  return below - claimed;
}

secure_buffer memory_key_pools::peek(const node_id& from, const node_id& to, pool_range r) const {
  const auto* st = find(from, to);
  if (st == nullptr || r.end() > st->content.size()) return {};
  return secure_buffer{std::span{st->content}.subspan(r.offset, r.bytes)};
}

}  // namespace cvqkd::relay
