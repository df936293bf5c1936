// node_metrics: naming conventions, promtool's linter over a populated registry, the typed update
// API (values, units, NaN handling, one-hot state, abort classes), concurrency and the exposer.
#include <gtest/gtest.h>

#include <prometheus/registry.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <set>
#include <string>
#include <thread>

#include "tests/metrics/metrics_fixture.hpp"
#include "tests/metrics/test_helpers.hpp"
#include "tests/test_seed.hpp"

namespace {

using namespace cvqkd::metrics;
using cvqkd::test_support::parse_exposition;
using cvqkd::test_support::series_key;

std::unique_ptr<node_metrics> populated() {
  auto m = node_metrics::create("ko1");
  EXPECT_TRUE(m.has_value());
  cvqkd::test_support::fill_fixture_metrics(**m);
  return std::move(*m);
}

std::map<std::string, std::string> types_of(const std::string& text) {
  std::map<std::string, std::string> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (!line.starts_with("# TYPE ")) continue;
    std::istringstream words(line.substr(7));
    std::string name, type;
    words >> name >> type;
    out[name] = type;
  }
  return out;
}

std::map<std::string, std::string> link_labels(const std::string& link, const std::string& peer, const std::string& role) {
  return {{"node", "ko1"}, {"link", link}, {"peer", peer}, {"role", role}};
}

TEST(metrics, every_family_follows_the_naming_conventions) {
  const auto types = types_of(populated()->serialize());
  // The families the issue asks for (operations.md's indicators, API, relay, e2e keys).
  for (const char* name :
       {"cvqkd_link_secret_key_rate_bytes_per_second", "cvqkd_link_secret_key_bytes_total",
        "cvqkd_link_reconciliation_success_ratio", "cvqkd_link_excess_noise_snu", "cvqkd_link_excess_noise_bob_snu",
        "cvqkd_link_channel_loss_db", "cvqkd_link_snr_ratio", "cvqkd_link_reconciliation_efficiency_ratio",
        "cvqkd_link_shot_noise_variance_raw", "cvqkd_link_electronic_noise_snu", "cvqkd_link_pe_window_symbols",
        "cvqkd_link_detector_saturation_events_total", "cvqkd_link_authentication_failures_total",
        "cvqkd_link_rounds_completed_total", "cvqkd_link_rounds_aborted_total", "cvqkd_link_key_pool_bytes",
        "cvqkd_link_state", "cvqkd_link_last_estimation_timestamp_seconds", "cvqkd_key_provisioning_latency_seconds",
        "cvqkd_api_requests_total", "cvqkd_api_request_duration_seconds", "cvqkd_relay_outcomes_total",
        "cvqkd_e2e_keys_stored_total", "cvqkd_e2e_keys_delivered_total", "cvqkd_e2e_key_stock_keys"})
    EXPECT_TRUE(types.contains(name)) << name << " is missing from the exposition";
  EXPECT_EQ(types.size(), 32u) << "a family was added or removed: update this test, the README and the dashboards";
  for (const auto& [name, type] : types) {
    EXPECT_TRUE(name.starts_with("cvqkd_")) << name;
    EXPECT_EQ(type == "counter", name.ends_with("_total")) << name << " (" << type << "): counters and only counters end in _total";
    EXPECT_EQ(name.find("_bits"), std::string::npos) << name << ": Prometheus's base unit is bytes";
  }
  EXPECT_EQ(types.at("cvqkd_key_provisioning_latency_seconds"), "histogram");
  EXPECT_EQ(types.at("cvqkd_api_request_duration_seconds"), "histogram");
}

