#include "actors/link_actor.hpp"

#include <algorithm>
#include <cmath>
#include <random>

#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <caf/event_based_actor.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "actors/system.hpp"

namespace cvqkd::actors {

namespace {

using engine_clock = links::engine_clock;

// The engine's outgoing bytes, collected during one engine call and sent right after it.
class outbox final : public links::wire {
public:
  void send(std::vector<std::byte> bytes) override { queue.push_back(std::move(bytes)); }
  std::vector<std::vector<std::byte>> queue;
};

struct link_state {
  static inline const char* name = "cvqkd.link";
  link_actor_config cfg;
  // Declaration order matters: the engine refers to the parts and the outbox, so it goes first.
  outbox out;
  link_parts parts;
  std::unique_ptr<links::link_engine> engine;
  link_bytes_sink peer;            // where bytes go: bob: the peer's endpoint; alice: the peer's link actor
  caf::actor_addr dialled;         // bob: the endpoint being dialled or authenticated (monitored)
  bool step_queued = false, tick_queued = false, dial_queued = false, stopping = false;
  unsigned dial_attempts = 0;
  std::uint64_t rejected = 0;
  std::string last_error;          // the actor's own (dialling, authentication) problems
  engine_clock::time_point last_report{};
  std::string last_reported_state;
  std::uint64_t last_reported_committed = 0;
  std::mt19937_64 rng{std::random_device{}()};

