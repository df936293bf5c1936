#include "reconciliation/ldpc/protograph_search.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <map>
#include <numeric>
#include <random>
#include <string>
#include <vector>

namespace cvqkd::reconciliation::ldpc {

expected<void> check_precode_structure(const raptor_protograph& p) {
  const auto rows = static_cast<std::uint32_t>(p.precode_rows.size());
  std::vector<std::vector<std::uint32_t>> support(p.core_cols);
  for (std::uint32_t r = 0; r < rows; ++r) {
    if (p.precode_rows[r].size() < 2)
      return fail(errc::invalid_argument,
                  fmt::format("precode row {} has {} entries; give it at least two core columns", r,
                              p.precode_rows[r].size()));
    for (auto c : p.precode_rows[r]) {
      if (c >= p.core_cols)
        return fail(errc::invalid_argument, fmt::format("precode row {} names core column {} of {}", r, c, p.core_cols));
      support[c].push_back(r);
    }
  }
  // union-find over the precode rows plus a ground vertex (index `rows`) for degree-1 columns
  std::vector<std::uint32_t> parent(rows + 1);
  std::iota(parent.begin(), parent.end(), 0u);
  const auto root = [&](std::uint32_t x) {
    while (parent[x] != x) x = parent[x] = parent[parent[x]];
    return x;
  };
  std::map<std::vector<std::uint32_t>, std::vector<std::uint32_t>> sharing;
  for (std::uint32_t c = 0; c < p.core_cols; ++c) {
    const auto& s = support[c];
    if (s.empty()) continue;
    auto& same = sharing[s];
    same.push_back(c);
    if (same.size() > 3)
      return fail(errc::invalid_argument,
                  fmt::format("core columns {} share one precode support; at most 3 may", fmt::join(same, ", ")));
    if (s.size() > 2) continue;
    const auto a = root(s[0]), b = root(s.size() == 2 ? s[1] : rows);
    if (a == b)
      return fail(errc::invalid_argument,
                  fmt::format("precode column {} (rows {}) closes a cycle of degree-1/2 columns: a low-weight precode "
                              "word; give it a third precode row or move it",
                              c, fmt::join(s, ",")));
    parent[a] = b;
  }
  return {};
}

expected<protograph_search_result> search_protograph(const raptor_protograph& start,
                                                     const protograph_search_options& o,
                                                     const std::function<void(const protograph_search_step&)>& step) {
  if (auto ok = start.validate(); !ok) return std::unexpected(ok.error());
  if (auto ok = check_precode_structure(start); !ok)
    return fail(errc::invalid_argument, "the start protograph: " + ok.error().message);
  if (o.design_rows == 0 || o.design_rows > start.extension_rows.size())
    return fail(errc::invalid_argument, fmt::format("design_rows must lie in 1 .. {} (the start's extension rows)",
                                                    start.extension_rows.size()));
  if (o.candidates == 0) return fail(errc::invalid_argument, "evaluate at least one candidate");
  std::mt19937_64 rng(o.seed);
  const auto pick = [&](std::size_t n) { return static_cast<std::size_t>(rng() % n); };
  protograph_search_result res{start, ga_threshold_snr(start, o.design_rows, o.de), 0, 0};
  // Moves that leave the protograph invalid are drawn again; bound the draws so that a start with no
  // valid neighbour cannot loop for ever.
  for (std::uint64_t draws = 0; res.evaluated < o.candidates && draws < 1000 * o.candidates; ++draws) {
    raptor_protograph q = res.best;
    const auto col = static_cast<std::uint32_t>(pick(q.core_cols));
    if (pick(3) == 0) {
      auto& row = q.precode_rows[pick(q.precode_rows.size())];
      if (auto it = std::find(row.begin(), row.end(), col); it != row.end()) row.erase(it);
      else row.push_back(col);
    } else {
      auto& row = q.extension_rows[pick(o.design_rows)];
      const auto it = std::find(row.begin(), row.end(), col);
      if (pick(2) == 0) {  // toggle
        if (it != row.end()) {
          if (row.size() > 1) row.erase(it);
        } else if (row.size() < o.max_extension_degree) {
          row.push_back(col);
        }
      } else if (it == row.end()) {  // move one entry to `col`
        row[pick(row.size())] = col;
      }
    }
    for (std::size_t i = o.design_rows; i < q.extension_rows.size(); ++i)
      q.extension_rows[i] = q.extension_rows[i - o.design_rows];
    if (!q.validate() || !check_precode_structure(q)) continue;
    ++res.evaluated;
    const double t = ga_threshold_snr(q, o.design_rows, o.de);
    if (t > res.threshold_snr) continue;
    const bool better = t < res.threshold_snr;
    res.best = std::move(q);
    res.threshold_snr = t;
    ++res.kept;
    if (better && step) step({res.evaluated, t});
  }
  return res;
}

}  // namespace cvqkd::reconciliation::ldpc
