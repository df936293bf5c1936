// The node's actors on CAF's deterministic test coordinator, as message traces: the endpoint's
// peer authentication and forwarding, the supervisor's restarts with backoff, status replies.
// Mocks implement the real typed interfaces (actors/interfaces.hpp).
#define GTEST_DONT_DEFINE_FAIL 1
#include <gtest/gtest.h>

#define CAF_TEST_NO_MAIN
#define FAIL(msg) CAF_FAIL(msg)
#include <caf/test/dsl.hpp>
#include <caf/test/unit_test_impl.hpp>
#include <caf/typed_event_based_actor.hpp>

#include <memory>
#include <string>

#include "actors/link_actor.hpp"
#include "actors/node_actors.hpp"
#include "actors/system.hpp"

namespace {

using namespace cvqkd;
using namespace cvqkd::actors;

struct test_config : caf::actor_system_config {
  test_config() {
    // The fixture parses the CAF test engine's argv: give it a program name (no CAF test main here).
    static char name[] = "actors_test";
    static char* argv[] = {name, nullptr};
    caf::test::engine::args(1, argv);
    cvqkd::actors::add_message_types(*this);
  }
};

struct fixture : test_coordinator_fixture<test_config> {};

// Mock PKI: a certificate is "cert:<CN>", a signature is "sig:<CN>:" followed by the message.
std::vector<std::byte> mock_sig(const std::string& cn, std::span<const std::byte> m) {
  std::vector<std::byte> s;
  for (char c : "sig:" + cn + ":") s.push_back(std::byte(c));
  s.insert(s.end(), m.begin(), m.end());
  return s;
}

node_identity mock_identity(const std::string& node_id) {
  node_identity id;
  id.node_id = node_id;
  id.certificate_pem = "cert:" + node_id;
  id.sign = [node_id](std::span<const std::byte> m) -> expected<std::vector<std::byte>> { return mock_sig(node_id, m); };
  id.verify_node_certificate = [](const std::string& pem) -> expected<std::string> {
    if (pem.rfind("cert:", 0) != 0) return fail(errc::config_error, "issued by another CA");
    return pem.substr(5);
  };
  id.verify_signature = [](const std::string& pem, std::span<const std::byte> m,
                           std::span<const std::byte> sig) -> expected<void> {
    const auto want = mock_sig(pem.substr(5), m);
    if (!std::equal(want.begin(), want.end(), sig.begin(), sig.end()))
      return fail(errc::invalid_argument, "the signature does not match");
    return {};
  };
  id.make_nonce = [] { return std::vector<std::uint8_t>(32, 7); };
  return id;
}

std::vector<std::uint8_t> u8(const std::vector<std::byte>& b) {
  std::vector<std::uint8_t> out;
  for (auto x : b) out.push_back(std::to_integer<std::uint8_t>(x));
  return out;
}

// A link actor that records what reaches it; fails at spawn when told to.
struct mock_counts {
  std::size_t bytes_received = 0, peer_ups = 0, stops = 0;
  std::vector<link_faults> faults;  // drill faults received, in order
};
struct mock_link_state {
  static inline const char* name = "mock.link";
  std::shared_ptr<mock_counts> counts = std::make_shared<mock_counts>();
};
using mock_link_pointer = link_actor::stateful_pointer<mock_link_state>;

link_actor::behavior_type mock_link(mock_link_pointer self, std::string link_id, bool fail_at_start,
                                    std::shared_ptr<mock_counts> counts,
                                    supervisor_actor /*reports: unused by the mock*/) {
  if (counts) self->state.counts = counts;
  if (fail_at_start) self->quit(make_caf_error(actor_errc::device_fault, "simulated device fault"));
  return {
    [self](link_bytes&) { ++self->state.counts->bytes_received; },
    [](step_atom) {},
    [](tick_atom) {},
    [](dial_atom) {},
    [self](peer_up_atom, caf::actor&) { ++self->state.counts->peer_ups; },
    [](peer_down_atom, std::string&) {},
    [self](drill_atom, link_faults& f) { self->state.counts->faults.push_back(f); },
    [link_id](status_atom) -> link_status {
      link_status s;
      s.link_id = link_id;
      s.engine_state = "running";
      return s;
    },
    [self](stop_atom) -> bool {
      ++self->state.counts->stops;
      self->quit();
      return true;
    },
  };
}

// The unused argument: CAF 0.17 stores a spawn's arguments in a shared_ptr<tuple<...>> and binds a
// reference through it even when there are none (a null pointer UBSan rejects).
supervisor_actor::behavior_type mock_supervisor(supervisor_actor::pointer, int) {
  return {
    [](start_atom, node_endpoint_local_actor) {},
    [](link_status&) {},
    [](restart_atom, const std::string&) {},
    [](status_atom) -> node_status { return node_status{"alice-node", {}}; },
    [](report_atom) -> actor_status { return {}; },
    [](stop_atom) -> bool { return true; },
    [](drill_atom, const std::string&, const std::string&, const link_faults&) -> std::string { return "mock"; },
  };
}

std::uint64_t counter(fixture& f, const node_endpoint_local_actor& ep, const std::string& name) {
  auto rh1 = f.self->request(ep, caf::infinite, report_atom_v);
  f.run();
  std::uint64_t v = 0;
  rh1.receive([&](actor_status& s) { v = s.counters[name]; }, [](caf::error& e) { ADD_FAILURE() << to_string(e); });
  return v;
}

TEST(actors_endpoint, rejects_link_bytes_before_a_verified_hello_then_forwards) {
  fixture f;
  auto sup = f.sys.spawn(mock_supervisor, 0);
  endpoint_config cfg;
  cfg.identity = mock_identity("alice-node");
  cfg.links = {{"L1", "bob-node", "alice", "highrate_metro", 1000000}};
  auto ep = spawn_endpoint(f.sys, cfg, sup);
  auto counts = std::make_shared<mock_counts>();
  auto link = f.sys.spawn(mock_link, std::string("L1"), false, counts, sup);
  f.run();
  f.self->send(ep, register_atom_v, std::string("L1"), caf::actor_cast<caf::actor>(link));
  f.run();
  auto& mock = *counts;

  // Before any hello: dropped and counted.
  f.self->send(ep, link_bytes{"L1", {1, 2, 3}});
  f.run();
  EXPECT_EQ(mock.bytes_received, 0u);
  EXPECT_EQ(counter(f, ep, "messages_rejected"), 1u);

  const std::vector<std::uint8_t> nonce(32, 9);
  // A node that is not the configured peer, and a certificate that names someone else.
  for (auto [who, cert] : {std::pair{"mallory", "cert:mallory"}, {"bob-node", "cert:mallory"}, {"bob-node", "pem?"}}) {
    auto rh2 = f.self->request(ep, caf::infinite, hello_atom_v, hello_request{"L1", who, cert, nonce});
    f.run();
    bool refused = false;
    rh2.receive([](hello_reply&) {}, [&](caf::error& e) { refused = e.category() == error_category(); });
    EXPECT_TRUE(refused) << who << " / " << cert;
  }
  // A link this node does not run.
  auto rh3 = f.self->request(ep, caf::infinite, hello_atom_v, hello_request{"L9", "bob-node", "cert:bob-node", nonce});
  f.run();
  rh3.receive([](hello_reply&) { ADD_FAILURE() << "accepted an unknown link"; },
                  [&](caf::error& e) { EXPECT_EQ(e.code(), static_cast<std::uint8_t>(actor_errc::unknown_link)); });

  // The real peer: step 1 is answered with alice's signed transcript.
  auto rh4 = f.self->request(ep, caf::infinite, hello_atom_v, hello_request{"L1", "bob-node", "cert:bob-node", nonce});
  f.run();
  hello_reply rep;
  rh4.receive([&](hello_reply& r) { rep = r; }, [](caf::error& e) { ADD_FAILURE() << to_string(e); });
  EXPECT_EQ(rep.node_id, "alice-node");
  EXPECT_EQ(rep.signature, u8(mock_sig("alice-node", hello_transcript("alice", "L1", "bob-node", "alice-node", nonce, rep.nonce))));

  // A forged step 2 (signed over the listener's tag instead of the dialler's) is refused...
  auto rh5 = f.self->request(ep, caf::infinite, hello_atom_v,
                  hello_finish{"L1", u8(mock_sig("bob-node", hello_transcript("alice", "L1", "bob-node", "alice-node", nonce, rep.nonce)))});
  f.run();
  rh5.receive([](bool) { ADD_FAILURE() << "accepted a bad signature"; },
                  [](caf::error& e) { EXPECT_EQ(e.code(), static_cast<std::uint8_t>(actor_errc::unauthenticated)); });
  f.self->send(ep, link_bytes{"L1", {4}});
  f.run();
  EXPECT_EQ(mock.bytes_received, 0u);

  // ... the right one (after a fresh step 1) opens the link.
  auto rh6 = f.self->request(ep, caf::infinite, hello_atom_v, hello_request{"L1", "bob-node", "cert:bob-node", nonce});
  f.run();
  rh6.receive([&](hello_reply& r) { rep = r; }, [](caf::error& e) { ADD_FAILURE() << to_string(e); });
  auto rh7 = f.self->request(ep, caf::infinite, hello_atom_v,
                  hello_finish{"L1", u8(mock_sig("bob-node", hello_transcript("bob", "L1", "bob-node", "alice-node", nonce, rep.nonce)))});
  f.run();
  bool accepted = false;
  rh7.receive([&](bool ok) { accepted = ok; }, [](caf::error& e) { ADD_FAILURE() << to_string(e); });
  EXPECT_TRUE(accepted);
  EXPECT_EQ(mock.peer_ups, 1u);
  f.self->send(ep, link_bytes{"L1", {5, 6}});
  f.run();
  EXPECT_EQ(mock.bytes_received, 1u);
  EXPECT_EQ(counter(f, ep, "hellos_accepted"), 1u);
  EXPECT_EQ(counter(f, ep, "hellos_rejected"), 5u);

  // Status requests are delegated to the supervisor.
  auto rh8 = f.self->request(ep, caf::infinite, status_atom_v);
  f.run();
  rh8.receive([](node_status& s) { EXPECT_EQ(s.node_id, "alice-node"); },
                  [](caf::error& e) { ADD_FAILURE() << to_string(e); });
  f.self->send_exit(ep, caf::exit_reason::user_shutdown);
  f.self->send_exit(link, caf::exit_reason::user_shutdown);
  f.self->send_exit(sup, caf::exit_reason::user_shutdown);
  f.run();
}

TEST(actors_supervisor, restart_delay_doubles_up_to_the_cap_with_bounded_jitter) {
  supervisor_config c;
  c.backoff_initial = std::chrono::milliseconds(1000);
  c.backoff_max = std::chrono::milliseconds(8000);
  c.jitter = 0.2;
  EXPECT_EQ(restart_delay(c, 1, 0).count(), 1000);
  EXPECT_EQ(restart_delay(c, 2, 0).count(), 2000);
  EXPECT_EQ(restart_delay(c, 4, 0).count(), 8000);
  EXPECT_EQ(restart_delay(c, 30, 0).count(), 8000);
  EXPECT_EQ(restart_delay(c, 1, 1).count(), 1200);
  EXPECT_EQ(restart_delay(c, 1, -1).count(), 800);
}

TEST(actors_supervisor, restarts_a_failing_link_with_backoff_and_reports_health) {
  fixture f;
  auto spawns = std::make_shared<int>(0);
  supervisor_config c;
  c.node_id = "bob-node";
  c.links = {{"L1", "alice-node", "bob", "highrate_metro", 1000000}};
  c.backoff_initial = std::chrono::milliseconds(1000);
  c.jitter = 0.2;
  c.jitter_seed = 7;
  // Fails at start twice (a device fault), then runs.
  c.spawn = [spawns](caf::actor_system& sys, const std::string& id, supervisor_actor s) -> link_actor {
    ++*spawns;
    return sys.spawn(mock_link, id, *spawns <= 2, std::shared_ptr<mock_counts>{}, s);
  };
  auto sup = spawn_supervisor(f.sys, c);
  auto endpoint = spawn_endpoint(f.sys, endpoint_config{mock_identity("bob-node"), c.links}, sup);
  f.self->send(sup, start_atom_v, endpoint);
  f.consume_messages();
  EXPECT_EQ(*spawns, 1);

  auto status = [&] {
    auto rh9 = f.self->request(sup, caf::infinite, status_atom_v);
    f.consume_messages();
    node_status s;
    rh9.receive([&](node_status& x) { s = x; }, [](caf::error& e) { ADD_FAILURE() << to_string(e); });
    return s;
  };
  auto next_delay = [&] {
    const auto& sched = f.sched.clock().schedule();
    EXPECT_FALSE(sched.empty());
    return std::chrono::duration_cast<std::chrono::milliseconds>(sched.begin()->first - f.sched.clock().current_time);
  };

  // First failure: down, restart after 1 s +- 20%.
  auto s = status();
  ASSERT_EQ(s.links.size(), 1u);
  EXPECT_EQ(s.links[0].health, "down");
  EXPECT_NE(s.links[0].reason.find("simulated device fault"), std::string::npos) << s.links[0].reason;
  auto d1 = next_delay();
  EXPECT_GE(d1.count(), 800);
  EXPECT_LE(d1.count(), 1200);
  f.trigger_timeout();
  f.consume_messages();
  EXPECT_EQ(*spawns, 2);

  // Second failure: twice the delay.
  auto d2 = next_delay();
  EXPECT_GE(d2.count(), 1600);
  EXPECT_LE(d2.count(), 2400);
  f.trigger_timeout();
  f.consume_messages();
  EXPECT_EQ(*spawns, 3);
  s = status();
  EXPECT_EQ(s.links[0].restarts, 2u);
  EXPECT_EQ(s.links[0].health, "degraded");  // alive, no report yet

  // The running link reports a connected peer and a committed round: up.
  auto rh10 = f.self->request(sup, caf::infinite, report_atom_v);
  f.consume_messages();
  rh10.receive([](actor_status& a) {
    EXPECT_EQ(a.counters["failures"], 2u);
    EXPECT_EQ(a.counters["restarts"], 2u);
    EXPECT_EQ(a.counters["links_alive"], 1u);
  }, [](caf::error& e) { ADD_FAILURE() << to_string(e); });

  // Graceful stop: the link gets stop_atom, the supervisor replies when it is gone.
  auto rh11 = f.self->request(sup, caf::infinite, stop_atom_v);
  f.consume_messages();
  bool stopped = false;
  rh11.receive([&](bool ok) { stopped = ok; }, [](caf::error& e) { ADD_FAILURE() << to_string(e); });
  EXPECT_TRUE(stopped);
  s = status();
  EXPECT_EQ(s.links[0].health, "down");
  EXPECT_EQ(s.links[0].reason, "stopped");
  f.self->send_exit(sup, caf::exit_reason::user_shutdown);
  f.self->send_exit(endpoint, caf::exit_reason::user_shutdown);
  f.consume_messages();
}

// Fault drills: the supervisor validates the faults before anything changes, hands them to the
// link actor, hands them again to the actor of every restart, shows them in the link's status,
// and clears them on restore-link.
TEST(actors_supervisor, fault_drills_reach_the_link_actor_survive_restarts_and_clear_on_restore) {
  fixture f;
  auto spawns = std::make_shared<int>(0);
  auto counts = std::make_shared<mock_counts>();
  supervisor_config c;
  c.node_id = "bob-node";
  c.links = {{"L1", "alice-node", "bob", "highrate_metro", 1000000}};
  c.jitter_seed = 5;
  // The second actor fails at start (a restart follows), the others run.
  c.spawn = [spawns, counts](caf::actor_system& sys, const std::string& id, supervisor_actor s) -> link_actor {
    ++*spawns;
    return sys.spawn(mock_link, id, *spawns == 2, counts, s);
  };
  auto sup = spawn_supervisor(f.sys, c);
  auto endpoint = spawn_endpoint(f.sys, endpoint_config{mock_identity("bob-node"), c.links}, sup);
  f.self->send(sup, start_atom_v, endpoint);
  f.consume_messages();
  ASSERT_EQ(*spawns, 1);

  auto drill = [&](const std::string& action, const std::string& link, const link_faults& lf) {
    auto rh = f.self->request(sup, caf::infinite, drill_atom_v, action, link, lf);
    f.consume_messages();
    std::string out;
    rh.receive([&](std::string& r) { out = r; }, [&](caf::error& e) { out = "error: " + describe(e); });
    return out;
  };
  auto status = [&] {
    auto rh = f.self->request(sup, caf::infinite, status_atom_v);
    f.consume_messages();
    node_status s;
    rh.receive([&](node_status& x) { s = x; }, [](caf::error& e) { ADD_FAILURE() << to_string(e); });
    return s;
  };

  // Bad input: out of range, nothing set, unknown link, unknown action. Nothing reaches the link.
  link_faults bad;
  bad.what = "excess-noise xi +-1 SNU";
  bad.excess_noise = -1;
  EXPECT_NE(drill("inject-fault", "L1", bad).find("give a xi in (0, 10] SNU"), std::string::npos);
  bad.excess_noise = 1e9;
  EXPECT_NE(drill("inject-fault", "L1", bad).find("out of range"), std::string::npos);
  EXPECT_NE(drill("inject-fault", "L1", link_faults{"nothing"}).find("sets no fault"), std::string::npos);
  link_faults noise;
  noise.what = "excess-noise xi +0.2 SNU";
  noise.excess_noise = 0.2;
  EXPECT_NE(drill("inject-fault", "L9", noise).find("has no link 'L9'"), std::string::npos);
  EXPECT_NE(drill("melt-fibre", "L1", noise).find("unknown drill"), std::string::npos);
  EXPECT_TRUE(counts->faults.empty());
  EXPECT_EQ(status().links[0].drill, "");

  // A valid fault: the link actor gets it at once; status names it.
  EXPECT_EQ(drill("inject-fault", "L1", noise), "injected");
  ASSERT_EQ(counts->faults.size(), 1u);
  EXPECT_DOUBLE_EQ(counts->faults[0].excess_noise, 0.2);
  EXPECT_EQ(status().links[0].drill, "excess-noise xi +0.2 SNU");

  // A second drill replaces the first.
  link_faults clip;
  clip.what = "detector-saturation optical power x10";
  clip.power_factor = 10;
  EXPECT_EQ(drill("inject-fault", "L1", clip), "injected");  // replaces the noise drill
  ASSERT_EQ(counts->faults.size(), 2u);
  EXPECT_DOUBLE_EQ(counts->faults[1].power_factor, 10.0);
  EXPECT_DOUBLE_EQ(counts->faults[1].excess_noise, 0.0);

  // Cut (a fault drill cannot be injected into a cut link), restore: the new actor gets the fault.
  EXPECT_EQ(drill("cut-link", "L1", {}), "cut");
  EXPECT_NE(drill("inject-fault", "L1", noise).find("restore it"), std::string::npos);
  EXPECT_EQ(drill("restore-link", "L1", {}), "restored");  // clears the fault and the cut
  f.consume_messages();
  EXPECT_EQ(status().links[0].drill, "");
  // The fault was cleared before the respawn (spawn 2, which fails at start): nothing was sent.
  EXPECT_EQ(*spawns, 2);
  EXPECT_EQ(counts->faults.size(), 2u);

  // Injected while the link actor is down: the restarted actor gets it from the supervisor.
  EXPECT_EQ(drill("inject-fault", "L1", noise), "injected");
  EXPECT_EQ(counts->faults.size(), 2u);
  f.trigger_timeout();  // spawn 2's restart timer
  f.consume_messages();
  EXPECT_EQ(*spawns, 3);
  ASSERT_GE(counts->faults.size(), 3u);
  EXPECT_DOUBLE_EQ(counts->faults.back().excess_noise, 0.2);
  EXPECT_EQ(status().links[0].drill, "excess-noise xi +0.2 SNU");

  // restore-link clears it at the running actor (all-zero faults) and in the status.
  EXPECT_EQ(drill("restore-link", "L1", {}), "fault cleared");
  EXPECT_EQ(counts->faults.back().what, "");
  EXPECT_DOUBLE_EQ(counts->faults.back().excess_noise, 0.0);
  EXPECT_EQ(status().links[0].drill, "");
  EXPECT_EQ(drill("restore-link", "L1", {}), "nothing to restore");

  f.self->send_exit(sup, caf::exit_reason::user_shutdown);
  f.self->send_exit(endpoint, caf::exit_reason::user_shutdown);
  f.consume_messages();
}

TEST(actors_link, a_link_that_cannot_start_exits_with_its_reason_and_is_restarted) {
  fixture f;
  auto spawns = std::make_shared<int>(0);
  supervisor_config c;
  c.node_id = "alice-node";
  c.links = {{"L1", "bob-node", "alice", "highrate_metro", 1000000}};
  c.jitter_seed = 3;
  c.spawn = [spawns](caf::actor_system& sys, const std::string& id, supervisor_actor s) -> link_actor {
    ++*spawns;
    link_actor_config lc;
    lc.summary = {id, "bob-node", "alice", "highrate_metro", 1000000};
    lc.supervisor = s;
    lc.make_parts = []() -> expected<link_parts> {
      return fail(errc::config_error, "secrets/L1.psk is missing; run cvqkd pki init");
    };
    return spawn_link(sys, std::move(lc), false);  // not detached: runs on the test coordinator
  };
  auto sup = spawn_supervisor(f.sys, c);
  auto endpoint = spawn_endpoint(f.sys, endpoint_config{mock_identity("alice-node"), c.links}, sup);
  f.self->send(sup, start_atom_v, endpoint);
  f.consume_messages();
  auto rh12 = f.self->request(sup, caf::infinite, status_atom_v);
  f.consume_messages();
  rh12.receive(
    [](node_status& s) {
      ASSERT_EQ(s.links.size(), 1u);
      EXPECT_EQ(s.links[0].health, "down");
      EXPECT_NE(s.links[0].reason.find("secrets/L1.psk is missing"), std::string::npos) << s.links[0].reason;
    },
    [](caf::error& e) { ADD_FAILURE() << to_string(e); });
  f.trigger_timeout();
  f.consume_messages();
  EXPECT_EQ(*spawns, 2);
  f.self->send_exit(sup, caf::exit_reason::user_shutdown);
  f.self->send_exit(endpoint, caf::exit_reason::user_shutdown);
  f.consume_messages();
}

TEST(actors_errors, cvqkd_errors_cross_the_boundary_with_code_and_message) {
  fixture f;
  auto e = to_caf_error(error{errc::device_fault, "the LO lost lock; check the laser"});
  EXPECT_EQ(e.category(), error_category());
  EXPECT_EQ(e.code(), static_cast<std::uint8_t>(errc::device_fault));
  EXPECT_EQ(describe(e), "the LO lost lock; check the laser");
  EXPECT_EQ(f.sys.render(e), "cvqkd: device_fault: the LO lost lock; check the laser");
  EXPECT_EQ(f.sys.render(make_caf_error(actor_errc::unauthenticated, "bad signature")),
            "cvqkd: unauthenticated: bad signature");
}

}  // namespace
