#include "actors/relay_actor.hpp"

#include <algorithm>
#include <cmath>
#include <map>
#include <random>

#include <caf/event_based_actor.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "actors/system.hpp"
#include "core/drbg.hpp"

namespace cvqkd::actors {

namespace {

using clock = std::chrono::steady_clock;

relay_core::time_point now_us() {
  return std::chrono::duration_cast<relay_core::time_point>(clock::now().time_since_epoch());
}

std::vector<std::uint8_t> to_u8(std::span<const std::byte> b) {
  std::vector<std::uint8_t> out(b.size());
  std::transform(b.begin(), b.end(), out.begin(), [](std::byte x) { return std::to_integer<std::uint8_t>(x); });
  return out;
}

struct relay_link {
  relay_link_config cfg;
  relay_bytes_sink peer;       // where our bytes go: bob end: the neighbour's endpoint; alice end: its relay actor
  caf::actor_addr dialled;     // bob end: the endpoint dialled (monitored)
  caf::node_id accept_from;    // bob end: the neighbour's node, once its hello reply verified
  bool qkd_up = false;         // the link actor's peer is connected (from the supervisor)
  double key_rate_bps = 0.0;   // of the last round
  bool core_up = false;        // what the core was last told
  double core_rate = 0.0;
  bool dialling = false;       // a dial or hello is in progress
  unsigned dial_attempts = 0;
  clock::time_point next_dial{};
  std::string last_error;

