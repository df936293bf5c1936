#pragma once
// The node's Prometheus metrics: one registry per node, every metric family defined in one place
// (node_metrics::create in metrics.cpp), and small typed handles the runtime updates with plain
// numbers. Names follow cvqkd_<component>_<quantity>_<unit> (../shared/reference/style.md) and the
// Prometheus conventions: counters end in _total, base units (_seconds, _bytes), ratios in 0..1,
// variances in shot-noise units (_snu). Key amounts are exposed in bytes (Prometheus's base unit
// for information; `promtool check metrics` rejects _bits), fractional where a bit count is not a
// multiple of 8; the setters take bits, as everywhere else in cvqkd. Dashboards multiply by 8. What each indicator means and why operators watch it:
// ../shared/reference/operations.md. Alert rules and dashboards over these names: deploy/.
//
// Thread safety: every setter is safe from any thread (prometheus-cpp metrics are atomic); handle
// look-ups take a mutex, so hot paths should keep the returned reference (it stays valid for the
// lifetime of the node_metrics).
//
// This header includes no prometheus-cpp header: the families are forward-declared.

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <tuple>

#include "core/error.hpp"

namespace prometheus {
class Registry;
class Counter;
class Gauge;
class Histogram;
class Exposer;
template <typename T>
class Family;
}  // namespace prometheus

