// Unit tests of the relay building blocks: Wegman–Carter tags, in-memory link-key pools,
// link-state database and route computation, request validation.
#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <set>

#include "relay/memory_pool.hpp"
#include "relay/node.hpp"
#include "relay/topology.hpp"
#include "relay/wegman_carter.hpp"
#include "test_seed.hpp"

using namespace cvqkd;
using namespace cvqkd::relay;
namespace wc = cvqkd::relay::wegman_carter;
using namespace std::chrono_literals;

namespace {

__extension__ typedef unsigned __int128 u128;

// Reference: plain modular arithmetic with % (independent of the folding reduction).
std::uint64_t reference_hash(std::uint64_t r, std::span<const std::byte> m) {
  const u128 p = wc::prime;
  u128 acc = 0;
  for (std::size_t i = 0; i < m.size(); i += 7) {
    u128 b = 0;
    for (std::size_t j = 0; j < 7 && i + j < m.size(); ++j) b |= static_cast<u128>(m[i + j]) << (8 * j);
    acc = ((acc + b) % p) * r % p;
  }
  acc = ((acc + m.size()) % p) * r % p;
  return static_cast<std::uint64_t>(acc);
}

std::vector<std::byte> random_bytes(std::mt19937_64& g, std::size_t n) {
  std::vector<std::byte> out(n);
  for (auto& b : out) b = static_cast<std::byte>(g());
  return out;
}

}  // namespace

TEST(relay_wegman_carter, matches_reference_arithmetic) {
  const auto seed = test_support::base_seed();
  SCOPED_TRACE(test_support::seed_note(seed));
  std::mt19937_64 g(seed);
  const std::byte five{5};
  EXPECT_EQ(wc::poly_hash(2, std::span{&five, 1}), 22u);  // ((0+5)*2 + 1)*2
  for (int t = 0; t < 2000; ++t) {
    const std::uint64_t r = t == 0 ? wc::prime - 1 : g() % wc::prime;
    const auto m = random_bytes(g, g() % 300);
    ASSERT_EQ(wc::poly_hash(r, m), reference_hash(r, m)) << "length " << m.size();
  }
  // A 16-byte key: r = 3, s = 10.
  std::array<std::byte, 16> key{};
  key[0] = std::byte{3};
  key[8] = std::byte{10};
  EXPECT_EQ(wc::tag(key, std::span{&five, 1}), (((5 * 3) + 1) * 3 + 10) % wc::prime);
}

TEST(relay_wegman_carter, detects_every_single_bit_change_and_documents_epsilon) {
  const auto seed = test_support::base_seed() + 1;
  SCOPED_TRACE(test_support::seed_note(seed));
  std::mt19937_64 g(seed);
  const auto key = random_bytes(g, wc::key_bytes);
  auto m = random_bytes(g, 64);
  const auto t = wc::tag(key, m);
  EXPECT_TRUE(wc::verify(key, m, t));
  for (std::size_t bit = 0; bit < 8 * m.size(); ++bit) {
    m[bit / 8] ^= std::byte{1} << (bit % 8);
    EXPECT_FALSE(wc::verify(key, m, t)) << "bit " << bit;
    m[bit / 8] ^= std::byte{1} << (bit % 8);
  }
  for (int bit = 0; bit < 61; ++bit) EXPECT_FALSE(wc::verify(key, m, t ^ (std::uint64_t{1} << bit)));
  // Appending a zero byte changes the length block.
  auto longer = m;
  longer.push_back(std::byte{0});
  EXPECT_FALSE(wc::verify(key, longer, t));
  // epsilon = (ceil(len/7) + 1)/p: 200 bytes -> 30/p.
  EXPECT_DOUBLE_EQ(wc::forgery_bound(200), 30.0 / static_cast<double>(wc::prime));
  EXPECT_LT(wc::forgery_bound(200), 1.4e-17);
}

