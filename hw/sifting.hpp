#pragma once
// Sifting: pairs Alice's modulation with Bob's measurements into real (x, y) samples, the common
// input of parameter estimation and reconciliation.

#include <cstdint>
#include <vector>

#include "hw/driver.hpp"

namespace cvqkd::hw {

/// Correlated real samples in SNU. Homodyne: one pair per kept symbol, x = Alice's value in the
/// quadrature Bob announced. Heterodyne: two pairs per kept symbol, q then p. symbol[i] is the
/// symbol index of pair i (repeated for the q and p pairs of a heterodyne symbol). Symbols the
/// digitizer lost are dropped.
struct sifted_frame {
  detection det = detection::heterodyne;
  std::vector<double> x;
  std::vector<double> y;
  std::vector<std::uint64_t> symbol;
  std::size_t size() const noexcept { return x.size(); }
};

/// Sifts one frame. Errors: invalid_argument when the frames do not describe the same symbols
/// (first_symbol or size differ) or Bob's frame is internally inconsistent.
expected<sifted_frame> sift(const alice_frame& alice, const bob_frame& bob);

}  // namespace cvqkd::hw
