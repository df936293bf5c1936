#include "links/simulation.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>

#include "hw/sifting.hpp"
#include "reconciliation/estimation/estimator.hpp"

namespace cvqkd::links {

expected<void> validate(const simulation_config& c) {
  if (c.symbols < 1000)
    return fail(errc::invalid_argument,
                fmt::format("symbols = {} is too small: a block needs at least 1000 symbols", c.symbols));
  if (c.n_pe >= c.symbols)
    return fail(errc::invalid_argument,
                fmt::format("n_pe = {} must be below the block size N = {} (leave symbols for the key)", c.n_pe, c.symbols));
  if (!(std::isfinite(c.beta) && c.beta >= 0.0 && c.beta <= 1.0))
    return fail(errc::invalid_argument, fmt::format("beta = {} is invalid: expected a value in (0, 1], or 0 for the "
                                                    "profile's target", c.beta));
  if (c.frame_symbols == 0) return fail(errc::invalid_argument, "frame_symbols must be at least 1");
  return security::validate(c.eps);
}

namespace {

security::channel_parameters parameters_of(const simulation_config& c, double transmittance, double xi) {
  const auto& p = c.hardware.profile;
  return security::channel_parameters{.det = p.detection, .model = c.model, .v_a = p.v_a,
                                      .transmittance = transmittance, .xi = xi, .eta = p.eta, .v_el = p.v_el};
}

}  // namespace

expected<simulation_report> simulate(const simulation_config& config) {
  if (auto r = validate(config); !r) return std::unexpected(r.error());
  const auto start = std::chrono::steady_clock::now();
  auto link = hw::make_simulated_link(config.hardware);
  if (!link) return std::unexpected(link.error());
  auto& alice = (*link)->alice();
  auto& bob = (*link)->bob();
  auto cal = bob.calibrate();
  if (!cal) return std::unexpected(cal.error());

  simulation_report rep;
  rep.calibration = *cal;
  rep.truth = (*link)->truth();
  rep.n_total = config.symbols;
  rep.n_pe = config.n_pe == 0 ? config.symbols / 2 : config.n_pe;
  rep.beta = config.beta == 0.0 ? config.hardware.profile.beta_target : config.beta;

  estimation::pe_selector selector(rep.n_total, rep.n_pe, config.hardware.seed);
  estimation::pe_accumulator pe;
  for (std::uint64_t done = 0; done < rep.n_total;) {
    const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(config.frame_symbols, rep.n_total - done));
    auto a = alice.emit(n);
    if (!a) return std::unexpected(a.error());
    auto b = bob.measure(n);
    if (!b) return std::unexpected(b.error());
    rep.clipped_samples += b->clipped_samples;
    rep.lost_symbols += b->lost_symbols;
    auto s = hw::sift(*a, *b);
    if (!s) return std::unexpected(s.error());
    const auto disclosed = selector.next(n);
    for (std::size_t i = 0; i < s->size(); ++i)
      if (disclosed[s->symbol[i] - a->first_symbol]) pe.add(s->x[i], s->y[i]);
    done += n;
  }
  rep.pe_samples = pe.count();
  const std::uint64_t samples_per_symbol = config.hardware.profile.detection == detection::homodyne ? 1 : 2;
  const double clipped_fraction =
    static_cast<double>(rep.clipped_samples) / static_cast<double>(samples_per_symbol * rep.n_total);
  const double lost_fraction = static_cast<double>(rep.lost_symbols) / static_cast<double>(rep.n_total);
  std::string veto;  // an alarm that forbids releasing key from this block
  if (clipped_fraction > max_clipped_fraction)
    veto = rep.alarms.emplace_back(fmt::format("detector saturation: {} of {} ADC samples clipped ({:.2e}); restore the "
                                     "optical attenuation before trusting this link",
                                     rep.clipped_samples, samples_per_symbol * rep.n_total, clipped_fraction));
  if (rep.lost_symbols > 0)
    rep.alarms.push_back(fmt::format("sample loss: the digitizer lost {} of {} symbols ({:.2e}); check the "
                                     "digitizer and its firmware",
                                     rep.lost_symbols, rep.n_total, lost_fraction));

