#include "node/metrics/metrics.hpp"

#include <prometheus/counter.h>
#include <prometheus/exposer.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cmath>
#include <exception>
#include <limits>
#include <sstream>

namespace cvqkd::metrics {

const double latency_buckets_seconds[16] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,   0.25,
                                            0.5,   1.0,    2.5,   5.0,  10.0,  30.0, 60.0, 120.0};

namespace {

constexpr std::array<abort_class, 10> all_abort_classes = {
    abort_class::authentication, abort_class::excess_noise, abort_class::saturation, abort_class::estimation,
    abort_class::reconciliation, abort_class::verification, abort_class::timeout,    abort_class::peer_lost,
    abort_class::stopped,        abort_class::other};

prometheus::Histogram::BucketBoundaries latency_buckets() {
  return {std::begin(latency_buckets_seconds), std::end(latency_buckets_seconds)};
}

// Gauges never receive NaN or infinities from here: a failed estimate must not poison the alert
// expressions (NaN compares false everywhere, so an alert on it would silently never fire).
void set_finite(prometheus::Gauge* g, double v) {
  if (std::isfinite(v)) g->Set(v);
}

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

}  // namespace

std::string_view to_string(link_role r) noexcept { return r == link_role::alice ? "alice" : "bob"; }

std::string_view to_string(link_state s) noexcept {
  switch (s) {
    case link_state::up: return "up";
    case link_state::degraded: return "degraded";
    case link_state::down: return "down";
  }
  return "down";
}

std::string_view to_string(abort_class c) noexcept {
  switch (c) {
    case abort_class::authentication: return "authentication";
    case abort_class::excess_noise: return "excess_noise";
    case abort_class::saturation: return "saturation";
    case abort_class::estimation: return "estimation";
    case abort_class::reconciliation: return "reconciliation";
    case abort_class::verification: return "verification";
    case abort_class::timeout: return "timeout";
    case abort_class::peer_lost: return "peer_lost";
    case abort_class::stopped: return "stopped";
    case abort_class::other: return "other";
  }
  return "other";
}

std::string_view to_string(auth_failure k) noexcept { return k == auth_failure::tag ? "tag" : "tls"; }

std::string_view to_string(key_route r) noexcept {
  switch (r) {
    case key_route::direct: return "direct";
    case key_route::relay: return "relay";
    case key_route::multipath: return "multipath";
  }
  return "direct";
}

std::string_view to_string(relay_result r) noexcept {
  switch (r) {
    case relay_result::delivered: return "delivered";
    case relay_result::no_route: return "no_route";
    case relay_result::timeout: return "timeout";
    case relay_result::link_down: return "link_down";
    case relay_result::pool_exhausted: return "pool_exhausted";
    case relay_result::auth_failure: return "auth_failure";
    case relay_result::bad_message: return "bad_message";
    case relay_result::store_failed: return "store_failed";
    case relay_result::superseded: return "superseded";
    case relay_result::cancelled: return "cancelled";
  }
  return "cancelled";
}

abort_class classify_abort_reason(std::string_view reason) noexcept {
  try {
    const std::string s = lower(reason);
    auto has = [&](std::string_view k) { return s.find(k) != std::string::npos; };
    // Order matters: the most specific (and most alarming) classes first. A used-up authentication
    // key is a supply problem, not a failed tag.
    if (has("exhausted")) return abort_class::other;
    if (has("too small") || has("too few")) return abort_class::estimation;
    if (has("authenticat") || has("tag ") || has(" tag") || has("forg") || has("tamper")) return abort_class::authentication;
    if (has("clipping") || has("saturat")) return abort_class::saturation;
    if (has("excess noise") || has("excess-noise") || has("xi_max") || has("xi ") || has("ξ")) return abort_class::excess_noise;
    if (has("verif") || has("confirm")) return abort_class::verification;
    if (has("reconcil") || has("decod") || has("frame")) return abort_class::reconciliation;
    if (has("estimat") || has("bound") || has("no key") || has("non-physical") || has("shot-noise") ||
        has("transmittance"))
      return abort_class::estimation;
    if (has("timeout") || has("timed out") || has("did not complete") || has("silent")) return abort_class::timeout;
    if (has("peer lost") || has("peer_lost") || has("unreachable") || has("channel down") || has("connection") || has("disconnect"))
      return abort_class::peer_lost;
    if (has("stop") || has("shutdown") || has("shut down")) return abort_class::stopped;
  } catch (...) {  // std::bad_alloc while copying: fall through to "other"
  }
  return abort_class::other;
}

