// `cvqkd bench network`: a synthetic backbone (network::synthesize_topology) brought up in this
// process (network::in_process_network), then keys end to end between random site pairs through
// the ETSI GS QKD 014 API of the nodes (enc_keys as the master SAE at one site, dec_keys as the
// slave SAE at the other, the two keys compared), with this process's memory, CPU and threads.
#include <stdlib.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/spdlog.h>

#include "config/topology.hpp"
#include "node/admin_client.hpp"
#include "node/cli_common.hpp"
#include "node/inproc.hpp"
#include "node/network.hpp"

namespace cvqkd::cli {
namespace {

namespace fs = std::filesystem;
using steady = std::chrono::steady_clock;

struct bench_network_options {
  int nodes = 150, links = 300;
  std::uint64_t seed = 1;
  double duration_s = 60;       // request phase
  int requests = 0;             // 0: as many as fit in duration_s
  double key_timeout_s = 3600;  // longest wait for key on every link
  std::string dir;              // empty: a fresh temporary directory, removed afterwards
  bool keep = false;
  int base_port = 21000;
  unsigned key_bits = 256;
  bool json = false;
};

double since(steady::time_point t0) { return std::chrono::duration<double>(steady::now() - t0).count(); }

// One line of /proc/self/status ("Threads:", "VmRSS:"), as a number (kB for sizes).
std::uint64_t proc_status(std::string_view field) {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line))
    if (line.starts_with(field)) return std::strtoull(line.c_str() + field.size(), nullptr, 10);
  return 0;
}

struct cpu_times {
  double user = 0, sys = 0;
  std::uint64_t max_rss_kb = 0;
};
cpu_times rusage_now() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return {static_cast<double>(ru.ru_utime.tv_sec) + 1e-6 * static_cast<double>(ru.ru_utime.tv_usec),
          static_cast<double>(ru.ru_stime.tv_sec) + 1e-6 * static_cast<double>(ru.ru_stime.tv_usec),
          static_cast<std::uint64_t>(ru.ru_maxrss)};
}

// Samples the thread count and RSS once a second (their peaks; getrusage has the RSS peak too).
class sampler {
public:
  sampler() : thread_([this] { loop(); }) {}
  ~sampler() {
    {
      std::lock_guard l(m_);
      done_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  std::uint64_t peak_threads() const { return peak_threads_.load(); }
  std::uint64_t threads_now() const { return proc_status("Threads:"); }

private:
  void loop() {
    std::unique_lock l(m_);
    while (!done_) {
      peak_threads_ = std::max<std::uint64_t>(peak_threads_.load(), proc_status("Threads:"));
      cv_.wait_for(l, std::chrono::seconds(1));
    }
  }
  std::mutex m_;
  std::condition_variable cv_;
  bool done_ = false;
  std::atomic<std::uint64_t> peak_threads_{0};
  std::thread thread_;
};

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return NAN;
  std::sort(v.begin(), v.end());
  const auto k = static_cast<std::size_t>(std::clamp(std::ceil(p / 100.0 * static_cast<double>(v.size())) - 1.0, 0.0,
                                                     static_cast<double>(v.size() - 1)));
  return v[k];
}

nlohmann::json num_or_null(double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr); }

void progress(const bench_network_options& o, const std::string& line) {
  if (!o.json) std::cout << line << '\n' << std::flush;
  else std::cerr << line << '\n' << std::flush;
}

