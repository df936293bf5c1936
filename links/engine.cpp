#include "links/engine.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <utility>

#include "links/codec.hpp"

namespace cvqkd::links {
namespace {

using codec::reader;
using codec::writer;
using time_point = engine_clock::time_point;

enum class kind : std::uint8_t { start = 1, ready = 2, retry = 3, proto = 4 };

// A round number's public seed (selects the disclosed symbols): public by design, it only has to
// differ between rounds. splitmix64 finalizer.
std::uint64_t mix(std::uint64_t x) noexcept {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

std::vector<std::byte> encode_envelope(const envelope& e) {
  writer w;
  w.u8(static_cast<std::uint8_t>(kind::proto));
  w.u8(static_cast<std::uint8_t>(e.from));
  w.u64(e.round);
  w.u64(e.seq);
  w.u64(e.ack);
  w.u8(static_cast<std::uint8_t>(e.type));
  w.bytes(e.body);
  w.g128(e.tag);
  return w.take();
}

std::optional<envelope> decode_envelope(reader& r) {
  envelope e;
  const auto from = r.u8();
  e.round = r.u64();
  e.seq = r.u64();
  e.ack = r.u64();
  const auto type = r.u8();
  e.body = r.bytes();
  e.tag = r.g128();
  if (!r.ok() || from > 1 || type < static_cast<std::uint8_t>(msg_type::sift) ||
      type > static_cast<std::uint8_t>(msg_type::abort))
    return std::nullopt;
  e.from = static_cast<role>(from);
  e.type = static_cast<msg_type>(type);
  return e;
}

// The first symbol a sift message covers (its body starts with a frame counter and that symbol).
std::optional<std::uint64_t> sift_first_symbol(const envelope& e) {
  reader r(e.body);
  r.u64();
  const auto first = r.u64();
  if (!r.ok()) return std::nullopt;
  return first;
}

class capture_sink final : public key_sink {
public:
  expected<void> deliver(key_block block) override {
    block_ = std::move(block);
    return {};
  }
  std::optional<key_block> block_;
};

}  // namespace

std::string_view to_string(engine_status::state s) noexcept {
  switch (s) {
    case engine_status::state::idle: return "idle";
    case engine_status::state::handshake: return "handshake";
    case engine_status::state::running: return "running";
    case engine_status::state::paused_pool_full: return "paused_pool_full";
    case engine_status::state::waiting_peer: return "waiting_peer";
    case engine_status::state::failed: return "failed";
  }
  return "unknown";
}

expected<void> engine_config::validate() const {
  const auto bad = [](std::string what) { return fail(errc::config_error, "link engine: " + std::move(what)); };
  if (link_id.empty()) return bad("link_id must not be empty");
  if (frame_symbols < 1000) return bad(fmt::format("frame_symbols = {} is below 1000; use a larger frame", frame_symbols));
  if (round.n_symbols < frame_symbols)
    return bad(fmt::format("block of {} symbols is smaller than one frame ({}); raise block_symbols or lower frame_symbols",
                           round.n_symbols, frame_symbols));
  if (round.n_pe == 0 || round.n_pe >= round.n_symbols)
    return bad("the symbols disclosed for estimation must be more than 0 and fewer than the block");
  if (window < 4) return bad("window must be at least 4 messages");
  if (resend_after.count() <= 0 || round_timeout.count() <= 0) return bad("timeouts must be positive");
  return {};
}

expected<void> link_hardware::set_faults(const hw::fault_state&) {
  return fail(errc::invalid_argument,
              "this link runs on hardware that cannot simulate faults: fault drills need simulated hardware; "
              "rehearse on the test network (cvqkd network up) or use cut-link");
}

// ---------------------------------------------------------------------------------------------
// Simulated hardware

simulated_hardware::simulated_hardware(role end, const hw::simulator_config& config) : end_(end), config_(config) {}
simulated_hardware::~simulated_hardware() = default;

expected<std::unique_ptr<simulated_hardware>> simulated_hardware::create(role end, const hw::simulator_config& config) {
  if (auto ok = hw::validate(config); !ok) return std::unexpected(ok.error());
  return std::unique_ptr<simulated_hardware>(new simulated_hardware(end, config));
}

expected<void> simulated_hardware::begin_round(std::uint64_t round) {
  hw::simulator_config c = config_;
  c.seed = mix(config_.seed ^ mix(round));  // the same channel realisation at both ends
  auto link = hw::make_simulated_link(c);
  if (!link) return std::unexpected(link.error());
  link_ = std::move(*link);
  return {};
}

expected<hw::alice_frame> simulated_hardware::emit(std::size_t n) {
  if (!link_ || end_ != role::alice) return fail(errc::invalid_argument, "emit needs Alice's end and a begun round");
  return link_->alice().emit(n);
}

expected<hw::shot_noise_calibration> simulated_hardware::calibrate() {
  if (!link_ || end_ != role::bob) return fail(errc::invalid_argument, "calibrate needs Bob's end and a begun round");
  return link_->bob().calibrate();
}

expected<hw::bob_frame> simulated_hardware::measure(std::size_t n) {
  if (!link_ || end_ != role::bob) return fail(errc::invalid_argument, "measure needs Bob's end and a begun round");
  // The simulated receiver measures what the (replayed) transmitter emitted.
  if (auto a = link_->alice().emit(n); !a) return std::unexpected(a.error());
  return link_->bob().measure(n);
}

std::optional<hw::true_parameters> simulated_hardware::truth() const {
  if (!link_) return std::nullopt;
  return link_->truth();
}

expected<void> simulated_hardware::set_faults(const hw::fault_state& faults) {
  hw::simulator_config c = config_;
  c.faults = faults;
  if (auto ok = hw::validate(c); !ok) return std::unexpected(ok.error());
  config_.faults = faults;
  if (link_) return link_->set_faults(faults);
  return {};
}

// ---------------------------------------------------------------------------------------------
// Engine

struct link_engine::impl {
  using state = engine_status::state;

