#pragma once
// The shipped rate-adaptive code families and rate selection. Each family is a raptor-like protograph
// (qc_code.hpp) designed for this project by a local search over protograph entries scored by GA density
// evolution on the MDR (d = 8) virtual channel (density_evolution.hpp); the matrices are lifted
// deterministically from (protograph, Z, seed), so nothing larger than the protograph is stored.
// Thresholds are listed with each family in codes.cpp and in `cvqkd codes list`.

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "core/error.hpp"
#include "reconciliation/ldpc/qc_code.hpp"

namespace cvqkd::reconciliation::ldpc {

struct code_family {
  std::string_view name;
  raptor_protograph proto;
  std::uint32_t lifting_long;   // the benchmark member (about 1e6 bits at the design rate)
  std::uint32_t lifting_short;  // the CI member (a few 1e4 bits)
  std::uint64_t seed;           // lifting seed
  double ga_threshold_snr;      // GA-DE threshold with all extension rows, MDR d = 8 fading included
  /// Rate with all extension rows (the lowest rate) and with the first one only (the highest).
  double min_rate() const noexcept { return proto.rate(1, proto.extension_rows.size()); }
  double max_rate() const noexcept { return proto.rate(1, 1); }
};

/// All shipped families, lowest rate first.
std::span<const code_family> code_families();
/// Errors: invalid_argument listing the known names.
expected<const code_family*> find_family(std::string_view name);

/// Capacity per real dimension of the Gaussian channel, 0.5 log2(1 + snr) (cvqkd-theory.md).
double capacity(double snr) noexcept;

struct rate_choice {
  const code_family* family = nullptr;
  std::uint32_t lifting = 0;
  std::uint64_t extension_checks = 0;
  double rate = 0;  // information bits per code bit
  double beta = 0;  // rate / capacity(snr)
};

/// Chooses the family and the number of extension checks giving the lowest rate R >= target_beta *
/// capacity(snr), so that beta = R / C meets the target (to within one check in n). Among the families
/// that reach R, the one truncated least (nearest its design rate) is taken. `short_block` picks the CI
/// member. Errors: invalid_argument when snr <= 0, target_beta is outside (0, 1), or no family reaches R.
expected<rate_choice> select_rate(double snr, double target_beta, bool short_block = false);

/// The code of `family` at a given rate: the most extension checks whose rate is still >= `rate`, rounded
/// down so that the frame length is a multiple of 8 (whole MDR blocks for d = 1, 2, 4, 8).
expected<rate_choice> choose_for_rate(const code_family& family, double rate, double snr, bool short_block = false);

/// Lifts the chosen code. Errors as lift().
expected<qc_matrix> build(const rate_choice& choice);

}  // namespace cvqkd::reconciliation::ldpc
