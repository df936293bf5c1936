// `cvqkd network generate` (node/network.hpp): the shipped test ring becomes a PKI and four node
// files that load with the node's own parser, with distinct ports, consistent roles and peer
// addresses, the topology's loss as the simulated transmittance, one shared secret and seed per
// link, and a re-run that keeps the PKI and the key stores.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "config/node_config.hpp"
#include "config/topology.hpp"
#include "node/network.hpp"
#include "node/pki/pki.hpp"

namespace {

namespace fs = std::filesystem;
using namespace cvqkd;

struct temp_dir {
  fs::path path;
  temp_dir() {
    char tmpl[] = "/tmp/cvqkd-network-test-XXXXXX";
    const char* made = ::mkdtemp(tmpl);
    EXPECT_NE(made, nullptr);
    path = made ? made : "";
  }
  ~temp_dir() {
    std::error_code ec;
    if (!path.empty()) fs::remove_all(path, ec);
  }
};

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

config::topology load(const std::string& name) {
  auto t = config::resolve_topology(name);
  EXPECT_TRUE(t) << (t ? "" : t.error().message);
  return t ? *t : config::topology{};
}

// Checks every generated node file (by node ID) of `topo` against the topology.
void check_consistent(const config::topology& topo,
                                                            const std::map<std::string, config::node_config>& nodes) {
  std::set<std::uint16_t> ports;
  for (const auto& [id, c] : nodes) {
    EXPECT_EQ(c.id, id);
    EXPECT_EQ(c.listen.host, network::host_of(*topo.find_node(id)));
    EXPECT_TRUE(ports.insert(c.listen.port).second) << "port " << c.listen.port << " used twice";
    ASSERT_TRUE(c.api_listen.has_value()) << id;
    EXPECT_EQ(c.api_listen->host, c.listen.host);
    EXPECT_TRUE(ports.insert(c.api_listen->port).second) << "port " << c.api_listen->port << " used twice";
    const auto* tn = topo.find_node(id);
    ASSERT_NE(tn, nullptr);
    std::vector<std::string> saes;
    for (const auto& s : c.saes) saes.push_back(s.id);
    EXPECT_EQ(saes, tn->saes) << id;
  }
  EXPECT_EQ(ports.size(), 2 * topo.nodes.size());
  std::size_t ends = 0;
  for (const auto& n : nodes) ends += n.second.links.size();
  EXPECT_EQ(ends, 2 * topo.links.size()) << "every link has exactly two ends";

  for (const auto& l : topo.links) {
    SCOPED_TRACE("link " + l.id);
    const auto& na = nodes.at(l.a);
    const auto& nb = nodes.at(l.b);
    const auto* a = na.find_link(l.id);
    const auto* b = nb.find_link(l.id);
    EXPECT_TRUE(a && b);
    if (!a || !b) continue;
    EXPECT_EQ(a->role, config::link_role::alice);
    EXPECT_EQ(b->role, config::link_role::bob);
    EXPECT_EQ(a->peer, l.b);
    EXPECT_EQ(b->peer, l.a);
    // The bob end dials the alice node's listen address.
    EXPECT_EQ(b->peer_address.to_string(), na.listen.to_string());
    EXPECT_EQ(a->peer_address.to_string(), nb.listen.to_string());
    EXPECT_EQ(a->seed, b->seed);
    EXPECT_EQ(a->seed, network::link_seed(l.id));
    const double t = std::pow(10.0, -l.loss_db / 10.0);
    EXPECT_NEAR(a->transmittance(), t, 1e-12 * t);
    EXPECT_NEAR(b->transmittance(), t, 1e-12 * t);
    for (const auto* e : {a, b}) {
      EXPECT_EQ(e->profile_name, l.profile_name);
      EXPECT_EQ(e->profile.symbol_rate_baud, l.profile.symbol_rate_baud);
      EXPECT_EQ(e->length_km, l.length_km);
      EXPECT_EQ(e->block_symbols, l.block_symbols);
      EXPECT_EQ(e->block_auto, l.block_auto);
      EXPECT_EQ(e->frame_symbols, l.frame_symbols);
      EXPECT_EQ(e->short_codes, l.short_codes);
      EXPECT_EQ(e->pool_max_bits, l.pool_max_bits);
      EXPECT_DOUBLE_EQ(e->beta, l.beta > 0 ? l.beta : l.profile.beta_target);
    }
  }
}

TEST(network_generate, test_ring_loads_and_is_consistent_and_regenerates_idempotently) {
  const auto topo = load("test-ring");
  ASSERT_EQ(topo.nodes.size(), 4u);
  temp_dir tmp;
  const fs::path dir = tmp.path / "net";
  auto g = network::generate(topo, dir, 21000);
  ASSERT_TRUE(g) << g.error().message;
  ASSERT_EQ(g->nodes.size(), 4u);
  EXPECT_TRUE(g->notes.empty());

  std::map<std::string, config::node_config> nodes;
  for (std::size_t i = 0; i < g->nodes.size(); ++i) {
    const auto& n = g->nodes[i];
    EXPECT_EQ(n.config, fs::absolute(dir) / n.id / "node.toml");
    auto c = config::load_node_config(n.config);
    ASSERT_TRUE(c) << c.error().message;
    EXPECT_EQ(c->listen.port, 21000 + 2 * i);
    EXPECT_EQ(c->api_listen->port, 21000 + 2 * i + 1);
    EXPECT_EQ(c->storage, fs::absolute(dir) / n.id / "state");
    EXPECT_EQ(c->kek_file, fs::absolute(dir) / n.id / "kek");
    for (const auto& p : {c->ca, c->certificate, c->key}) EXPECT_TRUE(fs::is_regular_file(p)) << p;
    EXPECT_TRUE(fs::is_directory(c->secrets));
    EXPECT_EQ(fs::status(n.directory).permissions() & fs::perms::all, fs::perms::owner_all);
    nodes.emplace(n.id, std::move(*c));
  }
  check_consistent(topo, nodes);

  // The link secret is the same file content at both ends, and each link has its own.
  std::set<std::string> secrets;
  for (const auto& l : topo.links) {
    auto sa = pki::read_link_secret(nodes.at(l.a).secrets, l.id);
    auto sb = pki::read_link_secret(nodes.at(l.b).secrets, l.id);
    ASSERT_TRUE(sa && sb) << l.id;
    ASSERT_EQ(sa->size(), pki::link_secret_bytes);
    EXPECT_TRUE(std::equal(sa->bytes().begin(), sa->bytes().end(), sb->bytes().begin(), sb->bytes().end())) << l.id;
    secrets.insert(std::string(reinterpret_cast<const char*>(sa->bytes().data()), sa->size()));
  }
  EXPECT_EQ(secrets.size(), topo.links.size());
  EXPECT_TRUE(fs::is_regular_file(g->pki / "operators" / std::string(network::operator_name) / "operator.crt"));
  for (const auto& n : topo.nodes)
    for (const auto& s : n.saes) EXPECT_TRUE(fs::is_regular_file(g->pki / "saes" / s / "sae.crt")) << s;

  // Re-run on the same directory with other ports: PKI, secrets and stores kept; TOMLs rewritten.
  const std::string ca = slurp(g->pki / "ca" / "ca.crt");
  const std::string cert = slurp(g->pki / "nodes" / "A" / "node.crt");
  const std::string psk = slurp(g->pki / "nodes" / "A" / "secrets" / "a-b.psk");
  fs::create_directories(dir / "A" / "state");
  std::ofstream(dir / "A" / "state" / "marker") << "store";
  std::ofstream(dir / "A" / "kek") << "kek";
  std::ofstream(dir / "B" / "node.toml", std::ios::app) << "\n# an edit that generate overwrites\n";
  auto again = network::generate(topo, dir, 22000);
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_EQ(slurp(again->pki / "ca" / "ca.crt"), ca);
  EXPECT_EQ(slurp(again->pki / "nodes" / "A" / "node.crt"), cert);
  EXPECT_EQ(slurp(again->pki / "nodes" / "A" / "secrets" / "a-b.psk"), psk);
  EXPECT_EQ(slurp(dir / "A" / "state" / "marker"), "store");
  EXPECT_EQ(slurp(dir / "A" / "kek"), "kek");
  EXPECT_EQ(slurp(dir / "B" / "node.toml").find("an edit"), std::string::npos);
  std::map<std::string, config::node_config> renewed;
  for (const auto& n : again->nodes) {
    auto c = config::load_node_config(n.config);
    ASSERT_TRUE(c) << c.error().message;
    EXPECT_GE(c->listen.port, 22000);
    renewed.emplace(n.id, std::move(*c));
  }
  check_consistent(topo, renewed);
  for (const auto& n : topo.nodes)
    for (const auto& l : renewed.at(n.id).links) EXPECT_EQ(l.seed, nodes.at(n.id).find_link(l.id)->seed);
}

TEST(network_generate, every_shipped_topology_renders_files_the_node_parses) {
  for (const auto& name : config::builtin_topology_names()) {
    SCOPED_TRACE(name);
    const auto topo = load(name);
    auto files = network::render_node_files(topo, 17000);
    ASSERT_TRUE(files) << files.error().message;
    ASSERT_EQ(files->size(), topo.nodes.size());
    std::map<std::string, config::node_config> nodes;
    for (const auto& [id, text] : *files) {
      auto c = config::parse_node_config(text, id + "/node.toml", "/nonexistent/" + id);
      ASSERT_TRUE(c) << c.error().message << "\n" << text;
      nodes.emplace(id, std::move(*c));
    }
    check_consistent(topo, nodes);
  }
}

TEST(network_generate, ports_beyond_65535_are_refused_with_a_port_that_fits) {
  const auto topo = load("test-ring");
  auto files = network::render_node_files(topo, 65530);
  ASSERT_FALSE(files);
  EXPECT_EQ(files.error().code, errc::invalid_argument);
  EXPECT_NE(files.error().message.find("--base-port"), std::string::npos) << files.error().message;
  EXPECT_NE(files.error().message.find("65528"), std::string::npos) << files.error().message;
  EXPECT_TRUE(network::render_node_files(topo, 65528));
}

TEST(network_generate, sites_on_other_hosts_listen_there_are_dialled_there_and_named_in_their_certificates) {
  auto topo = load("test-ring");
  ASSERT_TRUE(network::apply_hosts(topo, {"A=10.91.0.2", "C=10.91.0.4"}));
  EXPECT_EQ(topo.find_node("A")->host, "10.91.0.2");
  EXPECT_EQ(topo.find_node("B")->host, "");
  EXPECT_EQ(network::host_of(*topo.find_node("B")), "127.0.0.1");
  temp_dir tmp;
  const fs::path dir = tmp.path / "net";
  auto g = network::generate(topo, dir, 21000);
  ASSERT_TRUE(g) << g.error().message;
  std::map<std::string, config::node_config> nodes;
  for (const auto& n : g->nodes) {
    auto c = config::load_node_config(n.config);
    ASSERT_TRUE(c) << c.error().message;
    EXPECT_EQ(n.listen.to_string(), c->listen.to_string());
    EXPECT_EQ(n.api_listen.to_string(), c->api_listen->to_string());
    nodes.emplace(n.id, std::move(*c));
  }
  EXPECT_EQ(nodes.at("A").listen.to_string(), "10.91.0.2:21000");
  EXPECT_EQ(nodes.at("A").api_listen->to_string(), "10.91.0.2:21001");
  EXPECT_EQ(nodes.at("B").listen.to_string(), "127.0.0.1:21002");
  EXPECT_EQ(nodes.at("C").listen.to_string(), "10.91.0.4:21004");
  EXPECT_EQ(nodes.at("B").find_link("a-b")->peer_address.to_string(), "10.91.0.2:21000");
  check_consistent(topo, nodes);  // every peer_address is the peer's listen, on its host

  auto inv = pki::inspect(g->pki);
  ASSERT_TRUE(inv) << inv.error().message;
  std::map<std::string, std::vector<std::string>> ips;
  for (const auto& c : inv->certificates)
    if (c.kind == "node") ips[c.name] = c.ip_addresses;
  EXPECT_EQ(ips["A"], (std::vector<std::string>{"127.0.0.1", "10.91.0.2"}));
  EXPECT_EQ(ips["B"], (std::vector<std::string>{"127.0.0.1"}));
  EXPECT_EQ(ips["C"], (std::vector<std::string>{"127.0.0.1", "10.91.0.4"}));

  // A moves: its certificate is reissued for the new address; B's and the link secrets stay.
  const std::string cert_b = slurp(g->pki / "nodes" / "B" / "node.crt");
  const std::string psk = slurp(g->pki / "nodes" / "A" / "secrets" / "a-b.psk");
  ASSERT_TRUE(network::apply_hosts(topo, {"A=10.91.0.22"}));
  auto again = network::generate(topo, dir, 21000);
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_EQ(slurp(g->pki / "nodes" / "B" / "node.crt"), cert_b);
  EXPECT_EQ(slurp(g->pki / "nodes" / "A" / "secrets" / "a-b.psk"), psk);
  inv = pki::inspect(g->pki);
  ASSERT_TRUE(inv);
  for (const auto& c : inv->certificates) {
    if (c.kind == "node" && c.name == "A") {
      EXPECT_EQ(c.ip_addresses, (std::vector<std::string>{"127.0.0.1", "10.91.0.22"}));
    }
  }
  auto b = config::load_node_config(dir / "B" / "node.toml");
  ASSERT_TRUE(b);
  EXPECT_EQ(b->find_link("a-b")->peer_address.to_string(), "10.91.0.22:21000");
}

TEST(network_generate, bad_host_overrides_are_refused_and_change_nothing) {
  auto topo = load("test-ring");
  const auto expect_refused = [&](std::vector<std::string> specs, std::string_view says) {
    auto r = network::apply_hosts(topo, specs);
    ASSERT_FALSE(r) << specs.front();
    EXPECT_EQ(r.error().code, errc::invalid_argument);
    EXPECT_NE(r.error().message.find(says), std::string::npos) << r.error().message;
    for (const auto& n : topo.nodes) EXPECT_EQ(n.host, "") << n.id;
  };
  expect_refused({"A10.91.0.2"}, "expected SITE=ADDRESS");
  expect_refused({"=10.91.0.2"}, "expected SITE=ADDRESS");
  expect_refused({"A=10.91.0.2", "Z=10.91.0.3"}, "'Z' is not a site of the topology");
  expect_refused({"A=10.91.0.2", "A=10.91.0.3"}, "site A is given twice");
  expect_refused({"A=10.91.0.256"}, "--host A: '10.91.0.256' is not an IPv4 address");
  expect_refused({"B=0.0.0.0"}, "the unspecified address");
  expect_refused({"B="}, "is not an IPv4 address");
}

TEST(network_generate, loss_and_seed_rules) {
  config::topology_link l;
  l.id = "x";
  l.length_km = 45;
  l.loss_db = 14.5;
  EXPECT_DOUBLE_EQ(network::extra_loss_db(l), 14.5 - 9.0);
  l.loss_db = 7.0;  // below 0.2 dB/km: the fibre model's own loss, nothing extra
  EXPECT_EQ(network::extra_loss_db(l), 0.0);
  // Stable across runs and builds (FNV-1a), below 2^52, distinct for distinct IDs.
  EXPECT_EQ(network::link_seed("a-b"), network::link_seed("a-b"));
  EXPECT_NE(network::link_seed("a-b"), network::link_seed("b-a"));
  EXPECT_LT(network::link_seed("ko1-ot"), std::uint64_t{1} << 52);
  EXPECT_EQ(network::link_seed(""), 14695981039346656037ull & ((std::uint64_t{1} << 52) - 1));
}

}  // namespace
