#pragma once
// One trusted node's relay and routing logic as a pure, event-driven state machine. Everything it
// touches is injected: the transport to its neighbours, its link-key pools, its key store, its
// random source and the listener told about outcomes; time comes with every event. The actors wrap
// one node each; tests drive many of them in the deterministic simulator (relay/sim/).
//
// Routing: link-state, flooded with per-origin sequence numbers and an age (relay/topology.hpp).
// Relay of one end-to-end key (roles source, transit, destination):
//   source:      draws a fresh key K per round from its random source (k XOR shares for multipath),
//                computes the path(s), takes n + 32 bytes from each first hop's outgoing stream
//                (n = key bytes) and sends relay_key{share XOR pad, WC tag}.
//   transit:     takes exactly the named range of the incoming stream, verifies the tag, decrypts,
//                re-encrypts with n + 32 fresh bytes of the outgoing stream of the next hop.
//   destination: takes the range, verifies, decrypts; with all k shares it XORs them, stores K in
//                its key sink and sends relay_done back along every path, each hop tagged with
//                the last 16 bytes of that hop's range. The source stores K and reports
//                success only when every path's relay_done has verified.
// Failures (timeout, link down, pool empty, bad tag) abort the round: relay_abort travels the
// path both ways, every receiver burns the named range (so both ends of every hop lose exactly the
// bytes drawn for the round, which are never used again), the destination revokes a key stored for
// the round, and the source retries with a fresh key on a new route (avoiding the failed link), at
// most max_attempts rounds; then it reports an error naming the unreachable node.
// Orphans: if every abort to the destination is lost after it stored a key for a round that the
// source gave up, the destination keeps a key whose ID the source never hands out.
// Assumption: a hop message is delivered within replay_horizon or never (the TLS connection of a
// link that stalls longer is torn down: link down). The destination remembers the round it
// delivered per (source, key ID) that long, so that a late message of an older round cannot
// replace the committed key.

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/drbg.hpp"
#include "relay/messages.hpp"
#include "relay/topology.hpp"

namespace cvqkd::relay {

struct node_config {
  node_id self;
  weight_config weights;
  unsigned max_attempts = 3;                                           // rounds per request
  duration attempt_timeout = std::chrono::milliseconds(2000);         // source: round unconfirmed -> abort
  duration transit_timeout = std::chrono::milliseconds(3000);         // transit/destination state lifetime
  duration retry_backoff = std::chrono::milliseconds(100);            // pause before the next round
  duration lsa_refresh = std::chrono::seconds(30);                    // re-originate own ad at least this often
  duration lsa_max_age = std::chrono::seconds(90);                    // drop ads not refreshed for this long
  duration min_advertise_interval = std::chrono::milliseconds(200);   // rate limit for key-stock updates
  duration replay_horizon = std::chrono::seconds(120);  // destination remembers delivered rounds this long
  double advertise_change_fraction = 0.25;  // re-advertise when a stream's stock moved by this fraction
  unsigned default_paths = 2;               // shares of a multipath request that names none
  std::size_t max_key_bytes = 1 << 20;
  /// errc::config_error naming the field unless: self non-empty, weights valid, max_attempts >= 1,
  /// timeouts > 0, lsa_max_age > lsa_refresh, replay_horizon >= 2 * max(attempt_timeout, transit_timeout),
  /// 0 < advertise_change_fraction, 2 <= default_paths <= 16.
  expected<void> validate() const;
};

struct relay_request {
  std::string key_id;  // unique among this source's requests in flight
  node_id destination;
  std::size_t key_bytes = 32;
  route_type type = route_type::relay;
  unsigned paths = 0;  // multipath: number of shares and node-disjoint paths (0: default_paths)
};

struct node_stats {
  std::uint64_t rounds_started = 0, rounds_aborted = 0, committed = 0, failed = 0;
  std::uint64_t keys_delivered = 0;   // as destination
  std::uint64_t hops_forwarded = 0;   // as transit
  std::uint64_t auth_failures = 0, replays_ignored = 0, malformed = 0;
  std::uint64_t ads_originated = 0, ads_installed = 0;
};

class node {
public:
  /// The collaborators must outlive the node. errc::config_error if `cfg` does not validate.
  static expected<std::unique_ptr<node>> create(node_config cfg, transport& net, link_key_source& pools,
                                                key_sink& sink, random_source& rng, relay_listener& listener);
  ~node();
  node(const node&) = delete;
  node& operator=(const node&) = delete;

  const node_id& id() const noexcept { return cfg_.self; }
  const node_config& config() const noexcept { return cfg_; }

  /// The link to `neighbour` is up (new or restored); key_rate_bps is its key creation rate.
  void link_up(const node_id& neighbour, double key_rate_bps, time_point now);
  /// The link to `neighbour` went down (fibre cut, peer gone): rounds using it abort.
  void link_down(const node_id& neighbour, time_point now);
  /// A new key creation rate for the link (advertised with the next ad).
  void set_key_rate(const node_id& neighbour, double key_rate_bps, time_point now);
  /// A message from neighbour `from`.
  void receive(const node_id& from, message m, time_point now);
  /// Time passes: timeouts, retries, ad refresh and aging. Call at least every few milliseconds.
  void tick(time_point now);

