#include "node/relay_core.hpp"

#include <set>

#include <caf/scoped_actor.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "actors/system.hpp"
#include "core/drbg.hpp"

namespace cvqkd::node {

namespace {

class host_core final : public actors::relay_core, private relay_host::outbox {
public:
  host_core(relay_host_config cfg, actors::relay_outbox& out) : cfg_(std::move(cfg)), out_(out) {}
  expected<void> start(storage::key_store& store) {
    auto h = relay_host::create(cfg_, store, *this, rng_);
    if (!h) return std::unexpected(h.error());
    host_ = std::move(*h);
    return {};
  }

  void receive(const std::string& neighbour, std::span<const std::byte> bytes, time_point now) override {
    host_->receive(neighbour, bytes, now);
  }
  void tick(time_point now) override { host_->tick(now); }
  void link_up(const std::string& neighbour, double key_rate_bps, time_point now) override {
    up_.insert(neighbour);
    host_->link_up(neighbour, key_rate_bps, now);
  }
  void link_down(const std::string& neighbour, time_point now) override {
    up_.erase(neighbour);
    host_->link_down(neighbour, now);
  }
  void provide(const actors::relay_provide& r, provide_done done, time_point now) override {
    api::provide_request p;
    p.master_sae = r.master_sae;
    p.slaves = r.slaves;
    p.number = r.number;
    p.size_bits = r.size_bits;
    if (!r.route.empty()) {
      p.route = api::parse_route_type(r.route);
      if (!p.route) return done(fail(errc::invalid_argument, "unknown route type '" + r.route + "'"));
    }
    p.route_mandatory = r.route_mandatory;
    host_->provide(
      p,
      [done = std::move(done)](expected<std::vector<storage::key_id>> ids) {
        if (!ids) return done(std::unexpected(ids.error()));
        std::vector<std::string> out;
        for (const auto& id : *ids) out.push_back(id.to_string());
        done(std::move(out));
      },
      now);
  }
  std::string routes_json() const override {
    nlohmann::json j;
    j["node_id"] = cfg_.relay.self;
    j["links"] = nlohmann::json::array();
    for (const auto& l : cfg_.links)
      j["links"].push_back({{"link_id", l.link_id}, {"neighbour", l.neighbour}, {"usable", up_.contains(l.neighbour)}});
    std::set<std::string> destinations;
    for (const auto& [sae, n] : cfg_.sae_node) destinations.insert(n);
    for (const auto& l : cfg_.links) destinations.insert(l.neighbour);
    destinations.erase(cfg_.relay.self);
    j["routes"] = nlohmann::json::array();
    for (const auto& d : destinations) {
      nlohmann::json r{{"destination", d}};
      if (auto paths = host_->routes(d); paths && !paths->empty()) r["path"] = paths->front();
      else r["error"] = paths ? "no route" : paths.error().message;
      j["routes"].push_back(std::move(r));
    }
    const auto& s = host_->stats();
    j["stats"] = {{"rounds_started", s.rounds_started}, {"rounds_aborted", s.rounds_aborted},
                  {"committed", s.committed},           {"failed", s.failed},
                  {"keys_delivered", s.keys_delivered}, {"hops_forwarded", s.hops_forwarded},
                  {"auth_failures", s.auth_failures},   {"ads_installed", s.ads_installed}};
    return j.dump();
  }
  std::map<std::string, std::uint64_t> counters() const override {
    const auto& s = host_->stats();
    return {{"rounds_started", s.rounds_started}, {"rounds_aborted", s.rounds_aborted},
            {"committed", s.committed},           {"failed", s.failed},
            {"keys_delivered", s.keys_delivered}, {"hops_forwarded", s.hops_forwarded},
            {"auth_failures", s.auth_failures},   {"malformed", host_->malformed()}};
  }

private:
  void send(const relay::node_id& to, std::vector<std::byte> bytes) override { out_.send(to, std::move(bytes)); }

  relay_host_config cfg_;
  actors::relay_outbox& out_;
  system_random rng_;
  std::unique_ptr<relay_host> host_;
  std::set<std::string> up_;
};

}  // namespace

expected<relay_host_config> relay_config_of(const config::node_config& c) {
  relay_host_config r;
  r.relay.self = c.id;
  // A round gets 5 s to be confirmed (the library's 2 s is for its simulator): on a node whose CPU
  // is busy decoding, five hops of synced writes can take seconds; a link that goes down aborts the
  // round at once anyway.
  r.relay.attempt_timeout = std::chrono::milliseconds(5000);
  r.relay.transit_timeout = std::chrono::milliseconds(6000);
  std::set<std::string> neighbours;
  for (const auto& l : c.links) {
    if (!neighbours.insert(l.peer).second)
      return fail(errc::config_error,
                  fmt::format("{}: two [[links]] lead to node '{}'; the relay keeps one link-key stream per "
                              "neighbour: keep one of them",
                              c.source.string(), l.peer));
    r.links.push_back({l.peer, l.id, l.role == config::link_role::alice ? links::role::alice : links::role::bob});
  }
  for (const auto& s : c.saes) r.sae_node[s.id] = c.id;
  for (const auto& s : c.remote_saes) r.sae_node[s.id] = s.node;
  return r;
}

expected<std::unique_ptr<actors::relay_core>> make_relay_core(relay_host_config cfg, storage::key_store& store,
                                                              actors::relay_outbox& out) {
  auto core = std::make_unique<host_core>(std::move(cfg), out);
  if (auto ok = core->start(store); !ok) return std::unexpected(ok.error());
  return std::unique_ptr<actors::relay_core>(std::move(core));
}

error from_caf_error(const caf::actor_system& sys, const caf::error& e) {
  if (e.category() == actors::error_category() && e.code() >= 1 &&
      e.code() <= static_cast<std::uint8_t>(errc::cancelled))
    return error{static_cast<errc>(e.code()), actors::describe(e)};
  return error{errc::io_error, e.category() == actors::error_category() ? actors::describe(e) : sys.render(e)};
}

relay_key_provider::relay_key_provider(caf::actor_system& sys, actors::relay_actor relay,
                                       std::chrono::milliseconds timeout)
  : sys_(sys), relay_(std::move(relay)), timeout_(timeout) {}

expected<std::vector<storage::key_id>> relay_key_provider::provide(const api::provide_request& r) {
  actors::relay_provide req;
  req.master_sae = r.master_sae;
  req.slaves = r.slaves;
  req.number = r.number;
  req.size_bits = r.size_bits;
  if (r.route) req.route = std::string(api::to_string(*r.route));
  req.route_mandatory = r.route_mandatory;
  expected<std::vector<storage::key_id>> result = fail(errc::io_error, "the relay did not answer");
  caf::scoped_actor self{sys_};
  self->request(relay_, timeout_, std::move(req))
    .receive(
      [&](actors::relay_keys& keys) {
        std::vector<storage::key_id> ids;
        for (const auto& text : keys.ids) {
          auto id = storage::key_id::parse(text);
          if (!id) {
            result = std::unexpected(id.error());
            return;
          }
          ids.push_back(*id);
        }
        result = std::move(ids);
      },
      [&](caf::error& e) {
        auto err = from_caf_error(sys_, e);
        if (e == caf::sec::request_timeout)
          err = error{errc::io_error, fmt::format("the relay did not deliver within {} ms; try again", timeout_.count())};
        result = std::unexpected(std::move(err));
      });
  return result;
}

}  // namespace cvqkd::node