// ---------------------------------------------------------------------------------------------
// link_metrics

void link_metrics::set_secret_key_rate(double bits_per_second) { set_finite(key_rate_, bits_per_second / 8.0); }
void link_metrics::add_secret_key_bits(std::uint64_t bits) { key_bits_->Increment(static_cast<double>(bits) / 8.0); }
void link_metrics::set_reconciliation_success(double ratio) { set_finite(recon_success_, std::clamp(ratio, 0.0, 1.0)); }
void link_metrics::add_reconciliation_frames(std::uint64_t frames, std::uint64_t failed) {
  frames_->Increment(static_cast<double>(frames));
  frames_failed_->Increment(static_cast<double>(std::min(failed, frames)));
}
void link_metrics::set_excess_noise(double xi_snu, double xi_bob_snu) {
  set_finite(xi_, xi_snu);
  set_finite(xi_bob_, xi_bob_snu);
}
void link_metrics::set_excess_noise_threshold(double xi_snu) { set_finite(xi_threshold_, xi_snu); }
void link_metrics::set_channel_loss(double db) { set_finite(loss_, db); }
void link_metrics::set_snr(double snr) { set_finite(snr_, snr); }
void link_metrics::set_beta(double beta) { set_finite(beta_, beta); }
void link_metrics::set_shot_noise(double n0_raw, double v_el_snu) {
  set_finite(n0_, n0_raw);
  set_finite(v_el_, v_el_snu);
}
void link_metrics::set_pe_window(std::uint64_t symbols) { pe_window_->Set(static_cast<double>(symbols)); }
void link_metrics::add_saturation_events(std::uint64_t clipped_samples) {
  saturation_->Increment(static_cast<double>(clipped_samples));
}
void link_metrics::add_symbols(std::uint64_t measured, std::uint64_t lost) {
  symbols_->Increment(static_cast<double>(measured));
  symbols_lost_->Increment(static_cast<double>(lost));
}
void link_metrics::add_authentication_failure(auth_failure kind, std::uint64_t n) {
  auth_failures_[static_cast<int>(kind)]->Increment(static_cast<double>(n));
}
void link_metrics::round_completed() { rounds_completed_->Increment(); }
void link_metrics::round_aborted(abort_class reason) { rounds_aborted_[static_cast<int>(reason)]->Increment(); }
void link_metrics::set_key_pool_bits(std::uint64_t bits) { pool_->Set(static_cast<double>(bits) / 8.0); }
void link_metrics::set_state(link_state s) {
  for (int i = 0; i < 3; ++i) state_[i]->Set(i == static_cast<int>(s) ? 1.0 : 0.0);
}
void link_metrics::set_last_estimation(std::chrono::system_clock::time_point t) {
  last_estimation_->Set(std::chrono::duration<double>(t.time_since_epoch()).count());
}

void link_metrics::observe_round(const round_summary& r) {
  if (!r.completed) {
    round_aborted(r.reason);
    if (r.reason == abort_class::authentication) add_authentication_failure(auth_failure::tag);
  } else {
    round_completed();
    add_secret_key_bits(r.secret_bits);
    if (r.seconds > 0.0) set_secret_key_rate(static_cast<double>(r.secret_bits) / r.seconds);
  }
  if (r.frames > 0) {
    add_reconciliation_frames(r.frames, r.frames_failed);
    set_reconciliation_success(1.0 - static_cast<double>(std::min(r.frames_failed, r.frames)) /
                                         static_cast<double>(r.frames));
    set_beta(r.beta);
  }
  if (r.pe_symbols > 0) {
    set_excess_noise(r.xi, r.xi_bob);
    set_channel_loss(r.loss_db);
    set_snr(r.snr);
    set_pe_window(r.pe_symbols);
    set_last_estimation(r.estimated_at);
  }
}

