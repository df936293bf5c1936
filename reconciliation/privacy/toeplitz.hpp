#pragma once
// Toeplitz hashing over GF(2), the two-universal family used for privacy amplification.
//
// Convention (../shared/reference/cvqkd-theory.md, "Toeplitz privacy amplification convention"):
// an n_in-bit input x, an (n_in + n_out - 1)-bit seed s and an n_out-bit output (n_in >= n_out):
//   out_i = XOR_j T[i][j] x_j,  T[i][j] = s[i - j] if i >= j, else s[n_out + n_in - 1 - (j - i)].
// Equivalently out_i = XOR_j s[(i - j) mod (n_in + n_out - 1)] x_j, or bits n_in - 1 .. n_in +
// n_out - 2 of the GF(2)[y] product U(y) X(y), where U is s rotated by n_out (u_l = s[n_out + l]
// for l < n_in - 1, s[l - n_in + 1] after): a middle product. All vectors are bit_vector
// (LSB-first packed words).

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "core/error.hpp"
#include "reconciliation/privacy/bit_vector.hpp"

namespace cvqkd::reconciliation::privacy {

/// Seed length of an n_in -> n_out Toeplitz hash: n_in + n_out - 1 bits.
constexpr std::size_t toeplitz_seed_bits(std::size_t n_in, std::size_t n_out) noexcept {
  return n_in + n_out - 1;
}

/// Checks n_in >= n_out >= 1 and seed_bits == n_in + n_out - 1. Errors: invalid_argument naming
/// the violated condition and the values.
expected<void> validate_toeplitz_shape(std::size_t n_in, std::size_t n_out, std::size_t seed_bits);

/// Reference product out = T x by the definition, word-parallel: O(n_in n_out / 64) word
/// operations, for tests and short blocks. Shapes: x of n_in bits, seed of n_in + n_out - 1 bits;
/// returns n_out bits. Errors: those of validate_toeplitz_shape.
expected<bit_vector> toeplitz_naive(const bit_vector& x, const bit_vector& seed, std::size_t n_out);

/// How toeplitz_hasher computes the product.
enum class toeplitz_method {
  automatic,     // naive for tiny blocks (n_in * n_out <= 2^24), additive FFT otherwise
  naive,         // toeplitz_naive
  additive_fft,  // middle product by the additive FFT over GF(2^64) (gf2_fft.hpp), O(n log n)
};
std::string_view to_string(toeplitz_method m) noexcept;
/// "auto", "naive", "additive-fft". Errors: invalid_argument listing the accepted names.
expected<toeplitz_method> parse_toeplitz_method(std::string_view name);

/// Toeplitz hashing with a reusable workspace: the transform buffers are allocated on the first
/// call of a given size and reused (first touch of fresh memory is expensive), so one hasher per
/// link or thread should be kept. Not thread-safe; move-only.
///
/// The additive-FFT path (gf2_fft.hpp) packs 32 input bits per GF(2^64) coefficient and cuts x
/// into p pieces whose products with windows of the seed are summed in the transform domain (p
/// from a cost model: 2 at n_in = 1e8, n_out = n_in / 4). Workspace: 3 * 2^K * 8 bytes (2 buffers
/// when p = 1), with 2^K >= (n_out + 2 n_in / p) / 32 coefficients; at n_out = n_in / 4 that is
/// 0.6 to 1.3 bytes per input bit depending on where n_in falls between powers of two (measured:
/// 0.79 at 1e6, 0.63 at 1e7, 1.01 at 1e8), plus the caller's x, seed and output (0.41 byte per
/// input bit). Time O(n log n); about 0.24 s CPU at n_in = 1e8 on one AVX-512 core.
/// The workspace holds data derived from x; with `wipe` it is zeroized after every call, and it
/// is always zeroized when the hasher is destroyed.
class toeplitz_hasher {
public:
  struct options {
    toeplitz_method method = toeplitz_method::automatic;
    /// Kernel tier for the additive FFT: "" for the fastest this CPU supports, or "portable",
    /// "pclmulqdq", "avx512-vpclmulqdq".
    std::string kernel;
    /// Zeroize the x-derived workspace after each call (costs one pass over it).
    bool wipe = true;
  };

  /// Errors: unsupported when the requested kernel tier is not available on this CPU or build.
  static expected<toeplitz_hasher> create(const options& opt);
  static expected<toeplitz_hasher> create() { return create(options{}); }

  toeplitz_hasher(toeplitz_hasher&&) noexcept;
  toeplitz_hasher& operator=(toeplitz_hasher&&) noexcept;
  ~toeplitz_hasher();

  /// out = T x (see the convention above). Shapes: x of n_in bits, seed of n_in + n_out - 1 bits;
  /// returns n_out bits. Errors: those of validate_toeplitz_shape; invalid_argument if the
  /// transform would exceed 2^40 coefficients.
  expected<bit_vector> hash(const bit_vector& x, const bit_vector& seed, std::size_t n_out);

  /// The kernel tier in use ("portable", "pclmulqdq", "avx512-vpclmulqdq").
  std::string_view kernel_name() const noexcept;
  /// Bytes of workspace currently allocated.
  std::size_t workspace_bytes() const noexcept;
  /// The method the last hash() call used (automatic resolved).
  toeplitz_method last_method() const noexcept;

private:
  struct impl;
  explicit toeplitz_hasher(std::unique_ptr<impl> p);
  std::unique_ptr<impl> impl_;
};

}  // namespace cvqkd::reconciliation::privacy
