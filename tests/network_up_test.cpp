// `cvqkd network up` end to end: the shipped test ring (4 sites, 1 km links, 1e6-symbol blocks)
// as four real `cvqkd node` processes on 127.0.0.1 for 90 s; the JSON summary must show key
// committed on every link, and every node must have been stopped (none left running).
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <string>

namespace {

namespace fs = std::filesystem;

bool port_free(std::uint16_t port) {
  const int s = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(port);
  const bool ok = ::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  ::close(s);
  return ok;
}

// A base port with `count` consecutive free ports on 127.0.0.1 (probed; parallel tests pick
// different random bases).
std::uint16_t free_port_range(unsigned count) {
  std::random_device rd;
  std::uniform_int_distribution<unsigned> pick(20000, 60000);
  for (int attempt = 0; attempt < 200; ++attempt) {
    const auto base = static_cast<std::uint16_t>(pick(rd));
    bool all = true;
    for (unsigned i = 0; i < count && all; ++i) all = port_free(static_cast<std::uint16_t>(base + i));
    if (all) return base;
  }
  return 0;
}

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(network_up, test_ring_commits_key_on_every_link_and_stops_cleanly) {
  char tmpl[] = "/tmp/cvqkd-network-up-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  const fs::path tmp(tmpl);
  const std::uint16_t base = free_port_range(8);
  ASSERT_NE(base, 0) << "no 8 consecutive free ports on 127.0.0.1";
  const fs::path dir = tmp / "net", err = tmp / "launcher.stderr";
  const std::string cmd = std::string(CVQKD_BINARY) + " network up --topology test-ring --dir " + dir.string() +
                          " --base-port " + std::to_string(base) + " --for 90 --json 2>" + err.string();
  std::string out;
  FILE* p = ::popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  char buf[4096];
  while (std::size_t n = std::fread(buf, 1, sizeof buf, p)) out.append(buf, n);
  const int st = ::pclose(p);
  const std::string launcher_log = slurp(err);
  std::string node_logs;
  for (const char* n : {"A", "B", "C", "D"})
    node_logs += std::string("---- ") + n + "/node.log (tail)\n" + [&] {
      const auto s = slurp(dir / n / "node.log");
      return s.size() > 3000 ? s.substr(s.size() - 3000) : s;
    }();
  SCOPED_TRACE("command: " + cmd + "\n---- launcher stderr\n" + launcher_log + node_logs);
  ASSERT_TRUE(WIFEXITED(st));
  ASSERT_EQ(WEXITSTATUS(st), 0) << out;

  nlohmann::json j;
  ASSERT_NO_THROW(j = nlohmann::json::parse(out)) << out;
  EXPECT_NE(j.at("topology").get<std::string>().find("test ring"), std::string::npos);
  EXPECT_GE(j.at("seconds").get<double>(), 90.0);
  ASSERT_EQ(j.at("links").size(), 4u);
  for (const auto& l : j.at("links")) {
    SCOPED_TRACE(l.dump());
    EXPECT_GE(l.at("committed_round").get<std::uint64_t>(), 1u);
    EXPECT_GE(l.at("rounds_committed").get<std::uint64_t>(), 1u);
    EXPECT_GT(l.at("key_bits").get<std::uint64_t>(), 0u);
    EXPECT_GT(l.at("simulated_key_rate_bps").get<double>(), 0.0);
    ASSERT_TRUE(l.at("last_key_round").is_object());
    EXPECT_GT(l.at("last_key_round").at("hardware_key_rate_bps").get<double>(), 0.0);
  }
  ASSERT_EQ(j.at("nodes").size(), 4u);
  // The launcher said it stopped everything, and no process runs from the network directory.
  EXPECT_NE(launcher_log.find("all nodes stopped"), std::string::npos);
  for (const auto& e : fs::directory_iterator("/proc")) {
    const std::string name = e.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::string cmdline = slurp(e.path() / "cmdline");
    std::replace(cmdline.begin(), cmdline.end(), '\0', ' ');
    EXPECT_EQ(cmdline.find(dir.string() + "/"), std::string::npos) << "still running: pid " << name << ": " << cmdline;
  }
  for (const char* n : {"A", "B", "C", "D"}) EXPECT_TRUE(fs::is_regular_file(dir / n / "node.toml"));
  std::error_code ec;
  fs::remove_all(tmp, ec);
}

}  // namespace
