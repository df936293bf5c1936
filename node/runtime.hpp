#pragma once
// The node process: opens the key store, spawns the supervisor, the link actors and the node
// endpoint, publishes the endpoint over TLS (caf::openssl) and runs until SIGTERM or SIGINT.
// Also the client side of `cvqkd node status`. No CAF types in this header.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "actors/messages.hpp"
#include "config/node_config.hpp"
#include "core/error.hpp"

namespace cvqkd::node {

/// How a node uses threads. The defaults suit one node per process; many nodes in one process
/// (`cvqkd network up --in-process`) give each a small scheduler whose idle workers sleep.
struct node_tuning {
  std::size_t scheduler_threads = 0;  // CAF scheduler workers; 0: CAF's default (one per core)
  bool sharing_scheduler = false;     // CAF's "sharing" policy: idle workers block instead of polling
  std::size_t middleman_workers = 0;  // CAF BASP deserialization workers; 0: CAF's default
  std::size_t api_handler_threads = 4;  // HTTPS handler pool of the ETSI/admin API
  bool pid_file = true;               // write <storage>/node.pid (one node per process only)
};

/// One started node: key store, actor system, link and relay actors, inter-node TLS listener and
/// HTTPS services, all owned here. Several may run in one process, each with its own actor system,
/// store directory and ports. No CAF types in this header.
class running_node {
public:
  /// Starts the node of `config` (block sizes planned as with_planned_blocks) and returns once it
  /// listens; its links dial their peers in the background. Errors: as run_node.
  static expected<std::unique_ptr<running_node>> start(const config::node_config& config,
                                                       const node_tuning& tuning = {});
  ~running_node();  // stop()
  running_node(const running_node&) = delete;
  running_node& operator=(const running_node&) = delete;

  const std::string& id() const noexcept;
  /// The bound HTTPS API port (0 when the node has no api_listen).
  std::uint16_t api_port() const noexcept;
  /// The link table (as `cvqkd node status`). Errors: io_error when the supervisor does not answer
  /// within `timeout` (the node is stopping).
  expected<actors::node_status> status(std::chrono::milliseconds timeout = std::chrono::milliseconds(5'000));
  /// Tells every link to stop (the round in progress is aborted and the peer told) and the HTTPS
  /// server to finish; returns without waiting for the actors. Idempotent; stop() follows.
  void begin_stop();
  /// begin_stop(), then waits for every actor to finish and closes the key store. Idempotent.
  void stop();

  struct impl;

private:
  explicit running_node(std::unique_ptr<impl> p);
  std::unique_ptr<impl> impl_;
};

/// Runs the node of `config` until SIGTERM/SIGINT, then stops every link gracefully (the round in
/// progress is aborted and the peer told), flushes and returns. Refuses to start without TLS
/// material (the CA, certificate and key files must exist: CAF would otherwise fall back to an
/// unauthenticated channel). Creates the KEK file (0600) on first start. Errors: config_error
/// (missing TLS material, bad certificate), io_error (key store, listen address in use).
expected<void> run_node(const config::node_config& config);

/// `config` with every link whose block_symbols is "auto" given the smallest block with a positive
/// expected key at its design values (links::plan_block: T from length and loss, the profile's xi,
/// the link's beta limit and pe_fraction, the node's epsilons); frame_symbols is clamped to the block.
/// A link that makes no key at any size keeps its profile's block (logged with the reason). Both ends
/// of a link compute the same N from the same inputs.
config::node_config with_planned_blocks(config::node_config config);

/// Connects to the running node's endpoint over the same TLS channel (with the node's own
/// certificate) and asks for its status. Errors: io_error when the node cannot be reached within
/// `timeout`.
expected<actors::node_status> fetch_status(const config::node_config& config,
                                           std::chrono::milliseconds timeout = std::chrono::milliseconds(10'000));

}  // namespace cvqkd::node