  engine_config cfg;
  link_hardware& hw;
  link_state_store& store;
  wire& out;
  random_source& rng;
  engine_status st;

  // The round in progress. `keys` must outlive `end`, which holds a reference to it.
  std::optional<auth_key_stream> keys;
  capture_sink sink;
  std::unique_ptr<link_end> end;
  hw::shot_noise_calibration cal;
  std::uint64_t symbols = 0;      // Bob: measured; Alice: emitted
  bool block_ended = false;
  bool peer_up = false;
  bool stopped = false;
  bool corrupt_auth = false;      // drill: this end's round authentication key is corrupted
  std::uint64_t round_floor = 0;  // Bob: the next round number must exceed this
  std::uint64_t highest_seen = 0; // Alice: the highest round number a start named
  time_point last_heard{}, last_resend{}, last_control{}, round_started{};
  unsigned silent_resends = 0;  // probes since the peer was last heard (doubles the interval)
  // Bob: authentication key taken for the round being started (offered again when the start is
  // resent; dropped when Alice answers retry, since she may have taken it).
  std::optional<std::pair<auth_position, secure_buffer>> spare_auth;
  auth_position round_auth_pos;

  impl(engine_config c, link_hardware& h, link_state_store& s, wire& w, random_source& g)
    : cfg(std::move(c)), hw(h), store(s), out(w), rng(g) {}

  // ---- plumbing ----

  class round_wire final : public transport {
  public:
    explicit round_wire(impl& e) : e_(e) {}
    void send(const envelope& e) override { e_.out.send(encode_envelope(e)); }

  private:
    impl& e_;
  };
  round_wire proto_out{*this};

