#pragma once
// Standard normal tail and its inverse, for the confidence intervals of parameter estimation.

namespace cvqkd::security {

/// Upper tail Q(z) = P(Z > z) = erfc(z / sqrt 2) / 2 of a standard normal Z.
double normal_upper_tail(double z) noexcept;

/// The z with Q(z) = p, for p in (0, 1) (e.g. p = eps_PE / 2 gives the z_{eps_PE/2} of
/// Leverrier, Grosshans, Grangier, PRA 81, 062343 (2010), eqs. 18-19: 6.466951 for eps_PE = 1e-10).
/// Newton iteration on log Q, accurate to ~1e-12 relative for p >= 1e-300. NaN outside (0, 1).
double normal_upper_quantile(double p) noexcept;

}  // namespace cvqkd::security