  /// Starts relaying a key to `r.destination`; the outcome arrives through the listener.
  /// errc::invalid_argument (nothing started) for an empty or duplicate key_id, this node as
  /// destination, key_bytes outside [1, max_key_bytes], or paths outside [2, 16] for multipath.
  expected<void> request(relay_request r, time_point now);

  /// The route(s) a request would take now: one path for direct/relay, k for multipath.
  /// errc::insufficient_data naming the unreachable node if there are none (or fewer than k).
  expected<std::vector<std::vector<node_id>>> routes(const node_id& destination, route_type type, std::size_t key_bytes,
                                                     unsigned paths = 0, const exclusions& ex = {}) const;

  const topology_db& topology() const noexcept { return db_; }
  const node_stats& stats() const noexcept { return stats_; }
  /// Relay state held (source requests, transit hops, destination rounds); 0 when idle.
  std::size_t sessions() const noexcept;
  /// Whether the link to `neighbour` is up as far as this node knows.
  bool link_is_up(const node_id& neighbour) const;

private:
  struct source_path {
    std::vector<node_id> path;
    pool_range range;
    secure_buffer done_key;
    bool done = false;
  };
  struct source_session {
    relay_request req;
    unsigned attempt = 0;
    bool in_flight = false;
    time_point deadline{};
    secure_buffer key;
    std::vector<source_path> paths;
    std::vector<std::vector<node_id>> last_paths;
    exclusions avoid;
    std::string last_failure;
    node_id last_culprit;
  };
  struct transit_state {
    std::vector<node_id> path;
    std::uint32_t hop_in = 0;
    pool_range in_range, out_range;
    secure_buffer done_key_in, done_key_out;
    time_point deadline{};
  };
  struct dest_share {
    std::vector<node_id> path;
    std::uint32_t hop = 0;
    pool_range range;
    secure_buffer share, done_key;
  };
  struct dest_round {
    std::uint32_t attempt = 0;
    std::uint32_t share_count = 1;
    std::map<std::uint32_t, dest_share> shares;
    time_point deadline{};
  };
  struct stored_round {
    std::uint32_t attempt = 0;
    time_point forget_at{};
  };
  struct own_link {
    bool up = false;
    double key_rate_bps = 0.0;
    std::uint64_t advertised_bits = 0;
  };
  using origin_key = std::pair<node_id, std::string>;  // (source, key_id)

  node(node_config cfg, transport& net, link_key_source& pools, key_sink& sink, random_source& rng, relay_listener& listener);

  expected<std::vector<std::vector<node_id>>> compute_routes(const std::vector<edge>& edges, const node_id& destination,
                                                             route_type type, std::size_t key_bytes, unsigned paths,
                                                             const exclusions& ex) const;
  void originate(time_point now);
  void on_ad(const node_id& from, link_state_ad ad, time_point now);
  void on_key(const node_id& from, relay_key m, time_point now);
  void on_done(const node_id& from, const relay_done& m, time_point now);
  void on_abort(const node_id& from, const relay_abort& m, time_point now);
  void as_transit(const node_id& from, const relay_key& m, secure_buffer share, secure_buffer done_key, time_point now);
  void as_destination(const relay_key& m, secure_buffer share, secure_buffer done_key, time_point now);

  void start_round(source_session& s, time_point now);
  void abort_round(source_session& s, std::string why, time_point now);
  void finish(const std::string& key_id, std::optional<error> failure);
  void commit(source_session& s);
  void flush_results();
  void send_abort(const share_ref& ref, const std::vector<node_id>& path, std::uint32_t hop, bool downstream,
                  std::optional<pool_range> range, abort_reason reason, const node_id& reported_by,
                  std::optional<node_id> culprit);
  void send(const node_id& to, message m);
  std::uint64_t need_bits(std::size_t key_bytes) const noexcept;

  node_config cfg_;
  transport& net_;
  link_key_source& pools_;
  key_sink& sink_;
  random_source& rng_;
  relay_listener& listener_;

  topology_db db_;
  void db_changed() noexcept;
  // Routes depend only on the database: cached until it changes (requests with exclusions bypass it).
  using route_key = std::tuple<node_id, route_type, std::size_t, unsigned>;
  mutable std::optional<std::vector<edge>> edges_cache_;
  mutable std::map<route_key, expected<std::vector<std::vector<node_id>>>> route_cache_;
  std::map<node_id, own_link> links_;
  std::uint64_t own_sequence_ = 0;
  time_point last_originated_{};
  std::map<std::string, source_session> sources_;
  std::map<share_ref, transit_state> transits_;
  std::map<origin_key, dest_round> incoming_;
  struct origin_hash {
    std::size_t operator()(const origin_key& k) const noexcept {
      return std::hash<std::string>{}(k.first) * 31 + std::hash<std::string>{}(k.second);
    }
  };
  std::unordered_map<origin_key, stored_round, origin_hash> stored_;
  std::deque<std::pair<time_point, origin_key>> stored_expiry_;  // forget_at order (constant lifetime)
  std::vector<relay_result> pending_results_;  // handed to the listener at the end of each event
  bool dirty_ = false;                         // own ad out of date (rate change): re-originate soon
  node_stats stats_;
};

}  // namespace cvqkd::relay