  void send_control(kind k, std::uint64_t round, const std::function<void(writer&)>& fill = {}) {
    writer w;
    w.u8(static_cast<std::uint8_t>(k));
    w.u64(round);
    if (fill) fill(w);
    out.send(w.take());
  }

  void fail_engine(std::string why) {
    if (end && !end->finished()) end->abort(why);
    drop_round();
    st.current = state::failed;
    st.last_error = std::move(why);
  }

  void drop_round() {
    end.reset();
    keys.reset();
    sink.block_.reset();
    symbols = 0;
    block_ended = false;
  }

  round_parameters params_for(std::uint64_t round) const {
    round_parameters p = cfg.round;
    p.round = round;
    p.public_seed = mix(round);
    return p;
  }

  // ---- Bob ----

  bool bob_begin_handshake(time_point now) {
    auto pool = store.pool_bits();
    if (!pool) {
      fail_engine("cannot read the key pool: " + pool.error().message);
      return false;
    }
    if (cfg.pool_max_bits > 0 && *pool >= cfg.pool_max_bits) {
      st.current = state::paused_pool_full;
      return false;
    }
    if (!spare_auth) {
      auto pos = store.auth_head();
      if (!pos) {
        fail_engine("no authentication key left for this link (" + pos.error().message +
                    "): re-commission it with a new pre-shared secret (cvqkd pki issue --link)");
        return false;
      }
      auto bytes = store.take_auth(*pos, round_auth_budget);
      if (!bytes) {
        fail_engine("cannot take authentication key: " + bytes.error().message +
                    "; re-commission the link with a new pre-shared secret (cvqkd pki issue --link)");
        return false;
      }
      spare_auth.emplace(*pos, std::move(*bytes));
    }
    st.round = std::max({st.round, st.committed_round, round_floor}) + 1;
    round_auth_pos = spare_auth->first;
    st.current = state::handshake;
    send_start(now);
    return false;
  }

  void send_start(time_point now) {
    const auto pos = round_auth_pos;
    const auto committed = st.committed_round;
    send_control(kind::start, st.round, [&](writer& w) {
      w.u64(committed);
      w.u64(pos.block);
      w.u64(pos.offset);
    });
    last_control = now;
  }

  void bob_on_ready(std::uint64_t round, time_point now) {
    if (st.current != state::handshake || round != st.round || !spare_auth) return;  // stale or duplicate
    const auto params = params_for(round);
    if (auto ok = hw.begin_round(round); !ok) return fail_engine("device: " + ok.error().message);
    auto c = hw.calibrate();
    if (!c) return fail_engine("shot-noise calibration failed: " + c.error().message);
    cal = *c;
    keys.emplace(drilled(std::move(spare_auth->second)));
    spare_auth.reset();
    auto e = link_end::create(role::bob, params, *keys, proto_out, sink, rng);
    if (!e) return fail_engine(e.error().message);
    end = std::move(*e);
    symbols = 0;
    block_ended = false;
    st.current = state::running;
    st.symbols_done = 0;
    st.truth = hw.truth();
    last_heard = now;
    round_started = now;
  }

  void bob_on_retry(reader& r, std::uint64_t round) {
    const auto min_round = r.u64();
    const auto fatal = r.u8();
    const auto reason = r.text();
    if (!r.ok()) return count_malformed();
    if (round != st.round) return;
    if (st.current == state::running && end) {
      end->abort("the peer dropped the round: " + reason);
      finish_round(engine_clock::now());
      round_floor = std::max(round_floor, min_round - 1);
      return;
    }
    if (st.current != state::handshake) return;
    if (fatal != 0) return fail_engine("the peer refused the round: " + reason);
    round_floor = std::max(round_floor, min_round - 1);
    // Alice may have taken the authentication key of this start before she lost the round (a
    // restart): it is never offered again; the next start takes fresh key.
    spare_auth.reset();
    st.current = state::idle;
  }

