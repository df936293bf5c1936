#include "hw/simulator.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <numbers>
#include <vector>

namespace cvqkd::hw {
namespace {

// xoshiro256++ (Blackman & Vigna, 2019): fast, statistically strong, and enough for modelling
// physical noise. Seeded from the AES-CTR DRBG so that runs are reproducible per seed.
class xoshiro256pp {
public:
  xoshiro256pp(std::uint64_t seed, std::string_view domain) {
    seeded_drbg(seed, domain).fill(std::as_writable_bytes(std::span{s_}));
    if ((s_[0] | s_[1] | s_[2] | s_[3]) == 0) s_[0] = 1;  // the all-zero state is a fixed point
  }
  std::uint64_t next() noexcept {
    const std::uint64_t result = std::rotl(s_[0] + s_[3], 23) + s_[0];
    const std::uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = std::rotl(s_[3], 45);
    return result;
  }
  double unit() noexcept { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
  double gauss() noexcept {
    return polar_.next([this] { return unit(); });
  }

private:
  std::array<std::uint64_t, 4> s_{};
  polar_normal polar_;
};

bool finite_in(double v, double lo, double hi) { return std::isfinite(v) && v >= lo && v <= hi; }

expected<void> invalid(std::string_view field, double value, std::string_view domain) {
  return fail(errc::invalid_argument,
              fmt::format("{} = {} is invalid: expected {}. Correct it and retry.", field, value, domain));
}

}  // namespace

expected<void> validate(const simulator_config& c) {
  const auto& p = c.profile;
  const double inf = std::numeric_limits<double>::infinity();
  if (!finite_in(c.transmittance, 1e-10, 1))
    return invalid("transmittance", c.transmittance, "T in [1e-10, 1] (at most 100 dB of loss)");
  if (!(finite_in(p.v_a, 0, 1e4) && p.v_a > 0)) return invalid("v_a", p.v_a, "a modulation variance in (0, 1e4] (SNU)");
  if (!finite_in(p.xi, 0, 100)) return invalid("xi", p.xi, "an excess noise in [0, 100] (SNU)");
  if (!(finite_in(p.eta, 0, 1) && p.eta > 0)) return invalid("eta", p.eta, "a detector efficiency in (0, 1]");
  if (!finite_in(p.v_el, 0, inf)) return invalid("v_el", p.v_el, "an electronic noise >= 0 (SNU)");
  if (!(finite_in(p.shot_noise_raw, 0, inf) && p.shot_noise_raw > 0))
    return invalid("shot_noise_raw", p.shot_noise_raw, "a shot-noise variance > 0 (V^2)");
  if (p.adc_bits < 2 || p.adc_bits > 24) return invalid("adc_bits", p.adc_bits, "an ADC resolution of 2..24 bits");
  if (!(finite_in(p.adc_full_scale_sigma, 0, inf) && p.adc_full_scale_sigma > 0))
    return invalid("adc_full_scale_sigma", p.adc_full_scale_sigma, "a full scale > 0 (standard deviations)");
  if (!finite_in(p.residual_phase_noise_rad2, 0, inf))
    return invalid("residual_phase_noise_rad2", p.residual_phase_noise_rad2, "a phase-noise variance >= 0 (rad^2)");
  if (!finite_in(p.phase_drift_rad2_per_symbol, 0, inf))
    return invalid("phase_drift_rad2_per_symbol", p.phase_drift_rad2_per_symbol, "a drift variance >= 0 (rad^2)");
  if (p.relock_symbols < 1) return invalid("relock_symbols", 0, "at least 1 symbol between re-locks");
  if (p.calibration_samples < 1000)
    return invalid("calibration_samples", static_cast<double>(p.calibration_samples), "at least 1000 samples");
  const auto& f = c.faults;
  if (!finite_in(f.excess_noise_spike, 0, 100))
    return invalid("excess_noise_spike", f.excess_noise_spike, "an added xi in [0, 100] (SNU)");
  if (!finite_in(f.lo_drift_rad2_per_symbol, 0, inf))
    return invalid("lo_drift_rad2_per_symbol", f.lo_drift_rad2_per_symbol, "a drift variance >= 0 (rad^2)");
  if (!(finite_in(f.optical_power_factor, 0, 1e6) && f.optical_power_factor > 0))
    return invalid("optical_power_factor", f.optical_power_factor, "a power factor in (0, 1e6] (1 = nominal)");
  if (!finite_in(f.sample_loss_probability, 0, 1))
    return invalid("sample_loss_probability", f.sample_loss_probability, "a probability in [0, 1]");
  if (!finite_in(f.shot_noise_drift, -0.5, 0.5))
    return invalid("shot_noise_drift", f.shot_noise_drift, "a relative drift in [-0.5, 0.5]");
  if (!finite_in(f.crosstalk_xi, 0, 100))
    return invalid("crosstalk_xi", f.crosstalk_xi, "an added xi in [0, 100] (SNU)");
  switch (c.eve.type) {
    case eavesdropper::kind::none: break;
    case eavesdropper::kind::intercept_resend:
      if (!(finite_in(c.eve.parameter, 0, 1) && c.eve.parameter > 0))
        return invalid("eve fraction", c.eve.parameter, "an intercepted fraction in (0, 1]");
      break;
    case eavesdropper::kind::entangling_cloner:
      if (!finite_in(c.eve.parameter, 1, 1e4)) return invalid("eve W", c.eve.parameter, "an EPR variance W in [1, 1e4] (SNU)");
      break;
  }
  return {};
}

struct simulated_link::impl {
  simulator_config cfg;
  detection det;
  double kappa;  // 1 homodyne, 2 heterodyne: samples per symbol and the per-arm split

