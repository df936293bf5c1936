// The relay and routing state machines on the deterministic network simulator: chains, rings and
// meshes; link flaps, node and link failures mid-relay, tampering, multipath, concurrency, and a
// property test over 100,000 relays that no link-key byte is ever used twice.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <random>
#include <set>
#include <tuple>

#include "relay/sim/network.hpp"
#include "test_seed.hpp"

using namespace cvqkd;
using namespace cvqkd::relay;
using namespace cvqkd::relay::sim;
using namespace std::chrono_literals;

namespace {

std::string nm(int i) { return "n" + std::to_string(i); }

sim_config test_config(std::uint64_t seed) {
  sim_config c;
  c.seed = seed;
  c.latency = 1ms;
  c.tick_interval = 5ms;
  auto& n = c.node_defaults;
  n.attempt_timeout = 200ms;
  n.transit_timeout = 300ms;
  n.retry_backoff = 30ms;
  n.lsa_refresh = 5s;
  n.lsa_max_age = 15s;
  n.min_advertise_interval = 50ms;
  n.max_attempts = 3;
  return c;
}

void build(network& net, int nodes, const std::vector<std::pair<int, int>>& links, std::size_t pool_bytes) {
  for (int i = 0; i < nodes; ++i) ASSERT_TRUE(net.add_node(nm(i)).has_value());
  for (auto [a, b] : links) ASSERT_TRUE(net.add_link(nm(a), nm(b), pool_bytes).has_value());
}

std::vector<std::pair<int, int>> chain(int nodes) {
  std::vector<std::pair<int, int>> l;
  for (int i = 0; i + 1 < nodes; ++i) l.emplace_back(i, i + 1);
  return l;
}

std::vector<std::pair<int, int>> ring(int nodes) {
  auto l = chain(nodes);
  l.emplace_back(nodes - 1, 0);
  return l;
}

// 3x3 grid plus two diagonals.
std::vector<std::pair<int, int>> mesh9() {
  std::vector<std::pair<int, int>> l;
  for (int r = 0; r < 3; ++r)
    for (int c = 0; c < 3; ++c) {
      const int i = 3 * r + c;
      if (c < 2) l.emplace_back(i, i + 1);
      if (r < 2) l.emplace_back(i, i + 3);
    }
  l.emplace_back(0, 4);
  l.emplace_back(4, 8);
  return l;
}

// Independent check of the pools' log: at every end of every stream, no byte is taken or burnt
// twice, and a receiver only ever takes ranges exactly as its sender drew them.
testing::AssertionResult no_link_bit_used_twice(const memory_key_pools& pools) {
  std::map<std::tuple<node_id, node_id, node_id>, std::vector<pool_range>> by_end;
  std::set<std::tuple<node_id, node_id, std::uint64_t, std::uint64_t>> drawn;
  for (const auto& r : pools.log()) {
    by_end[{r.from, r.to, r.at}].push_back(r.range);
    if (r.kind == memory_key_pools::op::take_next) drawn.emplace(r.from, r.to, r.range.offset, r.range.bytes);
  }
  for (const auto& r : pools.log())
    if (r.kind == memory_key_pools::op::take_at && !drawn.contains({r.from, r.to, r.range.offset, r.range.bytes}))
      return testing::AssertionFailure() << r.at << " took [" << r.range.offset << ", " << r.range.end() << ") of " << r.from
                                         << "->" << r.to << " which its sender never drew";
  std::size_t ranges = 0;
  for (auto& [key, v] : by_end) {
    std::sort(v.begin(), v.end(), [](const pool_range& a, const pool_range& b) { return a.offset < b.offset; });
    for (std::size_t i = 1; i < v.size(); ++i)
      if (v[i - 1].end() > v[i].offset)
        return testing::AssertionFailure() << "stream " << std::get<0>(key) << "->" << std::get<1>(key) << " at "
                                           << std::get<2>(key) << ": [" << v[i - 1].offset << ", " << v[i - 1].end()
                                           << ") and [" << v[i].offset << ", " << v[i].end() << ") overlap";
    ranges += v.size();
  }
  return testing::AssertionSuccess() << ranges << " ranges checked";
}

// Every directed stream of every link: remaining bytes at its two ends.
std::map<std::tuple<node_id, node_id, node_id>, std::uint64_t> pool_levels(network& net,
                                                                          const std::vector<std::pair<int, int>>& links) {
  std::map<std::tuple<node_id, node_id, node_id>, std::uint64_t> out;
  for (auto [a, b] : links)
    for (auto [f, t] : {std::pair{nm(a), nm(b)}, std::pair{nm(b), nm(a)}}) {
      out[{f, t, f}] = net.pools().remaining(f, t, f);
      out[{f, t, t}] = net.pools().remaining(f, t, t);
    }
  return out;
}

bool keys_match(network& net, const node_id& src, const node_id& dst, const std::string& key_id) {
  const auto* a = net.sink(src).find(key_id);
  const auto* b = net.sink(dst).find(key_id);
  return a != nullptr && b != nullptr && !a->empty() && constant_time_equal(a->bytes(), b->bytes());
}

// Every route between live nodes is a simple path over links that are up.
void expect_loop_free_routes(network& net) {
  for (const auto& u : net.nodes()) {
    if (!net.alive(u)) continue;
    for (const auto& v : net.nodes()) {
      if (u == v || !net.alive(v)) continue;
      const auto r = net.at(u).routes(v, route_type::relay, 32);
      if (!r) continue;  // another component
      const auto& p = r->front();
      EXPECT_EQ(p.front(), u);
      EXPECT_EQ(p.back(), v);
      EXPECT_EQ(std::set<node_id>(p.begin(), p.end()).size(), p.size()) << "loop in route " << u << "->" << v;
      for (std::size_t i = 0; i + 1 < p.size(); ++i) EXPECT_TRUE(net.link_is_up(p[i], p[i + 1])) << p[i] << "-" << p[i + 1];
    }
  }
}

std::size_t live_sessions(network& net) {
  std::size_t s = 0;
  for (const auto& n : net.nodes())
    if (net.alive(n)) s += net.at(n).sessions();
  return s;
}

}  // namespace

