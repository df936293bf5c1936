#pragma once
// The link actor: one per configured link end. It owns a links::link_engine with its hardware,
// durable state and random source, pumps it with self-sent `step` messages (one engine.step()
// per message, so peer bytes and status requests interleave; an idle engine is polled every
// ~50 ms), carries the engine's bytes to and from the peer, and reports its status to the
// supervisor. The bob end dials and authenticates the peer's node endpoint (exponential backoff
// with jitter while the peer is down); the alice end waits for its endpoint's peer_up.
// Spawned detached (its own thread) in a node, so decoding never blocks the scheduler.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include <caf/actor_system.hpp>
#include <caf/expected.hpp>

#include "actors/interfaces.hpp"
#include "actors/node_actors.hpp"
#include "core/drbg.hpp"
#include "core/error.hpp"
#include "links/engine.hpp"

namespace cvqkd::actors {

/// The engine and what it runs on, built inside the actor (so a restart rebuilds everything).
struct link_parts {
  links::engine_config engine;
  std::unique_ptr<links::link_hardware> hardware;
  std::unique_ptr<links::link_state_store> store;
  std::unique_ptr<random_source> rng;
};

struct link_actor_config {
  link_summary summary;               // link ID, peer node ID, role ("alice" | "bob"), profile, N
  std::string peer_host;              // bob end: the peer's [node] listen
  std::uint16_t peer_port = 0;
  node_identity identity;             // bob end: signs the hello, checks the peer
  /// Builds the engine's collaborators (node/: the key store's link state, simulated hardware).
  std::function<expected<link_parts>()> make_parts;
  /// Bob end: connects to the peer's node endpoint; blocking (node/: caf::openssl::remote_actor).
  std::function<caf::expected<node_endpoint_actor>(const std::string& host, std::uint16_t port)> dial;
  supervisor_actor supervisor;        // receives periodic link_status reports
  std::chrono::milliseconds idle_poll{50};
  std::chrono::milliseconds report_every{250};
  std::chrono::milliseconds dial_initial{250};
  std::chrono::milliseconds dial_max{10'000};
  std::chrono::milliseconds hello_timeout{10'000};
  /// Detached only: the nice increment of the actor's thread (Linux: per thread); 0: unchanged.
  /// The node leaves it at 0: at nice 10 key generation starved whenever anything else ran on
  /// the machine (two-node rounds stalled for minutes beside a test suite).
  int background_nice = 0;
};

/// Spawns a link actor; `detached` gives it its own thread (always in a node; tests on the
/// deterministic coordinator pass false). Initialisation errors (make_parts, engine creation)
/// make the actor exit with that error, which the supervisor turns into a restart with backoff.
link_actor spawn_link(caf::actor_system& sys, link_actor_config config, bool detached);

}  // namespace cvqkd::actors
