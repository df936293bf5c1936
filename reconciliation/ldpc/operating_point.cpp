#include "reconciliation/ldpc/operating_point.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <vector>

namespace cvqkd::reconciliation::ldpc {
namespace {

// Measured on the 2-core development machine (2026-11-29) with
//   cvqkd bench reconcile --snr SNR --beta BETA --rate auto --frames 20 --threads 2 --seed 11
//                         --max-iterations 200 --json
// for BETA rising from 0.88 until FER >= 0.9 (the SNR 0.6 row at 0.88, 0.90, 0.92 only; SNR 1.0 also
// at 0.80 and 0.84). 20 frames: one failed frame is 0.05; the binomial standard error at FER 0.25 is 0.10. Families as select_rate picks
// them: pbrl-r0.02 at SNR 0.029 and 0.08, pbrl-r0.10 at 0.161, pbrl-r0.19 at 0.32, pbrl-r0.27 above.
// What the table shows: the codes stop decoding within 0.01-0.02 of beta once past their threshold, and
// the punctured (high-rate) end of pbrl-r0.27 is weak: at SNR 0.6 (rate 0.31 at beta 0.92) no frame decodes.
constexpr fer_measurement table[] = {
  // SNR, beta, FER
  {0.029, 0.88, 0.00}, {0.029, 0.90, 0.00}, {0.029, 0.92, 0.20}, {0.029, 0.93, 0.25}, {0.029, 0.94, 0.55},
  {0.029, 0.95, 0.60}, {0.029, 0.96, 0.95},
  {0.08, 0.88, 0.00}, {0.08, 0.90, 0.30}, {0.08, 0.92, 0.75}, {0.08, 0.93, 1.00},
  {0.161, 0.88, 0.00}, {0.161, 0.90, 0.00}, {0.161, 0.92, 0.00}, {0.161, 0.93, 0.00}, {0.161, 0.94, 0.25},
  {0.161, 0.95, 0.85}, {0.161, 0.96, 1.00},
  {0.32, 0.88, 0.00}, {0.32, 0.90, 0.05}, {0.32, 0.92, 0.05}, {0.32, 0.93, 0.00}, {0.32, 0.94, 0.35},
  {0.32, 0.95, 1.00},  // pbrl-r0.19 rows re-measured after its new base (session 5); before: 0.10 .. 0.20 up to 0.93
  {0.5, 0.88, 0.00}, {0.5, 0.90, 0.00}, {0.5, 0.92, 0.00}, {0.5, 0.93, 0.55}, {0.5, 0.94, 1.00},
  {0.6, 0.88, 0.00}, {0.6, 0.90, 0.00}, {0.6, 0.92, 1.00},
  {1.0, 0.80, 0.00}, {1.0, 0.84, 0.00}, {1.0, 0.88, 1.00},
};

constexpr double beta_floor = 0.80;
constexpr double beta_step = 0.005;

// FER of one SNR row (points [first, last)) at beta.
double row_fer(const fer_measurement* first, const fer_measurement* last, double beta) noexcept {
  if (beta <= first->beta) return first->fer;
  for (const auto* q = first + 1; q != last; ++q)
    if (beta <= q->beta) {
      const double w = (beta - q[-1].beta) / (q->beta - q[-1].beta);
      return (1 - w) * q[-1].fer + w * q->fer;
    }
  return 1.0;
}

}  // namespace

std::span<const fer_measurement> long_code_fer_table() noexcept { return table; }

double expected_fer(double snr, double beta) noexcept {
  // Rows: runs of equal SNR, found once (the table is constant; a plan calls this thousands of times).
  struct row {
    const fer_measurement *first, *last;
  };
  static const std::vector<row> rows = [] {
    std::vector<row> r;
    for (const auto* q = std::begin(table); q != std::end(table);) {
      const auto* e = q;
      while (e != std::end(table) && e->snr == q->snr) ++e;
      r.push_back({q, e});
      q = e;
    }
    return r;
  }();
  const auto fer_of = [&](const row& r) { return row_fer(r.first, r.last, beta); };
  if (!(snr > rows.front().first->snr)) return fer_of(rows.front());
  for (std::size_t i = 1; i < rows.size(); ++i)
    if (snr <= rows[i].first->snr) {
      const double lo = std::log(rows[i - 1].first->snr), hi = std::log(rows[i].first->snr);
      const double w = (std::log(snr) - lo) / (hi - lo);
      return std::clamp((1 - w) * fer_of(rows[i - 1]) + w * fer_of(rows[i]), 0.0, 1.0);
    }
  return fer_of(rows.back());
}

expected<operating_point> choose_operating_point(double snr, double target, const security::channel_parameters& p,
                                                 const security::pe_statistics& s, std::uint64_t n_total,
                                                 std::uint64_t n_pe, std::uint64_t pe_samples,
                                                 const security::epsilons& e) {
  if (!(snr > 0.0) || !std::isfinite(snr))
    return fail(errc::invalid_argument, fmt::format("SNR {} must be positive and finite", snr));
  if (!(target > 0.0 && target < 1.0))
    return fail(errc::invalid_argument, fmt::format("target beta {} must lie in (0, 1)", target));
  security::pe_statistics whole = s;
  whole.samples = pe_samples;
  std::vector<double> candidates{target};
  for (int i = 0;; ++i) {  // 0.800, 0.805, ... computed from i so that the values are the decimal ones
    const double b = std::round((beta_floor + i * beta_step) * 1000.0) / 1000.0;
    if (b >= target - 1e-9) break;
    candidates.push_back(b);
  }
  operating_point best{target, expected_fer(snr, target), 0.0};
  for (const double beta : candidates) {
    const double fer = expected_fer(snr, beta);
    if (fer >= 1.0) continue;
    auto k = security::key_rate_finite(security::finite_size_model::lgg2010, p, whole, n_total, n_pe, beta, fer, e);
    if (!k) {
      if (k.error().code == errc::no_secret_key || k.error().code == errc::insufficient_data) continue;
      return std::unexpected(k.error());
    }
    if (k->key_rate > best.expected_key_rate) best = {beta, fer, k->key_rate};
  }
  return best;
}

}  // namespace cvqkd::reconciliation::ldpc
