// The multi-round link engine (links/engine.hpp) over the real key store (node/link_store.hpp):
// two ends exchange bytes through an in-memory channel that can drop, duplicate and reorder, and
// either end can "crash" (engine and store destroyed mid-round, the store reopened from disk).
// After every scenario both ends' pools must hold identical bytes, and no authentication key
// position may be used twice.
#include <gtest/gtest.h>

#include <cstdio>
#include <deque>
#include <memory>

#include "config/profile.hpp"
#include "core/drbg.hpp"
#include "links/engine.hpp"
#include "node/link_store.hpp"
#include "storage/key_store.hpp"
#include "storage_test_support.hpp"
#include "test_seed.hpp"

namespace cvqkd {
namespace {

using links::role;
using test_support::temp_dir;
using namespace std::chrono_literals;

constexpr const char* link_id = "A-B";

hw::simulator_config hardware() {
  hw::simulator_config c;
  c.profile = *config::builtin_profile("highrate_metro");
  c.transmittance = fibre_transmittance(1.0, 0.2, 1.0);
  c.seed = 7;
  return c;
}

links::engine_config engine_cfg(role r) {
  links::engine_config c;
  c.link_id = link_id;
  c.self = r;
  c.round.n_symbols = 1'000'000;
  c.round.n_pe = 500'000;
  c.round.profile = hardware().profile;
  c.round.beta_target = 0.8;
  c.round.short_codes = true;
  c.frame_symbols = 1u << 17;
  c.resend_after = 200ms;
  c.round_timeout = 5s;
  return c;
}

// One end: its store on disk, the adapter, hardware, engine. crash() destroys all but the disk.
struct end_point {
  role self;
  temp_dir dir;
  std::vector<std::byte> psk;
  std::unique_ptr<storage::key_store> store;
  std::unique_ptr<links::link_state_store> state;
  std::unique_ptr<links::simulated_hardware> hw;
  std::unique_ptr<links::link_engine> engine;
  std::unique_ptr<seeded_drbg> rng;
  links::wire* out = nullptr;
  std::uint64_t restarts = 0;

  end_point(role r, std::vector<std::byte> secret, links::wire& w) : self(r), psk(std::move(secret)), out(&w) {
    EXPECT_TRUE(storage::create_kek_file(dir.path() / "kek").has_value());
    start();
  }

  void start() {
    storage::store_options o;
    o.directory = dir.path() / "db";
    o.kek_file = dir.path() / "kek";
    o.node_id = self == role::alice ? "A" : "B";
    auto s = storage::key_store::open(o);
    ASSERT_TRUE(s.has_value()) << to_string(s.error());
    store = std::move(*s);
    auto st = node::open_link_state(*store, link_id, psk);
    ASSERT_TRUE(st.has_value()) << to_string(st.error());
    state = std::move(*st);
    auto h = links::simulated_hardware::create(self, hardware());
    ASSERT_TRUE(h.has_value());
    hw = std::move(*h);
    rng = std::make_unique<seeded_drbg>(100 + restarts + (self == role::bob ? 50 : 0), "engine-test");
    auto e = links::link_engine::create(engine_cfg(self), *hw, *state, *out, *rng);
    ASSERT_TRUE(e.has_value()) << to_string(e.error());
    engine = std::move(*e);
  }

  void crash() {
    engine.reset();
    state.reset();
    hw.reset();
    store.reset();
    ++restarts;
    start();
  }

  // Every byte of both key pools, consumed (after the run).
  std::vector<std::byte> drain(storage::direction d) {
    const storage::pool_id p{link_id, d};
    auto s = store->status(p);
    EXPECT_TRUE(s.has_value());
    if (!s || s->available_bits == 0) return {};
    auto t = store->take(p, s->available_bits);
    EXPECT_TRUE(t.has_value());
    return {t->bytes.bytes().begin(), t->bytes.bytes().end()};
  }
};

// The classical channel between the two engines, with seeded faults.
class channel {
public:
  struct faults {
    double drop = 0, duplicate = 0, reorder = 0;
  };
  channel(faults f, std::uint64_t seed) : f_(f), rng_(seed, "engine-test-channel") {}

  class end final : public links::wire {
  public:
    end(channel& c, std::deque<std::vector<std::byte>>& q) : c_(c), q_(q) {}
    void send(std::vector<std::byte> b) override { c_.post(q_, std::move(b)); }

