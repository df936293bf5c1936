// `cvqkd node --config node.toml` runs a node; `cvqkd node status --config node.toml [--json]`
// asks the running node for its links.
#include <fmt/format.h>

#include <iostream>
#include <memory>
#include <string>

#include "config/node_config.hpp"
#include "node/admin_client.hpp"
#include "node/cli_common.hpp"
#include "node/runtime.hpp"
#include "node/services.hpp"

namespace cvqkd::cli {
namespace {

struct node_options {
  std::string config;
  bool json = false;
};

config::node_config load(const std::string& path) {
  if (path.empty()) usage("--config", "give the node's TOML file: --config node.toml");
  auto c = config::load_node_config(path);
  if (!c) fail_with(c.error());
  return std::move(*c);
}

void print_table(const actors::node_status& n) {
  std::cout << fmt::format("node {}: {} link(s)\n", n.node_id, n.links.size());
  std::cout << fmt::format("{:<16} {:<6} {:<9} {:<17} {:>6} {:>9} {:>10} {:>12} {:>10} {:>6} {:>7} {:>6} {:>8}  {}\n",
                           "LINK", "ROLE", "HEALTH", "STATE", "ROUND", "BLOCK%", "COMMITTED", "POOL_BITS",
                           "LAST_KEY", "BETA", "SNR", "FER", "XI_MAX", "LAST_ERROR / REASON");
  for (const auto& s : n.links) {
    const double progress = s.block_symbols > 0 ? 100.0 * static_cast<double>(s.symbols_done) / static_cast<double>(s.block_symbols) : 0.0;
    const std::string note = !s.last_error.empty() ? s.last_error : s.reason;
    if (s.has_last_round)
      std::cout << fmt::format("{:<16} {:<6} {:<9} {:<17} {:>6} {:>8.1f}% {:>10} {:>12} {:>10} {:>6.3f} {:>7.4f} {:>6.3f} {:>8.4f}  {}\n",
                               s.link_id, s.role, s.health, s.engine_state, s.round, progress, s.committed_round,
                               s.pool_bits, s.last_key_bits, s.beta, s.snr, s.fer, s.xi_max, note);
    else
      std::cout << fmt::format("{:<16} {:<6} {:<9} {:<17} {:>6} {:>8.1f}% {:>10} {:>12} {:>10} {:>6} {:>7} {:>6} {:>8}  {}\n",
                               s.link_id, s.role, s.health, s.engine_state, s.round, progress, s.committed_round,
                               s.pool_bits, "-", "-", "-", "-", "-", note);
  }
}

}  // namespace

void add_node(CLI::App& app) {
  auto o = std::make_shared<node_options>();
  auto* node = app.add_subcommand("node", "run a QKD node (its links, key store and inter-node channel) until SIGTERM");
  node->add_option("--config", o->config, "the node's TOML file");
  auto* status = node->add_subcommand("status", "ask the running node for the state of its links");
  status->add_option("--config", o->config, "the node's TOML file")->required();
  status->add_flag("--json", o->json, "print JSON");
  status->callback([o] {
    const auto c = load(o->config);
    // Over the HTTPS admin API when the node has one: it keeps status requests off the inter-node
    // channel's port, where CAF 0.17 lets a short-lived connection disturb the peers' connections.
    if (c.api_listen) {
      auto j = node::fetch_status_https(c);
      if (!j) fail_with(j.error());
      auto s = node::node_status_from_json(*j);
      if (!s) fail_with(s.error());
      if (o->json) print_json(node::to_json(*s));
      else print_table(*s);
      return;
    }
    auto s = node::fetch_status(c);
    if (!s) fail_with(s.error());
    if (o->json) {
      print_json(node::to_json(*s));  // the same JSON as the admin API's /admin/status
    } else {
      print_table(*s);
    }
  });
  node->callback([o, status] {
    if (status->parsed()) return;
    const auto c = load(o->config);
    if (auto ok = node::run_node(c); !ok) fail_with(ok.error());
  });
}

}  // namespace cvqkd::cli
