#pragma once
// Physics vocabulary shared by hw/, reconciliation/, config/ and node/. Units: shot-noise units
// (SNU, vacuum quadrature variance = 1) for variances; dB for losses; km for lengths.

#include <cmath>
#include <optional>
#include <string_view>

namespace cvqkd {

/// Bob's measurement. Homodyne: one random quadrature per symbol (basis sifted);
/// heterodyne: a 50:50 split and both quadratures per symbol.
enum class detection { homodyne, heterodyne };

/// Trusted detector: eta and v_el are calibrated and outside Eve's control (Laudenbach et al. 2018,
/// sec. 5). Untrusted: they count as part of the channel that Eve controls.
enum class detector_model { trusted, untrusted };

/// Local-oscillator scheme: transmitted with the signal (TLO) or generated at Bob (LLO).
enum class lo_type { transmitted, local };

constexpr std::string_view to_string(detection d) noexcept {
  return d == detection::homodyne ? "homodyne" : "heterodyne";
}
constexpr std::string_view to_string(detector_model m) noexcept {
  return m == detector_model::trusted ? "trusted" : "untrusted";
}
constexpr std::string_view to_string(lo_type l) noexcept {
  return l == lo_type::transmitted ? "transmitted" : "local";
}
std::optional<detection> parse_detection(std::string_view s) noexcept;
std::optional<detector_model> parse_detector_model(std::string_view s) noexcept;
std::optional<lo_type> parse_lo_type(std::string_view s) noexcept;

/// Power transmittance of a loss in dB: T = 10^(-loss/10).
inline double transmittance_from_loss_db(double loss_db) noexcept { return std::pow(10.0, -loss_db / 10.0); }
/// Loss in dB of a transmittance T in (0, 1].
inline double loss_db_from_transmittance(double t) noexcept { return 0.0 - 10.0 * std::log10(t); }  // no -0 at T = 1
/// Fibre of `length_km` at `attenuation_db_per_km` plus `insertion_loss_db` (connectors, splices):
/// T = 10^(-(alpha*L + IL)/10) (Laudenbach et al. 2018, sec. 2).
inline double fibre_transmittance(double length_km, double attenuation_db_per_km, double insertion_loss_db = 0.0) noexcept {
  return transmittance_from_loss_db(attenuation_db_per_km * length_km + insertion_loss_db);
}

}  // namespace cvqkd
