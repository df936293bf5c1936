// `cvqkd bench <what>`: benchmarks that print JSON. `bench reconcile`: simulated Gaussian channel, MDR
// (d = 8) and LDPC decoding of the shipped rate-adaptive codes: efficiency beta, frame error rate,
// iterations, throughput and memory. Further benchmarks register as siblings of `reconcile`.
#include <fmt/format.h>
#include <sys/resource.h>

#include <cmath>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "node/cli_common.hpp"
#include "reconciliation/ldpc/check_kernels.hpp"
#include "reconciliation/ldpc/codes.hpp"
#include "reconciliation/ldpc/frame_simulation.hpp"
#include "reconciliation/verification/hash.hpp"

namespace cvqkd::cli {
void add_bench_pa(CLI::App& bench);       // node/cli_bench_pa.cpp
void add_bench_network(CLI::App& bench);  // node/cli_bench_network.cpp
namespace {

namespace ldpc = reconciliation::ldpc;

struct reconcile_options {
  double snr = 0;
  std::string rate = "auto";
  double beta = 0.93;
  std::string code;
  bool short_block = false;
  std::uint64_t frames = 10;
  unsigned threads = 2;
  std::uint64_t seed = 1;
  unsigned max_iterations = 300;
  std::string schedule = "layered", rule = "sum-product";
  std::string sweep;
  bool json = false;
};

std::size_t peak_memory_bytes() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<std::size_t>(ru.ru_maxrss) * 1024;  // Linux reports kilobytes
}

ldpc::rate_choice choose_code(const reconcile_options& o) {
  if (o.rate == "auto") {
    if (!o.code.empty()) {
      auto fam = ldpc::find_family(o.code);
      if (!fam) usage("--code", fam.error().message);
      auto c = ldpc::choose_for_rate(**fam, o.beta * ldpc::capacity(o.snr), o.snr, o.short_block);
      if (!c) usage("--beta", c.error().message);
      return *c;
    }
    auto c = ldpc::select_rate(o.snr, o.beta, o.short_block);
    // beta x capacity(SNR) is the rate asked: above the codes' range at high SNR, below it at low SNR
    if (!c) usage("--snr/--beta", c.error().message + "; choose an SNR and beta whose rate a family offers");
    return *c;
  }
  double r = 0;
  try {
    std::size_t used = 0;
    r = std::stod(o.rate, &used);
    if (used != o.rate.size()) throw std::invalid_argument(o.rate);
  } catch (const std::exception&) {
    usage("--rate", fmt::format("'{}' is neither 'auto' nor a number", o.rate));
  }
  require_range("--rate", r, 0, 1, true, true, "code rate");
  std::optional<ldpc::rate_choice> best;
  for (const auto& fam : ldpc::code_families()) {
    if (!o.code.empty() && fam.name != o.code) continue;
    if (auto c = ldpc::choose_for_rate(fam, r, o.snr, o.short_block)) best = *c;  // least truncated family last
  }
  if (!best) usage("--rate", fmt::format("no shipped code{} offers rate {} (see `cvqkd codes list`)",
                                         o.code.empty() ? "" : " in family " + o.code, r));
  return *best;
}

struct run_result {
  ldpc::simulation_summary s;
  double snr, rate, beta;
  double cpu_seconds = 0;  // process CPU (user + system) over the point: channel simulation, MDR, decoding
};

double process_cpu_seconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return double(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) + 1e-6 * double(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}

run_result run_point(const ldpc::qc_matrix& h, const ldpc::rate_choice& c, const reconcile_options& o, double snr) {
  ldpc::simulation_options so;
  so.snr = snr;
  so.threads = o.threads;
  so.seed = o.seed;
  so.decoding.max_iterations = o.max_iterations;
  auto sched = ldpc::parse_schedule(o.schedule);
  if (!sched) usage("--schedule", sched.error().message);
  auto rule = ldpc::parse_update_rule(o.rule);
  if (!rule) usage("--rule", rule.error().message);
  so.decoding.sched = *sched;
  so.decoding.rule = *rule;
  const double cpu0 = process_cpu_seconds();
  auto s = ldpc::simulate_reconciliation(h, so, o.frames);
  const double cpu = process_cpu_seconds() - cpu0;
  if (!s) fail_with(s.error());
  return {*s, snr, c.rate, c.rate / ldpc::capacity(snr), cpu};
}

nlohmann::json point_json(const run_result& r, const ldpc::qc_matrix& h, const ldpc::rate_choice& c,
                          const reconcile_options& o) {
  const double bits = double(h.cols()) * double(r.s.frames);
  nlohmann::json j;
  j["code"] = std::string(c.family->name) + (o.short_block ? " (short)" : "");
  j["snr"] = r.snr;
  j["capacity"] = ldpc::capacity(r.snr);
  j["rate"] = r.rate;
  j["beta"] = r.beta;
  j["frame_bits"] = h.cols();
  j["syndrome_bits"] = h.rows();
  j["frames"] = r.s.frames;
  j["failed_frames"] = r.s.failed;
  j["fer"] = double(r.s.failed) / double(r.s.frames);
  j["undetected_errors"] = r.s.undetected;
  j["caught_by_verification"] = r.s.syndrome_ok_but_wrong;
  j["mean_iterations"] = r.s.mean_iterations;
  j["max_iterations"] = r.s.max_iterations;
  j["iteration_limit"] = o.max_iterations;
  j["threads"] = o.threads;
  j["decode_seconds"] = r.s.decode_seconds;
  j["wall_seconds"] = r.s.wall_seconds;
  j["throughput_bits_per_s"] = bits / r.s.decode_seconds;
  // heterodyne: two real dimensions (two code bits) per symbol
  j["throughput_symbols_per_s"] = bits / 2.0 / r.s.decode_seconds;
  j["end_to_end_bits_per_s"] = bits / r.s.wall_seconds;
  // per CPU-second of the whole point (simulation and MDR included): comparable on a loaded machine
  j["cpu_seconds"] = r.cpu_seconds;
  j["bits_per_cpu_second"] = bits / r.cpu_seconds;
  j["simd_target"] = ldpc::check_kernel_target();
  j["decoder_memory_bytes_per_thread"] = r.s.decoder_memory_bytes;
  j["peak_memory_bytes"] = peak_memory_bytes();
  j["verification_tag_bits"] = reconciliation::verification::tag_bits;
  j["leak_bits_per_frame"] = h.rows() + reconciliation::verification::tag_bits;
  j["schedule"] = o.schedule;
  j["rule"] = o.rule;
  j["seed"] = o.seed;
  return j;
}

std::vector<double> parse_sweep(const std::string& s) {
  double a = 0, b = 0, st = 0;
  char c1 = 0, c2 = 0;
  std::istringstream in(s);
  if (!(in >> a >> c1 >> b >> c2 >> st) || c1 != ':' || c2 != ':' || !(a > 0) || !(b >= a) || !(st > 0))
    usage("--sweep", "expects A:B:STEP with 0 < A <= B and STEP > 0 (SNR values)");
  std::vector<double> v;
  for (int i = 0; a + i * st <= b * (1 + 1e-9) && i < 1000; ++i) v.push_back(std::round((a + i * st) * 1e9) / 1e9);
  return v;
}

void run_reconcile(const reconcile_options& o) {
  require_range("--snr", o.snr, 0, 100, true, false, "signal-to-noise ratio per real dimension");
  require_range("--beta", o.beta, 0, 1, true, true, "target reconciliation efficiency");
  if (o.frames == 0) usage("--frames", "needs at least 1 frame");
  if (o.threads == 0 || o.threads > 256) usage("--threads", "must lie in 1 .. 256");
  if (o.max_iterations == 0) usage("--max-iterations", "must be at least 1");
  const auto choice = choose_code(o);
  auto h = ldpc::build(choice);
  if (!h) fail_with(h.error());
  if (o.sweep.empty()) {
    const auto r = run_point(*h, choice, o, o.snr);
    const auto j = point_json(r, *h, choice, o);
    if (o.json) {
      print_json(j);
      return;
    }
    std::cout << fmt::format(
        "code {} n={} rate {:.5f} at SNR {}: beta {:.4f}, FER {:.3f} ({} of {} frames), iterations mean {:.1f} max "
        "{}, throughput {:.3f} Mbit/s ({:.3f} Msymbols/s heterodyne), peak memory {:.1f} MiB\n",
        j["code"].get<std::string>(), h->cols(), r.rate, r.snr, r.beta, j["fer"].get<double>(), r.s.failed,
        r.s.frames, r.s.mean_iterations, r.s.max_iterations, j["throughput_bits_per_s"].get<double>() / 1e6,
        j["throughput_symbols_per_s"].get<double>() / 1e6, j["peak_memory_bytes"].get<double>() / 1048576.0);
    return;
  }
  const auto sweep_snrs = parse_sweep(o.sweep);  // checked before anything is printed
  nlohmann::json table = nlohmann::json::array();
  if (!o.json) std::cout << fmt::format("code {} n={} rate {:.5f}\n{:>8} {:>7} {:>7} {:>9} {:>5}\n", choice.family->name,
                                        h->cols(), choice.rate, "snr", "beta", "fer", "mean_it", "max");
  for (double snr : sweep_snrs) {
    const auto r = run_point(*h, choice, o, snr);
    auto j = point_json(r, *h, choice, o);
    table.push_back(j);
    if (!o.json)
      std::cout << fmt::format("{:>8.4f} {:>7.4f} {:>7.3f} {:>9.1f} {:>5}\n", snr, r.beta, j["fer"].get<double>(),
                               r.s.mean_iterations, r.s.max_iterations)
                << std::flush;
  }
  if (o.json) print_json({{"sweep", table}});
}

void add_reconcile(CLI::App* bench) {
  auto o = std::make_shared<reconcile_options>();
  auto* cmd = bench->add_subcommand("reconcile", "MDR (d=8) + LDPC decoding on a simulated Gaussian channel");
  cmd->add_option("--snr", o->snr, "SNR per real dimension (the design point for --sweep)")->required();
  cmd->add_option("--rate", o->rate, "code rate, or 'auto' to choose it from --snr and --beta")->capture_default_str();
  cmd->add_option("--beta", o->beta, "target efficiency for --rate auto")->capture_default_str();
  cmd->add_option("--code", o->code, "restrict to one code family (see `cvqkd codes list`)");
  cmd->add_flag("--short", o->short_block, "use the short-block (CI) member of the family");
  cmd->add_option("--frames", o->frames, "frames to decode")->capture_default_str();
  cmd->add_option("--threads", o->threads, "decoding threads (frames in parallel)")->capture_default_str();
  cmd->add_option("--seed", o->seed, "seed of the simulation (channel, bits, verification keys)")->capture_default_str();
  cmd->add_option("--max-iterations", o->max_iterations, "decoder iteration limit")->capture_default_str();
  cmd->add_option("--schedule", o->schedule, "flooding | layered")->capture_default_str();
  cmd->add_option("--rule", o->rule, "sum-product | normalized-min-sum | offset-min-sum")->capture_default_str();
  cmd->add_option("--sweep", o->sweep, "A:B:STEP: FER against channel SNR for the code chosen at --snr");
  cmd->add_flag("--json", o->json, "print JSON");
  cmd->callback([o] { run_reconcile(*o); });
}

}  // namespace

void add_bench(CLI::App& app) {
  auto* bench = app.add_subcommand("bench", "benchmarks (JSON with --json)");
  bench->require_subcommand(1);
  add_reconcile(bench);
  add_bench_pa(*bench);
  add_bench_network(*bench);
}

}  // namespace cvqkd::cli
