#pragma once
// Messages exchanged between neighbouring trusted nodes (always over one link), and the transport
// interface through which a node sends them. In deployment the actors carry them over mutually
// authenticated TLS; the Wegman–Carter tags on key and completion messages make the relay's
// integrity independent of that channel.

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include "relay/types.hpp"

namespace cvqkd::relay {

/// One link as its owner reports it in a link-state advertisement.
struct link_report {
  node_id neighbour;
  bool up = false;
  std::uint64_t available_bits = 0;  // the owner's outgoing stream towards `neighbour`
  double key_rate_bps = 0.0;         // secret-key creation rate of the link (bit/s)
  friend bool operator==(const link_report&, const link_report&) = default;
};

/// Link-state advertisement, flooded to every node (in the spirit of OSPF and of the NICT Tokyo
/// QKD network's routing: routes chosen by stored key and key creation rate). A receiver keeps
/// the one with the highest `sequence` per origin; ads older than the maximum age are dropped.
struct link_state_ad {
  node_id origin;
  std::uint64_t sequence = 0;
  std::uint32_t age_ms = 0;  // age when sent (grows by the time held at each node + 1 ms per hop)
  std::vector<link_report> links;
};

/// Identifies one share of one round ("attempt") of one relay request.
struct share_ref {
  node_id source;
  std::string key_id;
  std::uint32_t attempt = 0;
  std::uint32_t share_index = 0;
  std::uint32_t share_count = 1;
  friend auto operator<=>(const share_ref&, const share_ref&) = default;
};

/// A key share one-time-pad encrypted for the hop path[hop] -> path[hop + 1]. `range` names the
/// bytes of that link's stream path[hop] -> path[hop + 1]: the first `ciphertext.size()` are the
/// pad, the next 16 the Wegman–Carter key of `tag`, the last 16 that of the completion message.
struct relay_key {
  share_ref ref;
  std::vector<node_id> path;  // source first, destination last, no node twice
  std::uint32_t hop = 0;
  pool_range range;
  secure_buffer ciphertext;
  std::uint64_t tag = 0;
};

/// The destination's confirmation, travelling path[hop + 1] -> path[hop], tagged with the
/// completion key of that hop's range.
struct relay_done {
  share_ref ref;
  std::vector<node_id> path;
  std::uint32_t hop = 0;
  pool_range range;
  std::uint64_t tag = 0;
};

enum class abort_reason {
  timeout,         // no answer in time
  link_down,       // a link of the path went down
  pool_exhausted,  // a hop's link pool could not supply the key
  auth_failure,    // a Wegman–Carter tag did not verify (tampering or corruption)
  bad_message,     // malformed or inconsistent message (wrong path, share count...)
  store_failed,    // the destination's key store refused the key
  superseded,      // a newer round of the same request exists
  cancelled,       // the source gave the round up
};
std::string_view to_string(abort_reason r) noexcept;

/// Ends a round along its path, in either direction. `range` (when known) is the hop's range of
/// the link it travels over; the receiver burns it. Not tagged: a forged abort can only stop a
/// round (denial of service, which an attacker on the line has anyway).
struct relay_abort {
  share_ref ref;
  std::vector<node_id> path;
  std::uint32_t hop = 0;
  bool downstream = true;  // true: path[hop] -> path[hop + 1]; false: path[hop + 1] -> path[hop]
  std::optional<pool_range> range;
  abort_reason reason = abort_reason::cancelled;
  node_id reported_by;             // the node that detected the failure
  std::optional<node_id> culprit;  // the node it blames (for a link: the far end)
};

/// Sent when a link comes up: the sender's outgoing cursor. The receiver burns every byte of its
/// incoming stream below it that it never received (messages lost in the outage).
struct pool_sync {
  std::uint64_t outgoing_cursor = 0;
};

using message = std::variant<link_state_ad, relay_key, relay_done, relay_abort, pool_sync>;

/// An explicit deep copy (messages carry key material and are move-only).
message clone(const message& m);

/// Canonical bytes that the tag of a relay_key covers (every field but the tag).
std::vector<std::byte> authenticated_bytes(const relay_key& m);
/// Canonical bytes that the tag of a relay_done covers.
std::vector<std::byte> authenticated_bytes(const relay_done& m);

/// Sends messages to neighbours. Fire and forget: delivery may fail silently (the relay's
/// timeouts cover that); must not call back into the node synchronously.
class transport {
public:
  virtual ~transport() = default;
  virtual void send(const node_id& neighbour, message m) = 0;
};

}  // namespace cvqkd::relay