// ---------------------------------------------------------------------------------------------
// node_metrics: every family of the node is defined here, and only here.

struct node_metrics::families {
  prometheus::Family<prometheus::Gauge>* key_rate;
  prometheus::Family<prometheus::Counter>* key_bits;
  prometheus::Family<prometheus::Gauge>* recon_success;
  prometheus::Family<prometheus::Counter>* recon_frames;
  prometheus::Family<prometheus::Counter>* recon_frames_failed;
  prometheus::Family<prometheus::Gauge>* xi;
  prometheus::Family<prometheus::Gauge>* xi_bob;
  prometheus::Family<prometheus::Gauge>* xi_threshold;
  prometheus::Family<prometheus::Gauge>* loss;
  prometheus::Family<prometheus::Gauge>* snr;
  prometheus::Family<prometheus::Gauge>* beta;
  prometheus::Family<prometheus::Gauge>* n0;
  prometheus::Family<prometheus::Gauge>* v_el;
  prometheus::Family<prometheus::Gauge>* pe_window;
  prometheus::Family<prometheus::Counter>* saturation;
  prometheus::Family<prometheus::Counter>* symbols;
  prometheus::Family<prometheus::Counter>* symbols_lost;
  prometheus::Family<prometheus::Counter>* auth_failures;
  prometheus::Family<prometheus::Counter>* rounds_completed;
  prometheus::Family<prometheus::Counter>* rounds_aborted;
  prometheus::Family<prometheus::Gauge>* pool;
  prometheus::Family<prometheus::Gauge>* state;
  prometheus::Family<prometheus::Gauge>* last_estimation;
  prometheus::Family<prometheus::Histogram>* provisioning_latency;
  prometheus::Family<prometheus::Counter>* api_requests;
  prometheus::Family<prometheus::Histogram>* api_latency;
  prometheus::Family<prometheus::Counter>* relay_outcomes;
  prometheus::Family<prometheus::Counter>* e2e_stored;
  prometheus::Family<prometheus::Counter>* e2e_stored_bits;
  prometheus::Family<prometheus::Counter>* e2e_delivered;
  prometheus::Family<prometheus::Counter>* e2e_delivered_bits;
  prometheus::Family<prometheus::Gauge>* e2e_stock;
};

node_metrics::node_metrics(std::string id, std::shared_ptr<prometheus::Registry> reg, const families& f)
    : node_id(std::move(id)),
      registry(std::move(reg)),
      link_secret_key_rate(*f.key_rate),
      link_secret_key_bits(*f.key_bits),
      link_recon_success(*f.recon_success),
      link_recon_frames(*f.recon_frames),
      link_recon_frames_failed(*f.recon_frames_failed),
      link_xi(*f.xi),
      link_xi_bob(*f.xi_bob),
      link_xi_threshold(*f.xi_threshold),
      link_loss(*f.loss),
      link_snr(*f.snr),
      link_beta(*f.beta),
      link_n0(*f.n0),
      link_v_el(*f.v_el),
      link_pe_window(*f.pe_window),
      link_saturation(*f.saturation),
      link_symbols(*f.symbols),
      link_symbols_lost(*f.symbols_lost),
      link_auth_failures(*f.auth_failures),
      link_rounds_completed(*f.rounds_completed),
      link_rounds_aborted(*f.rounds_aborted),
      link_pool(*f.pool),
      link_state_gauge(*f.state),
      link_last_estimation(*f.last_estimation),
      provisioning_latency(*f.provisioning_latency),
      api_requests(*f.api_requests),
      api_latency(*f.api_latency),
      relay_outcomes(*f.relay_outcomes),
      e2e_stored(*f.e2e_stored),
      e2e_stored_bits(*f.e2e_stored_bits),
      e2e_delivered(*f.e2e_delivered),
      e2e_delivered_bits(*f.e2e_delivered_bits),
      e2e_stock(*f.e2e_stock) {}

node_metrics::~node_metrics() = default;