TEST(relay_memory_pool, both_ends_draw_the_same_bytes_once) {
  memory_key_pools pools(test_support::base_seed());
  pools.fill("a", "b", 100);
  auto& a = pools.end("a");
  auto& b = pools.end("b");
  EXPECT_EQ(a.available("b", stream::outgoing), 100u);
  EXPECT_EQ(b.available("a", stream::incoming), 100u);

  auto k1 = a.take_next("b", 40);
  ASSERT_TRUE(k1.has_value());
  EXPECT_EQ(k1->range, (pool_range{0, 40}));
  auto k2 = a.take_next("b", 40);
  ASSERT_TRUE(k2.has_value());
  EXPECT_EQ(k2->range, (pool_range{40, 40}));
  EXPECT_FALSE(constant_time_equal(k1->bytes.bytes(), k2->bytes.bytes()));
  auto k3 = a.take_next("b", 40);
  ASSERT_FALSE(k3.has_value());
  EXPECT_EQ(k3.error().code, errc::insufficient_data);
  EXPECT_NE(k3.error().message.find("route elsewhere"), std::string::npos);

  // Receiver takes out of order; the bytes match the sender's.
  auto r2 = b.take_at("a", k2->range);
  ASSERT_TRUE(r2.has_value());
  EXPECT_TRUE(constant_time_equal(r2->bytes(), k2->bytes.bytes()));
  auto again = b.take_at("a", k2->range);  // replay
  ASSERT_FALSE(again.has_value());
  EXPECT_EQ(again.error().code, errc::invalid_argument);
  EXPECT_FALSE(b.take_at("a", {30, 20}).has_value());  // overlaps k2
  EXPECT_FALSE(b.take_at("a", {90, 20}).has_value());  // beyond the pool
  b.discard_incoming("a", k1->range);
  EXPECT_FALSE(b.take_at("a", k1->range).has_value());  // burnt by an abort
  EXPECT_EQ(a.available("b", stream::outgoing), 20u);
  EXPECT_EQ(b.available("a", stream::incoming), 20u);
  // The other direction is untouched.
  EXPECT_EQ(b.available("a", stream::outgoing), 100u);
  EXPECT_EQ(a.available("b", stream::incoming), 100u);
  EXPECT_EQ(pools.log().size(), 4u);  // two take_next, one take_at, one discard

  // Resynchronisation burns the gap below the peer's cursor.
  pools.fill("a", "b", 100);
  ASSERT_TRUE(a.take_next("b", 50).has_value());  // [80, 130): "lost in an outage"
  EXPECT_EQ(pools.unclaimed_below("a", "b", a.outgoing_cursor("b")), 50u);
  b.discard_incoming_below("a", a.outgoing_cursor("b"));
  EXPECT_EQ(pools.unclaimed_below("a", "b", a.outgoing_cursor("b")), 0u);
  EXPECT_EQ(b.available("a", stream::incoming), a.available("b", stream::outgoing));
  EXPECT_EQ(pools.remaining("a", "b", "a"), 70u);
  EXPECT_EQ(pools.remaining("a", "b", "b"), 70u);
  EXPECT_FALSE(a.take_next("zz", 1).has_value());
}

namespace {

// Undirected test graph as directed edges; `slow` links have key rate 0, the others 1e6 bit/s.
std::vector<edge> graph(std::initializer_list<std::pair<const char*, const char*>> links,
                        std::set<std::pair<std::string, std::string>> slow = {}, std::uint64_t bits = 1'000'000) {
  std::vector<edge> out;
  for (auto [a, b] : links) {
    const double rate = slow.contains({a, b}) ? 0.0 : 1e6;
    out.push_back(edge{a, b, bits, rate});
    out.push_back(edge{b, a, bits, rate});
  }
  return out;
}

}  // namespace

