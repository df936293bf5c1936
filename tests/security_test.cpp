// Key-rate bounds against the reference values of ../shared/reference/cvqkd-theory.md.
#include <gtest/gtest.h>

#include <cmath>

#include "reconciliation/security/key_rate.hpp"
#include "reconciliation/security/normal.hpp"

using namespace cvqkd;
using namespace cvqkd::security;

namespace {

channel_parameters params(detection det, double v_a, double t, double xi, double eta, double v_el) {
  return channel_parameters{.det = det, .model = detector_model::trusted, .v_a = v_a, .transmittance = t,
                            .xi = xi, .eta = eta, .v_el = v_el};
}

double t_of_km(double km) { return std::pow(10.0, -0.02 * km); }

struct reference_row {
  channel_parameters p;
  double beta, i_ab, chi_be, k;
};

void expect_rel(double actual, double expected, double rel) {
  EXPECT_NEAR(actual, expected, rel * std::abs(expected)) << "relative tolerance " << rel;
}

}  // namespace

TEST(security_reference, asymptotic_table) {
  const reference_row rows[] = {
    {params(detection::heterodyne, 1, 0.5, 0.01, 0.8, 0.1), 0.95, 0.2406052246, 0.1136325972, 0.1149423661},
    {params(detection::heterodyne, 5, 0.5, 0.01, 0.5, 0.1), 0.95, 0.6484993953, 0.4668789383, 0.1491954873},
    {params(detection::homodyne, 4, t_of_km(25), 0.01, 0.6, 0.05), 0.95, 0.3918341614, 0.2839327378, 0.0883097155},
    {params(detection::heterodyne, 4, t_of_km(25), 0.01, 0.6, 0.05), 0.95, 0.4447486073, 0.3331865102, 0.0893246668},
    {params(detection::heterodyne, 4, t_of_km(100), 0.01, 0.6, 0.05), 0.98, 0.0163939725, 0.0136837742, 0.0023823188},
  };
  for (const auto& r : rows) {
    SCOPED_TRACE(testing::Message() << to_string(r.p.det) << " V_A=" << r.p.v_a << " T=" << r.p.transmittance);
    // The table prints 10 decimals: compare I_AB and chi_BE to that precision, K to 1e-8 relative.
    EXPECT_NEAR(mutual_information(r.p), r.i_ab, 0.5e-10);
    EXPECT_NEAR(holevo_bound(r.p), r.chi_be, 0.5e-10);
    expect_rel(key_rate_asymptotic(r.p, r.beta), r.k, 1e-8);
  }
}

TEST(security_reference, plob) {
  EXPECT_NEAR(plob_bound(t_of_km(25)), 0.5484122546, 1e-10);
  EXPECT_NEAR(plob_bound(t_of_km(50)), 0.1520030934, 1e-10);
  EXPECT_NEAR(plob_bound(t_of_km(100)), 0.0144995697, 1e-10);
}

TEST(security_reference, z_quantile) {
  EXPECT_NEAR(normal_upper_quantile(0.5e-10), 6.466951, 5e-7);
  EXPECT_NEAR(normal_upper_quantile(0.025), 1.959963985, 1e-8);
  for (double p : {0.3, 1e-3, 1e-20, 1e-100})
    EXPECT_NEAR(normal_upper_tail(normal_upper_quantile(p)) / p, 1.0, 1e-10) << p;
  EXPECT_TRUE(std::isnan(normal_upper_quantile(0.0)));
  EXPECT_TRUE(std::isnan(normal_upper_quantile(1.0)));
}

TEST(security_reference, finite_size_table) {
  struct row { double km, n; double t_min, xi_max, delta, chi, k_fin; };
  const row rows[] = {
    {25, 1e8, 0.31554717, 0.01720757, 5.792261e-3, 0.28986357, 3.829331e-2},
    {50, 1e10, 0.09996173, 0.01226942, 5.791065e-4, 0.11963121, 1.039159e-2},
  };
  for (const auto& r : rows) {
    SCOPED_TRACE(testing::Message() << "L=" << r.km << " N=" << r.n);
    const auto p = params(detection::homodyne, 4, t_of_km(r.km), 0.01, 0.6, 0.05);
    const auto n_total = static_cast<std::uint64_t>(r.n);
    const auto m = n_total / 2;
    const auto res = key_rate_finite(finite_size_model::lgg2010, p, expected_statistics(p, m), n_total, m, 0.95, 0.0,
                                     epsilons{});
    ASSERT_TRUE(res.has_value()) << res.error().message;
    // To the printed precision (half a unit in the last printed digit).
    EXPECT_NEAR(res->bounds.transmittance_min, r.t_min, 0.5e-8);
    EXPECT_NEAR(res->bounds.xi_max, r.xi_max, 0.5e-8);
    EXPECT_NEAR(res->delta_n, r.delta, 0.5e-9);
    EXPECT_NEAR(res->chi_be_worst, r.chi, 0.5e-8);
    EXPECT_NEAR(res->key_rate, r.k_fin, 0.5e-8);
    // Expected-value statistics reproduce the true parameters as point estimates.
    EXPECT_NEAR(res->bounds.transmittance_hat, p.transmittance, 1e-12);
    EXPECT_NEAR(res->bounds.xi_hat, p.xi, 1e-12);
  }
}

