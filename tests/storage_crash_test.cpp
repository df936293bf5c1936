// Crash harness for the key store: a forked child opens two stores (the two ends of one link,
// fed identical blocks) and appends, takes and delivers under load, reporting every operation to
// the parent through a pipe *after* the call returned (the acknowledgement a client or peer
// would get). The parent SIGKILLs it at a random moment and starts the next child, which first
// verifies the recovered stores against everything acknowledged so far (it inherits the
// parent's record through fork), then brings the two ends back in step and works on.
//
// Checked after every kill: no acknowledged append or take is lost or undone, no byte is taken
// twice (takes start where the acknowledged ones ended, bytes match what was appended there),
// no key ID is delivered twice to the master or to the slave, every acknowledged key is still
// there in its acknowledged state (or one step further), both ends agree. At the end the
// database files are scanned for the plaintext of every key. CVQKD_CRASH_KILLS sets the number
// of kills (default 200; the long mode is 10000).
//
// This binary holds only this test: RocksDB must never be opened in the parent process, since
// its background threads would not survive into the forked children.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <random>
#include <set>
#include <string>
#include <thread>

#include "storage/key_store.hpp"
#include "storage_test_support.hpp"
#include "test_seed.hpp"

using namespace cvqkd;
using namespace cvqkd::storage;
using namespace std::chrono_literals;

namespace {

constexpr std::size_t block = 96;     // bytes per link block
constexpr std::uint64_t max_take = 88;  // bytes per take, at most
const pool_id link{"link-ab", direction::forward};

struct msg {
  char type = 0;          // see the handlers in parent_apply
  std::uint8_t end = 0;   // 0 = end A, 1 = end B
  std::uint8_t status = 0;
  std::uint64_t a = 0, b = 0;  // append: seq; take: start, end (global byte positions); head: position, next seq
  std::uint64_t hash = 0;
  std::array<std::uint8_t, 16> id{};
  char text[240] = {};
};
static_assert(sizeof(msg) < PIPE_BUF, "messages must be written atomically");

// What the parent knows from acknowledgements. Each child gets a copy at fork.
struct ack_log {
  std::uint64_t seed = 0;
  std::array<std::uint64_t, 2> appended{0, 0};  // highest acknowledged appended seq per end
  std::array<std::uint64_t, 2> taken{0, 0};     // global position one past the last acknowledged take
  std::set<key_id> intended, master_delivered, slave_delivered;
  std::map<key_id, char> pending;  // 'p': put acknowledged, 'm': master delivery acknowledged
  std::uint64_t take_acks = 0, append_acks = 0;
} log_;

std::vector<std::byte> block_bytes(std::uint64_t s) {
  std::vector<std::byte> b(block);
  for (std::size_t i = 0; i < block; ++i) b[i] = test_support::stream_byte(log_.seed, (s - 1) * block + i);
  return b;
}

std::uint64_t stream_hash(std::uint64_t from, std::uint64_t to) {
  std::vector<std::byte> b;
  for (std::uint64_t g = from; g < to; ++g) b.push_back(test_support::stream_byte(log_.seed, g));
  return test_support::fnv64(b);
}

std::vector<std::byte> material_of(const key_id& id) {
  std::uint64_t lo, hi;
  std::memcpy(&lo, id.bytes.data(), 8);
  std::memcpy(&hi, id.bytes.data() + 8, 8);
  std::vector<std::byte> m(32);
  for (std::size_t i = 0; i < 4; ++i) {
    const std::uint64_t w = test_support::splitmix(log_.seed ^ lo ^ test_support::splitmix(hi + i));
    std::memcpy(m.data() + 8 * i, &w, 8);
  }
  return m;
}

std::uint64_t position(const pool_position& p) { return (p.seq - 1) * block + p.offset; }

// ------------------------------------------------------------------------------------------
// The child

[[noreturn]] void child_fail(int fd, const std::string& what) {
  msg m;
  m.type = 'F';
  std::snprintf(m.text, sizeof m.text, "%s", what.c_str());
  (void)!::write(fd, &m, sizeof m);
  ::_exit(3);
}

void send(int fd, const msg& m) {
  if (::write(fd, &m, sizeof m) != static_cast<ssize_t>(sizeof m)) ::_exit(4);
}

struct child {
  int fd;
  std::array<std::unique_ptr<key_store>, 2> end;
  std::uint64_t next_seq = 1;

