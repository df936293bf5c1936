// `cvqkd ctl drill ...`: failure drills on a network made by `cvqkd network generate|up`, one per
// failure mode of operations.md. The link drills (cut-link, excess-noise, lo-drift,
// detector-saturation, sample-loss, crosstalk, calibration-drift, auth-failure A B) share one
// runner: key requests flow from an SAE at A to an SAE at B (ETSI enc_keys at A, one every
// --interval-ms), the drill goes to both ends of link A-B (POST /admin/drill; each end applies its
// part), and a timeline shows fault injected, detected (cut: A's relay marks the link unusable;
// faults: the first round at either end showing the symptom, with its reason), rerouted (A's route
// to B changes) or not needed, key delivery interrupted / resumed / never interrupted, restored
// and (faults) the link back up; then the count of failed requests and their messages.
// kill-node N SIGKILLs a node under traffic through it.
#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <cmath>
#include <map>
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

#include "actors/link_faults.hpp"
#include "config/node_config.hpp"
#include "node/admin_client.hpp"
#include "node/cli_common.hpp"
#include "node/services.hpp"

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

// One end's entry for `link` in its node's /admin/status (null when the node does not answer).
json link_status_of(const site& s, const std::string& link) {
  auto j = call(s, "GET", "/admin/status");
  if (!j) return nullptr;
  for (const auto& l : (*j)["links"])
    if (l.value("link_id", "") == link) return l;
  return nullptr;
}

std::uint64_t rounds_finished(const json& l) {
  return l.is_object() ? l.value("rounds_completed", std::uint64_t{0}) + l.value("rounds_aborted", std::uint64_t{0}) : 0;
}

bool has_text(std::string s, std::string_view key) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s.find(key) != std::string::npos;
}

// What a link drill does and how its symptom shows in a link end's status.
struct link_drill {
  std::string name;     // the subcommand: cut-link, excess-noise, ...
  json params;          // the drill's parameters (POST /admin/drill)
  // Fault drills: the symptom in a round that finished after the injection: "abort:KEYWORD" (the
  // round aborted and its reason names KEYWORD) or "noise" (xi_hat moved by more than
  // noise_threshold from its value before the fault, or the round aborted on its estimate).
  std::string symptom;
  bool cut() const { return name == "cut-link"; }
};

// ξ̂ must move this much (SNU) to count as a noise symptom: chosen above the round-to-round
// scatter expected of ξ̂ on the test ring's 1e6-symbol blocks (an estimate: not yet measured).
constexpr double noise_threshold = 0.03;

// The drill's symptom in end `now` (its status at injection: `then`), with its reason text.
std::optional<std::string> symptom_of(const link_drill& d, const json& now, const json& then, double xi_before) {
  if (!now.is_object() || rounds_finished(now) <= rounds_finished(then)) return std::nullopt;
  const json& last = now["last_round"];
  if (!last.is_object()) return std::nullopt;
  const bool aborted = last.value("outcome", "") == "aborted";
  const std::string why = now.value("last_error", "");
  const auto round = now.value("round", std::uint64_t{0});
  if (d.symptom.rfind("abort:", 0) == 0) {
    if (aborted && has_text(why, d.symptom.substr(6)))
      return fmt::format("round {} aborted: {}", round, why);
    return std::nullopt;
  }
  const double xi = last.value("xi_hat", 0.0);
  if (aborted && !why.empty() && !has_text(why, "peer") && !has_text(why, "stop") && !has_text(why, "heard"))
    return fmt::format("round {} aborted: {}", round, why);
  if (!aborted && std::abs(xi - xi_before) > noise_threshold)
    return fmt::format("round {}: xi_hat = {:.4f} SNU ({:.4f} before the fault; xi_max {:.4f}), key {} bits", round, xi,
                       xi_before, last.value("xi_max", 0.0), last.value("key_bits", std::uint64_t{0}));
  return std::nullopt;
}

