// Internal: the AVX-512 tier of the additive-FFT kernels (AVX512F/BW + VPCLMULQDQ: Ice Lake,
// Sapphire Rapids, Zen 4 and later). Compiled with -mavx512f -mavx512bw -mvpclmulqdq -mpclmul
// (reconciliation/CMakeLists.txt) and only called after a run-time CPU check. Eight GF(2^64)
// elements per register; a product is two VPCLMULQDQ plus a shift-based reduction.
#include "reconciliation/privacy/gf2_kernels.hpp"

#if defined(__x86_64__) && defined(__AVX512F__) && defined(__AVX512BW__) && defined(__VPCLMULQDQ__)
// GCC 12 reports its own _mm512_undefined_epi32() (inlined from the intrinsics headers) as
// "maybe uninitialized"; a known false positive (GCC bug 105593).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

namespace {

using cvqkd::reconciliation::privacy::detail::field_tables;
using cvqkd::reconciliation::privacy::detail::kernel_table;
using u32 = std::uint32_t;
using u64 = std::uint64_t;
using vec = __m512i;

// For the top nibble n of the high half: the reduction of the bits that hi * (z^4+z^3+z+1)
// pushes past z^63, i.e. o * (z^4+z^3+z+1) with o = n ^ n>>1 ^ n>>3 (always below 2^8); the
// 16-byte table repeated in each 128-bit lane for VPSHUFB. A constant, so that nothing in this
// file runs before the CPU check.
struct nibble_table {
  alignas(64) unsigned char b[64];
};
constexpr nibble_table make_nibble_table() {
  nibble_table t{};
  for (int i = 0; i < 64; ++i) {
    const unsigned n = static_cast<unsigned>(i & 15);
    const unsigned o = n ^ (n >> 1) ^ (n >> 3);
    t.b[i] = static_cast<unsigned char>(o ^ (o << 1) ^ (o << 3) ^ (o << 4));
  }
  return t;
}
constexpr nibble_table nibble_reduction = make_nibble_table();
inline vec reduction_table() { return _mm512_load_si512(nibble_reduction.b); }

// (lo + z^64 hi) mod (z^64 + z^4 + z^3 + z + 1), XORed into acc.
inline vec reduce_xor(vec acc, vec lo, vec hi, vec tab) {
  const vec tt = _mm512_shuffle_epi8(tab, _mm512_srli_epi64(hi, 60));
  vec r = _mm512_ternarylogic_epi64(acc, lo, hi, 0x96);
  r = _mm512_ternarylogic_epi64(r, _mm512_slli_epi64(hi, 1), _mm512_slli_epi64(hi, 3), 0x96);
  return _mm512_ternarylogic_epi64(r, _mm512_slli_epi64(hi, 4), tt, 0x96);
}

// acc ^ b * l for l broadcast in every lane.
inline vec fma_const(vec acc, vec b, vec l, vec tab) {
  const vec pe = _mm512_clmulepi64_epi128(b, l, 0x00);
  const vec po = _mm512_clmulepi64_epi128(b, l, 0x01);
  return reduce_xor(acc, _mm512_unpacklo_epi64(pe, po), _mm512_unpackhi_epi64(pe, po), tab);
}

// acc ^ a * b lane by lane.
inline vec fma_vec(vec acc, vec a, vec b, vec tab) {
  const vec pe = _mm512_clmulepi64_epi128(a, b, 0x00);
  const vec po = _mm512_clmulepi64_epi128(a, b, 0x11);
  return reduce_xor(acc, _mm512_unpacklo_epi64(pe, po), _mm512_unpackhi_epi64(pe, po), tab);
}

inline vec ld(const u64* p) { return _mm512_loadu_si512(p); }
inline void st(u64* p, vec v) { _mm512_storeu_si512(p, v); }

#define CVQKD_BF(a, b, l)          \
  do {                             \
    a = fma_const(a, b, l, tab);   \
    b = _mm512_xor_si512(b, a);    \
  } while (0)
#define CVQKD_IBF(a, b, l)         \
  do {                             \
    b = _mm512_xor_si512(b, a);    \
    a = fma_const(a, b, l, tab);   \
  } while (0)

void fwd_pass1(u64* d, std::size_t s, int r, const u64* lam, vec tab) {
  if (r == 3) {
    const vec l0 = _mm512_set1_epi64(static_cast<long long>(lam[0]));
    const vec l1 = _mm512_set1_epi64(static_cast<long long>(lam[1]));
    const vec l2 = _mm512_set1_epi64(static_cast<long long>(lam[2]));
    const vec l3 = _mm512_set1_epi64(static_cast<long long>(lam[3]));
    const vec l4 = _mm512_set1_epi64(static_cast<long long>(lam[4]));
    const vec l5 = _mm512_set1_epi64(static_cast<long long>(lam[5]));
    const vec l6 = _mm512_set1_epi64(static_cast<long long>(lam[6]));
    for (std::size_t i = 0; i < s; i += 8) {
      u64* p = d + i;
      vec x0 = ld(p), x1 = ld(p + s), x2 = ld(p + 2 * s), x3 = ld(p + 3 * s);
      vec x4 = ld(p + 4 * s), x5 = ld(p + 5 * s), x6 = ld(p + 6 * s), x7 = ld(p + 7 * s);
      CVQKD_BF(x0, x4, l0); CVQKD_BF(x1, x5, l0); CVQKD_BF(x2, x6, l0); CVQKD_BF(x3, x7, l0);
      CVQKD_BF(x0, x2, l1); CVQKD_BF(x1, x3, l1); CVQKD_BF(x4, x6, l2); CVQKD_BF(x5, x7, l2);
      CVQKD_BF(x0, x1, l3); CVQKD_BF(x2, x3, l4); CVQKD_BF(x4, x5, l5); CVQKD_BF(x6, x7, l6);
      st(p, x0); st(p + s, x1); st(p + 2 * s, x2); st(p + 3 * s, x3);
      st(p + 4 * s, x4); st(p + 5 * s, x5); st(p + 6 * s, x6); st(p + 7 * s, x7);
    }
  } else if (r == 2) {
    const vec l0 = _mm512_set1_epi64(static_cast<long long>(lam[0]));
    const vec l1 = _mm512_set1_epi64(static_cast<long long>(lam[1]));
    const vec l2 = _mm512_set1_epi64(static_cast<long long>(lam[2]));
    for (std::size_t i = 0; i < s; i += 8) {
      u64* p = d + i;
      vec x0 = ld(p), x1 = ld(p + s), x2 = ld(p + 2 * s), x3 = ld(p + 3 * s);
      CVQKD_BF(x0, x2, l0); CVQKD_BF(x1, x3, l0);
      CVQKD_BF(x0, x1, l1); CVQKD_BF(x2, x3, l2);
      st(p, x0); st(p + s, x1); st(p + 2 * s, x2); st(p + 3 * s, x3);
    }
  } else {
    const vec l0 = _mm512_set1_epi64(static_cast<long long>(lam[0]));
    for (std::size_t i = 0; i < s; i += 8) {
      u64* p = d + i;
      vec x0 = ld(p), x1 = ld(p + s);
      CVQKD_BF(x0, x1, l0);
      st(p, x0); st(p + s, x1);
    }
  }
}

void inv_pass1(u64* d, std::size_t s, int r, const u64* lam, vec tab) {
  if (r == 3) {
    const vec l0 = _mm512_set1_epi64(static_cast<long long>(lam[0]));
    const vec l1 = _mm512_set1_epi64(static_cast<long long>(lam[1]));
    const vec l2 = _mm512_set1_epi64(static_cast<long long>(lam[2]));
    const vec l3 = _mm512_set1_epi64(static_cast<long long>(lam[3]));
    const vec l4 = _mm512_set1_epi64(static_cast<long long>(lam[4]));
    const vec l5 = _mm512_set1_epi64(static_cast<long long>(lam[5]));
    const vec l6 = _mm512_set1_epi64(static_cast<long long>(lam[6]));
    for (std::size_t i = 0; i < s; i += 8) {
      u64* p = d + i;
      vec x0 = ld(p), x1 = ld(p + s), x2 = ld(p + 2 * s), x3 = ld(p + 3 * s);
      vec x4 = ld(p + 4 * s), x5 = ld(p + 5 * s), x6 = ld(p + 6 * s), x7 = ld(p + 7 * s);
      CVQKD_IBF(x0, x1, l3); CVQKD_IBF(x2, x3, l4); CVQKD_IBF(x4, x5, l5); CVQKD_IBF(x6, x7, l6);
      CVQKD_IBF(x0, x2, l1); CVQKD_IBF(x1, x3, l1); CVQKD_IBF(x4, x6, l2); CVQKD_IBF(x5, x7, l2);
      CVQKD_IBF(x0, x4, l0); CVQKD_IBF(x1, x5, l0); CVQKD_IBF(x2, x6, l0); CVQKD_IBF(x3, x7, l0);
      st(p, x0); st(p + s, x1); st(p + 2 * s, x2); st(p + 3 * s, x3);
      st(p + 4 * s, x4); st(p + 5 * s, x5); st(p + 6 * s, x6); st(p + 7 * s, x7);
    }
  } else if (r == 2) {
    const vec l0 = _mm512_set1_epi64(static_cast<long long>(lam[0]));
    const vec l1 = _mm512_set1_epi64(static_cast<long long>(lam[1]));
    const vec l2 = _mm512_set1_epi64(static_cast<long long>(lam[2]));
    for (std::size_t i = 0; i < s; i += 8) {
      u64* p = d + i;
      vec x0 = ld(p), x1 = ld(p + s), x2 = ld(p + 2 * s), x3 = ld(p + 3 * s);
      CVQKD_IBF(x0, x1, l1); CVQKD_IBF(x2, x3, l2);
      CVQKD_IBF(x0, x2, l0); CVQKD_IBF(x1, x3, l0);
      st(p, x0); st(p + s, x1); st(p + 2 * s, x2); st(p + 3 * s, x3);
    }
  } else {
    const vec l0 = _mm512_set1_epi64(static_cast<long long>(lam[0]));
    for (std::size_t i = 0; i < s; i += 8) {
      u64* p = d + i;
      vec x0 = ld(p), x1 = ld(p + s);
      CVQKD_IBF(x0, x1, l0);
      st(p, x0); st(p + s, x1);
    }
  }
}

#undef CVQKD_BF
#undef CVQKD_IBF

void fwd_pass(u64* d, std::size_t blocks, std::size_t s, int r, const u64* lam) {
  const vec tab = reduction_table();
  for (std::size_t b = 0; b < blocks; ++b) fwd_pass1(d + (b * s << r), s, r, lam + 7 * b, tab);
}

void inv_pass(u64* d, std::size_t blocks, std::size_t s, int r, const u64* lam) {
  const vec tab = reduction_table();
  for (std::size_t b = 0; b < blocks; ++b) inv_pass1(d + (b * s << r), s, r, lam + 7 * b, tab);
}

// Lowest three layers on 16 elements at a time (two 8-blocks, global 16-group index j). The
// layouts (element indices within the 16):
//   layer 3: A = e0-3 e8-11,          B = e4-7 e12-15          twiddles w4  ^ P3
//   layer 2: A = e0,1 e8,9 e4,5 e12,13  B = e2,3 e10,11 e6,7 e14,15  twiddles w8  ^ P2
//   layer 1: A = e0 e2 e8 e10 e4 e6 e12 e14, B = the odd ones      twiddles w16 ^ P1
// with w4 = omega(4j), w8 = omega(8j), w16 = omega(16j) (see gf2_fft.cpp for the twiddle rule).
struct low_consts {
  vec p3, p2, p1, idx_out0, idx_out1, idx_a, idx_b;
};

inline low_consts make_low_consts(const field_tables& t) {
  const long long b1 = static_cast<long long>(t.beta[1]), b2 = static_cast<long long>(t.beta[2]),
                  b3 = static_cast<long long>(t.beta[3]);
  low_consts c;
  c.p3 = _mm512_setr_epi64(0, 0, 0, 0, b1, b1, b1, b1);
  c.p2 = _mm512_setr_epi64(0, 0, b2, b2, b1, b1, b1 ^ b2, b1 ^ b2);
  c.p1 = _mm512_setr_epi64(0, b1, b3, b3 ^ b1, b2, b2 ^ b1, b3 ^ b2, b3 ^ b2 ^ b1);
  c.idx_out0 = _mm512_setr_epi64(0, 1, 8, 9, 4, 5, 12, 13);
  c.idx_out1 = _mm512_setr_epi64(2, 3, 10, 11, 6, 7, 14, 15);
  c.idx_a = _mm512_setr_epi64(0, 1, 8, 9, 2, 3, 10, 11);
  c.idx_b = _mm512_setr_epi64(4, 5, 12, 13, 6, 7, 14, 15);
  return c;
}

struct omega_walk {
  // omega(j << s) for s = 2, 3, 4, advanced with the prefix tables when j increments.
  u64 w4, w8, w16;
  const field_tables* t;
  omega_walk(u64 j, const field_tables& tt) : w4(0), w8(0), w16(0), t(&tt) {
    for (int l = 0; l < 60 && (j >> l) != 0; ++l)
      if ((j >> l) & 1) {
        w4 ^= tt.beta[l + 2];
        w8 ^= tt.beta[l + 3];
        w16 ^= tt.beta[l + 4];
      }
  }
  void next(u64 j) {  // j -> j + 1
    const int f = __builtin_ctzll(j + 1);
    w4 ^= t->prefix[2][f];
    w8 ^= t->prefix[3][f];
    w16 ^= t->prefix[4][f];
  }
};

void fwd_low(u64* d, std::size_t n, u64 pos, const field_tables& t) {
  const vec tab = reduction_table();
  const low_consts c = make_low_consts(t);
  u64 j = pos / 16;
  omega_walk w(j, t);
  for (std::size_t o = 0; o < n; o += 16, ++j) {
    u64* p = d + o;
    const vec v0 = ld(p), v1 = ld(p + 8);
    vec a = _mm512_shuffle_i64x2(v0, v1, 0x44), b = _mm512_shuffle_i64x2(v0, v1, 0xEE);
    const vec l3 = _mm512_xor_si512(_mm512_set1_epi64(static_cast<long long>(w.w4)), c.p3);
    a = fma_vec(a, b, l3, tab);
    b = _mm512_xor_si512(b, a);
    vec a2 = _mm512_shuffle_i64x2(a, b, 0x88), b2 = _mm512_shuffle_i64x2(a, b, 0xDD);
    const vec l2 = _mm512_xor_si512(_mm512_set1_epi64(static_cast<long long>(w.w8)), c.p2);
    a2 = fma_vec(a2, b2, l2, tab);
    b2 = _mm512_xor_si512(b2, a2);
    vec a1 = _mm512_unpacklo_epi64(a2, b2), b1 = _mm512_unpackhi_epi64(a2, b2);
    const vec l1 = _mm512_xor_si512(_mm512_set1_epi64(static_cast<long long>(w.w16)), c.p1);
    a1 = fma_vec(a1, b1, l1, tab);
    b1 = _mm512_xor_si512(b1, a1);
    a2 = _mm512_unpacklo_epi64(a1, b1);
    b2 = _mm512_unpackhi_epi64(a1, b1);
    st(p, _mm512_permutex2var_epi64(a2, c.idx_out0, b2));
    st(p + 8, _mm512_permutex2var_epi64(a2, c.idx_out1, b2));
    w.next(j);
  }
}

void inv_low(u64* d, std::size_t n, u64 pos, const field_tables& t) {
  const vec tab = reduction_table();
  const low_consts c = make_low_consts(t);
  u64 j = pos / 16;
  omega_walk w(j, t);
  for (std::size_t o = 0; o < n; o += 16, ++j) {
    u64* p = d + o;
    const vec v0 = ld(p), v1 = ld(p + 8);
    vec a2 = _mm512_permutex2var_epi64(v0, c.idx_out0, v1), b2 = _mm512_permutex2var_epi64(v0, c.idx_out1, v1);
    vec a1 = _mm512_unpacklo_epi64(a2, b2), b1 = _mm512_unpackhi_epi64(a2, b2);
    const vec l1 = _mm512_xor_si512(_mm512_set1_epi64(static_cast<long long>(w.w16)), c.p1);
    b1 = _mm512_xor_si512(b1, a1);
    a1 = fma_vec(a1, b1, l1, tab);
    a2 = _mm512_unpacklo_epi64(a1, b1);
    b2 = _mm512_unpackhi_epi64(a1, b1);
    const vec l2 = _mm512_xor_si512(_mm512_set1_epi64(static_cast<long long>(w.w8)), c.p2);
    b2 = _mm512_xor_si512(b2, a2);
    a2 = fma_vec(a2, b2, l2, tab);
    vec a = _mm512_permutex2var_epi64(a2, c.idx_a, b2), b = _mm512_permutex2var_epi64(a2, c.idx_b, b2);
    const vec l3 = _mm512_xor_si512(_mm512_set1_epi64(static_cast<long long>(w.w4)), c.p3);
    b = _mm512_xor_si512(b, a);
    a = fma_vec(a, b, l3, tab);
    st(p, _mm512_shuffle_i64x2(a, b, 0x44));
    st(p + 8, _mm512_shuffle_i64x2(a, b, 0xEE));
    w.next(j);
  }
}

void mul(u64* c, const u64* a, const u64* b, std::size_t n, bool accumulate) {
  const vec tab = reduction_table();
  if (accumulate) {
    for (std::size_t i = 0; i < n; i += 8) st(c + i, fma_vec(ld(c + i), ld(a + i), ld(b + i), tab));
  } else {
    const vec z = _mm512_setzero_si512();
    for (std::size_t i = 0; i < n; i += 8) st(c + i, fma_vec(z, ld(a + i), ld(b + i), tab));
  }
}

// The conversion levels XOR each source range into several targets a few elements apart. The
// sources are taken in tiles (of at most h/2, so that a tile's sources are final before they are
// read: they only receive from sources at least h/2 higher) and each target distance is one sweep
// over the tile. (Measured: a gather formulation with aligned accesses only was not faster.)
constexpr std::size_t conv_tile = 4096;

void to_novel_level(u32* f, std::size_t blocks, std::size_t h, const std::size_t* e, int ne) {
  const std::size_t tile = h / 2 < conv_tile ? h / 2 : conv_tile;
  for (std::size_t blk = 0; blk < blocks; ++blk, f += 2 * h)
    for (std::size_t hi = 2 * h; hi > h; hi -= tile) {
      const std::size_t lo = hi - tile;
      for (int k = 0; k < ne; ++k) {
        u32* dst = f + e[k] - h;
        for (std::size_t i = lo; i < hi; i += 16)
          _mm512_storeu_si512(dst + i, _mm512_xor_si512(_mm512_loadu_si512(dst + i), _mm512_load_si512(f + i)));
      }
    }
}

// result lane k = v lane k + dist where that lane is one of the `src` lanes (bit mask within a
// block of `block` lanes) of the same block; 0 elsewhere. 16 lanes of 32 bits.
struct lane_shift {
  vec idx;
  __mmask16 mask;
};
inline lane_shift make_shift(int dist, unsigned src, int block) {
  alignas(64) u32 idx[16];
  unsigned mask = 0;
  for (int k = 0; k < 16; ++k) {
    const int s = k + dist;
    idx[k] = static_cast<u32>(s & 15);
    if (s < 16 && s / block == k / block && ((src >> (s % block)) & 1)) mask |= 1U << k;
  }
  return {_mm512_load_si512(idx), static_cast<__mmask16>(mask)};
}
inline vec apply(vec v, const lane_shift& s) { return _mm512_maskz_permutexvar_epi32(s.mask, s.idx, v); }

void to_novel_low(u32* f, std::size_t n) {
  // Levels 4..1 of blocks of 32 (see g_to_novel_low): s_4 = y^16 + y; s_3 = y^8 + y^4 + y^2 + y
  // (distances 7, 6, 4; sources 12-15 first, then 8-11); s_2 = y^4 + y (distance 3; sources 6-7,
  // then 4-5); s_1 = y^2 + y (distance 1; source 3, then 2).
  const lane_shift l3a[3] = {make_shift(7, 0xF000, 16), make_shift(6, 0xF000, 16), make_shift(4, 0xF000, 16)};
  const lane_shift l3b[3] = {make_shift(7, 0x0F00, 16), make_shift(6, 0x0F00, 16), make_shift(4, 0x0F00, 16)};
  const lane_shift l2a = make_shift(3, 0xC0, 8), l2b = make_shift(3, 0x30, 8);
  const lane_shift l1a = make_shift(1, 0x8, 4), l1b = make_shift(1, 0x4, 4);
  const vec top = _mm512_set1_epi32(15), z = _mm512_setzero_si512();
  auto lower = [&](vec v) {
    v = _mm512_ternarylogic_epi32(v, apply(v, l3a[0]), apply(v, l3a[1]), 0x96);
    v = _mm512_xor_si512(v, apply(v, l3a[2]));
    v = _mm512_ternarylogic_epi32(v, apply(v, l3b[0]), apply(v, l3b[1]), 0x96);
    v = _mm512_xor_si512(v, apply(v, l3b[2]));
    v = _mm512_xor_si512(v, apply(v, l2a));
    v = _mm512_xor_si512(v, apply(v, l2b));
    v = _mm512_xor_si512(v, apply(v, l1a));
    return _mm512_xor_si512(v, apply(v, l1b));
  };
  for (std::size_t o = 0; o < n; o += 32) {
    vec lo = _mm512_loadu_si512(f + o), hi = _mm512_loadu_si512(f + o + 16);
    hi = _mm512_xor_si512(hi, _mm512_maskz_permutexvar_epi32(0x1, top, hi));  // f[16] ^= f[31]
    lo = _mm512_xor_si512(lo, _mm512_alignr_epi32(hi, z, 15));               // f[1..15] ^= f[16..30]
    _mm512_storeu_si512(f + o, lower(lo));
    _mm512_storeu_si512(f + o + 16, lower(hi));
  }
}

void to_mono_level(u64* f, std::size_t blocks, std::size_t h, const std::size_t* e, int ne) {
  // Ascending tiles of at most h/2: targets inside the source half only hit consumed sources.
  const std::size_t tile = h / 2 < conv_tile / 2 ? h / 2 : conv_tile / 2;
  for (std::size_t blk = 0; blk < blocks; ++blk, f += 2 * h)
    for (std::size_t lo = 0; lo < h; lo += tile) {
      const u64* src = f + h;
      for (int k = 0; k < ne; ++k) {
        u64* dst = f + e[k];
        for (std::size_t i = lo; i < lo + tile; i += 8) st(dst + i, _mm512_xor_si512(ld(dst + i), _mm512_load_si512(src + i)));
      }
    }
}

void to_mono_low(u64* f, std::size_t n) {
  // Levels 1..3 of blocks of 16 (see g_to_mono_low); each level's reads all precede its writes.
  //  s_1: f[i+1] ^= f[2+i], i < 2 (per 4);  s_2: f[i+1] ^= f[4+i], i < 4 (per 8);
  //  s_3: f[i+e] ^= f[8+i], i < 8, e in {1, 2, 4}.
  const vec idx1 = _mm512_setr_epi64(0, 2, 3, 0, 0, 6, 7, 0);
  const __mmask8 m1 = 0x66;
  const vec idx2 = _mm512_setr_epi64(0, 4, 5, 6, 7, 0, 0, 0);
  const __mmask8 m2 = 0x1E;
  const vec z = _mm512_setzero_si512();
  for (std::size_t o = 0; o < n; o += 16) {
    vec lo = ld(f + o), hi = ld(f + o + 8);
    lo = _mm512_xor_si512(lo, _mm512_maskz_permutexvar_epi64(m1, idx1, lo));
    hi = _mm512_xor_si512(hi, _mm512_maskz_permutexvar_epi64(m1, idx1, hi));
    lo = _mm512_xor_si512(lo, _mm512_maskz_permutexvar_epi64(m2, idx2, lo));
    hi = _mm512_xor_si512(hi, _mm512_maskz_permutexvar_epi64(m2, idx2, hi));
    // lo[k] ^= hi[k-e] (k >= e); hi[k] ^= hi[k+8-e] (k < e); all from the old hi.
    const vec lo_new = _mm512_ternarylogic_epi64(lo, _mm512_alignr_epi64(hi, z, 7), _mm512_alignr_epi64(hi, z, 6), 0x96);
    const vec hi_new = _mm512_ternarylogic_epi64(hi, _mm512_alignr_epi64(z, hi, 7), _mm512_alignr_epi64(z, hi, 6), 0x96);
    st(f + o, _mm512_xor_si512(lo_new, _mm512_alignr_epi64(hi, z, 4)));
    st(f + o + 8, _mm512_xor_si512(hi_new, _mm512_alignr_epi64(z, hi, 4)));
  }
}

void widen(u64* buf, std::size_t n) {
  unsigned char* bytes = reinterpret_cast<unsigned char*>(buf);
  for (std::size_t i = n; i >= 8;) {
    i -= 8;
    const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(bytes + 4 * i));
    _mm512_storeu_si512(bytes + 8 * i, _mm512_cvtepu32_epi64(v));
  }
}

constexpr kernel_table avx512_table{"avx512-vpclmulqdq", fwd_pass,      inv_pass,    fwd_low,
                                    inv_low,             mul,           to_novel_level, to_novel_low,
                                    to_mono_level,       to_mono_low,   widen};

}  // namespace

namespace cvqkd::reconciliation::privacy::detail {
const kernel_table* avx512_kernels() { return &avx512_table; }
}  // namespace cvqkd::reconciliation::privacy::detail

#else

namespace cvqkd::reconciliation::privacy::detail {
const kernel_table* avx512_kernels() { return nullptr; }
}  // namespace cvqkd::reconciliation::privacy::detail

#endif
