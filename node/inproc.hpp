#pragma once
// Every node of a generated network inside one process (`cvqkd network up --in-process`, `cvqkd
// bench network`): one node::running_node per site, each with its own actor system (a small
// scheduler whose idle workers sleep), key store, ports and TLS, exactly as the node processes of
// process mode, so the inter-node channel, the relay and the ETSI API behave the same.

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "node/network.hpp"
#include "node/runtime.hpp"

namespace cvqkd::network {

/// The tuning for many nodes in one process: one scheduler worker with the sharing policy (the
/// link and relay actors have threads of their own), one middleman worker, two HTTPS handler
/// threads, no node.pid (the process is shared: kill-node would kill them all).
node::node_tuning in_process_tuning();

class in_process_network {
public:
  /// Loads every node file of `net` and starts the nodes in topology order (their links connect
  /// in the background). SIGINT and SIGTERM are blocked in the threads the nodes start, so the
  /// caller's handlers run on the caller's thread. Errors: the first node that fails (config_error,
  /// io_error: e.g. a port in use), after stopping those already started.
  static expected<std::unique_ptr<in_process_network>> start(const generated_network& net,
                                                             const node::node_tuning& tuning = in_process_tuning());
  ~in_process_network();  // stop()

  std::size_t size() const noexcept { return nodes_.size(); }
  node::running_node& node(std::size_t i) { return *nodes_[i]; }

  /// Every node's link table, fetched concurrently (index i: node i; an error when it did not
  /// answer within `timeout`).
  std::vector<expected<actors::node_status>> status_all(std::chrono::milliseconds timeout = std::chrono::milliseconds(5'000));

  /// Stops every node: first all links at once (rounds aborted, peers told), then each node's
  /// actors and store, in parallel. Returns the seconds it took. Idempotent (0 the second time).
  double stop();

private:
  std::vector<std::unique_ptr<node::running_node>> nodes_;
};

}  // namespace cvqkd::network
