#pragma once
// The node process: opens the key store, spawns the supervisor, the link actors and the node
// endpoint, publishes the endpoint over TLS (caf::openssl) and runs until SIGTERM or SIGINT.
// Also the client side of `cvqkd node status`. No CAF types in this header.

#include <chrono>

#include "actors/messages.hpp"
#include "config/node_config.hpp"
#include "core/error.hpp"

namespace cvqkd::node {

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
