// The node TOML file: a valid file, defaults, relative paths, and one clear error per bad field.
#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "config/node_config.hpp"

namespace {

using namespace cvqkd;
using cvqkd::config::parse_node_config;

const std::string valid = R"(
[node]
id = "ko1"
listen = "127.0.0.1:7001"
api_listen = "127.0.0.1:8443"
storage = "data/ko1"
kek_file = "data/ko1.kek"
log_level = "debug"

[pki]
ca = "pki/nodes/ko1/ca.crt"
certificate = "pki/nodes/ko1/node.crt"
key = "/abs/node.key"
secrets = "pki/nodes/ko1/secrets"

[security]
eps_pe = 1e-9
detector_model = "untrusted"

[[links]]
id = "ko1-ko2"
peer = "ko2"
peer_address = "127.0.0.1:7002"
role = "bob"
profile = "highrate_metro"
length_km = 1
extra_loss_db = 1.2
block_symbols = 1e6
short_codes = true
beta = 0.8
pool_max_bits = 1000000
seed = 42
attack = "intercept-resend:0.5"

[[saes]]
id = "sae-a"
[[saes]]
id = "sae-b"
)";

// `valid` with the line starting with `key =` (first occurrence after `section`) replaced.
std::string with(std::string text, const std::string& line_start, const std::string& replacement) {
  const auto at = text.find("\n" + line_start);
  if (at == std::string::npos) return text + "\n" + replacement + "\n";
  const auto end = text.find('\n', at + 1);
  text.replace(at + 1, end - at - 1, replacement);
  return text;
}

std::string error_of(const std::string& text) {
  auto c = parse_node_config(text, "node.toml", "/etc/cvqkd");
  if (c) return "";
  EXPECT_EQ(c.error().code, errc::config_error);
  return c.error().message;
}

TEST(node_config, valid_file_parses_with_defaults_and_resolved_paths) {
  auto c = parse_node_config(valid, "node.toml", "/etc/cvqkd");
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->id, "ko1");
  EXPECT_EQ(c->listen.host, "127.0.0.1");
  EXPECT_EQ(c->listen.port, 7001);
  ASSERT_TRUE(c->api_listen);
  EXPECT_EQ(c->api_listen->port, 8443);
  EXPECT_EQ(c->storage, "/etc/cvqkd/data/ko1");
  EXPECT_EQ(c->key, "/abs/node.key");
  EXPECT_EQ(c->ca, "/etc/cvqkd/pki/nodes/ko1/ca.crt");
  EXPECT_EQ(c->log_level, "debug");
  EXPECT_DOUBLE_EQ(c->eps_pe, 1e-9);
  EXPECT_DOUBLE_EQ(c->eps_pa, 1e-10);  // default
  EXPECT_EQ(c->model, detector_model::untrusted);
  ASSERT_EQ(c->links.size(), 1u);
  const auto& l = c->links[0];
  EXPECT_EQ(l.role, config::link_role::bob);
  EXPECT_EQ(l.peer_address.port, 7002);
  EXPECT_EQ(l.profile.name, "highrate_metro");
  EXPECT_EQ(l.block_symbols, 1'000'000u);
  EXPECT_EQ(l.n_pe(), 500'000u);         // pe_fraction default 0.5
  EXPECT_EQ(l.frame_symbols, 262'144u);  // default
  EXPECT_DOUBLE_EQ(l.beta, 0.8);
  EXPECT_TRUE(l.short_codes);
  EXPECT_EQ(l.max_iterations, 200u);
  EXPECT_EQ(l.seed, 42u);
  EXPECT_EQ(l.attack.type, config::link_attack::kind::intercept_resend);
  EXPECT_DOUBLE_EQ(l.attack.parameter, 0.5);
  EXPECT_NEAR(l.transmittance(), std::pow(10.0, -(0.2 + 1.2) / 10), 1e-12);
  ASSERT_EQ(c->saes.size(), 2u);
  EXPECT_EQ(c->saes[1].id, "sae-b");
  EXPECT_EQ(c->find_link("ko1-ko2"), &c->links[0]);
  EXPECT_EQ(c->find_link("nope"), nullptr);
}

TEST(node_config, beta_and_block_default_to_the_profile) {
  std::string t = with(valid, "beta =", "");
  t = with(t, "block_symbols =", "");
  auto c = parse_node_config(t, "node.toml", "/");
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_DOUBLE_EQ(c->links[0].beta, c->links[0].profile.beta_target);
  EXPECT_EQ(c->links[0].block_symbols, c->links[0].profile.block_symbols);
}

TEST(node_config, block_auto_is_accepted_and_other_words_are_refused) {
  auto c = parse_node_config(with(valid, "block_symbols =", "block_symbols = \"auto\""), "node.toml", "/");
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_TRUE(c->links[0].block_auto);
  EXPECT_EQ(c->links[0].block_symbols, c->links[0].profile.block_symbols);  // until the node plans it
  auto bad = parse_node_config(with(valid, "block_symbols =", "block_symbols = \"big\""), "node.toml", "/");
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("block_symbols"), std::string::npos) << bad.error().message;
  EXPECT_NE(bad.error().message.find("auto"), std::string::npos) << bad.error().message;
}

TEST(node_config, frame_default_shrinks_to_a_small_block) {
  auto c = parse_node_config(with(valid, "block_symbols =", "block_symbols = 100000"), "node.toml", "/");
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->links[0].frame_symbols, 100'000u);
}

struct bad_case {
  std::string line_start, replacement, field, hint;
};

