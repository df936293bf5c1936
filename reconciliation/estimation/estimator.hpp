#pragma once
// Parameter estimation of GG02 from a randomly disclosed subset of symbols (Leverrier,
// Grosshans, Grangier, PRA 81, 062343 (2010), sec. III). Streams: samples arrive frame by frame
// and only sufficient statistics are kept, so memory does not grow with the block size N.

#include <cstdint>
#include <span>
#include <vector>

#include "core/drbg.hpp"
#include "reconciliation/security/key_rate.hpp"

namespace cvqkd::estimation {

/// Chooses exactly n_pe of n_total symbols uniformly at random, in one sequential pass (selection
/// sampling, Knuth TAOCP vol. 2, Algorithm 3.4.2S). Alice and Bob run it from the same public
/// seed and so agree on the disclosed subset without sending it.
class pe_selector {
public:
  /// Requires n_pe <= n_total (otherwise every symbol is selected and n_pe is clamped).
  pe_selector(std::uint64_t n_total, std::uint64_t n_pe, std::uint64_t public_seed);
  /// Whether the next symbol is disclosed; false for every call past n_total.
  bool next();
  /// Decisions for the next `n` symbols (1 = disclosed).
  std::vector<std::uint8_t> next(std::size_t n);
  std::uint64_t selected() const noexcept { return selected_; }
  std::uint64_t seen() const noexcept { return seen_; }

private:
  std::uint64_t n_total_, n_pe_;
  std::uint64_t seen_ = 0, selected_ = 0;
  seeded_drbg rng_;
};

/// Running sums over disclosed (x, y) pairs: x = Alice's value, y = Bob's (SNU).
class pe_accumulator {
public:
  void add(double x, double y) noexcept {
    sxx_ += static_cast<long double>(x) * x;
    sxy_ += static_cast<long double>(x) * y;
    syy_ += static_cast<long double>(y) * y;
    ++count_;
  }
  /// Adds pairs x[i], y[i]; requires x.size() == y.size().
  void add(std::span<const double> x, std::span<const double> y) noexcept;
  /// Merges another accumulator (e.g. from a worker thread).
  void merge(const pe_accumulator& other) noexcept;

  std::uint64_t count() const noexcept { return count_; }
  /// t_hat = <xy>/<x^2>, sigma2_hat = <(y - t_hat x)^2> (cvqkd-theory.md, "Finite size"); `v_a` is
  /// the modulation variance the interval on t is computed with. Zero statistics when empty.
  security::pe_statistics statistics(double v_a) const noexcept;
  /// <x^2>: Alice's empirical modulation variance (SNU), a health check on the transmitter.
  double x_variance() const noexcept;
  /// <y^2>: Bob's empirical variance (SNU).
  double y_variance() const noexcept;

private:
  long double sxx_ = 0, sxy_ = 0, syy_ = 0;
  std::uint64_t count_ = 0;
};

}  // namespace cvqkd::estimation
