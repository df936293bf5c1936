#include "relay/node.hpp"

#include <algorithm>
#include <cmath>
#include <set>

#include "relay/wegman_carter.hpp"

namespace cvqkd::relay {

namespace wc = wegman_carter;

namespace {

void xor_into(std::span<std::byte> out, std::span<const std::byte> in) noexcept {
  for (std::size_t i = 0; i < out.size() && i < in.size(); ++i) out[i] ^= in[i];
}

bool distinct_nodes(const std::vector<node_id>& path) {
  std::set<node_id> seen;
  for (const auto& n : path)
    if (!seen.insert(n).second) return false;
  return true;
}

std::string ms(duration d) {
  return std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(d).count()) + " ms";
}

}  // namespace

expected<void> node_config::validate() const {
  if (self.empty()) return fail(errc::config_error, "relay node_config.self is empty; give the node its site name");
  if (auto w = weights.validate(); !w) return w;
  if (max_attempts < 1) return fail(errc::config_error, "relay max_attempts must be >= 1");
  for (auto [name, d] : {std::pair{"attempt_timeout", attempt_timeout}, std::pair{"transit_timeout", transit_timeout},
                         std::pair{"retry_backoff", retry_backoff}, std::pair{"lsa_refresh", lsa_refresh},
                         std::pair{"min_advertise_interval", min_advertise_interval}})
    if (d.count() <= 0) return fail(errc::config_error, std::string("relay ") + name + " must be > 0");
  if (lsa_max_age <= lsa_refresh)
    return fail(errc::config_error, "relay lsa_max_age (" + ms(lsa_max_age) + ") must exceed lsa_refresh (" + ms(lsa_refresh) +
                                      "), or live nodes' ads would age out");
  if (replay_horizon < 2 * std::max(attempt_timeout, transit_timeout))
    return fail(errc::config_error, "relay replay_horizon (" + ms(replay_horizon) +
                                      ") must be at least twice the longer of attempt_timeout and transit_timeout");
  if (!(advertise_change_fraction > 0.0) || !std::isfinite(advertise_change_fraction))
    return fail(errc::config_error, "relay advertise_change_fraction must be > 0");
  if (default_paths < 2 || default_paths > 16) return fail(errc::config_error, "relay default_paths must be in [2, 16]");
  if (max_key_bytes < 1) return fail(errc::config_error, "relay max_key_bytes must be >= 1");
  return {};
}

expected<std::unique_ptr<node>> node::create(node_config cfg, transport& net, link_key_source& pools, key_sink& sink,
                                             random_source& rng, relay_listener& listener) {
  if (auto v = cfg.validate(); !v) return std::unexpected(v.error());
  return std::unique_ptr<node>(new node(std::move(cfg), net, pools, sink, rng, listener));
}

node::node(node_config cfg, transport& net, link_key_source& pools, key_sink& sink, random_source& rng,
           relay_listener& listener)
  : cfg_(std::move(cfg)), net_(net), pools_(pools), sink_(sink), rng_(rng), listener_(listener) {}

node::~node() = default;

std::size_t node::sessions() const noexcept { return sources_.size() + transits_.size() + incoming_.size(); }

bool node::link_is_up(const node_id& neighbour) const {
  const auto it = links_.find(neighbour);
  return it != links_.end() && it->second.up;
}

std::uint64_t node::need_bits(std::size_t key_bytes) const noexcept { return 8 * (key_bytes + hop_auth_key_bytes); }

void node::send(const node_id& to, message m) {
  if (link_is_up(to)) net_.send(to, std::move(m));
}

void node::send_abort(const share_ref& ref, const std::vector<node_id>& path, std::uint32_t hop, bool downstream,
                      std::optional<pool_range> range, abort_reason reason, const node_id& reported_by,
                      std::optional<node_id> culprit) {
  if (hop + 1 >= path.size()) return;
  const node_id& to = downstream ? path[hop + 1] : path[hop];
  send(to, relay_abort{ref, path, hop, downstream, range, reason, reported_by, std::move(culprit)});
}