  std::unique_ptr<random_source> alice_rng;
  gaussian_sampler alice_gauss;
  seeded_drbg basis_rng;     // Bob's homodyne basis choices (a QRNG in production)
  std::array<std::uint64_t, 64> basis_words{};
  std::size_t basis_bit = 64 * 64;
  xoshiro256pp noise;

  // Symbols emitted by Alice and not yet measured by Bob (SNU displacements).
  std::vector<double> flight_q, flight_p;
  std::size_t flight_head = 0;
  std::uint64_t emitted = 0, measured = 0;

  // LO phase: residual correction error plus a Wiener drift that each re-lock resets.
  double drift = 0.0;
  std::uint64_t relock_pos = 0;

  shot_noise_calibration cal;
  double adc_step = 0.0, adc_max_code = 0.0, adc_min_code = 0.0;

  impl(const simulator_config& c, std::unique_ptr<random_source> rng)
    : cfg(c),
      det(c.profile.detection),
      kappa(det == detection::homodyne ? 1.0 : 2.0),
      alice_rng(std::move(rng)),
      alice_gauss(*alice_rng),
      basis_rng(c.seed, "bob-basis"),
      noise(c.seed, "sim-noise") {
    // The ADC range is set at link bring-up for the nominal signal: +-full_scale_sigma standard
    // deviations of the expected per-sample variance, in raw units.
    const auto& p = cfg.profile;
    const double gain = p.eta * cfg.transmittance / kappa;
    const double nominal_var = gain * p.v_a + 1.0 + p.v_el + gain * p.xi;
    const double full_scale = p.adc_full_scale_sigma * std::sqrt(p.shot_noise_raw * nominal_var);
    adc_step = 2.0 * full_scale / std::ldexp(1.0, static_cast<int>(p.adc_bits));
    adc_max_code = std::ldexp(1.0, static_cast<int>(p.adc_bits) - 1) - 1.0;
    adc_min_code = -std::ldexp(1.0, static_cast<int>(p.adc_bits) - 1);
  }

  // Mid-tread quantiser with saturation; returns the reconstructed raw value.
  double adc(double raw, std::uint64_t& clipped) const noexcept {
    double code = std::nearbyint(raw / adc_step);
    if (code > adc_max_code) {
      code = adc_max_code;
      ++clipped;
    } else if (code < adc_min_code) {
      code = adc_min_code;
      ++clipped;
    }
    return code * adc_step;
  }

  bool next_basis() {
    if (basis_bit == basis_words.size() * 64) {
      basis_rng.fill(std::as_writable_bytes(std::span{basis_words}));
      basis_bit = 0;
    }
    const bool b = (basis_words[basis_bit / 64] >> (basis_bit % 64)) & 1u;
    ++basis_bit;
    return b;
  }

  double eve_cloner_xi() const noexcept {
    if (cfg.eve.type != eavesdropper::kind::entangling_cloner) return 0.0;
    const double t = cfg.transmittance;
    return (1.0 - t) * (cfg.eve.parameter - 1.0) / t;
  }

  double channel_xi() const noexcept {
    double xi = cfg.profile.xi + cfg.faults.excess_noise_spike + cfg.faults.crosstalk_xi + eve_cloner_xi();
    if (cfg.eve.type == eavesdropper::kind::intercept_resend) xi += 2.0 * cfg.eve.parameter;
    return xi;
  }

  double drift_step_var() const noexcept {
    return cfg.profile.phase_drift_rad2_per_symbol + cfg.faults.lo_drift_rad2_per_symbol;
  }