  bool is_bob() const { return cfg.summary.role == "bob"; }
};

using link_pointer = link_actor::stateful_pointer<link_state>;

link_status make_status(link_state& st) {
  link_status s;
  s.link_id = st.cfg.summary.link_id;
  s.peer = st.cfg.summary.peer;
  s.role = st.cfg.summary.role;
  s.profile = st.cfg.summary.profile;
  s.block_symbols = st.cfg.summary.block_symbols;
  s.peer_connected = static_cast<bool>(st.peer);
  s.rejected_messages = st.rejected;
  s.last_error = st.last_error;
  if (!st.engine) {
    s.engine_state = "not_started";
    return s;
  }
  const auto& e = st.engine->status();
  s.engine_state = std::string(links::to_string(e.current));
  s.round = e.round;
  s.committed_round = e.committed_round;
  s.symbols_done = e.symbols_done;
  s.rounds_completed = e.rounds_completed;
  s.rounds_aborted = e.rounds_aborted;
  s.key_bits_committed = e.key_bits_committed;
  s.malformed_messages = e.malformed_messages;
  s.resends = e.resends;
  if (!e.last_error.empty()) s.last_error = e.last_error;
  if (auto bits = st.parts.store->pool_bits()) s.pool_bits = *bits;
  if (e.last_round) {
    const auto& r = *e.last_round;
    s.has_last_round = true;
    s.last_round_outcome = r.status == links::round_report::state::done ? "done" : "aborted";
    s.last_key_bits = r.secret_bits;
    s.beta = r.beta;
    s.snr = r.snr_estimate;
    s.fer = r.fer;
    if (r.bound) {
      s.xi_hat = r.bound->bounds.xi_hat;
      s.xi_max = r.bound->bounds.xi_max;
      s.transmittance_min = r.bound->bounds.transmittance_min;
    }
  }
  s.last_round_seconds = e.last_round_seconds;
  return s;
}

void report(link_pointer self, bool force) {
  auto& st = self->state;
  if (!st.cfg.supervisor) return;
  const auto now = engine_clock::now();
  const std::string state = st.engine ? std::string(links::to_string(st.engine->status().current)) : "not_started";
  const std::uint64_t committed = st.engine ? st.engine->status().committed_round : 0;
  if (!force && now - st.last_report < st.cfg.report_every && state == st.last_reported_state &&
      committed == st.last_reported_committed)
    return;
  st.last_report = now;
  st.last_reported_state = state;
  st.last_reported_committed = committed;
  self->send(st.cfg.supervisor, make_status(st));
}

void queue_step(link_pointer self) {
  auto& st = self->state;
  if (st.step_queued || st.stopping) return;
  st.step_queued = true;
  self->send(self, step_atom_v);
}

void queue_tick(link_pointer self) {
  auto& st = self->state;
  if (st.tick_queued || st.stopping) return;
  st.tick_queued = true;
  self->delayed_send(self, st.cfg.idle_poll, tick_atom_v);
}

// After every engine call: send what it wrote, notice a failed engine, report.
void after_engine(link_pointer self) {
  auto& st = self->state;
  for (auto& b : st.out.queue) {
    if (!st.peer) break;  // nobody to send to: the engine resends after reconnecting
    link_bytes msg;
    msg.link_id = st.cfg.summary.link_id;
    msg.bytes.resize(b.size());
    std::transform(b.begin(), b.end(), msg.bytes.begin(), [](std::byte x) { return std::to_integer<std::uint8_t>(x); });
    self->send(st.peer, std::move(msg));
  }
  st.out.queue.clear();
  if (st.engine && st.engine->status().current == links::engine_status::state::failed) {
    report(self, true);
    const std::string why = "engine failed: " + st.engine->status().last_error;
    spdlog::error("link {}: {}", st.cfg.summary.link_id, why);
    st.stopping = true;
    self->quit(make_caf_error(actor_errc::not_running, why));
    return;
  }
  report(self, false);
}

void pump(link_pointer self) {
  auto& st = self->state;
  if (!st.engine || st.stopping) return;
  const bool more = st.engine->step(engine_clock::now());
  after_engine(self);
  if (more) queue_step(self);
  else queue_tick(self);
}

std::chrono::milliseconds dial_delay(link_state& st) {
  const double base = static_cast<double>(st.cfg.dial_initial.count()) *
                      std::ldexp(1.0, static_cast<int>(std::min(st.dial_attempts, 30u)) - 1);
  const double capped = std::min(base, static_cast<double>(st.cfg.dial_max.count()));
  std::uniform_real_distribution<double> u(0.8, 1.2);
  return std::chrono::milliseconds(static_cast<std::int64_t>(std::max(1.0, capped * u(st.rng))));
}

void schedule_dial(link_pointer self, const std::string& why) {
  auto& st = self->state;
  if (st.dial_queued || st.stopping) return;
  ++st.dial_attempts;
  if (!why.empty()) st.last_error = why;
  const auto delay = dial_delay(st);
  if (st.dial_attempts <= 3 || st.dial_attempts % 20 == 0)
    spdlog::info("link {}: {}; dialling {}:{} again in {} ms (attempt {})", st.cfg.summary.link_id, why,
                 st.cfg.peer_host, st.cfg.peer_port, delay.count(), st.dial_attempts);
  st.dial_queued = true;
  self->delayed_send(self, delay, dial_atom_v);
}

void peer_connected(link_pointer self, link_bytes_sink peer) {
  auto& st = self->state;
  st.peer = std::move(peer);
  st.dial_attempts = 0;
  st.last_error.clear();
  spdlog::info("link {}: peer {} connected and authenticated", st.cfg.summary.link_id, st.cfg.summary.peer);
  if (st.engine) {
    st.engine->peer_connected(engine_clock::now());
    after_engine(self);
  }
  report(self, true);
  queue_step(self);
}

void peer_lost(link_pointer self, const std::string& why) {
  auto& st = self->state;
  const bool was_connected = static_cast<bool>(st.peer);
  st.peer = nullptr;
  st.last_error = why;
  if (was_connected && st.engine) {
    spdlog::warn("link {}: {}", st.cfg.summary.link_id, why);
    st.engine->peer_lost(why);
    after_engine(self);
  }
  report(self, true);
}

std::vector<std::uint8_t> to_u8(std::span<const std::byte> b) {
  std::vector<std::uint8_t> out(b.size());
  std::transform(b.begin(), b.end(), out.begin(), [](std::byte x) { return std::to_integer<std::uint8_t>(x); });
  return out;
}

// Bob end, after the endpoint answered the hello: check it, then send our signature.
void on_hello_reply(link_pointer self, node_endpoint_actor ep, std::vector<std::uint8_t> nonce, hello_reply& rep) {
  auto& st = self->state;
  const auto& id = st.cfg.identity;
  const auto& link = st.cfg.summary;
  std::string why;
  if (rep.node_id != link.peer) {
    why = fmt::format("peer at {}:{} is '{}', expected '{}'", st.cfg.peer_host, st.cfg.peer_port, rep.node_id, link.peer);
  } else if (auto cn = id.verify_node_certificate(rep.certificate_pem); !cn) {
    why = "peer certificate rejected: " + cn.error().message;
  } else if (*cn != rep.node_id) {
    why = fmt::format("peer says it is '{}' but its certificate names '{}'", rep.node_id, *cn);
  } else if (auto ok = id.verify_signature(rep.certificate_pem,
                                           hello_transcript("alice", link.link_id, id.node_id, rep.node_id, nonce, rep.nonce),
                                           std::as_bytes(std::span(rep.signature)));
             !ok) {
    why = "peer signature does not verify: " + ok.error().message;
  }
  if (!why.empty()) {
    spdlog::error("link {}: authentication of {} failed: {}", link.link_id, link.peer, why);
    schedule_dial(self, "authentication failed: " + why);
    return;
  }
  auto sig = id.sign(hello_transcript("bob", link.link_id, id.node_id, rep.node_id, nonce, rep.nonce));
  if (!sig) {
    schedule_dial(self, "cannot sign the hello: " + sig.error().message);
    return;
  }
  self->request(ep, st.cfg.hello_timeout, hello_atom_v, hello_finish{link.link_id, to_u8(*sig)})
    .then([self, ep](bool) { peer_connected(self, caf::actor_cast<link_bytes_sink>(ep)); },
          [self](caf::error& err) { schedule_dial(self, "peer refused our hello: " + describe(err)); });
}

void dial(link_pointer self) {
  auto& st = self->state;
  st.dial_queued = false;
  if (st.peer || st.stopping || !st.is_bob()) return;
  if (!st.cfg.dial) {
    st.last_error = "no dialler configured";
    return;
  }
  auto h = st.cfg.dial(st.cfg.peer_host, st.cfg.peer_port);
  if (!h || !*h) {
    schedule_dial(self, fmt::format("cannot reach {} at {}:{}: {}", st.cfg.summary.peer, st.cfg.peer_host,
                                    st.cfg.peer_port, h ? std::string("no actor") : describe(h.error())));
    return;
  }
  node_endpoint_actor ep = *h;
  if (st.dialled != ep.address()) {
    st.dialled = ep.address();
    self->monitor(ep);
  }
  const auto& id = st.cfg.identity;
  auto nonce = id.make_nonce ? id.make_nonce() : std::vector<std::uint8_t>(32);
  if (!id.make_nonce) system_random().fill(std::as_writable_bytes(std::span(nonce)));
  hello_request req{st.cfg.summary.link_id, id.node_id, id.certificate_pem, nonce};
  self->request(ep, st.cfg.hello_timeout, hello_atom_v, std::move(req))
    .then([self, ep, nonce](hello_reply& rep) { on_hello_reply(self, ep, nonce, rep); },
          [self](caf::error& err) { schedule_dial(self, "hello refused: " + describe(err)); });
}

// This end's part of a drill's faults (link_faults): the fibre's at both ends (both simulate the
// same channel), the receiver's at Bob's, the corrupted authentication key at Alice's.
void apply_faults(link_pointer self, const link_faults& f) {
  auto& st = self->state;
  if (!st.engine || !st.parts.hardware) return;
  hw::fault_state h;
  h.excess_noise_spike = f.excess_noise;
  h.crosstalk_xi = f.crosstalk_xi;
  h.lo_drift_rad2_per_symbol = f.lo_drift;
  if (st.is_bob()) {
    h.optical_power_factor = f.power_factor;
    h.sample_loss_probability = f.sample_loss;
    h.shot_noise_drift = f.shot_noise_drift;
  }
  if (auto ok = st.parts.hardware->set_faults(h); !ok) {
    st.last_error = "drill refused: " + ok.error().message;
    spdlog::warn("link {}: {}", st.cfg.summary.link_id, st.last_error);
  } else if (!f.what.empty()) {
    spdlog::warn("link {}: drill: {} ({} end)", st.cfg.summary.link_id, f.what, st.cfg.summary.role);
  } else {
    spdlog::info("link {}: drill faults cleared", st.cfg.summary.link_id);
  }
  st.engine->corrupt_authentication(f.corrupt_auth && !st.is_bob());
  report(self, true);
}

bool from_local(link_pointer self) {
  const auto& sender = self->current_sender();
  return sender != nullptr && sender->node() == self->node();
}

bool accept_bytes(link_pointer self) {
  auto& st = self->state;
  const auto& sender = self->current_sender();
  if (sender == nullptr) return false;
  if (!st.is_bob()) return sender->node() == self->node();  // alice: only via our own endpoint
  return st.peer && sender->node() == st.peer.node();      // bob: only from the authenticated node
}

link_actor::behavior_type link_behavior(link_pointer self, link_actor_config cfg) {
  auto& st = self->state;
  st.cfg = std::move(cfg);
  self->set_down_handler([self](caf::down_msg& dm) {
    auto& s = self->state;
    if (dm.source != s.dialled) return;
    s.dialled = caf::actor_addr{};
    peer_lost(self, fmt::format("connection to {} lost ({})", s.cfg.summary.peer, describe(dm.reason)));
    schedule_dial(self, "peer connection lost");
  });
  auto fail_init = [&](const error& e) {
    spdlog::error("link {}: cannot start: {}", st.cfg.summary.link_id, e.message);
    st.last_error = e.message;
    st.stopping = true;
    report(self, true);
    self->quit(to_caf_error(e));
  };
  if (!st.cfg.make_parts) {
    fail_init(error{errc::config_error, "link actor spawned without its resources"});
  } else if (auto parts = st.cfg.make_parts(); !parts) {
    fail_init(parts.error());
  } else {
    st.parts = std::move(*parts);
    auto engine = links::link_engine::create(st.parts.engine, *st.parts.hardware, *st.parts.store, st.out, *st.parts.rng);
    if (!engine) fail_init(engine.error());
    else {
      st.engine = std::move(*engine);
      spdlog::info("link {}: {} end towards {} started (committed round {})", st.cfg.summary.link_id,
                   st.cfg.summary.role, st.cfg.summary.peer, st.engine->status().committed_round);
      report(self, true);
      queue_step(self);
      if (st.is_bob()) {
        st.dial_queued = true;
        self->send(self, dial_atom_v);
      }
    }
  }
  return {
    [self](link_bytes& msg) {
      auto& s = self->state;
      if (!accept_bytes(self) || msg.link_id != s.cfg.summary.link_id) {
        ++s.rejected;
        return;
      }
      if (!s.engine || s.stopping) return;
      s.engine->receive(std::as_bytes(std::span(msg.bytes)), engine_clock::now());
      after_engine(self);
      queue_step(self);
    },
    [self](step_atom) {
      self->state.step_queued = false;
      pump(self);
    },
    [self](tick_atom) {
      self->state.tick_queued = false;
      pump(self);
    },
    [self](dial_atom) { dial(self); },
    [self](peer_up_atom, caf::actor& peer) {
      if (!from_local(self) || self->state.is_bob()) return;
      peer_connected(self, caf::actor_cast<link_bytes_sink>(peer));
    },
    [self](peer_down_atom, std::string& why) {
      if (!from_local(self)) return;
      peer_lost(self, why);
    },
    [self](status_atom) -> link_status { return make_status(self->state); },
    [self](drill_atom, link_faults& f) {
      if (!from_local(self)) return;
      apply_faults(self, f);
    },
    [self](stop_atom) -> bool {
      auto& s = self->state;
      if (s.engine && !s.stopping) {
        s.engine->stop("the node is shutting down");
        after_engine(self);
      }
      s.stopping = true;
      report(self, true);
      spdlog::info("link {}: stopped", s.cfg.summary.link_id);
      self->quit();
      return true;
    },
  };
}

}  // namespace

link_actor spawn_link(caf::actor_system& sys, link_actor_config config, bool detached) {
  if (detached) {
    // The behaviour's constructor runs on the actor's own thread: lower that thread's priority.
    const int nice = config.background_nice;
    return sys.spawn<caf::detached>(
      [nice](link_actor::stateful_pointer<link_state> self, link_actor_config c) {
        if (nice != 0 && setpriority(PRIO_PROCESS, static_cast<id_t>(syscall(SYS_gettid)), nice) != 0)
          spdlog::debug("link {}: cannot lower the thread priority", c.summary.link_id);
        return link_behavior(self, std::move(c));
      },
      std::move(config));
  }
  return sys.spawn(link_behavior, std::move(config));
}

}  // namespace cvqkd::actors