void node::flush_results() {
  auto results = std::move(pending_results_);
  pending_results_.clear();
  for (const auto& r : results) listener_.on_result(r);
}

// ---- routing -------------------------------------------------------------------------------

void node::originate(time_point now) {
  ++own_sequence_;
  link_state_ad ad{cfg_.self, own_sequence_, 0, {}};
  for (auto& [n, l] : links_) {
    const std::uint64_t bits = l.up ? 8 * pools_.available(n, stream::outgoing) : 0;
    l.advertised_bits = bits;
    ad.links.push_back(link_report{n, l.up, bits, l.key_rate_bps});
  }
  db_.install(ad, now);
  db_changed();
  last_originated_ = now;
  dirty_ = false;
  ++stats_.ads_originated;
  for (const auto& [n, l] : links_)
    if (l.up) net_.send(n, ad);
}

void node::on_ad(const node_id& from, link_state_ad ad, time_point now) {
  if (ad.origin == cfg_.self) {
    // Our own ad from before a restart: jump past its sequence number so the network takes ours.
    if (ad.sequence >= own_sequence_) {
      own_sequence_ = ad.sequence;
      originate(now);
    }
    return;
  }
  if (std::chrono::milliseconds(ad.age_ms) >= cfg_.lsa_max_age) return;
  if (!db_.install(ad, now)) return;
  db_changed();
  ++stats_.ads_installed;
  ad.age_ms += 1;
  for (const auto& [n, l] : links_)
    if (l.up && n != from) net_.send(n, ad);
}

void node::link_up(const node_id& neighbour, double key_rate_bps, time_point now) {
  auto& l = links_[neighbour];
  l.up = true;
  l.key_rate_bps = key_rate_bps;
  originate(now);
  for (auto& ad : db_.snapshot(now))
    if (ad.origin != cfg_.self) send(neighbour, std::move(ad));
  send(neighbour, pool_sync{pools_.outgoing_cursor(neighbour)});
  flush_results();
}

void node::set_key_rate(const node_id& neighbour, double key_rate_bps, time_point now) {
  auto it = links_.find(neighbour);
  if (it == links_.end()) return;
  it->second.key_rate_bps = key_rate_bps;
  dirty_ = true;  // advertised now, or by the first tick after min_advertise_interval
  if (now - last_originated_ >= cfg_.min_advertise_interval) originate(now);
}

void node::link_down(const node_id& neighbour, time_point now) {
  auto it = links_.find(neighbour);
  if (it == links_.end() || !it->second.up) return;
  it->second.up = false;
  originate(now);

  std::vector<std::string> hit;
  for (const auto& [id, s] : sources_)
    if (s.in_flight && std::any_of(s.paths.begin(), s.paths.end(), [&](const source_path& p) { return p.path[1] == neighbour; }))
      hit.push_back(id);
  for (const auto& id : hit) {
    auto& s = sources_.at(id);
    s.avoid.add_link(cfg_.self, neighbour);
    s.last_culprit = neighbour;
    abort_round(s, "link " + cfg_.self + "-" + neighbour + " went down", now);
  }
  for (auto t = transits_.begin(); t != transits_.end();) {
    const auto& st = t->second;
    if (st.path[st.hop_in] == neighbour) {
      send_abort(t->first, st.path, st.hop_in + 1, true, st.out_range, abort_reason::link_down, cfg_.self, neighbour);
      t = transits_.erase(t);
    } else if (st.path[st.hop_in + 2] == neighbour) {
      send_abort(t->first, st.path, st.hop_in, false, st.in_range, abort_reason::link_down, cfg_.self, neighbour);
      t = transits_.erase(t);
    } else {
      ++t;
    }
  }
  flush_results();
}