  // Bob's calibrated v_el is what the trusted-detector bound may credit.
  auto params = parameters_of(config, rep.truth.transmittance, rep.truth.xi);
  rep.key_rate_asymptotic_true = security::key_rate_asymptotic(params, rep.beta);
  rep.plob_bound = security::plob_bound(rep.truth.transmittance);
  params.v_el = cal->v_el;
  const auto stats = pe.statistics(config.hardware.profile.v_a);
  auto finite = security::key_rate_finite(security::finite_size_model::lgg2010, params, stats, rep.n_total, rep.n_pe,
                                          rep.beta, 0.0, config.eps);
  if (!finite) {
    if (finite.error().code != errc::insufficient_data && finite.error().code != errc::no_secret_key)
      return std::unexpected(finite.error());
    rep.no_key_reason = finite.error().message;
    if (lost_fraction > 0.5)
      rep.no_key_reason = fmt::format("{:.1f}% of the symbols were lost by the digitizer; {}", 100 * lost_fraction,
                                      rep.no_key_reason);
  } else {
    rep.finite = *finite;
    estimated_parameters e;
    e.transmittance = finite->bounds.transmittance_hat;
    e.xi = finite->bounds.xi_hat;
    auto at_hat = params;
    at_hat.transmittance = std::min(e.transmittance, 1.0);
    at_hat.xi = std::max(e.xi, 0.0);
    // xi_B as estimated, unclamped like xi_hat (a negative value is a statistical fluctuation).
    e.xi_bob = params.eta * e.transmittance * e.xi;
    e.snr = security::snr(at_hat);
    e.v_a = pe.x_variance();
    rep.estimated = e;
    rep.key_rate_asymptotic_estimated = security::key_rate_asymptotic(at_hat, rep.beta);
    // Loss never shrinks by itself: a worst-case T above the design value says that Bob's gain or
    // Alice's output power is not what the bound assumes (e.g. a failed attenuator).
    if (finite->bounds.transmittance_min > max_transmittance_over_design * rep.truth.transmittance && veto.empty())
      veto = rep.alarms.emplace_back(fmt::format(
        "transmittance above design: T_min = {:.4g} exceeds the link's design T = {:.4g} ({:.2f} dB); check the "
        "attenuators and the transmitter's output power",
        finite->bounds.transmittance_min, rep.truth.transmittance, loss_db_from_transmittance(rep.truth.transmittance)));
    if (!veto.empty())
      rep.no_key_reason = "no key is released while the link is in alarm: " + veto;
    else if (rep.key_rate_asymptotic_estimated <= 0.0 && finite->bounds.xi_max - e.xi > e.xi)
      rep.no_key_reason = fmt::format(
        "the block is too small to estimate the excess noise (xi_hat = {:.3g}, worst case xi_max = {:.3g} SNU): use "
        "a larger block",
        e.xi, finite->bounds.xi_max);
    else if (rep.key_rate_asymptotic_estimated <= 0.0)
      rep.no_key_reason = fmt::format(
        "excess noise xi_hat = {:.4g} SNU is beyond this link's threshold: even an infinite block gives no key "
        "(asymptotic K at the estimates = {:.3e} <= 0); inspect the fibre for faults or an eavesdropper",
        e.xi, rep.key_rate_asymptotic_estimated);
    else if (finite->key_rate <= 0.0)
      rep.no_key_reason = fmt::format(
        "finite-size bound K_fin = {:.3e} <= 0 at N = {}: beta I_AB = {:.4f} < chi_BE(T_min, xi_max) + Delta(n) = "
        "{:.4f} + {:.4f}; a larger block (or a shorter link, less excess noise) is needed",
        finite->key_rate, rep.n_total, rep.beta * finite->i_ab, finite->chi_be_worst, finite->delta_n);
    rep.key_released = rep.no_key_reason.empty();
    if (rep.key_released) rep.key_rate_bps = finite->key_rate * config.hardware.profile.symbol_rate_baud;
  }
  rep.elapsed_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return rep;
}

}  // namespace cvqkd::links
