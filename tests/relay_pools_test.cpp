// The relay over real key stores (node/relay_pools.hpp): three trusted nodes A - B - C, each link's
// pools filled by the link engine's commit path (node/link_store.hpp), relay state machines
// (relay/node.hpp) exchanging messages in order through an in-memory transport. The key that C
// stores equals A's, each hop's pools shrink by the same bytes at both of its ends, and a replayed
// or reordered hop range is refused.
#include <gtest/gtest.h>

#include <deque>

#include "core/drbg.hpp"
#include "node/link_store.hpp"
#include "node/relay_pools.hpp"
#include "relay/node.hpp"
#include "relay/sim/network.hpp"
#include "relay/wire.hpp"
#include "storage_test_support.hpp"
#include "test_seed.hpp"

namespace cvqkd {
namespace {

using links::role;
using test_support::temp_dir;

struct site {
  temp_dir dir;
  std::unique_ptr<storage::key_store> store;
  std::unique_ptr<node::store_key_pools> pools;
  explicit site(const std::string& id) {
    EXPECT_TRUE(storage::create_kek_file(dir.path() / "kek").has_value());
    storage::store_options o;
    o.directory = dir.path() / "db";
    o.kek_file = dir.path() / "kek";
    o.node_id = id;
    store = std::move(*storage::key_store::open(o));
    pools = std::make_unique<node::store_key_pools>(*store);
  }
};

// Commits `rounds` identical rounds of key to both ends of a link, as the link engine would.
void commission(site& alice, site& bob, const std::string& link, std::uint64_t seed, int rounds) {
  std::vector<std::byte> psk(1024);
  seeded_drbg(seed, "psk").fill(psk);
  auto a = node::open_link_state(*alice.store, link, psk);
  auto b = node::open_link_state(*bob.store, link, psk);
  ASSERT_TRUE(a && b);
  seeded_drbg keys(seed, "link-key");
  for (int r = 1; r <= rounds; ++r) {
    secure_buffer key(4096), reserve(320);
    keys.fill(key.bytes());
    keys.fill(reserve.bytes());
    ASSERT_TRUE((*a)->commit(r, key, reserve).has_value());
    ASSERT_TRUE((*b)->commit(r, key, reserve).has_value());
  }
}

TEST(relay_pools, both_ends_of_a_link_draw_the_same_bytes_exactly_once) {
  const auto seed = test_support::base_seed() + 21;
  SCOPED_TRACE(test_support::seed_note(seed));
  site a("A"), b("B");
  commission(a, b, "A-B", seed, 2);
  a.pools->add_link("B", "A-B", role::alice);
  b.pools->add_link("A", "A-B", role::bob);
  EXPECT_EQ(a.pools->available("B", relay::stream::outgoing), 4096u);  // two halves of 2048
  EXPECT_EQ(b.pools->available("A", relay::stream::incoming), 4096u);

  auto t1 = a.pools->take_next("B", 100);
  auto t2 = a.pools->take_next("B", 3000);  // crosses a block boundary
  ASSERT_TRUE(t1 && t2);
  auto r1 = b.pools->take_at("A", t1->range);
  auto r2 = b.pools->take_at("A", t2->range);
  ASSERT_TRUE(r1 && r2);
  EXPECT_TRUE(constant_time_equal(r1->bytes(), t1->bytes.bytes()));
  EXPECT_TRUE(constant_time_equal(r2->bytes(), t2->bytes.bytes()));
  // A replayed range is refused.
  auto again = b.pools->take_at("A", t1->range);
  ASSERT_FALSE(again.has_value());
  EXPECT_EQ(again.error().code, errc::invalid_argument);
  // The other direction: B's outgoing stream is A's incoming one, disjoint from the forward one.
  auto u = b.pools->take_next("A", 64);
  ASSERT_TRUE(u.has_value());
  auto v = a.pools->take_at("B", u->range);
  ASSERT_TRUE(v.has_value());
  EXPECT_TRUE(constant_time_equal(u->bytes.bytes(), v->bytes()));
  EXPECT_FALSE(constant_time_equal(u->bytes.bytes(), t1->bytes.bytes().first(64)));
  // A range skipped by the sender (its message was lost) is burnt by the next take beyond it, and
  // after a pool_sync the receiver has burnt everything below the sender's cursor.
  auto lost = a.pools->take_next("B", 10);
  auto next = a.pools->take_next("B", 10);
  ASSERT_TRUE(lost && next);
  EXPECT_TRUE(b.pools->take_at("A", next->range).has_value());
  EXPECT_FALSE(b.pools->take_at("A", lost->range).has_value());
  ASSERT_TRUE(a.pools->take_next("B", 50).has_value());
  b.pools->discard_incoming_below("A", a.pools->outgoing_cursor("B"));
  EXPECT_EQ(a.pools->available("B", relay::stream::outgoing), b.pools->available("A", relay::stream::incoming));
}

// In-order delivery between the relay state machines (one queue; a TLS connection per link).
class bus final : public relay::transport {
public:
  explicit bus(relay::node_id from) : from_(std::move(from)) {}
  // Through the wire encoding, as between two node processes.
  void send(const relay::node_id& to, relay::message m) override {
    auto back = relay::decode(relay::encode(m));
    ASSERT_TRUE(back.has_value()) << back.error().message;
    queue->push_back({from_, to, std::move(*back)});
  }
  struct item {
    relay::node_id from, to;
    relay::message m;
  };
  std::deque<item>* queue = nullptr;

private:
  relay::node_id from_;
};

TEST(relay_pools, a_two_hop_relay_over_key_stores_delivers_the_same_key) {
  const auto seed = test_support::base_seed() + 22;
  SCOPED_TRACE(test_support::seed_note(seed));
  site a("A"), b("B"), c("C");
  commission(a, b, "A-B", seed, 2);
  commission(b, c, "B-C", seed + 1, 2);
  a.pools->add_link("B", "A-B", role::alice);
  b.pools->add_link("A", "A-B", role::bob);
  b.pools->add_link("C", "B-C", role::alice);
  c.pools->add_link("B", "B-C", role::bob);

  std::deque<bus::item> q;
  bus ta("A"), tb("B"), tc("C");
  ta.queue = tb.queue = tc.queue = &q;
  relay::sim::memory_sink sa, sb, sc;
  relay::sim::result_log la, lb, lc;
  seeded_drbg ra(seed, "a"), rb(seed, "b"), rc(seed, "c");
  relay::node_config cfg;
  cfg.self = "A";
  auto na = relay::node::create(cfg, ta, *a.pools, sa, ra, la);
  cfg.self = "B";
  auto nb = relay::node::create(cfg, tb, *b.pools, sb, rb, lb);
  cfg.self = "C";
  auto nc = relay::node::create(cfg, tc, *c.pools, sc, rc, lc);
  ASSERT_TRUE(na && nb && nc);
  std::map<relay::node_id, relay::node*> nodes{{"A", na->get()}, {"B", nb->get()}, {"C", nc->get()}};
  relay::time_point now{};
  const auto pump = [&] {
    for (int i = 0; i < 10000 && !q.empty(); ++i) {
      auto it = std::move(q.front());
      q.pop_front();
      nodes.at(it.to)->receive(it.from, std::move(it.m), now);
    }
  };
  (*na)->link_up("B", 1e3, now);
  (*nb)->link_up("A", 1e3, now);
  (*nb)->link_up("C", 1e3, now);
  (*nc)->link_up("B", 1e3, now);
  for (int i = 0; i < 50; ++i) {
    now += std::chrono::milliseconds(10);
    for (auto& [id, n] : nodes) n->tick(now);
    pump();
  }
  const auto before_ab = a.pools->available("B", relay::stream::outgoing);
  const auto before_bc = b.pools->available("C", relay::stream::outgoing);
  ASSERT_TRUE((*na)->request({.key_id = "k1", .destination = "C", .key_bytes = 32}, now).has_value());
  for (int i = 0; i < 100 && la.results.empty(); ++i) {
    pump();
    now += std::chrono::milliseconds(1);
    for (auto& [id, n] : nodes) n->tick(now);
  }
  ASSERT_EQ(la.results.size(), 1u);
  EXPECT_FALSE(la.results[0].failure.has_value()) << la.results[0].failure->message;
  ASSERT_NE(sa.find("k1"), nullptr);
  ASSERT_NE(sc.find("k1"), nullptr);
  EXPECT_TRUE(constant_time_equal(sa.find("k1")->bytes(), sc.find("k1")->bytes()));
  EXPECT_EQ(sb.find("k1"), nullptr) << "the transit node stores nothing";
  // Each hop used the same bytes at both of its ends.
  EXPECT_LT(a.pools->available("B", relay::stream::outgoing), before_ab);
  EXPECT_EQ(a.pools->available("B", relay::stream::outgoing), b.pools->available("A", relay::stream::incoming));
  EXPECT_LT(b.pools->available("C", relay::stream::outgoing), before_bc);
  EXPECT_EQ(b.pools->available("C", relay::stream::outgoing), c.pools->available("B", relay::stream::incoming));
}

}  // namespace
}  // namespace cvqkd