  private:
    channel& c_;
    std::deque<std::vector<std::byte>>& q_;
  };

  void post(std::deque<std::vector<std::byte>>& q, std::vector<std::byte> b) {
    if (!up) return;
    if (rng_.next_unit() < f_.drop) return;
    const bool dup = rng_.next_unit() < f_.duplicate;
    if (!q.empty() && rng_.next_unit() < f_.reorder) q.insert(q.end() - 1, b);
    else q.push_back(b);
    if (dup) q.push_back(std::move(b));
  }

  std::deque<std::vector<std::byte>> to_alice, to_bob;
  bool up = true;

private:
  faults f_;
  seeded_drbg rng_;
};

struct harness {
  channel ch;
  channel::end alice_out{ch, ch.to_bob}, bob_out{ch, ch.to_alice};
  std::vector<std::byte> psk;
  std::unique_ptr<end_point> alice, bob;
  links::engine_clock::time_point now{};

  harness(channel::faults f, std::uint64_t seed) : ch(f, seed), psk(4096) {
    seeded_drbg(seed, "psk").fill(psk);
    alice = std::make_unique<end_point>(role::alice, psk, alice_out);
    bob = std::make_unique<end_point>(role::bob, psk, bob_out);
    alice->engine->peer_connected(now);
    bob->engine->peer_connected(now);
  }

