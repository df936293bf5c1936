#pragma once
// Sparse binary parity-check matrix H (m x n) with row-major (CSR) and column-major (CSC) views of the
// same edge set; the syndrome of a word b is s = H b over GF(2).

#include <cstdint>
#include <span>
#include <utility>
#include <vector>

#include "core/error.hpp"

namespace cvqkd::reconciliation::ldpc {

class sparse_matrix {
public:
  sparse_matrix() = default;
  /// Builds H from (row, column) positions of its ones. Errors: invalid_argument when a position is
  /// out of range or repeated (a binary matrix has no multi-edges).
  static expected<sparse_matrix> from_entries(std::uint32_t rows, std::uint32_t cols,
                                              std::vector<std::pair<std::uint32_t, std::uint32_t>> entries);

  std::uint32_t rows() const noexcept { return rows_; }
  std::uint32_t cols() const noexcept { return cols_; }
  std::size_t edges() const noexcept { return col_idx_.size(); }
  /// Design rate 1 - m/n (the true rate is higher when rows are dependent).
  double design_rate() const noexcept { return cols_ ? 1.0 - double(rows_) / cols_ : 0.0; }

  /// CSR: the columns of row r are col_idx()[row_ptr()[r] .. row_ptr()[r+1]), ascending.
  std::span<const std::uint32_t> row_ptr() const noexcept { return row_ptr_; }
  std::span<const std::uint32_t> col_idx() const noexcept { return col_idx_; }
  std::span<const std::uint32_t> row(std::uint32_t r) const noexcept {
    return {col_idx_.data() + row_ptr_[r], row_ptr_[r + 1] - row_ptr_[r]};
  }
  /// CSC: the rows of column c are row_idx()[col_ptr()[c] .. col_ptr()[c+1]), ascending; col_edge() gives
  /// the CSR position of the same edge.
  std::span<const std::uint32_t> col_ptr() const noexcept { return col_ptr_; }
  std::span<const std::uint32_t> row_idx() const noexcept { return row_idx_; }
  std::span<const std::uint32_t> col_edge() const noexcept { return col_edge_; }
  std::span<const std::uint32_t> col(std::uint32_t c) const noexcept {
    return {row_idx_.data() + col_ptr_[c], col_ptr_[c + 1] - col_ptr_[c]};
  }

  /// s = H b for a word of n bits (one 0/1 per byte); writes m bits to `syndrome`. Sizes must match.
  void syndrome(std::span<const std::uint8_t> word, std::span<std::uint8_t> syndrome) const noexcept;

  friend bool operator==(const sparse_matrix&, const sparse_matrix&) = default;

private:
  std::uint32_t rows_ = 0, cols_ = 0;
  std::vector<std::uint32_t> row_ptr_{0}, col_idx_, col_ptr_{0}, row_idx_, col_edge_;
};

}  // namespace cvqkd::reconciliation::ldpc