namespace cvqkd::metrics {

/// Which end of a link this node runs (label `role`).
enum class link_role { alice, bob };
/// Operator-facing link state (label `state` of cvqkd_link_state): up = producing key, degraded =
/// running but below objective (retries, low β, ξ near its threshold), down = no key production.
enum class link_state { up, degraded, down };
/// Why a round was aborted, as a small fixed set (label `reason` of cvqkd_link_rounds_aborted_total;
/// free text stays in the logs so that the label's cardinality stays bounded).
enum class abort_class {
  authentication,   // a classical-channel tag did not verify
  excess_noise,     // ξ above the link's threshold
  saturation,       // ADC clipping above the veto level
  estimation,       // other estimation vetoes: no positive key bound, non-physical estimates
  reconciliation,   // too many frames failed to decode
  verification,     // verification or key confirmation failed
  timeout,          // the peer went silent
  peer_lost,        // the classical channel went down
  stopped,          // shut down by the operator
  other,
};
/// Kind of authentication failure (label `kind`): a Wegman–Carter tag on the link protocol, or a
/// TLS handshake/certificate failure on a node-to-node or API connection.
enum class auth_failure { tag, tls };
/// How an end-to-end key travels (label `route_type`; the ETSI vendor extension cvqkd_route_type).
enum class key_route { direct, relay, multipath };
/// Outcome of one relay round at this node (label `result` of cvqkd_relay_outcomes_total); the abort
/// values mirror relay::abort_reason.
enum class relay_result {
  delivered, no_route, timeout, link_down, pool_exhausted, auth_failure, bad_message, store_failed,
  superseded, cancelled,
};

/// Stable lower-case label values, e.g. "alice", "degraded", "excess_noise", "pool_exhausted".
std::string_view to_string(link_role r) noexcept;
std::string_view to_string(link_state s) noexcept;
std::string_view to_string(abort_class c) noexcept;
std::string_view to_string(auth_failure k) noexcept;
std::string_view to_string(key_route r) noexcept;
std::string_view to_string(relay_result r) noexcept;

/// Maps a free-text abort reason (links::round_report::abort_reason, engine last_error) to its class by
/// keywords ("tag"/"authenticat" -> authentication, "excess noise"/"xi" -> excess_noise, "clipping"/
/// "saturat" -> saturation, ...); unknown text gives abort_class::other.
abort_class classify_abort_reason(std::string_view reason) noexcept;

/// What one finished round of a link reports (plain numbers; the runtime copies them from
/// links::round_report and the estimation). Variances in SNU, loss in dB, SNR linear.
struct round_summary {
  bool completed = false;                  // false: aborted
  abort_class reason = abort_class::other; // when aborted
  std::uint64_t secret_bits = 0;           // final key released by the round
  double seconds = 0.0;                    // wall time of the round: the key rate is secret_bits / seconds
  std::uint64_t frames = 0, frames_failed = 0;  // reconciliation frames tried / not decoded or verified
  std::uint64_t pe_symbols = 0;            // symbols disclosed for parameter estimation (0: no estimate)
  double xi = 0.0, xi_bob = 0.0;           // excess noise at the channel input, and at Bob (ξ_B = ηTξ)
  double loss_db = 0.0, snr = 0.0, beta = 0.0;
  std::chrono::system_clock::time_point estimated_at{};  // when the estimate was made
};

/// The series of one link end (labels node, link, peer, role). All members point into the registry.
/// Until first set, the gauges read NaN (unknown; alert expressions on them stay false) and the state
/// is down.
class link_metrics {
public:
  /// Final secret key rate after privacy amplification, bit/s (never raw key; exposed in bytes/s).
  void set_secret_key_rate(double bits_per_second);
  /// Adds released final key bits (counter cvqkd_link_secret_key_bytes_total, in bytes).
  void add_secret_key_bits(std::uint64_t bits);
  /// Reconciliation success rate 1 − FER (0..1) of the latest round, and the frame counters.
  void set_reconciliation_success(double ratio);
  void add_reconciliation_frames(std::uint64_t frames, std::uint64_t failed);
  /// Excess noise ξ (referred to the channel input) and ξ_B at Bob, SNU; the link's alarm threshold.
  void set_excess_noise(double xi_snu, double xi_bob_snu);
  void set_excess_noise_threshold(double xi_snu);
  void set_channel_loss(double db);
  void set_snr(double snr);
  /// Reconciliation efficiency β (0..1).
  void set_beta(double beta);
  /// Shot-noise calibration: raw N0 (detector units², as measured with the signal blocked) and the
  /// electronic noise v_el (SNU).
  void set_shot_noise(double n0_raw, double v_el_snu);
  /// Parameter-estimation window: symbols used per estimate.
  void set_pe_window(std::uint64_t symbols);
  /// Detector saturation: ADC samples clipped (each one an event).
  void add_saturation_events(std::uint64_t clipped_samples);
  /// Symbols measured and symbols lost by the digitiser (the sample-loss failure mode).
  void add_symbols(std::uint64_t measured, std::uint64_t lost);
  void add_authentication_failure(auth_failure kind, std::uint64_t n = 1);
  void round_completed();
  void round_aborted(abort_class reason);
  /// Link key pool: stored, unused key bits of this link (exposed in bytes).
  void set_key_pool_bits(std::uint64_t bits);
  /// Sets the one-hot state gauges (exactly one of up/degraded/down is 1).
  void set_state(link_state s);
  /// Time of the last parameter estimation.
  void set_last_estimation(std::chrono::system_clock::time_point t);
  /// Records a finished round: rounds counters (an abort of class authentication also counts one
  /// tag failure: do not count it again), for a completed round the key bits and key rate, when
  /// frames > 0 the frame counters, 1 − FER and β, and when pe_symbols > 0 ξ, ξ_B, loss, SNR, PE
  /// window and estimation time.
  void observe_round(const round_summary& r);

private:
  friend struct node_metrics;
  link_metrics() = default;
  prometheus::Gauge *key_rate_ = nullptr, *recon_success_ = nullptr, *xi_ = nullptr, *xi_bob_ = nullptr,
                    *xi_threshold_ = nullptr, *loss_ = nullptr, *snr_ = nullptr, *beta_ = nullptr,
                    *n0_ = nullptr, *v_el_ = nullptr, *pe_window_ = nullptr, *pool_ = nullptr,
                    *last_estimation_ = nullptr;
  prometheus::Gauge* state_[3] = {nullptr, nullptr, nullptr};
  prometheus::Counter *key_bits_ = nullptr, *frames_ = nullptr, *frames_failed_ = nullptr,
                      *saturation_ = nullptr, *symbols_ = nullptr, *symbols_lost_ = nullptr,
                      *rounds_completed_ = nullptr;
  prometheus::Counter* auth_failures_[2] = {nullptr, nullptr};
  prometheus::Counter* rounds_aborted_[10] = {};
};

/// Every metric family of a node, and the registry that holds them. Build with create(); the
/// families are public so that tests and the exposition can reach them, the handles below are the
/// way to update them.
struct node_metrics {
  /// Builds the registry and all families; every series carries the constant label node=<node_id>.
  /// Errors: invalid_argument when node_id is empty.
  static expected<std::unique_ptr<node_metrics>> create(std::string node_id);
  ~node_metrics();
  node_metrics(const node_metrics&) = delete;
  node_metrics& operator=(const node_metrics&) = delete;

