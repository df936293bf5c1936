// `cvqkd network list | generate | up`: a whole network of `cvqkd node` processes on 127.0.0.1 from
// one topology file (node/network.hpp).
#include <unistd.h>

#include <fmt/format.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>

#include "config/topology.hpp"
#include "node/cli_common.hpp"
#include "node/network.hpp"

namespace cvqkd::cli {
namespace {

struct network_options {
  std::string topology;
  std::string dir = "cvqkd-network";
  int base_port = 17000;
  std::vector<std::string> hosts;  // --host SITE=ADDR
  double run_seconds = 0;
  double poll_interval = 2;
  bool no_restart = false;
  bool in_process = false;
  bool json = false;
  // synth
  int nodes = 30, links = 60;
  std::uint64_t seed = 1;
  double min_km = 0.5, max_km = 2.0;
  std::uint64_t pool_max_bits = 60'000;
  std::string out;
};

config::topology topology_of(const std::string& name) {
  if (name.empty()) usage("--topology", "give a shipped topology (cvqkd network list) or a topology TOML file");
  auto t = config::resolve_topology(name);
  if (!t) fail_with(t.error());
  return std::move(*t);
}

std::uint16_t base_port_of(int p) {
  require_range("--base-port", p, 1, 65535, false, false, "a TCP port");
  return static_cast<std::uint16_t>(p);
}

nlohmann::json to_json(const network::up_summary& s) {
  nlohmann::json j = {{"topology", s.topology}, {"seconds", s.seconds}, {"nodes", nlohmann::json::array()},
                      {"links", nlohmann::json::array()}};
  for (const auto& n : s.nodes) j["nodes"].push_back({{"id", n.id}, {"restarts", n.restarts}, {"running", n.running}});
  for (const auto& l : s.links) {
    nlohmann::json x = {{"id", l.id},
                        {"alice", l.a},
                        {"bob", l.b},
                        {"state", l.state},
                        {"reason", l.reason},
                        {"committed_round", l.committed_round},
                        {"rounds_committed", l.rounds_committed},
                        {"rounds_aborted", l.rounds_aborted},
                        {"key_bits", l.key_bits},
                        {"pool_bits", l.pool_bits},
                        {"simulated_key_rate_bps", l.simulated_key_rate_bps}};
    if (l.has_last_round)
      x["last_key_round"] = {{"key_bits", l.last_key_bits},
                         {"bits_per_symbol", l.bits_per_symbol},
                         {"beta", l.beta},
                         {"xi_hat", l.xi_hat},
                         {"hardware_key_rate_bps", l.hardware_key_rate_bps}};
    else
      x["last_key_round"] = nullptr;
    j["links"].push_back(std::move(x));
  }
  return j;
}

}  // namespace

void add_network(CLI::App& app) {
  auto o = std::make_shared<network_options>();
  auto* net = app.add_subcommand("network", "a whole CV-QKD network of `cvqkd node` processes on 127.0.0.1");
  net->require_subcommand(1);

  auto* list = net->add_subcommand("list", "the shipped topologies, with their node and link counts");
  list->add_flag("--json", o->json, "print JSON");
  list->callback([o] {
    nlohmann::json j = nlohmann::json::array();
    if (!o->json) std::cout << fmt::format("{:<12} {:>5} {:>5}  {}\n", "TOPOLOGY", "NODES", "LINKS", "NAME");
    for (const auto& name : config::builtin_topology_names()) {
      const auto t = topology_of(name);
      if (o->json)
        j.push_back({{"topology", name}, {"name", t.name}, {"nodes", t.nodes.size()}, {"links", t.links.size()}});
      else
        std::cout << fmt::format("{:<12} {:>5} {:>5}  {}\n", name, t.nodes.size(), t.links.size(), t.name);
    }
    if (o->json) print_json(j);
  });

  auto* gen = net->add_subcommand("generate", "write the demo PKI and one node.toml per site (keeps existing PKI and stores)");
  gen->add_option("--topology", o->topology, "a shipped topology (cvqkd network list) or a topology TOML file")->required();
  gen->add_option("--dir", o->dir, "the network directory")->required();
  gen->add_option("--base-port", o->base_port, "node i listens on base+2i (inter-node) and base+2i+1 (API)")
    ->capture_default_str();
  gen->add_option("--host", o->hosts,
                  "SITE=ADDRESS: the site listens on this IPv4 address, its peers dial it and its certificate names "
                  "it (repeat; overrides the topology's host; default 127.0.0.1)");
  gen->add_flag("--json", o->json, "print JSON");
  gen->callback([o] {
    auto t = topology_of(o->topology);
    if (auto ok = network::apply_hosts(t, o->hosts); !ok) fail_with(ok.error());
    auto g = network::generate(t, o->dir, base_port_of(o->base_port));
    if (!g) fail_with(g.error());
    if (o->json) {
      nlohmann::json j = {{"topology", t.name}, {"dir", g->directory.string()}, {"pki", g->pki.string()},
                          {"nodes", nlohmann::json::array()}, {"notes", g->notes}};
      for (const auto& n : g->nodes)
        j["nodes"].push_back({{"id", n.id}, {"config", n.config.string()}, {"listen", n.listen.to_string()},
                              {"api_listen", n.api_listen.to_string()}});
      print_json(j);
      return;
    }
    std::cout << fmt::format("{}: {} nodes, {} links; PKI in {}\n", t.name, g->nodes.size(), t.links.size(),
                             g->pki.string());
    for (const auto& n : g->nodes)
      std::cout << fmt::format("  {:<8} {}  (listen {}, API {})\n", n.id, n.config.string(), n.listen.to_string(),
                               n.api_listen.to_string());
    for (const auto& n : g->notes) std::cout << "  note: " << n << '\n';
  });

  auto* synth = net->add_subcommand(
    "synth", "write a synthetic connected topology for scale tests (metro-length links, one SAE per site)");
  synth->add_option("--nodes", o->nodes, "sites")->capture_default_str();
  synth->add_option("--links", o->links, "links (at least nodes - 1)")->capture_default_str();
  synth->add_option("--seed", o->seed, "the same seed gives the same topology")->capture_default_str();
  synth->add_option("--min-km", o->min_km, "shortest fibre (km)")->capture_default_str();
  synth->add_option("--max-km", o->max_km, "longest fibre (km)")->capture_default_str();
  synth->add_option("--pool-max-bits", o->pool_max_bits, "a link pauses while its pool holds this much (0: never)")
    ->capture_default_str();
  synth->add_option("--out", o->out, "the topology file to write")->required();
  synth->callback([o] {
    network::synth_options so;
    so.nodes = static_cast<std::size_t>(std::max(o->nodes, 0));
    so.links = static_cast<std::size_t>(std::max(o->links, 0));
    so.seed = o->seed;
    so.min_km = o->min_km;
    so.max_km = o->max_km;
    so.pool_max_bits = o->pool_max_bits;
    auto text = network::synthesize_topology(so);
    if (!text) fail_with(text.error());
    {
      std::ofstream f(o->out, std::ios::trunc);
      f << *text;
      if (!f.flush())
        fail_with(cvqkd::error{errc::io_error, fmt::format("cannot write {}; check the path and its permissions", o->out)});
    }
    std::cerr << fmt::format("{}: {} sites, {} links (seed {})\n", o->out, so.nodes, so.links, so.seed);
  });

  auto* up = net->add_subcommand("up", "generate, start every node as its own process, show a live link table");
  up->add_option("--topology", o->topology, "a shipped topology (cvqkd network list) or a topology TOML file")->required();
  up->add_option("--dir", o->dir, "the network directory")->capture_default_str();
  up->add_option("--base-port", o->base_port, "node i listens on base+2i (inter-node) and base+2i+1 (API)")
    ->capture_default_str();
  up->add_option("--for", o->run_seconds, "run this many seconds, then stop (0: until Ctrl-C)")->capture_default_str();
  up->add_option("--poll-interval", o->poll_interval, "seconds between status polls of every node")
    ->capture_default_str();
  up->add_flag("--no-restart", o->no_restart, "do not restart a node that exits unexpectedly");
  up->add_flag("--in-process", o->in_process,
               "run every node inside this process (one actor system, key store, ports and TLS each; logs in "
               "<dir>/network.log): for large topologies");
  up->add_flag("--json", o->json, "the live table goes to stderr; print a final JSON summary to stdout");
  up->callback([o] {
    require_range("--for", o->run_seconds, 0, 1e9, false, false, "seconds");
    require_range("--poll-interval", o->poll_interval, 0.1, 3600, false, false, "seconds");
    const auto t = topology_of(o->topology);
    network::up_options u;
    std::error_code ec;
    u.executable = std::filesystem::read_symlink("/proc/self/exe", ec);
    if (ec) u.executable = "/proc/self/exe";
    u.dir = o->dir;
    u.base_port = base_port_of(o->base_port);
    u.run_seconds = o->run_seconds;
    u.restart = !o->no_restart;
    u.in_process = o->in_process;
    u.poll_interval_s = o->poll_interval;
    u.out = o->json ? &std::cerr : &std::cout;
    u.tty = ::isatty(o->json ? STDERR_FILENO : STDOUT_FILENO) == 1;
    auto s = network::up(t, u);
    if (!s) fail_with(s.error());
    if (o->json) print_json(to_json(*s));
  });
}

}  // namespace cvqkd::cli
