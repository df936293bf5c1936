#pragma once
// AList text format for sparse parity-check matrices (D. MacKay, "Encyclopedia of sparse graph codes",
// inference.org.uk/mackay/codes/alist.html): "n m", "max_col_deg max_row_deg", the n column degrees, the m
// row degrees, then n lines of 1-based row indices per column and m lines of 1-based column indices per
// row. Zero-padding of short lines (an old convention) is accepted on reading.

#include <iosfwd>
#include <string>

#include "core/error.hpp"
#include "reconciliation/ldpc/sparse_matrix.hpp"

namespace cvqkd::reconciliation::ldpc {

/// Writes H in AList format (no zero padding).
void write_alist(std::ostream& out, const sparse_matrix& h);
/// Reads an AList matrix. Errors: parse_error naming what is malformed (counts, indices out of range,
/// column and row lists that disagree).
expected<sparse_matrix> read_alist(std::istream& in);

/// File variants; errors: io_error when the file cannot be opened or written.
expected<void> write_alist_file(const std::string& path, const sparse_matrix& h);
expected<sparse_matrix> read_alist_file(const std::string& path);

}  // namespace cvqkd::reconciliation::ldpc
