#pragma once
// The plain structs that actors exchange, locally and between nodes. No CAF here (node/'s CLI
// prints them); their `inspect` overloads are in actors/inspect.hpp, their type IDs and names in
// actors/type_ids.hpp.

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace cvqkd::actors {

/// One chunk of the link engine's opaque bytes (links::wire), addressed to the peer's engine of
/// link `link_id`.
struct link_bytes {
  std::string link_id;
  std::vector<std::uint8_t> bytes;
};

/// Step 1 of peer authentication, from the dialling (bob) end of link `link_id` to the peer's
/// node endpoint: who I am, my certificate, my fresh nonce.
struct hello_request {
  std::string link_id;
  std::string node_id;
  std::string certificate_pem;
  std::vector<std::uint8_t> nonce;
  /// "link" (the link actor's engine bytes) or "relay" (the relay actor's bytes to this
  /// neighbour); part of the signed transcript, so a hello cannot be replayed on the other channel.
  std::string channel = "link";
};

/// The endpoint's answer: who it is, its certificate, its nonce, and its signature over the
/// transcript (hello_transcript with the "alice" tag).
struct hello_reply {
  std::string node_id;
  std::string certificate_pem;
  std::vector<std::uint8_t> nonce;
  std::vector<std::uint8_t> signature;
};

/// Step 2: the dialler's signature over the same transcript with the "bob" tag.
struct hello_finish {
  std::string link_id;
  std::vector<std::uint8_t> signature;
  std::string channel = "link";  // as in the hello_request
};

/// Relay bytes (relay/wire.hpp) between the relay actors of the two nodes of link `link_id`.
struct relay_bytes {
  std::string link_id;
  std::vector<std::uint8_t> bytes;
};

/// An ETSI 014 key request handed to the relay actor: `number` keys of `size_bits` bits for
/// `master_sae` and `slaves` (all served by one KME). `route`: "" (default), "direct", "relay" or
/// "multipath" (the cvqkd_route_type extension); `route_mandatory` as in the request.
struct relay_provide {
  std::string master_sae;
  std::vector<std::string> slaves;
  std::uint64_t number = 0;
  std::uint64_t size_bits = 0;
  std::string route;
  bool route_mandatory = false;
};

/// The key IDs (UUID text) the relay made ready for the master.
struct relay_keys {
  std::vector<std::string> ids;
};

/// What an operator sees of one link end (engine status plus link configuration), and the
/// supervisor's verdict: health "up" (rounds are running), "degraded" (alive, but the peer is
/// not connected or rounds abort), "down" (the link actor is not running; `reason` says why).
struct link_status {
  std::string link_id, peer, role, profile;
  std::string health = "down";
  std::string reason;
  std::string engine_state;          // links::engine_status::state as text
  bool peer_connected = false;
  std::uint64_t round = 0, committed_round = 0, symbols_done = 0, block_symbols = 0;
  std::uint64_t rounds_completed = 0, rounds_aborted = 0, key_bits_committed = 0, pool_bits = 0;
  std::uint64_t malformed_messages = 0, resends = 0, restarts = 0, rejected_messages = 0;
  std::string last_error;
  // The last finished round (has_last_round false: none yet).
  bool has_last_round = false;
  std::string last_round_outcome;    // done | aborted
  std::uint64_t last_key_bits = 0;
  double beta = 0, snr = 0, fer = 0, xi_hat = 0, xi_max = 0, transmittance_min = 0;
  double last_round_seconds = 0;
  std::string drill;                 // the fault drill in force on this link ("" when none)
};

/// A fault drill on one link (operations.md failure modes), sent to both ends' supervisors; each
/// link end applies the part that physically belongs to it: the fibre's faults at both ends (both
/// simulate the same channel), the receiver's at Bob's, the authentication key's at Alice's.
struct link_faults {
  std::string what;                  // the drill as the operator named it, with its parameters
  double excess_noise = 0.0;         // input-referred xi added on the fibre, SNU (both ends)
  double crosstalk_xi = 0.0;         // input-referred xi of WDM crosstalk (hw::crosstalk_excess_noise), SNU (both)
  double lo_drift = 0.0;             // extra LO phase Wiener step variance, rad^2 per symbol (both)
  double power_factor = 1.0;         // optical power at Bob's receiver, x nominal (Bob)
  double sample_loss = 0.0;          // probability that Bob's digitizer drops a symbol (Bob)
  double shot_noise_drift = 0.0;     // relative LO power change since Bob's calibration (Bob)
  bool corrupt_auth = false;         // Alice's round authentication key corrupted (Alice)
};

/// The node's links, as its supervisor last saw them.
struct node_status {
  std::string node_id;
  std::vector<link_status> links;
};

/// Status of an actor that is not a link: state, counters, last error.
struct actor_status {
  std::string name;
  std::string state;
  std::map<std::string, std::uint64_t> counters;
  std::string last_error;
};

}  // namespace cvqkd::actors