TEST(relay_sim, chains_of_1_to_8_hops_deliver_the_key_and_spend_exactly_one_hop_key_per_link) {
  for (int hops = 1; hops <= 8; ++hops) {
    const auto seed = test_support::base_seed() + static_cast<std::uint64_t>(hops);
    SCOPED_TRACE(test_support::seed_note(seed) + ", " + std::to_string(hops) + " hops");
    network net(test_config(seed));
    const auto links = chain(hops + 1);
    build(net, hops + 1, links, 4096);
    ASSERT_TRUE(net.run_until([&] { return net.converged(); }, 1s));
    const auto before = pool_levels(net, links);
    const std::size_t key_bytes = 32;
    for (route_type type : {route_type::relay, route_type::direct}) {
      if (type == route_type::direct && hops > 1) continue;
      const std::string id = "k-" + std::string(to_string(type));
      ASSERT_TRUE(net.request(nm(0), {id, nm(hops), key_bytes, type, 0}).has_value());
    }
    const std::size_t expected_results = hops == 1 ? 2 : 1;
    ASSERT_TRUE(net.run_until([&] { return net.results(nm(0)).size() == expected_results; }, 2s));
    for (const auto& r : net.results(nm(0))) {
      ASSERT_FALSE(r.failure.has_value()) << r.failure->message;
      EXPECT_EQ(r.attempts, 1u);
      ASSERT_EQ(r.paths.size(), 1u);
      EXPECT_EQ(r.paths[0].size(), static_cast<std::size_t>(hops + 1));
      EXPECT_TRUE(keys_match(net, nm(0), nm(hops), r.key_id));
      EXPECT_EQ(net.sink(nm(0)).find(r.key_id)->size(), key_bytes);
    }
    const auto after = pool_levels(net, links);
    const std::uint64_t per_hop = expected_results * (key_bytes + hop_auth_key_bytes);
    for (auto [a, b] : links) {
      const node_id f = nm(a), t = nm(b);
      EXPECT_EQ(before.at({f, t, f}) - after.at({f, t, f}), per_hop) << f << "->" << t << " at " << f;
      EXPECT_EQ(before.at({f, t, t}) - after.at({f, t, t}), per_hop) << f << "->" << t << " at " << t;
      EXPECT_EQ(before.at({t, f, t}), after.at({t, f, t})) << "the reverse stream is untouched";
      EXPECT_EQ(before.at({t, f, f}), after.at({t, f, f}));
    }
    EXPECT_EQ(net.sink(nm(hops)).stores(), expected_results);
    EXPECT_EQ(live_sessions(net), 0u) << "every role's state is released once the key is committed";
    EXPECT_TRUE(no_link_bit_used_twice(net.pools()));
  }
}

TEST(relay_sim, direct_route_needs_a_link) {
  network net(test_config(test_support::base_seed()));
  build(net, 3, chain(3), 4096);
  ASSERT_TRUE(net.run_until([&] { return net.converged(); }, 1s));
  const auto r = net.at(nm(0)).routes(nm(2), route_type::direct, 32);
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().message.find("use route type relay"), std::string::npos);
}