void run_bench_network(const bench_network_options& o) {
  require_range("--nodes", o.nodes, 2, 9999, false, false, "sites");
  require_range("--links", o.links, 1, 1e7, false, false, "links");
  require_range("--duration-s", o.duration_s, 0, 1e6, false, false, "seconds");
  require_range("--requests", o.requests, 0, 1e9, false, false, "key requests (0: as many as fit in --duration-s)");
  require_range("--key-timeout-s", o.key_timeout_s, 1, 1e6, false, false, "seconds");
  require_range("--base-port", o.base_port, 1, 65535, false, false, "a TCP port");
  if (o.key_bits == 0 || o.key_bits % 8 != 0) usage("--key-bits", "give a positive multiple of 8 (ETSI key size in bits)");

  network::synth_options so;
  so.nodes = static_cast<std::size_t>(o.nodes);
  so.links = static_cast<std::size_t>(o.links);
  so.seed = o.seed;
  auto text = network::synthesize_topology(so);
  if (!text) fail_with(text.error());

  fs::path dir;
  bool temporary = false;
  if (o.dir.empty()) {
    std::string tmpl = (fs::temp_directory_path() / "cvqkd-bench-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr)
      fail_with({errc::io_error, fmt::format("cannot create a directory {}; give --dir", tmpl)});
    dir = tmpl;
    temporary = !o.keep;
  } else {
    dir = fs::absolute(o.dir);
    std::error_code ec;
    if (fs::exists(dir / "topology.toml", ec))
      usage("--dir", fmt::format("{} holds an earlier network (its stores would skew the numbers); give a new directory",
                                 dir.string()));
    fs::create_directories(dir, ec);
  }
  const fs::path topo_file = dir / "topology.toml";
  {
    std::ofstream f(topo_file, std::ios::trunc);
    f << *text;
    if (!f.flush()) fail_with({errc::io_error, fmt::format("cannot write {}; check --dir", topo_file.string())});
  }
  auto topo = config::load_topology(topo_file);
  if (!topo) fail_with(topo.error());
  const auto t_gen = steady::now();
  auto net = network::generate(*topo, dir, static_cast<std::uint16_t>(o.base_port));
  if (!net) fail_with(net.error());
  const double generate_s = since(t_gen);

  // The nodes log into <dir>/network.log.
  auto previous_logger = spdlog::default_logger();
  spdlog::set_default_logger(std::make_shared<spdlog::logger>(
    "cvqkd", std::make_shared<spdlog::sinks::basic_file_sink_mt>((dir / "network.log").string())));
  spdlog::set_level(spdlog::level::info);
  std::signal(SIGPIPE, SIG_IGN);

  progress(o, fmt::format("bench network: {} sites, {} links (seed {}), directory {}", o.nodes, o.links, o.seed,
                          dir.string()));
  sampler samples;
  const auto cpu0 = rusage_now();
  const auto t0 = steady::now();
  auto started = network::in_process_network::start(*net);
  if (!started) {
    spdlog::set_default_logger(previous_logger);
    fail_with(started.error());
  }
  auto& inproc = **started;
  const double start_s = since(t0);
  const auto cpu_started = rusage_now();
  progress(o, fmt::format("[{:7.1f}s] {} nodes started, {} threads, RSS {} MiB", since(t0), inproc.size(),
                          samples.threads_now(), proc_status("VmRSS:") / 1024));

  // ---- wait for key on every link -------------------------------------------------------------
  std::map<std::string, std::size_t> index;
  for (std::size_t i = 0; i < net->nodes.size(); ++i) index[net->nodes[i].id] = i;
  std::vector<std::optional<double>> first_key(topo->links.size());
  std::size_t with_key = 0;
  std::uint64_t rounds_done = 0, rounds_aborted = 0;
  auto last_report = steady::now();
  for (;;) {
    const auto all = inproc.status_all();
    std::vector<std::map<std::string, std::uint64_t>> pools(all.size());
    rounds_done = rounds_aborted = 0;
    for (std::size_t i = 0; i < all.size(); ++i)
      if (all[i])
        for (const auto& l : all[i]->links) {
          pools[i][l.link_id] = l.pool_bits;
          if (l.role == "alice") {
            rounds_done += l.rounds_completed;
            rounds_aborted += l.rounds_aborted;
          }
        }
    const double now = since(t0);
    for (std::size_t k = 0; k < topo->links.size(); ++k) {
      if (first_key[k]) continue;
      const auto& l = topo->links[k];
      const auto& pa = pools[index[l.a]];
      const auto& pb = pools[index[l.b]];
      const auto a = pa.find(l.id), b = pb.find(l.id);
      if (a != pa.end() && b != pb.end() && a->second > 0 && b->second > 0) {
        first_key[k] = now;
        ++with_key;
      }
    }
    if (with_key == topo->links.size() || now >= o.key_timeout_s) break;
    if (since(last_report) >= 30) {
      last_report = steady::now();
      const auto c = rusage_now();
      progress(o, fmt::format("[{:7.1f}s] {}/{} links have key; {} rounds committed, {} aborted; {} threads, RSS {} "
                              "MiB, CPU {:.0f} s user + {:.0f} s sys",
                              now, with_key, topo->links.size(), rounds_done, rounds_aborted, samples.threads_now(),
                              proc_status("VmRSS:") / 1024, c.user - cpu0.user, c.sys - cpu0.sys));
    }
    std::this_thread::sleep_for(std::chrono::seconds(2));
  }
  const double keys_ready_s = since(t0);
  const auto cpu_ready = rusage_now();
  progress(o, fmt::format("[{:7.1f}s] {}/{} links have key; {} rounds committed, {} aborted", keys_ready_s, with_key,
                          topo->links.size(), rounds_done, rounds_aborted));

  // ---- keys end to end ------------------------------------------------------------------------
  std::mt19937_64 rng(o.seed);
  std::uniform_int_distribution<std::size_t> pick(0, net->nodes.size() - 1);
  std::vector<double> enc_ms, dec_ms;
  std::map<int, std::uint64_t> hop_hist, hop_matched;
  std::uint64_t requested = 0, matched = 0, mismatched = 0, failed = 0;
  std::map<std::string, std::uint64_t> failure_kinds;
  std::vector<std::string> failure_examples;
  const auto tls_of = [&](const std::string& sae) {
    const fs::path d = net->pki / "saes" / sae;
    return node::client_tls{d / "ca.crt", d / "sae.crt", d / "sae.key"};
  };
  const auto note_failure = [&](const std::string& kind, const std::string& what) {
    ++failed;
    ++failure_kinds[kind];
    if (failure_examples.size() < 5) failure_examples.push_back(what);
  };
  const auto t_req = steady::now();
  while ((o.requests > 0 && requested < static_cast<std::uint64_t>(o.requests)) ||
         (o.requests == 0 && since(t_req) < o.duration_s)) {
    const std::size_t m = pick(rng);
    std::size_t s = pick(rng);
    while (s == m) s = pick(rng);
    const auto& master = topo->nodes[m];
    const auto& slave = topo->nodes[s];
    const int hops = network::hops_from(*topo, master.id).at(slave.id);
    ++requested;
    ++hop_hist[hops];
    const std::string& msae = master.saes.front();
    const std::string& ssae = slave.saes.front();
    const auto t1 = steady::now();
    auto enc = node::https_request("127.0.0.1", inproc.node(m).api_port(), tls_of(msae), "GET",
                                   fmt::format("/api/v1/keys/{}/enc_keys?number=1&size={}", ssae, o.key_bits), "",
                                   std::chrono::seconds(60));
    const double e_ms = 1e3 * since(t1);
    if (!enc) {
      note_failure("enc_keys: " + std::string(to_string(enc.error().code)),
                   fmt::format("{} > {}: enc_keys: {}", master.id, slave.id, enc.error().message));
      continue;
    }
    if (enc->status != 200) {
      note_failure(fmt::format("enc_keys HTTP {}", enc->status),
                   fmt::format("{} > {}: enc_keys HTTP {}: {}", master.id, slave.id, enc->status, enc->body.substr(0, 300)));
      continue;
    }
    std::string key_id, key;
    try {
      const auto j = nlohmann::json::parse(enc->body);
      key_id = j.at("keys").at(0).at("key_ID").get<std::string>();
      key = j.at("keys").at(0).at("key").get<std::string>();
    } catch (const std::exception& ex) {
      note_failure("enc_keys: bad JSON", fmt::format("{} > {}: enc_keys answer: {}", master.id, slave.id, ex.what()));
      continue;
    }
    enc_ms.push_back(e_ms);
    const auto t2 = steady::now();
    const nlohmann::json body = {{"key_IDs", {{{"key_ID", key_id}}}}};
    auto dec = node::https_request("127.0.0.1", inproc.node(s).api_port(), tls_of(ssae), "POST",
                                   fmt::format("/api/v1/keys/{}/dec_keys", msae), body.dump(), std::chrono::seconds(60));
    const double d_ms = 1e3 * since(t2);
    if (!dec || dec->status != 200) {
      note_failure(dec ? fmt::format("dec_keys HTTP {}", dec->status) : "dec_keys: " + std::string(to_string(dec.error().code)),
                   fmt::format("{} > {}: dec_keys: {}", master.id, slave.id,
                               dec ? dec->body.substr(0, 300) : dec.error().message));
      continue;
    }
    dec_ms.push_back(d_ms);
    std::string slave_key;
    try {
      slave_key = nlohmann::json::parse(dec->body).at("keys").at(0).at("key").get<std::string>();
    } catch (const std::exception& ex) {
      note_failure("dec_keys: bad JSON", fmt::format("{} > {}: dec_keys answer: {}", master.id, slave.id, ex.what()));
      continue;
    }
    if (slave_key == key) {
      ++matched;
      ++hop_matched[hops];
    } else {
      ++mismatched;  // the keys themselves are never printed
      if (failure_examples.size() < 5)
        failure_examples.push_back(fmt::format("{} > {}: key {} differs between master and slave", master.id, slave.id, key_id));
    }
  }
  const double request_s = since(t_req);
  const auto cpu_req = rusage_now();
  const std::uint64_t threads_running = samples.threads_now();
  const std::uint64_t rss_running_kb = proc_status("VmRSS:");
  progress(o, fmt::format("[{:7.1f}s] {} key requests: {} matched, {} mismatched, {} failed; stopping", since(t0),
                          requested, matched, mismatched, failed));
  const double stop_s = inproc.stop();
  const auto cpu_end = rusage_now();
  spdlog::set_default_logger(previous_logger);

  std::vector<double> ttfk;
  for (const auto& f : first_key)
    if (f) ttfk.push_back(*f);
  nlohmann::json hops = nlohmann::json::object();
  for (const auto& [h, n] : hop_hist)
    hops[std::to_string(h)] = {{"requested", n}, {"matched", hop_matched.count(h) ? hop_matched.at(h) : 0}};
  int max_hops = 0;
  for (const auto& n : topo->nodes)
    for (const auto& [id, h] : network::hops_from(*topo, n.id)) max_hops = std::max(max_hops, h);
  const auto phase = [](const cpu_times& a, const cpu_times& b, double wall) {
    return nlohmann::json{{"wall_s", wall}, {"user_s", b.user - a.user}, {"sys_s", b.sys - a.sys}};
  };
  nlohmann::json j = {
    {"nodes", o.nodes},
    {"links", o.links},
    {"seed", o.seed},
    {"cores", std::thread::hardware_concurrency()},
    {"topology_diameter_hops", max_hops},
    {"generate_s", generate_s},
    {"start_s", start_s},
    {"links_with_key", with_key},
    {"rounds_committed", rounds_done},
    {"rounds_aborted", rounds_aborted},
    {"time_to_first_key_s",
     {{"all_links", with_key == topo->links.size() ? nlohmann::json(keys_ready_s) : nlohmann::json(nullptr)},
      {"p50", num_or_null(percentile(ttfk, 50))},
      {"max", num_or_null(ttfk.empty() ? NAN : *std::max_element(ttfk.begin(), ttfk.end()))}}},
    {"keys",
     {{"requested", requested},
      {"matched", matched},
      {"mismatched", mismatched},
      {"failed", failed},
      {"key_bits", o.key_bits},
      {"failures", failure_kinds},
      {"failure_examples", failure_examples},
      {"by_shortest_hops", hops}}},
    {"enc_keys_latency_ms",
     {{"p50", num_or_null(percentile(enc_ms, 50))}, {"p99", num_or_null(percentile(enc_ms, 99))},
      {"max", num_or_null(percentile(enc_ms, 100))}, {"note", "one new mutual-TLS connection per request, relay included"}}},
    {"dec_keys_latency_ms", {{"p50", num_or_null(percentile(dec_ms, 50))}, {"p99", num_or_null(percentile(dec_ms, 99))}}},
    {"peak_rss_mib", static_cast<double>(cpu_end.max_rss_kb) / 1024.0},
    {"rss_while_serving_mib", static_cast<double>(rss_running_kb) / 1024.0},
    {"rss_per_node_mib", static_cast<double>(rss_running_kb) / 1024.0 / o.nodes},
    {"threads_while_serving", threads_running},
    {"threads_peak", samples.peak_threads()},
    {"cpu",
     {{"start", phase(cpu0, cpu_started, start_s)},
      {"until_key_on_all_links", phase(cpu_started, cpu_ready, keys_ready_s - start_s)},
      {"requests", phase(cpu_ready, cpu_req, request_s)},
      {"stop", phase(cpu_req, cpu_end, stop_s)},
      {"total_user_s", cpu_end.user - cpu0.user},
      {"total_sys_s", cpu_end.sys - cpu0.sys}}},
    {"directory", temporary ? nlohmann::json(nullptr) : nlohmann::json(dir.string())},
  };
  if (temporary) {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
  if (o.json) {
    print_json(j);
  } else {
    std::cout << j.dump(2) << '\n';
  }
  if (requested == 0 || matched != requested)
    throw cli_exit{runtime_failure,
                   fmt::format("bench network: {} of {} key requests matched end to end ({} failed, {} mismatched)",
                               matched, requested, failed, mismatched)};
}

}  // namespace

void add_bench_network(CLI::App& bench) {
  auto o = std::make_shared<bench_network_options>();
  auto* cmd = bench.add_subcommand(
    "network", "a synthetic backbone in this process: keys end to end between random sites, memory, CPU, threads");
  cmd->add_option("--nodes", o->nodes, "sites")->capture_default_str();
  cmd->add_option("--links", o->links, "links")->capture_default_str();
  cmd->add_option("--seed", o->seed, "topology and site pairs")->capture_default_str();
  cmd->add_option("--duration-s", o->duration_s, "seconds of key requests once every link has key")
    ->capture_default_str();
  cmd->add_option("--requests", o->requests, "this many key requests instead of --duration-s (0: by duration)")
    ->capture_default_str();
  cmd->add_option("--key-timeout-s", o->key_timeout_s,
                  "longest wait for key on every link (then the requests start anyway)")
    ->capture_default_str();
  cmd->add_option("--key-bits", o->key_bits, "ETSI key size")->capture_default_str();
  cmd->add_option("--dir", o->dir, "network directory (default: a temporary one, removed afterwards)");
  cmd->add_flag("--keep", o->keep, "keep the temporary directory (stores, PKI, network.log)");
  cmd->add_option("--base-port", o->base_port, "node i listens on base+2i and base+2i+1")->capture_default_str();
  cmd->add_flag("--json", o->json, "print only the JSON result on stdout (progress on stderr)");
  cmd->callback([o] { run_bench_network(*o); });
}

}  // namespace cvqkd::cli
