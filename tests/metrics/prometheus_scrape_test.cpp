// A real Prometheus server (Debian `prometheus`) on loopback scrapes metrics_fixture_server, and the
// test reads a metric back through Prometheus's HTTP API (/api/v1/query). Both processes are stopped
// by RAII even when an assertion fails; the server's storage lives in a temporary directory.
// Also runs every Grafana dashboard expression against the server: each must be valid PromQL.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string_view>
#include <utility>
#include <string>
#include <thread>

#include "tests/metrics/metrics_fixture.hpp"
#include "tests/metrics/test_helpers.hpp"

namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using cvqkd::test_support::child_process;
using cvqkd::test_support::http_get;
using cvqkd::test_support::url_encode;

struct temp_dir {
  fs::path path;
  temp_dir() {
    path = fs::temp_directory_path() / ("cvqkd_prom_" + std::to_string(::getpid()));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~temp_dir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

std::string tail_of(const fs::path& file) {
  std::ifstream in(file);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return text.size() > 4000 ? text.substr(text.size() - 4000) : text;
}

std::optional<nlohmann::json> query(int port, const std::string& promql) {
  auto r = http_get(port, "/api/v1/query?query=" + url_encode(promql));
  if (!r) return std::nullopt;
  auto j = nlohmann::json::parse(r->second, nullptr, false);
  if (j.is_discarded()) return std::nullopt;
  return j;
}

TEST(prometheus, scrapes_a_node_and_answers_a_query_with_its_value) {
  temp_dir dir;
  // The fixture server binds port 0 itself and prints the port.
  child_process fixture({CVQKD_FIXTURE_SERVER, "--max-seconds", "90"}, true, (dir.path / "fixture.log").string());
  ASSERT_TRUE(fixture.started());
  const auto line = fixture.read_line(10s);
  ASSERT_TRUE(line && line->starts_with("port ")) << "fixture server did not report its port: " << tail_of(dir.path / "fixture.log");
  const int target_port = std::stoi(line->substr(5));

  std::ofstream(dir.path / "prometheus.yml") << "global:\n"
                                                "  scrape_interval: 1s\n"
                                                "  evaluation_interval: 1s\n"
                                                "scrape_configs:\n"
                                                "  - job_name: cvqkd\n"
                                                "    static_configs:\n"
                                                "      - targets: ['127.0.0.1:"
                                             << target_port << "']\n";
  // Prometheus cannot bind port 0 and tell us the port: probe one, retry if another process took it.
  std::unique_ptr<child_process> prom;
  int prom_port = -1;
  const auto log = dir.path / "prometheus.log";
  for (int attempt = 0; attempt < 3 && !prom; ++attempt) {
    prom_port = cvqkd::test_support::probe_free_port();
    ASSERT_GT(prom_port, 0);
    auto p = std::make_unique<child_process>(
        std::vector<std::string>{CVQKD_PROMETHEUS, "--config.file=" + (dir.path / "prometheus.yml").string(),
                                 "--storage.tsdb.path=" + (dir.path / "data").string(),
                                 "--web.listen-address=127.0.0.1:" + std::to_string(prom_port), "--log.level=warn"},
        false, log.string());
    ASSERT_TRUE(p->started()) << "cannot start " << CVQKD_PROMETHEUS;
    // Ready when /-/ready answers 200; an early exit means the port was taken (or a bad flag).
    const auto deadline = std::chrono::steady_clock::now() + 20s;
    bool ready = false;
    while (std::chrono::steady_clock::now() < deadline && p->running()) {
      if (auto r = http_get(prom_port, "/-/ready", 1s); r && r->first == 200) {
        ready = true;
        break;
      }
      std::this_thread::sleep_for(100ms);
    }
    if (ready) prom = std::move(p);
  }
  ASSERT_TRUE(prom) << "Prometheus did not become ready; its log:\n" << tail_of(log);

  // Wait for the first scrapes (interval 1 s), then read the key rate back.
  const std::string promql = R"(cvqkd_link_secret_key_rate_bytes_per_second{job="cvqkd",link="ko1-ko2"})";
  nlohmann::json result;
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  while (std::chrono::steady_clock::now() < deadline) {
    if (auto j = query(prom_port, promql); j && (*j)["status"] == "success" && !(*j)["data"]["result"].empty()) {
      result = (*j)["data"]["result"];
      break;
    }
    std::this_thread::sleep_for(250ms);
  }
  ASSERT_FALSE(result.is_null()) << "no sample of " << promql << " within 30 s; Prometheus log:\n" << tail_of(log);
  ASSERT_EQ(result.size(), 1u) << result.dump();
  const auto& s = result[0];
  EXPECT_EQ(s["metric"]["node"], "ko1");
  EXPECT_EQ(s["metric"]["peer"], "ko2");
  EXPECT_EQ(s["metric"]["role"], "alice");
  EXPECT_EQ(s["metric"]["instance"], "127.0.0.1:" + std::to_string(target_port));
  EXPECT_DOUBLE_EQ(std::stod(s["value"][1].get<std::string>()), cvqkd::test_support::fixture_key_rate_bps / 8);

  // The scrape itself was healthy, and NaN gauges (a link without estimates) arrive as NaN.
  auto up = query(prom_port, R"(up{job="cvqkd"})");
  ASSERT_TRUE(up);
  EXPECT_EQ((*up)["data"]["result"][0]["value"][1], "1");
  auto nan = query(prom_port, R"(cvqkd_link_secret_key_rate_bytes_per_second{link="ko1-ot"})");
  ASSERT_TRUE(nan && !(*nan)["data"]["result"].empty());
  EXPECT_EQ((*nan)["data"]["result"][0]["value"][1], "NaN");

  // Every dashboard expression is valid PromQL on a live server, and the on-call panels return data
  // from this node (Grafana's variables replaced by what Grafana would send).
  int checked = 0;
  for (const char* name : {"executive.json", "oncall.json", "debug.json"}) {
    std::ifstream in(fs::path(CVQKD_SOURCE_DIR) / "deploy" / "grafana" / name);
    const auto d = nlohmann::json::parse(in, nullptr, false);
    ASSERT_FALSE(d.is_discarded()) << name;
    for (const auto& p : d["panels"]) {
      if (!p.contains("targets")) continue;
      for (const auto& t : p["targets"]) {
        std::string e = t["expr"];
        for (const auto& [var, value] : {std::pair{"$__rate_interval", "1m"}, {"$__range", "1h"}, {"$node", ".*"}, {"$link", ".*"}})
          for (auto pos = e.find(var); pos != std::string::npos; pos = e.find(var, pos))
            e.replace(pos, std::string_view(var).size(), value);
        auto j = query(prom_port, e);
        ASSERT_TRUE(j) << name << ": no answer for " << e;
        EXPECT_EQ((*j)["status"], "success") << name << " / " << p["title"] << ": " << e << "\n" << j->dump();
        ++checked;
      }
    }
  }
  EXPECT_GT(checked, 20);

  // Clean shutdown of both (the destructors would do it too, e.g. after a failed assertion).
  prom->stop();
  fixture.stop();
  EXPECT_FALSE(prom->running());
  EXPECT_FALSE(fixture.running());
}

}  // namespace