void node::db_changed() noexcept {
  edges_cache_.reset();
  route_cache_.clear();
}

expected<std::vector<std::vector<node_id>>> node::routes(const node_id& destination, route_type type, std::size_t key_bytes,
                                                         unsigned paths, const exclusions& ex) const {
  if (!edges_cache_) edges_cache_ = db_.edges();
  const auto& edges = *edges_cache_;
  const bool cacheable = ex.nodes.empty() && ex.links.empty();
  const route_key rk{destination, type, key_bytes, paths};
  if (cacheable) {
    if (auto it = route_cache_.find(rk); it != route_cache_.end()) return it->second;
  }
  auto computed = compute_routes(edges, destination, type, key_bytes, paths, ex);
  if (cacheable) route_cache_.insert_or_assign(rk, computed);
  return computed;
}

expected<std::vector<std::vector<node_id>>> node::compute_routes(const std::vector<edge>& edges, const node_id& destination,
                                                                 route_type type, std::size_t key_bytes, unsigned paths,
                                                                 const exclusions& ex) const {
  const std::uint64_t need = need_bits(key_bytes);
  switch (type) {
    case route_type::direct: {
      for (const auto& e : edges)
        if (e.from == cfg_.self && e.to == destination && e.available_bits >= need && !ex.has_link(e.from, e.to))
          return std::vector<std::vector<node_id>>{{cfg_.self, destination}};
      return fail(errc::insufficient_data, "no usable direct link " + cfg_.self + "-" + destination + " (route type direct needs an up link holding " +
                                             std::to_string(need) + " bits of key): " + destination +
                                             " is unreachable directly; use route type relay or wait for the link");
    }
    case route_type::relay: {
      if (auto p = shortest_path(edges, cfg_.self, destination, need, cfg_.weights, ex))
        return std::vector<std::vector<node_id>>{std::move(*p)};
      return fail(errc::insufficient_data, "no route from " + cfg_.self + " to " + destination + " with " + std::to_string(need) +
                                             " bits of key on every hop: " + destination +
                                             " is unreachable; check the links towards it or request a shorter key");
    }
    case route_type::multipath: {
      const unsigned k = paths == 0 ? cfg_.default_paths : paths;
      auto ps = disjoint_paths(edges, cfg_.self, destination, k, need, cfg_.weights, ex);
      if (ps.size() == k && k >= 2) return ps;
      return fail(errc::insufficient_data, "only " + std::to_string(ps.size()) + " node-disjoint path(s) from " + cfg_.self + " to " +
                                             destination + " can carry the key, multipath needs " + std::to_string(k) +
                                             ": " + destination + " is not reachable over disjoint paths; use route type relay or add links");
    }
  }
  return fail(errc::invalid_argument, "unknown route type");
}

// ---- source ----------------------------------------------------------------------------------

expected<void> node::request(relay_request r, time_point now) {
  if (r.key_id.empty()) return fail(errc::invalid_argument, "relay request without key ID; give every request a unique key_id");
  if (sources_.contains(r.key_id))
    return fail(errc::invalid_argument, "a relay of key '" + r.key_id + "' is already in flight; use a fresh key ID");
  if (r.destination.empty() || r.destination == cfg_.self)
    return fail(errc::invalid_argument, "relay destination must be another node (got '" + r.destination + "')");
  if (r.key_bytes < 1 || r.key_bytes > cfg_.max_key_bytes)
    return fail(errc::invalid_argument, "relay key size " + std::to_string(r.key_bytes) + " bytes is outside [1, " +
                                          std::to_string(cfg_.max_key_bytes) + "]");
  if (r.type == route_type::multipath) {
    if (r.paths == 0) r.paths = cfg_.default_paths;
    if (r.paths < 2 || r.paths > 16)
      return fail(errc::invalid_argument, "multipath needs 2 to 16 paths, got " + std::to_string(r.paths));
  } else {
    r.paths = 1;
  }
  source_session s;
  s.req = std::move(r);
  auto [it, inserted] = sources_.emplace(s.req.key_id, std::move(s));
  start_round(it->second, now);
  flush_results();
  return {};
}