  template <class T>
  T must(expected<T> r, const char* what) {
    if (!r) child_fail(fd, std::string(what) + ": " + to_string(r.error()));
    return std::move(*r);
  }
  void must(expected<void> r, const char* what) {
    if (!r) child_fail(fd, std::string(what) + ": " + to_string(r.error()));
  }
  void check(bool ok, const std::string& what) {
    if (!ok) child_fail(fd, what);
  }

  void ack_append(int x, std::uint64_t s, append_status st) {
    msg m;
    m.type = 'a';
    m.end = static_cast<std::uint8_t>(x);
    m.a = s;
    m.status = static_cast<std::uint8_t>(st);
    send(fd, m);
  }
  void take(int x, std::uint64_t n) {
    auto t = must(end[static_cast<std::size_t>(x)]->take(link, 8 * n), "take");
    msg m;
    m.type = 't';
    m.end = static_cast<std::uint8_t>(x);
    m.a = position(t.start);
    m.b = position(t.end);
    m.hash = test_support::fnv64(t.bytes.bytes());
    send(fd, m);
  }
  void ack_key(char type, const key_id& id, std::span<const std::byte> material) {
    msg m;
    m.type = type;
    m.id = id.bytes;
    m.hash = material.empty() ? 0 : test_support::fnv64(material);
    send(fd, m);
  }
  void deliver_slave(const key_id& id) {
    const std::array ids{id};
    auto d = must(end[0]->deliver_to_slave("sae-b", "sae-a", ids), "deliver_to_slave");
    check(d.refused == refusal::none, "dec_keys refused for " + id.to_string() + ": " + d.reason);
    ack_key('s', id, d.keys.at(0).material.bytes());
  }

  // Opens both ends at once (recovery is mostly waiting for fsync).
  void open(const std::filesystem::path& root) {
    std::array<std::optional<expected<std::unique_ptr<key_store>>>, 2> opened;
    const auto open_end = [&](int x) {
      store_options o;
      o.directory = root / (x == 0 ? "a" : "b");
      o.kek_file = root / "kek";
      o.node_id = x == 0 ? "node-a" : "node-b";
      o.compact_after_deletes = 512;  // exercise the range compactions under kills too
      opened[static_cast<std::size_t>(x)] = key_store::open(o);
    };
    std::thread other(open_end, 1);
    open_end(0);
    other.join();
    for (std::size_t x = 0; x < 2; ++x) end[x] = must(std::move(*opened[x]), "open");
  }