  // One tick: each engine does its work, then the channel delivers what is queued.
  void tick() {
    now += 20ms;
    for (int i = 0; i < 2 && bob->engine->step(now); ++i) pump();
    (void)alice->engine->step(now);
    pump();
  }
  void pump() {
    for (int guard = 0; guard < 100000 && (!ch.to_alice.empty() || !ch.to_bob.empty()); ++guard) {
      if (!ch.to_bob.empty()) {
        auto b = std::move(ch.to_bob.front());
        ch.to_bob.pop_front();
        bob->engine->receive(b, now);
      }
      if (!ch.to_alice.empty()) {
        auto b = std::move(ch.to_alice.front());
        ch.to_alice.pop_front();
        alice->engine->receive(b, now);
      }
    }
  }
  // Runs until Bob has committed `rounds` rounds (bounded).
  bool run_until(std::uint64_t rounds, int max_ticks = 20000) {
    for (int i = 0; i < max_ticks; ++i) {
      if (bob->engine->status().committed_round >= rounds) return true;
      if (bob->engine->status().current == links::engine_status::state::failed) return false;
      tick();
    }
    return false;
  }
  // Lets Alice settle her held round (Bob's next start carries his committed round), then stops
  // both ends; the round stopped in flight commits nothing anywhere.
  void settle() {
    for (int i = 0; i < 2000 && alice->engine->status().committed_round < bob->engine->status().committed_round; ++i)
      tick();
    EXPECT_EQ(alice->engine->status().committed_round, bob->engine->status().committed_round);
    bob->engine->stop("end of test");
    for (int i = 0; i < 20; ++i) tick();
    EXPECT_EQ(alice->engine->status().committed_round, bob->engine->status().committed_round);
  }
  void expect_identical_pools() {
    const auto af = alice->drain(storage::direction::forward), bf = bob->drain(storage::direction::forward);
    const auto ar = alice->drain(storage::direction::reverse), br = bob->drain(storage::direction::reverse);
    EXPECT_GT(af.size(), 0u);
    EXPECT_EQ(af.size(), bf.size());
    EXPECT_TRUE(af == bf) << "forward pools differ";
    EXPECT_EQ(ar.size(), br.size());
    EXPECT_TRUE(ar == br) << "reverse pools differ";
    EXPECT_FALSE(af == ar) << "the two directions must hold different key";
  }
};

TEST(link_engine, two_ends_build_identical_pools_round_after_round) {
  const auto seed = test_support::base_seed() + 1;
  SCOPED_TRACE(test_support::seed_note(seed));
  harness h({}, seed);
  ASSERT_TRUE(h.run_until(3)) << h.bob->engine->status().last_error;
  const auto b = h.bob->engine->status();
  EXPECT_GE(b.rounds_completed, 3u);
  EXPECT_EQ(b.rounds_aborted, 0u) << b.last_error;
  ASSERT_TRUE(b.last_round.has_value());
  EXPECT_GT(b.last_round->secret_bits, 0u);
  EXPECT_GT(b.last_round->beta, 0.75);
  // Alice has released every round Bob committed except possibly the last (still held).
  EXPECT_GE(h.alice->engine->status().committed_round + 1, b.committed_round);
  h.settle();
  h.expect_identical_pools();
}

TEST(link_engine, lossy_duplicating_reordering_channel_changes_nothing) {
  const auto seed = test_support::base_seed() + 2;
  SCOPED_TRACE(test_support::seed_note(seed));
  harness h({.drop = 0.05, .duplicate = 0.05, .reorder = 0.1}, seed);
  ASSERT_TRUE(h.run_until(2)) << h.bob->engine->status().last_error;
  h.settle();
  EXPECT_GT(h.bob->engine->status().resends + h.alice->engine->status().resends, 0u);
  h.expect_identical_pools();
}

TEST(link_engine, crashes_of_either_end_mid_round_leave_the_pools_identical) {
  const auto seed = test_support::base_seed() + 3;
  SCOPED_TRACE(test_support::seed_note(seed));
  harness h({}, seed);
  seeded_drbg dice(seed, "crash-points");
  std::uint64_t crashes = 0;
  int next_crash = 1 + static_cast<int>(dice.next_unit() * 6);
  for (int i = 0; i < 30000 && (h.bob->engine->status().committed_round < 4 || crashes < 4); ++i) {
    h.tick();
    ASSERT_NE(h.bob->engine->status().current, links::engine_status::state::failed) << h.bob->engine->status().last_error;
    ASSERT_NE(h.alice->engine->status().current, links::engine_status::state::failed) << h.alice->engine->status().last_error;
    if (crashes < 4 && i == next_crash) {
      next_crash = i + 1 + static_cast<int>(dice.next_unit() * 6);
      // In-flight messages die with the connection.
      h.ch.to_alice.clear();
      h.ch.to_bob.clear();
      auto& victim = (dice.next_unit() < 0.5) ? h.alice : h.bob;
      victim->crash();
      h.alice->engine->peer_connected(h.now);
      h.bob->engine->peer_connected(h.now);
      ++crashes;
    }
  }
  EXPECT_GE(h.bob->engine->status().committed_round, 4u);
  EXPECT_EQ(crashes, 4u);
  h.settle();
  h.expect_identical_pools();
}

TEST(link_engine, a_lost_confirm_ack_is_settled_by_the_next_round) {
  // Alice holds her key; the start of Bob's next round tells her whether to release it.
  const auto seed = test_support::base_seed() + 4;
  SCOPED_TRACE(test_support::seed_note(seed));
  harness h({}, seed);
  // Step Bob one frame at a time and stop right after he committed round 1, before his next start.
  for (int i = 0; i < 10000 && h.bob->engine->status().committed_round < 1; ++i) {
    h.now += 20ms;
    (void)h.bob->engine->step(h.now);
    h.pump();
  }
  ASSERT_EQ(h.bob->engine->status().committed_round, 1u);
  // Alice's round-1 key is held, not yet in her pool.
  auto held = h.alice->state->held_round();
  ASSERT_TRUE(held.has_value());
  EXPECT_EQ(held->value_or(0), 1u);
  EXPECT_EQ(*h.alice->state->committed_round(), 0u);
  // Bob crashes before his next start: the restarted Bob's first start still names round 1.
  h.bob->crash();
  h.bob->engine->peer_connected(h.now);
  h.settle();
  EXPECT_GE(*h.alice->state->committed_round(), 1u);
  h.expect_identical_pools();
}

TEST(link_engine, alice_restarting_between_her_ready_and_the_round_costs_only_authentication_key) {
  // Alice takes the round's authentication key and answers ready; the ready is lost and Alice
  // restarts. Bob resends the same start: its position is used at Alice now, so she asks for a
  // retry and both move on to fresh key instead of failing.
  const auto seed = test_support::base_seed() + 6;
  SCOPED_TRACE(test_support::seed_note(seed));
  harness h({}, seed);
  h.now += 20ms;
  (void)h.bob->engine->step(h.now);  // sends start
  ASSERT_EQ(h.ch.to_alice.size(), 1u);
  auto start = std::move(h.ch.to_alice.front());
  h.ch.to_alice.clear();
  h.alice->engine->receive(start, h.now);  // Alice takes the key, answers ready
  h.ch.to_bob.clear();                     // ... which is lost
  h.alice->crash();
  h.alice->engine->peer_connected(h.now);
  ASSERT_TRUE(h.run_until(2)) << h.bob->engine->status().last_error << " / " << h.alice->engine->status().last_error;
  EXPECT_NE(h.alice->engine->status().current, links::engine_status::state::failed);
  h.settle();
  h.expect_identical_pools();
}

// Drills through the real paths: a corrupted authentication key at Alice's end makes Bob's check
// of her first tag fail (the round aborts with the protocol's authentication error and commits
// nothing); a digitizer losing 5% of the symbols and a receiver flooded with 10x the light are
// vetoed; once cleared, rounds commit again and both pools stay identical.
TEST(link_engine, drill_faults_abort_rounds_through_the_real_checks_and_clear) {
  const auto seed = test_support::base_seed() + 6;
  SCOPED_TRACE(test_support::seed_note(seed));
  harness h({}, seed);
  ASSERT_TRUE(h.run_until(1)) << h.bob->engine->status().last_error;
  // Runs until Bob has finished one more round (bounded), returns his status.
  const auto next_round = [&] {
    const auto& b = h.bob->engine->status();
    const auto before = b.rounds_completed + b.rounds_aborted;
    for (int i = 0; i < 20000 && b.rounds_completed + b.rounds_aborted == before; ++i) h.tick();
    return b;
  };
  const auto expect_abort = [&](const std::string& says) {
    const auto committed = h.bob->engine->status().committed_round;
    // The round in progress may have been measured before the fault: at most one more.
    auto b = next_round();
    if (b.last_round && b.last_round->status == links::round_report::state::done) b = next_round();
    ASSERT_TRUE(b.last_round.has_value());
    EXPECT_EQ(b.last_round->status, links::round_report::state::aborted);
    EXPECT_NE(b.last_error.find(says), std::string::npos) << b.last_error;
    EXPECT_LE(b.committed_round, committed + 1);
    std::printf("drill abort (%s): %s\n", says.c_str(), b.last_error.c_str());
  };

  h.alice->engine->corrupt_authentication(true);
  expect_abort("failed authentication");
  const auto stuck = h.bob->engine->status().committed_round;
  expect_abort("failed authentication");
  EXPECT_EQ(h.bob->engine->status().committed_round, stuck) << "no key while authentication fails";
  EXPECT_NE(h.alice->engine->status().current, links::engine_status::state::failed);
  h.alice->engine->corrupt_authentication(false);
  // The round in progress still carries the corrupted key; the next one must commit again.
  const auto healed = h.bob->engine->status().committed_round;
  ASSERT_TRUE(h.run_until(healed + 1)) << h.bob->engine->status().last_error;

  hw::fault_state loss;
  loss.sample_loss_probability = 0.05;
  ASSERT_TRUE(h.bob->hw->set_faults(loss).has_value());
  expect_abort("sample loss");
  hw::fault_state bright;
  bright.optical_power_factor = 10.0;
  ASSERT_TRUE(h.bob->hw->set_faults(bright).has_value());
  expect_abort("detector saturation");
  ASSERT_TRUE(h.bob->hw->set_faults(hw::fault_state{}).has_value());

  const auto resumed = h.bob->engine->status().committed_round;
  ASSERT_TRUE(h.run_until(resumed + 1)) << h.bob->engine->status().last_error;
  h.settle();
  h.expect_identical_pools();
}

TEST(link_engine, bad_configuration_and_garbage_bytes_are_refused_cleanly) {
  auto c = engine_cfg(role::bob);
  c.frame_symbols = 10;
  EXPECT_FALSE(c.validate().has_value());
  c = engine_cfg(role::bob);
  c.round.n_pe = c.round.n_symbols;
  EXPECT_FALSE(c.validate().has_value());

  harness h({}, test_support::base_seed() + 5);
  const std::vector<std::byte> junk{std::byte{4}, std::byte{1}, std::byte{2}};
  h.alice->engine->receive(junk, h.now);
  h.alice->engine->receive({}, h.now);
  EXPECT_EQ(h.alice->engine->status().malformed_messages, 2u);
  EXPECT_NE(h.alice->engine->status().current, links::engine_status::state::failed);
}

}  // namespace
}  // namespace cvqkd
