// The simulated hardware against the theory of cvqkd-theory.md ("Channel and detector").
#include <gtest/gtest.h>

#include <cmath>
#include <numbers>

#include "hw/sifting.hpp"
#include "hw/simulator.hpp"
#include "test_seed.hpp"

using namespace cvqkd;
using namespace cvqkd::hw;

namespace {

hardware_profile test_profile(detection det) {
  hardware_profile p;
  p.name = "test";
  p.detection = det;
  p.v_a = 4.0;
  p.xi = 0.05;
  p.eta = 0.6;
  p.v_el = 0.05;
  p.adc_bits = 16;
  p.adc_full_scale_sigma = 8.0;
  p.residual_phase_noise_rad2 = 0.0;
  p.calibration_samples = 1000000;  // N0 to 0.14%: its error feeds into every xi estimate
  return p;
}

simulator_config config_of(const hardware_profile& p, double transmittance, std::uint64_t seed) {
  simulator_config c;
  c.profile = p;
  c.transmittance = transmittance;
  c.seed = seed;
  return c;
}

struct moments {
  double xx = 0, xy = 0, yy = 0;
  std::size_t n = 0;
};

// Runs `symbols` symbols through the link and returns the second moments of the sifted pairs.
moments run(simulated_link& link, std::size_t symbols, std::size_t frame = 50000) {
  moments m;
  for (std::size_t done = 0; done < symbols; done += frame) {
    auto a = link.alice().emit(frame);
    auto b = link.bob().measure(frame);
    EXPECT_TRUE(a && b);
    auto s = sift(*a, *b);
    EXPECT_TRUE(s.has_value());
    for (std::size_t i = 0; i < s->size(); ++i) {
      m.xx += s->x[i] * s->x[i];
      m.xy += s->x[i] * s->y[i];
      m.yy += s->y[i] * s->y[i];
    }
    m.n += s->size();
  }
  m.xx /= static_cast<double>(m.n);
  m.xy /= static_cast<double>(m.n);
  m.yy /= static_cast<double>(m.n);
  return m;
}

std::unique_ptr<simulated_link> make(const simulator_config& c) {
  auto link = make_simulated_link(c);
  EXPECT_TRUE(link.has_value()) << (link ? "" : link.error().message);
  auto cal = (*link)->bob().calibrate();
  EXPECT_TRUE(cal.has_value()) << (cal ? "" : cal.error().message);
  return std::move(*link);
}

// Input-referred excess noise from measured moments, as the estimator computes it.
double xi_from(const moments& m, detection det, double eta, double v_el) {
  const double k = det == detection::homodyne ? 1.0 : 2.0;
  const double t = m.xy / m.xx;
  const double sigma2 = m.yy - 2 * t * m.xy + t * t * m.xx;
  const double transmittance = k * t * t / eta;
  return k * (sigma2 - 1 - v_el) / (eta * transmittance);
}

}  // namespace

TEST(hw_simulator, measured_variance_matches_theory) {
  for (auto det : {detection::homodyne, detection::heterodyne}) {
    const std::uint64_t seed = test_support::base_seed() + (det == detection::homodyne ? 1 : 2);
    SCOPED_TRACE(test_support::seed_note(seed) + " " + std::string(to_string(det)));
    auto c = config_of(test_profile(det), 0.3, seed);
    auto link = make(c);
    const auto m = run(*link, 400000);
    const double k = det == detection::homodyne ? 1.0 : 2.0;
    const double g = c.profile.eta * c.transmittance / k;
    // Homodyne: eta T V_A + 1 + v_el + eta T xi; heterodyne per arm: the same with eta T / 2.
    const double var_theory = g * c.profile.v_a + 1 + c.profile.v_el + g * c.profile.xi;
    const double se = var_theory * std::sqrt(2.0 / static_cast<double>(m.n));
    EXPECT_NEAR(m.yy, var_theory, 5 * se);
    EXPECT_NEAR(m.xx, c.profile.v_a, 5 * c.profile.v_a * std::sqrt(2.0 / static_cast<double>(m.n)));
    EXPECT_NEAR(m.xy / m.xx, std::sqrt(g), 5 * std::sqrt(var_theory / (static_cast<double>(m.n) * c.profile.v_a)));
  }
}