  // Checks the recovered stores against the acknowledged record, then brings both ends in step.
  void verify_and_resync() {
    std::array<std::uint64_t, 2> next{}, head{};
    for (int x = 0; x < 2; ++x) {
      const auto st = must(end[static_cast<std::size_t>(x)]->status(link), "status");
      const std::string who = x == 0 ? "end A" : "end B";
      next[static_cast<std::size_t>(x)] = st.next_seq.value_or(1);
      const auto n = next[static_cast<std::size_t>(x)];
      const auto acked = log_.appended[static_cast<std::size_t>(x)];
      check(n >= acked + 1, who + ": acknowledged block " + std::to_string(acked) + " lost (next seq " + std::to_string(n) + ")");
      check(n <= acked + 2, who + ": next seq " + std::to_string(n) + " beyond the one unacknowledged append after " +
                              std::to_string(acked));
      const std::uint64_t h = st.head ? position(*st.head) : (n - 1) * block;
      head[static_cast<std::size_t>(x)] = h;
      const auto taken = log_.taken[static_cast<std::size_t>(x)];
      check(h >= taken, who + ": head " + std::to_string(h) + " is before the acknowledged takes' end " + std::to_string(taken) +
                          " — bytes would be served twice");
      check(h <= taken + max_take, who + ": head " + std::to_string(h) + " beyond one unacknowledged take after " +
                                     std::to_string(taken));
      check(st.available_bits == ((n - 1) * block - h) * 8, who + ": available bits do not match head and high-water mark");
      msg m;
      m.type = 'h';
      m.end = static_cast<std::uint8_t>(x);
      m.a = h;
      m.b = n;
      send(fd, m);
    }
    // Re-import the last blocks at both ends: idempotent where present, appended where missing.
    const std::uint64_t lo = std::min(next[0], next[1]), hi = std::max(next[0], next[1]);
    for (std::uint64_t s = lo > 3 ? lo - 2 : 1; s < hi; ++s) {
      const auto b = block_bytes(s);
      for (int x = 0; x < 2; ++x) {
        const auto r = must(end[static_cast<std::size_t>(x)]->append_block(link, s, b), "re-append");
        const bool had = s < next[static_cast<std::size_t>(x)];
        check(had ? r != append_status::appended : r == append_status::appended,
              "re-append of block " + std::to_string(s) + " gave status " + std::to_string(static_cast<int>(r)));
        ack_append(x, s, r);
      }
    }
    next_seq = hi;
    if (head[0] != head[1]) {
      const int lag = head[0] < head[1] ? 0 : 1;
      take(lag, head[1 - lag] - head[lag]);
    }
    const auto a = must(end[0]->status(link), "status"), b = must(end[1]->status(link), "status");
    check(a.available_bits == b.available_bits && a.head == b.head && a.next_seq == b.next_seq,
          "the two ends of the link disagree after resynchronisation");

    // End-to-end keys: every acknowledged key is there, in its acknowledged state or one further.
    for (const auto& [id, st] : std::map<key_id, char>(log_.pending)) {
      const auto info = must(end[0]->info(id), "info");
      if (st == 'p') {
        check(info.has_value(), "acknowledged key " + id.to_string() + " lost");
        if (info->state == key_state::master_delivered) {  // delivered, but the master never heard
          ack_key('r', id, {});
          deliver_slave(id);
        } else {
          check(info->state == key_state::ready, "key " + id.to_string() + " in state " + std::string(to_string(info->state)));
        }
      } else if (info.has_value()) {
        check(info->state == key_state::master_delivered,
              "key " + id.to_string() + " went back to " + std::string(to_string(info->state)));
        deliver_slave(id);
      } else {
        ack_key('g', id, {});  // the slave's delivery committed, its acknowledgement was lost
      }
    }
    int probes = 0;
    for (const auto& id : log_.slave_delivered) {
      if (++probes > 3) break;
      check(!must(end[0]->info(id), "info").has_value(), "delivered key " + id.to_string() + " is back");
      key_spec k;
      k.id = id;
      k.master_sae = "sae-a";
      k.slave_saes = {"sae-b"};
      k.ttl = 3600s;
      const auto r = must(end[0]->put_key(k, material_of(id)), "re-put");
      check(r.status == put_status::already_erased, "a delivered key could be stored again: " + id.to_string());
    }
    send(fd, msg{.type = 'V'});
  }

  void step(std::uint64_t i) {
    const auto b = block_bytes(next_seq);
    for (int x = 0; x < 2; ++x) {
      const auto r = must(end[static_cast<std::size_t>(x)]->append_block(link, next_seq, b), "append");
      check(r == append_status::appended, "append of block " + std::to_string(next_seq) + " not appended");
      ack_append(x, next_seq, r);
    }
    ++next_seq;
    for (std::uint64_t j = 0; j < 2; ++j) {
      const std::uint64_t n = 8 + ((i * 7 + j * 3) % 11) * 8;
      if (must(end[0]->status(link), "status").available_bits < 8 * n) continue;
      take(0, n);
      take(1, n);
    }
    for (int k = 0; k < (i % 8 == 0 ? 2 : 1); ++k) {
      key_spec spec;
      spec.id = must(key_id::generate(), "uuid");
      spec.master_sae = "sae-a";
      spec.slave_saes = {"sae-b"};
      spec.route = {"node-a", "node-b"};
      spec.ttl = 3600s;
      ack_key('i', *spec.id, {});
      const auto mat = material_of(*spec.id);
      const auto r = must(end[0]->put_key(spec, mat), "put_key");
      check(r.status == put_status::stored, "put_key did not store " + spec.id->to_string());
      ack_key('p', *spec.id, mat);
    }
    const std::size_t want = std::min<std::size_t>(i % 8 == 4 ? 2 : 1, end[0]->status("sae-a", "sae-b").ready);
    if (want == 0) return;
    auto d = must(end[0]->deliver_to_master("sae-a", "sae-b", want), "deliver_to_master");
    check(d.refused == refusal::none, "enc_keys refused: " + d.reason);
    for (const auto& k : d.keys) ack_key('m', k.id, k.material.bytes());
    for (const auto& k : d.keys) deliver_slave(k.id);
  }