TEST(security_properties, heterodyne_estimator_conventions_recover_parameters) {
  const auto p = params(detection::heterodyne, 5, 0.3, 0.02, 0.65, 0.01);
  const auto s = expected_statistics(p, 2'000'000);
  const auto b = estimate_bounds(p.det, s, p.eta, p.v_el, 1e-10);
  ASSERT_TRUE(b.has_value());
  EXPECT_NEAR(b->transmittance_hat, 0.3, 1e-12);
  EXPECT_NEAR(b->xi_hat, 0.02, 1e-12);
  EXPECT_LT(b->transmittance_min, 0.3);
  EXPECT_GT(b->xi_max, 0.02);
}

TEST(security_properties, untrusted_detector_costs_key) {
  for (auto det : {detection::homodyne, detection::heterodyne}) {
    auto p = params(det, 4, t_of_km(25), 0.01, 0.6, 0.05);
    const double trusted = key_rate_asymptotic(p, 0.95);
    p.model = detector_model::untrusted;
    const double untrusted = key_rate_asymptotic(p, 0.95);
    EXPECT_LT(untrusted, trusted) << to_string(det);
    // With an ideal detector the two models coincide.
    p.eta = 1.0;
    p.v_el = 0.0;
    const double ideal_untrusted = holevo_bound(p);
    p.model = detector_model::trusted;
    EXPECT_NEAR(ideal_untrusted, holevo_bound(p), 1e-9) << to_string(det);
  }
}

TEST(security_properties, below_plob_and_monotone_in_loss_and_noise) {
  for (auto det : {detection::homodyne, detection::heterodyne}) {
    double previous = 1e9;
    for (double km = 0; km <= 150; km += 5) {
      const auto p = params(det, 4, t_of_km(km) * (km == 0 ? 0.999 : 1.0), 0.01, 0.6, 0.05);
      const double k = key_rate_asymptotic(p, 1.0);
      EXPECT_LT(k, plob_bound(p.transmittance)) << km;
      EXPECT_LE(k, previous + 1e-12) << km;
      previous = k;
    }
    auto p = params(det, 4, t_of_km(25), 0.01, 0.6, 0.05);
    const double k_low = key_rate_asymptotic(p, 0.95);
    p.xi = 0.1;
    EXPECT_LT(key_rate_asymptotic(p, 0.95), k_low);
  }
}

TEST(security_properties, snr_matches_theory) {
  const auto hom = params(detection::homodyne, 4, 0.5, 0.02, 0.6, 0.05);
  EXPECT_DOUBLE_EQ(snr(hom), 0.6 * 0.5 * 4 / (1 + 0.05 + 0.6 * 0.5 * 0.02));
  const auto het = params(detection::heterodyne, 4, 0.5, 0.02, 0.6, 0.05);
  EXPECT_DOUBLE_EQ(snr(het), 0.6 * 0.5 * 4 / (2 + 0.1 + 0.6 * 0.5 * 0.02));
  EXPECT_DOUBLE_EQ(xi_bob(het), 0.6 * 0.5 * 0.02);
}

TEST(security_errors, bad_inputs_are_rejected_with_the_field_named) {
  auto p = params(detection::homodyne, -1, 0.5, 0.01, 0.6, 0.05);
  auto r = validate(p);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, errc::invalid_argument);
  EXPECT_NE(r.error().message.find("V_A"), std::string::npos);
  p.v_a = 4;
  p.transmittance = 1.5;
  EXPECT_NE(validate(p).error().message.find("transmittance"), std::string::npos);
  p.transmittance = 0.5;
  p.eta = std::nan("");
  EXPECT_NE(validate(p).error().message.find("eta"), std::string::npos);
  p.eta = 0.6;
  const auto s = expected_statistics(p, 100);
  auto k = key_rate_finite(finite_size_model::lgg2010, p, s, 100, 100, 0.95, 0, epsilons{});
  ASSERT_FALSE(k.has_value());
  EXPECT_NE(k.error().message.find("n_pe"), std::string::npos);
  k = key_rate_finite(finite_size_model::lgg2010, p, s, 200, 100, 0.95, 0, epsilons{.pe = 0, .smooth = 1e-10, .pa = 1e-10});
  ASSERT_FALSE(k.has_value());
  EXPECT_NE(k.error().message.find("eps_pe"), std::string::npos);
}

TEST(security_errors, a_lossy_tiny_sample_cannot_bound_t) {
  const auto p = params(detection::heterodyne, 2, 0.001, 0.02, 0.65, 0.01);
  const auto b = estimate_bounds(p.det, expected_statistics(p, 1000), p.eta, p.v_el, 1e-10);
  ASSERT_FALSE(b.has_value());
  EXPECT_EQ(b.error().code, errc::insufficient_data);
}
