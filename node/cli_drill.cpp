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
#include <cerrno>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
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

// The drill's clock and its events (seconds since the drill began), printed as they happen unless
// the drill prints JSON.
class drill_timeline {
public:
  explicit drill_timeline(bool quiet) : quiet_(quiet) {}
  double since() const { return std::chrono::duration<double>(clock::now() - t0_).count(); }
  void event(const std::string& what) {
    const double t = since();
    events_.push_back({{"t_s", t}, {"event", what}});
    if (!quiet_) std::cout << fmt::format("[{:+8.3f} s] {}\n", t, what) << std::flush;
  }
  const json& events() const { return events_; }

private:
  clock::time_point t0_ = clock::now();
  bool quiet_;
  json events_ = json::array();
};

// Key requests from `master` (an SAE of site `at`) for `slave`, one every interval, in a thread.
class traffic {
public:
  struct outcome {
    double t;  // seconds since the drill's start
    unsigned status;
    std::string message;
  };
  traffic(const site& at, const drill_options& o, const std::string& master, const std::string& slave,
          std::function<double()> since)
      : since_(std::move(since)) {
    const fs::path dir = fs::path(o.network) / "pki" / "saes" / master;
    const node::client_tls sae{dir / "ca.crt", dir / "sae.crt", dir / "sae.key"};
    thread_ = std::thread([this, host = at.cfg.api_listen->host, port = at.cfg.api_listen->port, sae,
                           interval = std::chrono::milliseconds(o.interval_ms),
                           target = fmt::format("/api/v1/keys/{}/enc_keys?number=1&size=256", slave)] {
      while (!stop_) {
        const auto next = clock::now() + interval;
        auto r = node::https_request(host, port, sae, "GET", target, {}, std::chrono::seconds(20));
        outcome x{since_(), r ? r->status : 0u, ""};
        if (!r) {
          x.message = r.error().message;
        } else if (r->status != 200) {
          const json j = json::parse(r->body, nullptr, false);
          x.message = j.is_object() && j.contains("message") ? j["message"].get<std::string>() : r->body;
        }
        {
          std::lock_guard lock(m_);
          outcomes_.push_back(std::move(x));
        }
        std::this_thread::sleep_until(next);
      }
    });
  }
  ~traffic() { stop(); }
  void stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  std::vector<outcome> outcomes() const {
    std::lock_guard lock(m_);
    return outcomes_;
  }
  /// The time of the first successful request at or after t, if any.
  std::optional<double> first_success_after(double t) const {
    std::lock_guard lock(m_);
    for (const auto& x : outcomes_)
      if (x.t >= t && x.status == 200) return x.t;
    return std::nullopt;
  }

private:
  std::function<double()> since_;
  mutable std::mutex m_;
  std::vector<outcome> outcomes_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// Counts and the first distinct failure messages of a drill's requests.
json tally(const std::vector<traffic::outcome>& outcomes, double t_fault) {
  std::size_t failed = 0, during = 0;
  std::vector<std::string> messages;
  for (const auto& x : outcomes) {
    if (x.t >= t_fault) ++during;
    if (x.status == 200) continue;
    ++failed;
    // Without the relay key's name, so that equal refusals collapse into one line.
    std::string m = x.message;
    if (const auto k = m.find("key '"); k != std::string::npos)
      if (const auto e = m.find('\'', k + 5); e != std::string::npos) m.replace(k + 5, e - k - 5, "...");
    if (std::find(messages.begin(), messages.end(), m) == messages.end() && messages.size() < 5)
      messages.push_back(std::move(m));
  }
  return {{"requests", outcomes.size()}, {"requests_after_fault", during}, {"failed", failed},
          {"failure_messages", messages}};
}

void print_tally(const json& t) {
  std::cout << fmt::format("{} requests ({} after the fault), {} failed\n", t["requests"].get<std::size_t>(),
                           t["requests_after_fault"].get<std::size_t>(), t["failed"].get<std::size_t>());
  for (const auto& msg : t["failure_messages"]) std::cout << "  failure: " << msg.get<std::string>() << "\n";
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

  drill_timeline tl(o.json_out);

  const auto before = routes_of(a, o.b, link_id);
  tl.event(fmt::format("drill cut-link {} {} (link {}); traffic {} -> {} via {}'s ETSI API; route now {}", o.a, o.b,
                    link_id, master, slave, o.a, path_text(before.path)));

  traffic load(a, o, master, slave, [&tl] { return tl.since(); });
  std::this_thread::sleep_for(std::chrono::milliseconds(3 * o.interval_ms));

  const std::string cut = json{{"action", "cut-link"}, {"link", link_id}}.dump();
  const double t_cut = tl.since();
  for (const site* s : {&a, &b})
    if (auto r = call(*s, "POST", "/admin/drill", cut); !r) fail_with(r.error());
  tl.event(fmt::format("fault injected: link {} cut at {} and {}", link_id, o.a, o.b));

  std::optional<double> t_detect, t_reroute, t_resume;
  route_view after;
  const auto deadline = clock::now() + std::chrono::duration<double>(o.wait_s);
  while (clock::now() < deadline && (!t_detect || !t_reroute || !t_resume)) {
    const auto v = routes_of(a, o.b, link_id);
    if (!t_detect && v.usable && !*v.usable) {
      t_detect = tl.since();
      tl.event(fmt::format("detected: {}'s relay marks link {} unusable", o.a, link_id));
    }
    if (!t_reroute && v.path && v.path != before.path) {
      t_reroute = tl.since();
      after = v;
      tl.event(fmt::format("rerouted: {} -> {} now via {}", o.a, o.b, path_text(v.path)));
    }
    if (t_reroute && !t_resume) {
      t_resume = load.first_success_after(*t_reroute);
      if (t_resume) tl.event("key delivery resumed: a key for " + slave + " was delivered over the new route");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  if (!t_reroute) tl.event(fmt::format("no reroute within {} s: no other path from {} to {} with key", o.wait_s, o.a, o.b));
  std::this_thread::sleep_for(std::chrono::duration<double>(o.hold_s));

  if (o.restore) {
    const std::string restore = json{{"action", "restore-link"}, {"link", link_id}}.dump();
    for (const site* s : {&a, &b})
      if (auto r = call(*s, "POST", "/admin/drill", restore); !r) tl.event("restore failed: " + r.error().message);
    tl.event(fmt::format("link {} restored at {} and {}", link_id, o.a, o.b));
  }
  load.stop();
  const json counts = tally(load.outcomes(), t_cut);
  json summary{{"drill", "cut-link"},
               {"a", o.a},
               {"b", o.b},
               {"link", link_id},
               {"route_before", before.path ? json(*before.path) : json(nullptr)},
               {"route_after", after.path ? json(*after.path) : json(nullptr)},
               {"detect_s", t_detect ? json(*t_detect - t_cut) : json(nullptr)},
               {"reroute_s", t_reroute ? json(*t_reroute - t_cut) : json(nullptr)},
               {"resume_s", t_resume ? json(*t_resume - t_cut) : json(nullptr)},
               {"timeline", tl.events()}};
  summary.update(counts);
  if (o.json_out) {
    print_json(summary);
  } else {
    print_tally(counts);
    if (t_reroute) std::cout << fmt::format("reroute {:.3f} s after the cut\n", *t_reroute - t_cut);
  }
  if (!t_reroute) throw cli_exit{runtime_failure, "no reroute: see the timeline above"};
}

// Every site of the network directory (a subdirectory with a node.toml).
std::vector<site> all_sites(const drill_options& o) {
  std::vector<site> out;
  std::error_code ec;
  std::vector<std::string> ids;
  for (const auto& e : fs::directory_iterator(o.network, ec))
    if (e.is_directory() && fs::is_regular_file(e.path() / "node.toml")) ids.push_back(e.path().filename().string());
  std::sort(ids.begin(), ids.end());
  for (const auto& id : ids) out.push_back(load_site(o, id));
  return out;
}

std::optional<long> read_pid(const site& s) {
  std::ifstream f(s.cfg.storage / "node.pid");
  long pid = 0;
  if (f >> pid && pid > 1) return pid;
  return std::nullopt;
}

bool has(const std::optional<std::vector<std::string>>& path, const std::string& node) {
  return path && std::find(path->begin(), path->end(), node) != path->end();
}

void run_kill_node(const drill_options& o) {
  const std::string victim = o.a;
  const site n = load_site(o, victim);
  const auto sites = all_sites(o);
  // Traffic through the victim if some route crosses it, else from a neighbour to the victim.
  const site* from = nullptr;
  std::string to;
  std::optional<std::vector<std::string>> before;
  for (const auto& x : sites) {
    if (x.cfg.id == victim || x.cfg.saes.empty() || from != nullptr) continue;
    auto j = call(x, "GET", "/admin/routes");
    if (!j) continue;
    for (const auto& r : (*j)["routes"]) {
      if (!r.contains("path") || from != nullptr) continue;
      const auto p = r["path"].get<std::vector<std::string>>();
      const auto dest = r.value("destination", "");
      const auto it = std::find_if(sites.begin(), sites.end(), [&](const site& y) { return y.cfg.id == dest; });
      if (p.size() > 2 && std::find(p.begin() + 1, p.end() - 1, victim) != p.end() - 1 && it != sites.end() &&
          !it->cfg.saes.empty()) {
        from = &x;
        to = dest;
        before = p;
      }
    }
  }
  if (from == nullptr) {
    for (const auto& l : n.cfg.links)
      for (const auto& x : sites)
        if (from == nullptr && x.cfg.id == l.peer && !x.cfg.saes.empty() && !n.cfg.saes.empty()) {
          from = &x;
          to = victim;
        }
    if (from == nullptr) usage("N", fmt::format("no site with an SAE routes through or next to {}", victim));
    before = routes_of(*from, to, "").path;
  }
  const auto dest_site = std::find_if(sites.begin(), sites.end(), [&](const site& y) { return y.cfg.id == to; });
  const std::string master = from->cfg.saes.front().id, slave = dest_site->cfg.saes.front().id;
  const auto pid = read_pid(n);
  if (!pid)
    usage("N", fmt::format("no PID in {}: is node {} running (and new enough to write it)?",
                           (n.cfg.storage / "node.pid").string(), victim));

  drill_timeline tl(o.json_out);
  tl.event(fmt::format("drill kill-node {}; traffic {} -> {} via {}'s ETSI API; route now {}", victim, master, slave,
                    from->cfg.id, path_text(before)));
  traffic load(*from, o, master, slave, [&tl] { return tl.since(); });
  std::this_thread::sleep_for(std::chrono::milliseconds(3 * o.interval_ms));

  const double t_kill = tl.since();
  if (::kill(static_cast<pid_t>(*pid), SIGKILL) != 0)
    fail_with(error{errc::io_error, fmt::format("cannot SIGKILL node {} (pid {}): {}; run the drill as the nodes' user",
                                                victim, *pid, std::strerror(errno))});
  tl.event(fmt::format("fault injected: SIGKILL to node {} (pid {})", victim, *pid));

  std::optional<double> t_reroute, t_resume, t_back, t_links;
  std::optional<std::vector<std::string>> after;
  const auto deadline = clock::now() + std::chrono::duration<double>(o.wait_s);
  while (clock::now() < deadline && (!t_back || !t_links || !t_resume)) {
    if (to != victim && !t_reroute) {
      const auto v = routes_of(*from, to, "");
      if (v.path && !has(v.path, victim)) {
        t_reroute = tl.since();
        after = v.path;
        tl.event(fmt::format("rerouted: {} -> {} now via {}", from->cfg.id, to, path_text(v.path)));
      }
    }
    // Resumed: the first key after the reroute, or (no other path) after the node came back.
    if (!t_resume && (t_reroute || t_back)) {
      t_resume = load.first_success_after(t_reroute ? *t_reroute : *t_back);
      if (t_resume)
        tl.event(t_reroute ? "key delivery resumed over the new route" : "key delivery resumed with the node back");
    }
    if (!t_back) {
      if (auto p = read_pid(n); p && *p != *pid && call(n, "GET", "/admin/status")) {
        t_back = tl.since();
        tl.event(fmt::format("node {} is back (pid {}; restarted by its launcher)", victim, *p));
      }
    } else if (!t_links) {
      if (auto j = call(n, "GET", "/admin/status")) {
        bool up = true;
        for (const auto& l : (*j)["links"]) up = up && l.value("health", "") == "up";
        if (up) {
          t_links = tl.since();
          tl.event(fmt::format("every link of {} is up again", victim));
        }
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  if (!t_back)
    tl.event(fmt::format("node {} did not come back within {} s: is it run by `cvqkd network up` or a service manager?",
                      victim, o.wait_s));
  std::this_thread::sleep_for(std::chrono::duration<double>(o.hold_s));
  load.stop();
  const json counts = tally(load.outcomes(), t_kill);
  const auto rel = [&](const std::optional<double>& t) { return t ? json(*t - t_kill) : json(nullptr); };
  json summary{{"drill", "kill-node"},       {"node", victim},
               {"traffic_from", from->cfg.id}, {"traffic_to", to},
               {"route_before", before ? json(*before) : json(nullptr)},
               {"route_after", after ? json(*after) : json(nullptr)},
               {"reroute_s", rel(t_reroute)}, {"resume_s", rel(t_resume)},
               {"back_s", rel(t_back)},       {"links_up_s", rel(t_links)},
               {"timeline", tl.events()}};
  summary.update(counts);
  if (o.json_out) print_json(summary);
  else print_tally(counts);
  if (!t_back) throw cli_exit{runtime_failure, "the node did not come back: see the timeline above"};
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
  auto k = std::make_shared<drill_options>();
  k->wait_s = 120;
  auto* kill = drill->add_subcommand("kill-node", "SIGKILL node N under key traffic; show the reroute and its return");
  kill->add_option("N", k->a, "the node to kill (its launcher restarts it)")->required();
  kill->add_option("--network", k->network, "the network directory (cvqkd network up --dir)")->required();
  kill->add_option("--hold", k->hold_s, "seconds of traffic after the node is back")->capture_default_str();
  kill->add_option("--interval-ms", k->interval_ms, "one key request every this many milliseconds")->capture_default_str();
  kill->add_option("--wait", k->wait_s, "give up waiting for the node and its links after this many seconds")
    ->capture_default_str();
  kill->add_flag("--json", k->json_out, "print the timeline and counts as JSON");
  kill->callback([k] {
    if (k->interval_ms == 0 || k->hold_s < 0 || k->wait_s <= 0)
      usage("--interval-ms/--hold/--wait", "expected positive values");
    run_kill_node(*k);
  });
  cut->callback([o] {
    if (o->interval_ms == 0 || o->hold_s < 0 || o->wait_s <= 0)
      usage("--interval-ms/--hold/--wait", "expected positive values");
    run_cut_link(*o);
  });
}

}  // namespace cvqkd::cli
