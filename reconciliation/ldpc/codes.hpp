#pragma once
// The shipped rate-adaptive code families and rate selection. Each family is a raptor-like protograph
// (qc_code.hpp) for one SNR region, designed for this project by a local search over protograph entries
// scored by GA density evolution on the MDR (d = 8) virtual channel (density_evolution.hpp). Against the
// error floor of small QC codes, the designed ("base") protograph is first expanded by copy-and-permute
// (expand_protograph) and then lifted with circulants (see codes.cpp). The matrices are built
// deterministically from (base protograph, expansion, Z, seed), so nothing larger than the base protograph is
// stored. Thresholds are listed with each family in codes.cpp and in `cvqkd codes list`.

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.hpp"
#include "reconciliation/ldpc/qc_code.hpp"

namespace cvqkd::reconciliation::ldpc {

/// One point of a family's GA-DE threshold curve: with `extension_rows` base extension rows (rate
/// base.rate(1, extension_rows)) density evolution converges above `snr` (16-point fading quadrature).
struct ga_point {
  std::uint32_t extension_rows;
  double snr;
};

struct code_family {
  std::string_view name;
  raptor_protograph base;       // the designed protograph; GA thresholds refer to it
  std::uint32_t expansion;      // copy-and-permute factor: proto = expand_protograph(base, expansion, seed)
  raptor_protograph proto;      // the protograph that is lifted (same rates and thresholds as base)
  std::uint32_t lifting_long;   // the benchmark member (about 1e6 bits at the design rate)
  std::uint32_t lifting_short;  // the CI member (a few 1e4 bits)
  std::uint64_t seed;           // expansion and lifting seed
  double ga_threshold_snr;      // GA-DE threshold with all extension rows, MDR d = 8 fading included
  std::uint32_t design_extension_rows;  // base extension rows at the design rate (the search's target)
  double design_threshold_snr;          // GA-DE threshold there (16-point fading quadrature)
  std::vector<ga_point> ga_curve;       // GA thresholds at several rates, fewest extension rows first
  /// Rate at the design point (base protograph with design_extension_rows extension rows).
  double design_rate() const noexcept { return base.rate(1, design_extension_rows); }
  /// Rate with all extension rows (the lowest rate) and with the first one only (the highest).
  double min_rate() const noexcept { return proto.rate(1, proto.extension_rows.size()); }
  double max_rate() const noexcept { return proto.rate(1, 1); }
  /// The efficiency beta = R / capacity(threshold) that GA-DE predicts at `rate`: linear interpolation of
  /// ga_curve in the rate; above its highest rate the first segment's decline continues, below its lowest
  /// the end value is held. Used to rank the families that all offer `rate`.
  double ga_beta(double rate) const noexcept;
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
  /// Frame length n in bits: core columns x Z plus one degree-one variable per extension check.
  std::uint64_t frame_bits() const noexcept {
    return std::uint64_t{family->proto.core_cols} * lifting + extension_checks;
  }
};

/// Chooses the family and the number of extension checks giving the lowest rate R >= target_beta *
/// capacity(snr), so that beta = R / C meets the target (to within one check in n). Among the families
/// that reach R, the one with the highest GA-predicted efficiency there (code_family::ga_beta) is taken,
/// i.e. the one whose threshold lies furthest below snr. `short_block` picks the CI member. Errors:
/// invalid_argument when snr <= 0, target_beta is outside (0, 1), or no family reaches R.
expected<rate_choice> select_rate(double snr, double target_beta, bool short_block = false);

/// The code of `family` at a given rate: the most extension checks whose rate is still >= `rate`, rounded
/// down so that the frame length is a multiple of 8 (whole MDR blocks for d = 1, 2, 4, 8).
expected<rate_choice> choose_for_rate(const code_family& family, double rate, double snr, bool short_block = false);

/// Lifts the chosen code. Errors as lift().
expected<qc_matrix> build(const rate_choice& choice);

}  // namespace cvqkd::reconciliation::ldpc