TEST(relay_sim, routes_follow_advertised_key_rates) {
  auto cfg = test_config(test_support::base_seed() + 50);
  cfg.node_defaults.weights.beta = 10.0;
  network net(cfg);
  build(net, 4, ring(4), 4096);
  ASSERT_TRUE(net.run_until([&] { return net.converged(); }, 1s));
  const auto before = net.at(nm(0)).routes(nm(2), route_type::relay, 32);
  ASSERT_TRUE(before.has_value());
  const node_id via = before->front()[1], other = via == nm(1) ? nm(3) : nm(1);
  // The path through `via` slows down to 1 bit/s; the ads carry it and n0 reroutes.
  net.at(nm(0)).set_key_rate(via, 1.0, net.now());
  net.at(via).set_key_rate(nm(2), 1.0, net.now());
  net.run_for(100ms);
  const auto after = net.at(nm(0)).routes(nm(2), route_type::relay, 32);
  ASSERT_TRUE(after.has_value());
  EXPECT_EQ(after->front(), (std::vector<node_id>{nm(0), other, nm(2)}));
}

TEST(relay_sim, ring_and_mesh_converge_after_link_flaps_with_reordered_and_duplicated_ads) {
  for (int topo = 0; topo < 2; ++topo) {
    const auto seed = test_support::base_seed() + 100 + static_cast<std::uint64_t>(topo);
    SCOPED_TRACE(test_support::seed_note(seed) + (topo == 0 ? ", ring of 8" : ", 3x3 mesh"));
    auto cfg = test_config(seed);
    cfg.jitter = 4ms;  // reorders ads
    cfg.duplicate_probability = 0.2;
    network net(cfg);
    const auto links = topo == 0 ? ring(8) : mesh9();
    build(net, topo == 0 ? 8 : 9, links, 4096);
    ASSERT_TRUE(net.run_until([&] { return net.converged(); }, 1s));
    expect_loop_free_routes(net);

    std::mt19937_64 g(seed);
    for (int flap = 0; flap < 6; ++flap) {
      const auto [a, b] = links[g() % links.size()];
      net.cut(nm(a), nm(b));
      const auto t0 = net.now();
      ASSERT_TRUE(net.run_until([&] { return net.converged(); }, 1s)) << "after cutting " << nm(a) << "-" << nm(b);
      EXPECT_LE(net.now() - t0, 100ms) << "convergence took " << (net.now() - t0).count() << " us";
      expect_loop_free_routes(net);
      for (const auto& u : net.nodes())
        for (const auto& v : net.nodes()) {
          const auto r = net.at(u).routes(v, route_type::relay, 32);
          if (!r) continue;
          for (std::size_t i = 0; i + 1 < r->front().size(); ++i) {
            EXPECT_FALSE((r->front()[i] == nm(a) && r->front()[i + 1] == nm(b)) ||
                         (r->front()[i] == nm(b) && r->front()[i + 1] == nm(a)));
          }
        }
      net.restore(nm(a), nm(b));
      ASSERT_TRUE(net.run_until([&] { return net.converged(); }, 1s)) << "after restoring " << nm(a) << "-" << nm(b);
      expect_loop_free_routes(net);
    }
    // Several flaps within a few milliseconds, while the previous floods are still in flight.
    for (int i = 0; i < 8; ++i) {
      const auto [a, b] = links[g() % links.size()];
      if (net.link_is_up(nm(a), nm(b))) net.cut(nm(a), nm(b));
      else net.restore(nm(a), nm(b));
      net.run_for(std::chrono::microseconds(static_cast<long>(g() % 3000)));
    }
    ASSERT_TRUE(net.run_until([&] { return net.converged(); }, 1s));
    expect_loop_free_routes(net);
  }
}

TEST(relay_sim, ads_of_a_dead_node_age_out) {
  auto cfg = test_config(test_support::base_seed());
  cfg.node_defaults.lsa_refresh = 500ms;
  cfg.node_defaults.lsa_max_age = 2s;
  network net(cfg);
  build(net, 6, ring(6), 4096);
  ASSERT_TRUE(net.run_until([&] { return net.converged(); }, 1s));
  net.kill(nm(3));
  ASSERT_TRUE(net.run_until([&] { return net.converged(); }, 1s));
  EXPECT_NE(net.at(nm(0)).topology().find(nm(3)), nullptr) << "the stale ad is still held, but its links fail the two-way check";
  net.run_for(2500ms);
  for (const auto& n : net.nodes()) {
    if (net.alive(n)) {
      EXPECT_EQ(net.at(n).topology().find(nm(3)), nullptr) << "at " << n;
    }
  }
  EXPECT_TRUE(net.run_until([&] { return net.converged(); }, 100ms)) << "refreshes keep the live nodes' ads";
  EXPECT_EQ(net.at(nm(0)).topology().size(), 5u);
}

