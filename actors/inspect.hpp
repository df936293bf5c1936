#pragma once
// Every `inspect` overload of cvqkd's actor messages, in CAF 0.17's syntax (it changes in 0.18:
// keep them all here). The type names match actors/type_ids.hpp.

#include <caf/meta/type_name.hpp>

#include "actors/messages.hpp"

namespace cvqkd::actors {

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, link_bytes& x) {
  return f(caf::meta::type_name("cvqkd::actors::link_bytes"), x.link_id, x.bytes);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, hello_request& x) {
  return f(caf::meta::type_name("cvqkd::actors::hello_request"), x.link_id, x.node_id, x.certificate_pem, x.nonce,
           x.channel);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, hello_reply& x) {
  return f(caf::meta::type_name("cvqkd::actors::hello_reply"), x.node_id, x.certificate_pem, x.nonce, x.signature);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, hello_finish& x) {
  return f(caf::meta::type_name("cvqkd::actors::hello_finish"), x.link_id, x.signature, x.channel);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, link_status& x) {
  return f(caf::meta::type_name("cvqkd::actors::link_status"), x.link_id, x.peer, x.role, x.profile, x.health,
           x.reason, x.engine_state, x.peer_connected, x.round, x.committed_round, x.symbols_done, x.block_symbols,
           x.rounds_completed, x.rounds_aborted, x.key_bits_committed, x.pool_bits, x.malformed_messages, x.resends,
           x.restarts, x.rejected_messages, x.last_error, x.has_last_round, x.last_round_outcome, x.last_key_bits,
           x.beta, x.snr, x.fer, x.xi_hat, x.xi_max, x.transmittance_min, x.last_round_seconds, x.drill);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, link_faults& x) {
  return f(caf::meta::type_name("cvqkd::actors::link_faults"), x.what, x.excess_noise, x.crosstalk_xi, x.lo_drift,
           x.power_factor, x.sample_loss, x.shot_noise_drift, x.corrupt_auth);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, node_status& x) {
  return f(caf::meta::type_name("cvqkd::actors::node_status"), x.node_id, x.links);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, actor_status& x) {
  return f(caf::meta::type_name("cvqkd::actors::actor_status"), x.name, x.state, x.counters, x.last_error);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, relay_bytes& x) {
  return f(caf::meta::type_name("cvqkd::actors::relay_bytes"), x.link_id, x.bytes);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, relay_provide& x) {
  return f(caf::meta::type_name("cvqkd::actors::relay_provide"), x.master_sae, x.slaves, x.number, x.size_bits,
           x.route, x.route_mandatory);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, relay_keys& x) {
  return f(caf::meta::type_name("cvqkd::actors::relay_keys"), x.ids);
}

}  // namespace cvqkd::actors
