#pragma once
// Vocabulary of the trusted-node relay: node names, time, route types, pool ranges and the
// interfaces through which the relay state machines reach the outside world (transport, link-key
// pools, the key store, the caller). The actors wrap these; tests inject in-memory versions.

#include <chrono>
#include <compare>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.hpp"
#include "core/secure_buffer.hpp"

namespace cvqkd::relay {

/// A trusted node's name (its site name; also what error messages print).
using node_id = std::string;

/// Monotonic time since an arbitrary epoch (virtual time in the simulator), and durations.
using duration = std::chrono::microseconds;
using time_point = std::chrono::microseconds;

/// How an end-to-end key travels (the ETSI 014 vendor extension `cvqkd_route_type`).
enum class route_type {
  direct,     // over the one link between source and destination; no trusted node in between
  relay,      // one-time pad hop by hop along the best single path (every transit node sees the key)
  multipath,  // k XOR shares over k node-disjoint paths: no single transit node sees the key
};

/// "direct", "relay" or "multipath".
std::string_view to_string(route_type t) noexcept;
/// Parses "direct" | "relay" | "multipath"; errc::invalid_argument naming the accepted values.
expected<route_type> parse_route_type(std::string_view text);

/// A byte range [offset, offset + bytes) of one one-way key stream of a link.
struct pool_range {
  std::uint64_t offset = 0;
  std::uint64_t bytes = 0;
  std::uint64_t end() const noexcept { return offset + bytes; }
  friend bool operator==(const pool_range&, const pool_range&) = default;
};

/// Link key a hop consumes besides the one-time pad of the key: two Wegman–Carter keys of
/// 16 bytes (8-byte hash key + 8-byte one-time pad for the tag), one for the forward key
/// message and one for the completion message that comes back over the same hop.
inline constexpr std::size_t hop_auth_key_bytes = 32;

/// Which one-way key stream of a link, seen from this node. Each link's pool is split into two
/// streams (a→b and b→a), so that both ends can start relays at the same time without ever
/// drawing the same bytes: the sender of a hop message draws from its outgoing stream at its own
/// cursor, the message names the range, and the receiver takes exactly that range.
enum class stream { outgoing, incoming };

/// A range just drawn from an outgoing stream, and its bytes.
struct taken_key {
  pool_range range;
  secure_buffer bytes;
};

/// The link-key pools of one node (in production: the key store; in tests: memory_key_pools).
/// Both ends of a link hold the same two streams. Every byte is handed out at most once per end.
class link_key_source {
public:
  virtual ~link_key_source() = default;
  /// Bytes this end can still use in stream `s` of its link to `neighbour` (0 for no link).
  virtual std::uint64_t available(const node_id& neighbour, stream s) const = 0;
  /// The next `bytes` of the outgoing stream to `neighbour`; this end's cursor moves past them.
  /// errc::insufficient_data when the pool holds fewer bytes (wait for the link or route elsewhere).
  virtual expected<taken_key> take_next(const node_id& neighbour, std::size_t bytes) = 0;
  /// Exactly range `r` of the incoming stream from `neighbour`, as named by the peer's message.
  /// errc::invalid_argument if any byte of `r` was already taken or discarded at this end (a
  /// replay or duplicate), errc::insufficient_data if `r` is not in the pool yet.
  virtual expected<secure_buffer> take_at(const node_id& neighbour, pool_range r) = 0;
  /// Burns range `r` of the incoming stream at this end (bytes already consumed stay consumed):
  /// the peer drew it for a message that was aborted, so it must never be accepted later.
  virtual void discard_incoming(const node_id& neighbour, pool_range r) = 0;
  /// Burns every not yet consumed byte of the incoming stream below `cursor` (the peer's
  /// outgoing cursor, exchanged when the link comes back after an outage).
  virtual void discard_incoming_below(const node_id& neighbour, std::uint64_t cursor) = 0;
  /// This end's cursor in its outgoing stream to `neighbour` (the first byte never handed out).
  virtual std::uint64_t outgoing_cursor(const node_id& neighbour) const = 0;
};

/// Where delivered end-to-end keys go (in production: the key store behind the ETSI 014 API).
class key_sink {
public:
  virtual ~key_sink() = default;
  /// Stores the end-to-end key `key_id` shared with node `peer`. The destination calls it when the
  /// last share has arrived (replacing a key of an earlier attempt under the same ID); the source
  /// calls it once the destination has confirmed. An error aborts the round.
  virtual expected<void> store(const std::string& key_id, const node_id& peer, secure_buffer key) = 0;
  /// Withdraws a key the destination stored for a round that the source then aborted.
  virtual void revoke(const std::string& key_id, const node_id& peer) = 0;
};

/// The outcome of one relay request at its source.
struct relay_result {
  std::string key_id;
  node_id destination;
  route_type type = route_type::relay;
  unsigned attempts = 0;                      // rounds started (1 = no retry)
  std::vector<std::vector<node_id>> paths;    // the paths of the last round (source first)
  std::optional<error> failure;               // empty: committed (the key is in both sinks)
};

/// Told about every request's outcome, exactly once per accepted request.
class relay_listener {
public:
  virtual ~relay_listener() = default;
  virtual void on_result(const relay_result& result) = 0;
};

}  // namespace cvqkd::relay
