// The relay host (node/relay_host.hpp) behind the ETSI GS QKD 014 key service: three sites
// A - B - C with key stores whose link pools hold committed link key; enc_keys by an SAE at A for
// an SAE at C relays keys through B, and dec_keys at C returns the same bytes. Also: a pair at one
// site, an unknown slave, slaves at two sites, and a route that does not exist.
#include <gtest/gtest.h>

#include <deque>

#include "core/drbg.hpp"
#include "node/link_store.hpp"
#include "node/relay_host.hpp"
#include "storage_test_support.hpp"
#include "test_seed.hpp"

namespace cvqkd {
namespace {

using links::role;
using test_support::temp_dir;

struct site {
  std::string id;
  temp_dir dir;
  std::unique_ptr<storage::key_store> store;
  std::unique_ptr<node::relay_host> host;
  std::unique_ptr<api::store_key_service> api;
  explicit site(std::string name) : id(std::move(name)) {
    EXPECT_TRUE(storage::create_kek_file(dir.path() / "kek").has_value());
    storage::store_options o;
    o.directory = dir.path() / "db";
    o.kek_file = dir.path() / "kek";
    o.node_id = id;
    store = std::move(*storage::key_store::open(o));
  }
};

void commission(site& alice, site& bob, const std::string& link, std::uint64_t seed) {
  std::vector<std::byte> psk(1024);
  seeded_drbg(seed, "psk").fill(psk);
  auto a = node::open_link_state(*alice.store, link, psk);
  auto b = node::open_link_state(*bob.store, link, psk);
  ASSERT_TRUE(a && b);
  seeded_drbg keys(seed, "link-key");
  for (int r = 1; r <= 2; ++r) {
    secure_buffer key(8192), reserve(320);
    keys.fill(key.bytes());
    keys.fill(reserve.bytes());
    ASSERT_TRUE((*a)->commit(r, key, reserve).has_value());
    ASSERT_TRUE((*b)->commit(r, key, reserve).has_value());
  }
}

class network : public node::relay_host::outbox {
public:
  void send(const relay::node_id& to, std::vector<std::byte> bytes) override { q.push_back({from, to, std::move(bytes)}); }
  struct item {
    std::string from, to;
    std::vector<std::byte> bytes;
  };
  std::deque<item> q;
  std::string from;  // set before each call into a host (single-threaded test)
};

// Sends from a given site (the outbox does not know who calls it).
class site_outbox final : public node::relay_host::outbox {
public:
  site_outbox(network& n, std::string self) : n_(n), self_(std::move(self)) {}
  void send(const relay::node_id& to, std::vector<std::byte> bytes) override {
    n_.q.push_back({self_, to, std::move(bytes)});
  }

private:
  network& n_;
  std::string self_;
};

struct fixture : ::testing::Test {
  site a{"A"}, b{"B"}, c{"C"};
  network net;
  site_outbox oa{net, "A"}, ob{net, "B"}, oc{net, "C"};
  seeded_drbg ra{1, "a"}, rb{2, "b"}, rc{3, "c"};
  relay::time_point now{};
  std::map<std::string, site*> sites{{"A", &a}, {"B", &b}, {"C", &c}};

  // Provides keys synchronously by running the network until the relay answers.
  class pumping_provider final : public api::key_provider {
  public:
    pumping_provider(fixture& f, site& s) : f_(f), s_(s) {}
    expected<std::vector<storage::key_id>> provide(const api::provide_request& r) override {
      std::optional<expected<std::vector<storage::key_id>>> out;
      s_.host->provide(r, [&](expected<std::vector<storage::key_id>> got) { out = std::move(got); }, f_.now);
      for (int i = 0; i < 2000 && !out; ++i) f_.step();
      if (!out) return fail(errc::io_error, "the relay did not answer");
      return std::move(*out);
    }

  private:
    fixture& f_;
    site& s_;
  };
  std::unique_ptr<pumping_provider> pa, pc;

  void SetUp() override {
    commission(a, b, "a-b", test_support::base_seed() + 31);
    commission(b, c, "b-c", test_support::base_seed() + 32);
    const std::map<std::string, std::string, std::less<>> saes{{"sae-a1", "A"}, {"sae-a2", "A"}, {"sae-b", "B"},
                                                                {"sae-c", "C"}, {"sae-c2", "C"}};
    const auto make = [&](site& s, node::relay_host::outbox& o, random_source& r, std::vector<node::relay_link> l) {
      node::relay_host_config cfg;
      cfg.relay.self = s.id;
      cfg.links = std::move(l);
      cfg.sae_node = saes;
      auto h = node::relay_host::create(cfg, *s.store, o, r);
      ASSERT_TRUE(h.has_value()) << h.error().message;
      s.host = std::move(*h);
    };
    make(a, oa, ra, {{"B", "a-b", role::alice}});
    make(b, ob, rb, {{"A", "a-b", role::bob}, {"C", "b-c", role::alice}});
    make(c, oc, rc, {{"B", "b-c", role::bob}});
    a.host->link_up("B", 1e4, now);
    b.host->link_up("A", 1e4, now);
    b.host->link_up("C", 1e4, now);
    c.host->link_up("B", 1e4, now);
    for (int i = 0; i < 100; ++i) step();
    pa = std::make_unique<pumping_provider>(*this, a);
    pc = std::make_unique<pumping_provider>(*this, c);
    api::store_service_options oa_opt{"A", saes, {}};
    api::store_service_options oc_opt{"C", saes, {}};
    a.api = std::move(*api::store_key_service::create(*a.store, *pa, oa_opt));
    c.api = std::move(*api::store_key_service::create(*c.store, *pc, oc_opt));
  }

