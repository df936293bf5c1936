#include "reconciliation/estimation/estimator.hpp"

#include <algorithm>

namespace cvqkd::estimation {

pe_selector::pe_selector(std::uint64_t n_total, std::uint64_t n_pe, std::uint64_t public_seed)
  : n_total_(n_total), n_pe_(std::min(n_pe, n_total)), rng_(public_seed, "pe-selection") {}

bool pe_selector::next() {
  if (seen_ >= n_total_) return false;
  // Select with probability (still needed) / (still available): exactly n_pe in the end.
  const std::uint64_t needed = n_pe_ - selected_;
  const std::uint64_t available = n_total_ - seen_;
  ++seen_;
  if (needed == 0) return false;
  const bool take = needed == available || static_cast<double>(available) * rng_.next_unit() < static_cast<double>(needed);
  if (take) ++selected_;
  return take;
}

std::vector<std::uint8_t> pe_selector::next(std::size_t n) {
  std::vector<std::uint8_t> out(n);
  for (auto& b : out) b = next() ? 1 : 0;
  return out;
}

void pe_accumulator::add(std::span<const double> x, std::span<const double> y) noexcept {
  const std::size_t n = std::min(x.size(), y.size());
  for (std::size_t i = 0; i < n; ++i) add(x[i], y[i]);
}

void pe_accumulator::merge(const pe_accumulator& o) noexcept {
  sxx_ += o.sxx_;
  sxy_ += o.sxy_;
  syy_ += o.syy_;
  count_ += o.count_;
}

security::pe_statistics pe_accumulator::statistics(double v_a) const noexcept {
  security::pe_statistics s;
  s.v_a = v_a;
  s.samples = count_;
  if (count_ == 0 || sxx_ <= 0) return s;
  const long double m = static_cast<long double>(count_);
  const long double t = sxy_ / sxx_;
  s.t_hat = static_cast<double>(t);
  s.sigma2_hat = static_cast<double>((syy_ - 2 * t * sxy_ + t * t * sxx_) / m);
  return s;
}

double pe_accumulator::x_variance() const noexcept {
  return count_ == 0 ? 0.0 : static_cast<double>(sxx_ / static_cast<long double>(count_));
}

double pe_accumulator::y_variance() const noexcept {
  return count_ == 0 ? 0.0 : static_cast<double>(syy_ / static_cast<long double>(count_));
}

}  // namespace cvqkd::estimation