TEST(relay_sim, killing_a_transit_node_mid_relay_aborts_discards_and_retries_on_another_path) {
  const auto seed = test_support::base_seed() + 200;
  SCOPED_TRACE(test_support::seed_note(seed));
  network net(test_config(seed));
  build(net, 6, ring(6), 4096);
  ASSERT_TRUE(net.run_until([&] { return net.converged(); }, 1s));
  node_id victim;
  net.set_tap([&](const node_id&, const node_id& to, message& m) {
    auto* k = std::get_if<relay_key>(&m);
    if (k == nullptr || k->ref.attempt != 1 || k->hop != 1 || !victim.empty()) return true;
    victim = to;  // the second transit node dies as the key reaches it
    net.kill(to);
    return false;
  });
  ASSERT_TRUE(net.request(nm(0), {"k1", nm(3), 32, route_type::relay, 0}).has_value());
  ASSERT_TRUE(net.run_until([&] { return !net.results(nm(0)).empty(); }, 3s));
  ASSERT_FALSE(victim.empty());
  const auto& r = net.results(nm(0)).front();
  ASSERT_FALSE(r.failure.has_value()) << r.failure->message;
  EXPECT_EQ(r.attempts, 2u);
  EXPECT_EQ(std::count(r.paths[0].begin(), r.paths[0].end(), victim), 0);
  EXPECT_TRUE(keys_match(net, nm(0), nm(3), "k1"));
  EXPECT_EQ(net.sink(nm(3)).stores(), 1u) << "no key was delivered by the aborted round";
  EXPECT_TRUE(no_link_bit_used_twice(net.pools()));
  // The first hop of the aborted round was burnt at both ends and never reused.
  const node_id first = victim == nm(2) ? nm(1) : nm(5);
  EXPECT_EQ(net.pools().remaining(nm(0), first, nm(0)), net.pools().remaining(nm(0), first, first));
  EXPECT_EQ(net.pools().remaining(nm(0), first, nm(0)), 4096u - 64u);
  EXPECT_EQ(net.at(first).stats().hops_forwarded, 1u);
  net.run_for(1s);
  EXPECT_EQ(live_sessions(net), 0u);
}

TEST(relay_sim, cutting_a_link_mid_relay_loses_no_key_bits_and_resyncs_the_pool_when_it_returns) {
  const auto seed = test_support::base_seed() + 300;
  SCOPED_TRACE(test_support::seed_note(seed));
  network net(test_config(seed));
  build(net, 6, ring(6), 4096);
  ASSERT_TRUE(net.run_until([&] { return net.converged(); }, 1s));
  std::pair<node_id, node_id> cut;
  net.set_tap([&](const node_id& from, const node_id& to, message& m) {
    auto* k = std::get_if<relay_key>(&m);
    if (k == nullptr || k->ref.attempt != 1 || k->hop != 2 || !cut.first.empty()) return true;
    cut = {from, to};  // the last hop breaks while the key is on it
    net.cut(from, to);
    return false;
  });
  ASSERT_TRUE(net.request(nm(0), {"k1", nm(3), 32, route_type::relay, 0}).has_value());
  ASSERT_TRUE(net.run_until([&] { return !net.results(nm(0)).empty(); }, 3s));
  ASSERT_FALSE(cut.first.empty());
  const auto& r = net.results(nm(0)).front();
  ASSERT_FALSE(r.failure.has_value()) << r.failure->message;
  EXPECT_EQ(r.attempts, 2u);
  EXPECT_TRUE(keys_match(net, nm(0), nm(3), "k1"));
  EXPECT_EQ(net.sink(nm(3)).stores(), 1u);
  // The destination never saw the range drawn for the lost message: a gap until the link returns.
  const auto cursor = net.pools().end(cut.first).outgoing_cursor(cut.second);
  EXPECT_EQ(net.pools().unclaimed_below(cut.first, cut.second, cursor), 64u);
  net.restore(cut.first, cut.second);
  net.run_for(50ms);
  EXPECT_EQ(net.pools().unclaimed_below(cut.first, cut.second, cursor), 0u) << "pool_sync burnt the gap";
  EXPECT_EQ(net.pools().remaining(cut.first, cut.second, cut.first), net.pools().remaining(cut.first, cut.second, cut.second));
  EXPECT_TRUE(no_link_bit_used_twice(net.pools()));
  net.run_for(1s);
  EXPECT_EQ(live_sessions(net), 0u);
}

