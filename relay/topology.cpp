#include "relay/topology.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <queue>
#include <unordered_map>

namespace cvqkd::relay {

expected<void> weight_config::validate() const {
  auto finite = [](double v) { return std::isfinite(v); };
  if (!finite(base) || base <= 0.0)
    return fail(errc::config_error, "route weight base must be > 0 (it keeps Dijkstra's weights positive); got " + std::to_string(base));
  if (!finite(alpha) || alpha < 0.0) return fail(errc::config_error, "route weight alpha must be >= 0; got " + std::to_string(alpha));
  if (!finite(beta) || beta < 0.0) return fail(errc::config_error, "route weight beta must be >= 0; got " + std::to_string(beta));
  if (!finite(rate_scale_bps) || rate_scale_bps <= 0.0)
    return fail(errc::config_error, "route weight rate_scale_bps must be > 0; got " + std::to_string(rate_scale_bps));
  return {};
}

double link_weight(const weight_config& w, std::uint64_t available_bits, double key_rate_bps, std::uint64_t need_bits) noexcept {
  const double stock = static_cast<double>(available_bits) / static_cast<double>(need_bits == 0 ? 1 : need_bits);
  const double rate = key_rate_bps > 0.0 ? key_rate_bps / w.rate_scale_bps : 0.0;
  return w.base + w.alpha / (1.0 + stock) + w.beta / (1.0 + rate);
}

bool topology_db::install(const link_state_ad& ad, time_point now) {
  auto it = ads_.find(ad.origin);
  if (it != ads_.end() && it->second.ad.sequence >= ad.sequence) return false;
  ads_.insert_or_assign(ad.origin, held{ad, now});
  return true;
}

std::vector<node_id> topology_db::expire(time_point now, duration max_age, const node_id& keep) {
  std::vector<node_id> dropped;
  for (auto it = ads_.begin(); it != ads_.end();) {
    const auto age = std::chrono::milliseconds(it->second.ad.age_ms) + (now - it->second.received);
    if (it->first != keep && age >= max_age) {
      dropped.push_back(it->first);
      it = ads_.erase(it);
    } else {
      ++it;
    }
  }
  return dropped;
}

const link_state_ad* topology_db::find(const node_id& origin) const {
  const auto it = ads_.find(origin);
  return it == ads_.end() ? nullptr : &it->second.ad;
}

std::vector<link_state_ad> topology_db::snapshot(time_point now) const {
  std::vector<link_state_ad> out;
  out.reserve(ads_.size());
  for (const auto& [origin, h] : ads_) {
    link_state_ad ad = h.ad;
    const auto held_ms = std::chrono::duration_cast<std::chrono::milliseconds>(now - h.received).count();
    ad.age_ms = static_cast<std::uint32_t>(std::min<std::int64_t>(std::numeric_limits<std::uint32_t>::max() - 1,
                                                                  ad.age_ms + std::max<std::int64_t>(held_ms, 0) + 1));
    out.push_back(std::move(ad));
  }
  return out;
}

std::map<node_id, std::uint64_t> topology_db::sequences() const {
  std::map<node_id, std::uint64_t> out;
  for (const auto& [origin, h] : ads_) out.emplace(origin, h.ad.sequence);
  return out;
}

std::vector<edge> topology_db::edges() const {
  std::vector<edge> out;
  for (const auto& [origin, h] : ads_) {
    for (const auto& l : h.ad.links) {
      if (!l.up || l.neighbour == origin) continue;
      const auto* peer = find(l.neighbour);
      if (peer == nullptr) continue;
      const bool back = std::any_of(peer->links.begin(), peer->links.end(),
                                    [&](const link_report& r) { return r.neighbour == origin && r.up; });
      if (back) out.push_back(edge{origin, l.neighbour, l.available_bits, l.key_rate_bps});
    }
  }
  return out;
}

namespace {

bool usable(const edge& e, std::uint64_t need_bits, const exclusions& ex, const node_id& src, const node_id& dst) {
  if (e.available_bits < need_bits) return false;
  if (ex.has_link(e.from, e.to)) return false;
  if ((e.from != src && ex.nodes.contains(e.from)) || (e.to != dst && ex.nodes.contains(e.to))) return false;
  return e.to != src && e.from != dst;  // a route never re-enters its source or leaves its destination
}

}  // namespace

std::optional<std::vector<node_id>> shortest_path(const std::vector<edge>& edges, const node_id& src, const node_id& dst,
                                                  std::uint64_t need_bits, const weight_config& w, const exclusions& ex) {
  if (src == dst) return std::nullopt;
  std::unordered_map<node_id, std::vector<std::pair<const edge*, double>>> adj;
  for (const auto& e : edges)
    if (usable(e, need_bits, ex, src, dst)) adj[e.from].emplace_back(&e, link_weight(w, e.available_bits, e.key_rate_bps, need_bits));
  std::unordered_map<node_id, double> dist;
  std::unordered_map<node_id, node_id> prev;
  using item = std::pair<double, node_id>;
  std::priority_queue<item, std::vector<item>, std::greater<>> pq;
  dist[src] = 0.0;
  pq.emplace(0.0, src);
  while (!pq.empty()) {
    auto [d, u] = pq.top();
    pq.pop();
    if (d > dist[u]) continue;
    if (u == dst) break;
    const auto it = adj.find(u);
    if (it == adj.end()) continue;
    for (const auto& [e, wt] : it->second) {
      const double nd = d + wt;
      const auto found = dist.find(e->to);
      if (found == dist.end() || nd < found->second) {
        dist[e->to] = nd;
        prev[e->to] = u;
        pq.emplace(nd, e->to);
      }
    }
  }
  if (!dist.contains(dst)) return std::nullopt;
  std::vector<node_id> path{dst};
  while (path.back() != src) path.push_back(prev.at(path.back()));
  std::reverse(path.begin(), path.end());
  return path;
}

std::vector<std::vector<node_id>> disjoint_paths(const std::vector<edge>& edges, const node_id& src, const node_id& dst,
                                                 unsigned k, std::uint64_t need_bits, const weight_config& w,
                                                 const exclusions& ex) {
  if (src == dst || k == 0) return {};
  std::vector<node_id> names;
  std::unordered_map<node_id, std::size_t> index;
  auto id = [&](const node_id& n) {
    auto [it, fresh] = index.emplace(n, names.size());
    if (fresh) names.push_back(n);
    return it->second;
  };
  id(src);
  id(dst);
  for (const auto& e : edges)
    if (usable(e, need_bits, ex, src, dst)) {
      id(e.from);
      id(e.to);
    }
  // Vertex 2i is node i's "in", 2i+1 its "out"; arcs carry capacity and cost, paired with their reverse.
  struct arc {
    std::size_t to;
    int cap;
    double cost;
    std::size_t rev;
    bool original;
  };
  std::vector<std::vector<arc>> g(2 * names.size());
  auto add_arc = [&](std::size_t a, std::size_t b, int cap, double cost) {
    g[a].push_back({b, cap, cost, g[b].size(), true});
    g[b].push_back({a, 0, -cost, g[a].size() - 1, false});
  };
  const std::size_t s_idx = index.at(src), d_idx = index.at(dst);
  for (std::size_t i = 0; i < names.size(); ++i)
    if (i != s_idx && i != d_idx) add_arc(2 * i, 2 * i + 1, 1, 0.0);
  for (const auto& e : edges)
    if (usable(e, need_bits, ex, src, dst))
      add_arc(2 * index.at(e.from) + 1, 2 * index.at(e.to), 1, link_weight(w, e.available_bits, e.key_rate_bps, need_bits));

  const std::size_t start = 2 * s_idx + 1, target = 2 * d_idx;
  const double inf = std::numeric_limits<double>::infinity();
  unsigned found = 0;
  for (; found < k; ++found) {
    // Bellman–Ford (queue-based): residual arcs may have negative cost.
    std::vector<double> dist(g.size(), inf);
    std::vector<std::pair<std::size_t, std::size_t>> pred(g.size(), {SIZE_MAX, SIZE_MAX});
    std::vector<bool> queued(g.size(), false);
    std::queue<std::size_t> q;
    dist[start] = 0.0;
    q.push(start);
    queued[start] = true;
    while (!q.empty()) {
      const std::size_t u = q.front();
      q.pop();
      queued[u] = false;
      for (std::size_t j = 0; j < g[u].size(); ++j) {
        const arc& a = g[u][j];
        if (a.cap <= 0) continue;
        const double nd = dist[u] + a.cost;
        if (nd < dist[a.to] - 1e-12) {
          dist[a.to] = nd;
          pred[a.to] = {u, j};
          if (!queued[a.to]) {
            q.push(a.to);
            queued[a.to] = true;
          }
        }
      }
    }
    if (dist[target] == inf) break;
    for (std::size_t v = target; v != start;) {
      auto [u, j] = pred[v];
      arc& a = g[u][j];
      a.cap -= 1;
      g[v][a.rev].cap += 1;
      v = u;
    }
  }
  // Decompose the flow: follow original arcs that carry flow (cap went 1 -> 0).
  std::vector<std::pair<double, std::vector<node_id>>> paths;
  for (unsigned p = 0; p < found; ++p) {
    std::vector<node_id> path{src};
    double total = 0.0;
    std::size_t v = start;
    while (v != target) {
      bool moved = false;
      for (auto& a : g[v]) {
        if (!a.original || a.cap != 0) continue;
        a.cap = -1;  // consumed by this path
        total += a.cost;
        v = a.to;
        moved = true;
        break;
      }
      if (!moved) break;  // cannot happen for a valid flow
      if (v % 2 == 0) path.push_back(names[v / 2]);
    }
    if (v == target) paths.emplace_back(total, std::move(path));
  }
  std::stable_sort(paths.begin(), paths.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<std::vector<node_id>> out;
  for (auto& [cost, path] : paths) out.push_back(std::move(path));
  return out;
}

}  // namespace cvqkd::relay
