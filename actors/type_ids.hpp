#pragma once
// Type IDs and atoms of cvqkd's actor messages (CAF 0.17.6). The type-ID block is the
// forward-compatible shim of CAF 0.18+ (where it is required); on 0.17 the names it defines are
// what add_message_types() registers, so every node registers the same name for each type.
// Atoms have at most 10 characters.

#include <caf/atom.hpp>
#include <caf/type_id.hpp>

#include "actors/messages.hpp"

CAF_BEGIN_TYPE_ID_BLOCK(cvqkd, caf::first_custom_type_id)
  CAF_ADD_TYPE_ID(cvqkd, (cvqkd::actors::link_bytes))
  CAF_ADD_TYPE_ID(cvqkd, (cvqkd::actors::hello_request))
  CAF_ADD_TYPE_ID(cvqkd, (cvqkd::actors::hello_reply))
  CAF_ADD_TYPE_ID(cvqkd, (cvqkd::actors::hello_finish))
  CAF_ADD_TYPE_ID(cvqkd, (cvqkd::actors::link_status))
  CAF_ADD_TYPE_ID(cvqkd, (cvqkd::actors::node_status))
  CAF_ADD_TYPE_ID(cvqkd, (cvqkd::actors::actor_status))
  CAF_ADD_TYPE_ID(cvqkd, (cvqkd::actors::relay_bytes))
  CAF_ADD_TYPE_ID(cvqkd, (cvqkd::actors::relay_provide))
  CAF_ADD_TYPE_ID(cvqkd, (cvqkd::actors::relay_keys))
  CAF_ADD_TYPE_ID(cvqkd, (cvqkd::actors::link_faults))

  CAF_ADD_ATOM(cvqkd, cvqkd::actors, step_atom, "step")         // pump the engine now
  CAF_ADD_ATOM(cvqkd, cvqkd::actors, tick_atom, "tick")         // pump the engine after a pause
  CAF_ADD_ATOM(cvqkd, cvqkd::actors, status_atom, "status")     // status request
  CAF_ADD_ATOM(cvqkd, cvqkd::actors, hello_atom, "hello")       // peer authentication
  CAF_ADD_ATOM(cvqkd, cvqkd::actors, peer_up_atom, "peer_up")   // a verified peer (local)
  CAF_ADD_ATOM(cvqkd, cvqkd::actors, peer_down_atom, "peer_down")
  CAF_ADD_ATOM(cvqkd, cvqkd::actors, register_atom, "register") // link ID -> link actor (local)
  CAF_ADD_ATOM(cvqkd, cvqkd::actors, start_atom, "start")
  CAF_ADD_ATOM(cvqkd, cvqkd::actors, stop_atom, "stop")
  CAF_ADD_ATOM(cvqkd, cvqkd::actors, restart_atom, "restart")
  CAF_ADD_ATOM(cvqkd, cvqkd::actors, dial_atom, "dial")
  CAF_ADD_ATOM(cvqkd, cvqkd::actors, report_atom, "report")
  CAF_ADD_ATOM(cvqkd, cvqkd::actors, relay_atom, "relay")       // the relay actor (local registration)
  CAF_ADD_ATOM(cvqkd, cvqkd::actors, routes_atom, "routes")     // the relay's routing view
  CAF_ADD_ATOM(cvqkd, cvqkd::actors, links_atom, "links")       // link status for the relay (local)
  CAF_ADD_ATOM(cvqkd, cvqkd::actors, drill_atom, "drill")       // operator drills (cut / restore a link, faults)
CAF_END_TYPE_ID_BLOCK(cvqkd)