TEST(relay_sim, bounded_retries_end_in_an_error_naming_the_unreachable_node) {
  const auto seed = test_support::base_seed() + 400;
  SCOPED_TRACE(test_support::seed_note(seed));
  {
    network net(test_config(seed));
    build(net, 3, chain(3), 4096);
    ASSERT_TRUE(net.run_until([&] { return net.converged(); }, 1s));
    net.kill(nm(2));
    net.run_for(20ms);
    ASSERT_TRUE(net.request(nm(0), {"k1", nm(2), 32, route_type::relay, 0}).has_value());
    ASSERT_TRUE(net.run_until([&] { return !net.results(nm(0)).empty(); }, 3s));
    const auto& r = net.results(nm(0)).front();
    ASSERT_TRUE(r.failure.has_value());
    EXPECT_EQ(r.attempts, 3u);
    EXPECT_NE(r.failure->message.find("node n2 is unreachable"), std::string::npos) << r.failure->message;
    EXPECT_EQ(net.sink(nm(0)).size(), 0u);
  }
  {
    // A black hole: n2 -> n3 silently loses every key message; each round times out.
    network net(test_config(seed + 1));
    const auto links = chain(4);
    build(net, 4, links, 4096);
    ASSERT_TRUE(net.run_until([&] { return net.converged(); }, 1s));
    net.set_tap([](const node_id& from, const node_id& to, message& m) {
      return !(std::holds_alternative<relay_key>(m) && from == "n2" && to == "n3");
    });
    ASSERT_TRUE(net.request(nm(0), {"k1", nm(3), 32, route_type::relay, 0}).has_value());
    ASSERT_TRUE(net.run_until([&] { return !net.results(nm(0)).empty(); }, 3s));
    const auto& r = net.results(nm(0)).front();
    ASSERT_TRUE(r.failure.has_value());
    EXPECT_EQ(r.attempts, 3u);
    EXPECT_NE(r.failure->message.find("no confirmation from n3"), std::string::npos) << r.failure->message;
    EXPECT_NE(r.failure->message.find("n3 is unreachable"), std::string::npos) << r.failure->message;
    EXPECT_EQ(net.sink(nm(3)).size(), 0u);
    net.run_for(100ms);
    // Every hop key drawn by the three rounds is gone at both ends of its link.
    for (auto [a, b] : links) {
      EXPECT_EQ(net.pools().remaining(nm(a), nm(b), nm(a)), 4096u - 3 * 64u);
      EXPECT_EQ(net.pools().remaining(nm(a), nm(b), nm(b)), 4096u - 3 * 64u) << nm(a) << "->" << nm(b);
    }
    EXPECT_TRUE(no_link_bit_used_twice(net.pools()));
    net.run_for(1s);
    EXPECT_EQ(live_sessions(net), 0u);
  }
}

TEST(relay_sim, a_tampered_hop_message_fails_its_tag_and_aborts_the_round) {
  enum class what { ciphertext, tag, path, key_id };
  for (auto w : {what::ciphertext, what::tag, what::path, what::key_id}) {
    const auto seed = test_support::base_seed() + 500 + static_cast<std::uint64_t>(w);
    SCOPED_TRACE(test_support::seed_note(seed) + ", tampered field " + std::to_string(static_cast<int>(w)));
    network net(test_config(seed));
    build(net, 4, chain(4), 4096);
    ASSERT_TRUE(net.run_until([&] { return net.converged(); }, 1s));
    int tampered = 0;
    net.set_tap([&](const node_id& from, const node_id&, message& m) {
      auto* k = std::get_if<relay_key>(&m);
      if (k == nullptr || from != "n1" || tampered > 0) return true;
      ++tampered;
      switch (w) {
        case what::ciphertext: k->ciphertext.data()[5] ^= std::byte{0x10}; break;
        case what::tag: k->tag ^= 1; break;
        case what::path: k->path[3] = "n9"; break;
        case what::key_id: k->ref.key_id = "other"; break;
      }
      return true;
    });
    ASSERT_TRUE(net.request(nm(0), {"k1", nm(3), 32, route_type::relay, 0}).has_value());
    ASSERT_TRUE(net.run_until([&] { return !net.results(nm(0)).empty(); }, 3s));
    EXPECT_EQ(tampered, 1);
    EXPECT_EQ(net.at(nm(2)).stats().auth_failures, 1u);
    const auto& r = net.results(nm(0)).front();
    ASSERT_FALSE(r.failure.has_value()) << r.failure->message;
    EXPECT_EQ(r.attempts, 2u) << "the tampered round was aborted, the next one succeeded";
    EXPECT_TRUE(keys_match(net, nm(0), nm(3), "k1"));
    EXPECT_EQ(net.sink(nm(3)).stores(), 1u);
    EXPECT_TRUE(no_link_bit_used_twice(net.pools()));
  }
}

