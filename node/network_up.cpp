// The launcher of `cvqkd network up`: one `cvqkd node` process per site, supervised like a service
// manager would (restart after a delay), status polled through `cvqkd node status --json`
// subprocesses (a crash or hang of a status request cannot take the launcher down), and a live link
// table.
#include "node/network.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstring>
#include <deque>
#include <map>
#include <optional>
#include <ostream>
#include <thread>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/spdlog.h>

#include <future>

#include "node/inproc.hpp"
#include "node/services.hpp"

extern char** environ;

namespace cvqkd::network {

namespace {

namespace fs = std::filesystem;
using steady = std::chrono::steady_clock;

volatile std::sig_atomic_t stop_signal = 0;
extern "C" void on_stop_signal(int sig) { stop_signal = sig; }

double seconds_between(steady::time_point a, steady::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

// Starts `argv` with posix_spawn: stdin from /dev/null, stdout/stderr onto the given descriptors,
// its own process group (a terminal's Ctrl-C reaches only the launcher, which stops the nodes in
// order), default signal dispositions and an empty signal mask.
expected<pid_t> spawn(const std::vector<std::string>& argv, int out_fd, int err_fd) {
  posix_spawn_file_actions_t fa;
  posix_spawnattr_t attr;
  posix_spawn_file_actions_init(&fa);
  posix_spawnattr_init(&attr);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&fa, out_fd, 1);
  posix_spawn_file_actions_adddup2(&fa, err_fd, 2);
  sigset_t none, defaults;
  sigemptyset(&none);
  sigemptyset(&defaults);
  for (int s : {SIGINT, SIGTERM, SIGPIPE, SIGCHLD, SIGHUP}) sigaddset(&defaults, s);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  posix_spawnattr_setpgroup(&attr, 0);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = -1;
  const int rc = ::posix_spawn(&pid, argv[0].c_str(), &fa, &attr, args.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  if (rc != 0)
    return fail(errc::io_error, fmt::format("cannot start {}: {}; check that the cvqkd binary exists and is executable",
                                            argv[0], std::strerror(rc)));
  return pid;
}

std::string describe_exit(int status) {
  if (WIFEXITED(status)) return fmt::format("exit code {}", WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return fmt::format("signal {} ({})", WTERMSIG(status), ::strsignal(WTERMSIG(status)));
  return "stopped";
}

// A counter reported by a process that may restart (and so start again from zero): the total over
// every life of it.
struct restartable_counter {
  std::uint64_t base = 0, current = 0;
  void observe(std::uint64_t v) {
    if (v < current) base += current;
    current = v;
  }
  void process_restarted() {
    base += current;
    current = 0;
  }
  std::uint64_t total() const { return base + current; }
};

// One link end as its node reported it (the JSON of `cvqkd node status --json`).
struct end_status {
  std::string health, reason, engine_state, last_error;
  std::uint64_t round = 0, committed_round = 0, symbols_done = 0, block_symbols = 0, pool_bits = 0;
  std::uint64_t key_bits_committed = 0, rounds_completed = 0, rounds_aborted = 0;  // since the link's engine started
  bool has_last_round = false;
  std::string last_outcome;  // done | aborted
  std::uint64_t last_key_bits = 0;
  double beta = 0, xi_hat = 0;
};

// The last round of a link end that ended with key ("done"): what the rates are computed from
// (an aborted round says nothing about the rate the link makes).
struct key_round {
  std::uint64_t key_bits = 0, block_symbols = 0;
  double beta = 0, xi_hat = 0;
};

struct end_counters {
  restartable_counter key_bits, rounds, aborted;
};

struct node_proc {
  const generated_node* g = nullptr;
  pid_t pid = -1;
  steady::time_point started;
  unsigned restarts = 0;
  std::optional<steady::time_point> restart_at;
  bool answered = false;            // the last status poll got an answer
  std::string status_error;         // why not
  std::map<std::string, end_status> links;
  std::map<std::string, end_counters> counters;
  std::map<std::string, key_round> key_rounds;
};

// One `cvqkd node status --json` subprocess.
struct status_poll {
  std::size_t node = 0;
  pid_t pid = -1;
  int out_fd = -1, err_fd = -1;
  std::string out, err;
  steady::time_point started;
  std::optional<int> status;  // set once reaped
};

void drain(int& fd, std::string& into) {
  if (fd < 0) return;
  char buf[8192];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n > 0) {
      into.append(buf, static_cast<std::size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    ::close(fd);  // end of file or error
    fd = -1;
    return;
  }
}

std::optional<std::map<std::string, end_status>> parse_status(const std::string& text) {
  try {
    const auto j = nlohmann::json::parse(text);
    std::map<std::string, end_status> m;
    for (const auto& l : j.at("links")) {
      end_status e;
      e.health = l.value("health", "");
      e.reason = l.value("reason", "");
      e.engine_state = l.value("engine_state", "");
      e.last_error = l.value("last_error", "");
      e.round = l.value("round", std::uint64_t{0});
      e.committed_round = l.value("committed_round", std::uint64_t{0});
      e.symbols_done = l.value("symbols_done", std::uint64_t{0});
      e.block_symbols = l.value("block_symbols", std::uint64_t{0});
      e.pool_bits = l.value("pool_bits", std::uint64_t{0});
      e.key_bits_committed = l.value("key_bits_committed", std::uint64_t{0});
      e.rounds_completed = l.value("rounds_completed", std::uint64_t{0});
      e.rounds_aborted = l.value("rounds_aborted", std::uint64_t{0});
      if (const auto lr = l.find("last_round"); lr != l.end() && lr->is_object()) {
        e.has_last_round = true;
        e.last_outcome = lr->value("outcome", "");
        e.last_key_bits = lr->value("key_bits", std::uint64_t{0});
        e.beta = lr->value("beta", 0.0);
        e.xi_hat = lr->value("xi_hat", 0.0);
      }
      m[l.at("link_id").get<std::string>()] = std::move(e);
    }
    return m;
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

// 1234567 -> "1.23 M"; for bit counts and rates.
std::string si(double v) {
  if (!std::isfinite(v)) return "-";
  const char* units[] = {"", "k", "M", "G", "T"};
  int u = 0;
  while (std::abs(v) >= 1000 && u < 4) {
    v /= 1000;
    ++u;
  }
  if (u == 0) return fmt::format("{:.0f}", v);
  return fmt::format("{:.{}f}{}", v, v < 10 ? 2 : (v < 100 ? 1 : 0), units[u]);
}

std::string duration_text(double s) {
  if (!std::isfinite(s) || s < 0 || s > 1e9) return "-";
  const auto t = static_cast<std::uint64_t>(std::llround(s));
  if (t < 90) return fmt::format("{}s", t);
  if (t < 5400) return fmt::format("{}m{:02}s", t / 60, t % 60);
  const auto m = (t + 30) / 60;
  return fmt::format("{}h{:02}m", m / 60, m % 60);
}

// Block progress of a link's round in progress, for the estimated time to its first key.
struct progress_tracker {
  std::optional<steady::time_point> t;
  std::uint64_t round = 0, symbols = 0;
  double rate = 0;  // symbols per second (smoothed)
  void observe(steady::time_point now, std::uint64_t r, std::uint64_t s) {
    if (t && r == round && s > symbols) {
      const double dt = seconds_between(*t, now);
      if (dt > 0) {
        const double inst = static_cast<double>(s - symbols) / dt;
        rate = rate > 0 ? 0.5 * rate + 0.5 * inst : inst;
      }
    }
    if (!t || r != round || s != symbols) {
      t = now;
      round = r;
      symbols = s;
    }
  }
};

class launcher {
public:
  launcher(const config::topology& topo, const up_options& opts, generated_network net)
      : topo_(topo), opts_(opts), out_(*opts.out), net_(std::move(net)) {
    for (const auto& g : net_.nodes) {
      node_proc n;
      n.g = &g;
      nodes_.push_back(std::move(n));
    }
    progress_.resize(topo_.links.size());
    printed_.resize(topo_.links.size());
    for (const auto& l : topo_.links) {
      link_w_ = std::max(link_w_, l.id.size());
      ends_w_ = std::max(ends_w_, l.a.size() + l.b.size() + 2);
    }
  }

  expected<up_summary> run() {
    start_ = steady::now();
    print_header();
    if (opts_.in_process) {
      auto started = in_process_network::start(net_);
      if (!started) return std::unexpected(started.error());
      inproc_ = std::move(*started);
      for (auto& n : nodes_) {
        n.pid = ::getpid();  // "running"; never signalled or reaped in this mode
        n.started = steady::now();
      }
      event(fmt::format("{} nodes started in this process in {:.1f} s", nodes_.size(),
                        seconds_between(start_, steady::now())));
    } else {
      for (std::size_t i = 0; i < nodes_.size(); ++i)
        if (auto ok = start_node(i); !ok) {
          stop_all();
          return std::unexpected(ok.error());
        }
    }
    steady::time_point next_poll = steady::now() + std::chrono::milliseconds(500);
    for (;;) {
      const auto now = steady::now();
      if (stop_signal != 0) {
        event(fmt::format("{} received: stopping the network", stop_signal == SIGINT ? "SIGINT" : "SIGTERM"));
        break;
      }
      if (opts_.run_seconds > 0 && seconds_between(start_, now) >= opts_.run_seconds) {
        event(fmt::format("--for {}: time is up, stopping the network", opts_.run_seconds));
        break;
      }
      supervise(now);
      if (!polls_pending() && now >= next_poll) {
        start_polls();
        next_poll = now + std::chrono::duration_cast<steady::duration>(std::chrono::duration<double>(opts_.poll_interval_s));
      }
      if (polls_pending() && advance_polls(false)) render();
      wait_a_little();
    }
    // A last poll, so that the summary reflects the moment of stopping.
    for (auto& p : polls_) kill_poll(p);
    polls_.clear();
    if (inproc_poll_.valid()) inproc_poll_.wait();
    inproc_poll_ = {};
    start_polls();
    const auto deadline = steady::now() + std::chrono::duration_cast<steady::duration>(
                                            std::chrono::duration<double>(opts_.status_timeout_s));
    while (polls_pending() && steady::now() < deadline) {
      if (advance_polls(false)) break;
      wait_a_little();
    }
    if (polls_pending()) advance_polls(true);
    render();
    up_summary s = summary();
    stop_all();
    return s;
  }

private:
  // ---- nodes -------------------------------------------------------------------------------
  expected<void> start_node(std::size_t i) {
    auto& n = nodes_[i];
    const fs::path log = n.g->directory / "node.log";
    const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0)
      return fail(errc::io_error, fmt::format("cannot open {}: {}; check the directory's permissions", log.string(),
                                              std::strerror(errno)));
    auto pid = spawn({opts_.executable.string(), "node", "--config", n.g->config.string()}, fd, fd);
    ::close(fd);
    if (!pid) return std::unexpected(pid.error());
    n.pid = *pid;
    n.started = steady::now();
    n.restart_at.reset();
    for (auto& [id, c] : n.counters) {
      c.key_bits.process_restarted();
      c.rounds.process_restarted();
      c.aborted.process_restarted();
    }
    return {};
  }

  void supervise(steady::time_point now) {
    if (opts_.in_process) return;  // one process: nothing to reap or restart
    for (std::size_t i = 0; i < nodes_.size(); ++i) {
      auto& n = nodes_[i];
      if (n.pid > 0) {
        int st = 0;
        if (::waitpid(n.pid, &st, WNOHANG) == n.pid) {
          n.pid = -1;
          n.answered = false;
          n.links.clear();
          const std::string how = describe_exit(st);
          const double lived = seconds_between(n.started, now);
          if (opts_.restart) {
            n.restart_at = now + std::chrono::duration_cast<steady::duration>(
                                   std::chrono::duration<double>(opts_.restart_delay_s));
            event(fmt::format("node {} exited unexpectedly ({}) after {}; restarting it in {:.0f} s (see {})", n.g->id,
                              how, duration_text(lived), opts_.restart_delay_s,
                              (n.g->directory / "node.log").string()));
          } else {
            event(fmt::format("node {} exited unexpectedly ({}) after {}; not restarted (--no-restart; see {})",
                              n.g->id, how, duration_text(lived), (n.g->directory / "node.log").string()));
          }
        }
      } else if (n.restart_at && now >= *n.restart_at) {
        ++n.restarts;
        if (auto ok = start_node(i); !ok) {
          event(fmt::format("node {}: restart failed: {}; retrying in {:.0f} s", n.g->id, ok.error().message,
                            opts_.restart_delay_s));
          n.restart_at = now + std::chrono::duration_cast<steady::duration>(
                                 std::chrono::duration<double>(opts_.restart_delay_s));
        } else {
          event(fmt::format("node {} restarted (restart {}), pid {}", n.g->id, n.restarts, n.pid));
        }
      }
    }
  }

  // SIGTERM to every node, up to 10 s for them to stop, then SIGKILL. In-process: stop every node
  // (links first, then actors and stores, in parallel).
  void stop_all() {
    if (inproc_) {
      say(fmt::format("stopping: {} in-process node(s)", inproc_->size()));
      const double s = inproc_->stop();
      inproc_.reset();
      for (auto& n : nodes_) n.pid = -1;
      say(fmt::format("all nodes stopped in {:.1f} s", s));
      return;
    }
    std::size_t running = 0;
    for (auto& n : nodes_)
      if (n.pid > 0) {
        ::kill(n.pid, SIGTERM);
        ++running;
      }
    if (running == 0) return;
    say(fmt::format("stopping: SIGTERM sent to {} node(s), waiting up to 10 s", running));
    const auto t0 = steady::now();
    const auto deadline = t0 + std::chrono::seconds(10);
    while (steady::now() < deadline) {
      bool any = false;
      for (auto& n : nodes_) {
        if (n.pid <= 0) continue;
        int st = 0;
        if (::waitpid(n.pid, &st, WNOHANG) == n.pid) {
          if (!(WIFEXITED(st) && WEXITSTATUS(st) == 0))
            say(fmt::format("node {} stopped with {}", n.g->id, describe_exit(st)));
          n.pid = -1;
        } else {
          any = true;
        }
      }
      if (!any) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    std::size_t killed = 0;
    for (auto& n : nodes_)
      if (n.pid > 0) {
        ::kill(n.pid, SIGKILL);
        ::waitpid(n.pid, nullptr, 0);
        say(fmt::format("node {} did not stop within 10 s: killed (SIGKILL)", n.g->id));
        n.pid = -1;
        ++killed;
      }
    say(fmt::format("all nodes stopped in {:.1f} s{}", seconds_between(t0, steady::now()),
                    killed ? fmt::format(" ({} killed)", killed) : ""));
  }

  // ---- status polls ------------------------------------------------------------------------
  bool polls_pending() const { return !polls_.empty() || inproc_poll_.valid(); }

  void start_polls() {
    if (inproc_) {
      inproc_poll_ = std::async(std::launch::async, [n = inproc_.get(), t = opts_.status_timeout_s] {
        return n->status_all(std::chrono::milliseconds(static_cast<std::int64_t>(t * 1000)));
      });
      return;
    }
    for (std::size_t i = 0; i < nodes_.size(); ++i) {
      if (nodes_[i].pid <= 0) continue;
      int out[2], err[2];
      if (::pipe2(out, O_CLOEXEC) != 0) continue;
      if (::pipe2(err, O_CLOEXEC) != 0) {
        ::close(out[0]);
        ::close(out[1]);
        continue;
      }
      auto pid = spawn({opts_.executable.string(), "node", "status", "--config", nodes_[i].g->config.string(), "--json"},
                       out[1], err[1]);
      ::close(out[1]);
      ::close(err[1]);
      if (!pid) {
        ::close(out[0]);
        ::close(err[0]);
        nodes_[i].answered = false;
        nodes_[i].status_error = pid.error().message;
        continue;
      }
      ::fcntl(out[0], F_SETFL, O_NONBLOCK);
      ::fcntl(err[0], F_SETFL, O_NONBLOCK);
      status_poll p;
      p.node = i;
      p.pid = *pid;
      p.out_fd = out[0];
      p.err_fd = err[0];
      p.started = steady::now();
      polls_.push_back(std::move(p));
    }
  }

  void kill_poll(status_poll& p) {
    if (!p.status) {
      ::kill(p.pid, SIGKILL);
      int st = 0;
      ::waitpid(p.pid, &st, 0);
      p.status = st;
    }
    if (p.out_fd >= 0) ::close(p.out_fd);
    if (p.err_fd >= 0) ::close(p.err_fd);
    p.out_fd = p.err_fd = -1;
  }

  // Reads what the status subprocesses wrote; returns true when the whole round is in (then the
  // answers are applied). `give_up`: kill whatever is still running.
  bool advance_polls(bool give_up) {
    if (inproc_poll_.valid()) {
      // status_all answers within the status timeout, so waiting on give_up is bounded.
      if (!give_up && inproc_poll_.wait_for(std::chrono::seconds(0)) != std::future_status::ready) return false;
      auto all = inproc_poll_.get();
      inproc_poll_ = {};
      for (std::size_t i = 0; i < all.size() && i < nodes_.size(); ++i) {
        status_poll p;
        p.node = i;
        if (all[i]) {
          p.status = 0;  // as a status subprocess that exited 0
          p.out = node::to_json(*all[i]).dump();
        } else {
          p.status = 1 << 8;  // exit code 1
          p.err = all[i].error().message;
        }
        apply(p);
      }
      return true;
    }
    const auto now = steady::now();
    for (auto& p : polls_) {
      drain(p.out_fd, p.out);
      drain(p.err_fd, p.err);
      if (!p.status) {
        int st = 0;
        if (::waitpid(p.pid, &st, WNOHANG) == p.pid) {
          p.status = st;
        } else if (give_up || seconds_between(p.started, now) > opts_.status_timeout_s) {
          kill_poll(p);
          p.err = fmt::format("no answer within {:.0f} s", opts_.status_timeout_s);
        }
      }
      if (p.status && (p.out_fd >= 0 || p.err_fd >= 0)) {
        drain(p.out_fd, p.out);
        drain(p.err_fd, p.err);
      }
    }
    for (const auto& p : polls_)
      if (!p.status || p.out_fd >= 0 || p.err_fd >= 0) return false;
    for (auto& p : polls_) apply(p);
    polls_.clear();
    return true;
  }

  void apply(const status_poll& p) {
    auto& n = nodes_[p.node];
    if (n.pid <= 0) return;  // exited meanwhile: its answer is stale
    std::optional<std::map<std::string, end_status>> parsed;
    if (WIFEXITED(*p.status) && WEXITSTATUS(*p.status) == 0) parsed = parse_status(p.out);
    if (!parsed) {
      n.answered = false;
      std::string why = p.err;
      while (!why.empty() && (why.back() == '\n' || why.back() == '\r')) why.pop_back();
      if (const auto nl = why.rfind('\n'); nl != std::string::npos) why = why.substr(nl + 1);
      n.status_error = why.empty() ? "status request failed" : why;
      return;
    }
    n.answered = true;
    n.status_error.clear();
    n.links = std::move(*parsed);
    for (const auto& [id, e] : n.links) {
      auto& c = n.counters[id];
      c.key_bits.observe(e.key_bits_committed);
      c.rounds.observe(e.rounds_completed);
      c.aborted.observe(e.rounds_aborted);
      if (e.has_last_round && e.last_outcome == "done")
        n.key_rounds[id] = {e.last_key_bits, e.block_symbols, e.beta, e.xi_hat};
    }
  }

  // Waits up to 100 ms, or less when a status subprocess writes.
  void wait_a_little() {
    std::vector<pollfd> fds;
    for (const auto& p : polls_) {
      if (p.out_fd >= 0) fds.push_back({p.out_fd, POLLIN, 0});
      if (p.err_fd >= 0) fds.push_back({p.err_fd, POLLIN, 0});
    }
    if (fds.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    else ::poll(fds.data(), fds.size(), 100);
  }

  // ---- the link view -----------------------------------------------------------------------
  const end_status* end_of(const std::string& node_id, const std::string& link_id) const {
    for (const auto& n : nodes_)
      if (n.g->id == node_id && n.answered) {
        const auto it = n.links.find(link_id);
        return it == n.links.end() ? nullptr : &it->second;
      }
    return nullptr;
  }
  const node_proc& node(const std::string& id) const {
    for (const auto& n : nodes_)
      if (n.g->id == id) return n;
    return nodes_.front();
  }

  link_summary view(std::size_t li) const {
    const auto& l = topo_.links[li];
    link_summary s;
    s.id = l.id;
    s.a = l.a;
    s.b = l.b;
    const end_status* ea = end_of(l.a, l.id);
    const end_status* eb = end_of(l.b, l.id);
    const end_status* primary = ea ? ea : eb;
    if (primary == nullptr) {
      const auto& na = node(l.a);
      const auto& nb = node(l.b);
      s.state = (na.pid <= 0 || nb.pid <= 0) ? "node-down" : "unreachable";
      const auto& down = na.pid <= 0 || (!na.answered && nb.answered) ? na : nb;
      s.reason = down.pid <= 0 ? fmt::format("node {} not running", down.g->id)
                               : (down.status_error.empty() ? "no status yet" : down.status_error);
    } else {
      s.state = primary->health;
      if (ea && eb && ea->health != eb->health) s.state = ea->health + "/" + eb->health;
      if (!ea || !eb) {
        const auto& missing = node(ea ? l.b : l.a);
        s.reason = fmt::format("node {} {}", missing.g->id, missing.pid <= 0 ? "not running" : "not answering");
      }
      // The reason of an end that is not up (a node's last_error may be stale once it is up again).
      const end_status* noted = (ea && ea->health != "up") ? ea : ((eb && eb->health != "up") ? eb : primary);
      const std::string why = !noted->reason.empty() || noted->health == "up" ? noted->reason : noted->last_error;
      if (s.reason.empty()) s.reason = why;
      s.committed_round = ea && eb ? std::min(ea->committed_round, eb->committed_round) : primary->committed_round;
      s.pool_bits = primary->pool_bits;
    }
    for (const auto* who : {&l.a, &l.b}) {
      const auto& n = node(*who);
      const auto it = n.key_rounds.find(l.id);
      if (it == n.key_rounds.end()) continue;
      const auto& k = it->second;
      s.has_last_round = true;
      s.last_key_bits = k.key_bits;
      s.beta = k.beta;
      s.xi_hat = k.xi_hat;
      s.bits_per_symbol = static_cast<double>(k.key_bits) / static_cast<double>(k.block_symbols ? k.block_symbols : l.block_symbols);
      s.hardware_key_rate_bps = s.bits_per_symbol * l.profile.symbol_rate_baud;
      break;
    }
    // Counters of this run: Alice's end, else Bob's.
    for (const auto* who : {&l.a, &l.b}) {
      const auto& n = node(*who);
      const auto it = n.counters.find(l.id);
      if (it == n.counters.end()) continue;
      s.key_bits = it->second.key_bits.total();
      s.rounds_committed = it->second.rounds.total();
      s.rounds_aborted = it->second.aborted.total();
      break;
    }
    const double elapsed = seconds_between(start_, steady::now());
    s.simulated_key_rate_bps = elapsed > 0 ? static_cast<double>(s.key_bits) / elapsed : 0;
    return s;
  }

  up_summary summary() const {
    up_summary s;
    s.topology = topo_.name;
    s.seconds = seconds_between(start_, steady::now());
    for (const auto& n : nodes_) s.nodes.push_back({n.g->id, n.restarts, n.pid > 0});
    for (std::size_t i = 0; i < topo_.links.size(); ++i) s.links.push_back(view(i));
    return s;
  }

  // ---- output --------------------------------------------------------------------------------
  void say(const std::string& line) { out_ << line << '\n' << std::flush; }

  void event(const std::string& what) {
    const std::string line = fmt::format("[{:7.1f}s] {}", seconds_between(start_, steady::now()), what);
    if (opts_.tty) {
      events_.push_back(line);
      while (events_.size() > 6) events_.pop_front();
      redraw();
    } else {
      say(line);
    }
  }

  void print_header() {
    const auto& first = net_.nodes.front().listen.port;
    const auto last = net_.nodes.back().api_listen.port;
    say(fmt::format("cvqkd network up: {}", topo_.name));
    if (topo_.name.find("Tokyo QKD Network") != std::string::npos)
      say("  This is the Tokyo QKD Network of 2010 (NICT, JGN2plus field test; sites, lengths and losses as published),\n"
          "  re-equipped with simulated CV-QKD (GG02) hardware: the real network ran discrete-variable QKD.");
    else if (opts_.in_process)
      say("  Every link runs simulated CV-QKD (GG02) hardware; every site is a node inside this process (--in-process):\n"
          "  its own actor system, key store, ports and TLS.");
    else
      say("  Every link runs simulated CV-QKD (GG02) hardware; every site is a real `cvqkd node` process.");
    std::string hosts;
    for (const auto& n : net_.nodes)
      if (hosts.find(n.listen.host) == std::string::npos) hosts += (hosts.empty() ? "" : ", ") + n.listen.host;
    say(fmt::format("  {} nodes, {} links on {} ports {}-{}; directory {} (logs: {})", nodes_.size(),
                    topo_.links.size(), hosts, first, last, net_.directory.string(),
                    opts_.in_process ? "network.log" : "<NODE>/node.log"));
    for (const auto& n : net_.notes) say("  note: " + n);
    for (const auto& line : curl_example(topo_, net_)) say("  " + line);
    say("  LAST_KEY, BETA, XI_HAT: the last round that made key.  HW_RATE = key rate the hardware would give: that "
        "round's key bits per symbol x the profile's symbol rate");
    say("  SIM_RATE = key bits this simulation committed per wall-clock second (this CPU post-processes far slower "
        "than the hardware's symbol rate)");
    say("  ETA      = estimated time until the block in progress is complete (symbol acquisition at the current rate; "
        "post-processing follows)");
    if (opts_.run_seconds > 0) say(fmt::format("  running for {} s", opts_.run_seconds));
    else say("  Ctrl-C stops every node cleanly");
    say("");
  }

  std::vector<std::string> table_lines() {
    std::vector<std::string> lines;
    lines.push_back(fmt::format("{:<{}} {:<{}} {:<12} {:>5} {:>6} {:>5} {:>8} {:>9} {:>9} {:>5} {:>7} {:>10} {:>10} {:>7}  {}",
                                "LINK", link_w_, "ALICE>BOB", ends_w_, "STATE", "ROUND", "BLOCK", "COMMT", "KEY_BITS",
                                "POOL_BITS", "LAST_KEY", "BETA", "XI_HAT", "HW_RATE", "SIM_RATE", "ETA", "NOTE"));
    for (std::size_t i = 0; i < topo_.links.size(); ++i) lines.push_back(link_line(i));
    std::string ns = "nodes:";
    for (const auto& n : nodes_) {
      ns += fmt::format(" {} {}", n.g->id, n.pid > 0 ? "running" : (n.restart_at ? "restarting" : "exited"));
      if (n.restarts) ns += fmt::format(" ({} restart{})", n.restarts, n.restarts == 1 ? "" : "s");
      ns += ";";
    }
    ns.pop_back();
    lines.push_back(ns);
    return lines;
  }

  std::string link_line(std::size_t i) {
    const auto& l = topo_.links[i];
    const auto s = view(i);
    const end_status* p = end_of(l.a, l.id);
    if (!p) p = end_of(l.b, l.id);
    std::string round = "-", block = "-", eta = "-";
    if (p) {
      round = std::to_string(p->round);
      const double frac = p->block_symbols ? static_cast<double>(p->symbols_done) / static_cast<double>(p->block_symbols) : 0;
      block = fmt::format("{:.0f}%", 100 * frac);
      const auto& pr = progress_[i];
      if (s.key_bits == 0 && pr.rate > 0 && p->symbols_done < p->block_symbols)
        eta = "~" + duration_text(static_cast<double>(p->block_symbols - p->symbols_done) / pr.rate);
    }
    return fmt::format("{:<{}} {:<{}} {:<12} {:>5} {:>6} {:>5} {:>8} {:>9} {:>9} {:>5} {:>7} {:>10} {:>10} {:>7}  {}",
                       l.id, link_w_, l.a + ">" + l.b, ends_w_, s.state, round, block, s.committed_round,
                       si(static_cast<double>(s.key_bits)), si(static_cast<double>(s.pool_bits)),
                       s.has_last_round ? si(static_cast<double>(s.last_key_bits)) : "-",
                       s.has_last_round ? fmt::format("{:.3f}", s.beta) : "-",
                       s.has_last_round ? fmt::format("{:.4f}", s.xi_hat) : "-",
                       s.has_last_round ? si(s.hardware_key_rate_bps) + "b/s" : "-",
                       si(s.simulated_key_rate_bps) + "b/s", eta, s.reason);
  }

  void redraw() {
    auto lines = table_lines();
    for (const auto& e : events_) lines.push_back(e);
    std::string buf;
    if (drawn_ > 0) buf += fmt::format("\x1b[{}F", drawn_);  // to the start of the previous drawing
    for (const auto& l : lines) buf += l + "\x1b[K\n";
    buf += "\x1b[J";
    out_ << buf << std::flush;
    drawn_ = lines.size();
  }

  // After a complete poll round: counters, progress, and the display.
  void render() {
    const auto now = steady::now();
    for (std::size_t i = 0; i < topo_.links.size(); ++i) {
      const auto& l = topo_.links[i];
      const end_status* p = end_of(l.a, l.id);
      if (!p) p = end_of(l.b, l.id);
      if (p) progress_[i].observe(now, p->round, p->symbols_done);
    }
    if (opts_.tty) {
      redraw();
      return;
    }
    // One line per link whose state, round, committed round or block decile changed.
    const double t = seconds_between(start_, now);
    for (std::size_t i = 0; i < topo_.links.size(); ++i) {
      const auto& l = topo_.links[i];
      const auto s = view(i);
      const end_status* p = end_of(l.a, l.id);
      if (!p) p = end_of(l.b, l.id);
      const int decile = p && p->block_symbols ? static_cast<int>(10 * p->symbols_done / p->block_symbols) : -1;
      const std::string key = fmt::format("{}|{}|{}|{}|{}|{}", s.state, p ? p->round : 0, s.committed_round, decile,
                                          s.reason, s.key_bits);
      if (key == printed_[i]) continue;
      printed_[i] = key;
      std::string line = fmt::format("[{:7.1f}s] link {} ({}>{}) {}", t, l.id, l.a, l.b, s.state);
      if (p)
        line += fmt::format(" round {} block {:.0f}% committed {} key {} bits pool {} bits", p->round,
                            p->block_symbols ? 100.0 * static_cast<double>(p->symbols_done) / static_cast<double>(p->block_symbols) : 0.0,
                            s.committed_round, s.key_bits, s.pool_bits);
      if (s.has_last_round)
        line += fmt::format(" | last key round {} bits, beta {:.3f}, xi_hat {:.4f}, HW_RATE {}b/s, SIM_RATE {}b/s",
                            s.last_key_bits, s.beta, s.xi_hat, si(s.hardware_key_rate_bps), si(s.simulated_key_rate_bps));
      if (s.key_bits == 0 && p && progress_[i].rate > 0 && p->symbols_done < p->block_symbols)
        line += " | ETA ~" + duration_text(static_cast<double>(p->block_symbols - p->symbols_done) / progress_[i].rate);
      if (!s.reason.empty()) line += " | " + s.reason;
      say(line);
    }
  }

  const config::topology& topo_;
  const up_options& opts_;
  std::ostream& out_;
  generated_network net_;
  std::vector<node_proc> nodes_;
  std::vector<status_poll> polls_;
  std::unique_ptr<in_process_network> inproc_;
  std::future<std::vector<expected<actors::node_status>>> inproc_poll_;
  std::vector<progress_tracker> progress_;
  std::vector<std::string> printed_;
  std::deque<std::string> events_;
  std::size_t drawn_ = 0;
  std::size_t link_w_ = 4, ends_w_ = 9;
  steady::time_point start_;
};

}  // namespace

expected<up_summary> up(const config::topology& topo, const up_options& opts) {
  if (opts.out == nullptr) return fail(errc::invalid_argument, "network::up: no output stream given");
  if (topo.nodes.empty()) return fail(errc::config_error, "the topology has no nodes; add [[nodes]] entries");
  auto net = generate(topo, opts.dir, opts.base_port);
  if (!net) return std::unexpected(net.error());

  struct sigaction sa{}, old_int{}, old_term{};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;  // no SA_RESTART: a signal interrupts the waits
  stop_signal = 0;
  ::sigaction(SIGINT, &sa, &old_int);
  ::sigaction(SIGTERM, &sa, &old_term);
  // In-process, every node logs through spdlog's default logger: into <dir>/network.log, not
  // across the live table.
  std::shared_ptr<spdlog::logger> previous;
  if (opts.in_process) {
    try {
      auto sink = std::make_shared<spdlog::sinks::basic_file_sink_mt>((net->directory / "network.log").string());
      previous = spdlog::default_logger();
      auto logger = std::make_shared<spdlog::logger>("cvqkd", sink);
      logger->set_level(spdlog::level::info);
      logger->flush_on(spdlog::level::warn);
      spdlog::set_default_logger(logger);
    } catch (const spdlog::spdlog_ex& e) {
      return fail(errc::io_error, fmt::format("cannot open {}: {}; check the directory's permissions",
                                              (net->directory / "network.log").string(), e.what()));
    }
  }
  std::signal(SIGPIPE, SIG_IGN);
  launcher l(topo, opts, std::move(*net));
  auto result = l.run();
  ::sigaction(SIGINT, &old_int, nullptr);
  ::sigaction(SIGTERM, &old_term, nullptr);
  if (previous) spdlog::set_default_logger(previous);
  return result;
}

}  // namespace cvqkd::network
