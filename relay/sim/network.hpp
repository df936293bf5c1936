#pragma once
// A deterministic in-process network of relay nodes for tests and benchmarks: one event queue in
// virtual time; messages between neighbours delayed by latency plus seeded jitter (which reorders
// them), dropped or duplicated with seeded probabilities; links that can be cut and restored (a cut
// loses every message in flight on the link, as a broken TLS connection would) and nodes that can
// be killed. The same seed gives the same run. Not thread-safe.

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <variant>
#include <vector>

#include "relay/memory_pool.hpp"
#include "relay/node.hpp"

namespace cvqkd::relay::sim {

struct sim_config {
  std::uint64_t seed = 1;
  duration latency = std::chrono::milliseconds(1);  // every message
  duration jitter{0};                               // plus uniform [0, jitter): reorders messages
  double drop_probability = 0.0;
  double duplicate_probability = 0.0;
  duration tick_interval = std::chrono::milliseconds(5);  // every live node's tick()
  node_config node_defaults;                              // `self` is set per node
};

/// Key store of one simulated node: keeps the latest key per ID and counts calls.
class memory_sink final : public key_sink {
public:
  expected<void> store(const std::string& key_id, const node_id& peer, secure_buffer key) override;
  void revoke(const std::string& key_id, const node_id& peer) override;
  /// The key stored under `key_id`, or nullptr.
  const secure_buffer* find(const std::string& key_id) const;
  std::size_t size() const noexcept { return keys_.size(); }
  std::size_t stores() const noexcept { return stores_; }
  std::size_t revokes() const noexcept { return revokes_; }
  bool refuse = false;  // make store() fail (tests of a full key store)

private:
  std::map<std::string, std::pair<node_id, secure_buffer>> keys_;
  std::size_t stores_ = 0, revokes_ = 0;
};

/// Every result a simulated node reported, in order.
class result_log final : public relay_listener {
public:
  void on_result(const relay_result& r) override { results.push_back(r); }
  std::vector<relay_result> results;
};

class network {
public:
  explicit network(sim_config cfg);
  ~network();
  network(const network&) = delete;
  network& operator=(const network&) = delete;

  /// Adds a node with the default node_config; errc::invalid_argument for a duplicate name,
  /// errc::config_error if the defaults do not validate.
  expected<void> add_node(const node_id& id);
  /// Adds link {a, b} with `pool_bytes` of key in each direction and brings it up now.
  expected<void> add_link(const node_id& a, const node_id& b, std::size_t pool_bytes, double key_rate_bps = 1000.0);
  /// Cuts link {a, b} (both ends notified now; messages in flight on it are lost).
  void cut(const node_id& a, const node_id& b);
  /// Restores a cut link (both ends notified now, if alive).
  void restore(const node_id& a, const node_id& b);
  /// Kills node `n` for good: its links go down, its neighbours are notified, it gets no more events.
  void kill(const node_id& n);
  bool alive(const node_id& n) const;
  bool link_is_up(const node_id& a, const node_id& b) const;

  /// node(src).request(r, now()).
  expected<void> request(const node_id& src, relay_request r);
  /// Runs every event up to now() + d; now() then equals that time.
  void run_for(duration d);
  /// Runs until `done()` holds (checked after every event) or `limit` of virtual time has passed;
  /// returns done().
  bool run_until(const std::function<bool()>& done, duration limit);
  /// Calls `fn` at virtual time `at` (>= now()).
  void at_time(time_point at, std::function<void()> fn);
  time_point now() const noexcept { return now_; }

  /// Sees every message about to be delivered; may change it, or return false to drop it.
  using tap_fn = std::function<bool(const node_id& from, const node_id& to, message& m)>;
  void set_tap(tap_fn tap) { tap_ = std::move(tap); }

  relay::node& at(const node_id& n);
  memory_sink& sink(const node_id& n);
  const std::vector<relay_result>& results(const node_id& n) const;
  memory_key_pools& pools() noexcept { return pools_; }
  std::vector<node_id> nodes() const;

  struct counters {
    std::uint64_t sent = 0, delivered = 0, dropped = 0, duplicated = 0, lost_in_outage = 0;
  };
  const counters& stats() const noexcept { return stats_; }

  /// Whether routing has converged: every live node's database holds, for every node of its
  /// connected component, that node's current ad, and its two-way-checked edges among the
  /// component are exactly the up links of the component.
  bool converged() const;

private:
  struct sim_node;
  struct link_info {
    bool up = false;
    std::uint64_t epoch = 0;
    double key_rate_bps = 0.0;
  };
  struct delivery {
    node_id from, to;
    std::uint64_t epoch;
    message m;
  };
  using event = std::variant<delivery, std::function<void()>>;
  friend struct sim_node;

  void post(const node_id& from, const node_id& to, message m);
  void schedule(time_point at, event e);
  void execute(event e);
  void tick_all();
  link_info* find_link(const node_id& a, const node_id& b);
  const link_info* find_link(const node_id& a, const node_id& b) const;

  sim_config cfg_;
  time_point now_{0};
  std::uint64_t next_seq_ = 0;
  std::mt19937_64 rng_;  // message fate only (delays, drops), never key material
  memory_key_pools pools_;
  std::map<node_id, std::unique_ptr<sim_node>> nodes_;
  std::map<std::pair<node_id, node_id>, link_info> links_;
  std::map<std::pair<time_point, std::uint64_t>, event> queue_;
  tap_fn tap_;
  counters stats_;
};

}  // namespace cvqkd::relay::sim
