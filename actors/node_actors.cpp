#include "actors/node_actors.hpp"

#include <algorithm>
#include <cmath>
#include <map>
#include <optional>
#include <random>

#include <caf/event_based_actor.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "actors/link_faults.hpp"
#include "actors/system.hpp"
#include "core/drbg.hpp"
#include "storage/key_store.hpp"

namespace cvqkd::actors {

namespace {

void put_field(std::vector<std::byte>& out, std::span<const std::byte> b) {
  for (int i = 0; i < 8; ++i) out.push_back(std::byte(static_cast<std::uint64_t>(b.size()) >> (8 * i)));
  out.insert(out.end(), b.begin(), b.end());
}
std::span<const std::byte> as_bytes(std::string_view s) { return std::as_bytes(std::span(s.data(), s.size())); }

std::vector<std::uint8_t> system_nonce() {
  std::vector<std::uint8_t> n(32);
  system_random().fill(std::as_writable_bytes(std::span(n)));
  return n;
}

bool from_this_node(const caf::strong_actor_ptr& sender, const caf::node_id& self_node) {
  return sender != nullptr && sender->node() == self_node;
}

// ------------------------------------------------------------------------------------------------
// Node endpoint

struct endpoint_state {
  static inline const char* name = "cvqkd.endpoint";
  endpoint_config cfg;
  supervisor_actor supervisor;
  struct pending_hello {
    std::string peer_id, certificate_pem;
    std::vector<std::uint8_t> dialler_nonce, listener_nonce;
    caf::actor_addr from;
  };
  struct verified_peer {
    std::string peer_id;
    caf::actor peer;  // the dialler's link actor (a remote proxy)
  };
  std::map<std::string, pending_hello> pending;    // by channel + "/" + link ID
  std::map<std::string, verified_peer> verified;   // by link ID: the peer's link actor
  std::map<std::string, verified_peer> relay_peers;  // by link ID: the peer's relay actor
  std::map<std::string, link_actor> local;         // link ID -> this node's link actor
  relay_actor relay;                               // this node's relay actor (once registered)
  std::uint64_t relay_forwarded = 0;
  std::uint64_t hellos_accepted = 0, hellos_rejected = 0, messages_forwarded = 0, messages_rejected = 0;
  std::string last_error;

