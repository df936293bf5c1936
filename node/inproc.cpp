#include "node/inproc.hpp"

#include <pthread.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <thread>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "config/node_config.hpp"

namespace cvqkd::network {

namespace {

using steady = std::chrono::steady_clock;

// Runs f(i) for i in [0, n) on up to `threads` threads.
template <class F>
void parallel_for(std::size_t n, std::size_t threads, F&& f) {
  std::atomic<std::size_t> next{0};
  std::vector<std::thread> pool;
  const std::size_t k = std::min(n, std::max<std::size_t>(threads, 1));
  for (std::size_t t = 0; t < k; ++t)
    pool.emplace_back([&] {
      for (std::size_t i; (i = next.fetch_add(1)) < n;) f(i);
    });
  for (auto& th : pool) th.join();
}

// Blocks SIGINT and SIGTERM in this thread for its lifetime (threads started meanwhile inherit the
// mask), then restores the previous mask.
class signals_blocked {
public:
  signals_blocked() {
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, SIGINT);
    sigaddset(&s, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &s, &old_);
  }
  ~signals_blocked() { pthread_sigmask(SIG_SETMASK, &old_, nullptr); }
  signals_blocked(const signals_blocked&) = delete;
  signals_blocked& operator=(const signals_blocked&) = delete;

private:
  sigset_t old_;
};

}  // namespace

node::node_tuning in_process_tuning() {
  node::node_tuning t;
  t.scheduler_threads = 1;
  t.sharing_scheduler = true;
  t.middleman_workers = 1;
  t.api_handler_threads = 2;
  t.pid_file = false;
  return t;
}

expected<std::unique_ptr<in_process_network>> in_process_network::start(const generated_network& net,
                                                                         const node::node_tuning& tuning) {
  auto result = std::unique_ptr<in_process_network>(new in_process_network());
  const signals_blocked blocked;
  for (const auto& g : net.nodes) {
    auto c = config::load_node_config(g.config);
    if (!c) return std::unexpected(c.error());
    auto n = node::running_node::start(*c, tuning);
    if (!n)
      return fail(n.error().code, fmt::format("node {} (in-process) did not start: {}", g.id, n.error().message));
    result->nodes_.push_back(std::move(*n));
  }
  return result;
}

in_process_network::~in_process_network() { stop(); }

std::vector<expected<actors::node_status>> in_process_network::status_all(std::chrono::milliseconds timeout) {
  std::vector<expected<actors::node_status>> out(nodes_.size(), fail(errc::io_error, "no answer"));
  parallel_for(nodes_.size(), 16, [&](std::size_t i) { out[i] = nodes_[i]->status(timeout); });
  return out;
}

double in_process_network::stop() {
  if (nodes_.empty()) return 0;
  const auto t0 = steady::now();
  const signals_blocked blocked;
  // All links first, so that no link waits for a peer that is already gone.
  parallel_for(nodes_.size(), 32, [&](std::size_t i) { nodes_[i]->begin_stop(); });
  parallel_for(nodes_.size(), 32, [&](std::size_t i) { nodes_[i]->stop(); });
  nodes_.clear();
  const double s = std::chrono::duration<double>(steady::now() - t0).count();
  spdlog::info("in-process network: every node stopped in {:.1f} s", s);
  return s;
}

}  // namespace cvqkd::network