// The generic link drill: key traffic from A's SAE to B's, the drill injected at both ends of
// link A-B (POST /admin/drill), a timeline of what the network shows (fault injected, detected,
// rerouted or not, key delivery interrupted / resumed / never interrupted, restored, link back
// up), then the count of failed requests. cut-link detects through A's relay (the link becomes
// unusable) and must reroute; a fault drill detects through the link's status at either end.
void run_link_drill(const drill_options& o, const link_drill& d) {
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
  tl.event(fmt::format("drill {} {} {} (link {}{}); traffic {} -> {} via {}'s ETSI API; route now {}", d.name, o.a,
                       o.b, link_id, d.params.empty() ? "" : ", " + d.params.dump(), master, slave, o.a,
                       path_text(before.path)));

  traffic load(a, o, master, slave, [&tl] { return tl.since(); });
  std::this_thread::sleep_for(std::chrono::milliseconds(3 * o.interval_ms));

  // Each end's status at the injection: the baseline of the symptom.
  json then_a = d.cut() ? json(nullptr) : link_status_of(a, link_id);
  json then_b = d.cut() ? json(nullptr) : link_status_of(b, link_id);
  double xi_before = 0.0;
  for (const json* t : {&then_a, &then_b})
    if (t->is_object() && (*t)["last_round"].is_object() && (*t)["last_round"].value("outcome", "") == "done")
      xi_before = (*t)["last_round"].value("xi_hat", 0.0);

  json body = d.params;
  body["action"] = d.name;
  body["link"] = link_id;
  const double t_fault = tl.since();
  std::string fault_text;
  bool injected_a = false;
  for (const site* s : {&a, &b}) {
    auto r = call(*s, "POST", "/admin/drill", body.dump());
    if (!r) {
      // Nothing may stay half-injected: undo A's part before giving up.
      if (injected_a)
        (void)call(a, "POST", "/admin/drill", json{{"action", "restore-link"}, {"link", link_id}}.dump());
      load.stop();
      fail_with(r.error());
    }
    injected_a = true;
    fault_text = r->value("fault", "");
  }
  tl.event(d.cut() ? fmt::format("fault injected: link {} cut at {} and {}", link_id, o.a, o.b)
                   : fmt::format("fault injected: {} on link {} at {} and {}", fault_text, link_id, o.a, o.b));

  std::optional<double> t_detect, t_reroute, t_resume, t_interrupt;
  std::string detect_reason;
  route_view after;
  const auto poll = std::chrono::milliseconds(d.cut() ? 50 : 250);
  // Watches the route, the traffic and (fault drills) the symptom until `until` says stop.
  auto watch = [&](auto deadline, const std::function<bool()>& until) {
    while (clock::now() < deadline && !until()) {
      const auto v = routes_of(a, o.b, link_id);
      if (!t_detect && d.cut() && v.usable && !*v.usable) {
        t_detect = tl.since();
        detect_reason = fmt::format("{}'s relay marks link {} unusable", o.a, link_id);
        tl.event("detected: " + detect_reason);
      }
      if (!t_detect && !d.cut()) {
        for (const auto& [s, then] : {std::pair{&a, &then_a}, std::pair{&b, &then_b}}) {
          if (t_detect) break;
          if (auto why = symptom_of(d, link_status_of(*s, link_id), *then, xi_before)) {
            t_detect = tl.since();
            detect_reason = fmt::format("{} end of {}: {}", s->cfg.id, link_id, *why);
            tl.event("detected: " + detect_reason);
          }
        }
      }
      if (!t_reroute && v.path && v.path != before.path) {
        t_reroute = tl.since();
        after = v;
        tl.event(fmt::format("rerouted: {} -> {} now via {}", o.a, o.b, path_text(v.path)));
      }
      if (!t_interrupt) {
        for (const auto& x : load.outcomes())
          if (x.t >= t_fault && x.status != 200) {
            t_interrupt = x.t;
            tl.event(fmt::format("key delivery interrupted: {} {}", x.status, x.message));
            break;
          }
      }
      if (!t_resume && (t_reroute || t_interrupt)) {
        t_resume = load.first_success_after(std::max(t_reroute.value_or(0.0), t_interrupt.value_or(0.0)));
        if (t_resume)
          tl.event(t_reroute ? "key delivery resumed: a key for " + slave + " was delivered over the new route"
                             : "key delivery resumed: a key for " + slave + " was delivered again");
      }
      std::this_thread::sleep_for(poll);
    }
  };
  const auto wait_until = clock::now() + std::chrono::duration<double>(o.wait_s);
  if (d.cut()) watch(wait_until, [&] { return t_detect && t_reroute && t_resume; });
  else watch(wait_until, [&] { return t_detect.has_value(); });
  if (!t_detect)
    tl.event(fmt::format("not detected within {} s: no round at either end showed the fault's symptom", o.wait_s));
  if (d.cut() && !t_reroute)
    tl.event(fmt::format("no reroute within {} s: no other path from {} to {} with key", o.wait_s, o.a, o.b));
  // Hold the fault under traffic (a fault drill keeps watching for a reroute once the pool runs dry).
  watch(clock::now() + std::chrono::duration<double>(o.hold_s), [] { return false; });
  if (!d.cut() && !t_reroute) {
    const json la = link_status_of(a, link_id);
    tl.event(fmt::format("no reroute needed: {}'s relay still routes {} -> {} via {} over link {}'s pool ({} bits "
                         "left at {})",
                         o.a, o.a, o.b, path_text(routes_of(a, o.b, link_id).path), link_id,
                         la.is_object() ? la.value("pool_bits", std::uint64_t{0}) : 0, o.a));
  }
  if (!t_interrupt)
    tl.event(fmt::format("key delivery never interrupted: every request since the fault was served"));

  std::optional<double> t_restored, t_back;
  if (o.restore) {
    const std::string restore = json{{"action", "restore-link"}, {"link", link_id}}.dump();
    json base_a, base_b;
    if (!d.cut()) {
      base_a = link_status_of(a, link_id);
      base_b = link_status_of(b, link_id);
    }
    for (const site* s : {&a, &b})
      if (auto r = call(*s, "POST", "/admin/drill", restore); !r) tl.event("restore failed: " + r.error().message);
    t_restored = tl.since();
    tl.event(d.cut() ? fmt::format("link {} restored at {} and {}", link_id, o.a, o.b)
                     : fmt::format("fault cleared at {} and {}", o.a, o.b));
    if (!d.cut()) {
      // Back up: a round that started after the restore completed with key at both ends.
      const auto deadline = clock::now() + std::chrono::duration<double>(o.wait_s);
      // A round that started after the restore: past the one running then (if any), one finished.
      const auto done_since = [&](const json& now, const json& base) {
        if (!now.is_object() || !now["last_round"].is_object()) return false;
        const std::uint64_t need =
          rounds_finished(base) + (base.is_object() && base.value("engine_state", "") == "running" ? 2 : 1);
        return rounds_finished(now) >= need && now["last_round"].value("outcome", "") == "done" &&
               now.value("health", "") == "up";
      };
      while (clock::now() < deadline && !t_back) {
        const json na = link_status_of(a, link_id), nb = link_status_of(b, link_id);
        if (done_since(na, base_a) && done_since(nb, base_b)) {
          t_back = tl.since();
          tl.event(fmt::format("link {} back up: round {} done at both ends (xi_hat {:.4f} SNU, {} key bits)", link_id,
                               nb.value("round", std::uint64_t{0}), nb["last_round"].value("xi_hat", 0.0),
                               nb["last_round"].value("key_bits", std::uint64_t{0})));
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(250));
      }
      if (!t_back) tl.event(fmt::format("link {} not back up within {} s of the restore", link_id, o.wait_s));
    }
  }
  load.stop();
  const json counts = tally(load.outcomes(), t_fault);
  const auto rel = [&](const std::optional<double>& t) { return t ? json(*t - t_fault) : json(nullptr); };
  json summary{{"drill", d.name},
               {"a", o.a},
               {"b", o.b},
               {"link", link_id},
               {"parameters", d.params},
               {"fault", fault_text},
               {"route_before", before.path ? json(*before.path) : json(nullptr)},
               {"route_after", after.path ? json(*after.path) : json(nullptr)},
               {"detect_s", rel(t_detect)},
               {"detected", t_detect ? json(detect_reason) : json(nullptr)},
               {"reroute_s", rel(t_reroute)},
               {"interrupted_s", rel(t_interrupt)},
               {"resume_s", rel(t_resume)},
               {"restored_s", rel(t_restored)},
               {"back_up_s", rel(t_back)},
               {"timeline", tl.events()}};
  summary.update(counts);
  if (o.json_out) {
    print_json(summary);
  } else {
    print_tally(counts);
    if (t_detect) std::cout << fmt::format("detected {:.3f} s after the fault\n", *t_detect - t_fault);
    if (t_reroute) std::cout << fmt::format("reroute {:.3f} s after the fault\n", *t_reroute - t_fault);
  }
  if (d.cut() && !t_reroute) throw cli_exit{runtime_failure, "no reroute: see the timeline above"};
  if (!d.cut() && !t_detect) throw cli_exit{runtime_failure, "the fault was not detected: see the timeline above"};
  if (!d.cut() && o.restore && !t_back)
    throw cli_exit{runtime_failure, "the link did not come back after the restore: see the timeline above"};
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
  // The options every link drill shares.
  const auto link_drill_command = [drill](const std::string& name, const std::string& what,
                                          std::shared_ptr<drill_options> o) {
    auto* cmd = drill->add_subcommand(name, what);
    cmd->add_option("A", o->a, "the node whose SAE requests keys (one end of the link)")->required();
    cmd->add_option("B", o->b, "the other end of the link (its SAE is the slave)")->required();
    cmd->add_option("--network", o->network, "the network directory (cvqkd network generate|up --dir)")->required();
    cmd->add_option("--hold", o->hold_s, "seconds of traffic with the fault on, after it was detected")
      ->capture_default_str();
    cmd->add_option("--interval-ms", o->interval_ms, "one key request every this many milliseconds")
      ->capture_default_str();
    cmd->add_option("--wait", o->wait_s, "give up waiting for detection (and, after the restore, for the link) "
                                         "after this many seconds")
      ->capture_default_str();
    cmd->add_flag("!--no-restore", o->restore, "leave the fault in place");
    cmd->add_flag("--json", o->json_out, "print the timeline and counts as JSON");
    return cmd;
  };
  const auto check_common = [](const drill_options& o) {
    if (o.interval_ms == 0 || o.hold_s < 0 || o.wait_s <= 0)
      usage("--interval-ms/--hold/--wait", "expected positive values");
  };
  // Bad parameters are refused here, before anything is injected (the nodes check them again).
  const auto check_faults = [](const std::string& flag, const actors::link_faults& f) {
    if (auto ok = actors::validate_faults(f); !ok) usage(flag, ok.error().message);
  };

  auto o = std::make_shared<drill_options>();
  auto* cut = link_drill_command("cut-link", "cut the link A-B at both ends under key traffic; show the reroute", o);
  cut->callback([o, check_common] {
    check_common(*o);
    run_link_drill(*o, link_drill{"cut-link", json::object(), ""});
  });

  struct fault_drill {
    const char* name;
    const char* help;
    const char* symptom;
  };
  const fault_drill drills[] = {
    {"excess-noise", "add excess noise on the fibre of link A-B (a dirty connector, interference, an eavesdropper)",
     "noise"},
    {"lo-drift", "let the LO phase drift between re-locks at link A-B's receiver (xi creeps up)", "noise"},
    {"detector-saturation", "let too much light reach link A-B's receiver (a failed attenuator: ADC clipping)",
     "abort:saturation"},
    {"sample-loss", "make link A-B's digitizer drop symbols (firmware fault: blocks vetoed)", "abort:sample loss"},
    {"crosstalk", "run a classical channel on link A-B's fibre (WDM crosstalk: Raman and leakage noise)", "noise"},
    {"calibration-drift", "let the LO power at link A-B's receiver drift after its shot-noise calibration", "noise"},
    {"auth-failure", "corrupt the alice end's authentication key of link A-B (classical-channel tags fail)",
     "abort:authenticat"},
  };
  for (const auto& fd : drills) {
    auto fo = std::make_shared<drill_options>();
    fo->wait_s = 180;
    auto values = std::make_shared<std::map<std::string, double>>();
    auto* cmd = link_drill_command(fd.name, fd.help, fo);
    const std::string name = fd.name;
    const auto param = [&](const char* flag, const char* key, double def, const std::string& help) {
      (*values)[key] = def;
      cmd->add_option(flag, (*values)[key], help)->capture_default_str();
    };
    if (name == "excess-noise") param("--xi", "xi", node::drill_defaults::xi, "added excess noise, SNU at the channel input, (0, 10]");
    if (name == "lo-drift")
      param("--rad2-per-symbol", "rad2_per_symbol", node::drill_defaults::lo_drift,
            "LO phase drift: Wiener step variance, rad^2 per symbol, (0, 1e-2] (xi rises by about V_A x relock_symbols x this)");
    if (name == "detector-saturation")
      param("--power-factor", "power_factor", node::drill_defaults::power_factor,
            "optical power at the receiver, x nominal, (1, 1e4] (10: a failed 10 dB attenuator)");
    if (name == "sample-loss")
      param("--probability", "probability", node::drill_defaults::sample_loss,
            "probability that the digitizer drops a symbol, (0, 1] (blocks losing more than 1% are vetoed)");
    if (name == "crosstalk") {
      param("--launch-dbm", "launch_dbm", node::drill_defaults::launch_dbm,
            "launch power of the co-propagating classical channel, dBm, [-60, 30]");
      param("--isolation-db", "isolation_db", node::drill_defaults::isolation_db,
            "isolation of the quantum receiver's DWDM filter from the classical channel, dB, [0, 300]");
    }
    if (name == "calibration-drift")
      param("--drift", "drift", node::drill_defaults::shot_noise_drift,
            "relative LO power change since the shot-noise calibration, [-0.5, 0.5], not 0");
    cmd->callback([fo, values, name, symptom = std::string(fd.symptom), check_common, check_faults] {
      check_common(*fo);
      json params = json::object();
      for (const auto& [k, v] : *values) params[k] = v;
      actors::link_faults f;
      f.what = name;
      const auto v = [&](const char* k) { return values->at(k); };
      if (name == "excess-noise") {
        f.excess_noise = v("xi");
        if (!(f.excess_noise > 0)) usage("--xi", "give an added excess noise in (0, 10] SNU");
        check_faults("--xi", f);
      } else if (name == "lo-drift") {
        f.lo_drift = v("rad2_per_symbol");
        if (!(f.lo_drift > 0)) usage("--rad2-per-symbol", "give a drift in (0, 1e-2] rad^2 per symbol");
        check_faults("--rad2-per-symbol", f);
      } else if (name == "detector-saturation") {
        f.power_factor = v("power_factor");
        if (!(f.power_factor > 1)) usage("--power-factor", "give a factor in (1, 1e4]");
        check_faults("--power-factor", f);
      } else if (name == "sample-loss") {
        f.sample_loss = v("probability");
        if (!(f.sample_loss > 0)) usage("--probability", "give a probability in (0, 1]");
        check_faults("--probability", f);
      } else if (name == "crosstalk") {
        if (!std::isfinite(v("launch_dbm")) || v("launch_dbm") < -60 || v("launch_dbm") > 30)
          usage("--launch-dbm", "give a classical launch power in [-60, 30] dBm");
        if (!std::isfinite(v("isolation_db")) || v("isolation_db") < 0 || v("isolation_db") > 300)
          usage("--isolation-db", "give an isolation in [0, 300] dB");
      } else if (name == "calibration-drift") {
        f.shot_noise_drift = v("drift");
        if (f.shot_noise_drift == 0) usage("--drift", "give a relative drift in [-0.5, 0.5], not 0");
        check_faults("--drift", f);
      }
      run_link_drill(*fo, link_drill{name, params, symptom});
    });
  }

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
  kill->callback([k, check_common] {
    check_common(*k);
    run_kill_node(*k);
  });
}

}  // namespace cvqkd::cli