TEST(relay_sim, persistent_tampering_on_one_link_is_routed_around) {
  const auto seed = test_support::base_seed() + 600;
  SCOPED_TRACE(test_support::seed_note(seed));
  network net(test_config(seed));
  build(net, 6, ring(6), 4096);
  ASSERT_TRUE(net.run_until([&] { return net.converged(); }, 1s));
  const auto planned = net.at(nm(0)).routes(nm(3), route_type::relay, 32);
  ASSERT_TRUE(planned.has_value());
  const node_id a = planned->front()[1], b = planned->front()[2];
  net.set_tap([&](const node_id& from, const node_id& to, message& m) {
    if (auto* k = std::get_if<relay_key>(&m); k != nullptr && from == a && to == b) k->ciphertext.data()[0] ^= std::byte{1};
    return true;
  });
  ASSERT_TRUE(net.request(nm(0), {"k1", nm(3), 32, route_type::relay, 0}).has_value());
  ASSERT_TRUE(net.run_until([&] { return !net.results(nm(0)).empty(); }, 3s));
  const auto& r = net.results(nm(0)).front();
  ASSERT_FALSE(r.failure.has_value()) << r.failure->message;
  EXPECT_EQ(r.attempts, 2u);
  EXPECT_EQ(std::count(r.paths[0].begin(), r.paths[0].end(), a), 0);
  EXPECT_TRUE(keys_match(net, nm(0), nm(3), "k1"));
}

TEST(relay_sim, a_tampered_completion_message_aborts_and_the_destination_revokes) {
  const auto seed = test_support::base_seed() + 700;
  SCOPED_TRACE(test_support::seed_note(seed));
  network net(test_config(seed));
  build(net, 3, chain(3), 4096);
  ASSERT_TRUE(net.run_until([&] { return net.converged(); }, 1s));
  int tampered = 0;
  net.set_tap([&](const node_id& from, const node_id&, message& m) {
    if (auto* d = std::get_if<relay_done>(&m); d != nullptr && from == "n1" && tampered++ == 0) d->tag ^= 4;
    return true;
  });
  ASSERT_TRUE(net.request(nm(0), {"k1", nm(2), 32, route_type::relay, 0}).has_value());
  ASSERT_TRUE(net.run_until([&] { return !net.results(nm(0)).empty(); }, 3s));
  const auto& r = net.results(nm(0)).front();
  ASSERT_FALSE(r.failure.has_value()) << r.failure->message;
  EXPECT_EQ(r.attempts, 2u);
  EXPECT_EQ(net.at(nm(0)).stats().auth_failures, 1u);
  EXPECT_EQ(net.sink(nm(2)).revokes(), 1u) << "the key of the aborted round was withdrawn";
  EXPECT_EQ(net.sink(nm(2)).stores(), 2u);
  EXPECT_TRUE(keys_match(net, nm(0), nm(2), "k1"));
}

TEST(relay_sim, a_refusing_key_store_fails_the_request_cleanly) {
  network net(test_config(test_support::base_seed() + 800));
  build(net, 3, chain(3), 4096);
  ASSERT_TRUE(net.run_until([&] { return net.converged(); }, 1s));
  net.sink(nm(2)).refuse = true;
  ASSERT_TRUE(net.request(nm(0), {"k1", nm(2), 32, route_type::relay, 0}).has_value());
  ASSERT_TRUE(net.run_until([&] { return !net.results(nm(0)).empty(); }, 3s));
  const auto& r = net.results(nm(0)).front();
  ASSERT_TRUE(r.failure.has_value());
  EXPECT_NE(r.failure->message.find("key store refused"), std::string::npos) << r.failure->message;
  EXPECT_EQ(net.sink(nm(0)).size(), 0u);
  EXPECT_TRUE(no_link_bit_used_twice(net.pools()));
}

