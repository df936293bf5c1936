// node_services (node/services.hpp) on loopback over a PKI made by pki::init: the admin API by
// role (operator and node certificates in, SAE certificates 401), /metrics through promtool with
// the link series refreshed from the status function at scrape time, ETSI enc_keys/dec_keys for a
// local SAE pair through a fake key_provider (counted per route), the admin client and
// `cvqkd ctl` against it; plus the [[remote_saes]] configuration and the status JSON round trip.
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "config/node_config.hpp"
#include "hw/simulator.hpp"
#include "node/admin_client.hpp"
#include "node/api/store_key_service.hpp"
#include "node/metrics/metrics.hpp"
#include "node/pki/pki.hpp"
#include "node/services.hpp"
#include "storage/key_store.hpp"
#include "tests/metrics/test_helpers.hpp"

namespace {

using namespace cvqkd;
namespace fs = std::filesystem;
using nlohmann::json;
using test_support::parse_exposition;
using test_support::series_key;

// Stores fresh keys for local pairs (master and slaves on this node) in the one store, ready.
class fake_provider final : public api::key_provider {
public:
  explicit fake_provider(storage::key_store& store) : store_(store) {}
  expected<std::vector<storage::key_id>> provide(const api::provide_request& r) override {
    std::lock_guard lock(mutex_);
    ++calls;
    std::vector<storage::key_id> out;
    for (std::size_t i = 0; i < r.number; ++i) {
      storage::key_spec spec;
      spec.master_sae = r.master_sae;
      spec.slave_saes = r.slaves;
      spec.route = {"n1"};
      spec.ttl = std::chrono::minutes(10);
      spec.state = storage::key_state::ready;
      std::vector<std::byte> material(r.size_bits / 8);
      for (auto& b : material) b = static_cast<std::byte>(++counter_);
      auto put = store_.put_key(spec, material);
      if (!put) return std::unexpected(put.error());
      out.push_back(put->id);
    }
    return out;
  }
  int calls = 0;

private:
  storage::key_store& store_;
  std::mutex mutex_;
  unsigned counter_ = 0;
};

actors::node_status sample_status(std::uint64_t rounds, std::uint64_t aborted, std::uint64_t key_bits) {
  actors::node_status n;
  n.node_id = "n1";
  actors::link_status a;
  a.link_id = "l1";
  a.peer = "n2";
  a.role = "alice";
  a.profile = "highrate_metro";
  a.health = "up";
  a.engine_state = "running";
  a.peer_connected = true;
  a.round = rounds + aborted + 1;
  a.committed_round = rounds + aborted;
  a.symbols_done = 250'000;
  a.block_symbols = 1'000'000;
  a.rounds_completed = rounds;
  a.rounds_aborted = aborted;
  a.key_bits_committed = key_bits;
  a.pool_bits = 80'000;
  a.last_error = aborted > 0 ? "excess noise above the threshold" : "";
  a.has_last_round = true;
  a.last_round_outcome = "done";
  a.last_key_bits = 4'000;
  a.beta = 0.95;
  a.snr = 0.5;
  a.fer = 0.1;
  a.xi_hat = 0.02;
  a.xi_max = 0.03;
  a.transmittance_min = 0.5;
  a.last_round_seconds = 2.0;
  actors::link_status b;
  b.link_id = "l2";
  b.peer = "n3";
  b.role = "bob";
  b.profile = "llo_metro";
  b.health = "degraded";
  b.reason = "peer not connected";
  b.engine_state = "waiting_peer";
  n.links = {a, b};
  return n;
}

struct world {
  fs::path dir, pki_dir;
  config::node_config config;
  std::unique_ptr<storage::key_store> store;
  std::unique_ptr<fake_provider> provider;
  std::unique_ptr<metrics::node_metrics> metrics;
  std::unique_ptr<node::node_services> services;
  std::mutex status_mutex;
  actors::node_status status = sample_status(5, 0, 20'000);
  std::atomic<int> status_calls{0};

  world() {
    dir = fs::temp_directory_path() / ("cvqkd_services_" + std::to_string(::getpid()));
    fs::remove_all(dir);
    fs::create_directories(dir);
    pki_dir = dir / "pki";
    pki::init_options po;
    po.dir = pki_dir;
    po.nodes = {"n1", "n2"};
    po.saes = {{"sae_a", "n1"}, {"sae_b", "n1"}, {"sae_r", "n2"}};
    po.operators = {"operator"};
    if (auto ok = pki::init(po); !ok) throw std::runtime_error(ok.error().message);

    const auto kek = dir / "kek";
    if (auto ok = storage::create_kek_file(kek); !ok) throw std::runtime_error(ok.error().message);
    storage::store_options so;
    so.directory = dir / "store";
    so.kek_file = kek;
    so.node_id = "n1";
    auto st = storage::key_store::open(so);
    if (!st) throw std::runtime_error(st.error().message);
    store = std::move(*st);
    provider = std::make_unique<fake_provider>(*store);
    auto m = metrics::node_metrics::create("n1");
    if (!m) throw std::runtime_error(m.error().message);
    metrics = std::move(*m);

    config.source = "services_test.toml";
    config.id = "n1";
    config.api_listen = config::endpoint{"127.0.0.1", 0};
    config.ca = pki_dir / "nodes/n1/ca.crt";
    config.certificate = pki_dir / "nodes/n1/node.crt";
    config.key = pki_dir / "nodes/n1/node.key";
    config.saes = {{"sae_a"}, {"sae_b"}};
    config.remote_saes = {{"sae_r", "n2"}};
    config::link_config l1;
    l1.id = "l1";
    l1.block_symbols = 1'000'000;
    l1.pe_fraction = 0.25;
    config.links = {l1};

    auto started = node::node_services::start(
      config, *store, *provider, *metrics,
      [this]() -> expected<actors::node_status> {
        ++status_calls;
        std::lock_guard lock(status_mutex);
        return status;
      },
      []() -> expected<json> { return json{{"routes", {{{"destination", "n2"}, {"next_hop", "n2"}, {"hops", 1}}}}}; });
    if (!started) throw std::runtime_error(started.error().message);
    services = std::move(*started);
    config.api_listen->port = services->port();  // what fetch_status_https dials
  }
  ~world() {
    services.reset();
    store.reset();
    std::error_code ec;
    fs::remove_all(dir, ec);
  }

  node::client_tls operator_tls() const {
    const auto d = pki_dir / "operators/operator";
    return {d / "ca.crt", d / "operator.crt", d / "operator.key"};
  }
  node::client_tls node_tls(const std::string& n) const {
    const auto d = pki_dir / "nodes" / n;
    return {d / "ca.crt", d / "node.crt", d / "node.key"};
  }
  node::client_tls sae_tls(const std::string& s) const {
    const auto d = pki_dir / "saes" / s;
    return {d / "ca.crt", d / "sae.crt", d / "sae.key"};
  }
  expected<node::https_reply> get(const node::client_tls& tls, const std::string& path) const {
    return node::https_get("127.0.0.1", services->port(), tls, path, std::chrono::seconds(10));
  }
};

class services : public ::testing::Test {
protected:
  static void SetUpTestSuite() { w_ = new world(); }
  static void TearDownTestSuite() {
    delete w_;
    w_ = nullptr;
  }
  static world* w_;
};
world* services::w_ = nullptr;

TEST_F(services, admin_status_answers_operators_and_nodes_and_refuses_saes) {
  const json expected = node::to_json(sample_status(5, 0, 20'000));
  for (const auto& tls : {w_->operator_tls(), w_->node_tls("n1"), w_->node_tls("n2")}) {
    auto r = w_->get(tls, "/admin/status");
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->status, 200u) << tls.certificate;
    EXPECT_EQ(json::parse(r->body), expected) << tls.certificate;
  }
  // Every link_status field is there, the last round nested, null when there is none.
  const auto& l1 = expected["links"][0];
  for (const char* k : {"link_id", "peer", "role", "profile", "health", "reason", "engine_state", "peer_connected",
                        "round", "committed_round", "symbols_done", "block_symbols", "rounds_completed",
                        "rounds_aborted", "key_bits_committed", "pool_bits", "malformed_messages", "resends",
                        "restarts", "rejected_messages", "last_error"})
    EXPECT_TRUE(l1.contains(k)) << k;
  EXPECT_DOUBLE_EQ(l1["last_round"]["xi_max"].get<double>(), 0.03);
  EXPECT_TRUE(expected["links"][1]["last_round"].is_null());

  auto sae = w_->get(w_->sae_tls("sae_a"), "/admin/status");
  ASSERT_TRUE(sae) << sae.error().message;
  EXPECT_EQ(sae->status, 401u);
  EXPECT_EQ(sae->body, "");
  for (const char* path : {"/metrics", "/admin/keys", "/admin/routes"}) {
    auto r = w_->get(w_->sae_tls("sae_b"), path);
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->status, 401u) << path;
  }
  // admin_get reports the refusal as an error that names the certificate's problem.
  const auto t = w_->sae_tls("sae_a");
  auto refused = node::admin_get("127.0.0.1", w_->services->port(), t.ca, t.certificate, t.key, "/admin/status",
                                 std::chrono::seconds(10));
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message.find("401"), std::string::npos) << refused.error().message;
}

TEST_F(services, fetch_status_https_uses_the_nodes_own_certificate) {
  auto j = node::fetch_status_https(w_->config);
  ASSERT_TRUE(j) << j.error().message;
  auto n = node::node_status_from_json(*j);
  ASSERT_TRUE(n) << n.error().message;
  EXPECT_EQ(node::to_json(*n), node::to_json(sample_status(5, 0, 20'000)));  // round trip
  EXPECT_EQ(n->links.at(0).transmittance_min, 0.5);
  EXPECT_FALSE(n->links.at(1).has_last_round);

  auto broken = *j;
  broken["links"][0].erase("pool_bits");
  auto bad = node::node_status_from_json(broken);
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("pool_bits"), std::string::npos) << bad.error().message;

  auto no_api = w_->config;
  no_api.api_listen.reset();
  auto refused = node::fetch_status_https(no_api);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, errc::config_error);
}

TEST_F(services, metrics_pass_promtool_and_follow_the_status_at_scrape_time) {
  auto scrape = [&] {
    auto r = w_->get(w_->operator_tls(), "/metrics");
    EXPECT_TRUE(r) << (r ? "" : r.error().message);
    if (!r) return std::string();
    EXPECT_EQ(r->status, 200u);
    EXPECT_TRUE(r->content_type.starts_with("text/plain; version=0.0.4")) << r->content_type;
    return r->body;
  };
  const auto text = scrape();
  const auto file = w_->dir / "metrics.prom";
  std::ofstream(file) << text;
  const auto [rc, out] = test_support::run_command(std::string(CVQKD_PROMTOOL) + " check metrics < " + file.string());
  EXPECT_EQ(rc, 0) << "promtool check metrics:\n" << out;
  EXPECT_EQ(out, "") << "promtool check metrics:\n" << out;

  const std::map<std::string, std::string> l1 = {{"node", "n1"}, {"link", "l1"}, {"peer", "n2"}, {"role", "alice"}};
  const std::map<std::string, std::string> l2 = {{"node", "n1"}, {"link", "l2"}, {"peer", "n3"}, {"role", "bob"}};
  auto with = [](std::map<std::string, std::string> m, const std::string& k, const std::string& v) {
    m[k] = v;
    return m;
  };
  auto v = parse_exposition(text);
  auto at = [&](const std::string& name, const std::map<std::string, std::string>& labels) {
    const auto key = series_key(name, labels);
    EXPECT_TRUE(v.contains(key)) << key << " missing in\n" << text;
    return v.contains(key) ? v.at(key) : -1.0;
  };
  EXPECT_DOUBLE_EQ(at("cvqkd_link_key_pool_bytes", l1), 10'000.0);  // 80 000 bits
  EXPECT_DOUBLE_EQ(at("cvqkd_link_state", with(l1, "state", "up")), 1.0);
  EXPECT_DOUBLE_EQ(at("cvqkd_link_state", with(l1, "state", "down")), 0.0);
  EXPECT_DOUBLE_EQ(at("cvqkd_link_state", with(l2, "state", "degraded")), 1.0);
  EXPECT_DOUBLE_EQ(at("cvqkd_link_reconciliation_efficiency_ratio", l1), 0.95);
  EXPECT_DOUBLE_EQ(at("cvqkd_link_snr_ratio", l1), 0.5);
  EXPECT_DOUBLE_EQ(at("cvqkd_link_reconciliation_success_ratio", l1), 0.9);
  EXPECT_DOUBLE_EQ(at("cvqkd_link_excess_noise_snu", l1), 0.02);
  EXPECT_NEAR(at("cvqkd_link_channel_loss_db", l1), 3.0103, 1e-4);  // -10 log10(T_min = 0.5)
  EXPECT_DOUBLE_EQ(at("cvqkd_link_secret_key_rate_bytes_per_second", l1), 250.0);  // 4000 bits / 2 s
  EXPECT_DOUBLE_EQ(at("cvqkd_link_pe_window_symbols", l1), 250'000.0);
  EXPECT_DOUBLE_EQ(at("cvqkd_link_rounds_completed_total", l1), 5.0);
  EXPECT_DOUBLE_EQ(at("cvqkd_link_secret_key_bytes_total", l1), 2'500.0);
  EXPECT_TRUE(std::isnan(at("cvqkd_link_reconciliation_efficiency_ratio", l2)));  // no round yet: unknown

  // The link moves on: counters advance by the increase, aborts are classed by the last error.
  {
    std::lock_guard lock(w_->status_mutex);
    w_->status = sample_status(8, 2, 28'000);
    w_->status.links[0].pool_bits = 8;
    w_->status.links[0].health = "degraded";
  }
  v = parse_exposition(scrape());
  EXPECT_DOUBLE_EQ(at("cvqkd_link_rounds_completed_total", l1), 8.0);
  EXPECT_DOUBLE_EQ(at("cvqkd_link_rounds_aborted_total", with(l1, "reason", "excess_noise")), 2.0);
  EXPECT_DOUBLE_EQ(at("cvqkd_link_secret_key_bytes_total", l1), 3'500.0);
  EXPECT_DOUBLE_EQ(at("cvqkd_link_key_pool_bytes", l1), 1.0);
  EXPECT_DOUBLE_EQ(at("cvqkd_link_state", with(l1, "state", "degraded")), 1.0);
  EXPECT_DOUBLE_EQ(at("cvqkd_link_state", with(l1, "state", "up")), 0.0);
  {
    std::lock_guard lock(w_->status_mutex);
    w_->status = sample_status(5, 0, 20'000);
  }
  // The admin requests themselves are counted (a node certificate may scrape too).
  auto r = w_->get(w_->node_tls("n2"), "/metrics");
  ASSERT_TRUE(r) << r.error().message;
  v = parse_exposition(r->body);
  EXPECT_GE(at("cvqkd_api_requests_total", {{"node", "n1"}, {"route", "metrics"}, {"code", "200"}}), 2.0);
}

TEST_F(services, etsi_keys_for_a_local_pair_through_the_provider_are_counted) {
  auto enc = w_->get(w_->sae_tls("sae_a"), "/api/v1/keys/sae_b/enc_keys?number=2&size=256");
  ASSERT_TRUE(enc) << enc.error().message;
  ASSERT_EQ(enc->status, 200u) << enc->body;
  const auto keys = json::parse(enc->body).at("keys");
  ASSERT_EQ(keys.size(), 2u);
  EXPECT_GE(w_->provider->calls, 1);
  const std::string id = keys[0].at("key_ID").get<std::string>();
  const std::string key = keys[0].at("key").get<std::string>();
  EXPECT_EQ(key.size(), 44u);  // base64 of 32 bytes

  auto dec = w_->get(w_->sae_tls("sae_b"), "/api/v1/keys/sae_a/dec_keys?key_ID=" + id);
  ASSERT_TRUE(dec) << dec.error().message;
  ASSERT_EQ(dec->status, 200u) << dec->body;
  EXPECT_EQ(json::parse(dec->body).at("keys").at(0).at("key").get<std::string>(), key);

  // A remote SAE from [[remote_saes]]: its KME is n2.
  auto st = w_->get(w_->sae_tls("sae_a"), "/api/v1/keys/sae_r/status");
  ASSERT_TRUE(st) << st.error().message;
  ASSERT_EQ(st->status, 200u) << st->body;
  EXPECT_EQ(json::parse(st->body).at("target_KME_ID"), "n2");
  EXPECT_EQ(json::parse(st->body).at("source_KME_ID"), "n1");
  // The operator is no SAE.
  auto op = w_->get(w_->operator_tls(), "/api/v1/keys/sae_b/enc_keys");
  ASSERT_TRUE(op) << op.error().message;
  EXPECT_EQ(op->status, 401u);

  const auto v = parse_exposition(w_->metrics->serialize());
  EXPECT_GE(v.at(series_key("cvqkd_api_requests_total", {{"node", "n1"}, {"route", "enc_keys"}, {"code", "200"}})), 1.0);
  EXPECT_GE(v.at(series_key("cvqkd_api_requests_total", {{"node", "n1"}, {"route", "enc_keys"}, {"code", "401"}})), 1.0);
  EXPECT_GE(v.at(series_key("cvqkd_api_requests_total", {{"node", "n1"}, {"route", "dec_keys"}, {"code", "200"}})), 1.0);
  EXPECT_GE(v.at(series_key("cvqkd_api_requests_total", {{"node", "n1"}, {"route", "status"}, {"code", "200"}})), 1.0);

  // /admin/keys counts the pair's live keys (one left: the second key still owed to sae_b).
  auto admin_keys = w_->get(w_->operator_tls(), "/admin/keys");
  ASSERT_TRUE(admin_keys) << admin_keys.error().message;
  ASSERT_EQ(admin_keys->status, 200u);
  bool found = false;
  const auto counts = json::parse(admin_keys->body);
  for (const auto& p : counts.at("pairs"))
    if (p.at("master_sae") == "sae_a" && p.at("slave_sae") == "sae_b") {
      found = true;
      EXPECT_EQ(p.at("live").get<int>(), 1) << p;
      EXPECT_EQ(p.at("slave_kme"), "n1");
    }
  EXPECT_TRUE(found) << admin_keys->body;
}

TEST_F(services, ctl_prints_links_routes_and_keys) {
  const std::string base = std::string(CVQKD_BINARY) + " ctl {} --node 127.0.0.1:" +
                           std::to_string(w_->services->port()) + " --pki " + w_->pki_dir.string();
  auto cmd = [&](const std::string& sub, const std::string& extra) {
    std::string c = base;
    c.replace(c.find("{}"), 2, sub);
    return test_support::run_command(c + extra + " 2>/dev/null");
  };
  const auto [rc, out] = cmd("links", " --json");
  ASSERT_EQ(rc, 0) << out;
  EXPECT_EQ(json::parse(out), node::to_json(sample_status(5, 0, 20'000)));

  const auto [rc_table, table] = cmd("links", "");
  ASSERT_EQ(rc_table, 0) << table;
  EXPECT_NE(table.find("l1"), std::string::npos) << table;
  EXPECT_NE(table.find("waiting_peer"), std::string::npos) << table;
  EXPECT_NE(table.find("0.950"), std::string::npos) << table;  // β of l1

  const auto [rc_routes, routes] = cmd("routes", " --json");
  ASSERT_EQ(rc_routes, 0) << routes;
  EXPECT_EQ(json::parse(routes).at("routes").at(0).at("next_hop"), "n2");

  const auto [rc_keys, keys] = cmd("keys", "");
  ASSERT_EQ(rc_keys, 0) << keys;
  EXPECT_NE(keys.find("sae_r"), std::string::npos) << keys;

  // A missing operator certificate is a usage error naming --operator.
  const auto [rc_bad, bad] =
    test_support::run_command(std::string(CVQKD_BINARY) + " ctl links --node 127.0.0.1:" +
                              std::to_string(w_->services->port()) + " --pki " + w_->pki_dir.string() + " --operator nobody");
  EXPECT_EQ(rc_bad, 2) << bad;
  EXPECT_NE(bad.find("--operator"), std::string::npos) << bad;
}

// ---------------------------------------------------------------------------------------------
// [[remote_saes]] in the node file

const std::string node_file = R"(
[node]
id = "n1"
listen = "127.0.0.1:7001"
api_listen = "127.0.0.1:8443"
storage = "data/n1"
kek_file = "data/n1.kek"

[pki]
ca = "pki/ca.crt"
certificate = "pki/node.crt"
key = "pki/node.key"
secrets = "pki/secrets"

[[saes]]
id = "sae_a"
)";

TEST(services_config, remote_saes_name_their_node) {
  auto c = config::parse_node_config(node_file + "[[remote_saes]]\nid = \"sae_r\"\nnode = \"n2\"\n", "n1.toml", "/etc");
  ASSERT_TRUE(c) << c.error().message;
  ASSERT_EQ(c->remote_saes.size(), 1u);
  EXPECT_EQ(c->remote_saes[0].id, "sae_r");
  EXPECT_EQ(c->remote_saes[0].node, "n2");

  auto own = config::parse_node_config(node_file + "[[remote_saes]]\nid = \"sae_r\"\nnode = \"n1\"\n", "n1.toml", "/etc");
  ASSERT_FALSE(own);
  EXPECT_NE(own.error().message.find("remote_saes[0].node"), std::string::npos) << own.error().message;
  auto twice = config::parse_node_config(node_file + "[[remote_saes]]\nid = \"sae_a\"\nnode = \"n2\"\n", "n1.toml", "/etc");
  ASSERT_FALSE(twice);
  EXPECT_NE(twice.error().message.find("listed twice"), std::string::npos) << twice.error().message;
  auto no_node = config::parse_node_config(node_file + "[[remote_saes]]\nid = \"sae_r\"\n", "n1.toml", "/etc");
  ASSERT_FALSE(no_node);
  EXPECT_NE(no_node.error().message.find("remote_saes[0].node"), std::string::npos) << no_node.error().message;
}

}  // namespace

// The fault drills' parameters (POST /admin/drill): defaults, the crosstalk noise from the link's
// fibre, and bad input refused with a message that says what to give.
TEST(services_drills, fault_drills_parse_their_parameters_and_refuse_bad_input) {
  auto c = config::parse_node_config(node_file +
                                       "[[links]]\nid = \"l1\"\npeer = \"n2\"\npeer_address = \"127.0.0.1:7002\"\n"
                                       "role = \"bob\"\nprofile = \"highrate_metro\"\nlength_km = 1\n"
                                       "extra_loss_db = 1.2\nblock_symbols = 1e6\nseed = 7\n",
                                     "n1.toml", "/etc");
  ASSERT_TRUE(c) << c.error().message;
  using nlohmann::json;
  auto xi = node::drill_faults(*c, "excess-noise", "l1", json{{"xi", 0.3}});
  ASSERT_TRUE(xi) << xi.error().message;
  EXPECT_DOUBLE_EQ(xi->excess_noise, 0.3);
  EXPECT_NE(xi->what.find("excess-noise"), std::string::npos);
  auto def = node::drill_faults(*c, "detector-saturation", "l1", json::object());
  ASSERT_TRUE(def) << def.error().message;
  EXPECT_DOUBLE_EQ(def->power_factor, node::drill_defaults::power_factor);
  auto auth = node::drill_faults(*c, "auth-failure", "l1", json::object());
  ASSERT_TRUE(auth);
  EXPECT_TRUE(auth->corrupt_auth);
  // Crosstalk: the noise of hw::crosstalk_excess_noise over this link's 1 km of fibre.
  auto ct = node::drill_faults(*c, "crosstalk", "l1", json{{"launch_dbm", 0.0}, {"isolation_db", 90.0}});
  ASSERT_TRUE(ct) << ct.error().message;
  hw::classical_channel ch;
  ch.launch_power_mw = 1.0;
  ch.isolation_db = 90.0;
  ch.length_km = 1.0;
  ch.transmittance = c->links[0].transmittance();
  ch.symbol_rate_baud = c->links[0].profile.symbol_rate_baud;
  EXPECT_DOUBLE_EQ(ct->crosstalk_xi, *hw::crosstalk_excess_noise(ch));
  EXPECT_GT(ct->crosstalk_xi, 0.01);

  const auto refused = [&](const std::string& drill, const std::string& link, const json& p, const std::string& says) {
    auto r = node::drill_faults(*c, drill, link, p);
    ASSERT_FALSE(r) << drill << " " << p.dump();
    EXPECT_EQ(r.error().code, errc::invalid_argument);
    EXPECT_NE(r.error().message.find(says), std::string::npos) << r.error().message;
  };
  refused("excess-noise", "l1", json{{"xi", 0.0}}, "(0, 10] SNU");
  refused("excess-noise", "l1", json{{"xi", -0.2}}, "(0, 10] SNU");
  refused("excess-noise", "l1", json{{"xi", 1e6}}, "out of range");
  refused("excess-noise", "l1", json{{"xi", "lots"}}, "must be a number");
  refused("excess-noise", "nope", json::object(), "has no link 'nope'");
  refused("sample-loss", "l1", json{{"probability", 2.0}}, "out of range");
  refused("calibration-drift", "l1", json{{"drift", 0.0}}, "not 0");
  refused("crosstalk", "l1", json{{"launch_dbm", 99.0}}, "[-60, 30] dBm");
  refused("melt-fibre", "l1", json::object(), "unknown drill");
  EXPECT_TRUE(node::is_fault_drill("lo-drift"));
  EXPECT_FALSE(node::is_fault_drill("cut-link"));
}