expected<std::unique_ptr<node_metrics>> node_metrics::create(std::string node_id) {
  if (node_id.empty()) return fail(errc::invalid_argument, "metrics: the node ID is empty; set the node's ID in its configuration");
  try {
    auto reg = std::make_shared<prometheus::Registry>();
    const prometheus::Labels node_label{{"node", node_id}};
    auto gauge = [&](const char* name, const char* help) {
      return &prometheus::BuildGauge().Name(name).Help(help).Labels(node_label).Register(*reg);
    };
    auto counter = [&](const char* name, const char* help) {
      return &prometheus::BuildCounter().Name(name).Help(help).Labels(node_label).Register(*reg);
    };
    auto histogram = [&](const char* name, const char* help) {
      return &prometheus::BuildHistogram().Name(name).Help(help).Labels(node_label).Register(*reg);
    };
    families f{};
    f.key_rate = gauge("cvqkd_link_secret_key_rate_bytes_per_second",
                       "Final secret key rate after privacy amplification (never raw key), bytes/s (bit/s / 8), of the latest round.");
    f.key_bits = counter("cvqkd_link_secret_key_bytes_total", "Final secret key released by the link, bytes (bits / 8).");
    f.recon_success = gauge("cvqkd_link_reconciliation_success_ratio",
                            "Reconciliation success rate 1 - FER (frames decoded and verified) of the latest round.");
    f.recon_frames = counter("cvqkd_link_reconciliation_frames_total", "Reconciliation frames attempted.");
    f.recon_frames_failed = counter("cvqkd_link_reconciliation_frames_failed_total",
                                    "Reconciliation frames that failed to decode or verify.");
    f.xi = gauge("cvqkd_link_excess_noise_snu",
                 "Estimated excess noise xi referred to the channel input, shot-noise units.");
    f.xi_bob = gauge("cvqkd_link_excess_noise_bob_snu", "Estimated excess noise at Bob xi_B = eta T xi, shot-noise units.");
    f.xi_threshold = gauge("cvqkd_link_excess_noise_threshold_snu",
                           "The link's excess-noise alarm threshold (channel input), shot-noise units.");
    f.loss = gauge("cvqkd_link_channel_loss_db", "Estimated channel loss -10 log10(T), dB.");
    f.snr = gauge("cvqkd_link_snr_ratio", "Estimated signal-to-noise ratio at Bob (linear).");
    f.beta = gauge("cvqkd_link_reconciliation_efficiency_ratio",
                   "Reconciliation efficiency beta: code rate over capacity at the measured SNR.");
    f.n0 = gauge("cvqkd_link_shot_noise_variance_raw",
                 "Shot-noise variance N0 from the latest calibration, raw detector units squared.");
    f.v_el = gauge("cvqkd_link_electronic_noise_snu", "Electronic noise v_el from the latest calibration, shot-noise units.");
    f.pe_window = gauge("cvqkd_link_pe_window_symbols", "Parameter-estimation window: symbols used per estimate.");
    f.saturation = counter("cvqkd_link_detector_saturation_events_total",
                           "Detector saturation events: ADC samples clipped at full scale.");
    f.symbols = counter("cvqkd_link_symbols_total", "Symbols measured by the link's hardware.");
    f.symbols_lost = counter("cvqkd_link_symbols_lost_total", "Symbols lost by the digitiser or firmware.");
    f.auth_failures = counter("cvqkd_link_authentication_failures_total",
                              "Authentication failures: Wegman-Carter tag (kind=tag) or TLS (kind=tls).");
    f.rounds_completed = counter("cvqkd_link_rounds_completed_total", "Link rounds that completed.");
    f.rounds_aborted = counter("cvqkd_link_rounds_aborted_total", "Link rounds aborted, by reason class.");
    f.pool = gauge("cvqkd_link_key_pool_bytes", "Unused key in the link's key pool, bytes (bits / 8).");
    f.state = gauge("cvqkd_link_state", "Link state, one-hot: 1 for the current state (up, degraded, down).");
    f.last_estimation = gauge("cvqkd_link_last_estimation_timestamp_seconds",
                              "Unix time of the link's latest parameter estimation.");
    f.provisioning_latency = histogram("cvqkd_key_provisioning_latency_seconds",
                                       "Key provisioning latency: key creation (or request) to availability at the API.");
    f.api_requests = counter("cvqkd_api_requests_total", "API requests answered, by route template and HTTP status.");
    f.api_latency = histogram("cvqkd_api_request_duration_seconds", "API request latency, by route template and HTTP status.");
    f.relay_outcomes = counter("cvqkd_relay_outcomes_total", "Relay rounds at this node, by outcome.");
    f.e2e_stored = counter("cvqkd_e2e_keys_stored_total", "End-to-end keys stored at this KME, by peer site.");
    f.e2e_stored_bits = counter("cvqkd_e2e_key_bytes_stored_total", "End-to-end key stored at this KME, bytes (bits / 8), by peer site.");
    f.e2e_delivered = counter("cvqkd_e2e_keys_delivered_total", "End-to-end keys delivered to SAEs, by peer site.");
    f.e2e_delivered_bits = counter("cvqkd_e2e_key_bytes_delivered_total", "End-to-end key delivered to SAEs, bytes (bits / 8), by peer site.");
    f.e2e_stock = gauge("cvqkd_e2e_key_stock_keys", "End-to-end keys in stock (stored, not yet delivered), by peer site.");
    return std::unique_ptr<node_metrics>(new node_metrics(std::move(node_id), std::move(reg), f));
  } catch (const std::exception& e) {
    return fail(errc::invalid_argument, std::string("metrics: cannot build the registry: ") + e.what() +
                                            " (a metric or label name is invalid; this is a bug, please report it)");
  }
}

