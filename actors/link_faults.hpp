#pragma once
// Validation of a drill's link_faults (actors/messages.hpp). Header-only and free of CAF, so that
// the HTTPS services (node/services.cpp) refuse bad input with the same rules as the supervisor.

#include <cmath>
#include <string>

#include <fmt/format.h>

#include "actors/messages.hpp"
#include "core/error.hpp"

namespace cvqkd::actors {

/// Checks a drill's faults before anything changes: each value within what the drill means (the
/// fibre's excess noise in (0, 10] SNU, power factor in [1, 1e4], loss probability in [0, 1], LO
/// drift in [0, 1e-2] rad^2/symbol, shot-noise drift in [-0.5, 0.5]) and at least one fault set.
/// Errors: invalid_argument naming the value and the accepted range.
inline expected<void> validate_faults(const link_faults& f) {
  const auto in = [](double v, double lo, double hi) { return std::isfinite(v) && v >= lo && v <= hi; };
  const auto bad = [](std::string what) { return fail(errc::invalid_argument, std::move(what)); };
  if (!in(f.excess_noise, 0, 10))
    return bad(fmt::format("excess noise {} SNU is out of range: give a xi in (0, 10] SNU (above that the link is "
                           "simply dark: rehearse that with cut-link)", f.excess_noise));
  if (!in(f.crosstalk_xi, 0, 10))
    return bad(fmt::format("crosstalk noise {} SNU is out of range (0..10 SNU): lower the classical launch power or "
                           "raise the isolation", f.crosstalk_xi));
  if (!in(f.lo_drift, 0, 1e-2))
    return bad(fmt::format("LO drift {} rad^2/symbol is out of range: give a value in (0, 1e-2]", f.lo_drift));
  if (!in(f.power_factor, 1, 1e4))
    return bad(fmt::format("optical power factor {} is out of range: give a factor in (1, 1e4] (x nominal)",
                           f.power_factor));
  if (!in(f.sample_loss, 0, 1))
    return bad(fmt::format("sample-loss probability {} is out of range: give a probability in (0, 1]", f.sample_loss));
  if (!in(f.shot_noise_drift, -0.5, 0.5))
    return bad(fmt::format("shot-noise drift {} is out of range: give a relative drift in [-0.5, 0.5], not 0",
                           f.shot_noise_drift));
  const bool any = f.excess_noise > 0 || f.crosstalk_xi > 0 || f.lo_drift > 0 || f.power_factor > 1 ||
                   f.sample_loss > 0 || f.shot_noise_drift != 0 || f.corrupt_auth;
  if (!any) return bad("the drill sets no fault: give a non-zero value (restore-link clears faults)");
  if (f.what.empty()) return bad("the drill has no name: say what it injects");
  return {};
}

}  // namespace cvqkd::actors
