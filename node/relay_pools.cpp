#include "node/relay_pools.hpp"

namespace cvqkd::node {

namespace {
constexpr unsigned offset_bits = 25;  // > log2(16 MiB): a block's end position fits
constexpr std::uint64_t offset_mask = (std::uint64_t{1} << offset_bits) - 1;
}  // namespace

std::uint64_t encode_offset(const storage::pool_position& p) noexcept { return p.seq << offset_bits | p.offset; }

storage::pool_position decode_offset(std::uint64_t offset) noexcept {
  return {offset >> offset_bits, static_cast<std::uint32_t>(offset & offset_mask)};
}

void store_key_pools::add_link(const relay::node_id& neighbour, const std::string& link_id, links::role self) {
  links_[neighbour] = link{link_id, self};
}

const store_key_pools::link* store_key_pools::find(const relay::node_id& neighbour) const {
  auto it = links_.find(neighbour);
  return it == links_.end() ? nullptr : &it->second;
}

storage::pool_id store_key_pools::pool(const link& l, relay::stream s) const {
  const bool outgoing = s == relay::stream::outgoing;
  const bool forward = (l.self == links::role::alice) == outgoing;
  return {l.id, forward ? storage::direction::forward : storage::direction::reverse};
}

std::uint64_t store_key_pools::available(const relay::node_id& neighbour, relay::stream s) const {
  const auto* l = find(neighbour);
  if (!l) return 0;
  auto st = store_.status(pool(*l, s));
  return st ? st->available_bits / 8 : 0;
}

expected<relay::taken_key> store_key_pools::take_next(const relay::node_id& neighbour, std::size_t bytes) {
  const auto* l = find(neighbour);
  if (!l) return fail(errc::invalid_argument, "no link to " + neighbour + " at this node");
  auto t = store_.take(pool(*l, relay::stream::outgoing), 8 * static_cast<std::uint64_t>(bytes));
  if (!t) return std::unexpected(t.error());
  return relay::taken_key{relay::pool_range{encode_offset(t->start), bytes}, std::move(t->bytes)};
}

expected<secure_buffer> store_key_pools::take_at(const relay::node_id& neighbour, relay::pool_range r) {
  const auto* l = find(neighbour);
  if (!l) return fail(errc::invalid_argument, "no link to " + neighbour + " at this node");
  auto t = store_.take_at(pool(*l, relay::stream::incoming), decode_offset(r.offset), 8 * r.bytes);
  if (!t) return std::unexpected(t.error());
  return std::move(t->bytes);
}

void store_key_pools::discard_incoming(const relay::node_id& neighbour, relay::pool_range r) {
  const auto* l = find(neighbour);
  if (!l) return;
  // Behind the head: consumed already. Not arrived yet: the next take beyond it burns it.
  (void)store_.take_at(pool(*l, relay::stream::incoming), decode_offset(r.offset), 8 * r.bytes);
}

void store_key_pools::discard_incoming_below(const relay::node_id& neighbour, std::uint64_t cursor) {
  const auto* l = find(neighbour);
  if (!l) return;
  (void)store_.take_at(pool(*l, relay::stream::incoming), decode_offset(cursor), 0);
}

std::uint64_t store_key_pools::outgoing_cursor(const relay::node_id& neighbour) const {
  const auto* l = find(neighbour);
  if (!l) return 0;
  auto st = store_.status(pool(*l, relay::stream::outgoing));
  if (!st) return 0;
  if (st->head) return encode_offset(*st->head);
  return encode_offset({st->next_seq.value_or(0), 0});
}

}  // namespace cvqkd::node
