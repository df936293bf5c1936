#pragma once
// The relay's view of the link pools (relay::link_key_source) over the node's key store. Each
// link's key is split by node/link_store.hpp into a forward pool (the Alice end's outgoing stream)
// and a reverse pool (the Bob end's outgoing stream), so the two ends of a link can start relays
// at the same time without ever drawing the same bytes.
//
// Stream offsets are key-store positions: offset = block sequence number << 25 | byte offset in
// the block (blocks hold at most 16 MiB). Both ends hold the same blocks, so a position names the
// same bytes at both. The store hands bytes out from the head only: taking a range burns every
// unused byte before it. That is what a relay needs when each link delivers its messages in
// order (one TLS connection per link): a range that arrives after a later one was taken belongs
// to a message that the sender never sent or that was lost, and its round has to be aborted.
// Bytes of the newest block can be missing at Alice's end for a moment (her last round is held
// until Bob's next round starts, links/engine.hpp): a relay drawing them fails with
// insufficient_data at her end and is retried, like any failed hop.

#include <map>
#include <memory>
#include <string>

#include "links/protocol.hpp"
#include "relay/types.hpp"
#include "storage/key_store.hpp"

namespace cvqkd::node {

/// Position <-> stream offset (see above).
std::uint64_t encode_offset(const storage::pool_position& p) noexcept;
storage::pool_position decode_offset(std::uint64_t offset) noexcept;

class store_key_pools final : public relay::link_key_source {
public:
  /// `store` must outlive this object.
  explicit store_key_pools(storage::key_store& store) : store_(store) {}
  /// Registers the link to `neighbour`: its ID and this node's role on it (Alice: the
  /// transmitter, whose outgoing stream is the forward pool).
  void add_link(const relay::node_id& neighbour, const std::string& link_id, links::role self);

  std::uint64_t available(const relay::node_id& neighbour, relay::stream s) const override;
  expected<relay::taken_key> take_next(const relay::node_id& neighbour, std::size_t bytes) override;
  expected<secure_buffer> take_at(const relay::node_id& neighbour, relay::pool_range r) override;
  void discard_incoming(const relay::node_id& neighbour, relay::pool_range r) override;
  void discard_incoming_below(const relay::node_id& neighbour, std::uint64_t cursor) override;
  std::uint64_t outgoing_cursor(const relay::node_id& neighbour) const override;

private:
  struct link {
    std::string id;
    links::role self;
  };
  const link* find(const relay::node_id& neighbour) const;
  storage::pool_id pool(const link& l, relay::stream s) const;

  storage::key_store& store_;
  std::map<relay::node_id, link> links_;
};

}  // namespace cvqkd::node