TEST(hw_simulator, calibration_recovers_shot_noise_and_electronic_noise) {
  auto p = test_profile(detection::heterodyne);
  p.calibration_samples = 1000000;
  p.shot_noise_raw = 2.5e-3;
  p.v_el = 0.08;
  auto link = make_simulated_link(config_of(p, 0.5, test_support::base_seed()));
  ASSERT_TRUE(link.has_value());
  auto cal = (*link)->bob().calibrate();
  ASSERT_TRUE(cal.has_value());
  EXPECT_NEAR(cal->n0_raw / p.shot_noise_raw, 1.0, 5 * std::sqrt(2.0 / 1e6) * 1.1);
  EXPECT_NEAR(cal->v_el, 0.08, 0.002);
  EXPECT_EQ((*link)->bob().calibration().samples, 1000000u);
}

TEST(hw_simulator, clipping_counts_match_the_gaussian_tail) {
  auto p = test_profile(detection::heterodyne);
  p.adc_bits = 12;
  p.adc_full_scale_sigma = 6.0;
  const std::uint64_t seed = test_support::base_seed() + 7;
  SCOPED_TRACE(test_support::seed_note(seed));
  auto c = config_of(p, 0.3, seed);
  auto link = make(c);
  // A failed attenuator lets 20x the light in: the signal outgrows the ADC range that was set
  // for the nominal signal at bring-up, and the tails clip.
  fault_state f;
  f.optical_power_factor = 20.0;
  ASSERT_TRUE(link->set_faults(f).has_value());
  const std::size_t n = 200000;
  ASSERT_TRUE(link->alice().emit(n).has_value());
  auto b = link->bob().measure(n);
  ASSERT_TRUE(b.has_value());
  const double g = p.eta * c.transmittance / 2;
  const double nominal = g * p.v_a + 1 + p.v_el + g * p.xi;
  const double actual = 20 * g * p.v_a + 1 + p.v_el + 20 * g * p.xi;
  const double fs = p.adc_full_scale_sigma * std::sqrt(nominal / actual);  // full scale in actual sigmas
  const double half_step = fs / 4096.0;  // the quantiser saturates half a step beyond full scale
  const auto q = [](double z) { return 0.5 * std::erfc(z / std::numbers::sqrt2); };
  const double p_clip = q(fs - half_step) + q(fs + half_step);
  const double expected = p_clip * 2.0 * n;
  EXPECT_GT(expected, 1000.0);
  EXPECT_NEAR(static_cast<double>(b->clipped_samples), expected, 5 * std::sqrt(expected * (1 - p_clip)));
}

TEST(hw_simulator, same_seed_same_data_different_seed_different_data) {
  auto c = config_of(test_profile(detection::homodyne), 0.5, 42);
  auto l1 = make(c), l2 = make(c);
  c.seed = 43;
  auto l3 = make(c);
  auto a1 = l1->alice().emit(1000), a2 = l2->alice().emit(1000), a3 = l3->alice().emit(1000);
  auto b1 = l1->bob().measure(1000), b2 = l2->bob().measure(1000), b3 = l3->bob().measure(1000);
  EXPECT_EQ(a1->q, a2->q);
  EXPECT_EQ(b1->y_q, b2->y_q);
  EXPECT_EQ(b1->basis, b2->basis);
  EXPECT_NE(a1->q, a3->q);
  EXPECT_NE(b1->y_q, b3->y_q);
}

TEST(hw_simulator, homodyne_sifting_keeps_the_announced_quadrature) {
  auto link = make(config_of(test_profile(detection::homodyne), 0.5, 5));
  auto a = link->alice().emit(5000);
  auto b = link->bob().measure(5000);
  auto s = sift(*a, *b);
  ASSERT_TRUE(s.has_value());
  ASSERT_EQ(s->size(), 5000u);
  std::size_t p_basis = 0;
  for (std::size_t i = 0; i < s->size(); ++i) {
    EXPECT_EQ(s->x[i], b->basis[i] ? a->p[i] : a->q[i]);
    p_basis += b->basis[i];
  }
  EXPECT_NEAR(static_cast<double>(p_basis), 2500.0, 5 * std::sqrt(1250.0));
}

