#include "node/services.hpp"

#include <cmath>
#include <mutex>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "actors/link_faults.hpp"
#include "hw/simulator.hpp"
#include "node/api/etsi_api.hpp"
#include "node/api/https_server.hpp"
#include "node/api/store_key_service.hpp"
#include "node/metrics/metrics.hpp"
#include "node/pki/pki.hpp"
#include "storage/key_store.hpp"

namespace cvqkd::node {

using nlohmann::json;

struct node_services::state {
  state(const config::node_config& c, storage::key_store& st, metrics::node_metrics& m, status_function sf,
        routes_function rf, services_tuning t)
      : config(c), store(st), metrics(m), status(std::move(sf)), routes(std::move(rf)), tuning(std::move(t)) {}

  const config::node_config config;  // a copy: the caller's may go away
  storage::key_store& store;
  metrics::node_metrics& metrics;
  const status_function status;
  const routes_function routes;
  const services_tuning tuning;
  std::shared_ptr<api::store_key_service> service;  // null when the node serves no SAE
  std::shared_ptr<const api::router> etsi;          // the ETSI routes, dispatched through the outer router
  std::mutex collect_mutex;
  link_collection_state collected;
  std::unique_ptr<api::https_server> server;  // stopped and destroyed first
};

namespace {

using clock = std::chrono::steady_clock;

double seconds_since(clock::time_point t0) { return std::chrono::duration<double>(clock::now() - t0).count(); }

api::http_response json_response(const json& j) {
  api::http_response out;
  out.body = j.dump(-1, ' ', false, json::error_handler_t::replace);
  return out;
}

api::http_response error_503(const error& e) { return api::json_error(503, e.message); }

// Admin routes: operators and nodes (the router takes one role per route, so the check is here);
// every answer is counted under `route`.
api::http_handler admin_route(node_services::state* s, std::string route,
                              std::function<api::http_response(const api::http_request&)> f) {
  return [s, route = std::move(route), f = std::move(f)](const api::http_request& r) {
    const auto t0 = clock::now();
    api::http_response out;
    const auto& ou = r.peer.organizational_unit;
    if (ou != api::role_operator && ou != pki::role_node) {
      out.status = 401;
      out.content_type.clear();
    } else {
      out = f(r);
    }
    s->metrics.observe_api_request(route, static_cast<int>(out.status), seconds_since(t0));
    return out;
  };
}

// An ETSI route of the outer router: the inner (ETSI) router answers, the request is counted.
api::http_handler counted_etsi(node_services::state* s, std::string route) {
  return [s, route = std::move(route)](const api::http_request& r) {
    const auto t0 = clock::now();
    api::http_request inner = r;
    auto out = s->etsi->dispatch(inner);
    s->metrics.observe_api_request(route, static_cast<int>(out.status), seconds_since(t0));
    return out;
  };
}

expected<std::string> bind_address(const config::node_config& c) {
  if (!c.api_listen)
    return fail(errc::config_error, fmt::format("{}: node.api_listen is not set; add api_listen = \"127.0.0.1:PORT\" "
                                                "to [node] (HTTPS for the ETSI API, admin and metrics)",
                                                c.source.string()));
  if (c.api_listen->host == "localhost") return std::string("127.0.0.1");
  return c.api_listen->host;
}

json keys_json(node_services::state& s) {
  json pairs = json::array();
  std::vector<std::pair<std::string, std::string>> all;  // SAE -> KME
  for (const auto& l : s.config.saes) all.emplace_back(l.id, s.config.id);
  for (const auto& r : s.config.remote_saes) all.emplace_back(r.id, r.node);
  for (const auto& m : s.config.saes)
    for (const auto& [slave, kme] : all) {
      if (slave == m.id) continue;
      const auto st = s.store.status(m.id, slave);
      pairs.push_back({{"master_sae", m.id}, {"slave_sae", slave}, {"slave_kme", kme},
                       {"ready", st.ready}, {"live", st.live}});
    }
  return {{"node_id", s.config.id},
          {"pairs", std::move(pairs)},
          {"missing",
           "key ages and per-key provisioning latency are not recorded by the key store; the latency histogram is "
           "cvqkd_key_provisioning_latency_seconds at /metrics"}};
}

metrics::link_role role_of(const std::string& r) { return r == "bob" ? metrics::link_role::bob : metrics::link_role::alice; }

metrics::link_state state_of(const std::string& h) {
  if (h == "up") return metrics::link_state::up;
  if (h == "degraded") return metrics::link_state::degraded;
  return metrics::link_state::down;
}

// The increase of a counter since the last collection; a value below the last (counts reset by a
// restart) counts from zero.
std::uint64_t advance(std::uint64_t& last, std::uint64_t now) {
  const std::uint64_t d = now >= last ? now - last : now;
  last = now;
  return d;
}

}  // namespace

json to_json(const actors::node_status& n) {
  json links = json::array();
  for (const auto& s : n.links) {
    json j = {{"link_id", s.link_id},
              {"peer", s.peer},
              {"role", s.role},
              {"profile", s.profile},
              {"health", s.health},
              {"reason", s.reason},
              {"engine_state", s.engine_state},
              {"peer_connected", s.peer_connected},
              {"round", s.round},
              {"committed_round", s.committed_round},
              {"symbols_done", s.symbols_done},
              {"block_symbols", s.block_symbols},
              {"rounds_completed", s.rounds_completed},
              {"rounds_aborted", s.rounds_aborted},
              {"key_bits_committed", s.key_bits_committed},
              {"pool_bits", s.pool_bits},
              {"malformed_messages", s.malformed_messages},
              {"resends", s.resends},
              {"restarts", s.restarts},
              {"rejected_messages", s.rejected_messages},
              {"last_error", s.last_error},
              {"drill", s.drill}};
    if (s.has_last_round)
      j["last_round"] = {{"outcome", s.last_round_outcome}, {"key_bits", s.last_key_bits},
                         {"beta", s.beta},                  {"snr", s.snr},
                         {"fer", s.fer},                    {"xi_hat", s.xi_hat},
                         {"xi_max", s.xi_max},              {"transmittance_min", s.transmittance_min},
                         {"seconds", s.last_round_seconds}};
    else
      j["last_round"] = nullptr;
    links.push_back(std::move(j));
  }
  return {{"node_id", n.node_id}, {"links", std::move(links)}};
}

expected<actors::node_status> node_status_from_json(const json& j) {
  std::string where = "node_id";
  try {
    actors::node_status n;
    n.node_id = j.at("node_id").get<std::string>();
    where = "links";
    for (const auto& l : j.at("links")) {
      actors::link_status s;
      auto text = [&](const char* k, std::string& v) { where = k; v = l.at(k).get<std::string>(); };
      auto count = [&](const char* k, std::uint64_t& v) { where = k; v = l.at(k).get<std::uint64_t>(); };
      text("link_id", s.link_id);
      text("peer", s.peer);
      text("role", s.role);
      text("profile", s.profile);
      text("health", s.health);
      text("reason", s.reason);
      text("engine_state", s.engine_state);
      where = "peer_connected";
      s.peer_connected = l.at("peer_connected").get<bool>();
      count("round", s.round);
      count("committed_round", s.committed_round);
      count("symbols_done", s.symbols_done);
      count("block_symbols", s.block_symbols);
      count("rounds_completed", s.rounds_completed);
      count("rounds_aborted", s.rounds_aborted);
      count("key_bits_committed", s.key_bits_committed);
      count("pool_bits", s.pool_bits);
      count("malformed_messages", s.malformed_messages);
      count("resends", s.resends);
      count("restarts", s.restarts);
      count("rejected_messages", s.rejected_messages);
      text("last_error", s.last_error);
      if (l.contains("drill")) text("drill", s.drill);  // absent from nodes before the fault drills
      where = "last_round";
      const auto& r = l.at("last_round");
      s.has_last_round = !r.is_null();
      if (s.has_last_round) {
        auto num = [&](const char* k, double& v) { where = std::string("last_round.") + k; v = r.at(k).get<double>(); };
        where = "last_round.outcome";
        s.last_round_outcome = r.at("outcome").get<std::string>();
        where = "last_round.key_bits";
        s.last_key_bits = r.at("key_bits").get<std::uint64_t>();
        num("beta", s.beta);
        num("snr", s.snr);
        num("fer", s.fer);
        num("xi_hat", s.xi_hat);
        num("xi_max", s.xi_max);
        num("transmittance_min", s.transmittance_min);
        num("seconds", s.last_round_seconds);
      }
      n.links.push_back(std::move(s));
    }
    return n;
  } catch (const json::exception& e) {
    return fail(errc::parse_error, fmt::format("the node's status JSON has a missing or mistyped field '{}' ({}); "
                                               "are the node and this cvqkd the same version?",
                                               where, e.what()));
  }
}

void collect_link_metrics(metrics::node_metrics& m, const actors::node_status& status, const config::node_config& c,
                          link_collection_state& state) {
  for (const auto& s : status.links) {
    auto& lm = m.link(s.link_id, s.peer, role_of(s.role));
    lm.set_key_pool_bits(s.pool_bits);
    lm.set_state(state_of(s.health));
    if (const auto* l = c.find_link(s.link_id)) lm.set_pe_window(l->n_pe());

    auto& seen = state.links[s.link_id];
    for (std::uint64_t n = advance(seen.rounds_completed, s.rounds_completed); n > 0; --n) lm.round_completed();
    const auto aborted = advance(seen.rounds_aborted, s.rounds_aborted);
    const auto reason = metrics::classify_abort_reason(s.last_error);
    for (std::uint64_t n = aborted; n > 0; --n) lm.round_aborted(reason);
    // A tag that did not verify is also an authentication failure (the page CvqkdAuthenticationFailure).
    if (aborted > 0 && reason == metrics::abort_class::authentication)
      lm.add_authentication_failure(metrics::auth_failure::tag, aborted);
    if (const auto bits = advance(seen.key_bits, s.key_bits_committed); bits > 0) lm.add_secret_key_bits(bits);

    if (!s.has_last_round) continue;
    lm.set_beta(s.beta);
    lm.set_snr(s.snr);
    lm.set_reconciliation_success(1.0 - s.fer);
    // ξ̂ at the channel input; ξ_B = ηTξ needs T̂, which link_status does not carry (stays unknown).
    lm.set_excess_noise(s.xi_hat, std::nan(""));
    // The worst-case loss the last estimate allows, from its lower bound T_min on the transmittance.
    if (s.transmittance_min > 0.0 && s.transmittance_min <= 1.0) lm.set_channel_loss(-10.0 * std::log10(s.transmittance_min));
    if (s.last_round_outcome == "done" && s.last_round_seconds > 0.0)
      lm.set_secret_key_rate(static_cast<double>(s.last_key_bits) / s.last_round_seconds);
    else if (s.last_round_outcome == "aborted")
      lm.set_secret_key_rate(0.0);
  }
}

bool is_fault_drill(const std::string& d) {
  return d == "excess-noise" || d == "lo-drift" || d == "detector-saturation" || d == "sample-loss" ||
         d == "crosstalk" || d == "calibration-drift" || d == "auth-failure";
}

expected<actors::link_faults> drill_faults(const config::node_config& c, const std::string& drill,
                                           const std::string& link_id, const nlohmann::json& params) {
  const auto* link = c.find_link(link_id);
  if (link == nullptr)
    return fail(errc::invalid_argument,
                fmt::format("node {} has no link '{}'; `cvqkd ctl links` lists them", c.id, link_id));
  expected<void> params_ok;
  const auto number = [&](const char* key, double fallback) {
    if (!params.is_object() || !params.contains(key)) return fallback;
    const auto& v = params[key];
    if (!v.is_number()) {
      params_ok = fail(errc::invalid_argument, fmt::format("drill {}: parameter '{}' must be a number", drill, key));
      return fallback;
    }
    return v.get<double>();
  };
  actors::link_faults f;
  if (drill == "excess-noise") {
    f.excess_noise = number("xi", drill_defaults::xi);
    f.what = fmt::format("excess-noise xi +{:g} SNU", f.excess_noise);
    if (params_ok && !(f.excess_noise > 0))
      return fail(errc::invalid_argument,
                  fmt::format("excess-noise: xi = {:g} SNU: give an added excess noise in (0, 10] SNU", f.excess_noise));
  } else if (drill == "lo-drift") {
    f.lo_drift = number("rad2_per_symbol", drill_defaults::lo_drift);
    f.what = fmt::format("lo-drift {:g} rad^2/symbol", f.lo_drift);
    if (params_ok && !(f.lo_drift > 0))
      return fail(errc::invalid_argument,
                  fmt::format("lo-drift: {:g} rad^2/symbol: give a drift in (0, 1e-2]", f.lo_drift));
  } else if (drill == "detector-saturation") {
    f.power_factor = number("power_factor", drill_defaults::power_factor);
    f.what = fmt::format("detector-saturation optical power x{:g}", f.power_factor);
    if (params_ok && !(f.power_factor > 1))
      return fail(errc::invalid_argument,
                  fmt::format("detector-saturation: power factor {:g}: give a factor in (1, 1e4]", f.power_factor));
  } else if (drill == "sample-loss") {
    f.sample_loss = number("probability", drill_defaults::sample_loss);
    f.what = fmt::format("sample-loss p = {:g}", f.sample_loss);
    if (params_ok && !(f.sample_loss > 0))
      return fail(errc::invalid_argument,
                  fmt::format("sample-loss: probability {:g}: give a probability in (0, 1]", f.sample_loss));
  } else if (drill == "calibration-drift") {
    f.shot_noise_drift = number("drift", drill_defaults::shot_noise_drift);
    f.what = fmt::format("calibration-drift LO power {:+g}%", 100 * f.shot_noise_drift);
    if (params_ok && f.shot_noise_drift == 0)
      return fail(errc::invalid_argument, "calibration-drift: drift 0: give a relative drift in [-0.5, 0.5], not 0");
  } else if (drill == "crosstalk") {
    const double dbm = number("launch_dbm", drill_defaults::launch_dbm);
    const double iso = number("isolation_db", drill_defaults::isolation_db);
    if (params_ok) {
      if (!std::isfinite(dbm) || dbm < -60 || dbm > 30)
        return fail(errc::invalid_argument,
                    fmt::format("crosstalk: launch power {:g} dBm: give a classical launch power in [-60, 30] dBm", dbm));
      hw::classical_channel ch;
      ch.launch_power_mw = std::pow(10.0, dbm / 10.0);
      ch.isolation_db = iso;
      ch.length_km = link->length_km;
      ch.transmittance = link->transmittance();
      ch.symbol_rate_baud = link->profile.symbol_rate_baud;
      auto xi = hw::crosstalk_excess_noise(ch);
      if (!xi) return fail(errc::invalid_argument, "crosstalk: " + xi.error().message);
      f.crosstalk_xi = *xi;
      f.what = fmt::format("crosstalk classical {:g} dBm, isolation {:g} dB: xi +{:.3g} SNU", dbm, iso, *xi);
    }
  } else if (drill == "auth-failure") {
    f.corrupt_auth = true;
    f.what = "auth-failure (authentication key corrupted at the alice end)";
  } else {
    return fail(errc::invalid_argument,
                fmt::format("unknown drill '{}': use cut-link, restore-link, excess-noise, lo-drift, "
                            "detector-saturation, sample-loss, crosstalk, calibration-drift or auth-failure",
                            drill));
  }
  if (!params_ok) return std::unexpected(params_ok.error());
  if (auto ok = actors::validate_faults(f); !ok) return fail(errc::invalid_argument, drill + ": " + ok.error().message);
  return f;
}

node_services::node_services(std::unique_ptr<state> s) : state_(std::move(s)) {}

node_services::~node_services() { stop(); }

std::uint16_t node_services::port() const noexcept { return state_->server ? state_->server->port() : 0; }

void node_services::stop() {
  if (state_ && state_->server) {
    state_->server->stop(state_->tuning.stop_grace);
    state_->server.reset();
  }
}

expected<std::unique_ptr<node_services>> node_services::start(const config::node_config& c, storage::key_store& store,
                                                              api::key_provider& provider,
                                                              metrics::node_metrics& metrics, status_function status,
                                                              routes_function routes, services_tuning tuning,
                                                              drill_function drill) {
  auto address = bind_address(c);
  if (!address) return std::unexpected(address.error());
  if (!status) return fail(errc::invalid_argument, "node_services::start needs a status function");
  auto st = std::make_unique<state>(c, store, metrics, std::move(status), std::move(routes), tuning);
  state* s = st.get();

  auto outer = std::make_shared<api::router>();
  auto add = [&](const char* method, const char* pattern, std::string role, api::http_handler h) -> expected<void> {
    return outer->add(method, pattern, std::move(role), std::move(h));
  };

  if (!c.saes.empty()) {
    api::store_service_options so;
    so.kme_id = c.id;
    for (const auto& sae : c.saes) so.sae_kme.emplace(sae.id, c.id);
    for (const auto& sae : c.remote_saes) so.sae_kme.emplace(sae.id, sae.node);
    so.limits = tuning.limits;
    auto service = api::store_key_service::create(store, provider, std::move(so));
    if (!service) return std::unexpected(service.error());
    s->service = std::move(*service);
    auto etsi = std::make_shared<api::router>();
    if (auto ok = api::add_etsi_routes(*etsi, s->service); !ok) return std::unexpected(ok.error());
    s->etsi = std::move(etsi);
    // The same (method, pattern) pairs as etsi_api.hpp; the inner router checks the SAE role.
    const std::pair<const char*, const char*> etsi_routes[] = {
      {"GET", "status"}, {"GET", "enc_keys"}, {"POST", "enc_keys"}, {"GET", "dec_keys"}, {"POST", "dec_keys"}};
    for (const auto& [method, name] : etsi_routes) {
      const std::string pattern = std::string("/api/v1/keys/{sae}/") + name;
      if (auto ok = outer->add(method, pattern, "", counted_etsi(s, name)); !ok) return std::unexpected(ok.error());
    }
  }

  expected<void> ok = add("GET", "/admin/status", "", admin_route(s, "admin_status", [s](const api::http_request&) {
    auto n = s->status();
    return n ? json_response(to_json(*n)) : error_503(n.error());
  }));
  if (ok)
    ok = add("GET", "/admin/routes", "", admin_route(s, "admin_routes", [s](const api::http_request&) {
      if (!s->routes)
        return api::json_error(503, "this node has no routing view to show (the relay is not running in this node); "
                                    "see /admin/status for its links");
      auto r = s->routes();
      return r ? json_response(*r) : error_503(r.error());
    }));
  if (ok)
    ok = add("GET", "/admin/keys", "",
             admin_route(s, "admin_keys", [s](const api::http_request&) { return json_response(keys_json(*s)); }));
  if (ok)
    ok = add("GET", "/metrics", "", admin_route(s, "metrics", [s](const api::http_request&) {
      // A status failure still serves the registry (the link series keep their last values).
      if (auto n = s->status()) {
        std::lock_guard lock(s->collect_mutex);
        collect_link_metrics(s->metrics, *n, s->config, s->collected);
      }
      api::http_response out;
      out.content_type = "text/plain; version=0.0.4; charset=utf-8";
      out.body = s->metrics.serialize();
      return out;
    }));
  if (ok && drill)
    ok = add("POST", "/admin/drill", "", admin_route(s, "admin_drill", [drill, s](const api::http_request& r) {
      if (r.peer.organizational_unit != api::role_operator)
        return api::json_error(401, "drills need an operator certificate");
      const json body = json::parse(r.body, nullptr, false);
      if (body.is_discarded() || !body.is_object() || !body.contains("action") || !body["action"].is_string() ||
          !body.contains("link") || !body["link"].is_string())
        return api::json_error(400, "expected a JSON object {\"action\": \"cut-link\"|\"restore-link\"|FAULT, "
                                    "\"link\": LINK_ID, ...parameters}");
      const std::string action = body["action"], link = body["link"];
      actors::link_faults faults;
      std::string verb = action;
      if (is_fault_drill(action)) {
        auto f = drill_faults(s->config, action, link, body);
        if (!f) return api::json_error(400, f.error().message);
        faults = std::move(*f);
        verb = "inject-fault";
      }
      auto done = drill(verb, link, faults);
      if (!done)
        return api::json_error(done.error().code == errc::invalid_argument ? 400 : 503, done.error().message);
      json out{{"action", action}, {"link", link}, {"result", *done}};
      if (!faults.what.empty()) out["fault"] = faults.what;
      return json_response(out);
    }));
  if (!ok) return std::unexpected(ok.error());

  api::server_options so;
  so.address = *address;
  so.port = c.api_listen->port;
  so.tls = {c.certificate, c.key, c.ca};
  so.io_threads = tuning.io_threads;
  so.handler_threads = tuning.handler_threads;
  auto server = api::https_server::start(std::move(so), std::move(outer));
  if (!server)
    return fail(server.error().code, fmt::format("{}: node.api_listen = {}: {}", c.source.string(),
                                                 c.api_listen->to_string(), server.error().message));
  s->server = std::move(*server);
  return std::unique_ptr<node_services>(new node_services(std::move(st)));
}

}  // namespace cvqkd::node