void node::start_round(source_session& s, time_point now) {
  ++s.attempt;
  ++stats_.rounds_started;
  const std::size_t n = s.req.key_bytes;
  auto planned = routes(s.req.destination, s.req.type, n, s.req.paths, s.avoid);
  // Failed links are avoided when possible; if nothing else is left, try them again (the failure
  // may have been transient, and a persistent one fails the request within max_attempts anyway).
  if (!planned && !(s.avoid.nodes.empty() && s.avoid.links.empty()))
    planned = routes(s.req.destination, s.req.type, n, s.req.paths);
  if (!planned) {
    s.last_failure = planned.error().message;
    s.last_culprit = s.req.destination;
    s.in_flight = false;
    if (s.attempt >= cfg_.max_attempts) {
      finish(s.req.key_id, std::nullopt);
      return;
    }
    s.deadline = now + cfg_.retry_backoff;
    return;
  }
  // A fresh key every round: transit nodes of an aborted round may have seen shares of the old one.
  s.key = secure_buffer(n);
  rng_.fill(s.key.bytes());
  const std::size_t k = planned->size();
  std::vector<secure_buffer> shares;
  secure_buffer last = s.key.clone();
  for (std::size_t i = 0; i + 1 < k; ++i) {
    secure_buffer sh(n);
    rng_.fill(sh.bytes());
    xor_into(last.bytes(), sh.bytes());
    shares.push_back(std::move(sh));
  }
  shares.push_back(std::move(last));

  s.paths.clear();
  s.last_paths = *planned;
  s.in_flight = true;
  s.deadline = now + cfg_.attempt_timeout;
  for (std::size_t i = 0; i < k; ++i) {
    source_path sp;
    sp.path = std::move((*planned)[i]);
    const node_id next = sp.path[1];
    auto pad = pools_.take_next(next, n + hop_auth_key_bytes);
    if (!pad) {
      s.paths.push_back(std::move(sp));
      s.avoid.add_link(cfg_.self, next);
      s.last_culprit = next;
      abort_round(s, pad.error().message, now);
      return;
    }
    const auto kb = pad->bytes.bytes();
    relay_key m{share_ref{cfg_.self, s.req.key_id, s.attempt, static_cast<std::uint32_t>(i), static_cast<std::uint32_t>(k)},
                sp.path, 0, pad->range, std::move(shares[i]), 0};
    xor_into(m.ciphertext.bytes(), kb.first(n));
    m.tag = wc::tag(kb.subspan(n, wc::key_bytes), authenticated_bytes(m));
    sp.range = pad->range;
    sp.done_key = secure_buffer{kb.subspan(n + wc::key_bytes, wc::key_bytes)};
    s.paths.push_back(std::move(sp));
    send(next, std::move(m));
  }
}

void node::abort_round(source_session& s, std::string why, time_point now) {
  ++stats_.rounds_aborted;
  for (std::size_t i = 0; i < s.paths.size(); ++i) {
    const auto& sp = s.paths[i];
    if (sp.range.bytes == 0) continue;
    share_ref ref{cfg_.self, s.req.key_id, s.attempt, static_cast<std::uint32_t>(i), static_cast<std::uint32_t>(s.paths.size())};
    send_abort(ref, sp.path, 0, true, sp.range, abort_reason::cancelled, cfg_.self, std::nullopt);
  }
  s.paths.clear();
  s.key.reset();
  s.in_flight = false;
  s.last_failure = std::move(why);
  if (s.attempt >= cfg_.max_attempts) {
    finish(s.req.key_id, std::nullopt);
    return;
  }
  s.deadline = now + cfg_.retry_backoff;
}