TEST(metrics, promtool_check_metrics_accepts_the_exposition) {
  const auto dir = std::filesystem::temp_directory_path() / ("cvqkd_metrics_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const auto file = dir / "metrics.prom";
  std::ofstream(file) << populated()->serialize();
  const auto [rc, out] = cvqkd::test_support::run_command(std::string(CVQKD_PROMTOOL) + " check metrics < " + file.string());
  std::filesystem::remove_all(dir);
  EXPECT_EQ(rc, 0) << "promtool check metrics reported:\n" << out;
  EXPECT_EQ(out, "") << "promtool check metrics reported:\n" << out;
}

TEST(metrics, promtool_check_metrics_would_catch_a_bad_name) {
  // The linter really runs: a counter without _total and a _bits unit are reported.
  const auto [rc, out] = cvqkd::test_support::run_command(
      std::string("printf '# HELP x_key_bits Bad.\\n# TYPE x_key_bits counter\\nx_key_bits 1\\n' | ") + CVQKD_PROMTOOL +
      " check metrics");
  EXPECT_NE(rc, 0);
  EXPECT_NE(out.find("x_key_bits"), std::string::npos) << out;
}

TEST(metrics, link_values_arrive_in_base_units) {
  auto m = populated();
  const auto v = parse_exposition(m->serialize());
  const auto a = link_labels("ko1-ko2", "ko2", "alice");
  const auto b = link_labels("ko1-ot", "otemachi", "bob");
  // Key amounts: bits in, bytes out.
  EXPECT_DOUBLE_EQ(v.at(series_key("cvqkd_link_secret_key_rate_bytes_per_second", a)),
                   cvqkd::test_support::fixture_key_rate_bps / 8);
  EXPECT_DOUBLE_EQ(v.at(series_key("cvqkd_link_secret_key_bytes_total", a)), 310'000.0 / 8);
  EXPECT_DOUBLE_EQ(v.at(series_key("cvqkd_link_key_pool_bytes", a)), 1'048'576.0 / 8);
  EXPECT_DOUBLE_EQ(v.at(series_key("cvqkd_link_excess_noise_snu", a)), 0.011);
  EXPECT_DOUBLE_EQ(v.at(series_key("cvqkd_link_excess_noise_bob_snu", a)), 0.0052);
  EXPECT_DOUBLE_EQ(v.at(series_key("cvqkd_link_channel_loss_db", a)), 1.2);
  EXPECT_DOUBLE_EQ(v.at(series_key("cvqkd_link_snr_ratio", a)), 0.161);
  EXPECT_DOUBLE_EQ(v.at(series_key("cvqkd_link_reconciliation_efficiency_ratio", a)), 0.93);
  EXPECT_DOUBLE_EQ(v.at(series_key("cvqkd_link_reconciliation_success_ratio", a)), 1.0);
  EXPECT_DOUBLE_EQ(v.at(series_key("cvqkd_link_shot_noise_variance_raw", a)), 2.7e-5);
  EXPECT_DOUBLE_EQ(v.at(series_key("cvqkd_link_electronic_noise_snu", a)), 0.1);
  EXPECT_DOUBLE_EQ(v.at(series_key("cvqkd_link_pe_window_symbols", a)), 2e6);
  EXPECT_DOUBLE_EQ(v.at(series_key("cvqkd_link_last_estimation_timestamp_seconds", a)), 1'767'225'600.0);
  EXPECT_DOUBLE_EQ(v.at(series_key("cvqkd_link_symbols_lost_total", a)), 12.0);
  // The aborted round of link b: 3 of 20 frames failed, its key counters untouched.
  EXPECT_DOUBLE_EQ(v.at(series_key("cvqkd_link_reconciliation_success_ratio", b)), 1.0 - 3.0 / 20.0);
  EXPECT_DOUBLE_EQ(v.at(series_key("cvqkd_link_reconciliation_frames_failed_total", b)), 3.0);
  EXPECT_DOUBLE_EQ(v.at(series_key("cvqkd_link_secret_key_bytes_total", b)), 0.0);
  EXPECT_TRUE(std::isnan(v.at(series_key("cvqkd_link_secret_key_rate_bytes_per_second", b))))
      << "a link that never completed a round has no key rate yet (NaN), not 0";
  auto with = [](auto l, const char* k, const char* val) {
    l[k] = val;
    return l;
  };
  EXPECT_DOUBLE_EQ(v.at(series_key("cvqkd_link_rounds_aborted_total", with(b, "reason", "reconciliation"))), 1.0);
  EXPECT_DOUBLE_EQ(v.at(series_key("cvqkd_link_rounds_aborted_total", with(b, "reason", "authentication"))), 0.0);
  EXPECT_DOUBLE_EQ(v.at(series_key("cvqkd_link_rounds_completed_total", a)), 1.0);
  EXPECT_DOUBLE_EQ(v.at(series_key("cvqkd_link_authentication_failures_total", with(b, "kind", "tls"))), 1.0);
  EXPECT_DOUBLE_EQ(v.at(series_key("cvqkd_link_detector_saturation_events_total", b)), 17.0);
  EXPECT_DOUBLE_EQ(v.at(series_key("cvqkd_link_state", with(a, "state", "up"))), 1.0);
  EXPECT_DOUBLE_EQ(v.at(series_key("cvqkd_link_state", with(b, "state", "degraded"))), 1.0);
  EXPECT_DOUBLE_EQ(v.at(series_key("cvqkd_link_state", with(b, "state", "up"))), 0.0);
}

TEST(metrics, link_state_is_one_hot_and_starts_down) {
  auto m = std::move(*node_metrics::create("n"));
  auto& l = m->link("x", "y", link_role::bob);
  auto state = [&](const char* s) {
    return parse_exposition(m->serialize())
        .at(series_key("cvqkd_link_state", {{"node", "n"}, {"link", "x"}, {"peer", "y"}, {"role", "bob"}, {"state", s}}));
  };
  EXPECT_EQ(state("down"), 1.0);
  EXPECT_EQ(state("up") + state("degraded"), 0.0);
  for (auto s : {link_state::up, link_state::degraded, link_state::down, link_state::up}) {
    l.set_state(s);
    EXPECT_EQ(state("up") + state("degraded") + state("down"), 1.0);
    EXPECT_EQ(state(std::string(to_string(s)).c_str()), 1.0);
  }
}

TEST(metrics, the_same_link_gives_the_same_handle_and_non_finite_values_are_ignored) {
  auto m = std::move(*node_metrics::create("n"));
  auto& a = m->link("x", "y", link_role::alice);
  EXPECT_EQ(&a, &m->link("x", "y", link_role::alice));
  EXPECT_NE(&a, &m->link("x", "y", link_role::bob));
  a.set_excess_noise(0.02, 0.01);
  a.set_excess_noise(std::nan(""), INFINITY);
  a.set_reconciliation_success(1.5);  // clamped into 0..1
  const auto v = parse_exposition(m->serialize());
  const std::map<std::string, std::string> l{{"node", "n"}, {"link", "x"}, {"peer", "y"}, {"role", "alice"}};
  EXPECT_EQ(v.at(series_key("cvqkd_link_excess_noise_snu", l)), 0.02);
  EXPECT_EQ(v.at(series_key("cvqkd_link_excess_noise_bob_snu", l)), 0.01);
  EXPECT_EQ(v.at(series_key("cvqkd_link_reconciliation_success_ratio", l)), 1.0);
}

TEST(metrics, an_authentication_abort_counts_one_tag_failure) {
  auto m = std::move(*node_metrics::create("n"));
  auto& a = m->link("x", "y", link_role::alice);
  a.observe_round({.completed = false, .reason = abort_class::authentication});
  const auto v = parse_exposition(m->serialize());
  const std::map<std::string, std::string> l{{"node", "n"}, {"link", "x"}, {"peer", "y"}, {"role", "alice"}};
  auto with = [&](const char* k, const char* val) {
    auto c = l;
    c[k] = val;
    return c;
  };
  EXPECT_EQ(v.at(series_key("cvqkd_link_rounds_aborted_total", with("reason", "authentication"))), 1.0);
  EXPECT_EQ(v.at(series_key("cvqkd_link_authentication_failures_total", with("kind", "tag"))), 1.0);
  EXPECT_EQ(v.at(series_key("cvqkd_link_rounds_completed_total", l)), 0.0);
  EXPECT_TRUE(std::isnan(v.at(series_key("cvqkd_link_excess_noise_snu", l)))) << "no estimate (pe_symbols 0): ξ stays unknown";
}

TEST(metrics, abort_reasons_of_the_link_protocol_map_to_their_class) {
  // Texts as links/ and the simulator produce them.
  EXPECT_EQ(classify_abort_reason("classical message failed authentication (forged or corrupted): the round is aborted"),
            abort_class::authentication);
  EXPECT_EQ(classify_abort_reason("peer aborted: classical message failed authentication (forged or corrupted)"),
            abort_class::authentication);
  EXPECT_EQ(classify_abort_reason("no key is released while the link is in alarm: detector saturation: 20 of 1000 ADC "
                                  "samples clipped"),
            abort_class::saturation);
  EXPECT_EQ(classify_abort_reason("excess noise xi_hat = 0.2 SNU is beyond this link's threshold"), abort_class::excess_noise);
  EXPECT_EQ(classify_abort_reason("the block is too small to estimate the excess noise (xi_hat = 0.01)"),
            abort_class::estimation);
  EXPECT_EQ(classify_abort_reason("key confirmation failed: the two ends' keys differ; block discarded"),
            abort_class::verification);
  EXPECT_EQ(classify_abort_reason("no code frame was reconciled in this block"), abort_class::reconciliation);
  EXPECT_EQ(classify_abort_reason("the round did not complete over the classical channel (too many lost messages?)"),
            abort_class::timeout);
  EXPECT_EQ(classify_abort_reason("peer unreachable: connection refused"), abort_class::peer_lost);
  EXPECT_EQ(classify_abort_reason("authentication key exhausted: 32 bytes needed, 0 left"), abort_class::other);
  EXPECT_EQ(classify_abort_reason("node shutdown"), abort_class::stopped);
  EXPECT_EQ(classify_abort_reason(""), abort_class::other);
}

TEST(metrics, api_requests_are_counted_by_route_and_code_with_latency_buckets) {
  auto m = std::move(*node_metrics::create("n"));
  for (int i = 0; i < 10; ++i) m->observe_api_request("enc_keys", 200, 0.002);
  m->observe_api_request("enc_keys", 503, 12.0);
  m->observe_provisioning_latency(key_route::multipath, 45.0);
  const auto v = parse_exposition(m->serialize());
  auto l = [](const char* code, std::optional<const char*> le = std::nullopt) {
    std::map<std::string, std::string> r{{"node", "n"}, {"route", "enc_keys"}, {"code", code}};
    if (le) r["le"] = *le;
    return r;
  };
  EXPECT_EQ(v.at(series_key("cvqkd_api_requests_total", l("200"))), 10.0);
  EXPECT_EQ(v.at(series_key("cvqkd_api_requests_total", l("503"))), 1.0);
  EXPECT_EQ(v.at(series_key("cvqkd_api_request_duration_seconds_bucket", l("200", "0.001"))), 0.0);
  EXPECT_EQ(v.at(series_key("cvqkd_api_request_duration_seconds_bucket", l("200", "0.0025"))), 10.0);
  EXPECT_EQ(v.at(series_key("cvqkd_api_request_duration_seconds_bucket", l("503", "10"))), 0.0);
  EXPECT_EQ(v.at(series_key("cvqkd_api_request_duration_seconds_bucket", l("503", "30"))), 1.0);
  EXPECT_EQ(v.at(series_key("cvqkd_api_request_duration_seconds_count", l("200"))), 10.0);
  // Above the 30 s objective still lands in a finite bucket, so a p99 beyond it is measurable.
  EXPECT_EQ(v.at(series_key("cvqkd_key_provisioning_latency_seconds_bucket",
                            {{"node", "n"}, {"route_type", "multipath"}, {"le", "60"}})),
            1.0);
  EXPECT_EQ(v.at(series_key("cvqkd_key_provisioning_latency_seconds_bucket",
                            {{"node", "n"}, {"route_type", "multipath"}, {"le", "30"}})),
            0.0);
}

TEST(metrics, concurrent_updates_are_all_counted) {
  const auto seed = cvqkd::test_support::base_seed();
  SCOPED_TRACE(cvqkd::test_support::seed_note(seed));
  auto m = std::move(*node_metrics::create("n"));
  const int threads = 4, per_thread = 5000;
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t)
    pool.emplace_back([&, t] {
      std::uint64_t x = seed + static_cast<std::uint64_t>(t);
      for (int i = 0; i < per_thread; ++i) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;  // LCG: which link and route each update hits
        auto& l = m->link((x >> 33) % 2 ? "a" : "b", "p", link_role::alice);
        l.add_saturation_events(1);
        m->observe_api_request((x >> 40) % 2 ? "enc_keys" : "dec_keys", 200, 0.001);
      }
    });
  for (auto& th : pool) th.join();
  const auto v = parse_exposition(m->serialize());
  double sat = 0, api = 0;
  for (const auto& [k, val] : v) {
    if (k.starts_with("cvqkd_link_detector_saturation_events_total{")) sat += val;
    if (k.starts_with("cvqkd_api_requests_total{")) api += val;
  }
  EXPECT_EQ(sat, threads * per_thread);
  EXPECT_EQ(api, threads * per_thread);
}

TEST(metrics, create_rejects_an_empty_node_id) {
  auto m = node_metrics::create("");
  ASSERT_FALSE(m.has_value());
  EXPECT_EQ(m.error().code, cvqkd::errc::invalid_argument);
  EXPECT_NE(m.error().message.find("node"), std::string::npos);
}

TEST(metrics, exposer_serves_the_registry_on_loopback_only) {
  auto m = populated();
  auto bad = start_exposer(m->registry, "0.0.0.0:0");
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.error().code, cvqkd::errc::invalid_argument);
  EXPECT_FALSE(start_exposer(m->registry, "127.0.0.1").has_value());

  // One exposer in this process (its shutdown takes ~2 s).
  auto e = start_exposer(m->registry, "127.0.0.1:0");
  ASSERT_TRUE(e.has_value()) << e.error().message;
  ASSERT_GT((*e)->port(), 0);
  // A second one on the same port fails with io_error, not an exception.
  auto clash = start_exposer(m->registry, "127.0.0.1:" + std::to_string((*e)->port()));
  ASSERT_FALSE(clash.has_value());
  EXPECT_EQ(clash.error().code, cvqkd::errc::io_error);

  auto resp = cvqkd::test_support::http_get((*e)->port(), "/metrics");
  ASSERT_TRUE(resp.has_value());
  EXPECT_EQ(resp->first, 200);
  const auto served = parse_exposition(resp->second);
  const auto direct = parse_exposition(m->serialize());
  for (const auto& [k, val] : direct) {
    ASSERT_TRUE(served.contains(k)) << k;
    if (!std::isnan(val)) {
      EXPECT_EQ(served.at(k), val) << k;
    }
  }
}

}  // namespace
