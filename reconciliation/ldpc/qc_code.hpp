#pragma once
// Quasi-cyclic parity-check matrices lifted from raptor-like protographs, the code structure the decoder
// runs on. A protograph-based raptor-like (PBRL) code (Chen, Vakilinia, Divsalar, Wesel, IEEE Trans. Commun.
// 63, 1522 (2015)) is a high-rate precode over "core" variables extended by rows that each add one new
// degree-one variable; dropping extension rows raises the rate, adding them lowers it, so one protograph
// serves a range of SNRs (cvqkd-theory.md, "Code design pointers"). Lifting by Z replaces each protograph
// edge by a Z x Z circulant permutation (shifted identity); the shifts come from a seeded DRBG and avoid
// 4-cycles (Fossorier, IEEE Trans. Inf. Theory 50, 1788 (2004), Theorem 2).

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "reconciliation/ldpc/sparse_matrix.hpp"

namespace cvqkd::reconciliation::ldpc {

/// H as base_rows x base_cols blocks of size Z x Z, each zero or a shifted identity: block (r, c, s) has
/// ones at (r Z + i, c Z + (i + s) mod Z), i < Z. Bit c Z + j belongs to column block c, check r Z + i to
/// row block r. The last row block may be truncated to `last_rows` checks and the last column block to
/// `last_cols` bits, provided that column block is used only by the last row block with shift 0 (a
/// raptor extension row and its degree-one column): that is how the rate is set to a single check.
struct qc_matrix {
  struct block {
    std::uint32_t col;
    std::uint32_t shift;
  };
  std::uint32_t base_rows = 0, base_cols = 0, lifting = 1;
  std::uint32_t last_rows = 1, last_cols = 1;  // active checks / bits of the last row / column block
  std::vector<std::uint32_t> row_ptr{0};       // blocks of base row r: blocks[row_ptr[r] .. row_ptr[r+1])
  std::vector<block> blocks;

  std::uint32_t rows() const noexcept { return (base_rows - 1) * lifting + last_rows; }
  std::uint32_t cols() const noexcept { return (base_cols - 1) * lifting + last_cols; }
  std::uint32_t rows_in(std::uint32_t r) const noexcept { return r + 1 == base_rows ? last_rows : lifting; }
  std::size_t edges() const noexcept;
  /// Design rate 1 - rows/cols: information bits per code bit.
  double rate() const noexcept { return 1.0 - double(rows()) / cols(); }
  /// Checks the invariants above. Errors: invalid_argument naming the broken one.
  expected<void> validate() const;
  /// The explicit sparse matrix.
  sparse_matrix expand() const;
  /// A generic sparse matrix as a QC matrix with Z = 1 (every row its own layer).
  static qc_matrix from_sparse(const sparse_matrix& h);
};

/// A raptor-like protograph: `core_cols` core variables, precode rows over them, and extension rows, each
/// over some core variables plus its own degree-one variable. Base column order: core, then one degree-one
/// column per extension row; base row order: precode rows, then extension rows.
struct raptor_protograph {
  std::uint32_t core_cols = 0;
  std::vector<std::vector<std::uint32_t>> precode_rows;
  std::vector<std::vector<std::uint32_t>> extension_rows;

  /// Rate of the lifted code with `extension_checks` extension checks (any count, not only multiples of Z):
  /// (core - precode) Z / (core Z + extension_checks).
  double rate(std::uint32_t lifting, std::uint64_t extension_checks) const noexcept;
  expected<void> validate() const;
};

/// Copy-and-permute expansion of a protograph by `factor` L (Thorpe, JPL IPN PR 42-154 (2003)): every row
/// becomes L rows and every edge (r, c) the L edges (r L + i, c L + pi_rc(i)) for a permutation pi_rc drawn
/// from seeded_drbg(seed, "protograph-expansion"); extension row e becomes rows e L .. e L + L - 1, each with
/// its own degree-one column. Degrees, rate and the density-evolution threshold are those of `p` (the
/// computation graphs are the same), but the permutations do not commute, so lifting the expanded graph with
/// circulants is not subject to the permanent bound on the minimum distance of QC codes lifted from `p`
/// directly (Smarandache & Vontobel, IEEE Trans. Inf. Theory 58, 585 (2012)), which the J x (J+1) structures
/// of a small precode make a few tens of bits (codes.cpp, error floor). Errors: invalid_argument on an invalid
/// protograph or L = 0.
expected<raptor_protograph> expand_protograph(const raptor_protograph& p, std::uint32_t factor, std::uint64_t seed);

/// Lifts `p` by Z with circulant shifts drawn from seeded_drbg(seed, "qc-lifting"), keeping the first
/// `extension_checks` extension checks (1 .. extension_rows*Z). Deterministic for (p, Z, seed). Errors:
/// invalid_argument on an invalid protograph or an extension count out of range.
expected<qc_matrix> lift(const raptor_protograph& p, std::uint32_t lifting, std::uint64_t seed,
                         std::uint64_t extension_checks);

}  // namespace cvqkd::reconciliation::ldpc
