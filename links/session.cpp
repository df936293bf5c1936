#include "links/session.hpp"

#include <fmt/format.h>

#include <chrono>
#include <deque>

#include "core/drbg.hpp"

namespace cvqkd::links {
namespace {

using clock = std::chrono::steady_clock;

class memory_sink final : public key_sink {
public:
  expected<void> deliver(key_block block) override {
    blocks.push_back(std::move(block));
    return {};
  }
  std::vector<key_block> blocks;
};

// The classical channel: one queue per direction, with seeded faults.
class wire {
public:
  wire(const channel_faults& f) : faults_(f), rng_(f.seed, "classical-channel") {}

  class end final : public transport {
  public:
    end(wire& w, std::deque<envelope>& q) : w_(w), q_(q) {}
    void send(const envelope& e) override { w_.post(q_, e); }

  private:
    wire& w_;
    std::deque<envelope>& q_;
  };

  void post(std::deque<envelope>& q, envelope e) {
    ++messages;
    if (faults_.tamper && e.type == *faults_.tamper && !tampered_ && !e.body.empty()) {
      e.body[e.body.size() / 2] ^= std::byte{0x10};
      tampered_ = true;
    }
    if (rng_.next_unit() < faults_.drop) return;
    const bool dup = rng_.next_unit() < faults_.duplicate;
    if (!q.empty() && rng_.next_unit() < faults_.reorder) q.insert(q.end() - 1, e);
    else q.push_back(e);
    if (dup) q.push_back(std::move(e));
  }

  std::deque<envelope> to_alice, to_bob;
  std::uint64_t messages = 0;

private:
  channel_faults faults_;
  seeded_drbg rng_;
  bool tampered_ = false;
};

}  // namespace

expected<session_report> run_session(const session_config& config) {
  const auto& c = config.link;
  if (auto r = validate(c); !r) return std::unexpected(r.error());
  const auto start = clock::now();
  auto link = hw::make_simulated_link(c.hardware);
  if (!link) return std::unexpected(link.error());
  auto cal = (*link)->bob().calibrate();
  if (!cal) return std::unexpected(cal.error());

  session_report rep;
  rep.truth = (*link)->truth();
  round_parameters params;
  params.round = 1;
  params.n_symbols = c.symbols;
  params.n_pe = c.n_pe == 0 ? c.symbols / 2 : c.n_pe;
  params.public_seed = c.hardware.seed;
  params.profile = c.hardware.profile;
  params.model = c.model;
  params.eps = c.eps;
  params.beta_target = c.beta == 0.0 ? c.hardware.profile.beta_target : c.beta;
  params.short_codes = config.short_codes;
  params.max_iterations = config.max_iterations;

  // Commissioning: both ends hold the same pre-shared secret.
  secure_buffer psk(64 * 1024);
  seeded_drbg(c.hardware.seed, "pre-shared-authentication-secret").fill(psk.bytes());
  auth_key_stream alice_keys(psk.clone()), bob_keys(std::move(psk));

  wire w(config.channel);
  wire::end alice_out(w, w.to_bob), bob_out(w, w.to_alice);
  memory_sink alice_sink, bob_sink;
  seeded_drbg alice_rng(c.hardware.seed, "alice-private"), bob_rng(c.hardware.seed, "bob-private");
  auto alice = link_end::create(role::alice, params, alice_keys, alice_out, alice_sink, alice_rng);
  if (!alice) return std::unexpected(alice.error());
  auto bob = link_end::create(role::bob, params, bob_keys, bob_out, bob_sink, bob_rng);
  if (!bob) return std::unexpected(bob.error());

  const auto pump = [&] {
    while (!w.to_alice.empty() || !w.to_bob.empty()) {
      if (!w.to_bob.empty()) {
        auto e = std::move(w.to_bob.front());
        w.to_bob.pop_front();
        (*bob)->receive(e);
      }
      if (!w.to_alice.empty()) {
        auto e = std::move(w.to_alice.front());
        w.to_alice.pop_front();
        (*alice)->receive(e);
      }
    }
  };

  double hardware_seconds = 0;
  for (std::uint64_t done = 0; done < c.symbols && !(*alice)->finished() && !(*bob)->finished();) {
    const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(c.frame_symbols, c.symbols - done));
    const auto t0 = clock::now();
    auto a = (*link)->alice().emit(n);
    if (!a) return std::unexpected(a.error());
    auto b = (*link)->bob().measure(n);
    if (!b) return std::unexpected(b.error());
    hardware_seconds += std::chrono::duration<double>(clock::now() - t0).count();
    rep.clipped_samples += b->clipped_samples;
    rep.lost_symbols += b->lost_symbols;
    if (auto ok = (*alice)->on_alice_frame(*a); !ok) return std::unexpected(ok.error());
    (void)(*bob)->on_bob_frame(*b, *cal);  // a failure aborts the round; the report says why
    pump();
    done += n;
  }
  (void)(*bob)->end_of_block();
  pump();
  // Timeouts: resend what was not acknowledged until both ends are done (bounded).
  for (int i = 0; i < 10000 && !((*alice)->finished() && (*bob)->finished()); ++i) {
    ++rep.retransmissions;
    (*alice)->retransmit();
    (*bob)->retransmit();
    pump();
  }
  if (!((*alice)->finished() && (*bob)->finished())) {
    (*alice)->abort("the round did not complete over the classical channel (too many lost messages?)");
    (*bob)->abort("the round did not complete over the classical channel (too many lost messages?)");
  }

  rep.alice = (*alice)->report();
  rep.bob = (*bob)->report();
  rep.messages = w.messages;
  const bool both_done = rep.alice.status == round_report::state::done && rep.bob.status == round_report::state::done;
  if (both_done && alice_sink.blocks.size() == 1 && bob_sink.blocks.size() == 1) {
    const auto& ka = alice_sink.blocks.front().key;
    const auto& kb = bob_sink.blocks.front().key;
    rep.keys_identical = constant_time_equal(ka.bytes(), kb.bytes()) &&
                         alice_sink.blocks.front().sequence == bob_sink.blocks.front().sequence;
    rep.secret_key_bits = rep.keys_identical ? 8 * ka.size() : 0;
  } else {
    rep.keys_identical = alice_sink.blocks.empty() && bob_sink.blocks.empty();  // nothing released anywhere
    rep.abort_reason = !rep.alice.abort_reason.empty() ? rep.alice.abort_reason : rep.bob.abort_reason;
    if (rep.abort_reason.empty()) rep.abort_reason = "the round ended without a key";
  }
  rep.bits_per_symbol = static_cast<double>(rep.secret_key_bits) / static_cast<double>(c.symbols);
  if (rep.alice.bound)
    rep.finite_size_bound = rep.alice.bound->key_rate * static_cast<double>(params.n_pe + rep.alice.frames *
                                                                            rep.alice.code_length /
                                                                            (c.hardware.profile.detection ==
                                                                                 detection::homodyne ? 1 : 2)) /
                            static_cast<double>(c.symbols);
  rep.seconds_hardware = hardware_seconds;
  rep.seconds_total = std::chrono::duration<double>(clock::now() - start).count();
  return rep;
}

}  // namespace cvqkd::links