link_metrics& node_metrics::link(std::string_view link_id, std::string_view peer, link_role role) {
  std::lock_guard lock(mutex_);
  auto key = std::make_tuple(std::string(link_id), std::string(peer), role);
  if (auto it = links_.find(key); it != links_.end()) return *it->second;
  const prometheus::Labels l{{"link", std::string(link_id)}, {"peer", std::string(peer)}, {"role", std::string(to_string(role))}};
  auto with = [&l](const char* name, std::string_view value) {
    auto out = l;
    out.emplace(name, std::string(value));
    return out;
  };
  std::unique_ptr<link_metrics> m(new link_metrics());
  m->key_rate_ = &link_secret_key_rate.Add(l);
  m->key_bits_ = &link_secret_key_bits.Add(l);
  m->recon_success_ = &link_recon_success.Add(l);
  m->frames_ = &link_recon_frames.Add(l);
  m->frames_failed_ = &link_recon_frames_failed.Add(l);
  m->xi_ = &link_xi.Add(l);
  m->xi_bob_ = &link_xi_bob.Add(l);
  m->xi_threshold_ = &link_xi_threshold.Add(l);
  m->loss_ = &link_loss.Add(l);
  m->snr_ = &link_snr.Add(l);
  m->beta_ = &link_beta.Add(l);
  m->n0_ = &link_n0.Add(l);
  m->v_el_ = &link_v_el.Add(l);
  m->pe_window_ = &link_pe_window.Add(l);
  m->saturation_ = &link_saturation.Add(l);
  m->symbols_ = &link_symbols.Add(l);
  m->symbols_lost_ = &link_symbols_lost.Add(l);
  for (auto k : {auth_failure::tag, auth_failure::tls})
    m->auth_failures_[static_cast<int>(k)] = &link_auth_failures.Add(with("kind", to_string(k)));
  m->rounds_completed_ = &link_rounds_completed.Add(l);
  for (auto c : all_abort_classes) m->rounds_aborted_[static_cast<int>(c)] = &link_rounds_aborted.Add(with("reason", to_string(c)));
  m->pool_ = &link_pool.Add(l);
  for (auto s : {link_state::up, link_state::degraded, link_state::down})
    m->state_[static_cast<int>(s)] = &link_state_gauge.Add(with("state", to_string(s)));
  m->last_estimation_ = &link_last_estimation.Add(l);
  // Nothing is known of a new link: its estimates read NaN (not 0, which would look like a perfect
  // channel and feed alert baselines), and its state is down until the runtime says otherwise.
  for (auto* g : {m->key_rate_, m->recon_success_, m->xi_, m->xi_bob_, m->xi_threshold_, m->loss_, m->snr_, m->beta_,
                  m->n0_, m->v_el_, m->pe_window_, m->pool_, m->last_estimation_})
    g->Set(std::numeric_limits<double>::quiet_NaN());
  m->set_state(link_state::down);
  auto& ref = *m;
  links_.emplace(std::move(key), std::move(m));
  return ref;
}