  bool connected() const { return static_cast<bool>(peer); }
};

struct relay_state;
using relay_pointer = relay_actor::stateful_pointer<relay_state>;

class actor_outbox final : public relay_outbox {
public:
  explicit actor_outbox(relay_state& st) : st_(st) {}
  void send(const std::string& to, std::vector<std::byte> bytes) override;

private:
  relay_state& st_;
};

struct relay_state {
  static inline const char* name = "cvqkd.relay";
  relay_actor_config cfg;
  relay_pointer self = nullptr;
  actor_outbox out{*this};
  std::unique_ptr<relay_core> core;
  std::map<std::string, relay_link> links;  // by link ID
  std::map<std::string, std::string> link_of_neighbour;
  bool tick_queued = false, dial_queued = false;
  clock::time_point last_poll{};
  std::uint64_t sent = 0, received = 0, rejected = 0, unroutable = 0, polls = 0;
  std::string last_error;
  std::mt19937_64 rng{std::random_device{}()};
};

void actor_outbox::send(const std::string& to, std::vector<std::byte> bytes) {
  auto n = st_.link_of_neighbour.find(to);
  if (n == st_.link_of_neighbour.end()) {
    ++st_.unroutable;
    return;
  }
  auto& l = st_.links.at(n->second);
  if (!l.connected()) {
    ++st_.unroutable;  // the relay's timeouts and aborts cover it
    return;
  }
  ++st_.sent;
  st_.self->send(l.peer, relay_bytes{l.cfg.link_id, to_u8(bytes)});
}

// Tells the core what changed: a link is usable while its relay channel and its QKD link are up.
void update_core(relay_pointer self, relay_link& l) {
  auto& st = self->state;
  if (!st.core) return;
  const bool up = l.connected() && l.qkd_up;
  const auto now = now_us();
  if (up && (!l.core_up || std::abs(l.key_rate_bps - l.core_rate) > 0.1 * std::max(l.core_rate, 1.0))) {
    if (!l.core_up)
      spdlog::info("relay {}: link {} to {} usable", st.cfg.node_id, l.cfg.link_id, l.cfg.neighbour);
    st.core->link_up(l.cfg.neighbour, l.key_rate_bps, now);
    l.core_up = true;
    l.core_rate = l.key_rate_bps;
  } else if (!up && l.core_up) {
    spdlog::info("relay {}: link {} to {} unusable ({})", st.cfg.node_id, l.cfg.link_id, l.cfg.neighbour,
                 !l.connected() ? "relay channel down" : "QKD link down");
    st.core->link_down(l.cfg.neighbour, now);
    l.core_up = false;
  }
}

void apply_status(relay_pointer self, const node_status& s) {
  auto& st = self->state;
  ++st.polls;
  for (const auto& ls : s.links) {
    auto it = st.links.find(ls.link_id);
    if (it == st.links.end()) continue;
    auto& l = it->second;
    l.qkd_up = ls.peer_connected && ls.health != "down";
    if (ls.has_last_round && ls.last_round_seconds > 0 && ls.last_round_outcome == "done")
      l.key_rate_bps = static_cast<double>(ls.last_key_bits) / ls.last_round_seconds;
    update_core(self, l);
  }
}

void queue_tick(relay_pointer self) {
  auto& st = self->state;
  if (st.tick_queued) return;
  st.tick_queued = true;
  self->delayed_send(self, st.cfg.tick_every, tick_atom_v);
}

void queue_dial(relay_pointer self) {
  auto& st = self->state;
  if (st.dial_queued) return;
  auto next = clock::time_point::max();
  for (const auto& [id, l] : st.links)
    if (l.cfg.bob_end && !l.connected() && !l.dialling) next = std::min(next, l.next_dial);
  if (next == clock::time_point::max()) return;
  st.dial_queued = true;
  const auto delay = std::max<clock::duration>(next - clock::now(), std::chrono::milliseconds(1));
  self->delayed_send(self, std::chrono::duration_cast<std::chrono::milliseconds>(delay) + std::chrono::milliseconds(1),
                     dial_atom_v);
}

void dial_failed(relay_pointer self, relay_link& l, const std::string& why) {
  auto& st = self->state;
  l.dialling = false;
  l.accept_from = caf::node_id{};
  l.last_error = why;
  ++l.dial_attempts;
  const double base = static_cast<double>(st.cfg.dial_initial.count()) *
                      std::ldexp(1.0, static_cast<int>(std::min(l.dial_attempts, 30u)) - 1);
  const double capped = std::min(base, static_cast<double>(st.cfg.dial_max.count()));
  std::uniform_real_distribution<double> u(0.8, 1.2);
  const auto delay = std::chrono::milliseconds(static_cast<std::int64_t>(std::max(1.0, capped * u(st.rng))));
  l.next_dial = clock::now() + delay;
  if (l.dial_attempts <= 3 || l.dial_attempts % 20 == 0)
    spdlog::info("relay {}: link {}: {}; dialling {}:{} again in {} ms", st.cfg.node_id, l.cfg.link_id, why,
                 l.cfg.peer_host, l.cfg.peer_port, delay.count());
  queue_dial(self);
}

void connected(relay_pointer self, relay_link& l, relay_bytes_sink peer) {
  auto& st = self->state;
  l.peer = std::move(peer);
  l.dialling = false;
  l.dial_attempts = 0;
  l.last_error.clear();
  spdlog::info("relay {}: link {}: relay channel to {} up", st.cfg.node_id, l.cfg.link_id, l.cfg.neighbour);
  update_core(self, l);
}

void disconnected(relay_pointer self, relay_link& l, const std::string& why) {
  auto& st = self->state;
  if (l.connected())
    spdlog::warn("relay {}: link {}: relay channel to {} down: {}", st.cfg.node_id, l.cfg.link_id, l.cfg.neighbour, why);
  l.peer = nullptr;
  l.accept_from = caf::node_id{};
  l.last_error = why;
  update_core(self, l);
}

// Bob end: the neighbour's endpoint answered the hello; check it, then sign ours.
void on_hello_reply(relay_pointer self, const std::string& link_id, node_endpoint_actor ep,
                    const std::vector<std::uint8_t>& nonce, const hello_reply& rep) {
  auto& st = self->state;
  auto& l = st.links.at(link_id);
  const auto& id = st.cfg.identity;
  std::string why;
  if (rep.node_id != l.cfg.neighbour) {
    why = fmt::format("peer at {}:{} is '{}', expected '{}'", l.cfg.peer_host, l.cfg.peer_port, rep.node_id,
                      l.cfg.neighbour);
  } else if (auto cn = id.verify_node_certificate(rep.certificate_pem); !cn) {
    why = "peer certificate rejected: " + cn.error().message;
  } else if (*cn != rep.node_id) {
    why = fmt::format("peer says it is '{}' but its certificate names '{}'", rep.node_id, *cn);
  } else if (auto ok = id.verify_signature(
               rep.certificate_pem,
               hello_transcript(hello_tag("relay", "alice"), link_id, id.node_id, rep.node_id, nonce, rep.nonce),
               std::as_bytes(std::span(rep.signature)));
             !ok) {
    why = "peer signature does not verify: " + ok.error().message;
  }
  if (!why.empty()) {
    spdlog::error("relay {}: link {}: authentication of {} failed: {}", st.cfg.node_id, link_id, l.cfg.neighbour, why);
    return dial_failed(self, l, "authentication failed: " + why);
  }
  auto sig = id.sign(hello_transcript(hello_tag("relay", "bob"), link_id, id.node_id, rep.node_id, nonce, rep.nonce));
  if (!sig) return dial_failed(self, l, "cannot sign the hello: " + sig.error().message);
  // The neighbour may send as soon as it has checked our signature, before its answer is here.
  l.accept_from = ep.node();
  self->request(ep, st.cfg.hello_timeout, hello_atom_v, hello_finish{link_id, to_u8(*sig), "relay"})
    .then([self, link_id, ep](bool) { connected(self, self->state.links.at(link_id), caf::actor_cast<relay_bytes_sink>(ep)); },
          [self, link_id](caf::error& err) {
            dial_failed(self, self->state.links.at(link_id), "peer refused our hello: " + describe(err));
          });
}

void dial_one(relay_pointer self, relay_link& l) {
  auto& st = self->state;
  if (!st.cfg.dial) {
    l.last_error = "no dialler configured";
    return;
  }
  l.dialling = true;
  auto h = st.cfg.dial(l.cfg.peer_host, l.cfg.peer_port);
  if (!h || !*h)
    return dial_failed(self, l, fmt::format("cannot reach {} at {}:{}: {}", l.cfg.neighbour, l.cfg.peer_host,
                                            l.cfg.peer_port, h ? std::string("no actor") : describe(h.error())));
  node_endpoint_actor ep = *h;
  if (l.dialled != ep.address()) {
    l.dialled = ep.address();
    self->monitor(ep);
  }
  const auto& id = st.cfg.identity;
  std::vector<std::uint8_t> nonce = id.make_nonce ? id.make_nonce() : std::vector<std::uint8_t>(32);
  if (!id.make_nonce) system_random().fill(std::as_writable_bytes(std::span(nonce)));
  const std::string link_id = l.cfg.link_id;
  self->request(ep, st.cfg.hello_timeout, hello_atom_v,
                hello_request{link_id, id.node_id, id.certificate_pem, nonce, "relay"})
    .then([self, link_id, ep, nonce](hello_reply& rep) { on_hello_reply(self, link_id, ep, nonce, rep); },
          [self, link_id](caf::error& err) {
            dial_failed(self, self->state.links.at(link_id), "hello refused: " + describe(err));
          });
}

void dial_due(relay_pointer self) {
  auto& st = self->state;
  st.dial_queued = false;
  const auto now = clock::now();
  for (auto& [id, l] : st.links)
    if (l.cfg.bob_end && !l.connected() && !l.dialling && l.next_dial <= now) dial_one(self, l);
  queue_dial(self);
}

// Which neighbour sent these bytes, or nullptr when they must be dropped.
relay_link* sender_link(relay_pointer self, const std::string& link_id) {
  auto& st = self->state;
  auto it = st.links.find(link_id);
  const auto& sender = self->current_sender();
  if (it == st.links.end() || sender == nullptr) return nullptr;
  auto& l = it->second;
  if (!l.cfg.bob_end) return sender->node() == self->node() ? &l : nullptr;  // via our endpoint, which checked it
  if (l.accept_from == caf::node_id{} || sender->node() != l.accept_from) return nullptr;
  return &l;
}

relay_actor::behavior_type relay_behavior(relay_pointer self, relay_actor_config cfg) {
  auto& st = self->state;
  st.self = self;
  st.cfg = std::move(cfg);
  for (const auto& lc : st.cfg.links) {
    st.links[lc.link_id].cfg = lc;
    st.link_of_neighbour.emplace(lc.neighbour, lc.link_id);  // one link per neighbour carries relay traffic
  }
  self->set_down_handler([self](caf::down_msg& dm) {
    auto& s = self->state;
    bool redial = false;
    for (auto& [id, l] : s.links) {
      if (!l.cfg.bob_end || l.dialled != dm.source) continue;
      l.dialled = caf::actor_addr{};
      disconnected(self, l, fmt::format("connection to {} lost ({})", l.cfg.neighbour, describe(dm.reason)));
      l.dialling = false;
      l.next_dial = clock::now() + s.cfg.dial_initial;
      redial = true;
    }
    if (redial) queue_dial(self);
  });
  auto core = st.cfg.make_core ? st.cfg.make_core(st.out)
                               : expected<std::unique_ptr<relay_core>>(
                                   fail(errc::config_error, "relay actor spawned without its core"));
  if (!core) {
    // Handlers below see no core and do nothing; the quit takes effect after this returns.
    spdlog::error("relay {}: cannot start: {}", st.cfg.node_id, core.error().message);
    st.last_error = core.error().message;
    self->quit(to_caf_error(core.error()));
  } else {
    st.core = std::move(*core);
    if (st.cfg.endpoint) self->send(st.cfg.endpoint, relay_atom_v, caf::actor_cast<caf::actor>(self));
    queue_tick(self);
    st.dial_queued = true;
    self->send(self, dial_atom_v);
  }
  return {
    [self](relay_bytes& msg) {
      auto& s = self->state;
      auto* l = sender_link(self, msg.link_id);
      if (!s.core) return;
      if (l == nullptr) {
        if (s.rejected++ % 1000 == 0)
          spdlog::warn("relay {}: dropped relay bytes for '{}' from an unauthenticated sender ({} so far)", s.cfg.node_id,
                       msg.link_id, s.rejected);
        return;
      }
      ++s.received;
      s.core->receive(l->cfg.neighbour, std::as_bytes(std::span(msg.bytes)), now_us());
    },
    [self](tick_atom) {
      auto& s = self->state;
      s.tick_queued = false;
      if (!s.core) return;
      s.core->tick(now_us());
      if (s.cfg.supervisor && clock::now() - s.last_poll >= s.cfg.poll_every) {
        s.last_poll = clock::now();
        self->request(s.cfg.supervisor, std::chrono::seconds(5), status_atom_v)
          .then([self](node_status& ns) { apply_status(self, ns); },
                [self](caf::error& e) { self->state.last_error = "link status: " + describe(e); });
      }
      queue_tick(self);
    },
    [self](dial_atom) { dial_due(self); },
    [self](peer_up_atom, std::string& link_id, caf::actor& peer) {
      auto& s = self->state;
      auto it = s.links.find(link_id);
      const auto& sender = self->current_sender();
      if (it == s.links.end() || it->second.cfg.bob_end || sender == nullptr || sender->node() != self->node()) return;
      connected(self, it->second, caf::actor_cast<relay_bytes_sink>(peer));
    },
    [self](peer_down_atom, std::string& link_id, std::string& why) {
      auto& s = self->state;
      auto it = s.links.find(link_id);
      const auto& sender = self->current_sender();
      if (it == s.links.end() || it->second.cfg.bob_end || sender == nullptr || sender->node() != self->node()) return;
      disconnected(self, it->second, why);
    },
    [self](links_atom, node_status& ns) {
      const auto& sender = self->current_sender();
      if (sender == nullptr || sender->node() != self->node()) return;
      apply_status(self, ns);
    },
    [self](relay_provide& req) -> caf::typed_response_promise<relay_keys> {
      auto rp = self->make_response_promise<relay_keys>();
      if (!self->state.core) {
        rp.deliver(make_caf_error(actor_errc::not_running, "the relay is not running: " + self->state.last_error));
        return rp;
      }
      self->state.core->provide(
        req,
        [rp, self, master = req.master_sae, slave = req.slaves.empty() ? std::string() : req.slaves.front()](
          const expected<std::vector<std::string>>& r) mutable {
          if (!r) {
            spdlog::warn("relay {}: keys for {} -> {} not provided: {}", self->state.cfg.node_id, master, slave,
                         r.error().message);
            rp.deliver(to_caf_error(r.error()));
            return;
          }
          relay_keys keys;
          keys.ids = r.value();
          rp.deliver(std::move(keys));
        },
        now_us());
      return rp;
    },
    [self](routes_atom) -> std::string { return self->state.core ? self->state.core->routes_json() : "{}"; },
    [self](report_atom) -> actor_status {
      auto& s = self->state;
      actor_status a;
      a.name = relay_state::name;
      a.state = s.core ? "running" : "failed";
      if (s.core) a.counters = s.core->counters();
      std::uint64_t channels = 0, usable = 0;
      for (const auto& [id, l] : s.links) {
        channels += l.connected() ? 1 : 0;
        usable += l.core_up ? 1 : 0;
        if (!l.last_error.empty() && a.last_error.empty()) a.last_error = fmt::format("link {}: {}", id, l.last_error);
      }
      a.counters["relay_channels_up"] = channels;
      a.counters["links_usable"] = usable;
      a.counters["messages_sent"] = s.sent;
      a.counters["messages_received"] = s.received;
      a.counters["messages_rejected"] = s.rejected;
      a.counters["messages_unroutable"] = s.unroutable;
      if (a.last_error.empty()) a.last_error = s.last_error;
      return a;
    },
  };
}

}  // namespace

relay_actor spawn_relay(caf::actor_system& sys, relay_actor_config config, bool detached) {
  if (detached) return sys.spawn<caf::detached>(relay_behavior, std::move(config));
  return sys.spawn(relay_behavior, std::move(config));
}

}  // namespace cvqkd::actors
