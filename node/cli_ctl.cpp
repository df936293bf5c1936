// `cvqkd ctl links|routes|keys --node HOST:PORT --pki DIR [--operator NAME] [--json]`: the operator
// console over a node's admin HTTPS API (node/services.hpp), with the operator certificate
// DIR/operators/NAME/operator.crt. Tables for people, --json for scripts (the node's JSON as is).
#include <fmt/format.h>

#include <chrono>
#include <filesystem>
#include <iostream>
#include <memory>
#include <string>

#include "config/node_config.hpp"
#include "node/admin_client.hpp"
#include "node/cli_common.hpp"
#include "node/services.hpp"

namespace cvqkd::cli {

void add_drill(CLI::App* ctl);  // node/cli_drill.cpp

namespace {

namespace fs = std::filesystem;

struct ctl_options {
  std::string node;
  std::string pki;
  std::string operator_name = "operator";
  bool json = false;
  unsigned timeout_ms = 10'000;
};

void add_common(CLI::App* cmd, ctl_options& o) {
  cmd->add_option("--node", o.node, "the node's api_listen address HOST:PORT")->required();
  cmd->add_option("--pki", o.pki, "the PKI directory (cvqkd pki init --dir)")->required();
  cmd->add_option("--operator", o.operator_name, "operator certificate DIR/operators/NAME")->capture_default_str();
  cmd->add_flag("--json", o.json, "print the node's JSON");
  cmd->add_option("--timeout-ms", o.timeout_ms, "give up after this many milliseconds")->capture_default_str();
}

nlohmann::json get(const ctl_options& o, std::string_view path) {
  auto ep = config::parse_endpoint(o.node, "--node");
  if (!ep) usage("--node", "expected HOST:PORT of the node's api_listen, e.g. 127.0.0.1:7101");
  if (o.timeout_ms == 0) usage("--timeout-ms", "expected a positive number of milliseconds");
  const fs::path dir = fs::path(o.pki) / "operators" / o.operator_name;
  const fs::path cert = dir / "operator.crt", key = dir / "operator.key";
  fs::path ca = dir / "ca.crt";
  std::error_code ec;
  if (!fs::is_regular_file(cert, ec) || !fs::is_regular_file(key, ec))
    usage("--operator", fmt::format("no operator certificate and key in {}; issue them with `cvqkd pki issue --dir {} "
                                    "--operator {}` or name another with --operator",
                                    dir.string(), o.pki, o.operator_name));
  if (!fs::is_regular_file(ca, ec)) ca = fs::path(o.pki) / "ca" / "ca.crt";
  auto j = node::admin_get(ep->host, ep->port, ca, cert, key, path, std::chrono::milliseconds(o.timeout_ms));
  if (!j) fail_with(j.error());
  return std::move(*j);
}

std::string fixed(double v, int digits) { return fmt::format("{:.{}f}", v, digits); }

void print_links(const actors::node_status& n) {
  std::cout << fmt::format("node {}: {} link(s)\n", n.node_id, n.links.size());
  std::cout << fmt::format(
    "{:<16} {:<12} {:<5} {:<8} {:<16} {:>6} {:>7} {:>9} {:>12} {:>10} {:>6} {:>8} {:>6} {:>8} {:>8} {:>8}  {}\n", "LINK",
    "PEER", "ROLE", "HEALTH", "STATE", "ROUND", "BLOCK%", "COMMITTED", "POOL_BITS", "LAST_KEY", "BETA", "SNR", "FER",
    "XI_HAT", "XI_MAX", "T_MIN", "LAST_ERROR / REASON");
  for (const auto& s : n.links) {
    const double progress =
      s.block_symbols > 0 ? 100.0 * static_cast<double>(s.symbols_done) / static_cast<double>(s.block_symbols) : 0.0;
    const std::string note = !s.last_error.empty() ? s.last_error : s.reason;
    const bool r = s.has_last_round;
    std::cout << fmt::format(
      "{:<16} {:<12} {:<5} {:<8} {:<16} {:>6} {:>6.1f}% {:>9} {:>12} {:>10} {:>6} {:>8} {:>6} {:>8} {:>8} {:>8}  {}\n",
      s.link_id, s.peer, s.role, s.health, s.engine_state, s.round, progress, s.committed_round, s.pool_bits,
      r ? std::to_string(s.last_key_bits) : "-", r ? fixed(s.beta, 3) : "-", r ? fixed(s.snr, 4) : "-",
      r ? fixed(s.fer, 3) : "-", r ? fixed(s.xi_hat, 4) : "-", r ? fixed(s.xi_max, 4) : "-",
      r ? fixed(s.transmittance_min, 4) : "-", note);
  }
}

std::string cell(const nlohmann::json& v) { return v.is_string() ? v.get<std::string>() : v.dump(); }

// The relay's routing JSON has the relay's shape: arrays of objects become tables, the rest is
// printed as indented JSON.
void print_routes(const nlohmann::json& j) {
  if (!j.is_object()) {
    std::cout << j.dump(2) << '\n';
    return;
  }
  for (const auto& [name, value] : j.items()) {
    if (value.is_array() && !value.empty() && value.front().is_object()) {
      std::cout << name << ":\n";
      std::vector<std::string> columns;
      for (const auto& [k, v] : value.front().items()) columns.push_back(k);
      std::string header;
      for (const auto& c : columns) header += fmt::format("{:<18} ", c);
      std::cout << "  " << header << '\n';
      for (const auto& row : value) {
        std::string line;
        for (const auto& c : columns) line += fmt::format("{:<18} ", row.contains(c) ? cell(row[c]) : "-");
        std::cout << "  " << line << '\n';
      }
    } else {
      std::cout << name << ": " << (value.is_structured() ? value.dump(2) : cell(value)) << '\n';
    }
  }
}

void print_keys(const nlohmann::json& j) {
  std::cout << fmt::format("node {}: end-to-end keys per SAE pair\n", cell(j.value("node_id", nlohmann::json("?"))));
  std::cout << fmt::format("{:<24} {:<24} {:<16} {:>10} {:>10}\n", "MASTER_SAE", "SLAVE_SAE", "SLAVE_KME", "READY", "LIVE");
  for (const auto& p : j.value("pairs", nlohmann::json::array()))
    std::cout << fmt::format("{:<24} {:<24} {:<16} {:>10} {:>10}\n", cell(p.value("master_sae", nlohmann::json("?"))),
                             cell(p.value("slave_sae", nlohmann::json("?"))), cell(p.value("slave_kme", nlohmann::json("?"))),
                             cell(p.value("ready", nlohmann::json(0))), cell(p.value("live", nlohmann::json(0))));
  if (j.contains("missing")) std::cout << "not shown: " << cell(j["missing"]) << '\n';
}

}  // namespace

void add_ctl(CLI::App& app) {
  auto* ctl = app.add_subcommand("ctl", "operator console: ask a running node over its admin HTTPS API");
  ctl->require_subcommand(1);

  auto lo = std::make_shared<ctl_options>();
  auto* links = ctl->add_subcommand("links", "the node's links: health, state, progress, pool, last round's estimates");
  add_common(links, *lo);
  links->callback([lo] {
    const auto j = get(*lo, "/admin/status");
    if (lo->json) return print_json(j);
    auto n = node::node_status_from_json(j);
    if (!n) fail_with(n.error());
    print_links(*n);
  });

  auto ro = std::make_shared<ctl_options>();
  auto* routes = ctl->add_subcommand("routes", "the node's routing view (relay next hops)");
  add_common(routes, *ro);
  routes->callback([ro] {
    const auto j = get(*ro, "/admin/routes");
    if (ro->json) return print_json(j);
    print_routes(j);
  });

  auto ko = std::make_shared<ctl_options>();
  add_drill(ctl);
  auto* keys = ctl->add_subcommand("keys", "end-to-end (ETSI) key counts per SAE pair in the node's store");
  add_common(keys, *ko);
  keys->callback([ko] {
    const auto j = get(*ko, "/admin/keys");
    if (ko->json) return print_json(j);
    print_keys(j);
  });
}

}  // namespace cvqkd::cli