  /// The series of one link end, created on first use (labels link, peer, role).
  link_metrics& link(std::string_view link_id, std::string_view peer, link_role role);

  /// One key provisioning latency sample: from key creation (or request) to availability at the
  /// API, seconds (histogram, buckets 1 ms .. 120 s).
  void observe_provisioning_latency(key_route route, double seconds);
  /// One API request: `route` is the route template ("status", "enc_keys", "dec_keys", "admin_links",
  /// ...; never a path with IDs in it), `code` the HTTP status, `seconds` the time to answer.
  void observe_api_request(std::string_view route, int code, double seconds);
  void relay_outcome(relay_result r);
  /// End-to-end (ETSI) keys shared with `peer` (the other site of the pair): stored at this KME,
  /// delivered to an SAE, and the keys in stock now.
  void e2e_key_stored(std::string_view peer, std::uint64_t bits);
  void e2e_key_delivered(std::string_view peer, std::uint64_t bits);
  void set_e2e_stock(std::string_view peer, std::uint64_t keys);

  /// The Prometheus text exposition (format 0.0.4) of every family, for the node's own /metrics.
  std::string serialize() const;

  const std::string node_id;
  const std::shared_ptr<prometheus::Registry> registry;

  // Per link end (labels link, peer, role; plus state / reason / kind where noted).
  prometheus::Family<prometheus::Gauge>& link_secret_key_rate;        // cvqkd_link_secret_key_rate_bytes_per_second
  prometheus::Family<prometheus::Counter>& link_secret_key_bits;      // cvqkd_link_secret_key_bytes_total
  prometheus::Family<prometheus::Gauge>& link_recon_success;          // cvqkd_link_reconciliation_success_ratio
  prometheus::Family<prometheus::Counter>& link_recon_frames;         // cvqkd_link_reconciliation_frames_total
  prometheus::Family<prometheus::Counter>& link_recon_frames_failed;  // cvqkd_link_reconciliation_frames_failed_total
  prometheus::Family<prometheus::Gauge>& link_xi;                     // cvqkd_link_excess_noise_snu
  prometheus::Family<prometheus::Gauge>& link_xi_bob;                 // cvqkd_link_excess_noise_bob_snu
  prometheus::Family<prometheus::Gauge>& link_xi_threshold;           // cvqkd_link_excess_noise_threshold_snu
  prometheus::Family<prometheus::Gauge>& link_loss;                   // cvqkd_link_channel_loss_db
  prometheus::Family<prometheus::Gauge>& link_snr;                    // cvqkd_link_snr_ratio
  prometheus::Family<prometheus::Gauge>& link_beta;                   // cvqkd_link_reconciliation_efficiency_ratio
  prometheus::Family<prometheus::Gauge>& link_n0;                     // cvqkd_link_shot_noise_variance_raw
  prometheus::Family<prometheus::Gauge>& link_v_el;                   // cvqkd_link_electronic_noise_snu
  prometheus::Family<prometheus::Gauge>& link_pe_window;              // cvqkd_link_pe_window_symbols
  prometheus::Family<prometheus::Counter>& link_saturation;           // cvqkd_link_detector_saturation_events_total
  prometheus::Family<prometheus::Counter>& link_symbols;              // cvqkd_link_symbols_total
  prometheus::Family<prometheus::Counter>& link_symbols_lost;         // cvqkd_link_symbols_lost_total
  prometheus::Family<prometheus::Counter>& link_auth_failures;        // cvqkd_link_authentication_failures_total{kind}
  prometheus::Family<prometheus::Counter>& link_rounds_completed;     // cvqkd_link_rounds_completed_total
  prometheus::Family<prometheus::Counter>& link_rounds_aborted;       // cvqkd_link_rounds_aborted_total{reason}
  prometheus::Family<prometheus::Gauge>& link_pool;                   // cvqkd_link_key_pool_bytes
  prometheus::Family<prometheus::Gauge>& link_state_gauge;            // cvqkd_link_state{state}
  prometheus::Family<prometheus::Gauge>& link_last_estimation;        // cvqkd_link_last_estimation_timestamp_seconds
  // Node-wide.
  prometheus::Family<prometheus::Histogram>& provisioning_latency;    // cvqkd_key_provisioning_latency_seconds{route_type}
  prometheus::Family<prometheus::Counter>& api_requests;              // cvqkd_api_requests_total{route,code}
  prometheus::Family<prometheus::Histogram>& api_latency;             // cvqkd_api_request_duration_seconds{route,code}
  prometheus::Family<prometheus::Counter>& relay_outcomes;            // cvqkd_relay_outcomes_total{result}
  prometheus::Family<prometheus::Counter>& e2e_stored;                // cvqkd_e2e_keys_stored_total{peer}
  prometheus::Family<prometheus::Counter>& e2e_stored_bits;           // cvqkd_e2e_key_bytes_stored_total{peer}
  prometheus::Family<prometheus::Counter>& e2e_delivered;             // cvqkd_e2e_keys_delivered_total{peer}
  prometheus::Family<prometheus::Counter>& e2e_delivered_bits;        // cvqkd_e2e_key_bytes_delivered_total{peer}
  prometheus::Family<prometheus::Gauge>& e2e_stock;                   // cvqkd_e2e_key_stock_keys{peer}

private:
  struct families;
  explicit node_metrics(std::string id, std::shared_ptr<prometheus::Registry> reg, const families& f);
  mutable std::mutex mutex_;
  std::map<std::tuple<std::string, std::string, link_role>, std::unique_ptr<link_metrics>> links_;
  std::map<std::pair<std::string, int>, std::pair<prometheus::Counter*, prometheus::Histogram*>> api_;
};

/// Bucket upper bounds (seconds) of the provisioning-latency and API-latency histograms: 1 ms .. 120 s
/// (30 s is the provisioning objective for local links in operations.md; the buckets above it let a
/// p99 beyond the objective be measured rather than clamped to 30 s).
extern const double latency_buckets_seconds[16];

/// A plain-HTTP /metrics endpoint (prometheus-cpp's civetweb Exposer) for loopback scraping, e.g. by
/// a local Prometheus or node exporter sidecar. Shutting one down takes about 2 s: create one per
/// process. The node's public /metrics is served over HTTPS by its own server through serialize().
class metrics_exposer {
public:
  /// Binds `address` ("127.0.0.1:9464"; port 0 picks a free port) and serves `registry` at /metrics.
  /// Errors: invalid_argument unless the host is a loopback address (127.x.y.z or [::1]); io_error
  /// when the port cannot be bound (choose another port or stop the process that holds it).
  static expected<std::unique_ptr<metrics_exposer>> start(const std::shared_ptr<prometheus::Registry>& registry,
                                                          const std::string& address);
  ~metrics_exposer();
  /// The port actually bound.
  int port() const noexcept { return port_; }

private:
  metrics_exposer() = default;
  std::unique_ptr<prometheus::Exposer> exposer_;
  int port_ = 0;
};

/// Shorthand for metrics_exposer::start.
inline expected<std::unique_ptr<metrics_exposer>> start_exposer(const std::shared_ptr<prometheus::Registry>& registry,
                                                                const std::string& address) {
  return metrics_exposer::start(registry, address);
}

}  // namespace cvqkd::metrics