  bool bob_step(time_point now) {
    switch (st.current) {
      case state::idle:
      case state::paused_pool_full:
      case state::waiting_peer:
        if (stopped) return false;
        if (!peer_up) {
          st.current = state::waiting_peer;
          return false;
        }
        return bob_begin_handshake(now);
      case state::handshake:
        if (now - last_control >= cfg.resend_after) {
          send_start(now);
          ++st.resends;
        }
        return false;
      case state::running: break;
      case state::failed: return false;
    }
    if (end->finished()) {
      finish_round(now);
      return true;
    }
    if (symbols < cfg.round.n_symbols) {
      if (end->unacknowledged() >= cfg.window) return timeouts(now);
      const auto n = static_cast<std::size_t>(std::min(cfg.frame_symbols, cfg.round.n_symbols - symbols));
      auto f = hw.measure(n);
      if (!f) {
        fail_engine("device: " + f.error().message);
        return false;
      }
      (void)end->on_bob_frame(*f, cal);  // a failure aborts the round; finish_round reports why
      symbols += n;
      st.symbols_done = symbols;
      return true;
    }
    if (!block_ended) {
      (void)end->end_of_block();
      block_ended = true;
      return true;
    }
    return timeouts(now);
  }

  // ---- Alice ----

  void alice_on_start(reader& r, std::uint64_t round, time_point now) {
    const auto committed = r.u64();
    auth_position pos;
    pos.block = r.u64();
    pos.offset = static_cast<std::uint32_t>(r.u64());
    if (!r.ok()) return count_malformed();
    if (st.current == state::failed || stopped) return;
    if (end && round == st.round) {  // a duplicate start: our ready was lost
      send_control(kind::ready, round);
      return;
    }
    const auto retry = [&](std::uint64_t min_round, bool fatal, const std::string& why) {
      send_control(kind::retry, round, [&](writer& w) {
        w.u64(min_round);
        w.u8(fatal ? 1 : 0);
        w.text(why);
      });
    };
    if (round <= highest_seen) return retry(highest_seen + 1, false, "stale round number");
    highest_seen = round;
    if (end && !end->finished()) {
      end->abort("the peer started a new round");
      finish_round(now);
    }
    // Settle the held round: Bob names the last round he committed.
    auto held = store.held_round();
    if (!held) return fail_engine("cannot read the held round: " + held.error().message);
    if (*held) {
      if (auto ok = store.settle_held(committed >= **held); !ok)
        return fail_engine("cannot settle the held round: " + ok.error().message);
    }
    auto mine = store.committed_round();
    if (!mine) return fail_engine("cannot read the committed round: " + mine.error().message);
    st.committed_round = *mine;
    if (committed != *mine) {
      const auto why = fmt::format("the two ends' key pools diverged (Bob committed round {}, Alice round {}): a "
                                   "store was lost or restored from an old backup; stop the link, empty both pools "
                                   "and re-commission it (cvqkd pki issue --link)",
                                   committed, *mine);
      retry(0, true, why);
      return fail_engine(why);
    }
    auto bytes = store.take_auth(pos, round_auth_budget);
    if (!bytes) {
      if (bytes.error().code == errc::invalid_argument) {
        // Alice used that position already (she took it for this round before a restart, or Bob
        // lost track): never again. Bob takes fresh key for his next start; Alice burns up to it.
        return retry(highest_seen + 1, false, "authentication key at that position was used already");
      }
      const bool exhausted = bytes.error().code == errc::no_secret_key;
      const auto why = exhausted ? "no authentication key left for this link: re-commission it (cvqkd pki issue --link)"
                                 : "cannot take authentication key: " + bytes.error().message;
      retry(0, true, why);
      return fail_engine(why);
    }
    const auto params = params_for(round);
    if (auto ok = hw.begin_round(round); !ok) return fail_engine("device: " + ok.error().message);
    keys.emplace(drilled(std::move(*bytes)));
    auto e = link_end::create(role::alice, params, *keys, proto_out, sink, rng);
    if (!e) return fail_engine(e.error().message);
    end = std::move(*e);
    st.round = round;
    st.current = state::running;
    st.symbols_done = 0;
    st.truth = hw.truth();
    symbols = 0;
    last_heard = now;
    round_started = now;
    send_control(kind::ready, round);
  }