void node::commit(source_session& s) {
  s.in_flight = false;
  const std::string key_id = s.req.key_id;
  auto stored = sink_.store(key_id, s.req.destination, std::move(s.key));
  if (!stored) {
    finish(key_id, error{stored.error().code, "key '" + key_id + "' reached " + s.req.destination +
                                                " but the local key store refused it: " + stored.error().message});
    return;
  }
  ++stats_.committed;
  pending_results_.push_back(relay_result{key_id, s.req.destination, s.req.type, s.attempt, s.last_paths, std::nullopt});
  sources_.erase(key_id);
}

void node::finish(const std::string& key_id, std::optional<error> failure) {
  // Called when the last round has failed (failure empty: build the error from the session).
  auto it = sources_.find(key_id);
  if (it == sources_.end()) return;
  auto& s = it->second;
  if (!failure) {
    const node_id& unreachable = s.last_culprit.empty() ? s.req.destination : s.last_culprit;
    failure = error{errc::io_error, "relay of key '" + key_id + "' from " + cfg_.self + " to " + s.req.destination + " failed after " +
                                      std::to_string(s.attempt) + " round(s); last failure: " + s.last_failure + "; node " + unreachable +
                                      " is unreachable: check its links and node, then request again"};
  }
  ++stats_.failed;
  pending_results_.push_back(relay_result{key_id, s.req.destination, s.req.type, s.attempt, s.last_paths, std::move(failure)});
  sources_.erase(it);
}

// ---- messages --------------------------------------------------------------------------------

void node::receive(const node_id& from, message m, time_point now) {
  if (!link_is_up(from)) return;  // a late message from a link we consider down
  std::visit(
    [&](auto&& v) {
      using T = std::decay_t<decltype(v)>;
      if constexpr (std::is_same_v<T, link_state_ad>) on_ad(from, std::move(v), now);
      else if constexpr (std::is_same_v<T, relay_key>) on_key(from, std::move(v), now);
      else if constexpr (std::is_same_v<T, relay_done>) on_done(from, v, now);
      else if constexpr (std::is_same_v<T, relay_abort>) on_abort(from, v, now);
      else if constexpr (std::is_same_v<T, pool_sync>) pools_.discard_incoming_below(from, v.outgoing_cursor);
    },
    m);
  flush_results();
}

void node::on_key(const node_id& from, relay_key m, time_point now) {
  const auto& p = m.path;
  if (p.size() < 2 || m.hop + 1 >= p.size() || p[m.hop] != from || p[m.hop + 1] != cfg_.self) {
    ++stats_.malformed;  // not addressed to this hop: nothing to abort
    return;
  }
  const bool well_formed = m.ref.attempt >= 1 && m.ref.share_count >= 1 && m.ref.share_count <= 16 &&
                           m.ref.share_index < m.ref.share_count && !m.ciphertext.empty() &&
                           m.ciphertext.size() <= cfg_.max_key_bytes &&
                           m.range.bytes == m.ciphertext.size() + hop_auth_key_bytes && p.front() == m.ref.source &&
                           distinct_nodes(p);
  if (!well_formed) {
    ++stats_.malformed;
    send_abort(m.ref, p, m.hop, false, std::nullopt, abort_reason::bad_message, cfg_.self, from);
    return;
  }
  auto pad = pools_.take_at(from, m.range);
  if (!pad) {
    ++stats_.replays_ignored;  // duplicate, replay, or a range burnt by an abort that overtook it
    return;
  }
  const std::size_t n = m.ciphertext.size();
  const auto kb = pad->bytes();
  if (!wc::verify(kb.subspan(n, wc::key_bytes), authenticated_bytes(m), m.tag)) {
    ++stats_.auth_failures;
    send_abort(m.ref, p, m.hop, false, m.range, abort_reason::auth_failure, cfg_.self, from);
    return;
  }
  secure_buffer share{m.ciphertext.bytes()};
  xor_into(share.bytes(), kb.first(n));
  secure_buffer done_key{kb.subspan(n + wc::key_bytes, wc::key_bytes)};
  if (m.hop + 2 == p.size()) as_destination(m, std::move(share), std::move(done_key), now);
  else as_transit(from, m, std::move(share), std::move(done_key), now);
}

