// Throughput of the single-link chain (simulated hardware -> sifting -> estimation) and of the
// key-rate bounds. Run: build/bin/cvqkd_bench --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>

#include "links/simulation.hpp"
#include "reconciliation/security/key_rate.hpp"

using namespace cvqkd;

static void bm_link_simulation(benchmark::State& state) {
  links::simulation_config c;
  c.hardware.profile.detection = state.range(1) ? detection::heterodyne : detection::homodyne;
  c.hardware.profile.v_a = 5;
  c.hardware.profile.xi = 0.02;
  c.hardware.profile.eta = 0.65;
  c.hardware.profile.v_el = 0.01;
  c.hardware.profile.calibration_samples = 1000;
  c.hardware.transmittance = 0.316;
  c.symbols = static_cast<std::uint64_t>(state.range(0));
  for (auto _ : state) {
    auto r = links::simulate(c);
    benchmark::DoNotOptimize(r);
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));  // symbols
}
BENCHMARK(bm_link_simulation)->Args({1 << 20, 0})->Args({1 << 20, 1})->Unit(benchmark::kMillisecond);

static void bm_holevo_bound(benchmark::State& state) {
  security::channel_parameters p{.det = detection::heterodyne, .model = detector_model::trusted, .v_a = 4,
                                 .transmittance = 0.3, .xi = 0.01, .eta = 0.6, .v_el = 0.05};
  for (auto _ : state) {
    p.xi += 1e-12;
    benchmark::DoNotOptimize(security::key_rate_asymptotic(p, 0.95));
  }
}
BENCHMARK(bm_holevo_bound);

BENCHMARK_MAIN();