TEST(hw_simulator, eavesdroppers_show_up_as_excess_noise) {
  const double t = 0.4;
  for (auto det : {detection::homodyne, detection::heterodyne}) {
    auto p = test_profile(det);
    p.xi = 0.0;
    const std::uint64_t seed = test_support::base_seed() + 11;
    SCOPED_TRACE(test_support::seed_note(seed) + " " + std::string(to_string(det)));
    // Full intercept-resend: Eve's heterodyne adds 2 SNU at the channel input.
    auto c = config_of(p, t, seed);
    c.eve = eavesdropper{eavesdropper::kind::intercept_resend, 1.0};
    auto ir = make(c);
    EXPECT_NEAR(xi_from(run(*ir, 200000), det, p.eta, p.v_el), 2.0, 0.1);
    EXPECT_NEAR(ir->truth().xi, 2.0, 1e-12);
    // Entangling cloner with W = 1.5: xi = (1 - T)(W - 1)/T = 0.75.
    c.eve = eavesdropper{eavesdropper::kind::entangling_cloner, 1.5};
    auto cloner = make(c);
    EXPECT_NEAR(cloner->truth().xi, 0.75, 1e-12);
    EXPECT_NEAR(xi_from(run(*cloner, 200000), det, p.eta, p.v_el), 0.75, 0.06);
  }
}

TEST(hw_simulator, residual_phase_noise_appears_as_the_predicted_excess_noise) {
  auto p = test_profile(detection::heterodyne);
  p.residual_phase_noise_rad2 = 0.02;
  p.phase_drift_rad2_per_symbol = 1e-6;
  p.relock_symbols = 5000;
  const std::uint64_t seed = test_support::base_seed() + 13;
  SCOPED_TRACE(test_support::seed_note(seed));
  auto link = make(config_of(p, 0.5, seed));
  const auto truth = link->truth();
  EXPECT_GT(truth.xi_effective, p.xi + 0.05);  // V_A (e^V - 1) ~ 0.09 on top of xi
  const auto m = run(*link, 500000);
  const double xi = xi_from(m, p.detection, p.eta, link->bob().calibration().v_el);
  EXPECT_NEAR(xi, truth.xi_effective, 0.03);
  EXPECT_NEAR(2 * (m.xy / m.xx) * (m.xy / m.xx) / p.eta, truth.transmittance_effective, 0.005);
}

TEST(hw_simulator, faults_change_what_bob_sees) {
  auto p = test_profile(detection::heterodyne);
  auto link = make(config_of(p, 0.5, 17));
  fault_state f;
  f.sample_loss_probability = 0.1;
  ASSERT_TRUE(link->set_faults(f).has_value());
  auto a = link->alice().emit(100000);
  auto b = link->bob().measure(100000);
  EXPECT_NEAR(static_cast<double>(b->lost_symbols), 10000.0, 5 * std::sqrt(9000.0));
  auto s = sift(*a, *b);
  EXPECT_EQ(s->size(), 2 * (100000 - b->lost_symbols));
  f = fault_state{};
  f.optical_power_factor = 100.0;  // a failed attenuator saturates the ADC (~7% of samples)
  ASSERT_TRUE(link->set_faults(f).has_value());
  ASSERT_TRUE(link->alice().emit(10000).has_value());
  EXPECT_GT(link->bob().measure(10000)->clipped_samples, 500u);
  f = fault_state{};
  f.excess_noise_spike = 0.5;
  ASSERT_TRUE(link->set_faults(f).has_value());
  EXPECT_NEAR(link->truth().xi, p.xi + 0.5, 1e-12);
  EXPECT_NEAR(xi_from(run(*link, 200000), p.detection, p.eta, p.v_el), p.xi + 0.5, 0.1);  // ~5 sigma incl. calibration
  f.sample_loss_probability = 1.5;
  EXPECT_FALSE(link->set_faults(f).has_value());
  EXPECT_NEAR(link->truth().xi, p.xi + 0.5, 1e-12) << "a rejected fault must change nothing";
}