void node::as_transit(const node_id& from, const relay_key& m, secure_buffer share, secure_buffer done_key, time_point now) {
  if (transits_.contains(m.ref)) {
    ++stats_.malformed;
    send_abort(m.ref, m.path, m.hop, false, m.range, abort_reason::bad_message, cfg_.self, from);
    return;
  }
  const node_id& next = m.path[m.hop + 2];
  if (!link_is_up(next)) {
    send_abort(m.ref, m.path, m.hop, false, m.range, abort_reason::link_down, cfg_.self, next);
    return;
  }
  const std::size_t n = share.size();
  auto pad = pools_.take_next(next, n + hop_auth_key_bytes);
  if (!pad) {
    send_abort(m.ref, m.path, m.hop, false, m.range, abort_reason::pool_exhausted, cfg_.self, next);
    return;
  }
  const auto kb = pad->bytes.bytes();
  relay_key fwd{m.ref, m.path, m.hop + 1, pad->range, std::move(share), 0};
  xor_into(fwd.ciphertext.bytes(), kb.first(n));
  fwd.tag = wc::tag(kb.subspan(n, wc::key_bytes), authenticated_bytes(fwd));
  transits_.emplace(m.ref, transit_state{m.path, m.hop, m.range, pad->range, std::move(done_key),
                                         secure_buffer{kb.subspan(n + wc::key_bytes, wc::key_bytes)}, now + cfg_.transit_timeout});
  ++stats_.hops_forwarded;
  send(next, std::move(fwd));
}

void node::as_destination(const relay_key& m, secure_buffer share, secure_buffer done_key, time_point now) {
  const origin_key key{m.ref.source, m.ref.key_id};
  auto upstream_abort = [&](abort_reason why) {
    send_abort(m.ref, m.path, m.hop, false, m.range, why, cfg_.self, std::nullopt);
  };
  if (auto st = stored_.find(key); st != stored_.end() && st->second.attempt >= m.ref.attempt) {
    upstream_abort(abort_reason::superseded);
    return;
  }
  auto it = incoming_.find(key);
  if (it != incoming_.end() && it->second.attempt > m.ref.attempt) {
    upstream_abort(abort_reason::superseded);
    return;
  }
  if (it != incoming_.end() && it->second.attempt < m.ref.attempt) {
    incoming_.erase(it);
    it = incoming_.end();
  }
  if (it == incoming_.end())
    it = incoming_.emplace(key, dest_round{m.ref.attempt, m.ref.share_count, {}, now + cfg_.transit_timeout}).first;
  auto& round = it->second;
  const bool consistent = round.share_count == m.ref.share_count && !round.shares.contains(m.ref.share_index) &&
                          (round.shares.empty() || round.shares.begin()->second.share.size() == share.size());
  if (!consistent) {
    ++stats_.malformed;
    upstream_abort(abort_reason::bad_message);
    return;
  }
  round.shares.emplace(m.ref.share_index, dest_share{m.path, m.hop, m.range, std::move(share), std::move(done_key)});
  if (round.shares.size() < round.share_count) return;

  dest_round complete = std::move(round);
  incoming_.erase(it);
  secure_buffer k(complete.shares.begin()->second.share.size());
  for (const auto& [idx, sh] : complete.shares) xor_into(k.bytes(), sh.share.bytes());
  auto stored = sink_.store(m.ref.key_id, m.ref.source, std::move(k));
  for (auto& [idx, sh] : complete.shares) {
    share_ref ref = m.ref;
    ref.share_index = idx;
    if (!stored) {
      send_abort(ref, sh.path, sh.hop, false, sh.range, abort_reason::store_failed, cfg_.self, cfg_.self);
      continue;
    }
    relay_done d{ref, sh.path, sh.hop, sh.range, 0};
    d.tag = wc::tag(sh.done_key.bytes(), authenticated_bytes(d));
    send(sh.path[sh.hop], std::move(d));
  }
  if (stored) {
    stored_[key] = stored_round{m.ref.attempt, now + cfg_.replay_horizon};
    stored_expiry_.emplace_back(now + cfg_.replay_horizon, key);
    ++stats_.keys_delivered;
  }
}

