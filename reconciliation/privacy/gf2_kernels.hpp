#pragma once
// Internal: the hot loops of the additive FFT over GF(2^64) used by the Toeplitz hasher, one
// table of function pointers per instruction-set tier (portable C++, PCLMULQDQ, AVX-512 with
// VPCLMULQDQ), chosen once at run time. Nothing here is part of the public API.
//
// Field: GF(2^64) = GF(2)[z] / (z^64 + z^4 + z^3 + z + 1); an element is a uint64_t whose bit k is
// the coefficient of z^k. Transform conventions (Lin, Chung, Han, "Novel polynomial basis and its
// application to Reed-Solomon erasure codes", FOCS 2014, with Cantor's basis): see gf2_fft.cpp.
//
// The kernel translation units include only C headers and intrinsics (no C++ templates from the
// standard library), so that code compiled with -mavx512f etc. cannot leak into inline functions
// shared with the rest of the program.

#include <cstddef>
#include <cstdint>

namespace cvqkd::reconciliation::privacy::detail {

/// (lo + z^64 hi) mod (z^64 + z^4 + z^3 + z + 1).
/// Shared by the portable and PCLMULQDQ kernels.
inline std::uint64_t gf_reduce(std::uint64_t lo, std::uint64_t hi) {
  const std::uint64_t o = (hi >> 60) ^ (hi >> 61) ^ (hi >> 63);  // bits of hi*(z^4+z^3+z+1) above z^63
  const std::uint64_t t = hi ^ (hi << 1) ^ (hi << 3) ^ (hi << 4);
  return lo ^ t ^ o ^ (o << 1) ^ (o << 3) ^ (o << 4);
}


/// Twiddle source for the lowest FFT layers: omega(v) = XOR of beta[l] over the set bits l of v,
/// with beta the Cantor basis (beta[0] = 1, beta[l]^2 + beta[l] = beta[l-1]).
struct field_tables {
  std::uint64_t beta[64];
  /// prefix[s][t] = beta[s] ^ beta[s+1] ^ ... ^ beta[s+t] (s < 8, t < 56): the change of
  /// omega(j << s) when j is incremented and bits 0..t of j flip.
  std::uint64_t prefix[8][56];
};

struct kernel_table {
  const char* name;
  /// r consecutive forward FFT layers (radix 2^r, r in 1..3) over each of `blocks` consecutive
  /// blocks of 2^r * stride elements, stride a multiple of 8. lambdas: 7 per block, of which the
  /// first 2^r - 1 are used: the top layer's twiddle, then the next layer's two sub-blocks', then
  /// four.
  void (*fwd_pass)(std::uint64_t* d, std::size_t blocks, std::size_t stride, int r, const std::uint64_t* lambdas);
  /// The inverse of fwd_pass with the same arguments.
  void (*inv_pass)(std::uint64_t* d, std::size_t blocks, std::size_t stride, int r, const std::uint64_t* lambdas);
  /// The three lowest layers (butterfly distances 4, 2, 1) on n elements (n a multiple of 16) that
  /// sit at global position pos (a multiple of 16) of the transform.
  void (*fwd_low)(std::uint64_t* d, std::size_t n, std::uint64_t pos, const field_tables& t);
  void (*inv_low)(std::uint64_t* d, std::size_t n, std::uint64_t pos, const field_tables& t);
  /// c[i] = a[i] * b[i] (accumulate = false) or c[i] ^= a[i] * b[i] in GF(2^64); n a multiple of 8.
  void (*mul)(std::uint64_t* c, const std::uint64_t* a, const std::uint64_t* b, std::size_t n, bool accumulate);
  /// Monomial -> novel basis, one level: for each of `blocks` consecutive blocks of 2h elements,
  /// divide by s(y) = y^h + sum_t y^(e[t]) (e[t] = 2^t <= h/2, h >= 32): for i from 2h-1 down to
  /// h, f[i - h + e[t]] ^= f[i]. 32-bit elements (the inputs are 32-bit chunks).
  void (*to_novel_level)(std::uint32_t* f, std::size_t blocks, std::size_t h, const std::size_t* e, int ne);
  /// The levels with h < 32 (blocks of 32 elements, s_4 down to s_1) on n elements (n % 32 == 0).
  void (*to_novel_low)(std::uint32_t* f, std::size_t n);
  /// Novel -> monomial basis, one level: for each block of 2h elements, for i from 0 to h-1,
  /// f[i + e[t]] ^= f[h + i] with e[t] = 2^t (all <= h/2). 64-bit elements.
  void (*to_mono_level)(std::uint64_t* f, std::size_t blocks, std::size_t h, const std::size_t* e, int ne);
  /// The levels with h < 16 (blocks of 16 elements, s_1 up to s_3) on n elements (n % 16 == 0).
  void (*to_mono_low)(std::uint64_t* f, std::size_t n);
  /// Zero-extends n 32-bit values stored at the start of `buf` into n 64-bit values, in place.
  void (*widen)(std::uint64_t* buf, std::size_t n);
};

const kernel_table& portable_kernels();
/// nullptr when the tier was not compiled in.
const kernel_table* pclmul_kernels();
const kernel_table* avx512_kernels();

}  // namespace cvqkd::reconciliation::privacy::detail
