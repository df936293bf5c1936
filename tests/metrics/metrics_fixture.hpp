#pragma once
// Realistic values for a node's metrics (two links of a metro node, API traffic, relays, end-to-end
// keys), shared by metrics_test and metrics_fixture_server (which Prometheus scrapes in
// prometheus_scrape_test). The key rate of link "ko1-ko2" is the value the scrape test reads back.
#include <chrono>

#include "node/metrics/metrics.hpp"

namespace cvqkd::test_support {

inline constexpr double fixture_key_rate_bps = 1234.5;

inline void fill_fixture_metrics(metrics::node_metrics& m) {
  using namespace cvqkd::metrics;
  const auto t = std::chrono::system_clock::time_point(std::chrono::seconds(1'767'225'600));  // 2026-01-01
  auto& a = m.link("ko1-ko2", "ko2", link_role::alice);
  a.set_state(link_state::up);
  a.observe_round(round_summary{.completed = true, .secret_bits = 310'000, .seconds = 251.1, .frames = 24,
                                .frames_failed = 0, .pe_symbols = 2'000'000, .xi = 0.011, .xi_bob = 0.0052,
                                .loss_db = 1.2, .snr = 0.161, .beta = 0.93, .estimated_at = t});
  a.set_secret_key_rate(fixture_key_rate_bps);
  a.set_excess_noise_threshold(0.05);
  a.set_shot_noise(2.7e-5, 0.1);
  a.add_symbols(4'000'000, 12);
  a.add_saturation_events(0);
  a.set_key_pool_bits(1'048'576);

  auto& b = m.link("ko1-ot", "otemachi", link_role::bob);
  b.set_state(link_state::degraded);
  b.observe_round(round_summary{.completed = false, .reason = abort_class::reconciliation, .frames = 20,
                                .frames_failed = 3, .pe_symbols = 1'000'000, .xi = 0.031, .xi_bob = 0.004,
                                .loss_db = 9.8, .snr = 0.029, .beta = 0.92, .estimated_at = t});
  b.add_authentication_failure(auth_failure::tls);
  b.add_saturation_events(17);
  b.set_excess_noise_threshold(0.05);
  b.set_shot_noise(3.1e-5, 0.12);
  b.set_key_pool_bits(65'536);

  for (int i = 0; i < 50; ++i) m.observe_api_request("enc_keys", 200, 0.0008 + 0.0001 * i);
  m.observe_api_request("enc_keys", 400, 0.0004);
  m.observe_api_request("dec_keys", 200, 0.0012);
  m.observe_api_request("dec_keys", 503, 0.0020);
  m.observe_api_request("status", 200, 0.0003);
  m.observe_provisioning_latency(key_route::direct, 0.004);
  m.observe_provisioning_latency(key_route::relay, 0.35);
  m.relay_outcome(relay_result::delivered);
  m.relay_outcome(relay_result::pool_exhausted);
  m.e2e_key_stored("ko2", 256);
  m.e2e_key_delivered("ko2", 256);
  m.set_e2e_stock("ko2", 42);
}

}  // namespace cvqkd::test_support
