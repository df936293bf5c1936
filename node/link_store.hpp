#pragma once
// The durable state of a link end (links::link_state_store) in the node's key store.
// Pools of link `L` (storage::pool_id):
//   {L, forward} / {L, reverse}  the link's key: each committed round's key is split in two halves,
//                                the first to forward (Alice -> Bob use), the second to reverse
//   {L + "/auth", forward}       authentication key: block 0 the commissioned pre-shared secret,
//                                block r the reserve of round r
//   {L + "/held", forward}       Alice's held round (key and reserve), until Bob is known to
//                                have committed it
// A round is committed with one atomic batch (storage::key_store::append_blocks), so a crash
// leaves either all of its blocks or none; committed_round() is the auth pool's high-water mark.

#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "core/error.hpp"
#include "links/engine.hpp"
#include "storage/key_store.hpp"

namespace cvqkd::node {

/// Opens link `link_id`'s durable state in `store` (which must outlive it). On the first open
/// (the auth pool never held a block) `pre_shared_secret` (>= 2 * links::round_auth_budget bytes)
/// becomes auth block 0; later opens ignore it, so a commissioned secret is used once.
/// Errors: invalid_argument (empty link ID or a too short secret on first open), io_error.
expected<std::unique_ptr<links::link_state_store>> open_link_state(storage::key_store& store, const std::string& link_id,
                                                                   std::span<const std::byte> pre_shared_secret);

}  // namespace cvqkd::node