  // Alice emits on demand: the frames a sift message refers to must exist before it is handled.
  void alice_emit_through(std::uint64_t first_symbol) {
    while (symbols <= first_symbol && symbols < cfg.round.n_symbols && end && !end->finished()) {
      const auto n = static_cast<std::size_t>(std::min(cfg.frame_symbols, cfg.round.n_symbols - symbols));
      auto f = hw.emit(n);
      if (!f) return fail_engine("device: " + f.error().message);
      (void)end->on_alice_frame(*f);
      symbols += n;
      st.symbols_done = symbols;
    }
  }

  // ---- both ----

  // The round's authentication key as this end uses it: under the authentication drill one bit of
  // the hash key (the first bytes) flipped, so every tag this end makes or checks disagrees with the
  // peer's. The pool's copy is untouched and the bytes are never logged.
  secure_buffer drilled(secure_buffer key) const {
    if (corrupt_auth && key.size() > 0) key.data()[0] ^= std::byte{0x01};
    return key;
  }

  void count_malformed() { ++st.malformed_messages; }

  bool timeouts(time_point now) {
    if (!end) return false;
    if (now - last_heard >= cfg.round_timeout) {
      end->abort(fmt::format("nothing heard from the peer for {} s: the round is aborted",
                             std::chrono::duration_cast<std::chrono::seconds>(cfg.round_timeout).count()));
      finish_round(now);
      return true;
    }
    // A silent peer is usually busy decoding, not missing anything: probe with the oldest
    // unacknowledged message, at intervals that double while nothing is heard (bounded), instead
    // of flooding the channel with every message each time (peer_connected resends all).
    const auto interval = cfg.resend_after * (std::int64_t{1} << std::min<unsigned>(silent_resends, 6));
    if (now - last_heard >= cfg.resend_after && now - last_resend >= interval) {
      end->retransmit(1);
      last_resend = now;
      ++silent_resends;
      ++st.resends;
    }
    return false;
  }

  void finish_round(time_point now) {
    const auto rep = end->report();
    st.last_round = rep;
    st.last_round_end = now;
    st.last_round_seconds = std::chrono::duration<double>(now - round_started).count();
    if (rep.status == round_report::state::done) {
      secure_buffer reserve;
      if (auto r = keys->take(keys->available()); r) reserve = std::move(*r);
      secure_buffer key = sink.block_ ? std::move(sink.block_->key) : secure_buffer{};
      const auto bits = 8 * key.size();
      auto ok = cfg.self == role::bob ? store.commit(st.round, key, reserve) : store.hold(st.round, key, reserve);
      drop_round();
      if (!ok) return fail_engine("cannot store the round's key: " + ok.error().message);
      ++st.rounds_completed;
      if (cfg.self == role::bob) {
        st.committed_round = st.round;
        st.key_bits_committed += bits;
      } else {
        st.key_bits_committed += bits;  // held; released into the pool when Bob's next start confirms it
      }
      st.last_error.clear();
    } else {
      ++st.rounds_aborted;
      st.last_error = rep.abort_reason;
      drop_round();
    }
    if (st.current != state::failed) st.current = state::idle;
  }