  const link_summary* link(const std::string& id) const {
    for (const auto& l : cfg.links)
      if (l.link_id == id) return &l;
    return nullptr;
  }
};

using endpoint_pointer = node_endpoint_local_actor::stateful_pointer<endpoint_state>;

caf::error reject(endpoint_pointer self, actor_errc code, std::string why) {
  auto& st = self->state;
  ++st.hellos_rejected;
  st.last_error = why;
  spdlog::warn("node endpoint {}: rejected a peer: {}", st.cfg.identity.node_id, why);
  return make_caf_error(code, std::move(why));
}

node_endpoint_local_actor::behavior_type endpoint_behavior(endpoint_pointer self, endpoint_config cfg,
                                                           supervisor_actor supervisor) {
  self->state.cfg = std::move(cfg);
  self->state.supervisor = std::move(supervisor);
  if (!self->state.cfg.identity.make_nonce) self->state.cfg.identity.make_nonce = system_nonce;
  self->set_down_handler([self](caf::down_msg& dm) {
    auto& st = self->state;
    for (auto it = st.verified.begin(); it != st.verified.end();) {
      if (it->second.peer.address() == dm.source) {
        const std::string why = fmt::format("connection to peer {} lost ({})", it->second.peer_id, describe(dm.reason));
        spdlog::info("node endpoint {}: link {}: {}", st.cfg.identity.node_id, it->first, why);
        if (auto l = st.local.find(it->first); l != st.local.end()) self->send(l->second, peer_down_atom_v, why);
        it = st.verified.erase(it);
      } else {
        ++it;
      }
    }
    for (auto it = st.relay_peers.begin(); it != st.relay_peers.end();) {
      if (it->second.peer.address() == dm.source) {
        const std::string why = fmt::format("relay connection to {} lost ({})", it->second.peer_id, describe(dm.reason));
        if (st.relay) self->send(st.relay, peer_down_atom_v, it->first, why);
        it = st.relay_peers.erase(it);
      } else {
        ++it;
      }
    }
  });
  return {
    [self](hello_atom, hello_request& req) -> caf::result<hello_reply> {
      auto& st = self->state;
      const auto& id = st.cfg.identity;
      if (req.channel != "link" && req.channel != "relay")
        return reject(self, actor_errc::unauthenticated,
                      fmt::format("hello from '{}' on unknown channel '{}': the peer runs another version",
                                  req.node_id, req.channel));
      const auto* link = st.link(req.link_id);
      if (link == nullptr || link->role != "alice")
        return reject(self, actor_errc::unknown_link,
                      fmt::format("node {} runs no alice end of link '{}'; check [[links]] in both node files",
                                  id.node_id, req.link_id));
      if (req.node_id != link->peer)
        return reject(self, actor_errc::unauthenticated,
                      fmt::format("link '{}' is configured with peer '{}', but '{}' said hello", req.link_id,
                                  link->peer, req.node_id));
      if (req.nonce.size() != 32)
        return reject(self, actor_errc::unauthenticated, fmt::format("hello from '{}' has a {}-byte nonce, expected 32",
                                                                     req.node_id, req.nonce.size()));
      auto cn = id.verify_node_certificate(req.certificate_pem);
      if (!cn) return reject(self, actor_errc::unauthenticated, "peer certificate rejected: " + cn.error().message);
      if (*cn != req.node_id)
        return reject(self, actor_errc::unauthenticated,
                      fmt::format("peer says it is '{}' but its certificate names '{}'", req.node_id, *cn));
      auto nonce = id.make_nonce();
      const auto transcript =
        hello_transcript(hello_tag(req.channel, "alice"), req.link_id, req.node_id, id.node_id, req.nonce, nonce);
      auto sig = id.sign(transcript);
      if (!sig) return reject(self, actor_errc::config_error, "cannot sign the hello: " + sig.error().message);
      st.pending[req.channel + "/" + req.link_id] = {req.node_id, req.certificate_pem, req.nonce, nonce,
                                 caf::actor_cast<caf::actor_addr>(self->current_sender())};
      hello_reply rep;
      rep.node_id = id.node_id;
      rep.certificate_pem = id.certificate_pem;
      rep.nonce = std::move(nonce);
      rep.signature.resize(sig->size());
      std::transform(sig->begin(), sig->end(), rep.signature.begin(), [](std::byte b) { return std::to_integer<std::uint8_t>(b); });
      return rep;
    },
    [self](hello_atom, hello_finish& fin) -> caf::result<bool> {
      auto& st = self->state;
      auto it = st.pending.find(fin.channel + "/" + fin.link_id);
      const auto sender = caf::actor_cast<caf::actor_addr>(self->current_sender());
      if (it == st.pending.end() || it->second.from != sender)
        return reject(self, actor_errc::unauthenticated,
                      fmt::format("hello_finish for link '{}' without a matching hello", fin.link_id));
      auto p = std::move(it->second);
      st.pending.erase(it);
      const auto transcript =
        hello_transcript(hello_tag(fin.channel, "bob"), fin.link_id, p.peer_id, st.cfg.identity.node_id, p.dialler_nonce,
                         p.listener_nonce);
      auto ok = st.cfg.identity.verify_signature(p.certificate_pem, transcript, std::as_bytes(std::span(fin.signature)));
      if (!ok)
        return reject(self, actor_errc::unauthenticated,
                      fmt::format("signature of '{}' on link '{}' does not verify: {}", p.peer_id, fin.link_id,
                                  ok.error().message));
      auto peer = caf::actor_cast<caf::actor>(self->current_sender());
      self->monitor(peer);
      ++st.hellos_accepted;
      if (fin.channel == "relay") {
        st.relay_peers[fin.link_id] = {p.peer_id, peer};
        spdlog::info("node endpoint {}: link {}: relay of peer {} authenticated", st.cfg.identity.node_id, fin.link_id,
                     p.peer_id);
        if (st.relay) self->send(st.relay, peer_up_atom_v, fin.link_id, peer);
        return true;
      }
      st.verified[fin.link_id] = {p.peer_id, peer};
      spdlog::info("node endpoint {}: link {}: peer {} authenticated", st.cfg.identity.node_id, fin.link_id, p.peer_id);
      if (auto l = st.local.find(fin.link_id); l != st.local.end()) self->send(l->second, peer_up_atom_v, peer);
      return true;
    },
    [self](link_bytes& msg) {
      auto& st = self->state;
      auto v = st.verified.find(msg.link_id);
      const auto sender = caf::actor_cast<caf::actor_addr>(self->current_sender());
      if (v == st.verified.end() || v->second.peer.address() != sender) {
        if (st.messages_rejected++ % 1000 == 0)
          spdlog::warn("node endpoint {}: dropped link bytes for '{}' from an unauthenticated sender ({} so far)",
                       st.cfg.identity.node_id, msg.link_id, st.messages_rejected);
        return;
      }
      auto l = st.local.find(msg.link_id);
      if (l == st.local.end()) return;  // the link actor is restarting: the engines resend
      ++st.messages_forwarded;
      self->send(l->second, std::move(msg));
    },
    [self](relay_bytes& msg) {
      auto& st = self->state;
      auto v = st.relay_peers.find(msg.link_id);
      const auto sender = caf::actor_cast<caf::actor_addr>(self->current_sender());
      if (v == st.relay_peers.end() || v->second.peer.address() != sender || !st.relay) {
        if (st.messages_rejected++ % 1000 == 0)
          spdlog::warn("node endpoint {}: dropped relay bytes for '{}' from an unauthenticated sender ({} so far)",
                       st.cfg.identity.node_id, msg.link_id, st.messages_rejected);
        return;
      }
      ++st.relay_forwarded;
      self->send(st.relay, std::move(msg));
    },
    [self](relay_atom, caf::actor& relay) {
      auto& st = self->state;
      if (!from_this_node(self->current_sender(), self->node())) {
        ++st.messages_rejected;
        return;
      }
      st.relay = caf::actor_cast<relay_actor>(relay);
      for (const auto& [link_id, v] : st.relay_peers) self->send(st.relay, peer_up_atom_v, link_id, v.peer);
    },
    [self](status_atom) -> caf::delegated<node_status> {
      return self->delegate(self->state.supervisor, status_atom_v);
    },
    [self](register_atom, std::string& link_id, caf::actor& actor) {
      auto& st = self->state;
      if (!from_this_node(self->current_sender(), self->node())) {
        ++st.messages_rejected;
        return;
      }
      auto handle = caf::actor_cast<link_actor>(actor);
      st.local[link_id] = handle;
      if (auto v = st.verified.find(link_id); v != st.verified.end()) self->send(handle, peer_up_atom_v, v->second.peer);
    },
    [self](report_atom) -> actor_status {
      auto& st = self->state;
      actor_status s;
      s.name = endpoint_state::name;
      s.state = "serving";
      s.counters = {{"hellos_accepted", st.hellos_accepted},
                    {"hellos_rejected", st.hellos_rejected},
                    {"messages_forwarded", st.messages_forwarded},
                    {"messages_rejected", st.messages_rejected},
                    {"verified_links", st.verified.size()},
                    {"relay_peers", st.relay_peers.size()},
                    {"relay_forwarded", st.relay_forwarded}};
      s.last_error = st.last_error;
      return s;
    },
  };
}

// ------------------------------------------------------------------------------------------------
// Supervisor

struct supervisor_state {
  static inline const char* name = "cvqkd.supervisor";
  supervisor_config cfg;
  struct entry {
    link_summary summary;
    link_status last;
    link_actor actor;
    bool alive = false;
    bool cut = false;       // a drill cut the link: it stays down until restored
    std::optional<link_faults> faults;  // a fault drill in force: re-applied to every new link actor
    unsigned failures = 0;  // consecutive, reset by a completed round
    std::uint64_t restarts = 0;
  };
  std::map<std::string, entry> links;
  node_endpoint_local_actor endpoint;
  bool started = false, stopping = false;
  std::optional<caf::typed_response_promise<bool>> stop_promise;
  std::mt19937_64 rng;
  std::uint64_t failures_total = 0, restarts_total = 0;
  std::string last_error;
};

using supervisor_pointer = supervisor_actor::stateful_pointer<supervisor_state>;

void spawn_link_of(supervisor_pointer self, const std::string& id) {
  auto& st = self->state;
  auto& e = st.links[id];
  e.actor = st.cfg.spawn(self->system(), id, caf::actor_cast<supervisor_actor>(self));
  e.alive = static_cast<bool>(e.actor);
  if (!e.alive) {
    e.last.health = "down";
    e.last.reason = "could not spawn the link actor";
    return;
  }
  self->monitor(e.actor);
  if (e.faults) self->send(e.actor, drill_atom_v, *e.faults);
  if (e.last.health == "down") {
    e.last.health = "degraded";
    e.last.reason = "starting";
  }
  if (st.endpoint) self->send(st.endpoint, register_atom_v, id, caf::actor_cast<caf::actor>(e.actor));
}

bool any_alive(const supervisor_state& st) {
  return std::any_of(st.links.begin(), st.links.end(), [](const auto& kv) { return kv.second.alive; });
}

// up: rounds run; degraded: alive but not making key; down: not running (see link_status).
void assess(link_status& s) {
  if (s.engine_state == "failed") {
    s.health = "down";
    s.reason = "engine failed: " + s.last_error;
  } else if (!s.peer_connected) {
    s.health = "degraded";
    s.reason = fmt::format("waiting for peer {}", s.peer);
  } else if (s.has_last_round && s.last_round_outcome == "aborted") {
    s.health = "degraded";
    s.reason = "last round aborted: " + s.last_error;
  } else {
    s.health = "up";
    s.reason = s.engine_state == "paused_pool_full" ? "pool full: paused" : "";
  }
}

supervisor_actor::behavior_type supervisor_behavior(supervisor_pointer self, supervisor_config cfg) {
  auto& st0 = self->state;
  st0.cfg = std::move(cfg);
  st0.rng.seed(st0.cfg.jitter_seed != 0 ? st0.cfg.jitter_seed : system_random().next_u64());
  for (const auto& l : st0.cfg.links) {
    auto& e = st0.links[l.link_id];
    e.summary = l;
    e.last.link_id = l.link_id;
    e.last.peer = l.peer;
    e.last.role = l.role;
    e.last.profile = l.profile;
    e.last.block_symbols = l.block_symbols;
    e.last.health = "down";
    e.last.reason = "not started";
  }
  self->set_down_handler([self](caf::down_msg& dm) {
    auto& st = self->state;
    for (auto& [id, e] : st.links) {
      if (!e.alive || e.actor.address() != dm.source) continue;
      e.alive = false;
      e.actor = nullptr;
      e.last.peer_connected = false;
      if (e.cut) {
        e.last.health = "down";
        e.last.reason = "cut by a drill (fibre cut simulated); restore with `cvqkd ctl drill restore-link`";
        return;
      }
      if (st.stopping) {
        e.last.health = "down";
        e.last.reason = "stopped";
        if (!any_alive(st) && st.stop_promise) {
          st.stop_promise->deliver(true);
          st.stop_promise.reset();
        }
        return;
      }
      ++e.failures;
      ++st.failures_total;
      const std::string why = dm.reason ? describe(dm.reason) : "exited";
      st.last_error = fmt::format("link {}: {}", id, why);
      std::uniform_real_distribution<double> u(-1.0, 1.0);
      const auto delay = restart_delay(st.cfg, e.failures, u(st.rng));
      e.last.health = "down";
      e.last.reason = fmt::format("link actor failed ({}); restart {} in {} ms", why, e.failures, delay.count());
      spdlog::warn("supervisor {}: link {} failed: {}; restarting in {} ms", st.cfg.node_id, id, why, delay.count());
      self->delayed_send(self, delay, restart_atom_v, id);
      return;
    }
  });
  return {
    [self](start_atom, node_endpoint_local_actor endpoint) {
      auto& st = self->state;
      if (st.started) return;
      st.started = true;
      st.endpoint = std::move(endpoint);
      std::vector<std::string> ids;
      for (const auto& kv : st.links) ids.push_back(kv.first);
      for (const auto& id : ids) spawn_link_of(self, id);
    },
    [self](link_status& s) {
      auto& st = self->state;
      auto it = st.links.find(s.link_id);
      if (it == st.links.end() || !it->second.alive || it->second.cut) return;
      auto& e = it->second;
      if (self->current_sender() == nullptr || self->current_sender()->address() != e.actor.address()) return;
      s.restarts = e.restarts;
      if (s.rounds_completed > 0) e.failures = 0;
      assess(s);
      s.drill = e.faults ? e.faults->what : std::string();
      e.last = std::move(s);
    },
    [self](restart_atom, const std::string& id) {
      auto& st = self->state;
      auto it = st.links.find(id);
      if (st.stopping || it == st.links.end() || it->second.alive || it->second.cut) return;
      ++it->second.restarts;
      ++st.restarts_total;
      it->second.last.restarts = it->second.restarts;
      spawn_link_of(self, id);
    },
    [self](status_atom) -> node_status {
      auto& st = self->state;
      node_status s;
      s.node_id = st.cfg.node_id;
      for (const auto& kv : st.links) {
        s.links.push_back(kv.second.last);
        s.links.back().restarts = kv.second.restarts;
      }
      return s;
    },
    [self](report_atom) -> actor_status {
      auto& st = self->state;
      actor_status s;
      s.name = supervisor_state::name;
      s.state = st.stopping ? "stopping" : st.started ? "running" : "idle";
      std::uint64_t alive = 0;
      for (const auto& kv : st.links) alive += kv.second.alive ? 1 : 0;
      s.counters = {{"links", st.links.size()},
                    {"links_alive", alive},
                    {"failures", st.failures_total},
                    {"restarts", st.restarts_total}};
      s.last_error = st.last_error;
      return s;
    },
    [self](drill_atom, const std::string& action, const std::string& id,
           const link_faults& faults) -> caf::result<std::string> {
      auto& st = self->state;
      auto it = st.links.find(id);
      if (it == st.links.end())
        return make_caf_error(actor_errc::unknown_link,
                              fmt::format("node {} has no link '{}'; `cvqkd ctl links` lists them", st.cfg.node_id, id));
      auto& e = it->second;
      if (action == "cut-link") {
        if (e.cut) return std::string("already cut");
        e.cut = true;
        spdlog::warn("supervisor {}: drill: cutting link {}", st.cfg.node_id, id);
        if (e.alive) {
          auto target = e.actor;
          self->request<caf::message_priority::high>(target, st.cfg.stop_timeout, stop_atom_v)
            .then([](bool) {}, [self, target](caf::error&) { self->send_exit(target, caf::exit_reason::kill); });
        }
        e.last.health = "down";
        e.last.peer_connected = false;
        e.last.reason = "cut by a drill (fibre cut simulated); restore with `cvqkd ctl drill restore-link`";
        return std::string("cut");
      }
      if (action == "inject-fault") {
        if (auto ok = validate_faults(faults); !ok) return to_caf_error(ok.error());
        if (e.cut)
          return make_caf_error(actor_errc::invalid_argument,
                                fmt::format("link {} is cut by a drill: restore it (restore-link) before injecting a "
                                            "fault", id));
        spdlog::warn("supervisor {}: drill: link {}: injecting {}", st.cfg.node_id, id, faults.what);
        e.faults = faults;
        e.last.drill = faults.what;
        if (e.alive) self->send(e.actor, drill_atom_v, faults);
        return std::string("injected");
      }
      if (action == "restore-link") {
        if (!e.cut && !e.faults) return std::string("nothing to restore");
        if (e.faults) {
          spdlog::warn("supervisor {}: drill: link {}: clearing {}", st.cfg.node_id, id, e.faults->what);
          e.faults.reset();
          e.last.drill.clear();
          if (e.alive) self->send(e.actor, drill_atom_v, link_faults{});
          if (!e.cut) return std::string("fault cleared");
        }
        e.cut = false;
        e.failures = 0;
        spdlog::warn("supervisor {}: drill: restoring link {}", st.cfg.node_id, id);
        if (!e.alive && !st.stopping) spawn_link_of(self, id);
        return std::string("restored");
      }
      return make_caf_error(actor_errc::invalid_argument,
                            fmt::format("unknown drill '{}': use cut-link, inject-fault or restore-link", action));
    },
    [self](stop_atom) -> caf::typed_response_promise<bool> {
      auto& st = self->state;
      auto rp = self->make_response_promise<bool>();
      st.stopping = true;
      if (!any_alive(st)) {
        rp.deliver(true);
        return rp;
      }
      st.stop_promise = rp;
      for (auto& [id, e] : st.links) {
        if (!e.alive) continue;
        auto target = e.actor;
        self->request<caf::message_priority::high>(target, st.cfg.stop_timeout, stop_atom_v)
          .then([](bool) {},
                [self, target, id = id](caf::error& err) {
                  spdlog::warn("supervisor {}: link {} did not stop ({}); killing it", self->state.cfg.node_id, id,
                               describe(err));
                  self->send_exit(target, caf::exit_reason::kill);
                });
      }
      return rp;
    },
  };
}

// ------------------------------------------------------------------------------------------------
// Key store

struct key_store_state {
  static inline const char* name = "cvqkd.key_store";
  storage::key_store* store = nullptr;
  std::uint64_t requests = 0, errors = 0;
  std::string last_error;
};

key_store_actor::behavior_type key_store_behavior(key_store_actor::stateful_pointer<key_store_state> self,
                                                  storage::key_store* store) {
  self->state.store = store;
  return {
    [self](status_atom, const std::string& link_id) -> caf::result<std::uint64_t, std::uint64_t> {
      auto& st = self->state;
      ++st.requests;
      auto f = st.store->status(storage::pool_id{link_id, storage::direction::forward});
      auto r = st.store->status(storage::pool_id{link_id, storage::direction::reverse});
      if (!f || !r) {
        ++st.errors;
        st.last_error = (!f ? f.error() : r.error()).message;
        return to_caf_error(!f ? f.error() : r.error());
      }
      return {f->available_bits, r->available_bits};
    },
    [self](report_atom) -> actor_status {
      auto& st = self->state;
      return actor_status{key_store_state::name, "open", {{"requests", st.requests}, {"errors", st.errors}},
                          st.last_error};
    },
  };
}

}  // namespace

std::string hello_tag(std::string_view channel, std::string_view side) {
  if (channel == "link") return std::string(side);
  return std::string(channel) + "-" + std::string(side);
}

std::vector<std::byte> hello_transcript(std::string_view tag, std::string_view link_id, std::string_view dialler_id,
                                        std::string_view listener_id, std::span<const std::uint8_t> dialler_nonce,
                                        std::span<const std::uint8_t> listener_nonce) {
  std::vector<std::byte> out;
  put_field(out, as_bytes("cvqkd-hello-v1"));
  put_field(out, as_bytes(tag));
  put_field(out, as_bytes(link_id));
  put_field(out, as_bytes(dialler_id));
  put_field(out, as_bytes(listener_id));
  put_field(out, std::as_bytes(dialler_nonce));
  put_field(out, std::as_bytes(listener_nonce));
  return out;
}

node_endpoint_local_actor spawn_endpoint(caf::actor_system& sys, endpoint_config config, supervisor_actor supervisor) {
  return sys.spawn(endpoint_behavior, std::move(config), std::move(supervisor));
}

std::chrono::milliseconds restart_delay(const supervisor_config& c, unsigned k, double u) {
  const double base = static_cast<double>(c.backoff_initial.count()) * std::ldexp(1.0, static_cast<int>(std::min(k, 40u)) - 1);
  const double capped = std::min(base, static_cast<double>(c.backoff_max.count()));
  const double jittered = capped * (1.0 + c.jitter * std::clamp(u, -1.0, 1.0));
  return std::chrono::milliseconds(static_cast<std::int64_t>(std::max(1.0, jittered)));
}

supervisor_actor spawn_supervisor(caf::actor_system& sys, supervisor_config config) {
  return sys.spawn(supervisor_behavior, std::move(config));
}

key_store_actor spawn_key_store(caf::actor_system& sys, storage::key_store& store) {
  return sys.spawn(key_store_behavior, &store);
}

}  // namespace cvqkd::actors
