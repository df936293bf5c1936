#pragma once
// The relay actor: one per node. It owns the node's relay (a relay_core; node/ plugs in
// node::relay_host, i.e. relay::node over the key store's link pools) and carries its bytes to the
// relay actors of the neighbouring nodes on a channel of its own (interfaces.hpp), so relay
// traffic never waits behind a link actor that is decoding. For each link it is the bob end of, it
// dials the neighbour's node endpoint and authenticates with a signed hello on channel "relay"
// (backoff with jitter while the neighbour is down); for the links it is the alice end of, its own
// endpoint tells it when the neighbour's relay actor authenticated.
//
// A link is up for routing while both its relay channel and its QKD link (the link actor's peer)
// are connected; the relay actor polls the supervisor for the latter and for the key rate of the
// last round (key bits / round seconds), which the relay advertises in its link-state ads.

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/expected.hpp>

#include "actors/interfaces.hpp"
#include "actors/node_actors.hpp"
#include "core/error.hpp"

namespace cvqkd::actors {

/// Where the relay core's bytes go (the relay actor).
class relay_outbox {
public:
  virtual ~relay_outbox() = default;
  /// Bytes for neighbour node `to`; fire and forget (the relay's own timeouts cover loss).
  virtual void send(const std::string& to, std::vector<std::byte> bytes) = 0;
};

/// The relay as the actor drives it: a single-threaded state machine (node/: node::relay_host).
/// Times are microseconds of std::chrono::steady_clock.
class relay_core {
public:
  using time_point = std::chrono::microseconds;
  /// The outcome of provide(): the key IDs (UUID text) made ready for the master, or why not.
  using provide_done = std::function<void(expected<std::vector<std::string>>)>;
  virtual ~relay_core() = default;
  virtual void receive(const std::string& neighbour, std::span<const std::byte> bytes, time_point now) = 0;
  virtual void tick(time_point now) = 0;
  virtual void link_up(const std::string& neighbour, double key_rate_bps, time_point now) = 0;
  virtual void link_down(const std::string& neighbour, time_point now) = 0;
  /// Calls `done` exactly once, now or from a later receive()/tick().
  virtual void provide(const relay_provide& request, provide_done done, time_point now) = 0;
  /// The routing view as JSON text.
  virtual std::string routes_json() const = 0;
  /// Counters for the actor's status.
  virtual std::map<std::string, std::uint64_t> counters() const = 0;
};

/// One link of this node as the relay sees it.
struct relay_link_config {
  std::string link_id, neighbour;
  bool bob_end = false;      // this node dials the neighbour's endpoint
  std::string peer_host;     // bob end: the neighbour's [node] listen
  std::uint16_t peer_port = 0;
};

struct relay_actor_config {
  std::string node_id;
  std::vector<relay_link_config> links;
  node_identity identity;
  /// Builds the relay core over the outbox the actor gives it (node/: a relay_host).
  std::function<expected<std::unique_ptr<relay_core>>(relay_outbox& out)> make_core;
  /// Connects to a neighbour's node endpoint; blocking (node/: caf::openssl::remote_actor).
  std::function<caf::expected<node_endpoint_actor>(const std::string& host, std::uint16_t port)> dial;
  node_endpoint_local_actor endpoint;  // registered with, so that it forwards relay bytes here
  supervisor_actor supervisor;         // polled for the links' status
  std::chrono::milliseconds tick_every{5};
  std::chrono::milliseconds poll_every{200};
  std::chrono::milliseconds dial_initial{250};
  std::chrono::milliseconds dial_max{10'000};
  std::chrono::milliseconds hello_timeout{10'000};
};

/// Spawns the relay actor (detached: its own thread; tests on the deterministic coordinator pass
/// false). A core that cannot be built makes the actor exit with that error.
relay_actor spawn_relay(caf::actor_system& sys, relay_actor_config config, bool detached);

}  // namespace cvqkd::actors
