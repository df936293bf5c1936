#pragma once
// The node-level actors: the published node endpoint (peer authentication, forwarding of link
// bytes), the supervisor of the link actors, and the key-store actor. Collaborators come in as
// typed handles and plain functions, so tests run them on CAF's deterministic scheduler with mocks.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include <caf/actor_system.hpp>

#include "actors/interfaces.hpp"
#include "core/error.hpp"

namespace cvqkd::storage {
class key_store;
}

namespace cvqkd::actors {

/// Who this node is, and how it checks who a peer is (node/ wires these to node/pki).
struct node_identity {
  std::string node_id;
  std::string certificate_pem;
  /// Signs `message` with the node key.
  std::function<expected<std::vector<std::byte>>(std::span<const std::byte> message)> sign;
  /// Verifies a peer certificate against the CA; returns its CN when its OU is cvqkd-node.
  std::function<expected<std::string>(const std::string& cert_pem)> verify_node_certificate;
  /// Checks a signature over `message` against the certificate's public key.
  std::function<expected<void>(const std::string& cert_pem, std::span<const std::byte> message,
                               std::span<const std::byte> signature)>
    verify_signature;
  /// A fresh 32-byte nonce (default: the system random source).
  std::function<std::vector<std::uint8_t>()> make_nonce;
};

/// The bytes each end signs during the hello: "cvqkd-hello-v1", `tag` ("alice" for the listening
/// end, "bob" for the dialler), the link ID, both node IDs and both nonces, each length-prefixed,
/// so a signature can be replayed neither on another link, nor by the other end, nor later.
std::vector<std::byte> hello_transcript(std::string_view tag, std::string_view link_id, std::string_view dialler_id,
                                        std::string_view listener_id, std::span<const std::uint8_t> dialler_nonce,
                                        std::span<const std::uint8_t> listener_nonce);

/// The transcript tag of `side` ("alice": the listening end, "bob": the dialler) on hello channel
/// `channel`: "alice"/"bob" on the link channel, "relay-alice"/"relay-bob" on the relay channel.
std::string hello_tag(std::string_view channel, std::string_view side);

/// One link as the node-level actors see it.
struct link_summary {
  std::string link_id, peer, role, profile;
  std::uint64_t block_symbols = 0;
};

struct endpoint_config {
  node_identity identity;
  std::vector<link_summary> links;
};

/// Spawns the node endpoint. `supervisor` answers the status requests it delegates.
node_endpoint_local_actor spawn_endpoint(caf::actor_system& sys, endpoint_config config, supervisor_actor supervisor);

struct supervisor_config {
  std::string node_id;
  std::vector<link_summary> links;
  /// Spawns the link actor of `link_id` (node/: spawn_link with its resources; tests: mocks). The
  /// new actor reports to `supervisor`.
  std::function<link_actor(caf::actor_system& sys, const std::string& link_id, supervisor_actor supervisor)> spawn;
  /// Restart delay after the k-th consecutive failure: min(max, initial * 2^(k-1)) * (1 + jitter * u),
  /// u uniform in [-1, 1] (jitter spreads the restarts of many links apart).
  std::chrono::milliseconds backoff_initial{1000};
  std::chrono::milliseconds backoff_max{60'000};
  double jitter = 0.2;
  std::uint64_t jitter_seed = 0;  // 0: from the system random source
  std::chrono::milliseconds stop_timeout{5000};  // graceful stop: links still alive then are killed
};

/// The restart delay of supervisor_config for the k-th consecutive failure and a draw u in [-1, 1].
std::chrono::milliseconds restart_delay(const supervisor_config& c, unsigned k, double u);

supervisor_actor spawn_supervisor(caf::actor_system& sys, supervisor_config config);

/// Spawns the key-store actor over `store` (which must outlive it).
key_store_actor spawn_key_store(caf::actor_system& sys, storage::key_store& store);

}  // namespace cvqkd::actors
