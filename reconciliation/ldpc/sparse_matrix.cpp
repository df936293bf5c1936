#include "reconciliation/ldpc/sparse_matrix.hpp"

#include <fmt/format.h>

#include <algorithm>

namespace cvqkd::reconciliation::ldpc {

expected<sparse_matrix> sparse_matrix::from_entries(std::uint32_t rows, std::uint32_t cols,
                                                    std::vector<std::pair<std::uint32_t, std::uint32_t>> entries) {
  std::sort(entries.begin(), entries.end());
  for (std::size_t i = 0; i < entries.size(); ++i) {
    const auto [r, c] = entries[i];
    if (r >= rows || c >= cols)
      return fail(errc::invalid_argument,
                  fmt::format("parity-check entry ({}, {}) lies outside the {} x {} matrix", r, c, rows, cols));
    if (i > 0 && entries[i - 1] == entries[i])
      return fail(errc::invalid_argument,
                  fmt::format("parity-check entry ({}, {}) appears twice; a binary matrix has no repeated entries", r, c));
  }
  sparse_matrix h;
  h.rows_ = rows;
  h.cols_ = cols;
  h.row_ptr_.assign(rows + 1, 0);
  h.col_ptr_.assign(cols + 1, 0);
  h.col_idx_.resize(entries.size());
  h.row_idx_.resize(entries.size());
  h.col_edge_.resize(entries.size());
  for (const auto& [r, c] : entries) {
    ++h.row_ptr_[r + 1];
    ++h.col_ptr_[c + 1];
  }
  for (std::uint32_t r = 0; r < rows; ++r) h.row_ptr_[r + 1] += h.row_ptr_[r];
  for (std::uint32_t c = 0; c < cols; ++c) h.col_ptr_[c + 1] += h.col_ptr_[c];
  std::vector<std::uint32_t> fill(h.col_ptr_.begin(), h.col_ptr_.end() - 1);
  for (std::size_t e = 0; e < entries.size(); ++e) {  // entries are sorted by row, then column: CSR order
    const auto [r, c] = entries[e];
    h.col_idx_[e] = c;
    const std::uint32_t p = fill[c]++;
    h.row_idx_[p] = r;
    h.col_edge_[p] = static_cast<std::uint32_t>(e);
  }
  return h;
}

void sparse_matrix::syndrome(std::span<const std::uint8_t> word, std::span<std::uint8_t> syndrome) const noexcept {
  for (std::uint32_t r = 0; r < rows_; ++r) {
    std::uint8_t s = 0;
    for (std::uint32_t e = row_ptr_[r]; e < row_ptr_[r + 1]; ++e) s ^= word[col_idx_[e]];
    syndrome[r] = s & 1u;
  }
}

}  // namespace cvqkd::reconciliation::ldpc