  void receive(std::span<const std::byte> bytes, time_point now) {
    reader r(bytes);
    const auto k = static_cast<kind>(r.u8());
    if (!r.ok()) return count_malformed();
    if (k == kind::proto) {
      auto e = decode_envelope(r);
      if (!e) return count_malformed();
      if (e->from == cfg.self) return;
      if (!end || e->round != st.round) {
        // Alice lost this round (a restart): tell Bob at once instead of letting him time out.
        if (cfg.self == role::alice && e->round > st.committed_round && (!end || e->round > st.round) &&
            e->type != msg_type::abort)
          send_control(kind::retry, e->round, [&](writer& w) {
            w.u64(std::max(highest_seen, e->round) + 1);
            w.u8(0);
            w.text("Alice has no state for this round (she restarted)");
          });
        return;  // stale or foreign
      }
      last_heard = now;
      silent_resends = 0;
      if (cfg.self == role::alice && e->type == msg_type::sift) {
        if (auto first = sift_first_symbol(*e)) alice_emit_through(*first);
        if (!end) return;
      }
      end->receive(*e);
      if (end->finished()) finish_round(now);
      return;
    }
    const auto round = r.u64();
    if (!r.ok()) return count_malformed();
    switch (k) {
      case kind::start:
        if (cfg.self == role::alice) alice_on_start(r, round, now);
        return;
      case kind::ready:
        if (cfg.self == role::bob) bob_on_ready(round, now);
        return;
      case kind::retry:
        if (cfg.self == role::bob) bob_on_retry(r, round);
        return;
      default: return count_malformed();
    }
  }
};

link_engine::link_engine(std::unique_ptr<impl> p) : impl_(std::move(p)) {}
link_engine::~link_engine() = default;

expected<std::unique_ptr<link_engine>> link_engine::create(engine_config config, link_hardware& hardware,
                                                           link_state_store& store, wire& out, random_source& rng) {
  if (auto ok = config.validate(); !ok) return std::unexpected(ok.error());
  auto committed = store.committed_round();
  if (!committed) return std::unexpected(committed.error());
  auto p = std::make_unique<impl>(std::move(config), hardware, store, out, rng);
  p->st.committed_round = *committed;
  p->st.round = *committed;
  p->highest_seen = *committed;
  if (p->cfg.self == role::alice) {
    auto held = store.held_round();
    if (!held) return std::unexpected(held.error());
    if (*held) p->highest_seen = std::max(p->highest_seen, **held);
  }
  return std::unique_ptr<link_engine>(new link_engine(std::move(p)));
}

void link_engine::receive(std::span<const std::byte> bytes, engine_clock::time_point now) { impl_->receive(bytes, now); }

bool link_engine::step(engine_clock::time_point now) {
  auto& p = *impl_;
  if (p.cfg.self == role::bob) return p.bob_step(now);
  if (p.end && p.end->finished()) {
    p.finish_round(now);
    return true;
  }
  return p.timeouts(now);
}

void link_engine::peer_connected(engine_clock::time_point now) {
  auto& p = *impl_;
  p.peer_up = true;
  if (p.cfg.self == role::bob && p.st.current == impl::state::handshake) p.send_start(now);
  if (p.end && !p.end->finished()) {
    p.end->retransmit();
    p.last_resend = now;
  }
  if (p.st.current == impl::state::waiting_peer) p.st.current = impl::state::idle;
}

void link_engine::peer_lost(const std::string& why) {
  auto& p = *impl_;
  p.peer_up = false;
  // The round survives a short outage (messages are resent after reconnecting); the round
  // timeout aborts it if the peer stays away.
  if (!p.end && p.st.current != impl::state::failed) p.st.current = impl::state::waiting_peer;
  p.st.last_error = "peer unreachable: " + why;
}

void link_engine::stop(const std::string& why) {
  auto& p = *impl_;
  p.stopped = true;
  if (p.end && !p.end->finished()) {
    p.end->abort(why);
    p.finish_round(engine_clock::now());
  }
  if (p.st.current != impl::state::failed) p.st.current = impl::state::idle;
}

void link_engine::corrupt_authentication(bool on) noexcept { impl_->corrupt_auth = on; }

const engine_status& link_engine::status() const noexcept { return impl_->st; }

}  // namespace cvqkd::links