TEST(node_config, every_missing_or_invalid_field_names_itself) {
  const std::vector<bad_case> cases = {
    {"id = \"ko1\"", "", "node.id", "missing"},
    {"id = \"ko1\"", "id = \"k o\"", "node.id", "A-Z"},
    {"listen =", "", "node.listen", "missing"},
    {"listen =", "listen = \"127.0.0.1\"", "node.listen", "HOST:PORT"},
    {"listen =", "listen = \"127.0.0.1:99999\"", "node.listen", "1..65535"},
    {"api_listen =", "api_listen = \"x:0\"", "node.api_listen", "1..65535"},
    {"storage =", "", "node.storage", "missing"},
    {"storage =", "storage = 3", "node.storage", "string"},
    {"kek_file =", "", "node.kek_file", "missing"},
    {"log_level =", "log_level = \"loud\"", "node.log_level", "trace"},
    {"ca =", "", "pki.ca", "missing"},
    {"certificate =", "", "pki.certificate", "missing"},
    {"key = \"/abs", "", "pki.key", "missing"},
    {"secrets =", "", "pki.secrets", "missing"},
    {"eps_pe =", "eps_pe = 0", "security.eps_pe", "(0"},
    {"eps_pe =", "eps_pe = \"small\"", "security.eps_pe", "number"},
    {"detector_model =", "detector_model = \"maybe\"", "security.detector_model", "trusted or untrusted"},
    {"id = \"ko1-ko2\"", "", "links[0].id", "missing"},
    {"peer =", "", "links[0].peer", "missing"},
    {"peer =", "peer = \"ko1\"", "links[0].peer", "this node"},
    {"peer_address =", "peer_address = \"nowhere\"", "links[0].peer_address", "HOST:PORT"},
    {"role =", "", "links[0].role", "missing"},
    {"role =", "role = \"eve\"", "links[0].role", "alice or bob"},
    {"profile =", "profile = \"no_such_profile\"", "links[0].profile", "highrate_metro"},
    {"length_km =", "", "links[0].length_km", "missing"},
    {"length_km =", "length_km = -1", "links[0].length_km", "fibre length"},
    {"length_km =", "length_km = 600", "links[0].length_km", "fibre length"},
    {"extra_loss_db =", "extra_loss_db = -2", "links[0].extra_loss_db", "insertion loss"},
    {"block_symbols =", "block_symbols = 10", "links[0].block_symbols", "block size"},
    {"block_symbols =", "block_symbols = 1000000.5", "links[0].block_symbols", "whole number"},
    {"block_symbols =", "block_symbols = 1000000\npe_fraction = 1", "links[0].pe_fraction", "below 1"},
    {"block_symbols =", "block_symbols = 1000000\nframe_symbols = 2000000", "links[0].frame_symbols", "block_symbols"},
    {"beta =", "beta = 1.2", "links[0].beta", "efficiency"},
    {"short_codes =", "short_codes = 1", "links[0].short_codes", "true or false"},
    {"block_symbols =", "block_symbols = 1000000\nmax_iterations = 0", "links[0].max_iterations", "iterations"},
    {"pool_max_bits =", "pool_max_bits = -5", "links[0].pool_max_bits", "pool limit"},
    {"seed =", "", "links[0].seed", "same at both ends"},
    {"attack =", "attack = \"laser\"", "links[0].attack", "intercept-resend"},
    {"attack =", "attack = \"entangling-cloner\"", "links[0].attack", "XI"},
    {"attack =", "attack = \"intercept-resend:2\"", "links[0].attack", "(0, 1]"},
    {"attack =", "attack = \"none\"\ncolour = \"blue\"", "links[0].colour", "unknown key"},
    {"id = \"sae-b\"", "id = \"sae-a\"", "saes[1].id", "twice"},
    {"[security]", "[securty]", "securty", "unknown key"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.line_start + " -> " + c.replacement);
    const std::string msg = error_of(with(valid, c.line_start, c.replacement));
    ASSERT_FALSE(msg.empty()) << "accepted";
    EXPECT_NE(msg.find("node.toml: " + c.field), std::string::npos) << msg;
    EXPECT_NE(msg.find(c.hint), std::string::npos) << msg;
  }
}

TEST(node_config, duplicate_links_and_missing_sections_are_refused) {
  const auto pos = valid.find("[[links]]");
  const auto end = valid.find("[[saes]]");
  const std::string twice = valid.substr(0, end) + valid.substr(pos, end - pos) + valid.substr(end);
  EXPECT_NE(error_of(twice).find("links[1].id: link 'ko1-ko2' is configured twice"), std::string::npos);
  EXPECT_NE(error_of("[pki]\nca = \"a\"").find("node.toml: node: missing section"), std::string::npos);
  const auto syntax = error_of("[node\nid = 1");
  EXPECT_NE(syntax.find("node.toml:1:"), std::string::npos) << syntax;
  EXPECT_NE(syntax.find("TOML syntax error"), std::string::npos) << syntax;
}

TEST(node_config, load_reports_an_unreadable_file) {
  auto c = config::load_node_config("/nonexistent/node.toml");
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error().code, errc::io_error);
  EXPECT_NE(c.error().message.find("/nonexistent/node.toml"), std::string::npos);
}

TEST(node_config, endpoints_parse) {
  auto e = config::parse_endpoint("localhost:65535", "f");
  ASSERT_TRUE(e);
  EXPECT_EQ(e->host, "localhost");
  EXPECT_EQ(e->port, 65535);
  EXPECT_EQ(e->to_string(), "localhost:65535");
  EXPECT_FALSE(config::parse_endpoint(":80", "f"));
  EXPECT_FALSE(config::parse_endpoint("h:", "f"));
  EXPECT_FALSE(config::parse_endpoint("h:0", "f"));
  EXPECT_FALSE(config::parse_endpoint("h:8x", "f"));
}

}  // namespace
