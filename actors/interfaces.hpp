#pragma once
// Every typed actor interface of a cvqkd node, with a one-line comment per handler. Mocks in the
// tests implement these same types, so the compiler keeps them in sync.
//
// Data path of link L between node A (alice end, listens) and node B (bob end, dials):
//   B's link actor --hello/link_bytes--> A's node endpoint --link_bytes--> A's link actor
//   A's link actor --link_bytes--> B's link actor (the proxy that completed the hello)
// A's endpoint accepts link_bytes for L only from the actor that completed the hello for L; B's
// link actor accepts them only from actors on the node it dialled and authenticated.
//
// Relay traffic between A and B takes the same shape on its own channel (hello channel "relay"),
// so that it never queues behind a link actor that is busy decoding:
//   B's relay actor --hello/relay_bytes--> A's node endpoint --relay_bytes--> A's relay actor
//   A's relay actor --relay_bytes--> B's relay actor

#include <cstdint>
#include <string>

#include <caf/replies_to.hpp>
#include <caf/typed_actor.hpp>

#include "actors/inspect.hpp"
#include "actors/messages.hpp"
#include "actors/type_ids.hpp"

namespace cvqkd::actors {

/// Anything that takes engine bytes (the peer's link actor, as the other end sees it).
using link_bytes_sink = caf::typed_actor<caf::reacts_to<link_bytes>>;

/// Anything that takes relay bytes (the neighbour's endpoint or relay actor).
using relay_bytes_sink = caf::typed_actor<caf::reacts_to<relay_bytes>>;

/// The one actor each node publishes on [node] listen; exactly this interface is visible remotely.
using node_endpoint_actor = caf::typed_actor<
  // Peer authentication, step 1 (from a dialling link actor): checks the certificate and the
  // configured peer, answers with this node's certificate, nonce and signature.
  caf::replies_to<hello_atom, hello_request>::with<hello_reply>,
  // Step 2: checks the dialler's signature; from then on its link_bytes for that link are accepted.
  caf::replies_to<hello_atom, hello_finish>::with<bool>,
  // Engine bytes from the authenticated peer of a link: forwarded to the link actor, else dropped.
  caf::reacts_to<link_bytes>,
  // Relay bytes from the authenticated relay peer of a link: forwarded to the relay actor.
  caf::reacts_to<relay_bytes>,
  // Every link of this node (the operator's `cvqkd node status`).
  caf::replies_to<status_atom>::with<node_status>>;

/// The endpoint as its own node sees it: the published interface plus local wiring (handlers
/// below refuse senders from other nodes).
using node_endpoint_local_actor = node_endpoint_actor::extend<
  // Link `link_id` is now served by this link actor (the supervisor, after every (re)spawn).
  caf::reacts_to<register_atom, std::string, caf::actor>,
  // This node's relay actor (the runtime, once).
  caf::reacts_to<relay_atom, caf::actor>,
  // The endpoint's own state and counters.
  caf::replies_to<report_atom>::with<actor_status>>;

/// One link end: runs a links::link_engine on its own thread.
using link_actor = caf::typed_actor<
  // Engine bytes from the peer's engine (alice end: via the endpoint; bob end: from the peer).
  caf::reacts_to<link_bytes>,
  // Pump: one engine step, then re-queue (self-sent).
  caf::reacts_to<step_atom>,
  // Pump after an idle pause of ~50 ms (self-sent, delayed).
  caf::reacts_to<tick_atom>,
  // Bob end: dial and authenticate the peer's endpoint (self-sent, with backoff).
  caf::reacts_to<dial_atom>,
  // Alice end: the endpoint authenticated the peer; bytes go to this actor from now on.
  caf::reacts_to<peer_up_atom, caf::actor>,
  // Alice end: the peer's connection is gone (the round in progress is aborted).
  caf::reacts_to<peer_down_atom, std::string>,
  // Engine status plus link configuration.
  caf::replies_to<status_atom>::with<link_status>,
  // Drill faults from the supervisor (local only): applies this end's part at once; all zero clears.
  caf::reacts_to<drill_atom, link_faults>,
  // Graceful stop: abort the round, tell the peer, reply, quit.
  caf::replies_to<stop_atom>::with<bool>>;

/// Owns the link actors: spawns them, restarts failed ones with backoff, keeps their status.
using supervisor_actor = caf::typed_actor<
  // Spawns every configured link and registers each with this endpoint.
  caf::reacts_to<start_atom, node_endpoint_local_actor>,
  // A link actor's periodic status report.
  caf::reacts_to<link_status>,
  // Respawns a failed link (self-sent after the backoff delay).
  caf::reacts_to<restart_atom, std::string>,
  // Every link's last known status and health.
  caf::replies_to<status_atom>::with<node_status>,
  // The supervisor's own state and counters.
  caf::replies_to<report_atom>::with<actor_status>,
  // Stops every link gracefully; replies once all are gone (or after a timeout).
  caf::replies_to<stop_atom>::with<bool>,
  // Drill (operator) on link `link`: "cut-link" stops the link and keeps it down (a fibre cut, as
  // this end sees it); "inject-fault" applies the link_faults (validate_faults) to the link actor,
  // now and after every restart; "restore-link" ends either. Replies with what was done.
  caf::replies_to<drill_atom, std::string, std::string, link_faults>::with<std::string>>;

/// The node's relay: routing and hop-by-hop one-time-pad relay of end-to-end keys (relay/),
/// talking to the relay actors of the neighbouring nodes. Spawned detached (key-store writes sync).
using relay_actor = caf::typed_actor<
  // Relay bytes from a neighbour (alice end of the link: via this node's endpoint; bob end: from
  // the neighbour's relay actor).
  caf::reacts_to<relay_bytes>,
  // Timers of the relay state machine (self-sent, every few ms).
  caf::reacts_to<tick_atom>,
  // Dial the neighbours this node is the bob end towards (self-sent, with backoff).
  caf::reacts_to<dial_atom>,
  // Alice end of link L: the endpoint authenticated the neighbour's relay actor.
  caf::reacts_to<peer_up_atom, std::string, caf::actor>,
  // Alice end of link L: the neighbour's relay actor is gone.
  caf::reacts_to<peer_down_atom, std::string, std::string>,
  // The links' status (polled from the supervisor): a link is usable while its peer is connected.
  caf::reacts_to<links_atom, node_status>,
  // Keys for an ETSI request, made ready in this node's store once every slave's KME holds them.
  caf::replies_to<relay_provide>::with<relay_keys>,
  // The routing view as JSON text (for /admin/routes).
  caf::replies_to<routes_atom>::with<std::string>,
  // The actor's own state and counters.
  caf::replies_to<report_atom>::with<actor_status>>;

/// Wraps the node's storage::key_store for other actors (the API and relay use it later).
using key_store_actor = caf::typed_actor<
  // Available bits of a link's forward and reverse pools.
  caf::replies_to<status_atom, std::string>::with<std::uint64_t, std::uint64_t>,
  // The actor's own state and counters.
  caf::replies_to<report_atom>::with<actor_status>>;

}  // namespace cvqkd::actors