void node::on_done(const node_id& from, const relay_done& m, time_point now) {
  if (m.ref.source == cfg_.self) {
    auto it = sources_.find(m.ref.key_id);
    if (it == sources_.end()) return;
    auto& s = it->second;
    if (!s.in_flight || s.attempt != m.ref.attempt || m.ref.share_index >= s.paths.size() || m.hop != 0) return;
    auto& sp = s.paths[m.ref.share_index];
    if (sp.done || sp.path.size() < 2 || sp.path[1] != from || m.range != sp.range || m.path != sp.path) return;
    if (!wc::verify(sp.done_key.bytes(), authenticated_bytes(m), m.tag)) {
      ++stats_.auth_failures;
      s.avoid.add_link(cfg_.self, from);
      s.last_culprit = from;
      abort_round(s, "the completion message from " + from + " failed authentication", now);
      return;
    }
    sp.done = true;
    sp.done_key.reset();
    if (std::all_of(s.paths.begin(), s.paths.end(), [](const source_path& p) { return p.done; })) commit(s);
    return;
  }
  auto it = transits_.find(m.ref);
  if (it == transits_.end()) return;
  auto& t = it->second;
  if (m.hop != t.hop_in + 1 || from != t.path[t.hop_in + 2] || m.range != t.out_range || m.path != t.path) {
    ++stats_.malformed;
    return;
  }
  if (!wc::verify(t.done_key_out.bytes(), authenticated_bytes(m), m.tag)) {
    ++stats_.auth_failures;
    send_abort(it->first, t.path, t.hop_in, false, t.in_range, abort_reason::auth_failure, cfg_.self, from);
    send_abort(it->first, t.path, t.hop_in + 1, true, t.out_range, abort_reason::auth_failure, cfg_.self, from);
    transits_.erase(it);
    return;
  }
  relay_done up{m.ref, t.path, t.hop_in, t.in_range, 0};
  up.tag = wc::tag(t.done_key_in.bytes(), authenticated_bytes(up));
  const node_id prev = t.path[t.hop_in];
  transits_.erase(it);
  send(prev, std::move(up));
}