void node_metrics::observe_provisioning_latency(key_route route, double seconds) {
  if (!std::isfinite(seconds)) return;
  provisioning_latency.Add({{"route_type", std::string(to_string(route))}}, latency_buckets()).Observe(seconds);
}

void node_metrics::observe_api_request(std::string_view route, int code, double seconds) {
  std::pair<prometheus::Counter*, prometheus::Histogram*> series;
  {
    std::lock_guard lock(mutex_);
    auto key = std::make_pair(std::string(route), code);
    auto it = api_.find(key);
    if (it == api_.end()) {
      const prometheus::Labels l{{"route", key.first}, {"code", std::to_string(code)}};
      it = api_.emplace(key, std::make_pair(&api_requests.Add(l), &api_latency.Add(l, latency_buckets()))).first;
    }
    series = it->second;
  }
  series.first->Increment();
  if (std::isfinite(seconds)) series.second->Observe(seconds);
}

void node_metrics::relay_outcome(relay_result r) { relay_outcomes.Add({{"result", std::string(to_string(r))}}).Increment(); }

void node_metrics::e2e_key_stored(std::string_view peer, std::uint64_t bits) {
  const prometheus::Labels l{{"peer", std::string(peer)}};
  e2e_stored.Add(l).Increment();
  e2e_stored_bits.Add(l).Increment(static_cast<double>(bits) / 8.0);
}

void node_metrics::e2e_key_delivered(std::string_view peer, std::uint64_t bits) {
  const prometheus::Labels l{{"peer", std::string(peer)}};
  e2e_delivered.Add(l).Increment();
  e2e_delivered_bits.Add(l).Increment(static_cast<double>(bits) / 8.0);
}

void node_metrics::set_e2e_stock(std::string_view peer, std::uint64_t keys) {
  e2e_stock.Add({{"peer", std::string(peer)}}).Set(static_cast<double>(keys));
}

std::string node_metrics::serialize() const {
  std::ostringstream out;
  prometheus::TextSerializer{}.Serialize(out, registry->Collect());
  return out.str();
}

// ---------------------------------------------------------------------------------------------
// metrics_exposer

expected<std::unique_ptr<metrics_exposer>> metrics_exposer::start(const std::shared_ptr<prometheus::Registry>& registry,
                                                                  const std::string& address) {
  const auto colon = address.rfind(':');
  if (colon == std::string::npos || colon + 1 == address.size())
    return fail(errc::invalid_argument, "metrics exposer: '" + address + "' is not HOST:PORT; use e.g. 127.0.0.1:9464");
  const std::string host = address.substr(0, colon);
  if (!(host.starts_with("127.") || host == "[::1]" || host == "localhost"))
    return fail(errc::invalid_argument, "metrics exposer: '" + host +
                                            "' is not a loopback address; the plain-HTTP exposer binds only 127.0.0.1 or [::1] "
                                            "(serve /metrics to the network over the node's HTTPS server)");
  if (!registry) return fail(errc::invalid_argument, "metrics exposer: no registry given");
  try {
    std::unique_ptr<metrics_exposer> e(new metrics_exposer());
    e->exposer_ = std::make_unique<prometheus::Exposer>(address, 1);
    e->exposer_->RegisterCollectable(registry);
    const auto ports = e->exposer_->GetListeningPorts();
    if (ports.empty()) return fail(errc::io_error, "metrics exposer: bound no port on " + address + "; choose another port");
    e->port_ = ports.front();
    return e;
  } catch (const std::exception& ex) {
    return fail(errc::io_error, "metrics exposer: cannot listen on " + address + " (" + ex.what() +
                                    "); choose another port or stop the process that holds it");
  }
}

metrics_exposer::~metrics_exposer() = default;

}  // namespace cvqkd::metrics
