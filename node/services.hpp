#pragma once
// The node's HTTPS services on [node] api_listen (one api::https_server, mutual TLS against the
// node's CA, the node's own certificate):
//
//   ETSI GS QKD 014    /api/v1/keys/...   role cvqkd-sae       (node/api/etsi_api.hpp)
//   GET /admin/status                     cvqkd-operator, cvqkd-node: the node_status as JSON
//   GET /admin/routes                     cvqkd-operator, cvqkd-node: the relay's routing view
//   GET /admin/keys                       cvqkd-operator, cvqkd-node: end-to-end key counts per SAE pair
//   GET /metrics                          cvqkd-operator, cvqkd-node: Prometheus text exposition 0.0.4
//   POST /admin/drill                     cvqkd-operator: {"action": A, "link": ID, ...parameters}, A one
//                                         of cut-link, restore-link (ends any drill) or a fault
//                                         drill of drill_faults (parameters there)
//
// A client with another role gets 401 without a body. Every request is counted in
// cvqkd_api_requests_total / cvqkd_api_request_duration_seconds with route status | enc_keys |
// dec_keys | admin_status | admin_routes | admin_keys | metrics.
//
// /metrics refreshes the link series from status() before serializing (scrape-time collection):
// pool, state, β, SNR, 1 − FER, ξ̂, loss (from T_min), key rate of the last round, PE window,
// and the rounds / key-bit counters by the increase since the previous scrape. These series are
// owned here: the runtime must not also call observe_round for the same links.
//
// Not CAF: the runtime passes its status request as a std::function.

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "actors/messages.hpp"
#include "config/node_config.hpp"
#include "core/error.hpp"
#include "node/api/key_service.hpp"

namespace cvqkd::storage {
class key_store;
}
namespace cvqkd::api {
class key_provider;
class https_server;
}  // namespace cvqkd::api
namespace cvqkd::metrics {
struct node_metrics;
}

namespace cvqkd::node {

/// The runtime's answer to "what are your links doing" (blocking; called on a handler thread,
/// at most once per /admin/status or /metrics request).
using status_function = std::function<expected<actors::node_status>()>;
/// The relay's routing view as JSON (its shape is the relay's); empty function: none.
using routes_function = std::function<expected<nlohmann::json>()>;
/// An operator drill on one of this node's links: `action` "cut-link", "restore-link" or
/// "inject-fault" (with `faults`, ignored otherwise); returns what was done. Errors:
/// invalid_argument (unknown action or link, faults out of range) -> 400, others -> 503.
using drill_function = std::function<expected<std::string>(const std::string& action, const std::string& link_id,
                                                           const actors::link_faults& faults)>;

/// Default parameters of the fault drills (`cvqkd ctl drill ... --help` shows the same).
struct drill_defaults {
  static constexpr double xi = 0.2;                 // excess-noise: added xi, SNU
  static constexpr double lo_drift = 5e-6;          // lo-drift: rad^2 per symbol (xi_eff rises ~ relock_symbols x this)
  static constexpr double power_factor = 10.0;      // detector-saturation: 10 dB more light (a failed attenuator)
  static constexpr double sample_loss = 0.05;       // sample-loss: 5% of the symbols dropped
  static constexpr double launch_dbm = 0.0;         // crosstalk: classical launch power, dBm
  static constexpr double isolation_db = 90.0;      // crosstalk: DWDM isolation at the quantum receiver, dB
  static constexpr double shot_noise_drift = 0.05;  // calibration-drift: LO power +5% since calibration
};

/// The fault drills and their JSON parameters (all optional, defaults in drill_defaults):
///   excess-noise {xi}, lo-drift {rad2_per_symbol}, detector-saturation {power_factor},
///   sample-loss {probability}, crosstalk {launch_dbm, isolation_db} (turned into an excess noise
///   with hw::crosstalk_excess_noise over this link's fibre), calibration-drift {drift},
///   auth-failure {}.
/// Returns the link_faults for link `link_id` of `config`, validated (actors::validate_faults).
/// Errors: invalid_argument for an unknown drill or link, a parameter that is not a number or out
/// of range (nothing changes then).
expected<actors::link_faults> drill_faults(const config::node_config& config, const std::string& drill,
                                           const std::string& link_id, const nlohmann::json& params);
/// True for the names drill_faults knows.
bool is_fault_drill(const std::string& drill);

struct services_tuning {
  std::size_t io_threads = 1;
  std::size_t handler_threads = 4;
  api::key_limits limits;  // ETSI limits; max_key_count should match the store's
  std::chrono::milliseconds stop_grace{5'000};
};

class node_services {
public:
  /// Starts the HTTPS server on config.api_listen (port 0: an ephemeral port, see port()) with
  /// config.certificate / config.key, clients verified against config.ca. The ETSI routes are
  /// served when config.saes is not empty: every [[saes]] maps to this node (config.id), every
  /// [[remote_saes]] to its node. The references must outlive the node_services (stop() or the
  /// destructor first). Errors: config_error (no api_listen; unreadable or mismatched TLS
  /// files; an address that is not an IP literal or "localhost"), io_error (cannot bind).
  static expected<std::unique_ptr<node_services>> start(const config::node_config& config, storage::key_store& store,
                                                        api::key_provider& provider, metrics::node_metrics& metrics,
                                                        status_function status, routes_function routes = {},
                                                        services_tuning tuning = {}, drill_function drill = {});
  ~node_services();  // stop()
  node_services(const node_services&) = delete;
  node_services& operator=(const node_services&) = delete;

  /// The bound port.
  std::uint16_t port() const noexcept;
  /// Graceful stop (answers requests already read, then closes). Idempotent.
  void stop();

  struct state;

private:
  explicit node_services(std::unique_ptr<state> s);
  std::unique_ptr<state> state_;
};

/// The status JSON of /admin/status and `cvqkd node status --json`: {"node_id", "links": [...]},
/// each link with every link_status field; the last round's numbers in "last_round" (null when
/// none yet): outcome, key_bits, beta, snr, fer, xi_hat, xi_max, transmittance_min, seconds.
nlohmann::json to_json(const actors::node_status& s);
/// The inverse of to_json. Errors: parse_error naming the missing or mistyped field.
expected<actors::node_status> node_status_from_json(const nlohmann::json& j);

/// Per-link counter values seen at the previous collection (counters are advanced by the increase).
struct link_collection_state {
  struct seen {
    std::uint64_t rounds_completed = 0, rounds_aborted = 0, key_bits = 0;
  };
  std::map<std::string, seen> links;  // by link ID
};

/// Scrape-time collection: sets the link series of `metrics` from `status` (see the file comment).
/// A counter that went backwards (the link actor restarted and its counts reset) restarts from the
/// new value. Aborted rounds are classed by metrics::classify_abort_reason(last_error). `config`
/// supplies each link's PE window (links not in it get none).
void collect_link_metrics(metrics::node_metrics& metrics, const actors::node_status& status,
                          const config::node_config& config, link_collection_state& state);

}  // namespace cvqkd::node
