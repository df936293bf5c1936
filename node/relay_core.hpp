#pragma once
// The node's relay as the relay actor drives it (actors::relay_core over a node::relay_host), the
// relay configuration of a node file, and the ETSI key service's key_provider that asks the relay
// actor. The runtime composes these; they are the only place where relay_host meets CAF.

#include <chrono>
#include <memory>

#include <caf/actor_system.hpp>

#include "actors/relay_actor.hpp"
#include "config/node_config.hpp"
#include "core/error.hpp"
#include "node/api/store_key_service.hpp"
#include "node/relay_host.hpp"

namespace cvqkd::node {

/// The relay configuration of node file `c`: relay.self = c.id, one relay link per [[links]]
/// (neighbour = peer), every [[saes]] mapped to c.id and every [[remote_saes]] to its node.
/// Errors: config_error naming the file when two links lead to the same neighbour (the relay
/// keeps one link-key stream per neighbour).
expected<relay_host_config> relay_config_of(const config::node_config& c);

/// A relay_core over a new relay_host on `store` (which must outlive it), drawing end-to-end keys
/// from the system random source. Errors: those of relay_host::create.
expected<std::unique_ptr<actors::relay_core>> make_relay_core(relay_host_config cfg, storage::key_store& store,
                                                              actors::relay_outbox& out);

/// api::key_provider asking the relay actor: blocks the calling (HTTP handler) thread until the
/// relay answers or `timeout` passes (then errc::io_error, answered 503). Relay errors keep their
/// code (unsupported -> 400, others -> 503, see api::key_provider).
class relay_key_provider final : public api::key_provider {
public:
  relay_key_provider(caf::actor_system& sys, actors::relay_actor relay, std::chrono::milliseconds timeout);
  expected<std::vector<storage::key_id>> provide(const api::provide_request& r) override;

private:
  caf::actor_system& sys_;
  actors::relay_actor relay_;
  std::chrono::milliseconds timeout_;
};

/// caf::error -> cvqkd::error: the code of a "cvqkd" error is kept (io_error for other categories).
error from_caf_error(const caf::actor_system& sys, const caf::error& e);

}  // namespace cvqkd::node
