#include "relay/sim/network.hpp"

#include <algorithm>
#include <deque>
#include <set>

namespace cvqkd::relay::sim {

expected<void> memory_sink::store(const std::string& key_id, const node_id& peer, secure_buffer key) {
  if (refuse) return fail(errc::io_error, "simulated key store is full; free space and retry");
  ++stores_;
  keys_.insert_or_assign(key_id, std::pair{peer, std::move(key)});
  return {};
}

void memory_sink::revoke(const std::string& key_id, const node_id&) {
  ++revokes_;
  keys_.erase(key_id);
}

const secure_buffer* memory_sink::find(const std::string& key_id) const {
  const auto it = keys_.find(key_id);
  return it == keys_.end() ? nullptr : &it->second.second;
}

class sim_transport final : public transport {
public:
  sim_transport(std::function<void(const node_id&, message)> post) : post_(std::move(post)) {}
  void send(const node_id& neighbour, message m) override { post_(neighbour, std::move(m)); }

private:
  std::function<void(const node_id&, message)> post_;
};

struct network::sim_node {
  sim_node(network& net, const node_id& id)
    : rng(net.cfg_.seed, "relay-sim-node:" + id),
      wire([&net, id](const node_id& to, message m) { net.post(id, to, std::move(m)); }) {}
  memory_sink sink;
  result_log log;
  seeded_drbg rng;
  sim_transport wire;
  std::unique_ptr<relay::node> logic;
  bool alive = true;
};

network::network(sim_config cfg) : cfg_(std::move(cfg)), rng_(cfg_.seed), pools_(cfg_.seed) {
  schedule(now_ + cfg_.tick_interval, std::function<void()>([this] { tick_all(); }));
}

network::~network() = default;

expected<void> network::add_node(const node_id& id) {
  if (nodes_.contains(id)) return fail(errc::invalid_argument, "node '" + id + "' exists already; pick another name");
  auto n = std::make_unique<sim_node>(*this, id);
  node_config c = cfg_.node_defaults;
  c.self = id;
  auto logic = relay::node::create(std::move(c), n->wire, pools_.end(id), n->sink, n->rng, n->log);
  if (!logic) return std::unexpected(logic.error());
  n->logic = std::move(*logic);
  nodes_.emplace(id, std::move(n));
  return {};
}

expected<void> network::add_link(const node_id& a, const node_id& b, std::size_t pool_bytes, double key_rate_bps) {
  if (!nodes_.contains(a) || !nodes_.contains(b) || a == b)
    return fail(errc::invalid_argument, "link " + a + "-" + b + " needs two distinct existing nodes; add them first");
  if (find_link(a, b) != nullptr) return fail(errc::invalid_argument, "link " + a + "-" + b + " exists already");
  pools_.fill(a, b, pool_bytes);
  links_.emplace(a < b ? std::pair{a, b} : std::pair{b, a}, link_info{false, 0, key_rate_bps});
  restore(a, b);
  return {};
}

network::link_info* network::find_link(const node_id& a, const node_id& b) {
  const auto it = links_.find(a < b ? std::pair{a, b} : std::pair{b, a});
  return it == links_.end() ? nullptr : &it->second;
}

const network::link_info* network::find_link(const node_id& a, const node_id& b) const {
  const auto it = links_.find(a < b ? std::pair{a, b} : std::pair{b, a});
  return it == links_.end() ? nullptr : &it->second;
}

bool network::alive(const node_id& n) const {
  const auto it = nodes_.find(n);
  return it != nodes_.end() && it->second->alive;
}

bool network::link_is_up(const node_id& a, const node_id& b) const {
  const auto* l = find_link(a, b);
  return l != nullptr && l->up;
}

void network::cut(const node_id& a, const node_id& b) {
  auto* l = find_link(a, b);
  if (l == nullptr || !l->up) return;
  l->up = false;
  ++l->epoch;
  if (alive(a)) nodes_.at(a)->logic->link_down(b, now_);
  if (alive(b)) nodes_.at(b)->logic->link_down(a, now_);
}

void network::restore(const node_id& a, const node_id& b) {
  auto* l = find_link(a, b);
  if (l == nullptr || l->up || !alive(a) || !alive(b)) return;
  l->up = true;
  ++l->epoch;
  nodes_.at(a)->logic->link_up(b, l->key_rate_bps, now_);
  nodes_.at(b)->logic->link_up(a, l->key_rate_bps, now_);
}

void network::kill(const node_id& n) {
  if (!alive(n)) return;
  nodes_.at(n)->alive = false;
  for (auto& [ends, l] : links_) {
    if ((ends.first != n && ends.second != n) || !l.up) continue;
    l.up = false;
    ++l.epoch;
    const node_id& other = ends.first == n ? ends.second : ends.first;
    if (alive(other)) nodes_.at(other)->logic->link_down(n, now_);
  }
}

expected<void> network::request(const node_id& src, relay_request r) {
  if (!alive(src)) return fail(errc::invalid_argument, "node '" + src + "' is not a live node of the simulation");
  return nodes_.at(src)->logic->request(std::move(r), now_);
}

void network::post(const node_id& from, const node_id& to, message m) {
  ++stats_.sent;
  const auto* l = find_link(from, to);
  if (l == nullptr || !l->up || !alive(to)) {
    ++stats_.lost_in_outage;
    return;
  }
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  if (cfg_.drop_probability > 0.0 && unit(rng_) < cfg_.drop_probability) {
    ++stats_.dropped;
    return;
  }
  auto delay = [&] {
    duration d = cfg_.latency;
    if (cfg_.jitter.count() > 0)
      d += duration(static_cast<duration::rep>(unit(rng_) * static_cast<double>(cfg_.jitter.count())));
    return d;
  };
  if (cfg_.duplicate_probability > 0.0 && unit(rng_) < cfg_.duplicate_probability) {
    ++stats_.duplicated;
    schedule(now_ + delay(), delivery{from, to, l->epoch, clone(m)});
  }
  schedule(now_ + delay(), delivery{from, to, l->epoch, std::move(m)});
}

void network::schedule(time_point at, event e) { queue_.emplace(std::pair{at, next_seq_++}, std::move(e)); }

void network::at_time(time_point at, std::function<void()> fn) { schedule(std::max(at, now_), std::move(fn)); }

void network::execute(event e) {
  if (auto* fn = std::get_if<std::function<void()>>(&e)) {
    (*fn)();
    return;
  }
  auto& d = std::get<delivery>(e);
  const auto* l = find_link(d.from, d.to);
  if (l == nullptr || !l->up || l->epoch != d.epoch || !alive(d.to)) {
    ++stats_.lost_in_outage;
    return;
  }
  if (tap_ && !tap_(d.from, d.to, d.m)) {
    ++stats_.dropped;
    return;
  }
  ++stats_.delivered;
  nodes_.at(d.to)->logic->receive(d.from, std::move(d.m), now_);
}

void network::tick_all() {
  for (auto& [id, n] : nodes_)
    if (n->alive) n->logic->tick(now_);
  schedule(now_ + cfg_.tick_interval, std::function<void()>([this] { tick_all(); }));
}

void network::run_for(duration d) {
  const time_point end = now_ + d;
  while (!queue_.empty() && queue_.begin()->first.first <= end) {
    auto h = queue_.extract(queue_.begin());
    now_ = h.key().first;
    execute(std::move(h.mapped()));
  }
  now_ = end;
}

bool network::run_until(const std::function<bool()>& done, duration limit) {
  const time_point end = now_ + limit;
  while (!done()) {
    if (queue_.empty() || queue_.begin()->first.first > end) {
      now_ = end;
      return done();
    }
    auto h = queue_.extract(queue_.begin());
    now_ = h.key().first;
    execute(std::move(h.mapped()));
  }
  return true;
}

relay::node& network::at(const node_id& n) { return *nodes_.at(n)->logic; }
memory_sink& network::sink(const node_id& n) { return nodes_.at(n)->sink; }
const std::vector<relay_result>& network::results(const node_id& n) const { return nodes_.at(n)->log.results; }

std::vector<node_id> network::nodes() const {
  std::vector<node_id> out;
  for (const auto& [id, n] : nodes_) out.push_back(id);
  return out;
}

bool network::converged() const {
  for (const auto& [u, un] : nodes_) {
    if (!un->alive) continue;
    std::set<node_id> comp{u};
    std::deque<node_id> todo{u};
    while (!todo.empty()) {
      const node_id v = todo.front();
      todo.pop_front();
      for (const auto& [ends, l] : links_) {
        if (!l.up || (ends.first != v && ends.second != v)) continue;
        const node_id& w = ends.first == v ? ends.second : ends.first;
        if (comp.insert(w).second) todo.push_back(w);
      }
    }
    const auto& db = un->logic->topology();
    for (const auto& v : comp) {
      const auto* mine = db.find(v);
      const auto* theirs = nodes_.at(v)->logic->topology().find(v);
      if (mine == nullptr || theirs == nullptr || mine->sequence != theirs->sequence) return false;
    }
    std::set<std::pair<node_id, node_id>> expected_edges, actual;
    for (const auto& [ends, l] : links_)
      if (l.up && comp.contains(ends.first)) {
        expected_edges.emplace(ends.first, ends.second);
        expected_edges.emplace(ends.second, ends.first);
      }
    for (const auto& e : db.edges())
      if (comp.contains(e.from)) actual.emplace(e.from, e.to);
    if (actual != expected_edges) return false;
  }
  return true;
}

}  // namespace cvqkd::relay::sim