  void drain() {
    while (auto ready = end[0]->status("sae-a", "sae-b").ready) {
      auto d = must(end[0]->deliver_to_master("sae-a", "sae-b", ready), "deliver_to_master");
      check(d.refused == refusal::none, "enc_keys refused: " + d.reason);
      for (const auto& k : d.keys) ack_key('m', k.id, k.material.bytes());
      for (const auto& k : d.keys) deliver_slave(k.id);
    }
    while (const auto avail = must(end[0]->status(link), "status").available_bits / 8) {
      const auto n = std::min<std::uint64_t>(avail, max_take);
      take(0, n);
      take(1, n);
    }
    check(must(end[1]->status(link), "status").available_bits == 0, "end B holds bytes end A does not");
  }
};

int child_main(int fd, const std::filesystem::path& root, bool final_round) {
  child c{fd, {}, 1};
  c.open(root);
  c.verify_and_resync();
  if (final_round) {
    c.drain();
    c.end[0].reset();
    c.end[1].reset();
    send(fd, msg{.type = 'E'});
    return 0;
  }
  for (std::uint64_t i = 0;; ++i) c.step(i);
}

// ------------------------------------------------------------------------------------------
// The parent

struct round_result {
  bool ok = true;
  bool verified = false;
  bool ended = false;
  std::string failure;
};

void parent_apply(const msg& m, round_result& r) {
  const auto bad = [&](std::string what) {
    if (r.ok) r.failure = std::move(what);
    r.ok = false;
  };
  key_id id;
  id.bytes = m.id;
  const std::size_t x = m.end;
  switch (m.type) {
    case 'F': bad(std::string("child: ") + m.text); break;
    case 'V': r.verified = true; break;
    case 'E': r.ended = true; break;
    case 'h':  // observed after a restart (checked by the child): the new baseline
      log_.taken[x] = m.a;
      log_.appended[x] = std::max(log_.appended[x], m.b - 1);
      break;
    case 'a':
      ++log_.append_acks;
      log_.appended[x] = std::max(log_.appended[x], m.a);
      break;
    case 't':
      ++log_.take_acks;
      if (m.a < log_.taken[x]) bad("bytes " + std::to_string(m.a) + ".. taken twice at end " + std::to_string(x));
      if (m.a > log_.taken[x] + max_take) bad("a take skipped more than one unacknowledged take");
      if (m.b <= m.a || m.hash != stream_hash(m.a, m.b)) bad("taken bytes differ from the appended bytes at their position");
      log_.taken[x] = m.b;
      break;
    case 'i': log_.intended.insert(id); break;
    case 'p':
      if (m.hash != test_support::fnv64(material_of(id))) bad("put material mismatch");
      log_.pending[id] = 'p';
      break;
    case 'r':
      if (log_.pending.count(id) == 0 || log_.pending[id] != 'p') bad("recovered master delivery of an unknown key");
      [[fallthrough]];
    case 'm':
      if (log_.intended.count(id) == 0) bad("the master got a key that was never stored: " + id.to_string());
      if (!log_.master_delivered.insert(id).second) bad("key " + id.to_string() + " delivered to the master twice");
      if (m.type == 'm' && m.hash != test_support::fnv64(material_of(id))) bad("master got wrong material");
      log_.pending[id] = 'm';
      break;
    case 'g':
    case 's':
      if (log_.master_delivered.count(id) == 0) bad("the slave got a key before the master: " + id.to_string());
      if (!log_.slave_delivered.insert(id).second) bad("key " + id.to_string() + " delivered to the slave twice");
      if (m.type == 's' && m.hash != test_support::fnv64(material_of(id))) bad("slave got wrong material");
      log_.pending.erase(id);
      break;
    default: bad(std::string("unknown message ") + m.type);
  }
}

// One child: returns its result; kills it at a random moment unless this is the final round.
round_result run_round(const std::filesystem::path& root, bool final_round, std::mt19937_64& rng, int& early_kills) {
  round_result r;
  int fds[2];
  if (::pipe(fds) != 0) return {false, false, false, "pipe failed"};
  const pid_t pid = ::fork();
  if (pid < 0) return {false, false, false, "fork failed"};
  if (pid == 0) {
    ::close(fds[0]);
    ::_exit(child_main(fds[1], root, final_round));
  }
  ::close(fds[1]);
  using clk = std::chrono::steady_clock;
  const auto start = clk::now();
  std::optional<clk::time_point> deadline;
  // A quarter of the kills land at a random time after the fork (during open, recovery or the
  // verification, or later); the others after a random number (0..30) of acknowledgements
  // following the verification, plus a random 0..3 ms so that they also hit the gap between a
  // commit and its acknowledgement. Counting acknowledgements keeps the work per kill
  // independent of how fast this machine's fsync is.
  const bool early = !final_round && rng() % 4 == 0;
  const std::uint64_t acks_before_kill = rng() % 31;
  std::uint64_t acks_after_verify = 0;
  std::uniform_int_distribution<int> us(0, 3'000);
  if (early) deadline = start + std::chrono::microseconds(std::uniform_int_distribution<int>(0, 100'000)(rng));
  bool killed = false;
  std::string buf;
  for (;;) {
    int timeout_ms = 60'000;
    if (deadline && !killed) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(*deadline - clk::now()).count();
      timeout_ms = static_cast<int>(std::max<long>(0, left));
    }
    pollfd p{fds[0], POLLIN, 0};
    const int n = ::poll(&p, 1, timeout_ms);
    if (n == 0 && !killed) {
      if (!deadline || clk::now() >= *deadline) {
        if (!deadline) r = {false, r.verified, false, "the child hung for 60 s"};
        ::kill(pid, SIGKILL);
        killed = true;
      }
      continue;
    }
    char tmp[8192];
    const ssize_t got = ::read(fds[0], tmp, sizeof tmp);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) break;
    buf.append(tmp, static_cast<std::size_t>(got));
    while (buf.size() >= sizeof(msg)) {
      msg m;
      std::memcpy(&m, buf.data(), sizeof m);
      buf.erase(0, sizeof m);
      const bool was_verified = r.verified;
      parent_apply(m, r);
      if (was_verified && !final_round && !early && !deadline && ++acks_after_verify >= acks_before_kill)
        deadline = clk::now() + std::chrono::microseconds(us(rng));
      if (!was_verified && r.verified && !final_round && !early && acks_before_kill == 0)
        deadline = clk::now() + std::chrono::microseconds(us(rng));
    }
    if (deadline && !killed && clk::now() >= *deadline) {
      ::kill(pid, SIGKILL);
      killed = true;
    }
  }
  ::close(fds[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (killed && early && !r.verified) ++early_kills;
  if (!killed && r.ok && !(final_round && r.ended && WIFEXITED(status) && WEXITSTATUS(status) == 0))
    r = {false, r.verified, r.ended, "the child exited on its own (status " + std::to_string(status) + ")"};
  return r;
}

}  // namespace

TEST(storage_crash, acknowledged_state_survives_sigkill) {
  const char* env = std::getenv("CVQKD_CRASH_KILLS");
  const int kills = env != nullptr && *env != '\0' ? std::atoi(env) : 200;
  ASSERT_GT(kills, 0);
  log_.seed = test_support::base_seed();
  SCOPED_TRACE(test_support::seed_note(log_.seed));
  std::mt19937_64 rng(log_.seed);
  test_support::temp_dir dir;
  ASSERT_TRUE(create_kek_file(dir.path() / "kek").has_value());
  const auto t0 = std::chrono::steady_clock::now();
  int early_kills = 0;
  for (int round = 0; round <= kills; ++round) {
    const auto r = run_round(dir.path(), round == kills, rng, early_kills);
    ASSERT_TRUE(r.ok) << "round " << round << " of " << kills << ": " << r.failure;
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("[ crash    ] %d kills (%d before recovery finished) in %.1f s: %llu appends, %llu takes, "
              "%zu keys delivered to master and slave\n",
              kills, early_kills, secs, static_cast<unsigned long long>(log_.append_acks),
              static_cast<unsigned long long>(log_.take_acks), log_.slave_delivered.size());
  EXPECT_TRUE(log_.pending.empty()) << "the final round left keys undelivered";
  EXPECT_EQ(log_.master_delivered, log_.slave_delivered);
  EXPECT_GE(log_.slave_delivered.size(), static_cast<std::size_t>(kills) / 2) << "too little work between kills";
  EXPECT_GE(log_.taken[0], 8u * static_cast<std::size_t>(kills));
  EXPECT_EQ(log_.taken[0], log_.taken[1]);

  // No plaintext of any key (delivered or not) in any file of either database.
  std::vector<std::string> needles;
  for (const auto& id : log_.intended) {
    const auto m = material_of(id);
    needles.emplace_back(reinterpret_cast<const char*>(m.data()), m.size());
  }
  for (const char* end : {"a", "b"}) {
    const auto found = test_support::scan_for(dir.path() / end, needles);
    EXPECT_TRUE(found.empty()) << found.size() << " plaintext keys found, e.g. in " << found.front().second;
  }
}