TEST(hw_simulator, misuse_is_reported) {
  auto link = make_simulated_link(config_of(test_profile(detection::homodyne), 0.5, 1));
  ASSERT_TRUE(link.has_value());
  auto m = (*link)->bob().measure(10);
  ASSERT_FALSE(m.has_value());
  EXPECT_EQ(m.error().code, errc::device_fault);  // not calibrated
  ASSERT_TRUE((*link)->bob().calibrate().has_value());
  ASSERT_TRUE((*link)->alice().emit(5).has_value());
  m = (*link)->bob().measure(10);
  ASSERT_FALSE(m.has_value());
  EXPECT_EQ(m.error().code, errc::insufficient_data);
}

TEST(hw_simulator, invalid_configuration_names_the_field) {
  auto p = test_profile(detection::homodyne);
  p.eta = 1.2;
  auto r = make_simulated_link(config_of(p, 0.5, 1));
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, errc::invalid_argument);
  EXPECT_NE(r.error().message.find("eta"), std::string::npos);
  p = test_profile(detection::homodyne);
  r = make_simulated_link(config_of(p, std::nan(""), 1));
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().message.find("transmittance"), std::string::npos);
  auto c = config_of(p, 0.5, 1);
  c.eve = eavesdropper{eavesdropper::kind::entangling_cloner, 0.5};
  r = make_simulated_link(c);
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().message.find("W"), std::string::npos);
}

namespace cvqkd::hw {
namespace {

// WDM crosstalk: Raman (grows with the shared length) plus leakage (falls 10x per 10 dB of
// isolation), xi = 2 n / T; checked against the formula evaluated by hand for 1 mW over 1 km.
TEST(hw_simulator, crosstalk_noise_follows_raman_and_leakage) {
  classical_channel c;
  c.launch_power_mw = 1.0;
  c.isolation_db = 300.0;  // leakage off: Raman only
  c.length_km = 1.0;
  c.transmittance = 0.76;
  c.symbol_rate_baud = 2.5e8;
  // 2 P rho L lambda^3 / (h c^2) = 2 * 1e-3 W * 1e-3 m^-2 * 1e3 m * (1.55e-6 m)^3 / (6.626e-34 * 8.988e16)
  const double raman = 2 * 1e-3 * 1e-3 * 1e3 * std::pow(1.55e-6, 3) / (6.62607015e-34 * 299792458.0 * 299792458.0);
  EXPECT_NEAR(*crosstalk_excess_noise(c), raman, 1e-12);
  EXPECT_NEAR(raman, 1.25e-4, 1e-5);
  c.length_km = 10.0;
  EXPECT_NEAR(*crosstalk_excess_noise(c), 10 * raman, 1e-11);
  // Leakage: 2 P 10^(-I/10) / (h nu B) at 90 dB, 1 mW, 250 MBaud: ~0.0624 SNU.
  c.length_km = 0.0;
  c.isolation_db = 90.0;
  const double hnu = 6.62607015e-34 * 299792458.0 / 1.55e-6;
  EXPECT_NEAR(*crosstalk_excess_noise(c), 2 * 1e-3 * 1e-9 / (hnu * 2.5e8), 1e-9);
  c.isolation_db = 100.0;
  EXPECT_NEAR(*crosstalk_excess_noise(c), 2 * 1e-3 * 1e-10 / (hnu * 2.5e8), 1e-10);
  c.launch_power_mw = 0.0;
  EXPECT_FALSE(crosstalk_excess_noise(c).has_value());
  c.launch_power_mw = 1.0;
  c.isolation_db = -3.0;
  EXPECT_FALSE(crosstalk_excess_noise(c).has_value());

  // In the simulator it is one more input-referred excess noise.
  simulator_config sc;
  sc.profile.xi = 0.01;
  fault_state f;
  f.crosstalk_xi = 0.05;
  sc.faults = f;
  auto link = make_simulated_link(sc);
  ASSERT_TRUE(link.has_value());
  EXPECT_NEAR((*link)->truth().xi, 0.06, 1e-12);
  f.crosstalk_xi = -1.0;
  EXPECT_FALSE((*link)->set_faults(f).has_value());
}

}  // namespace
}  // namespace cvqkd::hw
