// `cvqkd link simulate`: one link on simulated hardware, true against estimated parameters.
// `cvqkd link plan`: the smallest block that gives a link key, from its design parameters.
#include <fmt/format.h>

#include <cmath>
#include <iostream>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "config/profile.hpp"
#include "links/block_plan.hpp"
#include "links/session.hpp"
#include "links/simulation.hpp"
#include "node/cli_common.hpp"

namespace cvqkd::cli {
namespace {

constexpr double inf = std::numeric_limits<double>::infinity();

// What `link simulate` and `link plan` both take: the profile, the fibre, the model and the epsilons.
struct link_flags {
  std::string profile = "llo_metro";
  double distance_km = 0, attenuation = 0.2, insertion_loss = 0, eps = 1e-10;
  std::string model_name = "trusted";
};

struct simulate_options {
  link_flags link;
  double symbols = 0, n_pe = 0, beta = 0;
  std::uint64_t seed = 1;
  std::string eve = "none";
  std::vector<std::string> faults;
  std::string attack;
  double attack_xi = 0;
  bool json = false, estimate_only = false, short_codes = false;
  unsigned max_iterations = 200;
  CLI::Option *symbols_opt = nullptr, *n_pe_opt = nullptr, *beta_opt = nullptr, *attack_xi_opt = nullptr;
};

// "NAME:VALUE" -> value, validated as a finite number.
double value_of(std::string_view flag, const std::string& spec, std::size_t colon) {
  if (colon == std::string::npos) usage(flag, fmt::format("'{}' lacks its value: expected NAME:VALUE", spec));
  const std::string text = spec.substr(colon + 1);
  char* end = nullptr;
  const double v = std::strtod(text.c_str(), &end);
  if (text.empty() || end == nullptr || *end != '\0') usage(flag, fmt::format("'{}' is not a number in '{}'", text, spec));
  require_finite(flag, v);
  return v;
}

hw::eavesdropper parse_eve(const std::string& spec) {
  if (spec == "none") return {};
  const auto colon = spec.find(':');
  const std::string name = spec.substr(0, colon);
  hw::eavesdropper e;
  if (name == "intercept-resend") {
    e.type = hw::eavesdropper::kind::intercept_resend;
    e.parameter = colon == std::string::npos ? 1.0 : value_of("--eve", spec, colon);
    require_range("--eve intercept-resend fraction", e.parameter, 0, 1, true, false, "an intercepted fraction");
  } else if (name == "entangling-cloner") {
    e.type = hw::eavesdropper::kind::entangling_cloner;
    e.parameter = value_of("--eve", spec, colon);
    require_range("--eve entangling-cloner W", e.parameter, 1, inf, false, true, "Eve's EPR variance (SNU)");
  } else {
    usage("--eve", fmt::format("got '{}', expected none, intercept-resend[:FRACTION] or entangling-cloner:W", spec));
  }
  return e;
}

hw::fault_state parse_faults(const std::vector<std::string>& specs) {
  hw::fault_state f;
  for (const auto& spec : specs) {
    const auto colon = spec.find(':');
    const std::string name = spec.substr(0, colon);
    const double v = value_of("--fault", spec, colon);
    if (name == "excess-noise") require_range("--fault excess-noise", f.excess_noise_spike = v, 0, inf, false, true, "xi (SNU)");
    else if (name == "lo-drift")
      require_range("--fault lo-drift", f.lo_drift_rad2_per_symbol = v, 0, inf, false, true, "a Wiener step (rad^2)");
    else if (name == "saturation")
      require_range("--fault saturation", f.optical_power_factor = v, 0, inf, true, true, "an optical power factor");
    else if (name == "sample-loss")
      require_range("--fault sample-loss", f.sample_loss_probability = v, 0, 1, false, false, "a probability");
    else if (name == "calibration-drift")
      require_range("--fault calibration-drift", f.shot_noise_drift = v, -0.5, 0.5, false, false, "a relative drift");
    else
      usage("--fault", fmt::format("got '{}', expected excess-noise:XI, lo-drift:RAD2, saturation:FACTOR, "
                                   "sample-loss:P or calibration-drift:REL",
                                   spec));
  }
  return f;
}

nlohmann::json number_or_null(const std::optional<double>& v) { return v ? nlohmann::json(*v) : nlohmann::json(nullptr); }

struct checked_link {
  hardware_profile profile;
  double transmittance;  // T of fibre and insertion loss
  detector_model model;
  security::epsilons eps;
};

// Validates the shared flags; usage errors name the flag.
checked_link check(const link_flags& o) {
  auto profile = config::resolve_profile(o.profile);
  if (!profile) fail_with(profile.error());
  require_range("--distance-km", o.distance_km, 0, inf, false, true, "a fibre length (km)");
  require_range("--attenuation-db-per-km", o.attenuation, 0, inf, false, true, "a fibre attenuation (dB/km)");
  require_range("--insertion-loss-db", o.insertion_loss, 0, inf, false, true, "an insertion loss (dB)");
  require_range("--eps", o.eps, 0, 1, true, true, "a failure probability");
  const auto model = parse_detector_model(o.model_name);
  if (!model) usage("--detector-model", fmt::format("got '{}', expected trusted or untrusted", o.model_name));
  const double t = fibre_transmittance(o.distance_km, o.attenuation, o.insertion_loss);
  if (t < security::min_transmittance)
    usage("--distance-km", fmt::format("{} km at {} dB/km plus {} dB is {:.1f} dB of loss; the model covers at most "
                                       "100 dB (T >= 1e-10)",
                                       o.distance_km, o.attenuation, o.insertion_loss,
                                       o.attenuation * o.distance_km + o.insertion_loss));
  return {*profile, t, *model, security::epsilons{.pe = o.eps, .smooth = o.eps, .pa = o.eps}};
}

void add_link_flags(CLI::App* cmd, link_flags& o) {
  cmd->add_option("--profile", o.profile, "hardware profile: a built-in name or a TOML file")->capture_default_str();
  cmd->add_option("--distance-km", o.distance_km, "fibre length (km)")->required();
  cmd->add_option("--attenuation-db-per-km", o.attenuation, "fibre attenuation (dB/km)")->capture_default_str();
  cmd->add_option("--insertion-loss-db", o.insertion_loss, "connector and splice loss (dB)")->capture_default_str();
  cmd->add_option("--eps", o.eps, "eps_PE = eps_smooth = eps_PA")->capture_default_str();
  cmd->add_option("--detector-model", o.model_name, "trusted or untrusted")->capture_default_str();
}

void run(const simulate_options& o) {
  const auto checked = check(o.link);
  const auto* profile = &checked.profile;

  links::simulation_config c;
  c.hardware.profile = checked.profile;
  c.hardware.transmittance = checked.transmittance;
  c.hardware.seed = o.seed;
  c.hardware.eve = parse_eve(o.eve);
  if (!o.attack.empty()) {
    if (o.eve != "none") usage("--attack", "give either --eve or --attack, not both");
    if (o.attack == "intercept-resend") {
      if (o.attack_xi_opt->count() > 0) usage("--attack-xi", "only applies to --attack entangling-cloner");
      c.hardware.eve = hw::eavesdropper{hw::eavesdropper::kind::intercept_resend, 1.0};
    } else if (o.attack == "entangling-cloner") {
      if (o.attack_xi_opt->count() == 0) usage("--attack-xi", "--attack entangling-cloner needs --attack-xi X (SNU)");
      require_range("--attack-xi", o.attack_xi, 0, 100, true, false, "an added excess noise (SNU)");
      // xi_E = (1 - T)(W - 1)/T for Eve's EPR variance W (hw/simulator.hpp).
      const double t = c.hardware.transmittance;
      if (t >= 1.0) usage("--attack-xi", "an entangling cloner needs a lossy channel (T < 1)");
      c.hardware.eve = hw::eavesdropper{hw::eavesdropper::kind::entangling_cloner, 1.0 + o.attack_xi * t / (1.0 - t)};
    } else {
      usage("--attack", fmt::format("got '{}', expected intercept-resend or entangling-cloner", o.attack));
    }
  }
  c.hardware.faults = parse_faults(o.faults);
  c.model = checked.model;
  c.eps = checked.eps;
  c.symbols = profile->block_symbols;
  if ((o.symbols_opt->count() > 0)) {
    require_range("--symbols", o.symbols, 1000, 1e10, false, false, "a block size (symbols)");
    if (o.symbols != std::floor(o.symbols)) usage("--symbols", fmt::format("got {}, expected a whole number", o.symbols));
    c.symbols = static_cast<std::uint64_t>(o.symbols);
  }
  if ((o.n_pe_opt->count() > 0)) {
    require_range("--n-pe", o.n_pe, 1, static_cast<double>(c.symbols), false, true, "disclosed symbols below --symbols");
    if (o.n_pe != std::floor(o.n_pe)) usage("--n-pe", fmt::format("got {}, expected a whole number", o.n_pe));
    c.n_pe = static_cast<std::uint64_t>(o.n_pe);
  }
  if ((o.beta_opt->count() > 0)) require_range("--beta", c.beta = o.beta, 0, 1, true, false, "a reconciliation efficiency");

  auto rep = links::simulate(c);
  if (!rep) fail_with(rep.error());
  // The full secure chain on the same hardware stream: reconciliation, verification, privacy
  // amplification and confirmation between the two protocol ends.
  std::optional<links::session_report> session;
  if (!o.estimate_only) {
    links::session_config sc;
    sc.link = c;
    sc.short_codes = o.short_codes;
    sc.max_iterations = o.max_iterations;
    auto s = links::run_session(sc);
    if (!s) fail_with(s.error());
    session = std::move(*s);
  }
  const auto& r = *rep;
  const auto& t = r.truth;
  const double length = o.link.distance_km;
  const double loss_db = loss_db_from_transmittance(t.transmittance);

  if (o.json) {
    nlohmann::json j;
    j["profile"] = profile->name;
    j["detection"] = to_string(profile->detection);
    j["detector_model"] = to_string(c.model);
    j["distance_km"] = length;
    j["loss_db"] = loss_db;
    j["seed"] = o.seed;
    j["n_total"] = r.n_total;
    j["n_pe"] = r.n_pe;
    j["pe_samples"] = r.pe_samples;
    j["beta"] = r.beta;
    j["true"] = {{"transmittance", t.transmittance}, {"transmittance_effective", t.transmittance_effective},
                 {"xi", t.xi},  {"xi_effective", t.xi_effective}, {"xi_bob", t.xi_bob}, {"snr", t.snr}};
    if (r.estimated) {
      const auto& e = *r.estimated;
      j["estimated"] = {{"transmittance", e.transmittance}, {"xi", e.xi}, {"xi_bob", e.xi_bob}, {"snr", e.snr},
                        {"v_a", e.v_a}};
    } else {
      j["estimated"] = nullptr;
    }
    j["t_min"] = number_or_null(r.finite ? std::optional(r.finite->bounds.transmittance_min) : std::nullopt);
    j["xi_max"] = number_or_null(r.finite ? std::optional(r.finite->bounds.xi_max) : std::nullopt);
    j["delta_n"] = number_or_null(r.finite ? std::optional(r.finite->delta_n) : std::nullopt);
    j["chi_be_worst"] = number_or_null(r.finite ? std::optional(r.finite->chi_be_worst) : std::nullopt);
    j["key_rate_finite"] = r.finite ? r.finite->key_rate : 0.0;
    j["key_rate_asymptotic"] = r.key_rate_asymptotic_estimated;
    j["key_rate_asymptotic_true"] = r.key_rate_asymptotic_true;
    j["plob_bound"] = r.plob_bound;
    j["key_rate_bps"] = r.key_rate_bps;
    j["key_released"] = r.key_released;
    j["alarms"] = r.alarms;
    j["symbol_rate_baud"] = profile->symbol_rate_baud;
    if (!r.no_key_reason.empty()) j["no_key_reason"] = r.no_key_reason;
    j["calibration"] = {{"n0_raw", r.calibration.n0_raw}, {"v_el", r.calibration.v_el}, {"samples", r.calibration.samples}};
    j["adc_clipped_samples"] = r.clipped_samples;
    j["lost_symbols"] = r.lost_symbols;
    j["elapsed_seconds"] = r.elapsed_seconds;
    j["units"] = "variances in SNU; xi input-referred, xi_bob at Bob; key rates in bits per symbol, key_rate_bps in "
                 "bit/s at the profile's symbol rate; t_min is the lower bound on the transmittance T";
    if (session) {
      const auto& s = *session;
      const auto& a = s.alice;
      j["secret_key_bits"] = s.secret_key_bits;
      j["bits_per_symbol"] = s.bits_per_symbol;
      j["finite_size_bound"] = s.finite_size_bound;
      j["keys_identical"] = s.keys_identical;
      j["abort_reason"] = s.abort_reason.empty() ? nlohmann::json(nullptr) : nlohmann::json(s.abort_reason);
      j["reconciliation"] = {{"snr_estimate", a.snr_estimate}, {"code_rate", a.code_rate},
                             {"code_length_bits", a.code_length}, {"beta", a.beta}, {"fer", a.fer},
                             {"beta_target", a.beta_target}, {"beta_asked", a.beta_asked},
                             {"frames", a.frames}, {"frames_failed", a.frames_failed},
                             {"reconciled_bits", a.reconciled_bits}, {"verification_bits", a.verification_bits}};
      j["privacy_amplification"] = {{"n_out_bits", a.n_out}, {"auth_reserve_bits", a.auth_reserve_bits}};
      j["auth_key_consumed_bits"] = std::max(a.auth_consumed_bits, s.bob.auth_consumed_bits);
      j["classical_messages"] = s.messages;
      j["seconds"] = {{"estimation_only_pass", r.elapsed_seconds}, {"hardware", s.seconds_hardware},
                      {"decoding", a.seconds_decoding}, {"privacy_amplification", a.seconds_privacy},
                      {"session_total", s.seconds_total}};
    }
    print_json(j);
    if (session && !session->keys_identical)
      throw cli_exit{runtime_failure, "the two ends' keys differ: this is a bug; the block was not released"};
    return;
  }

  std::cout << fmt::format("link simulation: profile {} ({}, {} LO), {:.1f} km, {:.2f} dB, seed {}\n", profile->name,
                           to_string(profile->detection), to_string(profile->lo), length, loss_db, o.seed);
  std::cout << fmt::format("block N = {} symbols, {} disclosed for estimation ({} samples), eps = {:g}\n", r.n_total,
                           r.n_pe, r.pe_samples, o.link.eps);
  std::cout << fmt::format("shot-noise calibration: N0 = {:.6g} V^2, v_el = {:.5f} SNU ({} samples each)\n",
                           r.calibration.n0_raw, r.calibration.v_el, r.calibration.samples);
  std::cout << fmt::format("{:<24} {:>14} {:>14} {:>14}\n", "", "true", "estimated", "worst case");
  const auto est = [&](auto field) { return r.estimated ? fmt::format("{:>14.6g}", field(*r.estimated)) : fmt::format("{:>14}", "-"); };
  std::cout << fmt::format("{:<24} {:>14.6g} {} {:>14}\n", "transmittance T", t.transmittance,
                           est([](const auto& e) { return e.transmittance; }),
                           r.finite ? fmt::format("{:.6g}", r.finite->bounds.transmittance_min) : "-");
  std::cout << fmt::format("{:<24} {:>14.6g}\n", "  T effective (phase)", t.transmittance_effective);
  std::cout << fmt::format("{:<24} {:>14.6g} {} {:>14}\n", "xi (input, SNU)", t.xi, est([](const auto& e) { return e.xi; }),
                           r.finite ? fmt::format("{:.6g}", r.finite->bounds.xi_max) : "-");
  std::cout << fmt::format("{:<24} {:>14.6g}\n", "  xi effective", t.xi_effective);
  std::cout << fmt::format("{:<24} {:>14.6g} {}\n", "xi_B at Bob (SNU)", t.xi_bob, est([](const auto& e) { return e.xi_bob; }));
  std::cout << fmt::format("{:<24} {:>14.6g} {}\n", "SNR per dimension", t.snr, est([](const auto& e) { return e.snr; }));
  std::cout << fmt::format("ADC clipped samples {}, lost symbols {}\n", r.clipped_samples, r.lost_symbols);
  if (r.estimated)
    std::cout << fmt::format("asymptotic K at estimates: {:.6e} bit/symbol (true parameters {:.6e}; PLOB {:.6e})\n",
                             r.key_rate_asymptotic_estimated, r.key_rate_asymptotic_true, r.plob_bound);
  for (const auto& alarm : r.alarms) std::cout << "ALARM: " << alarm << '\n';
  if (r.finite)
    std::cout << fmt::format("finite-size bound of the estimation pass (beta {:.3f}, FER 0 assumed): {:.6e} bit/symbol = {:.4g} "
                             "bit/s at {:.3g} Bd\n",
                             r.beta, r.finite->key_rate, r.key_rate_bps, profile->symbol_rate_baud);
  if (!r.no_key_reason.empty()) std::cout << "no key: " << r.no_key_reason << '\n';
  std::cout << fmt::format("estimation pass: {} symbols in {:.2f} s\n", r.n_total, r.elapsed_seconds);
  if (session) {
    const auto& s = *session;
    const auto& a = s.alice;
    std::cout << fmt::format("reconciliation: SNR {:.4g}, code rate {:.4f} ({} bits), beta {:.4f}, FER {:.3f} ({} of {} "
                             "frames failed), {} reconciled bits, {:.1f} s decoding\n",
                             a.snr_estimate, a.code_rate, a.code_length, a.beta, a.fer, a.frames_failed, a.frames,
                             a.reconciled_bits, a.seconds_decoding);
    if (a.beta_asked < a.beta_target)
      std::cout << fmt::format("  beta {:.3f} asked instead of the target {:.3f}: the codes' measured FER makes it the "
                               "efficiency with the most expected key at this SNR\n",
                               a.beta_asked, a.beta_target);
    if (s.abort_reason.empty())
      std::cout << fmt::format("secret key: {} bits at both ends (identical: {}), {:.4e} bit/symbol against the "
                               "finite-size bound {:.4e} at the achieved beta and FER; {} bits kept to authenticate "
                               "the next round\n",
                               s.secret_key_bits, s.keys_identical ? "yes" : "NO", s.bits_per_symbol,
                               s.finite_size_bound, a.auth_reserve_bits);
    else
      std::cout << "no key released: " << s.abort_reason << '\n';
    std::cout << fmt::format("session: {} classical messages, {:.2f} s in all\n", s.messages, s.seconds_total);
    if (!s.keys_identical)
      throw cli_exit{runtime_failure, "the two ends' keys differ: this is a bug; the block was not released"};
  }
}

struct plan_options {
  link_flags link;
  double beta = 0, max_symbols = 1e10, pe_fraction = 0.5, key_fraction = 0.25;
  bool json = false, short_codes = false;
};

void plan(const plan_options& o) {
  const auto checked = check(o.link);
  const auto* profile = &checked.profile;
  require_range("--beta", o.beta, 0, 1, false, true, "a reconciliation efficiency (0: the profile's target)");
  require_range("--max-symbols", o.max_symbols, 1e4, 1e12, false, false, "a block size (symbols)");
  require_range("--pe-fraction", o.pe_fraction, 0, 1, true, true, "the disclosed fraction of the block");
  links::block_plan_inputs in;
  require_range("--key-fraction", o.key_fraction, 0, 1, true, true, "a share of the asymptotic key");
  in.pe_fraction = o.pe_fraction;
  in.key_fraction = o.key_fraction;
  in.short_codes = o.short_codes;
  in.profile = checked.profile;
  in.transmittance = checked.transmittance;
  in.model = checked.model;
  in.eps = checked.eps;
  in.beta_target = o.beta;
  in.max_symbols = static_cast<std::uint64_t>(o.max_symbols);
  const double loss_db = loss_db_from_transmittance(in.transmittance);
  auto p = links::plan_block(in);
  if (!p && p.error().code != errc::no_secret_key) fail_with(p.error());
  if (o.json) {
    nlohmann::json j{{"profile", profile->name}, {"distance_km", o.link.distance_km}, {"loss_db", loss_db},
                     {"beta_target", o.beta == 0 ? profile->beta_target : o.beta}};
    if (p) {
      j["block_symbols"] = p->block_symbols;
      j["snr"] = p->snr;
      j["beta"] = p->beta;
      j["expected_fer"] = p->expected_fer;
      j["key_rate_finite"] = p->key_rate;
      j["key_bits_per_block"] = p->key_bits;
      j["seconds_per_block"] = p->seconds_per_block;
      j["key_rate_asymptotic"] = p->key_rate_asymptotic;
      j["no_key_reason"] = nullptr;
    } else {
      j["block_symbols"] = nullptr;
      j["no_key_reason"] = p.error().message;
    }
    j["units"] = "key rates in bits per symbol; seconds_per_block is hardware time at the profile's symbol rate";
    print_json(j);
    return;
  }
  std::cout << fmt::format("link plan: profile {}, {:.1f} km, {:.2f} dB, design xi {} SNU\n", profile->name,
                           o.link.distance_km, loss_db, profile->xi);
  if (!p) {
    std::cout << "no key: " << p.error().message << '\n';
    return;
  }
  std::cout << fmt::format("smallest block with key: N = {} symbols ({:.3g} s of hardware time at {:.3g} Bd)\n",
                           p->block_symbols, p->seconds_per_block, profile->symbol_rate_baud);
  std::cout << fmt::format("at SNR {:.4g}: beta {:.3f}, expected FER {:.3f}, K_fin {:.4e} bit/symbol, {:.0f} secret "
                           "bits per block (asymptotic K {:.4e})\n",
                           p->snr, p->beta, p->expected_fer, p->key_rate, p->key_bits, p->key_rate_asymptotic);
}

}  // namespace

void add_link(CLI::App& app) {
  auto* link = app.add_subcommand("link", "operate on a single CV-QKD link");
  link->require_subcommand(1);
  auto o = std::make_shared<simulate_options>();
  auto* cmd = link->add_subcommand("simulate", "simulated hardware -> sifting -> parameter estimation -> key-rate bound");
  add_link_flags(cmd, o->link);
  o->symbols_opt = cmd->add_option("--symbols", o->symbols, "block size N in symbols (default: the profile's)");
  o->n_pe_opt = cmd->add_option("--n-pe", o->n_pe, "symbols disclosed for parameter estimation (default N/2)");
  cmd->add_option("--seed", o->seed, "seed of the simulation's DRBG streams")->capture_default_str()->check([](const std::string& s) { return s.find('-') != std::string::npos ? fmt::format("got {}, expected an integer in [0, 2^64)", s) : std::string{}; });
  o->beta_opt = cmd->add_option("--beta", o->beta, "reconciliation efficiency (default: the profile's target)");
  cmd->add_option("--eve", o->eve, "none, intercept-resend[:FRACTION] or entangling-cloner:W")->capture_default_str();
  cmd->add_option("--fault", o->faults,
                  "inject a fault (repeatable): excess-noise:XI, lo-drift:RAD2, saturation:FACTOR, sample-loss:P, "
                  "calibration-drift:REL");
  cmd->add_option("--attack", o->attack, "eavesdropper: intercept-resend, or entangling-cloner with --attack-xi");
  o->attack_xi_opt = cmd->add_option("--attack-xi", o->attack_xi,
                                     "excess noise (SNU, input-referred) the entangling cloner adds");
  cmd->add_flag("--estimate-only", o->estimate_only, "stop after parameter estimation (no reconciliation or key)");
  cmd->add_flag("--short-codes", o->short_codes, "reconcile with the short (CI-sized) code members");
  cmd->add_option("--max-iterations", o->max_iterations, "belief-propagation iterations per frame")
    ->capture_default_str()
    ->check(CLI::Range(1u, 10000u));
  cmd->add_flag("--json", o->json, "print JSON");
  cmd->callback([o] { run(*o); });

  auto po = std::make_shared<plan_options>();
  auto* pc = link->add_subcommand("plan", "the smallest finite-size block that gives this link key (design values)");
  add_link_flags(pc, po->link);
  pc->add_option("--beta", po->beta, "highest reconciliation efficiency to ask (default: the profile's target)");
  pc->add_option("--max-symbols", po->max_symbols, "largest block to consider")->capture_default_str();
  pc->add_option("--pe-fraction", po->pe_fraction, "n_pe / N, as the link's pe_fraction")->capture_default_str();
  pc->add_flag("--short-codes", po->short_codes, "the link reconciles with the short (CI-sized) code members");
  pc->add_option("--key-fraction", po->key_fraction,
                 "finite-size key per key symbol as a share of the asymptotic key (margin against the "
                 "estimates' fluctuation)")->capture_default_str();
  pc->add_flag("--json", po->json, "print JSON");
  pc->callback([po] { plan(*po); });
}

}  // namespace cvqkd::cli