  expected<alice_frame> emit(std::size_t n) {
    if (n == 0) return fail(errc::invalid_argument, "emit(0): request at least one symbol");
    alice_frame f;
    f.first_symbol = emitted;
    f.q.resize(n);
    f.p.resize(n);
    const double sigma = std::sqrt(cfg.profile.v_a);
    for (std::size_t i = 0; i < n; ++i) {
      f.q[i] = sigma * alice_gauss.next();
      f.p[i] = sigma * alice_gauss.next();
    }
    if (flight_head > 0 && flight_head == flight_q.size()) {
      flight_q.clear();
      flight_p.clear();
      flight_head = 0;
    }
    flight_q.insert(flight_q.end(), f.q.begin(), f.q.end());
    flight_p.insert(flight_p.end(), f.p.begin(), f.p.end());
    emitted += n;
    return f;
  }

  expected<shot_noise_calibration> calibrate() {
    const auto& p = cfg.profile;
    // Calibration fixes the SNU scale at the LO power of this moment; a calibration-drift fault
    // models the LO power moving *after* it (fault_state::shot_noise_drift), so it is not applied here.
    const double n0 = p.shot_noise_raw;
    const double sigma_el = std::sqrt(p.v_el * p.shot_noise_raw);
    std::uint64_t clipped = 0;
    // Signal input blocked: LO on gives shot + electronic noise, LO off electronic noise only.
    long double sum_on = 0, sum2_on = 0, sum_off = 0, sum2_off = 0;
    const std::uint64_t n = p.calibration_samples;
    for (std::uint64_t i = 0; i < n; ++i) {
      const double on = adc(std::sqrt(n0) * noise.gauss() + sigma_el * noise.gauss(), clipped);
      const double off = adc(sigma_el * noise.gauss(), clipped);
      sum_on += on;
      sum2_on += static_cast<long double>(on) * on;
      sum_off += off;
      sum2_off += static_cast<long double>(off) * off;
    }
    const long double nn = static_cast<long double>(n);
    const double var_on = static_cast<double>((sum2_on - sum_on * sum_on / nn) / (nn - 1));
    const double var_off = static_cast<double>((sum2_off - sum_off * sum_off / nn) / (nn - 1));
    // On a long link the ADC range (set for the nominal signal) is only a few shot-noise standard
    // deviations wide, so a rare tail sample may clip; a clipped fraction above 1e-5 would bias N0.
    const double clipped_fraction = static_cast<double>(clipped) / (2.0 * static_cast<double>(n));
    if (clipped_fraction > 1e-5)
      return fail(errc::device_fault,
                  fmt::format("shot-noise calibration clipped {} of {} ADC samples: the ADC full scale is too small "
                              "for the shot noise; raise adc.full_scale_sigma or the ADC gain and recalibrate",
                              clipped, 2 * n));
    if (!(var_on > var_off))
      return fail(errc::device_fault,
                  fmt::format("shot-noise calibration failed: LO-on variance {:.4g} is not above LO-off variance "
                              "{:.4g}; check that the local oscillator is on and reaches the detector",
                              var_on, var_off));
    cal = shot_noise_calibration{.n0_raw = var_on - var_off, .v_el = var_off / (var_on - var_off), .samples = n};
    return cal;
  }

