#include "node/relay_host.hpp"

#include <fmt/format.h>

#include <optional>

#include "relay/wire.hpp"

namespace cvqkd::node {

expected<relay_context> parse_relay_name(std::string_view name) {
  const auto bar1 = name.find('|');
  const auto bar2 = bar1 == std::string_view::npos ? bar1 : name.find('|', bar1 + 1);
  if (bar2 == std::string_view::npos)
    return fail(errc::parse_error, "relay request name is not <uuid>|<master>|<slaves>: a peer runs another version");
  auto id = storage::key_id::parse(name.substr(0, bar1));
  if (!id) return std::unexpected(id.error());
  relay_context c{*id, std::string(name.substr(bar1 + 1, bar2 - bar1 - 1)), {}};
  std::string_view rest = name.substr(bar2 + 1);
  while (!rest.empty()) {
    const auto comma = rest.find(',');
    c.slaves.emplace_back(rest.substr(0, comma));
    if (comma == std::string_view::npos) break;
    rest = rest.substr(comma + 1);
  }
  if (c.master.empty() || c.slaves.empty() || c.slaves.front().empty())
    return fail(errc::parse_error, "relay request name without master or slave SAE");
  return c;
}

std::string relay_name(const relay_context& c) {
  std::string s = c.id.to_string() + "|" + c.master + "|";
  for (std::size_t i = 0; i < c.slaves.size(); ++i) s += (i ? "," : "") + c.slaves[i];
  return s;
}

// One provide() call: its relay requests and their outcomes.
struct relay_host::pending {
  provide_callback done;
  std::size_t outstanding = 0;
  std::vector<storage::key_id> ids;
  std::optional<error> failure;
};

class relay_host::sink final : public relay::key_sink {
public:
  explicit sink(relay_host& h) : h_(h) {}
  expected<void> store(const std::string& key_id, const relay::node_id& peer, secure_buffer key) override {
    auto c = parse_relay_name(key_id);
    if (!c) return std::unexpected(c.error());
    // The source originated the name; anyone else is the destination.
    const bool source = h_.by_relay_id_.contains(key_id);
    storage::key_spec spec;
    spec.id = c->id;
    spec.master_sae = c->master;
    spec.slave_saes = c->slaves;
    spec.route = source ? std::vector<std::string>{h_.cfg_.relay.self, peer}
                        : std::vector<std::string>{peer, h_.cfg_.relay.self};
    spec.ttl = h_.cfg_.key_ttl;
    spec.state = storage::key_state::ready;
    spec.serve_master = source;
    // The source's copy also serves the slaves of this KME (multicast); the destination's serves
    // its own. A slave of the other KME stays pending in each copy until the key expires.
    bool local_slave = false;
    for (const auto& s : c->slaves) {
      auto n = h_.cfg_.sae_node.find(s);
      local_slave = local_slave || (n != h_.cfg_.sae_node.end() && n->second == h_.cfg_.relay.self);
    }
    spec.serve_slaves = !source || local_slave;
    auto r = h_.store_.put_key(spec, key.bytes());
    if (!r && r.error().code == errc::invalid_argument && !source) {
      // A newer round of the same relay key (relay::node admits only newer rounds): the earlier
      // round's key, whose abort never arrived (e.g. over a cut link), was never handed to the
      // master, so it is withdrawn and replaced.
      if (auto gone = h_.store_.revoke_key(c->id); gone && *gone) r = h_.store_.put_key(spec, key.bytes());
    }
    if (!r) return std::unexpected(r.error());
    if (r->status == storage::put_status::capacity_full)
      return fail(errc::insufficient_data, "the key store holds max_key_count keys for this SAE pair");
    if (r->status == storage::put_status::already_erased)
      return fail(errc::invalid_argument, "a key with this ID was delivered or erased before");
    return {};
  }
  void revoke(const std::string& key_id, const relay::node_id&) override {
    if (auto c = parse_relay_name(key_id)) (void)h_.store_.revoke_key(c->id);
  }

private:
  relay_host& h_;
};

class relay_host::listener final : public relay::relay_listener {
public:
  explicit listener(relay_host& h) : h_(h) {}
  void on_result(const relay::relay_result& r) override { h_.on_result(r); }

private:
  relay_host& h_;
};

class relay_host::transport final : public relay::transport {
public:
  explicit transport(relay_host& h) : h_(h) {}
  void send(const relay::node_id& to, relay::message m) override { h_.out_.send(to, relay::encode(m)); }

private:
  relay_host& h_;
};

relay_host::relay_host(relay_host_config cfg, storage::key_store& store, outbox& out, random_source& rng)
  : cfg_(std::move(cfg)), store_(store), out_(out), rng_(rng) {}
relay_host::~relay_host() = default;

expected<std::unique_ptr<relay_host>> relay_host::create(relay_host_config cfg, storage::key_store& store, outbox& out,
                                                         random_source& rng) {
  if (auto ok = cfg.relay.validate(); !ok) return std::unexpected(ok.error());
  auto h = std::unique_ptr<relay_host>(new relay_host(std::move(cfg), store, out, rng));
  h->pools_ = std::make_unique<store_key_pools>(store);
  for (const auto& l : h->cfg_.links) h->pools_->add_link(l.neighbour, l.link_id, l.self);
  h->sink_ = std::make_unique<sink>(*h);
  h->listener_ = std::make_unique<listener>(*h);
  h->transport_ = std::make_unique<transport>(*h);
  auto n = relay::node::create(h->cfg_.relay, *h->transport_, *h->pools_, *h->sink_, rng, *h->listener_);
  if (!n) return std::unexpected(n.error());
  h->node_ = std::move(*n);
  return h;
}

void relay_host::receive(const relay::node_id& from, std::span<const std::byte> bytes, relay::time_point now) {
  auto m = relay::decode(bytes);
  if (!m) {
    ++malformed_;
    return;
  }
  node_->receive(from, std::move(*m), now);
}

void relay_host::tick(relay::time_point now) { node_->tick(now); }

void relay_host::link_up(const relay::node_id& neighbour, double key_rate_bps, relay::time_point now) {
  node_->link_up(neighbour, key_rate_bps, now);
}

void relay_host::link_down(const relay::node_id& neighbour, relay::time_point now) { node_->link_down(neighbour, now); }

expected<std::vector<std::vector<relay::node_id>>> relay_host::routes(const relay::node_id& destination) const {
  return node_->routes(destination, relay::route_type::relay, 32);
}

const relay::node_stats& relay_host::stats() const noexcept { return node_->stats(); }

void relay_host::provide(const api::provide_request& r, provide_callback done, relay::time_point now) {
  const auto refuse = [&](errc code, std::string why) { done(std::unexpected(error{code, std::move(why)})); };
  if (r.number == 0 || r.size_bits == 0 || r.size_bits % 8 != 0)
    return refuse(errc::invalid_argument, "keys are provided in whole bytes: size must be a positive multiple of 8");
  if (r.slaves.empty()) return refuse(errc::invalid_argument, "a key needs at least one slave SAE");
  const auto node_of = [&](const std::string& sae) -> const std::string* {
    auto it = cfg_.sae_node.find(sae);
    return it == cfg_.sae_node.end() ? nullptr : &it->second;
  };
  // Multicast: the slaves may be at this KME and at (at most) one other KME, which the key is
  // relayed to; slaves of this KME fetch the source's copy.
  const std::string* dest = nullptr;
  for (const auto& s : r.slaves) {
    const std::string* n = node_of(s);
    if (n == nullptr) return refuse(errc::invalid_argument, "slave SAE " + s + " is not in this network");
    if (*n == cfg_.relay.self) continue;
    if (dest != nullptr && *n != *dest)
      return refuse(errc::invalid_argument,
                    fmt::format("the slaves of one request may be at this KME and at one other KME ({} is at {}, {} at "
                                "{}); request the others separately",
                                r.slaves.front(), *dest, s, *n));
    dest = n;
  }
  if (dest == nullptr) dest = &cfg_.relay.self;
  const auto make_ctx = [&]() -> expected<relay_context> {
    auto id = storage::key_id::generate();
    if (!id) return std::unexpected(id.error());
    return relay_context{*id, r.master_sae, r.slaves};
  };

  if (*dest == cfg_.relay.self) {
    // Both SAEs are at this site: the key comes from the node's random source.
    std::vector<storage::key_id> ids;
    for (std::size_t i = 0; i < r.number; ++i) {
      auto c = make_ctx();
      if (!c) return done(std::unexpected(c.error()));
      secure_buffer key(r.size_bits / 8);
      rng_.fill(key.bytes());
      storage::key_spec spec{c->id, r.master_sae, r.slaves, {cfg_.relay.self}, cfg_.key_ttl,
                             storage::key_state::ready, true, true};
      auto put = store_.put_key(spec, key.bytes());
      if (!put) return done(std::unexpected(put.error()));
      if (put->status == storage::put_status::capacity_full)
        return refuse(errc::insufficient_data, "this KME holds max_key_count keys for the pair; fetch some first");
      ids.push_back(c->id);
    }
    return done(std::move(ids));
  }

  relay::route_type type = relay::route_type::relay;
  if (r.route) {
    switch (*r.route) {
      case api::route_type::direct: type = relay::route_type::direct; break;
      case api::route_type::relay: type = relay::route_type::relay; break;
      case api::route_type::multipath: type = relay::route_type::multipath; break;
    }
  }
  if (type == relay::route_type::multipath) {
    // Without k node-disjoint paths with key to the destination now, a mandatory multipath request
    // is refused up front (400, not a 503 after three failed rounds); an optional one goes over
    // one path.
    if (auto paths = node_->routes(*dest, relay::route_type::multipath, r.size_bits / 8); !paths) {
      if (r.route_mandatory) return refuse(errc::unsupported, paths.error().message);
      type = relay::route_type::relay;
    }
  }
  if (type == relay::route_type::direct) {
    bool neighbour = false;
    for (const auto& l : cfg_.links) neighbour = neighbour || l.neighbour == *dest;
    if (!neighbour && r.route_mandatory)
      return refuse(errc::unsupported, "no direct QKD link between this KME and " + *dest);
    if (!neighbour) type = relay::route_type::relay;
  }
  auto p = std::make_shared<pending>();
  p->done = std::move(done);
  for (std::size_t i = 0; i < r.number; ++i) {
    auto c = make_ctx();
    if (!c) {
      p->failure = c.error();
      break;
    }
    const auto name = relay_name(*c);
    by_relay_id_[name] = p;
    ++p->outstanding;
    auto ok = node_->request(relay::relay_request{name, *dest, r.size_bits / 8, type, 0}, now);
    if (!ok) {
      by_relay_id_.erase(name);
      --p->outstanding;
      p->failure = ok.error();
      if (ok.error().code == errc::invalid_argument && type == relay::route_type::multipath && r.route_mandatory)
        p->failure = error{errc::unsupported, ok.error().message};
      break;
    }
  }
  if (p->outstanding == 0) {
    auto cb = std::move(p->done);
    if (p->failure) return cb(std::unexpected(*p->failure));
    return cb(std::move(p->ids));
  }
}

void relay_host::on_result(const relay::relay_result& r) {
  auto it = by_relay_id_.find(r.key_id);
  if (it == by_relay_id_.end()) return;
  auto p = it->second;
  by_relay_id_.erase(it);
  if (r.failure) {
    if (!p->failure) p->failure = *r.failure;
  } else if (auto c = parse_relay_name(r.key_id)) {
    p->ids.push_back(c->id);
  }
  if (--p->outstanding > 0) return;
  auto cb = std::move(p->done);
  if (p->failure) {
    // All or nothing: the master never sees these IDs (the slaves' copies expire unfetched).
    for (const auto& id : p->ids) (void)store_.erase_key(id);
    cb(std::unexpected(*p->failure));
  } else {
    cb(std::move(p->ids));
  }
}

}  // namespace cvqkd::node
