#include "reconciliation/ldpc/qc_code.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <map>

#include "core/drbg.hpp"

namespace cvqkd::reconciliation::ldpc {

std::size_t qc_matrix::edges() const noexcept {
  std::size_t e = 0;
  for (std::uint32_t r = 0; r < base_rows; ++r) e += std::size_t(row_ptr[r + 1] - row_ptr[r]) * rows_in(r);
  return e;
}

expected<void> qc_matrix::validate() const {
  auto bad = [](std::string m) { return fail(errc::invalid_argument, "QC matrix: " + m + "; rebuild the code"); };
  if (base_rows == 0 || base_cols == 0 || lifting == 0) return bad("empty dimensions");
  if (row_ptr.size() != base_rows + std::size_t{1} || row_ptr.back() != blocks.size()) return bad("row pointer size");
  if (last_rows == 0 || last_rows > lifting || last_cols == 0 || last_cols > lifting) return bad("truncation out of range");
  for (std::uint32_t r = 0; r < base_rows; ++r) {
    for (std::uint32_t e = row_ptr[r]; e < row_ptr[r + 1]; ++e) {
      const auto& b = blocks[e];
      if (b.col >= base_cols || b.shift >= lifting) return bad(fmt::format("block {} out of range", e));
      for (std::uint32_t f = row_ptr[r]; f < e; ++f)
        if (blocks[f].col == b.col) return bad(fmt::format("row block {} uses column block {} twice", r, b.col));
      if (b.col + 1 == base_cols && last_cols < lifting && (r + 1 != base_rows || b.shift != 0 || last_rows != last_cols))
        return bad("the truncated last column block must belong to the last row block alone, with shift 0");
    }
  }
  return {};
}

sparse_matrix qc_matrix::expand() const {
  std::vector<std::pair<std::uint32_t, std::uint32_t>> entries;
  entries.reserve(edges());
  for (std::uint32_t r = 0; r < base_rows; ++r)
    for (std::uint32_t e = row_ptr[r]; e < row_ptr[r + 1]; ++e)
      for (std::uint32_t i = 0; i < rows_in(r); ++i)
        entries.emplace_back(r * lifting + i, blocks[e].col * lifting + (i + blocks[e].shift) % lifting);
  return *sparse_matrix::from_entries(rows(), cols(), std::move(entries));  // valid by construction
}

qc_matrix qc_matrix::from_sparse(const sparse_matrix& h) {
  qc_matrix q;
  q.base_rows = h.rows();
  q.base_cols = h.cols();
  q.lifting = q.last_rows = q.last_cols = 1;
  q.row_ptr.assign(h.row_ptr().begin(), h.row_ptr().end());
  q.blocks.reserve(h.edges());
  for (auto c : h.col_idx()) q.blocks.push_back({c, 0});
  return q;
}

double raptor_protograph::rate(std::uint32_t lifting, std::uint64_t extension_checks) const noexcept {
  const double k = double(core_cols - precode_rows.size()) * lifting;
  return k / (double(core_cols) * lifting + double(extension_checks));
}

expected<void> raptor_protograph::validate() const {
  auto bad = [](std::string m) { return fail(errc::invalid_argument, "protograph: " + m); };
  if (core_cols == 0 || extension_rows.empty()) return bad("needs core columns and at least one extension row");
  if (precode_rows.size() >= core_cols) return bad("more precode rows than core columns leaves no information bits");
  for (const auto* rows : {&precode_rows, &extension_rows})
    for (const auto& row : *rows) {
      if (row.empty() && rows == &precode_rows) return bad("empty precode row");
      for (std::size_t i = 0; i < row.size(); ++i) {
        if (row[i] >= core_cols) return bad(fmt::format("core column {} out of range", row[i]));
        for (std::size_t j = 0; j < i; ++j)
          if (row[j] == row[i]) return bad(fmt::format("core column {} repeated in a row", row[i]));
      }
    }
  return {};
}

expected<raptor_protograph> expand_protograph(const raptor_protograph& p, std::uint32_t factor, std::uint64_t seed) {
  if (auto ok = p.validate(); !ok) return std::unexpected(ok.error());
  if (factor == 0) return fail(errc::invalid_argument, "protograph expansion factor must be positive");
  seeded_drbg rng(seed, "protograph-expansion");
  std::vector<std::uint32_t> perm(factor);
  auto expand_rows = [&](const std::vector<std::vector<std::uint32_t>>& rows) {
    std::vector<std::vector<std::uint32_t>> out(rows.size() * std::size_t(factor));
    for (std::size_t r = 0; r < rows.size(); ++r) {
      for (auto c : rows[r]) {
        for (std::uint32_t i = 0; i < factor; ++i) perm[i] = i;
        for (std::uint32_t i = factor; i > 1; --i) std::swap(perm[i - 1], perm[rng.next_u64() % i]);  // Fisher-Yates
        for (std::uint32_t i = 0; i < factor; ++i) out[r * factor + i].push_back(c * factor + perm[i]);
      }
    }
    return out;
  };
  raptor_protograph q;
  q.core_cols = p.core_cols * factor;
  q.precode_rows = expand_rows(p.precode_rows);
  q.extension_rows = expand_rows(p.extension_rows);
  return q;
}

expected<qc_matrix> lift(const raptor_protograph& p, std::uint32_t lifting, std::uint64_t seed,
                         std::uint64_t extension_checks) {
  if (auto ok = p.validate(); !ok) return std::unexpected(ok.error());
  if (lifting == 0) return fail(errc::invalid_argument, "lifting factor must be positive");
  const std::uint64_t max_ext = std::uint64_t(p.extension_rows.size()) * lifting;
  if (extension_checks == 0 || extension_checks > max_ext)
    return fail(errc::invalid_argument,
                fmt::format("{} extension checks requested; this code offers 1 .. {} (choose another rate)",
                            extension_checks, max_ext));
  const auto ext_blocks = static_cast<std::uint32_t>((extension_checks + lifting - 1) / lifting);
  const auto last = static_cast<std::uint32_t>(extension_checks - std::uint64_t(ext_blocks - 1) * lifting);

  qc_matrix q;
  q.lifting = lifting;
  q.base_rows = static_cast<std::uint32_t>(p.precode_rows.size()) + ext_blocks;
  q.base_cols = p.core_cols + ext_blocks;
  q.last_rows = last;
  q.last_cols = last;
  seeded_drbg rng(seed, "qc-lifting");
  // shifts already placed per core column: (row block, shift), for the 4-cycle test
  std::vector<std::vector<std::pair<std::uint32_t, std::uint32_t>>> placed(p.core_cols);
  auto add_row = [&](std::uint32_t r, const std::vector<std::uint32_t>& cols) {
    std::vector<std::pair<std::uint32_t, std::uint32_t>> mine;
    for (auto c : cols) {
      std::uint32_t s = 0;
      for (int attempt = 0; attempt < 64; ++attempt) {
        s = lifting > 1 ? static_cast<std::uint32_t>(rng.next_u64() % lifting) : 0;
        // A 4-cycle through rows r, r2 and columns c, c2 exists iff s(r,c) - s(r,c2) + s(r2,c2) - s(r2,c) = 0 mod Z.
        bool cycle = false;
        for (const auto& [c2, s_rc2] : mine) {
          for (const auto& [r2, s_r2c] : placed[c]) {
            for (const auto& [r3, s_r2c2] : placed[c2]) {
              if (r3 != r2) continue;
              const std::int64_t d = std::int64_t(s) - s_rc2 + s_r2c2 - s_r2c;
              if (((d % lifting) + lifting) % lifting == 0) cycle = true;
            }
          }
        }
        if (!cycle) break;
      }
      mine.emplace_back(c, s);
      q.blocks.push_back({c, s});
    }
    for (const auto& [c, s] : mine) placed[c].emplace_back(r, s);
    q.row_ptr.push_back(static_cast<std::uint32_t>(q.blocks.size()));
  };
  std::uint32_t r = 0;
  for (const auto& row : p.precode_rows) add_row(r++, row);
  for (std::uint32_t e = 0; e < ext_blocks; ++e) {
    add_row(r, p.extension_rows[e]);
    q.blocks.push_back({p.core_cols + e, 0});  // the row's own degree-one column
    q.row_ptr.back() = static_cast<std::uint32_t>(q.blocks.size());
    ++r;
  }
  if (auto ok = q.validate(); !ok) return std::unexpected(ok.error());
  return q;
}

}  // namespace cvqkd::reconciliation::ldpc
