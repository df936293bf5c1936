// `cvqkd ctl drill cut-link A B --network DIR`: the fibre-cut drill on a network made by `cvqkd
// network generate|up`. It keeps key requests flowing from an SAE at A to an SAE at B (ETSI
// enc_keys at A, one every --interval-ms), cuts link A-B at both ends (POST /admin/drill), and
// prints a timeline: fault injected, detected (A's relay marks the link unusable), rerouted (A's
// route to B changes), key delivery resumed (first key after the reroute), restored; then the
// count of failed requests and their messages.
#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <iostream>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "config/node_config.hpp"
#include "node/admin_client.hpp"
#include "node/cli_common.hpp"

namespace cvqkd::cli {
namespace {

namespace fs = std::filesystem;
using clock = std::chrono::steady_clock;
using nlohmann::json;

struct drill_options {
  std::string a, b, network;
  double hold_s = 5.0;
  unsigned interval_ms = 200;
  double wait_s = 30.0;
  bool restore = true;
  bool json_out = false;
};

struct site {
  config::node_config cfg;
  node::client_tls op;
};

site load_site(const drill_options& o, const std::string& id) {
  const fs::path file = fs::path(o.network) / id / "node.toml";
  auto c = config::load_node_config(file);
  if (!c) fail_with(c.error());
  if (!c->api_listen)
    usage("--network", fmt::format("{} has no api_listen: the drill talks to the nodes' admin API", file.string()));
  const fs::path op = fs::path(o.network) / "pki" / "operators" / "operator";
  return {std::move(*c), {fs::path(o.network) / "pki" / "ca" / "ca.crt", op / "operator.crt", op / "operator.key"}};
}

expected<json> call(const site& s, std::string_view method, std::string_view path, const std::string& body = {}) {
  auto r = node::https_request(s.cfg.api_listen->host, s.cfg.api_listen->port, s.op, method, path, body,
                               std::chrono::seconds(10));
  if (!r) return std::unexpected(r.error());
  const json j = json::parse(r->body, nullptr, false);
  if (r->status != 200)
    return fail(errc::io_error, fmt::format("{} {} at {}: HTTP {}: {}", method, path, s.cfg.id, r->status,
                                            j.is_object() && j.contains("message") ? j["message"].dump() : r->body));
  if (j.is_discarded()) return fail(errc::parse_error, fmt::format("{} {} at {}: not JSON", method, path, s.cfg.id));
  return j;
}

struct route_view {
  std::optional<std::vector<std::string>> path;  // to the peer
  std::optional<bool> usable;                    // the cut link, as the relay sees it
};

route_view routes_of(const site& a, const std::string& peer, const std::string& link) {
  route_view v;
  auto j = call(a, "GET", "/admin/routes");
  if (!j) return v;
  for (const auto& r : (*j)["routes"])
    if (r.value("destination", "") == peer && r.contains("path")) v.path = r["path"].get<std::vector<std::string>>();
  for (const auto& l : (*j)["links"])
    if (l.value("link_id", "") == link) v.usable = l.value("usable", false);
  return v;
}

std::string path_text(const std::optional<std::vector<std::string>>& p) {
  if (!p) return "none";
  std::string s;
  for (const auto& n : *p) s += (s.empty() ? "" : " > ") + n;
  return s;
}

void run_cut_link(const drill_options& o) {
  const site a = load_site(o, o.a), b = load_site(o, o.b);
  const config::link_config* link = nullptr;
  for (const auto& l : a.cfg.links)
    if (l.peer == o.b) link = &l;
  if (link == nullptr) usage("B", fmt::format("node {} has no link to {}; `cvqkd ctl links` lists its links", o.a, o.b));
  if (a.cfg.saes.empty() || b.cfg.saes.empty())
    usage("A B", "both sites need an SAE ([[saes]]) for the drill's key traffic");
  const std::string link_id = link->id, master = a.cfg.saes.front().id, slave = b.cfg.saes.front().id;
  const fs::path sae_dir = fs::path(o.network) / "pki" / "saes" / master;
  const node::client_tls sae{sae_dir / "ca.crt", sae_dir / "sae.crt", sae_dir / "sae.key"};

  json timeline = json::array();
  const auto t0 = clock::now();
  const auto since = [&] { return std::chrono::duration<double>(clock::now() - t0).count(); };
  const auto event = [&](const std::string& what) {
    const double t = since();
    timeline.push_back({{"t_s", t}, {"event", what}});
    if (!o.json_out) std::cout << fmt::format("[{:+8.3f} s] {}\n", t, what) << std::flush;
  };

  const auto before = routes_of(a, o.b, link_id);
  event(fmt::format("drill cut-link {} {} (link {}); traffic {} -> {} via {}'s ETSI API; route now {}", o.a, o.b,
                    link_id, master, slave, o.a, path_text(before.path)));

  struct outcome {
    double t;
    unsigned status;
    std::string message;
  };
  std::mutex m;
  std::vector<outcome> outcomes;
  std::atomic<bool> stop{false};
  std::thread traffic([&] {
    const std::string target = fmt::format("/api/v1/keys/{}/enc_keys?number=1&size=256", slave);
    while (!stop) {
      const auto next = clock::now() + std::chrono::milliseconds(o.interval_ms);
      auto r = node::https_request(a.cfg.api_listen->host, a.cfg.api_listen->port, sae, "GET", target, {},
                                   std::chrono::seconds(20));
      outcome x{since(), r ? r->status : 0u, ""};
      if (!r) x.message = r.error().message;
      else if (r->status != 200) {
        const json j = json::parse(r->body, nullptr, false);
        x.message = j.is_object() && j.contains("message") ? j["message"].get<std::string>() : r->body;
      }
      {
        std::lock_guard lock(m);
        outcomes.push_back(std::move(x));
      }
      std::this_thread::sleep_until(next);
    }
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(3 * o.interval_ms));

  const std::string cut = json{{"action", "cut-link"}, {"link", link_id}}.dump();
  const double t_cut = since();
  for (const site* s : {&a, &b})
    if (auto r = call(*s, "POST", "/admin/drill", cut); !r) {
      stop = true;
      traffic.join();
      fail_with(r.error());
    }
  event(fmt::format("fault injected: link {} cut at {} and {}", link_id, o.a, o.b));

  std::optional<double> t_detect, t_reroute, t_resume;
  route_view after;
  const auto deadline = clock::now() + std::chrono::duration<double>(o.wait_s);
  while (clock::now() < deadline && (!t_detect || !t_reroute || !t_resume)) {
    const auto v = routes_of(a, o.b, link_id);
    if (!t_detect && v.usable && !*v.usable) {
      t_detect = since();
      event(fmt::format("detected: {}'s relay marks link {} unusable", o.a, link_id));
    }
    if (!t_reroute && v.path && v.path != before.path) {
      t_reroute = since();
      after = v;
      event(fmt::format("rerouted: {} -> {} now via {}", o.a, o.b, path_text(v.path)));
    }
    if (t_reroute && !t_resume) {
      std::lock_guard lock(m);
      for (const auto& x : outcomes)
        if (x.t >= *t_reroute && x.status == 200) {
          t_resume = x.t;
          break;
        }
      if (t_resume) event("key delivery resumed: a key for " + slave + " was delivered over the new route");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  if (!t_reroute) event(fmt::format("no reroute within {} s: no other path from {} to {} with key", o.wait_s, o.a, o.b));
  std::this_thread::sleep_for(std::chrono::duration<double>(o.hold_s));

  if (o.restore) {
    const std::string restore = json{{"action", "restore-link"}, {"link", link_id}}.dump();
    for (const site* s : {&a, &b})
      if (auto r = call(*s, "POST", "/admin/drill", restore); !r) event("restore failed: " + r.error().message);
    event(fmt::format("link {} restored at {} and {}", link_id, o.a, o.b));
  }
  stop = true;
  traffic.join();

  std::size_t failed = 0, during = 0;
  std::vector<std::string> messages;
  for (const auto& x : outcomes) {
    if (x.t >= t_cut) ++during;
    if (x.status == 200) continue;
    ++failed;
    if (std::find(messages.begin(), messages.end(), x.message) == messages.end() && messages.size() < 5)
      messages.push_back(x.message);
  }
  json summary{{"drill", "cut-link"},
               {"a", o.a},
               {"b", o.b},
               {"link", link_id},
               {"route_before", before.path ? json(*before.path) : json(nullptr)},
               {"route_after", after.path ? json(*after.path) : json(nullptr)},
               {"detect_s", t_detect ? json(*t_detect - t_cut) : json(nullptr)},
               {"reroute_s", t_reroute ? json(*t_reroute - t_cut) : json(nullptr)},
               {"resume_s", t_resume ? json(*t_resume - t_cut) : json(nullptr)},
               {"requests", outcomes.size()},
               {"requests_after_cut", during},
               {"failed", failed},
               {"failure_messages", messages},
               {"timeline", timeline}};
  if (o.json_out) {
    print_json(summary);
  } else {
    std::cout << fmt::format("{} requests ({} after the cut), {} failed", outcomes.size(), during, failed);
    if (t_reroute) std::cout << fmt::format("; reroute {:.3f} s after the cut", *t_reroute - t_cut);
    std::cout << "\n";
    for (const auto& msg : messages) std::cout << "  failure: " << msg << "\n";
  }
  if (!t_reroute) throw cli_exit{runtime_failure, "no reroute: see the timeline above"};
}

}  // namespace

void add_drill(CLI::App* ctl) {
  auto* drill = ctl->add_subcommand("drill", "failure drills on a network of `cvqkd network generate|up`");
  drill->require_subcommand(1);
  auto o = std::make_shared<drill_options>();
  auto* cut = drill->add_subcommand("cut-link", "cut the link A-B at both ends under key traffic; show the reroute");
  cut->add_option("A", o->a, "the node whose SAE requests keys (one end of the link)")->required();
  cut->add_option("B", o->b, "the other end of the link (its SAE is the slave)")->required();
  cut->add_option("--network", o->network, "the network directory (cvqkd network generate|up --dir)")->required();
  cut->add_option("--hold", o->hold_s, "seconds of traffic after the reroute, before the link is restored")
    ->capture_default_str();
  cut->add_option("--interval-ms", o->interval_ms, "one key request every this many milliseconds")->capture_default_str();
  cut->add_option("--wait", o->wait_s, "give up waiting for the reroute after this many seconds")->capture_default_str();
  cut->add_flag("!--no-restore", o->restore, "leave the link cut");
  cut->add_flag("--json", o->json_out, "print the timeline and counts as JSON");
  cut->callback([o] {
    if (o->interval_ms == 0 || o->hold_s < 0 || o->wait_s <= 0)
      usage("--interval-ms/--hold/--wait", "expected positive values");
    run_cut_link(*o);
  });
}

}  // namespace cvqkd::cli