  expected<bob_frame> measure(std::size_t n) {
    if (n == 0) return fail(errc::invalid_argument, "measure(0): request at least one symbol");
    if (cal.samples == 0)
      return fail(errc::device_fault, "the receiver is not calibrated: run a shot-noise calibration first");
    const std::size_t pending = flight_q.size() - flight_head;
    if (pending < n)
      return fail(errc::insufficient_data,
                  fmt::format("Bob asked for {} symbols but only {} have arrived: let Alice emit first", n, pending));
    const auto& p = cfg.profile;
    const auto& faults = cfg.faults;
    bob_frame f;
    f.first_symbol = measured;
    f.det = det;
    f.y_q.resize(n);
    if (det == detection::heterodyne) f.y_p.resize(n);
    else f.basis.resize(n);
    f.valid.assign(n, 1);

    const double amplitude = std::sqrt(cfg.transmittance * faults.optical_power_factor);
    const double power = faults.optical_power_factor;
    double chan_sigma =
      std::sqrt(cfg.transmittance * (p.xi + faults.excess_noise_spike + faults.crosstalk_xi + eve_cloner_xi()));
    const bool intercept = cfg.eve.type == eavesdropper::kind::intercept_resend;
    const double sigma_res = std::sqrt(p.residual_phase_noise_rad2);
    const double sigma_drift = std::sqrt(drift_step_var());
    // LO power drift scales signal and shot noise alike; the electronic noise stays put.
    const double lo_gain = std::sqrt(p.shot_noise_raw * (1.0 + faults.shot_noise_drift));
    const double sigma_el = std::sqrt(p.v_el * p.shot_noise_raw);
    const double to_snu = 1.0 / std::sqrt(cal.n0_raw);
    const double det_amp = std::sqrt(p.eta / kappa);

    for (std::size_t i = 0; i < n; ++i) {
      double q = flight_q[flight_head + i];
      double pp = flight_p[flight_head + i];
      if (intercept && noise.unit() < cfg.eve.parameter) {
        // Eve heterodynes the coherent state (2 SNU of noise on her estimate) and re-prepares it.
        q += std::numbers::sqrt2 * noise.gauss();
        pp += std::numbers::sqrt2 * noise.gauss();
      }
      const double mq = amplitude * q + std::sqrt(power) * chan_sigma * noise.gauss();
      const double mp = amplitude * pp + std::sqrt(power) * chan_sigma * noise.gauss();
      const double phi = sigma_res * noise.gauss() + drift;
      if (sigma_drift > 0.0) drift += sigma_drift * noise.gauss();
      if (++relock_pos == p.relock_symbols) {
        relock_pos = 0;
        drift = 0.0;
      }
      const double c = std::cos(phi), s = std::sin(phi);
      const double rq = mq * c - mp * s;
      const double rp = mq * s + mp * c;
      if (faults.sample_loss_probability > 0.0 && noise.unit() < faults.sample_loss_probability) {
        f.valid[i] = 0;
        f.y_q[i] = 0.0;
        if (det == detection::heterodyne) f.y_p[i] = 0.0;
        ++f.lost_symbols;
        continue;
      }
      // Per arm: signal scaled by sqrt(eta/kappa) plus one unit of vacuum (the inefficiency and,
      // for heterodyne, the beam splitter's open port), then electronic noise in raw units.
      if (det == detection::homodyne) {
        const bool b = next_basis();
        f.basis[i] = b ? 1 : 0;
        const double raw = lo_gain * (det_amp * (b ? rp : rq) + noise.gauss()) + sigma_el * noise.gauss();
        f.y_q[i] = adc(raw, f.clipped_samples) * to_snu;
      } else {
        const double raw_q = lo_gain * (det_amp * rq + noise.gauss()) + sigma_el * noise.gauss();
        const double raw_p = lo_gain * (det_amp * rp + noise.gauss()) + sigma_el * noise.gauss();
        f.y_q[i] = adc(raw_q, f.clipped_samples) * to_snu;
        f.y_p[i] = adc(raw_p, f.clipped_samples) * to_snu;
      }
    }
    flight_head += n;
    measured += n;
    return f;
  }