TEST(relay_topology, weight_function_is_the_documented_formula) {
  weight_config w{1.0, 2.0, 3.0, 1000.0};
  ASSERT_TRUE(w.validate().has_value());
  // base + alpha/(1 + A/n) + beta/(1 + R/scale) with A = 3n, R = 1000.
  EXPECT_DOUBLE_EQ(link_weight(w, 300, 1000.0, 100), 1.0 + 2.0 / 4.0 + 3.0 / 2.0);
  EXPECT_GT(link_weight(w, 100, 1000.0, 100), link_weight(w, 10'000, 1000.0, 100));  // low stock costs more
  EXPECT_GT(link_weight(w, 10'000, 10.0, 100), link_weight(w, 10'000, 1e5, 100));   // slow links cost more
  EXPECT_FALSE((weight_config{0.0, 1.0, 1.0, 1.0}.validate().has_value()));
  EXPECT_FALSE((weight_config{1.0, -1.0, 1.0, 1.0}.validate().has_value()));
}

TEST(relay_topology, database_keeps_newest_ads_checks_both_ends_and_ages_out) {
  topology_db db;
  const link_state_ad a1{"a", 1, 0, {{"b", true, 800, 10.0}}};
  const link_state_ad b1{"b", 1, 0, {{"a", true, 900, 10.0}, {"c", true, 900, 10.0}}};
  EXPECT_TRUE(db.install(a1, 0us));
  EXPECT_TRUE(db.install(b1, 0us));
  EXPECT_FALSE(db.install(a1, 1ms));  // same sequence: ignored
  auto e = db.edges();
  ASSERT_EQ(e.size(), 2u);  // b->c is missing: c never confirmed it
  EXPECT_EQ(e[0].from, "a");
  EXPECT_EQ(e[0].available_bits, 800u);
  EXPECT_FALSE(db.install(link_state_ad{"a", 0, 0, {}}, 2ms));  // older: ignored
  EXPECT_TRUE(db.install(link_state_ad{"a", 2, 0, {{"b", false, 0, 10.0}}}, 3ms));
  EXPECT_TRUE(db.edges().empty());
  // Aging: an ad received with age 500 ms expires 500 ms before one received fresh.
  EXPECT_TRUE(db.install(link_state_ad{"c", 7, 500, {}}, 3ms));
  EXPECT_TRUE(db.expire(502ms, 1s, "a").empty());
  const auto dropped = db.expire(1003ms, 1s, "a");
  EXPECT_EQ(dropped, std::vector<node_id>({"b", "c"}));
  EXPECT_NE(db.find("a"), nullptr);  // own ad is kept
  const auto snap = db.snapshot(1503ms);
  ASSERT_EQ(snap.size(), 1u);
  EXPECT_EQ(snap[0].age_ms, 1501u);
}

TEST(relay_topology, dijkstra_prefers_stock_and_rate_and_excludes_what_cannot_supply) {
  // a-b-d is two hops but b-d is slow; a-c-e-d is three fast hops.
  weight_config w{1.0, 0.0, 5.0, 1.0};
  auto g = graph({{"a", "b"}, {"b", "d"}, {"a", "c"}, {"c", "e"}, {"e", "d"}}, {{"b", "d"}});
  auto p = shortest_path(g, "a", "d", 100, w);
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(*p, (std::vector<node_id>{"a", "c", "e", "d"}));
  // Without the rate term, the short path wins.
  p = shortest_path(g, "a", "d", 100, weight_config{1.0, 0.0, 0.0, 1.0});
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(*p, (std::vector<node_id>{"a", "b", "d"}));
  // A link that cannot supply the request is not used.
  for (auto& e : g)
    if ((e.from == "c" && e.to == "e")) e.available_bits = 50;
  p = shortest_path(g, "a", "d", 100, w);
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(*p, (std::vector<node_id>{"a", "b", "d"}));
  exclusions ex;
  ex.nodes.insert("b");
  EXPECT_FALSE(shortest_path(g, "a", "d", 100, w, ex).has_value());
  exclusions ex2;
  ex2.add_link("d", "b");
  EXPECT_FALSE(shortest_path(g, "a", "d", 100, w, ex2).has_value());
  EXPECT_FALSE(shortest_path(g, "a", "zz", 100, w).has_value());
  EXPECT_FALSE(shortest_path(g, "a", "a", 100, w).has_value());
}

TEST(relay_topology, disjoint_paths_escape_the_trap_that_defeats_repeated_dijkstra) {
  // The shortest path s-a-b-t uses both a and b; removing them leaves nothing, yet s-a-x-t and
  // s-y-b-t are node-disjoint (the classic case for Suurballe's algorithm).
  weight_config w{1.0, 0.0, 1.0, 1.0};
  const auto g = graph({{"s", "a"}, {"a", "b"}, {"b", "t"}, {"a", "x"}, {"x", "t"}, {"s", "y"}, {"y", "b"}},
                       {{"a", "x"}, {"x", "t"}, {"s", "y"}, {"y", "b"}});
  auto first = shortest_path(g, "s", "t", 10, w);
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(*first, (std::vector<node_id>{"s", "a", "b", "t"}));
  exclusions without_first;
  without_first.nodes = {"a", "b"};
  EXPECT_FALSE(shortest_path(g, "s", "t", 10, w, without_first).has_value());

  const auto two = disjoint_paths(g, "s", "t", 2, 10, w);
  ASSERT_EQ(two.size(), 2u);
  std::set<node_id> inner;
  for (const auto& p : two) {
    EXPECT_EQ(p.front(), "s");
    EXPECT_EQ(p.back(), "t");
    for (std::size_t i = 1; i + 1 < p.size(); ++i) EXPECT_TRUE(inner.insert(p[i]).second) << p[i] << " on both paths";
  }
  EXPECT_EQ(inner, (std::set<node_id>{"a", "b", "x", "y"}));
  EXPECT_EQ(disjoint_paths(g, "s", "t", 3, 10, w).size(), 2u);  // only two exist
  const auto chain = graph({{"a", "b"}, {"b", "c"}});
  EXPECT_EQ(disjoint_paths(chain, "a", "c", 2, 10, w).size(), 1u);
  // A direct link is a path without transit nodes.
  const auto tri = graph({{"a", "b"}, {"b", "c"}, {"a", "c"}});
  const auto ps = disjoint_paths(tri, "a", "c", 2, 10, w);
  ASSERT_EQ(ps.size(), 2u);
  EXPECT_EQ(ps[0], (std::vector<node_id>{"a", "c"}));
  EXPECT_EQ(ps[1], (std::vector<node_id>{"a", "b", "c"}));
}

TEST(relay_topology, disjoint_paths_in_a_random_mesh_are_disjoint_and_optimal_in_count) {
  const auto seed = test_support::base_seed() + 7;
  SCOPED_TRACE(test_support::seed_note(seed));
  std::mt19937_64 g(seed);
  for (int trial = 0; trial < 50; ++trial) {
    std::vector<edge> edges;
    const int n = 10;
    std::set<std::pair<int, int>> links;
    for (int i = 0; i < 18; ++i) {
      int a = static_cast<int>(g() % n), b = static_cast<int>(g() % n);
      if (a == b) continue;
      links.emplace(std::min(a, b), std::max(a, b));
    }
    for (auto [a, b] : links) {
      const double rate = static_cast<double>(g() % 1000);
      edges.push_back(edge{std::to_string(a), std::to_string(b), 1000, rate});
      edges.push_back(edge{std::to_string(b), std::to_string(a), 1000, rate});
    }
    const auto ps = disjoint_paths(edges, "0", "9", 4, 10, weight_config{});
    std::set<node_id> inner;
    for (const auto& p : ps) {
      ASSERT_GE(p.size(), 2u);
      EXPECT_EQ(p.front(), "0");
      EXPECT_EQ(p.back(), "9");
      for (std::size_t i = 0; i + 1 < p.size(); ++i)
        EXPECT_TRUE(links.contains({std::min(std::stoi(p[i]), std::stoi(p[i + 1])), std::max(std::stoi(p[i]), std::stoi(p[i + 1]))}));
      for (std::size_t i = 1; i + 1 < p.size(); ++i) EXPECT_TRUE(inner.insert(p[i]).second);
    }
    // Menger: as many disjoint paths as a minimum vertex cut; at least check against the degrees.
    std::size_t deg0 = 0, deg9 = 0;
    for (auto [a, b] : links) {
      deg0 += (a == 0 || b == 0);
      deg9 += (a == 9 || b == 9);
    }
    EXPECT_LE(ps.size(), std::min({deg0, deg9, std::size_t{4}}));
    // Exactly one path iff a shortest path exists and... at least as many as greedy removal finds.
    std::size_t greedy = 0;
    exclusions ex;
    while (greedy < 4) {
      auto p = shortest_path(edges, "0", "9", 10, weight_config{}, ex);
      if (!p) break;
      ++greedy;
      if (p->size() == 2) ex.add_link("0", "9");
      for (std::size_t i = 1; i + 1 < p->size(); ++i) ex.nodes.insert((*p)[i]);
    }
    EXPECT_GE(ps.size(), greedy);
  }
}

TEST(relay_node, rejects_bad_configuration_and_requests) {
  struct null_transport final : transport {
    void send(const node_id&, message) override {}
  } net;
  struct null_sink final : key_sink {
    expected<void> store(const std::string&, const node_id&, secure_buffer) override { return {}; }
    void revoke(const std::string&, const node_id&) override {}
  } sink;
  struct null_listener final : relay_listener {
    void on_result(const relay_result&) override {}
  } listener;
  memory_key_pools pools(1);
  seeded_drbg rng(1, "test");
  node_config bad;
  auto n = node::create(bad, net, pools.end("a"), sink, rng, listener);
  ASSERT_FALSE(n.has_value());
  EXPECT_EQ(n.error().code, errc::config_error);
  bad.self = "a";
  bad.lsa_max_age = bad.lsa_refresh;
  EXPECT_NE(bad.validate().error().message.find("lsa_max_age"), std::string::npos);
  node_config good;
  good.self = "a";
  auto ok = node::create(good, net, pools.end("a"), sink, rng, listener);
  ASSERT_TRUE(ok.has_value());
  auto& node = **ok;
  EXPECT_FALSE(node.request({"", "b", 32, route_type::relay, 0}, 0us).has_value());
  EXPECT_FALSE(node.request({"k", "a", 32, route_type::relay, 0}, 0us).has_value());
  EXPECT_FALSE(node.request({"k", "b", 0, route_type::relay, 0}, 0us).has_value());
  EXPECT_FALSE(node.request({"k", "b", 32, route_type::multipath, 1}, 0us).has_value());
  ASSERT_TRUE(node.request({"k", "b", 32, route_type::relay, 0}, 0us).has_value());
  const auto dup = node.request({"k", "b", 32, route_type::relay, 0}, 0us);
  ASSERT_FALSE(dup.has_value());
  EXPECT_NE(dup.error().message.find("fresh key ID"), std::string::npos);
  const auto r = node.routes("b", route_type::relay, 32);
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().message.find("b is unreachable"), std::string::npos);

  EXPECT_EQ(parse_route_type("multipath").value(), route_type::multipath);
  EXPECT_EQ(parse_route_type("direct").value(), route_type::direct);
  EXPECT_EQ(to_string(route_type::relay), "relay");
  const auto pr = parse_route_type("fastest");
  ASSERT_FALSE(pr.has_value());
  EXPECT_NE(pr.error().message.find("direct, relay or multipath"), std::string::npos);
}
