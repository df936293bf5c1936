// `cvqkd keyrate`: key-rate bounds of GG02 for given parameters, one point or a distance sweep.
#include <fmt/format.h>

#include <cmath>
#include <cstdio>
#include <sys/wait.h>
#include <unistd.h>
#include <filesystem>
#include <iostream>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "node/cli_common.hpp"
#include "reconciliation/security/key_rate.hpp"

namespace cvqkd::cli {
namespace {

constexpr double inf = std::numeric_limits<double>::infinity();

struct keyrate_options {
  std::string detection_name;
  std::string model_name = "trusted";
  double v_a = 0, transmittance = 0, distance_km = 0, attenuation = 0.2, insertion_loss = 0;
  double xi = 0, eta = 0, v_el = 0, beta = 0;
  double n_total = 0, n_pe = 0, eps = 0, eps_pe = 0, eps_smooth = 0, eps_pa = 0;
  std::string sweep, plot;
  bool json = false, csv = false;
  CLI::Option *transmittance_opt = nullptr, *distance_opt = nullptr, *n_total_opt = nullptr, *n_pe_opt = nullptr,
              *eps_opt = nullptr, *eps_pe_opt = nullptr, *eps_smooth_opt = nullptr, *eps_pa_opt = nullptr,
              *sweep_opt = nullptr, *attenuation_opt = nullptr, *insertion_loss_opt = nullptr;
};

struct point {
  double distance_km = std::numeric_limits<double>::quiet_NaN();
  security::channel_parameters p;
  double loss_db = 0, snr = 0, i_ab = 0, chi_be = 0, k_asym = 0, plob = 0, xi_bob = 0;
  std::optional<security::finite_size_result> finite;
  std::string finite_error;
};

struct finite_request {
  std::uint64_t n_total = 0, n_pe = 0;
  security::epsilons eps;
};

point evaluate(security::channel_parameters p, double beta, const std::optional<finite_request>& fs) {
  point pt;
  pt.p = p;
  pt.loss_db = loss_db_from_transmittance(p.transmittance);
  pt.snr = security::snr(p);
  pt.xi_bob = security::xi_bob(p);
  pt.i_ab = security::mutual_information(p);
  pt.chi_be = security::holevo_bound(p);
  pt.k_asym = beta * pt.i_ab - pt.chi_be;
  pt.plob = security::plob_bound(p.transmittance);
  if (fs) {
    // Expected-value estimators over the disclosed sample (cvqkd-theory.md reference convention):
    // m pairs for homodyne, 2m for heterodyne.
    const std::uint64_t samples = p.det == detection::homodyne ? fs->n_pe : 2 * fs->n_pe;
    auto r = security::key_rate_finite(security::finite_size_model::lgg2010, p,
                                       security::expected_statistics(p, samples), fs->n_total, fs->n_pe, beta, 0.0,
                                       fs->eps);
    if (r) pt.finite = *r;
    else if (r.error().code == errc::insufficient_data) pt.finite_error = r.error().message;
    else fail_with(r.error());
  }
  return pt;
}

nlohmann::json to_json(const point& pt, const std::optional<finite_request>& fs) {
  nlohmann::json j;
  if (std::isfinite(pt.distance_km)) j["distance_km"] = pt.distance_km;
  j["transmittance"] = pt.p.transmittance;
  j["loss_db"] = pt.loss_db;
  j["snr"] = pt.snr;
  j["xi_bob"] = pt.xi_bob;
  j["i_ab"] = pt.i_ab;
  j["chi_be"] = pt.chi_be;
  j["key_rate_asymptotic"] = pt.k_asym;
  j["plob_bound"] = pt.plob;
  if (fs) {
    j["n_total"] = fs->n_total;
    j["n_pe"] = fs->n_pe;
    if (pt.finite) {
      const auto& f = *pt.finite;
      j["t_min"] = f.bounds.transmittance_min;
      j["xi_max"] = f.bounds.xi_max;
      j["delta_n"] = f.delta_n;
      j["chi_be_worst"] = f.chi_be_worst;
      j["key_rate_finite"] = f.key_rate;
    } else {
      j["t_min"] = nullptr;
      j["xi_max"] = nullptr;
      j["delta_n"] = nullptr;
      j["key_rate_finite"] = 0.0;
      j["no_key_reason"] = pt.finite_error;
    }
  }
  return j;
}

struct sweep_range {
  double from, to, step;
};

sweep_range parse_sweep(const std::string& s) {
  double a = 0, b = 0, c = 0;
  char tail = 0;
  if (std::sscanf(s.c_str(), "%lf:%lf:%lf%c", &a, &b, &c, &tail) != 3)
    usage("--sweep-distance", fmt::format("got '{}', expected FROM:TO:STEP in km, e.g. 0:100:5", s));
  require_range("--sweep-distance FROM", a, 0, inf, false, true, "a distance (km)");
  require_range("--sweep-distance TO", b, a, inf, true, true, "a distance above FROM (km)");
  require_range("--sweep-distance STEP", c, 0, inf, true, true, "a step (km)");
  if ((b - a) / c > 100000) usage("--sweep-distance", "more than 100000 points: use a larger STEP");
  return {a, b, c};
}

void plot_sweep(const std::vector<point>& pts, const std::string& file, bool finite) {
  const auto ext = std::filesystem::path(file).extension().string();
  std::string terminal;
  if (ext == ".svg") terminal = "svg size 900,600 dynamic";
  else if (ext == ".png") terminal = "pngcairo size 900,600";
  else usage("--plot", fmt::format("'{}' has no .svg or .png extension", file));
  if (file.find('\'') != std::string::npos) usage("--plot", "the file name must not contain a single quote");
  const auto dir = std::filesystem::path(file).parent_path();
  if (!dir.empty() && !std::filesystem::is_directory(dir))
    usage("--plot", fmt::format("the directory '{}' does not exist", dir.string()));
  if (std::system("command -v gnuplot >/dev/null 2>&1") != 0)
    throw cli_exit{runtime_failure,
                   "--plot needs gnuplot, which is not installed: apt-get install gnuplot-nox (or drop --plot)"};
  const auto data = std::filesystem::temp_directory_path() / fmt::format("cvqkd-sweep-{}.dat", ::getpid());
  {
    std::FILE* f = std::fopen(data.c_str(), "w");
    if (f == nullptr) throw cli_exit{runtime_failure, fmt::format("cannot write {}", data.string())};
    for (const auto& pt : pts) {
      // Non-positive rates cannot be drawn on a log scale: gnuplot skips NaN.
      const auto pos = [](double v) { return v > 0 ? v : std::numeric_limits<double>::quiet_NaN(); };
      std::fprintf(f, "%g %g %g %g\n", pt.distance_km, pos(pt.k_asym), pos(pt.plob),
                   pt.finite ? pos(pt.finite->key_rate) : std::numeric_limits<double>::quiet_NaN());
    }
    std::fclose(f);
  }
  std::string script = fmt::format(
    "set terminal {}\nset output '{}'\nset logscale y\nset format y '10^{{%L}}'\nset grid\n"
    "set xlabel 'distance (km)'\nset ylabel 'key rate (bits per channel use)'\nset key top right\n"
    "plot '{}' using 1:3 with lines lw 2 title 'PLOB bound', '{}' using 1:2 with lines lw 2 title "
    "'asymptotic K'",
    terminal, file, data.string(), data.string());
  if (finite) script += fmt::format(", '{}' using 1:4 with lines lw 2 title 'finite-size K'", data.string());
  script += "\n";
  std::FILE* gp = ::popen("gnuplot", "w");
  if (gp == nullptr) throw cli_exit{runtime_failure, "cannot start gnuplot"};
  std::fputs(script.c_str(), gp);
  const int rc = ::pclose(gp);
  std::filesystem::remove(data);
  if (rc != 0)
    throw cli_exit{runtime_failure, fmt::format("gnuplot failed to write {} (exit status {}): check that the "
                                                "directory exists and is writable",
                                                file, WIFEXITED(rc) ? WEXITSTATUS(rc) : rc)};
}

void run(const keyrate_options& o) {
  security::channel_parameters p;
  const auto det = parse_detection(o.detection_name);
  if (!det) usage("--detection", fmt::format("got '{}', expected homodyne or heterodyne", o.detection_name));
  p.det = *det;
  const auto model = parse_detector_model(o.model_name);
  if (!model) usage("--detector-model", fmt::format("got '{}', expected trusted or untrusted", o.model_name));
  p.model = *model;
  require_range("--va", o.v_a, 0, security::max_v_a, true, false, "a modulation variance (SNU)");
  require_range("--xi", o.xi, 0, security::max_xi, false, false, "an input-referred excess noise (SNU)");
  require_range("--eta", o.eta, 0, 1, true, false, "a detector efficiency");
  require_range("--vel", o.v_el, 0, inf, false, true, "an electronic noise (SNU)");
  require_range("--beta", o.beta, 0, 1, true, false, "a reconciliation efficiency");
  require_range("--attenuation-db-per-km", o.attenuation, 0, inf, false, true, "a fibre attenuation (dB/km)");
  require_range("--insertion-loss-db", o.insertion_loss, 0, inf, false, true, "an insertion loss (dB)");
  p.v_a = o.v_a;
  p.xi = o.xi;
  p.eta = o.eta;
  p.v_el = o.v_el;

  const bool sweep = (o.sweep_opt->count() > 0);
  const int channel_flags = ((o.transmittance_opt->count() > 0) ? 1 : 0) + ((o.distance_opt->count() > 0) ? 1 : 0) + (sweep ? 1 : 0);
  if (channel_flags != 1)
    usage("--transmittance/--distance-km/--sweep-distance", "give exactly one of them to set the channel");
  if ((o.transmittance_opt->count() > 0)) {
    require_range("--transmittance", o.transmittance, security::min_transmittance, 1, false, false,
                  "T (at most 100 dB of loss)");
    if (o.attenuation_opt->count() > 0 || o.insertion_loss_opt->count() > 0)
      usage("--attenuation-db-per-km/--insertion-loss-db", "apply to --distance-km and --sweep-distance, not to "
                                                          "--transmittance (fold the loss into T instead)");
  }
  if ((o.distance_opt->count() > 0)) require_range("--distance-km", o.distance_km, 0, inf, false, true, "a fibre length (km)");
  if (o.csv && !sweep) usage("--csv", "only applies to --sweep-distance");
  if (!o.plot.empty() && !sweep) usage("--plot", "only applies to --sweep-distance");

  // The model stops at 100 dB (T >= 1e-10): say so before computing, naming the flag.
  const auto check_loss = [&](std::string_view flag, double km) {
    if (fibre_transmittance(km, o.attenuation, o.insertion_loss) < security::min_transmittance)
      usage(flag, fmt::format("{} km at {} dB/km plus {} dB is beyond the 100 dB (T >= 1e-10) the model covers", km,
                              o.attenuation, o.insertion_loss));
  };
  if (o.distance_opt->count() > 0) check_loss("--distance-km", o.distance_km);
  std::optional<finite_request> fs;
  const bool eps_given = (o.eps_opt->count() > 0) || (o.eps_pe_opt->count() > 0) || (o.eps_smooth_opt->count() > 0) || (o.eps_pa_opt->count() > 0);
  if ((o.n_total_opt->count() > 0)) {
    require_range("--n-total", o.n_total, 1000, 1e18, false, false, "a block size (symbols)");
    if (o.n_total != std::floor(o.n_total)) usage("--n-total", fmt::format("got {}, expected a whole number", o.n_total));
    finite_request r;
    r.n_total = static_cast<std::uint64_t>(o.n_total);
    r.n_pe = r.n_total / 2;
    if ((o.n_pe_opt->count() > 0)) {
      require_range("--n-pe", o.n_pe, 1, o.n_total, false, true, "a number of disclosed symbols below --n-total");
      if (o.n_pe != std::floor(o.n_pe)) usage("--n-pe", fmt::format("got {}, expected a whole number", o.n_pe));
      r.n_pe = static_cast<std::uint64_t>(o.n_pe);
    }
    const double base = (o.eps_opt->count() > 0) ? o.eps : 1e-10;
    if ((o.eps_opt->count() > 0)) require_range("--eps", o.eps, 0, 1, true, true, "a failure probability");
    r.eps = security::epsilons{.pe = base, .smooth = base, .pa = base};
    if ((o.eps_pe_opt->count() > 0)) require_range("--eps-pe", r.eps.pe = o.eps_pe, 0, 1, true, true, "a failure probability");
    if ((o.eps_smooth_opt->count() > 0))
      require_range("--eps-smooth", r.eps.smooth = o.eps_smooth, 0, 1, true, true, "a failure probability");
    if ((o.eps_pa_opt->count() > 0)) require_range("--eps-pa", r.eps.pa = o.eps_pa, 0, 1, true, true, "a failure probability");
    fs = r;
  } else if ((o.n_pe_opt->count() > 0) || eps_given) {
    usage("--n-pe/--eps", "finite-size options need --n-total");
  }

  if (!sweep) {
    point pt;
    if ((o.transmittance_opt->count() > 0)) {
      p.transmittance = o.transmittance;
      pt = evaluate(p, o.beta, fs);
    } else {
      p.transmittance = fibre_transmittance(o.distance_km, o.attenuation, o.insertion_loss);
      pt = evaluate(p, o.beta, fs);
      pt.distance_km = o.distance_km;
    }
    if (o.json) {
      auto j = to_json(pt, fs);
      j["detection"] = to_string(p.det);
      j["detector_model"] = to_string(p.model);
      j["v_a"] = p.v_a;
      j["xi"] = p.xi;
      j["eta"] = p.eta;
      j["v_el"] = p.v_el;
      j["beta"] = o.beta;
      j["units"] = "key rates, I_AB and chi_BE in bits per symbol; variances in SNU; xi input-referred, xi_bob at Bob";
      print_json(j);
      return;
    }
    std::cout << fmt::format("{} detection, {} detector, V_A = {} SNU, xi = {} SNU (input), eta = {}, v_el = {} SNU, "
                             "beta = {}\n",
                             to_string(p.det), to_string(p.model), p.v_a, p.xi, p.eta, p.v_el, o.beta);
    std::cout << fmt::format("  transmittance T        {:.6g} ({:.2f} dB)\n", p.transmittance, pt.loss_db);
    std::cout << fmt::format("  SNR per dimension      {:.6g}\n", pt.snr);
    std::cout << fmt::format("  I_AB                   {:.10f} bit/symbol\n", pt.i_ab);
    std::cout << fmt::format("  chi_BE                 {:.10f} bit/symbol\n", pt.chi_be);
    std::cout << fmt::format("  xi_B at Bob            {:.6g} SNU\n", pt.xi_bob);
    std::cout << fmt::format("  K asymptotic           {:.10f} bit/symbol{}\n", pt.k_asym,
                             pt.k_asym > 0 ? "" : "  (no key: the bound is not positive)");
    std::cout << fmt::format("  PLOB bound             {:.10f} bit/symbol\n", pt.plob);
    if (fs) {
      std::cout << fmt::format("  finite size: N = {}, n_pe = {}, eps_PE = {:g}, eps_smooth = {:g}, eps_PA = {:g}\n",
                               fs->n_total, fs->n_pe, fs->eps.pe, fs->eps.smooth, fs->eps.pa);
      if (pt.finite) {
        std::cout << fmt::format("  T_min                  {:.8f}\n", pt.finite->bounds.transmittance_min);
        std::cout << fmt::format("  xi_max                 {:.8f} SNU\n", pt.finite->bounds.xi_max);
        std::cout << fmt::format("  Delta(n)               {:.6e}\n", pt.finite->delta_n);
        std::cout << fmt::format("  K finite size          {:.6e} bit/symbol{}\n", pt.finite->key_rate,
                                 pt.finite->key_rate > 0 ? "" : "  (no key: the bound is not positive)");
      } else {
        std::cout << "  K finite size          no key: " << pt.finite_error << '\n';
      }
    }
    return;
  }

  const auto range = parse_sweep(o.sweep);
  check_loss("--sweep-distance", range.to);
  std::vector<point> pts;
  const auto count = static_cast<std::size_t>(std::floor((range.to - range.from) / range.step + 1e-9)) + 1;
  for (std::size_t i = 0; i < count; ++i) {
    // From an index, rounded to 1e-9 km, so that 0.1 steps print as 0.3 and not 0.30000000000000004.
    const double km = std::round((range.from + static_cast<double>(i) * range.step) * 1e9) / 1e9;
    p.transmittance = fibre_transmittance(km, o.attenuation, o.insertion_loss);
    auto pt = evaluate(p, o.beta, fs);
    pt.distance_km = km;
    pts.push_back(std::move(pt));
  }
  if (!o.plot.empty()) plot_sweep(pts, o.plot, fs.has_value());
  if (o.json) {
    nlohmann::json arr = nlohmann::json::array();
    for (const auto& pt : pts) arr.push_back(to_json(pt, fs));
    print_json(nlohmann::json{{"detection", to_string(p.det)}, {"detector_model", to_string(p.model)}, {"points", arr}});
  } else if (o.csv) {
    std::cout << "distance_km,transmittance,loss_db,snr,i_ab,chi_be,key_rate_asymptotic,plob_bound"
              << (fs ? ",t_min,xi_max,delta_n,key_rate_finite" : "") << '\n';
    for (const auto& pt : pts) {
      std::cout << fmt::format("{:.10g},{:.10g},{:.6g},{:.10g},{:.10g},{:.10g},{:.10g},{:.10g}", pt.distance_km,
                               pt.p.transmittance, pt.loss_db, pt.snr, pt.i_ab, pt.chi_be, pt.k_asym, pt.plob);
      if (fs) {
        if (pt.finite)
          std::cout << fmt::format(",{:.10g},{:.10g},{:.10g},{:.10g}", pt.finite->bounds.transmittance_min,
                                   pt.finite->bounds.xi_max, pt.finite->delta_n, pt.finite->key_rate);
        else
          std::cout << ",,,,0";
      }
      std::cout << '\n';
    }
  } else {
    std::cout << fmt::format("{:>8} {:>10} {:>8} {:>10} {:>13} {:>13}{}\n", "km", "T", "loss dB", "SNR", "K asym",
                             "PLOB", fs ? fmt::format(" {:>13}", "K finite") : "");
    for (const auto& pt : pts) {
      std::cout << fmt::format("{:>8.2f} {:>10.4g} {:>8.2f} {:>10.4g} {:>13.5e} {:>13.5e}", pt.distance_km,
                               pt.p.transmittance, pt.loss_db, pt.snr, pt.k_asym, pt.plob);
      if (fs) std::cout << fmt::format(" {:>13.5e}", pt.finite ? pt.finite->key_rate : 0.0);
      std::cout << '\n';
    }
    std::cout << "key rates in bits per symbol; a non-positive rate is a bound, not a key: no key is released\n";
  }
}

}  // namespace

void add_keyrate(CLI::App& app) {
  auto o = std::make_shared<keyrate_options>();
  auto* cmd = app.add_subcommand("keyrate", "GG02 key-rate bounds (reverse reconciliation, collective attacks)");
  cmd->add_option("--detection", o->detection_name, "homodyne or heterodyne")->required();
  cmd->add_option("--va", o->v_a, "modulation variance V_A per quadrature (SNU)")->required();
  o->transmittance_opt = cmd->add_option("--transmittance", o->transmittance, "channel transmittance T in (0, 1]");
  o->distance_opt = cmd->add_option("--distance-km", o->distance_km, "fibre length (km), instead of --transmittance");
  o->attenuation_opt =
    cmd->add_option("--attenuation-db-per-km", o->attenuation, "fibre attenuation (dB/km)")->capture_default_str();
  o->insertion_loss_opt =
    cmd->add_option("--insertion-loss-db", o->insertion_loss, "extra loss of connectors and splices (dB)")
      ->capture_default_str();
  cmd->add_option("--xi", o->xi, "excess noise referred to the channel input (SNU)")->required();
  cmd->add_option("--eta", o->eta, "detector efficiency in (0, 1]")->required();
  cmd->add_option("--vel", o->v_el, "electronic noise v_el (SNU, per arm for heterodyne)")->required();
  cmd->add_option("--beta", o->beta, "reconciliation efficiency in (0, 1]")->required();
  cmd->add_option("--detector-model", o->model_name, "trusted or untrusted detector noise")->capture_default_str();
  o->n_total_opt = cmd->add_option("--n-total", o->n_total, "block size N (symbols): enables the finite-size bound");
  o->n_pe_opt = cmd->add_option("--n-pe", o->n_pe, "symbols disclosed for parameter estimation (default N/2)");
  o->eps_opt = cmd->add_option("--eps", o->eps, "sets eps_PE = eps_smooth = eps_PA (default 1e-10)");
  o->eps_pe_opt = cmd->add_option("--eps-pe", o->eps_pe, "parameter-estimation failure probability (overrides --eps)");
  o->eps_smooth_opt = cmd->add_option("--eps-smooth", o->eps_smooth, "smoothing parameter eps-bar");
  o->eps_pa_opt = cmd->add_option("--eps-pa", o->eps_pa, "privacy-amplification failure probability");
  o->sweep_opt = cmd->add_option("--sweep-distance", o->sweep, "FROM:TO:STEP in km: print a table over distance");
  cmd->add_flag("--csv", o->csv, "with --sweep-distance: print CSV");
  cmd->add_option("--plot", o->plot, "with --sweep-distance: draw key rate and PLOB to FILE.svg or FILE.png (gnuplot)");
  cmd->add_flag("--json", o->json, "print JSON");
  cmd->callback([o] { run(*o); });
}

}  // namespace cvqkd::cli