TEST(relay_sim, multipath_shares_travel_node_disjoint_paths_and_no_transit_node_sees_the_key) {
  for (unsigned k : {2u, 3u}) {
    const auto seed = test_support::base_seed() + 900 + k;
    SCOPED_TRACE(test_support::seed_note(seed) + ", k = " + std::to_string(k));
    network net(test_config(seed));
    // k = 2: ring of 6, n0 -> n3. k = 3: three disjoint 2-transit branches from n0 to n7 plus a cross link.
    std::vector<std::pair<int, int>> links = k == 2 ? ring(6)
                                                    : std::vector<std::pair<int, int>>{{0, 1}, {1, 2}, {2, 7}, {0, 3}, {3, 4},
                                                                                      {4, 7}, {0, 5}, {5, 6}, {6, 7}, {1, 4}};
    const node_id dst = k == 2 ? nm(3) : nm(7);
    build(net, k == 2 ? 6 : 8, links, 4096);
    ASSERT_TRUE(net.run_until([&] { return net.converged(); }, 1s));
    const std::size_t n = 16;
    // What each transit node could decrypt: ciphertext XOR the pad of its incoming hop.
    std::map<node_id, std::vector<std::pair<std::uint32_t, std::vector<std::byte>>>> seen;
    net.set_tap([&](const node_id& from, const node_id& to, message& m) {
      if (auto* km = std::get_if<relay_key>(&m); km != nullptr && to != dst) {
        const auto pad = net.pools().peek(from, to, {km->range.offset, n});
        std::vector<std::byte> share(n);
        for (std::size_t i = 0; i < n; ++i) share[i] = km->ciphertext.data()[i] ^ pad.data()[i];
        seen[to].emplace_back(km->ref.share_index, share);
      }
      return true;
    });
    ASSERT_TRUE(net.request(nm(0), {"mk", dst, n, route_type::multipath, k}).has_value());
    ASSERT_TRUE(net.run_until([&] { return !net.results(nm(0)).empty(); }, 3s));
    const auto& r = net.results(nm(0)).front();
    ASSERT_FALSE(r.failure.has_value()) << r.failure->message;
    ASSERT_EQ(r.paths.size(), k);
    ASSERT_TRUE(keys_match(net, nm(0), dst, "mk"));
    const auto* key = net.sink(dst).find("mk");
    std::set<node_id> transit;
    for (const auto& p : r.paths)
      for (std::size_t i = 1; i + 1 < p.size(); ++i) EXPECT_TRUE(transit.insert(p[i]).second) << p[i] << " is on two paths";
    std::map<std::uint32_t, std::vector<std::byte>> share_of;
    for (const auto& [node, shares] : seen) {
      ASSERT_EQ(shares.size(), 1u) << node << " saw more than one share";
      EXPECT_TRUE(transit.contains(node));
      const auto& sh = shares.front().second;
      EXPECT_FALSE(std::equal(sh.begin(), sh.end(), key->bytes().begin())) << node << " saw the key itself";
      share_of[shares.front().first] = sh;
    }
    ASSERT_EQ(share_of.size(), k);
    std::vector<std::byte> x(n);
    for (const auto& [idx, sh] : share_of)
      for (std::size_t i = 0; i < n; ++i) x[i] ^= sh[i];
    EXPECT_TRUE(std::equal(x.begin(), x.end(), key->bytes().begin())) << "the shares XOR to the key";
    EXPECT_TRUE(no_link_bit_used_twice(net.pools()));
  }
  // Where disjoint paths do not exist, multipath refuses rather than weaken its guarantee.
  network net(test_config(test_support::base_seed() + 950));
  build(net, 3, chain(3), 4096);
  ASSERT_TRUE(net.run_until([&] { return net.converged(); }, 1s));
  ASSERT_TRUE(net.request(nm(0), {"mk", nm(2), 16, route_type::multipath, 0}).has_value());
  ASSERT_TRUE(net.run_until([&] { return !net.results(nm(0)).empty(); }, 3s));
  ASSERT_TRUE(net.results(nm(0)).front().failure.has_value());
  EXPECT_NE(net.results(nm(0)).front().failure->message.find("node-disjoint"), std::string::npos);
}

