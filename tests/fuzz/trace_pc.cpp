// Coverage feedback for libFuzzer from g++'s -fsanitize-coverage=trace-pc (see CMakeLists.txt for
// why the fuzzer is built with g++): g++ calls __sanitizer_cov_trace_pc() at the start of every
// basic block of the instrumented files. We hash the call site into a byte counter in the
// `__libfuzzer_extra_counters` section, which libFuzzer 14 reads as coverage features on Linux
// (FuzzerExtraCounters.cpp). libFuzzer's own __sanitizer_cov_trace_pc (it only reports "no longer
// supported") is renamed away in the archive we link. This file itself must not be instrumented.
//
// The counters are reset by libFuzzer before every input; `seen` keeps the union over the run,
// printed at exit as a block-coverage figure (libFuzzer's "cov:" needs clang's PC tables).

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

namespace {
constexpr std::size_t counter_bits = 17;  // 128 Ki buckets: few collisions for the ~10^4 blocks we instrument
constexpr std::size_t counter_count = std::size_t{1} << counter_bits;
std::uint8_t seen[counter_count];

void print_seen() {
  std::size_t n = 0;
  for (auto s : seen) n += s;
  std::fprintf(stderr, "cvqkd-fuzz: basic-block buckets covered over the run: %zu (of %zu buckets)\n", n, counter_count);
}
[[maybe_unused]] const int registered = std::atexit(print_seen);
}  // namespace

extern "C" {

__attribute__((section("__libfuzzer_extra_counters"), used)) std::uint8_t cvqkd_fuzz_counters[counter_count];

__attribute__((no_sanitize("address", "undefined"))) void __sanitizer_cov_trace_pc() {
  const auto pc = reinterpret_cast<std::uintptr_t>(__builtin_return_address(0));
  // Fibonacci hashing of the call site (Knuth, TAOCP vol. 3, 6.4).
  const std::size_t i = static_cast<std::size_t>((pc * 0x9E3779B97F4A7C15ull) >> (64 - counter_bits));
  cvqkd_fuzz_counters[i] = static_cast<std::uint8_t>(cvqkd_fuzz_counters[i] + 1);
  seen[i] = 1;
}

// g++ also traces floating-point comparisons (nlohmann's number parsing); libFuzzer has no use for them.
void __sanitizer_cov_trace_cmpf(float, float) {}
void __sanitizer_cov_trace_cmpd(double, double) {}

}  // extern "C"
