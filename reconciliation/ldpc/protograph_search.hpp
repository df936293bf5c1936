#pragma once
// The design tool behind the shipped code families (codes.cpp): a hill climb over a raptor-like base
// protograph's entries that keeps a move when the GA density-evolution threshold at the design rate does
// not get worse, under structural constraints that keep low-weight precode words out.
#include <cstdint>
#include <functional>

#include "core/error.hpp"
#include "reconciliation/ldpc/density_evolution.hpp"
#include "reconciliation/ldpc/qc_code.hpp"

namespace cvqkd::reconciliation::ldpc {

/// Checks the precode structure the families are designed under: (1) the precode columns of degree 1 and
/// 2, read as edges between precode rows (degree 1: an edge to a virtual ground row), form a forest — a
/// cycle of them is a precode codeword of weight = its length (two degree-2 columns on the same two rows:
/// weight 2), which lifting turns into low-weight codewords of the whole code (the error floor of the
/// session-2 pbrl-r0.19 base; Chen et al., IEEE Trans. Commun. 63, 1522 (2015) on degree-2 precode
/// columns); (2) at most 3 core columns share one precode support; (3) every precode row has at least two
/// entries. Errors: invalid_argument naming the columns and rows at fault.
expected<void> check_precode_structure(const raptor_protograph& p);

struct protograph_search_options {
  std::uint32_t design_rows = 0;           // extension rows at the design rate (moves touch only these)
  std::uint64_t candidates = 2000;         // structurally valid candidates to evaluate
  std::uint64_t seed = 1;                  // the move sequence (std::mt19937_64)
  unsigned max_extension_degree = 6;       // core entries per extension row
  de_options de = [] {                     // 4-point fading quadrature: ~4x faster, ranks like 16
    de_options o;
    o.fading_points = 4;
    return o;
  }();
};

struct protograph_search_step {
  std::uint64_t candidate = 0;   // 1-based index of the candidate that improved
  double threshold_snr = 0.0;    // its GA threshold at the design rate (search quadrature)
};

struct protograph_search_result {
  raptor_protograph best;
  double threshold_snr = 0.0;    // search quadrature
  std::uint64_t evaluated = 0, kept = 0;
};

/// Hill climb from `start` (which must pass check_precode_structure): each candidate toggles one precode
/// entry (a third of the moves) or toggles/moves one entry of one of the first design_rows extension rows;
/// extension rows past design_rows are rewritten as cyclic repeats of the design rows (how the families
/// continue to lower rates). A candidate is kept when its GA threshold at design_rows is <= the current
/// one, so the search drifts along plateaus. Deterministic for (start, options). `on_improvement` (may be
/// empty) is called on every strict improvement. Cost: one GA threshold per candidate (~0.1-0.5 s for a
/// 16 x 44 base). Errors: invalid_argument for an invalid start, design_rows of 0 or above the extension
/// rows, or 0 candidates.
expected<protograph_search_result> search_protograph(
    const raptor_protograph& start, const protograph_search_options& options,
    const std::function<void(const protograph_search_step&)>& on_improvement = {});

}  // namespace cvqkd::reconciliation::ldpc
