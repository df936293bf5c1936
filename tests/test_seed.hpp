#pragma once
// Randomised tests draw their seeds from CVQKD_TEST_SEED (default fixed, so CI is reproducible)
// and put the seed in every failure message through SCOPED_TRACE.
#include <cstdint>
#include <cstdlib>
#include <string>

namespace cvqkd::test_support {

inline std::uint64_t base_seed() {
  if (const char* s = std::getenv("CVQKD_TEST_SEED"); s != nullptr && *s != '\0') return std::strtoull(s, nullptr, 10);
  return 20261129;
}

inline std::string seed_note(std::uint64_t seed) {
  return "seed " + std::to_string(seed) + " (rerun with CVQKD_TEST_SEED to vary the base seed)";
}

}  // namespace cvqkd::test_support
