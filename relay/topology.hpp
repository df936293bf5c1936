#pragma once
// Link-state database and route computation.
//
// Every node keeps the newest advertisement (link_state_ad) of every origin. A link u–v is in the
// graph only if both u and v report it up (the two-way check of OSPF, RFC 2328 sec. 16.1), as two
// directed edges: u->v carries what u reports about its outgoing stream to v. Routes are source
// routes computed from the source's database, so they are loop-free by construction (a shortest
// path never repeats a node) even while databases disagree during convergence.

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <utility>
#include <vector>

#include "relay/messages.hpp"

namespace cvqkd::relay {

/// Route weights. The weight of a directed edge u->v for a request that needs n bits per hop
/// (key share + hop_auth_key_bytes, times 8) is
///
///   w = base + alpha / (1 + A / n) + beta / (1 + R / rate_scale_bps)
///
/// with A the bits available in u's outgoing stream to v and R the link's key creation rate
/// (bit/s). `base` counts trusted nodes (prefer short paths); the alpha term grows as the stock
/// falls towards one request's worth (reroute before a pool runs dry); the beta term prefers links
/// that replenish fast. Edges with A < n are excluded. All weights are > 0, as Dijkstra requires.
struct weight_config {
  double base = 1.0;
  double alpha = 1.0;
  double beta = 1.0;
  double rate_scale_bps = 1000.0;
  /// errc::config_error unless base > 0, alpha >= 0, beta >= 0, rate_scale_bps > 0 (all finite).
  expected<void> validate() const;
};

/// The weight above; `need_bits` must be > 0.
double link_weight(const weight_config& w, std::uint64_t available_bits, double key_rate_bps,
                   std::uint64_t need_bits) noexcept;

/// A usable directed edge of the graph.
struct edge {
  node_id from, to;
  std::uint64_t available_bits = 0;
  double key_rate_bps = 0.0;
};

/// Nodes and links a route must avoid (failures seen in earlier rounds of the same request).
struct exclusions {
  std::set<node_id> nodes;
  std::set<std::pair<node_id, node_id>> links;  // unordered pairs, stored (min, max)
  void add_link(const node_id& a, const node_id& b) { links.insert(a < b ? std::pair{a, b} : std::pair{b, a}); }
  bool has_link(const node_id& a, const node_id& b) const { return links.contains(a < b ? std::pair{a, b} : std::pair{b, a}); }
};

class topology_db {
public:
  /// Stores `ad` if it is newer (higher sequence) than what is held for its origin, or the
  /// origin is unknown; `now` starts its aging. Returns whether it was stored (then flood it on).
  bool install(const link_state_ad& ad, time_point now);
  /// Drops every ad whose age (age_ms at receipt + time held) has reached `max_age`, except the
  /// one of `keep` (the node's own). Returns the origins dropped.
  std::vector<node_id> expire(time_point now, duration max_age, const node_id& keep);
  /// The ad held for `origin`, or nullptr.
  const link_state_ad* find(const node_id& origin) const;
  /// Every ad held, with age_ms brought up to `now` (+1 ms transmission), ready to be flooded.
  std::vector<link_state_ad> snapshot(time_point now) const;
  /// Origin -> sequence of every ad held (for convergence checks).
  std::map<node_id, std::uint64_t> sequences() const;
  /// The two-way-checked directed edges.
  std::vector<edge> edges() const;
  std::size_t size() const noexcept { return ads_.size(); }

private:
  struct held {
    link_state_ad ad;
    time_point received;
  };
  std::map<node_id, held> ads_;
};

/// Least-weight path src -> dst (Dijkstra; ties broken by node name, so results are
/// reproducible) over edges that can supply `need_bits`, avoiding `ex`. nullopt if none.
std::optional<std::vector<node_id>> shortest_path(const std::vector<edge>& edges, const node_id& src, const node_id& dst,
                                                  std::uint64_t need_bits, const weight_config& w,
                                                  const exclusions& ex = {});

/// Up to k node-disjoint paths src -> dst of least total weight: minimum-cost flow by successive
/// shortest paths (Bellman–Ford on the residual graph) on the node-split graph (every node other
/// than src and dst becomes v_in -> v_out with capacity 1) — Suurballe's algorithm generalised to k
/// paths (Suurballe & Tarjan, Networks 14, 325 (1984); Bhandari, "Survivable Networks", 1999).
/// Unlike repeated Dijkstra with node removal it finds k disjoint paths whenever they exist.
/// Returns fewer than k paths when fewer exist (none: empty), ordered by weight.
std::vector<std::vector<node_id>> disjoint_paths(const std::vector<edge>& edges, const node_id& src,
                                                 const node_id& dst, unsigned k, std::uint64_t need_bits,
                                                 const weight_config& w, const exclusions& ex = {});

}  // namespace cvqkd::relay