  void step() {
    now += std::chrono::milliseconds(2);
    for (int i = 0; i < 1000 && !net.q.empty(); ++i) {
      auto it = std::move(net.q.front());
      net.q.pop_front();
      sites.at(it.to)->host->receive(it.from, it.bytes, now);
    }
    for (auto& [id, s] : sites) s->host->tick(now);
  }
};

TEST_F(fixture, enc_keys_at_one_site_and_dec_keys_two_hops_away_return_the_same_key) {
  api::key_request r;
  r.master_sae = "sae-a1";
  r.slave_sae = "sae-c";
  r.number = 3;
  r.size_bits = 256;
  auto got = a.api->enc_keys(r);
  ASSERT_TRUE(got.has_value()) << got.error().message;
  ASSERT_EQ(got->keys.size(), 3u);
  std::vector<std::string> ids;
  for (const auto& k : got->keys) ids.push_back(k.key_id);
  auto back = c.api->dec_keys("sae-c", "sae-a1", ids);
  ASSERT_TRUE(back.has_value()) << back.error().message;
  ASSERT_EQ(back->keys.size(), 3u);
  for (std::size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(back->keys[i].key_id, got->keys[i].key_id);
    EXPECT_TRUE(constant_time_equal(back->keys[i].material.bytes(), got->keys[i].material.bytes()));
  }
  // The transit site holds nothing, and a second dec_keys finds nothing.
  EXPECT_EQ(b.store->status("sae-a1", "sae-c").live, 0u);
  EXPECT_FALSE(c.api->dec_keys("sae-c", "sae-a1", ids).has_value());
  EXPECT_GE(a.host->stats().committed, 3u);
  EXPECT_GE(b.host->stats().hops_forwarded, 3u);
}

TEST_F(fixture, multicast_to_a_slave_two_hops_away_and_one_at_the_source_gives_both_the_same_key) {
  api::key_request r;
  r.master_sae = "sae-a1";
  r.slave_sae = "sae-c";
  r.additional_slaves = {"sae-a2"};
  r.number = 2;
  r.size_bits = 256;
  auto got = a.api->enc_keys(r);
  ASSERT_TRUE(got.has_value()) << got.error().message;
  ASSERT_EQ(got->keys.size(), 2u);
  std::vector<std::string> ids;
  for (const auto& k : got->keys) ids.push_back(k.key_id);
  auto at_c = c.api->dec_keys("sae-c", "sae-a1", ids);
  auto at_a = a.api->dec_keys("sae-a2", "sae-a1", ids);
  ASSERT_TRUE(at_c.has_value()) << at_c.error().message;
  ASSERT_TRUE(at_a.has_value()) << at_a.error().message;
  for (std::size_t i = 0; i < 2; ++i) {
    EXPECT_TRUE(constant_time_equal(at_c->keys[i].material.bytes(), got->keys[i].material.bytes()));
    EXPECT_TRUE(constant_time_equal(at_a->keys[i].material.bytes(), got->keys[i].material.bytes()));
  }
  EXPECT_FALSE(a.api->dec_keys("sae-a2", "sae-a1", ids).has_value()) << "each slave gets a key once";
}

TEST_F(fixture, a_pair_at_one_site_and_bad_requests) {
  api::key_request r;
  r.master_sae = "sae-a1";
  r.slave_sae = "sae-a2";
  r.number = 2;
  r.size_bits = 128;
  auto got = a.api->enc_keys(r);
  ASSERT_TRUE(got.has_value()) << got.error().message;
  EXPECT_EQ(a.host->stats().rounds_started, 0u) << "no relay for a local pair";

  std::optional<expected<std::vector<storage::key_id>>> out;
  const auto capture = [&](expected<std::vector<storage::key_id>> x) { out = std::move(x); };
  a.host->provide({"sae-a1", {"nobody"}, 1, 256, std::nullopt, false}, capture, now);
  ASSERT_TRUE(out && !out->has_value());
  EXPECT_EQ(out->error().code, errc::invalid_argument);
  out.reset();
  a.host->provide({"sae-a1", {"sae-c", "sae-b"}, 1, 256, std::nullopt, false}, capture, now);
  ASSERT_TRUE(out && !out->has_value());
  EXPECT_NE(out->error().message.find("one other KME"), std::string::npos);
  out.reset();
  a.host->provide({"sae-a1", {"sae-c"}, 1, 256, api::route_type::direct, true}, capture, now);
  ASSERT_TRUE(out && !out->has_value());
  EXPECT_EQ(out->error().code, errc::unsupported);
}

TEST_F(fixture, a_cut_link_fails_the_request_with_the_unreachable_node_and_burns_nothing_twice) {
  b.host->link_down("C", now);
  c.host->link_down("B", now);
  for (int i = 0; i < 200; ++i) step();
  api::key_request r;
  r.master_sae = "sae-a1";
  r.slave_sae = "sae-c";
  r.size_bits = 256;
  auto got = a.api->enc_keys(r);
  ASSERT_FALSE(got.has_value());
  EXPECT_EQ(static_cast<unsigned>(got.error().status), 503u);
  EXPECT_NE(got.error().message.find("C"), std::string::npos) << got.error().message;
  EXPECT_EQ(a.store->status("sae-a1", "sae-c").live, 0u) << "no key ID may reach the master";
}

}  // namespace
}  // namespace cvqkd
