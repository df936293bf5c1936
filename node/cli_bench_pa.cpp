// `cvqkd bench pa`: throughput of privacy amplification (Toeplitz hashing) on random data.
#include <fmt/format.h>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <ctime>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "core/drbg.hpp"
#include "node/cli_common.hpp"
#include "reconciliation/privacy/toeplitz.hpp"

namespace cvqkd::cli {
namespace {

namespace pa = reconciliation::privacy;

struct pa_options {
  double n = 1e8;
  double compression = 0.25;
  std::string method = "auto";
  std::string kernel;
  unsigned repetitions = 3;
  std::uint64_t seed = 1;
  bool json = false;
};

std::size_t peak_memory_bytes() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<std::size_t>(ru.ru_maxrss) * 1024;  // Linux reports kilobytes
}

double thread_cpu_seconds() {
  timespec t{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + 1e-9 * static_cast<double>(t.tv_nsec);
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t k = v.size() / 2;
  return v.size() % 2 == 1 ? v[k] : 0.5 * (v[k - 1] + v[k]);
}

pa::bit_vector random_bits(std::size_t n, random_source& rng) {
  pa::bit_vector v(n);
  rng.fill(std::as_writable_bytes(v.words()));
  v.clear_padding();
  return v;
}

void run_pa(const pa_options& o) {
  require_range("--n", o.n, 1, std::ldexp(1.0, 36), false, false, "input bits n_in");
  if (o.n != std::floor(o.n)) usage("--n", "must be a whole number of bits");
  require_range("--compression", o.compression, 0, 1, true, false, "n_out / n_in");
  if (o.repetitions == 0 || o.repetitions > 1000) usage("--repetitions", "must lie in 1 .. 1000");
  auto method = pa::parse_toeplitz_method(o.method);
  if (!method) usage("--method", method.error().message);
  const auto n_in = static_cast<std::size_t>(o.n);
  const auto n_out = std::max<std::size_t>(1, static_cast<std::size_t>(std::floor(o.n * o.compression)));
  if (*method == pa::toeplitz_method::naive && static_cast<double>(n_in) * static_cast<double>(n_out) > 1e12)
    usage("--method", fmt::format("naive needs n_in * n_out / 64 = {:.3g} word operations per hash; use it below "
                                  "n_in * n_out = 1e12",
                                  static_cast<double>(n_in) * static_cast<double>(n_out) / 64));
  auto hasher = pa::toeplitz_hasher::create({*method, o.kernel, true});
  if (!hasher) usage("--kernel", hasher.error().message);

  seeded_drbg rng(o.seed, "bench-pa");
  const pa::bit_vector x = random_bits(n_in, rng);
  const pa::bit_vector seed = random_bits(pa::toeplitz_seed_bits(n_in, n_out), rng);

  // One untimed call allocates and first-touches the workspace, which a long-lived hasher reuses.
  const auto f0 = std::chrono::steady_clock::now();
  auto first = hasher->hash(x, seed, n_out);
  if (!first) fail_with(first.error());
  const double first_call = std::chrono::duration<double>(std::chrono::steady_clock::now() - f0).count();

  std::vector<double> wall, cpu;
  std::size_t ones = 0;
  for (unsigned r = 0; r < o.repetitions; ++r) {
    const double c0 = thread_cpu_seconds();
    const auto t0 = std::chrono::steady_clock::now();
    auto out = hasher->hash(x, seed, n_out);
    const auto t1 = std::chrono::steady_clock::now();
    const double c1 = thread_cpu_seconds();
    if (!out) fail_with(out.error());
    if (!(*out == *first)) throw cli_exit{runtime_failure, "bench pa: repeated hashes of the same input differ"};
    ones = out->popcount();
    wall.push_back(std::chrono::duration<double>(t1 - t0).count());
    cpu.push_back(c1 - c0);
  }
  const double t_med = median(wall), c_med = median(cpu);
  double load[1] = {0};
  const bool have_load = getloadavg(load, 1) == 1;

  nlohmann::json j;
  j["method"] = std::string(pa::to_string(hasher->last_method()));
  j["kernel"] = std::string(hasher->kernel_name());
  j["n_in"] = n_in;
  j["n_out"] = n_out;
  j["compression"] = static_cast<double>(n_out) / static_cast<double>(n_in);
  j["repetitions"] = o.repetitions;
  j["seconds"] = wall;
  j["seconds_median"] = t_med;
  j["cpu_seconds_median"] = c_med;
  j["throughput_bits_per_s"] = static_cast<double>(n_in) / t_med;
  j["throughput_cpu_bits_per_s"] = static_cast<double>(n_in) / c_med;
  j["output_bits_per_s"] = static_cast<double>(n_out) / t_med;
  j["first_call_seconds"] = first_call;
  j["workspace_bytes"] = hasher->workspace_bytes();
  j["workspace_bytes_per_input_bit"] = static_cast<double>(hasher->workspace_bytes()) / static_cast<double>(n_in);
  j["peak_memory_bytes"] = peak_memory_bytes();
  j["output_ones_fraction"] = static_cast<double>(ones) / static_cast<double>(n_out);
  j["threads"] = 1;
  j["load_average_1min"] = have_load ? nlohmann::json(load[0]) : nlohmann::json(nullptr);
  j["seed"] = o.seed;
  if (o.json) {
    print_json(j);
    return;
  }
  std::cout << fmt::format(
      "privacy amplification {} -> {} bits ({}, kernel {}), one thread: median {:.4f} s wall ({:.1f} Mbit/s of "
      "input), {:.4f} s CPU ({:.1f} Mbit/s); first call {:.3f} s; workspace {:.1f} MiB ({:.2f} B per input bit); "
      "peak memory {:.1f} MiB\n",
      n_in, n_out, j["method"].get<std::string>(), hasher->kernel_name(), t_med, static_cast<double>(n_in) / t_med / 1e6,
      c_med, static_cast<double>(n_in) / c_med / 1e6, first_call,
      static_cast<double>(hasher->workspace_bytes()) / 1048576.0,
      static_cast<double>(hasher->workspace_bytes()) / static_cast<double>(n_in),
      static_cast<double>(peak_memory_bytes()) / 1048576.0);
  if (have_load && load[0] > 1.5)
    std::cout << fmt::format("note: load average {:.1f}: other processes share the CPU; the CPU-time figure is "
                             "the better measure of one core\n",
                             load[0]);
}

}  // namespace

void add_bench_pa(CLI::App& bench) {
  auto o = std::make_shared<pa_options>();
  auto* cmd = bench.add_subcommand("pa", "privacy amplification: Toeplitz hashing of random input, one thread");
  cmd->add_option("--n", o->n, "input bits n_in (e.g. 1e8)")->capture_default_str();
  cmd->add_option("--compression", o->compression, "n_out / n_in, in (0, 1]")->capture_default_str();
  cmd->add_option("--method", o->method, "auto | naive | additive-fft")->capture_default_str();
  cmd->add_option("--kernel", o->kernel,
                  "additive-FFT kernel tier: portable | pclmulqdq | avx512-vpclmulqdq (default: fastest available)");
  cmd->add_option("--repetitions", o->repetitions, "timed hashes (after one warm-up); the median is reported")
      ->capture_default_str();
  cmd->add_option("--seed", o->seed, "seed of the random input and Toeplitz seed")->capture_default_str();
  cmd->add_flag("--json", o->json, "print JSON");
  cmd->callback([o] { run_pa(*o); });
}

}  // namespace cvqkd::cli
