#include "reconciliation/ldpc/codes.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

namespace cvqkd::reconciliation::ldpc {
namespace {

// Rows as "c,c,c;c,c;..." (core column indices, rows separated by ';').
std::vector<std::vector<std::uint32_t>> parse_rows(std::string_view s) {
  std::vector<std::vector<std::uint32_t>> rows(1);
  std::uint32_t v = 0;
  bool have = false;
  for (char ch : s) {
    if (ch >= '0' && ch <= '9') {
      v = v * 10 + static_cast<std::uint32_t>(ch - '0');
      have = true;
    } else if (ch == ',' || ch == ';') {
      if (have) rows.back().push_back(v);
      v = 0;
      have = false;
      if (ch == ';') rows.emplace_back();
    }
  }
  if (have) rows.back().push_back(v);
  if (rows.back().empty()) rows.pop_back();
  return rows;
}

raptor_protograph make(std::uint32_t core, std::string_view precode, std::string_view extension) {
  raptor_protograph p;
  p.core_cols = core;
  p.precode_rows = parse_rows(precode);
  p.extension_rows = parse_rows(extension);
  return p;
}

code_family family(std::string_view name, raptor_protograph base, std::uint32_t expansion, std::uint32_t lifting_long,
                   std::uint32_t lifting_short, std::uint64_t seed, double ga_threshold_snr,
                   std::uint32_t design_extension_rows, double design_threshold_snr, std::vector<ga_point> ga_curve) {
  auto proto = expand_protograph(base, expansion, seed);  // the tables below are valid protographs
  return {name,          std::move(base), expansion,        std::move(*proto),     lifting_long,
          lifting_short, seed,            ga_threshold_snr, design_extension_rows, design_threshold_snr,
          std::move(ga_curve)};
}

// Design notes (how the protographs below were found; the hill climb is `cvqkd codes search`,
// reconciliation/ldpc/protograph_search.hpp, shipped since session 5 — the older families came from an
// earlier, unshipped version of it).
// - Structure: protograph-based raptor-like codes (Chen, Vakilinia, Divsalar, Wesel, IEEE Trans. Commun. 63,
//   1522 (2015)) in the low-rate multi-edge-type shape used for CV-QKD (Richardson & Urbanke's MET ensembles;
//   Jouguet, Kunz-Jacques, Leverrier, PRA 84, 062317 (2011)): a precode over a few core variables of high
//   extension degree, many degree-one variables, extension checks of low degree (mostly 2-3 core edges).
// - Search: hill climbing over single base-protograph entries (toggle or move an extension entry, toggle a
//   precode entry), a move kept when the GA-DE threshold at the design rate (4-point chi^2_8 fading
//   quadrature) does not get worse, so that the search drifts along plateaus; degree-2 precode columns are
//   kept a forest (no accumulator-type cycle of degree-2 columns) and at most 3 core columns share a precode
//   support. Thresholds below use the 16-point quadrature (the default de_options); `cvqkd codes list`
//   prints them.
// - Rates below the design rate: the extension rows continue cyclically (row E + i repeats row i).
// - Error floor. Lifted directly with circulants, these small protographs decode into wrong codewords at 1e6
//   bits (the first rate-0.1 family did so in ~5 % of frames at beta 0.93: weight ~140 words whose core part
//   is a low-weight precode word on a J x (J+1) sub-protograph, as the permanent bound on the minimum
//   distance of QC codes predicts: Smarandache & Vontobel, IEEE Trans. Inf. Theory 58, 585 (2012)). A word of
//   weight d wins with probability about Q(sqrt(d SNR)) (BI-AWGN pairwise error), so with ~1e4-1e5 such words
//   per frame d SNR must exceed ~36. The base protograph is therefore expanded by copy-and-permute
//   (expand_protograph, factor `expansion`) before the circulant lifting: same degrees and thresholds, but
//   non-commuting permutations, which removes those short structures (no wrong codeword in the 1e6-bit runs
//   quoted below).

std::vector<code_family> make_families() {
  std::vector<code_family> f;
  // CODE-FAMILIES-BEGIN
  // pbrl-r0.02 (SNR ~0.015-0.05): 8 core columns, 4 precode rows, 192 extension rows at the design rate 4/200 = 0.02,
  // continued to 392 rows (rate 0.01). GA thresholds, rate / SNR / beta: 0.0100 / 0.01475 / 0.9470 (392 rows);
  // 0.0200 / 0.02964 / 0.9491 (192); 0.0248 / 0.03728 / 0.9409 (153); 0.0354 / 0.05463 / 0.9226 (105);
  // 0.0533 / 0.08498 / 0.9065 (67). Expansion 8; long Z = 625 (1e6 bits at rate 0.02), short Z = 20.
  // Measured (cvqkd bench reconcile, 20 frames of ~1.03e6 bits, --max-iterations 1000) at SNR 0.029: beta 0.93:
  // FER 0.10 (mean 159 iterations); beta 0.94: FER 0.45; beta 0.95: FER 0.60.
  f.push_back(family("pbrl-r0.02",
                     make(8,
                          "0,3,5,6,7;0,1,3,4,6;1,2,3,4,5,7;2,4,5,6,7",
                          "1,7;3,4,6;5,6;0,5;3,6,5;4,5,7,6;7,2;1,7;3,4;6,7,5;7,4;3,4,6;5,6;7,0,5;7,4;4,5,6;6,7;1;"
                          "3,4;5,7,3;7,1;2,6;4,6;7,0;1,6,5;4,5,6;6,7;5,7;6,3,7;5,6,7;4,1;2,3,5;5,6;7,0,6;5,4;5,7,6;"
                          "6,7;6,1;5,7,4;5,6,3;7,0,6;2,5;4,5,7;6,0;1,3;3,4;5,6,7;0,6,5;2,6;5,6,4;7,0;1,5;4,5,7;"
                          "6,7,4;4,3;3,7,5;5,6,7;5,2,7;4,5;4,5,6;7,5;2,6;3,6,5;6,3,7;5,2;3,6,7;5,6,4;7,0;2,3,6,5;"
                          "4,5;6,0;1,5;4,7;6,7;7,6,4;3,4;5,6,3;7,6;7,3,5;4,7;6,7,5;2,4;7,4,5;3,7;0,5;6,3;5,6,4;"
                          "7,5,4;0,2;5,7;6,7,5;0,2;3,4;5,6;5,2;2,7;4,5,6;5,0,7;2,4;3,5;6,7;7,3;2,3;5,6,7;7,0,6;"
                          "5,3,6;5,6,7;6,0;1,4;6,5,3;5,7;7,1;2,4;5,6,7;7,0,5;1,5;4,7,6;6,7,5;4,7;5,7;5,4,7;3,5;"
                          "5,4,7;4,5;7,0;3,2;4,5;6,5,7;4,6;6,4,5;5,6,7;7,1,5;4,3;3,5,7;6,5;1,5;4,6;6,7;0,5;3,4,6;"
                          "5,4,7;7,5;2,5,3,7;4,7,6;6,7,0;6,5;4,7;5,6,7;3,6;5,3,6;5,6;7,0;5,3;6,5,7;6,7;1,7,5;2,4;"
                          "1,6;6,7;6,5,3;5,6,7;5,6,7;4,6;3,6,7;6,7;0,5;3,6,5,7;5,6;7,1;2,6;5,6,7;6,7;7,2;3,7;5,6,7;"
                          "3,7;6,5;5,6,4,7;7,5;3,5;4,5,7;6,7,5;3,5,4;3,5;6,3,7;4,2;2,3;4,5,6;7,2,6;4,7;3,4,5;6,7,5;"
                          "1,7;3,4,6;5,6;0,5;3,6,5;4,5,7,6;7,2;1,7;3,4;6,7,5;7,4;3,4,6;5,6;7,0,5;7,4;4,5,6;6,7;1;"
                          "3,4;5,7,3;7,1;2,6;4,6;7,0;1,6,5;4,5,6;6,7;5,7;6,3,7;5,6,7;4,1;2,3,5;5,6;7,0,6;5,4;5,7,6;"
                          "6,7;6,1;5,7,4;5,6,3;7,0,6;2,5;4,5,7;6,0;1,3;3,4;5,6,7;0,6,5;2,6;5,6,4;7,0;1,5;4,5,7;"
                          "6,7,4;4,3;3,7,5;5,6,7;5,2,7;4,5;4,5,6;7,5;2,6;3,6,5;6,3,7;5,2;3,6,7;5,6,4;7,0;2,3,6,5;"
                          "4,5;6,0;1,5;4,7;6,7;7,6,4;3,4;5,6,3;7,6;7,3,5;4,7;6,7,5;2,4;7,4,5;3,7;0,5;6,3;5,6,4;"
                          "7,5,4;0,2;5,7;6,7,5;0,2;3,4;5,6;5,2;2,7;4,5,6;5,0,7;2,4;3,5;6,7;7,3;2,3;5,6,7;7,0,6;"
                          "5,3,6;5,6,7;6,0;1,4;6,5,3;5,7;7,1;2,4;5,6,7;7,0,5;1,5;4,7,6;6,7,5;4,7;5,7;5,4,7;3,5;"
                          "5,4,7;4,5;7,0;3,2;4,5;6,5,7;4,6;6,4,5;5,6,7;7,1,5;4,3;3,5,7;6,5;1,5;4,6;6,7;0,5;3,4,6;"
                          "5,4,7;7,5;2,5,3,7;4,7,6;6,7,0;6,5;4,7;5,6,7;3,6;5,3,6;5,6;7,0;5,3;6,5,7;6,7;1,7,5;2,4;"
                          "1,6;6,7;6,5,3;5,6,7;5,6,7;4,6;3,6,7;6,7;0,5;3,6,5,7;5,6;7,1;2,6;5,6,7;6,7;7,2;3,7;5,6,7;"
                          "3,7;6,5;5,6,4,7;7,5;3,5;4,5,7;6,7,5;3,5,4;3,5;6,3,7;4,2;2,3;4,5,6;7,2,6;4,7;3,4,5;6,7,5;"
                          "1,7;3,4,6;5,6;0,5;3,6,5;4,5,7,6;7,2;1,7"),
                     8, 625, 20, 1, 0.01475, 192, 0.02964,
                     {{67, 0.08498}, {105, 0.05463}, {153, 0.03728}, {192, 0.02964}, {392, 0.01475}}));
  // pbrl-r0.10 (SNR ~0.13-0.4): 16 core columns, 6 precode rows, 84 extension rows at the design rate 10/100 = 0.1,
  // continued to 109 rows (rate 0.08). GA thresholds, rate / SNR / beta: 0.0800 / 0.12998 / 0.9075 (109 rows);
  // 0.1000 / 0.15941 / 0.9372 (84); 0.1205 / 0.19865 / 0.9218 (67); 0.1613 / 0.28547 / 0.8904 (46);
  // 0.2222 / 0.43044 / 0.8606 (29). Expansion 4; long Z = 2520 (1.007e6 bits at rate 0.1), short Z = 75 (30000 bits).
  // Measured (cvqkd bench reconcile --snr 0.161 --rate auto, 1.007e6-bit frames): beta 0.930: FER 0 of 100
  // (mean 63.7 iterations, 2.29 Mbit/s on 2 threads); beta 0.94: FER 0.30; beta 0.95: FER 0.70 (20 frames).
  f.push_back(family("pbrl-r0.10",
                     make(16,
                          "0,3,5,8,11,12,14;0,4,7,9,11,13,14;1,2,5,7,9,10,12,15;1,3,4,7,8,10,12,14;4,6,9,13,15;"
                          "1,2,5,6,8,11,13,15",
                          "0,1,6;15,4,5;6,7,8;9,10,6,4;11,13;15,0,1;2,3,4;5,6,7;8,9,15;11,12,13;14,15,1;1,2,4;"
                          "4,5,6;7,8,9;10,11,6;13,14,15;0,1;2,3,13;4,5,15;6,7;8,9,15;10,11,4;12,13,15;14,15,4;"
                          "0,1,5;5,2,9;4,5,15;6,7;8,9,13;13,11,4;12,13,4;14,15,9;0,1,15;2,3,4;4,5,7;6,14,4;8,14;"
                          "4,11,13;12,13,15;14,15,4;0,1,13;2,3,15;4,5,11;6,7,15;8,9,13;5,11,13;12,13,4;14,15;0,1,4;"
                          "2,0,5;4,5,13;5,7,4;8,9;13,11,4;12,13,4;14,15,13;0,1,13;7,3,5;4,6,15;6,7,4;7,9,15,14;"
                          "6,11;5,13;14,15,13;0,1,14;2,3,5;4,5,15;6,7;8,9;9,11;12,13,4;14,15,4;7,1;2,1,4;4,5,15;"
                          "6,14,13;0,9;10,6,15;12,13,4;6,15,13;0,1,4;2,3;4,5,15;6,7,4;0,1,6;15,4,5;6,7,8;9,10,6,4;"
                          "11,13;15,0,1;2,3,4;5,6,7;8,9,15;11,12,13;14,15,1;1,2,4;4,5,6;7,8,9;10,11,6;13,14,15;0,1;"
                          "2,3,13;4,5,15;6,7;8,9,15;10,11,4;12,13,15;14,15,4;0,1,5"),
                     4, 2520, 75, 1, 0.12998, 84, 0.15941,
                     {{29, 0.43044}, {46, 0.28547}, {67, 0.19865}, {84, 0.15941}, {109, 0.12998}}));
  // pbrl-r0.19 (SNR ~0.2-0.4, the 7 dB metro links): 16 core columns, 6 precode rows, 38 extension rows at the
  // design rate 10/54 = 0.185, continued to 56 rows (rate 0.139). Session 5's base: the session-2 base (column 4 a
  // hub in most extension rows, as in MET-LDPC ensembles) had two pairs of degree-2 precode columns on the same
  // two rows and a cycle of four more (precode words of weight 2 and 4): an error floor of wrong codewords (FER
  // 0.10-0.20 at SNR 0.32 for beta 0.88-0.93, 200 iterations). Three of those columns were given a third precode
  // row (GA beta 0.931 -> 0.894 at 38 rows), then the hill climb above (forest constraint kept, 4-point
  // quadrature, 2,297 candidates, 15 min; an early version of `cvqkd codes search`) brought the threshold back. GA thresholds, rate / SNR / beta:
  // 0.1389 / 0.23614 / 0.9082 (56 rows); 0.1471 / 0.24818 / 0.9196 (52); 0.1639 / 0.27834 / 0.9255 (45);
  // 0.1852 / 0.31747 / 0.9311 (38); 0.2041 / 0.36241 / 0.9148 (33); 0.2273 / 0.41933 / 0.8997 (28);
  // 0.2703 / 0.53415 / 0.8755 (21). Expansion 8; long Z = 2340 (1.005e6 bits at rate 0.186), short Z = 70.
  // Measured (cvqkd bench reconcile --snr 0.32 --code pbrl-r0.19 --beta B --frames 20 --threads 2 --seed 11
  // --max-iterations 200), FER (wrong codewords, caught by verification): beta 0.88: 0 (0); 0.90: 0.05 (1);
  // 0.92: 0.05 (1); 0.93: 0 (0); 0.94: 0.35 (1); the old base under the same command: beta 0.93: 0.20 (1).
  // Wrong codewords are rarer (3 in 100 frames) but not gone: low-weight words remain beyond the degree-2 ones.
  f.push_back(family("pbrl-r0.19",
                     make(16,
                          "3,5,8,11,14,13;0,4,7,9,14,11,15;1,2,5,7,9,10,12;1,3,7,8,10,12,14,15,4;6,9,13,15,12;"
                          "1,2,5,6,8,11,13,15,4",
                          "8,0,4,15;15,4,5;14,7,8,4;5,2,8,4;1,15,4;4,2,1;2,3,4;5,9,6;8,15,4;11,9,13,4,15;4,15,1;1,13,4,15;"
                          "7,11,5,4;7,8,13;10,13,4;13,14,15,4;14,1,15,4;11,3,6;4,6,15;13,10,15,4;5,9,15,4;10,13,4,1;12,13,4;"
                          "14,15,4;12,4,15;12,9,4;4,6,15;4,11,14,15;14,5,11;14,5,4;12,15,4;13,15,6,4;3,8,15,13;8,2,4,15;4,8,14;"
                          "11,13,4;8,14,13;4,5,13,15;8,0,4,15;15,4,5;14,7,8,4;5,2,8,4;1,15,4;4,2,1;2,3,4;5,9,6;8,15,4;"
                          "11,9,13,4,15;4,15,1;1,13,4,15;7,11,5,4;7,8,13;10,13,4;13,14,15,4;14,1,15,4;11,3,6"),
                     8, 2340, 70, 1, 0.23614, 38, 0.31747,
                     {{21, 0.53415}, {28, 0.41933}, {33, 0.36241}, {38, 0.31747}, {45, 0.27834}, {52, 0.24818},
                      {56, 0.23614}}));
  // pbrl-r0.27 (SNR ~0.4-1.5): 24 core columns, 8 precode rows, 35 extension rows at the design rate 16/59 = 0.271,
  // continued to 47 rows (rate 0.225). GA thresholds, rate / SNR / beta: 0.2254 / 0.42253 / 0.8864 (47 rows);
  // 0.2712 / 0.50651 / 0.9174 (35); 0.3077 / 0.60822 / 0.8978 (28); 0.3721 / 0.79728 / 0.8798 (19);
  // 0.4444 / 1.05931 / 0.8529 (12). Expansion 4; long Z = 4300 (1.01e6 bits at rate 0.27), short Z = 130.
  // Measured (20 frames of ~1.02e6 bits) at SNR 0.5: beta 0.92: FER 0; beta 0.925: FER 0.20; beta 0.93: FER 0.25.
  f.push_back(family("pbrl-r0.27",
                     make(24,
                          "0,4,5,8,10,13,19,23,9,15,17,2;0,7,12,14,16,19,23,21,15,3;2,6,9,11,17,20;"
                          "2,5,11,13,16,22,3;1,4,7,8,18,20,22,9,21,17,3;2,6,9,12,15,17,21;"
                          "5,7,10,11,14,18,23,9,3,15,6;1,4,8,12,14,16,19,22,15,9,17,2,3,6,21",
                          "4,1,17,3;3,4,19,21,15;6,7,3,9;21,0,2,3,15;16,8,9,17,15,3;15,23,17,3;19,14,9,17,3;"
                          "17,22,3,2;0,16,9,3,15;22,14,2,15,3;6,7,9,2,3;14,6,3,15;22,15,21,9,3;15,17,3;"
                          "17,19,7,21,3;22,23,21,3;1,4,21,3;8,5,21,15,3;7,8,17,3,15;2,18,22,3,15;16,18,9,2,3;"
                          "15,5,17,3;16,19,11,6,15,3;21,2,23,3;4,1,2,6,3;2,3,21,15;6,14,21,9,3;6,7,15,3;"
                          "8,7,17,3,15;15,6,3;9,13,17,21,3;8,15,3;2,17,4,3;19,15,6,3;20,21,2,6,3;4,1,17,3;"
                          "3,4,19,21,15;6,7,3,9;21,0,2,3,15;16,8,9,17,15,3;15,23,17,3;19,14,9,17,3;17,22,3,2;"
                          "0,16,9,3,15;22,14,2,15,3;6,7,9,2,3;14,6,3,15"),
                     4, 4300, 130, 1, 0.42253, 35, 0.50651,
                     {{12, 1.05931}, {19, 0.79728}, {25, 0.67754}, {28, 0.60822}, {30, 0.57335}, {35, 0.50651},
                      {47, 0.42253}}));
  // Tried and not shipped: pbrl-r0.27's base re-searched at its design point (moves on the precode too, extension
  // rows of degree <= 7) reached a GA threshold of SNR 0.50141 (beta 0.9250) at rate 0.2712, but decoded worse at
  // 1.01e6 bits (SNR 0.5, beta 0.93: FER 0.55 of 20 frames, 300 iterations): GA-DE ranks these high-degree
  // variants too optimistically, so a threshold gain of 1 % is no evidence on its own.
  // CODE-FAMILIES-END
  return f;
}

}  // namespace

std::span<const code_family> code_families() {
  static const std::vector<code_family> families = make_families();
  return families;
}

expected<const code_family*> find_family(std::string_view name) {
  std::string known;
  for (const auto& f : code_families()) {
    if (f.name == name) return &f;
    known += (known.empty() ? "" : ", ") + std::string(f.name);
  }
  return fail(errc::invalid_argument, fmt::format("unknown code family '{}'; known: {}", name, known));
}

double capacity(double snr) noexcept { return 0.5 * std::log2(1.0 + snr); }

double code_family::ga_beta(double rate) const noexcept {
  if (ga_curve.empty()) return 0.0;
  auto beta_at = [&](const ga_point& g) { return base.rate(1, g.extension_rows) / capacity(g.snr); };
  auto rate_at = [&](const ga_point& g) { return base.rate(1, g.extension_rows); };
  // ga_curve runs from high rate (few rows) to low rate (many rows)
  if (rate >= rate_at(ga_curve.front())) {
    if (ga_curve.size() < 2) return beta_at(ga_curve.front());
    // above the curve: continue its first segment (efficiency falls with the rate away from the design point)
    const double slope = (beta_at(ga_curve[0]) - beta_at(ga_curve[1])) / (rate_at(ga_curve[0]) - rate_at(ga_curve[1]));
    return beta_at(ga_curve.front()) + std::min(slope, 0.0) * (rate - rate_at(ga_curve.front()));
  }
  if (rate <= rate_at(ga_curve.back())) return beta_at(ga_curve.back());
  for (std::size_t i = 1; i < ga_curve.size(); ++i) {
    const double r_hi = rate_at(ga_curve[i - 1]), r_lo = rate_at(ga_curve[i]);
    if (rate >= r_lo) {
      const double t = (rate - r_lo) / (r_hi - r_lo);
      return beta_at(ga_curve[i]) * (1 - t) + beta_at(ga_curve[i - 1]) * t;
    }
  }
  return beta_at(ga_curve.back());
}

expected<rate_choice> choose_for_rate(const code_family& family, double rate, double snr, bool short_block) {
  const std::uint32_t z = short_block ? family.lifting_short : family.lifting_long;
  const auto& p = family.proto;
  if (!(rate > 0.0) || !(rate < 1.0))
    return fail(errc::invalid_argument, fmt::format("code rate {} must lie in (0, 1)", rate));
  const double k = double(p.core_cols - p.precode_rows.size()) * z;
  double ext = std::floor(k / rate - double(p.core_cols) * z + 1e-9);
  // frames hold whole MDR blocks: n = core Z + ext is kept a multiple of 8 (rounding the rate up)
  if (ext >= 8) ext -= std::fmod(double(p.core_cols) * z + ext, 8.0);
  const double max_ext = double(p.extension_rows.size()) * z;
  if (ext < 1.0 || ext > max_ext)
    return fail(errc::invalid_argument,
                fmt::format("code family {} covers rates {:.4f} .. {:.4f}; {:.4f} is outside (choose another rate or "
                            "family)",
                            family.name, family.min_rate(), family.max_rate(), rate));
  rate_choice c;
  c.family = &family;
  c.lifting = z;
  c.extension_checks = static_cast<std::uint64_t>(ext);
  c.rate = p.rate(z, c.extension_checks);
  c.beta = c.rate / capacity(snr);
  return c;
}

expected<rate_choice> select_rate(double snr, double target_beta, bool short_block) {
  if (!(snr > 0.0) || !std::isfinite(snr))
    return fail(errc::invalid_argument, fmt::format("SNR {} must be positive and finite", snr));
  if (!(target_beta > 0.0 && target_beta < 1.0))
    return fail(errc::invalid_argument, fmt::format("target beta {} must lie in (0, 1)", target_beta));
  const double want = target_beta * capacity(snr);
  const code_family* best = nullptr;
  for (const auto& f : code_families())  // the highest GA-predicted efficiency at `want` among those reaching it
    if (f.min_rate() <= want * (1 + 1e-12) && want <= f.max_rate() &&
        (best == nullptr || f.ga_beta(want) >= best->ga_beta(want)))
      best = &f;
  if (best == nullptr)
    return fail(errc::invalid_argument,
                fmt::format("no shipped code reaches rate {:.4f} (beta {} at SNR {}); the families cover {:.4f} .. "
                            "{:.4f}",
                            want, target_beta, snr, code_families().front().min_rate(),
                            code_families().back().max_rate()));
  // rate >= want: the number of extension checks is rounded down
  return choose_for_rate(*best, want, snr, short_block);
}

expected<qc_matrix> build(const rate_choice& choice) {
  if (choice.family == nullptr) return fail(errc::invalid_argument, "no code chosen");
  return lift(choice.family->proto, choice.lifting, choice.family->seed, choice.extension_checks);
}

}  // namespace cvqkd::reconciliation::ldpc