void node::on_abort(const node_id& from, const relay_abort& m, time_point now) {
  const auto& p = m.path;
  if (p.size() < 2 || m.hop + 1 >= p.size()) {
    ++stats_.malformed;
    return;
  }
  if (m.downstream) {
    if (p[m.hop] != from || p[m.hop + 1] != cfg_.self) {
      ++stats_.malformed;
      return;
    }
    if (m.range) pools_.discard_incoming(from, *m.range);
    if (m.hop + 2 == p.size()) {
      const origin_key key{m.ref.source, m.ref.key_id};
      if (auto it = incoming_.find(key); it != incoming_.end() && it->second.attempt == m.ref.attempt) incoming_.erase(it);
      if (auto it = stored_.find(key); it != stored_.end() && it->second.attempt == m.ref.attempt) {
        sink_.revoke(m.ref.key_id, m.ref.source);
        stored_.erase(it);
      }
      return;
    }
    std::optional<pool_range> out;
    if (auto it = transits_.find(m.ref); it != transits_.end()) {
      out = it->second.out_range;
      transits_.erase(it);
    }
    send_abort(m.ref, p, m.hop + 1, true, out, m.reason, m.reported_by, m.culprit);
    return;
  }
  if (p[m.hop + 1] != from || p[m.hop] != cfg_.self) {
    ++stats_.malformed;
    return;
  }
  if (m.hop == 0) {
    auto it = sources_.find(m.ref.key_id);
    if (p.front() != cfg_.self || m.ref.source != cfg_.self || it == sources_.end()) return;
    auto& s = it->second;
    if (!s.in_flight || s.attempt != m.ref.attempt) return;
    std::string why = std::string(to_string(m.reason)) + " reported by " + m.reported_by;
    if (m.culprit) {
      s.last_culprit = *m.culprit;
      if (*m.culprit != m.reported_by) {
        why += " (towards " + *m.culprit + ")";
        if (m.reason == abort_reason::link_down || m.reason == abort_reason::pool_exhausted ||
            m.reason == abort_reason::auth_failure)
          s.avoid.add_link(m.reported_by, *m.culprit);
      }
    } else {
      s.last_culprit = m.reported_by;
    }
    abort_round(s, std::move(why), now);
    return;
  }
  std::optional<pool_range> in;
  if (auto it = transits_.find(m.ref); it != transits_.end()) {
    in = it->second.in_range;
    transits_.erase(it);
  }
  send_abort(m.ref, p, m.hop - 1, false, in, m.reason, m.reported_by, m.culprit);
}

// ---- time ------------------------------------------------------------------------------------

void node::tick(time_point now) {
  if (!db_.expire(now, cfg_.lsa_max_age, cfg_.self).empty()) db_changed();
  const auto since = now - last_originated_;
  bool advertise = since >= cfg_.lsa_refresh;
  if (!advertise && since >= cfg_.min_advertise_interval) {
    advertise = dirty_;
    for (const auto& [n, l] : links_) {
      if (advertise) break;
      if (!l.up) continue;
      const double cur = 8.0 * static_cast<double>(pools_.available(n, stream::outgoing));
      const double adv = static_cast<double>(l.advertised_bits);
      advertise = std::abs(cur - adv) > cfg_.advertise_change_fraction * std::max(adv, 1.0);
    }
  }
  if (advertise) originate(now);

  std::vector<std::string> due;
  for (const auto& [id, s] : sources_)
    if (now >= s.deadline) due.push_back(id);
  for (const auto& id : due) {
    auto it = sources_.find(id);
    if (it == sources_.end()) continue;
    if (it->second.in_flight) {
      it->second.last_culprit.clear();
      abort_round(it->second, "no confirmation from " + it->second.req.destination + " within " + ms(cfg_.attempt_timeout), now);
    } else {
      start_round(it->second, now);
    }
  }
  for (auto t = transits_.begin(); t != transits_.end();) {
    if (now < t->second.deadline) {
      ++t;
      continue;
    }
    const auto& st = t->second;
    send_abort(t->first, st.path, st.hop_in, false, st.in_range, abort_reason::timeout, cfg_.self, std::nullopt);
    send_abort(t->first, st.path, st.hop_in + 1, true, st.out_range, abort_reason::timeout, cfg_.self, std::nullopt);
    t = transits_.erase(t);
  }
  for (auto r = incoming_.begin(); r != incoming_.end();) {
    if (now < r->second.deadline) {
      ++r;
      continue;
    }
    for (const auto& [idx, sh] : r->second.shares) {
      share_ref ref{r->first.first, r->first.second, r->second.attempt, idx, r->second.share_count};
      send_abort(ref, sh.path, sh.hop, false, sh.range, abort_reason::timeout, cfg_.self, std::nullopt);
    }
    r = incoming_.erase(r);
  }
  while (!stored_expiry_.empty() && now >= stored_expiry_.front().first) {
    const auto it = stored_.find(stored_expiry_.front().second);
    if (it != stored_.end() && now >= it->second.forget_at) stored_.erase(it);
    stored_expiry_.pop_front();
  }
  flush_results();
}

}  // namespace cvqkd::relay
