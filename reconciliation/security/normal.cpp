#include "reconciliation/security/normal.hpp"

#include <cmath>
#include <limits>
#include <numbers>

namespace cvqkd::security {

double normal_upper_tail(double z) noexcept { return 0.5 * std::erfc(z / std::numbers::sqrt2); }

double normal_upper_quantile(double p) noexcept {
  if (!(p > 0.0 && p < 1.0)) return std::numeric_limits<double>::quiet_NaN();
  if (p > 0.5) return -normal_upper_quantile(1.0 - p);
  if (p == 0.5) return 0.0;
  // Start from the leading term of the tail asymptotics, then Newton on h(z) = log Q(z) - log p,
  // whose derivative -phi(z)/Q(z) stays well conditioned deep in the tail.
  const double log_p = std::log(p);
  double z = std::sqrt(-2.0 * log_p);
  z = z - (std::log(z) + 0.5 * std::log(2.0 * std::numbers::pi)) / z;
  if (!(z > 0.0)) z = 0.5;
  for (int i = 0; i < 100; ++i) {
    const double q = normal_upper_tail(z);
    const double phi = std::exp(-0.5 * z * z) / std::sqrt(2.0 * std::numbers::pi);
    const double step = (std::log(q) - log_p) * q / phi;
    z += step;
    if (std::abs(step) < 1e-14 * std::max(1.0, std::abs(z))) break;
  }
  return z;
}

}  // namespace cvqkd::security
