// Two real `cvqkd node` processes on 127.0.0.1 over the TLS inter-node channel: a PKI from
// `cvqkd pki init`, two TOML files for one short, fast link, both nodes build up key; one node is
// killed with SIGKILL mid-run and restarted; after a graceful SIGTERM the two key stores hold the
// same pools (every block both ends committed, byte for byte).
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "storage/key_store.hpp"

namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using namespace cvqkd;

std::uint16_t free_port() {
  int s = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  ::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(s, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(s);
  return ntohs(a.sin_port);
}

// Runs a command, returns (exit status, stdout).
std::pair<int, std::string> run(const std::string& cmd) {
  std::string out;
  FILE* p = ::popen((cmd + " 2>/dev/null").c_str(), "r");
  if (p == nullptr) return {-1, ""};
  char buf[4096];
  while (std::size_t n = std::fread(buf, 1, sizeof buf, p)) out.append(buf, n);
  const int st = ::pclose(p);
  return {WIFEXITED(st) ? WEXITSTATUS(st) : -1, out};
}

pid_t start_node(const fs::path& toml, const fs::path& log) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
    ::dup2(fd, 1);
    ::dup2(fd, 2);
    ::execl(CVQKD_BINARY, CVQKD_BINARY, "node", "--config", toml.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  return pid;
}

// Waits for `pid` up to `limit`; returns its exit code, or -1 (then it is killed).
int wait_exit(pid_t pid, std::chrono::milliseconds limit) {
  const auto end = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < end) {
    int st = 0;
    if (::waitpid(pid, &st, WNOHANG) == pid) return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    std::this_thread::sleep_for(50ms);
  }
  ::kill(pid, SIGKILL);
  ::waitpid(pid, nullptr, 0);
  return -1;
}

std::string node_toml(const std::string& id, const std::string& peer, const std::string& role, std::uint16_t listen,
                      std::uint16_t peer_port) {
  return "[node]\nid = \"" + id + "\"\nlisten = \"127.0.0.1:" + std::to_string(listen) + "\"\nstorage = \"" + id +
         ".db\"\nkek_file = \"" + id + ".kek\"\n\n[pki]\nca = \"pki/nodes/" + id + "/ca.crt\"\ncertificate = \"pki/nodes/" +
         id + "/node.crt\"\nkey = \"pki/nodes/" + id + "/node.key\"\nsecrets = \"pki/nodes/" + id +
         "/secrets\"\n\n[[links]]\nid = \"L1\"\npeer = \"" + peer + "\"\npeer_address = \"127.0.0.1:" +
         std::to_string(peer_port) + "\"\nrole = \"" + role +
         "\"\nprofile = \"highrate_metro\"\nlength_km = 1\nblock_symbols = 1e6\nshort_codes = true\nbeta = 0.8\n"
         "seed = 11\n";
}

// The link's committed round at a node (-1: no answer).
long committed(const fs::path& toml) {
  auto [rc, out] = run(std::string(CVQKD_BINARY) + " node status --json --config " + toml.string());
  if (rc != 0) return -1;
  try {
    auto j = nlohmann::json::parse(out);
    return static_cast<long>(j["links"][0]["committed_round"].get<std::uint64_t>());
  } catch (...) {
    return -1;
  }
}

bool wait_committed(const fs::path& a, const fs::path& b, long target, std::chrono::seconds limit) {
  const auto end = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < end) {
    if (committed(a) >= target && committed(b) >= target) return true;
    std::this_thread::sleep_for(2s);
  }
  return false;
}

std::vector<std::byte> pool_bytes(const fs::path& dir, const std::string& id, storage::direction d,
                                  std::uint64_t* bits_out) {
  storage::store_options o;
  o.directory = dir / (id + ".db");
  o.kek_file = dir / (id + ".kek");
  o.node_id = id;
  auto store = storage::key_store::open(o);
  EXPECT_TRUE(store) << (store ? "" : store.error().message);
  if (!store) return {};
  auto st = (*store)->status({"L1", d});
  EXPECT_TRUE(st);
  *bits_out = st ? st->available_bits : 0;
  if (!st || st->available_bits == 0) return {};
  auto taken = (*store)->take({"L1", d}, st->available_bits);
  EXPECT_TRUE(taken);
  if (!taken) return {};
  return {taken->bytes.data(), taken->bytes.data() + taken->bytes.size()};
}

TEST(node_integration, two_nodes_build_identical_pools_and_survive_sigkill) {
  char tmpl[] = "/tmp/cvqkd-node-it-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  const fs::path dir(tmpl);
  auto [rc, out] = run(std::string(CVQKD_BINARY) + " pki init --dir " + (dir / "pki").string() +
                       " --node ko1 --node ko2 --link L1:ko1:ko2");
  ASSERT_EQ(rc, 0) << out;
  const std::uint16_t p1 = free_port(), p2 = free_port();
  const fs::path a = dir / "ko1.toml", b = dir / "ko2.toml";
  std::ofstream(a) << node_toml("ko1", "ko2", "alice", p1, p2);
  std::ofstream(b) << node_toml("ko2", "ko1", "bob", p2, p1);

  pid_t alice = start_node(a, dir / "ko1.log");
  pid_t bob = start_node(b, dir / "ko2.log");
  ASSERT_TRUE(wait_committed(a, b, 2, 180s)) << "no two committed rounds; logs in " << dir;

  // SIGKILL the alice end mid-run; restart it from its store; both ends move on.
  ASSERT_EQ(::kill(alice, SIGKILL), 0);
  ::waitpid(alice, nullptr, 0);
  const long before = std::max(committed(b), 2L);
  alice = start_node(a, dir / "ko1.log");
  EXPECT_TRUE(wait_committed(a, b, before + 1, 180s)) << "no progress after the restart; logs in " << dir;

  // Graceful stop: exit 0 within a few seconds.
  ::kill(alice, SIGTERM);
  ::kill(bob, SIGTERM);
  EXPECT_EQ(wait_exit(alice, 10s), 0) << "logs in " << dir;
  EXPECT_EQ(wait_exit(bob, 10s), 0) << "logs in " << dir;

  // Same pools: Alice releases a round only once Bob committed it, so Bob may be one round ahead;
  // everything both hold is identical, byte for byte, in the same order.
  for (auto d : {storage::direction::forward, storage::direction::reverse}) {
    std::uint64_t bits_a = 0, bits_b = 0;
    const auto ka = pool_bytes(dir, "ko1", d, &bits_a);
    const auto kb = pool_bytes(dir, "ko2", d, &bits_b);
    const std::size_t common = std::min(ka.size(), kb.size());
    EXPECT_GT(common, 0u);
    EXPECT_TRUE(std::equal(ka.begin(), ka.begin() + static_cast<long>(common), kb.begin()));
    std::printf("pool %s: ko1 %llu bits, ko2 %llu bits\n", d == storage::direction::forward ? "forward" : "reverse",
                static_cast<unsigned long long>(bits_a), static_cast<unsigned long long>(bits_b));
  }
  if (!HasFailure()) fs::remove_all(dir);
}

}  // namespace
