#include "reconciliation/ldpc/density_evolution.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <numbers>
#include <vector>

namespace cvqkd::reconciliation::ldpc {
namespace {

constexpr double log_m_lo = -12.0, log_m_hi = 6.4;  // ln of the table's mean range [6e-6, 600]
constexpr int table_size = 4096;

struct phi_table {
  std::array<double, table_size> log_phi{};
  double step = (log_m_hi - log_m_lo) / (table_size - 1);
  phi_table() {
    for (int k = 0; k < table_size; ++k) {
      const double m = std::exp(log_m_lo + k * step);
      const double sd = std::sqrt(2.0 * m);
      // E[tanh(u/2)] by the trapezoid rule over +-9 standard deviations (2400 intervals)
      const int steps = 2400;
      const double h = 18.0 / steps;
      double s = 0.0;
      for (int i = 0; i <= steps; ++i) {
        const double z = -9.0 + i * h;
        const double w = (i == 0 || i == steps) ? 0.5 : 1.0;
        // 1 - tanh(u/2) = 2 / (1 + e^u): accurate when phi is tiny
        s += w * std::exp(-0.5 * z * z) * (2.0 / (1.0 + std::exp(m + sd * z)));
      }
      const double phi = s * h / std::sqrt(2.0 * std::numbers::pi);
      log_phi[k] = std::log(std::max(phi, 1e-300));
    }
  }
};

const phi_table& table() {
  static const phi_table t;
  return t;
}

}  // namespace

double ga_phi(double m) {
  if (m <= 0.0) return 1.0;
  const auto& t = table();
  const double lm = std::log(m);
  if (lm <= log_m_lo) return 1.0 - 0.5 * m;  // phi(m) = 1 - m/2 + O(m^2)
  if (lm >= log_m_hi) return std::exp(t.log_phi.back() - 0.25 * (m - std::exp(log_m_hi)));
  const double x = (lm - log_m_lo) / t.step;
  const int k = std::min(static_cast<int>(x), table_size - 2);
  const double f = x - k;
  return std::exp(t.log_phi[k] * (1 - f) + t.log_phi[k + 1] * f);
}

double ga_phi_inverse(double y) {
  if (y >= 1.0) return 0.0;
  const auto& t = table();
  if (y <= 0.0) return std::exp(log_m_hi);
  const double ly = std::log(y);
  if (ly >= t.log_phi[0]) return 2.0 * (1.0 - y);  // small-mean branch
  if (ly <= t.log_phi.back()) return std::exp(log_m_hi);
  // log_phi is decreasing: binary search
  int lo = 0, hi = table_size - 1;
  while (hi - lo > 1) {
    const int mid = (lo + hi) / 2;
    (t.log_phi[mid] > ly ? lo : hi) = mid;
  }
  const double f = (t.log_phi[lo] - ly) / (t.log_phi[lo] - t.log_phi[hi]);
  return std::exp(log_m_lo + (lo + f) * t.step);
}

namespace {

double chi2_cdf(double x, unsigned d) {
  if (x <= 0) return 0.0;
  if (d == 1) return std::erf(std::sqrt(x / 2));
  double term = 1.0, sum = 0.0;
  for (unsigned i = 0; i < d / 2; ++i) {
    sum += term;
    term *= (x / 2) / (i + 1);
  }
  return 1.0 - std::exp(-x / 2) * sum;
}

// Fading gains g = chi^2_d / d at the midpoints (k + 1/2)/K of the distribution.
std::vector<double> fading_gains(unsigned d, unsigned k_points) {
  if (k_points == 0) return {1.0};
  std::vector<double> g(k_points);
  for (unsigned k = 0; k < k_points; ++k) {
    const double q = (k + 0.5) / k_points;
    double lo = 0.0, hi = 200.0;
    for (int it = 0; it < 80; ++it) {
      const double mid = 0.5 * (lo + hi);
      (chi2_cdf(mid, d) < q ? lo : hi) = mid;
    }
    g[k] = 0.5 * (lo + hi) / d;
  }
  double mean = 0.0;  // renormalise so that the quadrature keeps E[g] = 1 exactly
  for (double v : g) mean += v;
  mean /= k_points;
  for (double& v : g) v /= mean;
  return g;
}

}  // namespace

bool ga_converges(const raptor_protograph& p, std::uint32_t extension_rows, double snr, const de_options& o) {
  // Edge list of the base graph: (row, column); degree-one columns follow the core columns.
  struct edge {
    std::uint32_t row, col;
  };
  std::vector<edge> edges;
  std::vector<std::uint32_t> row_start{0};
  std::uint32_t r = 0;
  for (const auto& row : p.precode_rows) {
    for (auto c : row) edges.push_back({r, c});
    row_start.push_back(static_cast<std::uint32_t>(edges.size()));
    ++r;
  }
  for (std::uint32_t e = 0; e < extension_rows && e < p.extension_rows.size(); ++e) {
    for (auto c : p.extension_rows[e]) edges.push_back({r, c});
    edges.push_back({r, p.core_cols + e});
    row_start.push_back(static_cast<std::uint32_t>(edges.size()));
    ++r;
  }
  const std::uint32_t cols = p.core_cols + extension_rows;
  const auto gains = fading_gains(o.mdr_dimension, o.fading_points);
  const double ch = 2.0 * snr;
  std::vector<double> mu(edges.size(), 0.0), phi_in(edges.size()), sum(cols);
  double last_progress = 0.0;
  int stalled = 0;
  for (unsigned it = 0; it < o.max_iterations; ++it) {
    std::fill(sum.begin(), sum.end(), 0.0);
    for (std::size_t e = 0; e < edges.size(); ++e) sum[edges[e].col] += mu[e];
    double worst = 1e300;
    for (std::uint32_t c = 0; c < p.core_cols; ++c) worst = std::min(worst, sum[c]);
    if (worst > o.converged_mean) return true;
    if (worst - last_progress < 1e-7 * std::max(1.0, worst)) {
      if (++stalled > 30) return false;  // a fixed point below convergence
    } else {
      stalled = 0;
    }
    last_progress = worst;
    for (std::size_t e = 0; e < edges.size(); ++e) {
      const double extrinsic = sum[edges[e].col] - mu[e];
      double acc = 0.0;
      for (double g : gains) acc += ga_phi(ch * g + extrinsic);
      phi_in[e] = acc / gains.size();
    }
    for (std::size_t row = 0; row + 1 < row_start.size(); ++row) {
      for (std::uint32_t e = row_start[row]; e < row_start[row + 1]; ++e) {
        double prod = 1.0;
        for (std::uint32_t f = row_start[row]; f < row_start[row + 1]; ++f)
          if (f != e) prod *= 1.0 - phi_in[f];
        mu[e] = ga_phi_inverse(1.0 - prod);
      }
    }
  }
  return false;
}

double ga_threshold_snr(const raptor_protograph& p, std::uint32_t extension_rows, const de_options& o) {
  double lo = 1e-4, hi = 100.0;
  if (!ga_converges(p, extension_rows, hi, o)) return hi;
  while (hi / lo > 1.001) {
    const double mid = std::sqrt(lo * hi);
    (ga_converges(p, extension_rows, mid, o) ? hi : lo) = mid;
  }
  return hi;
}

}  // namespace cvqkd::reconciliation::ldpc