TEST(relay_sim, many_relays_in_flight_while_links_flap_never_crash_or_deadlock) {
  const auto seed = test_support::base_seed() + 1000;
  SCOPED_TRACE(test_support::seed_note(seed));
  auto cfg = test_config(seed);
  cfg.jitter = 3ms;
  cfg.duplicate_probability = 0.05;
  cfg.drop_probability = 0.01;
  network net(cfg);
  const auto links = mesh9();
  build(net, 9, links, 1 << 16);
  ASSERT_TRUE(net.run_until([&] { return net.converged(); }, 1s));
  std::mt19937_64 g(seed);
  const node_id doomed = nm(4);  // the hub dies half-way; it never starts a relay itself
  std::map<std::string, std::pair<node_id, node_id>> accepted;
  for (int i = 0; i < 400; ++i) {
    const auto at = net.now() + std::chrono::microseconds(static_cast<long>(g() % 3'000'000));
    int s = static_cast<int>(g() % 9), d = static_cast<int>(g() % 9);
    if (s == 4) s = 5;
    if (s == d) d = (d + 1) % 9;
    const route_type type = g() % 4 == 0 ? route_type::multipath : route_type::relay;
    const std::string id = "k" + std::to_string(i);
    net.at_time(at, [&net, &accepted, id, s, d, type] {
      if (net.request(nm(s), {id, nm(d), 8, type, 0}).has_value()) accepted[id] = {nm(s), nm(d)};
    });
  }
  for (int i = 0; i < 150; ++i) {
    const auto at = net.now() + std::chrono::microseconds(static_cast<long>(g() % 3'000'000));
    const auto [a, b] = links[g() % links.size()];
    const auto down_for = std::chrono::microseconds(static_cast<long>(1000 + g() % 100'000));
    net.at_time(at, [&net, a, b] { net.cut(nm(a), nm(b)); });
    net.at_time(at + down_for, [&net, a, b] { net.restore(nm(a), nm(b)); });
  }
  net.at_time(net.now() + 1500ms, [&net, doomed] { net.kill(doomed); });
  net.run_for(3200ms);
  std::size_t results = 0;
  auto count = [&] {
    results = 0;
    for (const auto& n : net.nodes()) results += net.results(n).size();
    return results;
  };
  ASSERT_TRUE(net.run_until([&] { return count() == accepted.size(); }, 30s))
    << results << " of " << accepted.size() << " requests answered";
  net.run_for(2s);  // transit and destination state times out
  EXPECT_EQ(live_sessions(net), 0u) << "state left behind";
  EXPECT_EQ(count(), accepted.size()) << "a request answered twice";
  std::size_t committed = 0, failed = 0;
  std::set<std::string> answered;
  for (const auto& n : net.nodes())
    for (const auto& r : net.results(n)) {
      EXPECT_TRUE(answered.insert(r.key_id).second);
      const auto& [src, dst] = accepted.at(r.key_id);
      if (r.failure) {
        ++failed;
        EXPECT_EQ(net.sink(src).find(r.key_id), nullptr);
      } else {
        ++committed;
        EXPECT_TRUE(keys_match(net, src, dst, r.key_id)) << r.key_id << " " << src << "->" << dst;
      }
    }
  EXPECT_GT(committed, accepted.size() / 2) << "most relays get through despite the flaps";
  EXPECT_GT(failed, 0u) << "relays to the dead hub fail";
  EXPECT_TRUE(no_link_bit_used_twice(net.pools()));
  std::cout << "[ relay    ] " << accepted.size() << " requests: " << committed << " committed, " << failed << " failed; "
            << net.stats().delivered << " messages delivered, " << net.stats().dropped << " dropped, "
            << net.stats().duplicated << " duplicated\n";
}

TEST(relay_sim, property_no_link_key_bit_is_used_twice_over_100000_relays) {
  const auto seed = test_support::base_seed() + 2000;
  SCOPED_TRACE(test_support::seed_note(seed));
  network net(test_config(seed));
  // Ring of 6 with the three long chords: every node has degree 3.
  auto links = ring(6);
  links.insert(links.end(), {{0, 3}, {1, 4}, {2, 5}});
  build(net, 6, links, 1 << 21);
  ASSERT_TRUE(net.run_until([&] { return net.converged(); }, 1s));
  std::mt19937_64 g(seed);
  constexpr int total = 100'000, batch = 2'000;
  std::vector<std::tuple<std::string, node_id, node_id>> requests;
  requests.reserve(total);
  std::size_t answered = 0;
  std::vector<node_id> names;
  for (int i = 0; i < 6; ++i) names.push_back(nm(i));
  for (int b = 0; b < total / batch; ++b) {
    for (int i = 0; i < batch; ++i) {
      const int s = static_cast<int>(g() % 6);
      const int d = (s + 1 + static_cast<int>(g() % 5)) % 6;
      const auto pick = g() % 10;
      const route_type type = pick == 0 ? route_type::multipath : route_type::relay;
      std::string id = "k" + std::to_string(requests.size());
      ASSERT_TRUE(net.request(names[s], {id, names[d], 4, type, 0}).has_value());
      requests.emplace_back(std::move(id), names[s], names[d]);
    }
    ASSERT_TRUE(net.run_until(
      [&] {
        std::size_t c = 0;
        for (const auto& n : names) c += net.results(n).size();
        return (answered = c) == requests.size();
      },
      10s));
  }
  std::size_t committed = 0;
  for (int i = 0; i < 6; ++i)
    for (const auto& r : net.results(nm(i))) {
      ASSERT_FALSE(r.failure.has_value()) << r.failure->message;
      ++committed;
    }
  EXPECT_EQ(committed, static_cast<std::size_t>(total));
  for (const auto& [id, s, d] : requests) ASSERT_TRUE(keys_match(net, s, d, id)) << id;
  EXPECT_TRUE(no_link_bit_used_twice(net.pools()));
  EXPECT_GE(net.pools().log().size(), 2u * total);
}