  true_parameters truth() const noexcept {
    const auto& p = cfg.profile;
    true_parameters t;
    t.transmittance = cfg.transmittance;
    t.xi = channel_xi();
    t.xi_bob = p.eta * t.transmittance * t.xi;
    t.snr = p.eta * t.transmittance * p.v_a / (kappa * (1.0 + p.v_el) + p.eta * t.transmittance * t.xi);
    // c = E[cos phi], averaged over the positions k = 0..W-1 after a re-lock, where
    // Var(phi_k) = V_res + k s (Wiener drift with step variance s).
    const double s = drift_step_var();
    const double w = static_cast<double>(p.relock_symbols);
    const double r = std::exp(-s / 2.0);
    const double mean_geo = s > 0.0 ? (1.0 - std::pow(r, w)) / (w * (1.0 - r)) : 1.0;
    const double c = std::exp(-p.residual_phase_noise_rad2 / 2.0) * mean_geo;
    // The estimator sees t = sqrt(d g) c and sigma^2 = d (g V_A (1 - c^2) + 1 + g xi) + v_el with
    // per-sample gain g = eta T k / kappa, optical power factor k and LO drift d (cvqkd-theory.md
    // estimators, with the rotation y = sqrt(g)(x cos phi - p sin phi) + noise).
    const double d = 1.0 + cfg.faults.shot_noise_drift;
    const double g = p.eta * t.transmittance * cfg.faults.optical_power_factor / kappa;
    const double t_hat = std::sqrt(d * g) * c;
    const double sigma2 = d * (g * p.v_a * (1.0 - c * c) + 1.0 + g * t.xi) + p.v_el;
    t.transmittance_effective = kappa * t_hat * t_hat / p.eta;
    t.xi_effective = kappa * (sigma2 - 1.0 - p.v_el) / (p.eta * t.transmittance_effective);
    return t;
  }
};

namespace {

class sim_transmitter final : public transmitter {
public:
  explicit sim_transmitter(simulated_link::impl& s) : s_(s) {}
  expected<alice_frame> emit(std::size_t n) override { return s_.emit(n); }

private:
  simulated_link::impl& s_;
};

class sim_receiver final : public receiver {
public:
  explicit sim_receiver(simulated_link::impl& s) : s_(s) {}
  detection detection_type() const noexcept override { return s_.det; }
  expected<shot_noise_calibration> calibrate() override { return s_.calibrate(); }
  shot_noise_calibration calibration() const noexcept override { return s_.cal; }
  expected<bob_frame> measure(std::size_t n) override { return s_.measure(n); }

private:
  simulated_link::impl& s_;
};

}  // namespace

simulated_link::simulated_link(std::unique_ptr<impl> p)
  : impl_(std::move(p)),
    alice_(std::make_unique<sim_transmitter>(*impl_)),
    bob_(std::make_unique<sim_receiver>(*impl_)) {}

simulated_link::~simulated_link() = default;

expected<std::unique_ptr<simulated_link>> simulated_link::create(const simulator_config& config,
                                                                 std::unique_ptr<random_source> alice_rng) {
  if (auto r = validate(config); !r) return std::unexpected(r.error());
  if (!alice_rng) return fail(errc::invalid_argument, "no random source for Alice's modulation: pass a QRNG or DRBG");
  return std::unique_ptr<simulated_link>(
    new simulated_link(std::make_unique<impl>(config, std::move(alice_rng))));
}

transmitter& simulated_link::alice() noexcept { return *alice_; }
receiver& simulated_link::bob() noexcept { return *bob_; }
const simulator_config& simulated_link::config() const noexcept { return impl_->cfg; }
true_parameters simulated_link::truth() const noexcept { return impl_->truth(); }

expected<void> simulated_link::set_faults(const fault_state& faults) {
  simulator_config next = impl_->cfg;
  next.faults = faults;
  if (auto r = validate(next); !r) return r;
  impl_->cfg.faults = faults;
  return {};
}

expected<double> crosstalk_excess_noise(const classical_channel& c) {
  const auto bad = [](std::string_view field, double value, std::string_view domain) -> expected<double> {
    return std::unexpected(invalid(field, value, domain).error());
  };
  if (!(finite_in(c.launch_power_mw, 0, 1e4) && c.launch_power_mw > 0))
    return bad("launch_power_mw", c.launch_power_mw, "a classical launch power in (0, 1e4] mW");
  if (!finite_in(c.isolation_db, 0, 300)) return bad("isolation_db", c.isolation_db, "an isolation in [0, 300] dB");
  if (!finite_in(c.length_km, 0, 1e4)) return bad("length_km", c.length_km, "a fibre length in [0, 1e4] km");
  if (!finite_in(c.transmittance, 1e-10, 1)) return bad("transmittance", c.transmittance, "T in [1e-10, 1]");
  if (!finite_in(c.symbol_rate_baud, 1, 1e12))
    return bad("symbol_rate_baud", c.symbol_rate_baud, "a symbol rate in [1, 1e12] baud");
  if (!finite_in(c.wavelength_nm, 100, 1e4)) return bad("wavelength_nm", c.wavelength_nm, "a wavelength in [100, 1e4] nm");
  if (!finite_in(c.raman_per_km_nm, 0, 1e-3))
    return bad("raman_per_km_nm", c.raman_per_km_nm, "a Raman coefficient in [0, 1e-3] 1/(km nm)");
  constexpr double h = 6.62607015e-34, light = 299792458.0;
  const double p = c.launch_power_mw * 1e-3;           // W
  const double lambda = c.wavelength_nm * 1e-9;        // m
  const double rho = c.raman_per_km_nm * 1e-3 * 1e9;   // 1/(m m): per metre of fibre, per metre of band
  const double n_raman = p * c.transmittance * rho * (c.length_km * 1e3) * lambda * lambda * lambda / (h * light * light);
  const double n_leak = p * c.transmittance * std::pow(10.0, -c.isolation_db / 10.0) / (h * light / lambda * c.symbol_rate_baud);
  return 2.0 * (n_raman + n_leak) / c.transmittance;
}

expected<std::unique_ptr<simulated_link>> make_simulated_link(const simulator_config& config) {
  return simulated_link::create(config, std::make_unique<seeded_drbg>(config.seed, "alice-symbols"));
}

}  // namespace cvqkd::hw
