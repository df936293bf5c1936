#include "reconciliation/security/key_rate.hpp"

#include <algorithm>
#include <cmath>
#include <fmt/format.h>
#include <string>

#include "reconciliation/security/normal.hpp"

namespace cvqkd::security {
namespace {

bool finite(double v) noexcept { return std::isfinite(v); }

expected<void> check(bool ok, std::string_view field, double value, std::string_view expected_domain) {
  if (ok) return {};
  return fail(errc::invalid_argument,
              fmt::format("{} = {} is invalid: expected {}. Correct the value and retry.", field, value, expected_domain));
}

// Squared symplectic eigenvalues come as the roots of x^2 - s x + q = 0; rounding can make the
// discriminant slightly negative when the roots coincide.
std::pair<double, double> eigen_pair(double s, double q) noexcept {
  const double root = std::sqrt(std::max(0.0, s * s - 4.0 * q));
  return {std::sqrt(std::max(0.0, (s + root) / 2.0)), std::sqrt(std::max(0.0, (s - root) / 2.0))};
}

// Homodyne: kappa = 1, heterodyne: kappa = 2 — the factor between a per-arm estimate and the
// symbol-level T and xi (cvqkd-theory.md, "Heterodyne").
double kappa(detection det) noexcept { return det == detection::homodyne ? 1.0 : 2.0; }

double chi_detector(const channel_parameters& p) noexcept {
  return p.det == detection::homodyne ? (1.0 + p.v_el) / p.eta - 1.0 : (2.0 - p.eta + 2.0 * p.v_el) / p.eta;
}

// The entangling-cloner eigenvalues lambda_{1,2} of Eve's state (Laudenbach 2018, eq. 48).
std::pair<double, double> lambdas_12(double v, double t, double chi_line) noexcept {
  const double a = v * v * (1.0 - 2.0 * t) + 2.0 * t + t * t * (v + chi_line) * (v + chi_line);
  const double b = t * t * (v * chi_line + 1.0) * (v * chi_line + 1.0);
  return eigen_pair(a, b);
}

double holevo_trusted(const channel_parameters& p) noexcept {
  const double v = p.v_a + 1.0;
  const double t = p.transmittance;
  const double chi_line = 1.0 / t - 1.0 + p.xi;
  const double chi_det = chi_detector(p);
  const double chi_tot = chi_line + chi_det / t;
  const double a = v * v * (1.0 - 2.0 * t) + 2.0 * t + t * t * (v + chi_line) * (v + chi_line);
  const double b = t * t * (v * chi_line + 1.0) * (v * chi_line + 1.0);
  const double sqrt_b = std::sqrt(b);
  const auto [l1, l2] = eigen_pair(a, b);
  const double den = t * (v + chi_tot);
  double c = 0.0;
  double d = 0.0;
  if (p.det == detection::homodyne) {
    c = (v * sqrt_b + t * (v + chi_line) + a * chi_det) / den;
    d = sqrt_b * (v + sqrt_b * chi_det) / den;
  } else {
    c = (a * chi_det * chi_det + b + 1.0 + 2.0 * chi_det * (v * sqrt_b + t * (v + chi_line)) + 2.0 * t * (v * v - 1.0))
        / (den * den);
    d = (v + sqrt_b * chi_det) / den;
    d *= d;
  }
  const auto [l3, l4] = eigen_pair(c, d);
  return g_entropy(l1) + g_entropy(l2) - g_entropy(l3) - g_entropy(l4);
}

// Eve holds eta and v_el: fold them into an ideal-detector channel with T' = eta T and the same
// noise at Bob, then use the pure conditional eigenvalue (cvqkd-theory.md, "Untrusted").
double holevo_untrusted(const channel_parameters& p) noexcept {
  const double t = p.eta * p.transmittance;
  const double xi = p.xi + kappa(p.det) * p.v_el / t;
  const double v = p.v_a + 1.0;
  const double chi_line = 1.0 / t - 1.0 + xi;
  const auto [l1, l2] = lambdas_12(v, t, chi_line);
  const double a = v;
  const double b = t * (v + chi_line);
  const double c2 = t * (v * v - 1.0);
  const double l3 = p.det == detection::homodyne ? std::sqrt(std::max(0.0, a * (a - c2 / b))) : a - c2 / (b + 1.0);
  return g_entropy(l1) + g_entropy(l2) - g_entropy(l3);
}

}  // namespace

expected<void> validate(const channel_parameters& p) {
  // The upper limits keep the symplectic-eigenvalue formulas inside double precision (beyond them
  // cancellations make chi_BE meaningless); they are far outside any real system.
  if (auto r = check(finite(p.v_a) && p.v_a > 0.0 && p.v_a <= max_v_a, "V_A", p.v_a, "a modulation variance in (0, 1e4] (SNU)");
      !r)
    return r;
  if (auto r = check(finite(p.transmittance) && p.transmittance >= min_transmittance && p.transmittance <= 1.0,
                     "transmittance", p.transmittance, "T in [1e-10, 1] (at most 100 dB of loss)");
      !r)
    return r;
  if (auto r = check(finite(p.xi) && p.xi >= 0.0 && p.xi <= max_xi, "xi", p.xi,
                     "an excess noise in [0, 100] (SNU, input-referred)");
      !r)
    return r;
  if (auto r = check(finite(p.eta) && p.eta > 0.0 && p.eta <= 1.0, "eta", p.eta, "a detector efficiency in (0, 1]"); !r)
    return r;
  return check(finite(p.v_el) && p.v_el >= 0.0, "v_el", p.v_el, "a finite electronic noise >= 0 (SNU)");
}

expected<void> validate(const epsilons& e) {
  for (auto [name, v] : {std::pair{"eps_pe", e.pe}, std::pair{"eps_smooth", e.smooth}, std::pair{"eps_pa", e.pa}})
    if (auto r = check(finite(v) && v > 0.0 && v < 1.0, name, v, "a probability in (0, 1)"); !r) return r;
  return {};
}

double snr(const channel_parameters& p) noexcept {
  const double signal = p.eta * p.transmittance * p.v_a;
  const double excess = p.eta * p.transmittance * p.xi;
  return p.det == detection::homodyne ? signal / (1.0 + p.v_el + excess) : signal / (2.0 + 2.0 * p.v_el + excess);
}

double xi_bob(const channel_parameters& p) noexcept { return p.eta * p.transmittance * p.xi; }

double mutual_information(const channel_parameters& p) noexcept {
  const double v = p.v_a + 1.0;
  const double chi_tot = 1.0 / p.transmittance - 1.0 + p.xi + chi_detector(p) / p.transmittance;
  const double i_hom = 0.5 * std::log2((v + chi_tot) / (1.0 + chi_tot));
  return p.det == detection::homodyne ? i_hom : 2.0 * i_hom;
}

double holevo_bound(const channel_parameters& p) noexcept {
  return p.model == detector_model::trusted ? holevo_trusted(p) : holevo_untrusted(p);
}

double key_rate_asymptotic(const channel_parameters& p, double beta) noexcept {
  return beta * mutual_information(p) - holevo_bound(p);
}

double plob_bound(double transmittance) noexcept { return -std::log2(1.0 - transmittance); }

double g_entropy(double nu) noexcept {
  const double x = (nu - 1.0) / 2.0;
  if (!(x > 0.0)) return 0.0;
  return (x + 1.0) * std::log2(x + 1.0) - x * std::log2(x);
}

expected<pe_bounds> estimate_bounds(detection det, const pe_statistics& s, double eta, double v_el, double eps_pe) {
  if (auto r = check(finite(eta) && eta > 0.0 && eta <= 1.0, "eta", eta, "a detector efficiency in (0, 1]"); !r)
    return std::unexpected(r.error());
  if (auto r = check(finite(v_el) && v_el >= 0.0, "v_el", v_el, "a finite electronic noise >= 0 (SNU)"); !r)
    return std::unexpected(r.error());
  if (auto r = check(finite(eps_pe) && eps_pe > 0.0 && eps_pe < 1.0, "eps_pe", eps_pe, "a probability in (0, 1)"); !r)
    return std::unexpected(r.error());
  if (auto r = check(finite(s.v_a) && s.v_a > 0.0, "V_A", s.v_a, "a finite modulation variance > 0 (SNU)"); !r)
    return std::unexpected(r.error());
  if (s.samples < 2 || !finite(s.t_hat) || !finite(s.sigma2_hat) || s.sigma2_hat <= 0.0)
    return fail(errc::insufficient_data,
                fmt::format("parameter estimation got {} usable samples: nothing to estimate from; check that "
                            "symbols were disclosed (n_pe > 0) and that the receiver delivered them",
                            s.samples));
  const double k = kappa(det);
  const double m = static_cast<double>(s.samples);
  pe_bounds b;
  b.z = normal_upper_quantile(eps_pe / 2.0);
  b.transmittance_hat = k * s.t_hat * s.t_hat / eta;
  b.xi_hat = k * (s.sigma2_hat - 1.0 - v_el) / (eta * b.transmittance_hat);
  b.t_min = s.t_hat - b.z * std::sqrt(s.sigma2_hat / (m * s.v_a));
  b.sigma2_max = s.sigma2_hat + b.z * s.sigma2_hat * std::sqrt(2.0 / m);
  if (!(s.t_hat > 0.0) || !(b.t_min > 0.0))
    return fail(errc::insufficient_data,
                fmt::format("{} disclosed samples cannot bound the transmittance away from 0 (t_hat = {:.4g}, "
                            "t_min = {:.4g}): disclose more symbols (a larger n_pe or block), or check the fibre "
                            "if T_hat is far below its design value",
                            s.samples, s.t_hat, b.t_min));
  b.transmittance_min = k * b.t_min * b.t_min / eta;
  // A passive channel has T <= 1. T_hat may exceed 1 by chance on a near-lossless link (the key
  // rate then uses T = 1), but T_min > 1 means the SNU scale or the detector gain is wrong
  // (saturation, a failed attenuator, calibration drift), and no bound derived from it holds.
  if (b.transmittance_min > 1.0)
    return fail(errc::no_secret_key,
                fmt::format("even the worst-case transmittance T_min = {:.4g} (T_hat = {:.4g}) exceeds 1, which is "
                            "impossible for a passive channel: the shot-noise calibration or the receiver gain is "
                            "wrong (detector saturation? calibration drift?); recalibrate before trusting this link",
                            b.transmittance_min, b.transmittance_hat));
  b.xi_max = k * (b.sigma2_max - 1.0 - v_el) / (eta * b.transmittance_min);
  // Even the worst-case noise below vacuum plus electronic noise is impossible: Bob's SNU scale
  // is stale (the LO power moved since the shot-noise calibration) and would hide excess noise.
  if (b.xi_max < 0.0)
    return fail(errc::no_secret_key,
                fmt::format("Bob's noise is below the shot-noise limit even in the worst case (xi_max = {:.4g} SNU): "
                            "the shot-noise calibration is stale (LO power drift?); recalibrate before trusting this "
                            "link",
                            b.xi_max));
  return b;
}

pe_statistics expected_statistics(const channel_parameters& p, std::uint64_t samples) noexcept {
  const double k = kappa(p.det);
  const double gain = p.eta * p.transmittance / k;
  return pe_statistics{.t_hat = std::sqrt(gain),
                       .sigma2_hat = 1.0 + p.v_el + gain * p.xi,
                       .v_a = p.v_a,
                       .samples = samples};
}

double delta_n(double n, const epsilons& e) noexcept {
  return 7.0 * std::sqrt(std::log2(2.0 / e.smooth) / n) + (2.0 / n) * std::log2(1.0 / e.pa);
}

expected<finite_size_result> key_rate_finite(finite_size_model model, const channel_parameters& p,
                                             const pe_statistics& s, std::uint64_t n_total, std::uint64_t n_pe,
                                             double beta, double fer, const epsilons& e) {
  if (model != finite_size_model::lgg2010)
    return fail(errc::unsupported, "this finite-size model is not implemented; use lgg2010");
  if (auto r = validate(p); !r) return std::unexpected(r.error());
  if (auto r = validate(e); !r) return std::unexpected(r.error());
  if (auto r = check(finite(beta) && beta > 0.0 && beta <= 1.0, "beta", beta, "a reconciliation efficiency in (0, 1]"); !r)
    return std::unexpected(r.error());
  if (auto r = check(finite(fer) && fer >= 0.0 && fer < 1.0, "FER", fer, "a frame error rate in [0, 1)"); !r)
    return std::unexpected(r.error());
  if (n_pe == 0 || n_pe >= n_total)
    return fail(errc::invalid_argument,
                fmt::format("n_pe = {} with N = {}: parameter estimation needs 0 < n_pe < N symbols; choose n_pe "
                            "(e.g. N/2) inside that range",
                            n_pe, n_total));
  auto bounds = estimate_bounds(p.det, s, p.eta, p.v_el, e.pe);
  if (!bounds) return std::unexpected(bounds.error());
  // Clamping T to 1 and xi to 0 only ever lowers the key: I_AB grows with T and falls with xi,
  // chi_BE(T_min, xi_max) is evaluated at the worst physical point.
  channel_parameters at_hat = p;
  at_hat.transmittance = std::min(bounds->transmittance_hat, 1.0);
  at_hat.xi = std::max(bounds->xi_hat, 0.0);
  channel_parameters worst = p;
  worst.transmittance = std::min(bounds->transmittance_min, 1.0);
  worst.xi = std::max(bounds->xi_max, 0.0);
  finite_size_result out;
  out.bounds = *bounds;
  const double n = static_cast<double>(n_total - n_pe);
  out.i_ab = mutual_information(at_hat);
  out.chi_be_worst = holevo_bound(worst);
  out.delta_n = delta_n(n, e);
  out.key_rate = n / static_cast<double>(n_total) * (1.0 - fer) * (beta * out.i_ab - out.chi_be_worst - out.delta_n);
  return out;
}

}  // namespace cvqkd::security
