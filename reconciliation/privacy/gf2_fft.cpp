#include "reconciliation/privacy/gf2_fft.hpp"

#include <algorithm>
#include <array>

namespace cvqkd::reconciliation::privacy::detail {
namespace {

using u32 = std::uint32_t;
using u64 = std::uint64_t;

// Depth-first recursion switches to level-by-level sweeps once a block fits this many bytes
// (well inside a 2 MiB L2 cache).
constexpr std::size_t cache_block_bytes = std::size_t{1} << 19;

// Solves y^2 + y = c in GF(2^64) (c must have trace 0). The map is GF(2)-linear with kernel
// {0, 1}; Gaussian elimination on its 64x64 matrix, free variable set to 0.
u64 solve_artin_schreier(u64 c) {
  std::array<u64, 64> rows{};  // rows[i] bit j: bit i of L(z^j); bit 64 of the system kept in rhs
  std::array<int, 64> rhs{};
  for (int j = 0; j < 64; ++j) {
    const u64 zj = u64{1} << j;
    const u64 col = gf_mul_slow(zj, zj) ^ zj;
    for (int i = 0; i < 64; ++i)
      if ((col >> i) & 1) rows[static_cast<std::size_t>(i)] |= zj;
  }
  for (int i = 0; i < 64; ++i) rhs[static_cast<std::size_t>(i)] = static_cast<int>((c >> i) & 1);
  std::array<int, 64> pivot_row_of_col;
  pivot_row_of_col.fill(-1);
  std::size_t r = 0;
  for (int col = 0; col < 64 && r < 64; ++col) {
    std::size_t p = r;
    while (p < 64 && !((rows[p] >> col) & 1)) ++p;
    if (p == 64) continue;
    std::swap(rows[p], rows[r]);
    std::swap(rhs[p], rhs[r]);
    for (std::size_t i = 0; i < 64; ++i)
      if (i != r && ((rows[i] >> col) & 1)) {
        rows[i] ^= rows[r];
        rhs[i] ^= rhs[r];
      }
    pivot_row_of_col[static_cast<std::size_t>(col)] = static_cast<int>(r);
    ++r;
  }
  u64 y = 0;
  for (int col = 0; col < 64; ++col) {
    const int pr = pivot_row_of_col[static_cast<std::size_t>(col)];
    if (pr >= 0 && rhs[static_cast<std::size_t>(pr)]) y |= u64{1} << col;
  }
  return y;
}

field_tables make_tables() {
  field_tables t{};
  t.beta[0] = 1;
  for (int i = 1; i < 64; ++i) t.beta[i] = solve_artin_schreier(t.beta[i - 1]);
  for (int s = 0; s < 8; ++s) {
    u64 acc = 0;
    for (int k = 0; k < 56; ++k) {
      acc ^= t.beta[s + k];
      t.prefix[s][k] = acc;
    }
  }
  return t;
}

// omega(v) by bytes: byte_omega[i][b] = omega(b << 8i).
struct omega_tables {
  u64 byte_omega[8][256];
};

const omega_tables& omega_table() {
  static const omega_tables o = [] {
    omega_tables r{};
    const field_tables& t = tables();
    for (int i = 0; i < 8; ++i)
      for (int b = 0; b < 256; ++b) {
        u64 w = 0;
        for (int l = 0; l < 8; ++l)
          if ((b >> l) & 1) w ^= t.beta[8 * i + l];
        r.byte_omega[i][b] = w;
      }
    return r;
  }();
  return o;
}

u64 omega(u64 v) {
  const omega_tables& o = omega_table();
  u64 r = 0;
  for (int i = 0; v != 0; ++i, v >>= 8) r ^= o.byte_omega[i][v & 255];
  return r;
}

// The terms of s_j(y) below y^(2^j): 2^t for every t < j with (j & t) == t (Lucas' theorem).
int level_terms(int j, std::size_t* out) {
  int n = 0;
  for (int t = 0; t < j; ++t)
    if ((j & t) == t) out[n++] = std::size_t{1} << t;
  return n;
}

void novel_block(const kernel_table& kt, u32* f, int k) {
  // All levels of one cache-resident block, level by level (top-down).
  std::size_t d[32];
  for (int j = k - 1; j >= 5; --j) {
    const int nd = level_terms(j, d);
    kt.to_novel_level(f, std::size_t{1} << (k - 1 - j), std::size_t{1} << j, d, nd);
  }
  kt.to_novel_low(f, std::size_t{1} << k);
}

// `len`: only f[0, len) may be non-zero. Blocks that are all zero stay zero and are skipped, and
// so is a division whose dividend has no high half: the inputs of a product fill half the
// transform or less.
void novel_rec(const kernel_table& kt, u32* f, int k, std::size_t len) {
  if (len == 0) return;
  if ((std::size_t{4} << k) <= cache_block_bytes || k <= 5) {
    novel_block(kt, f, k);
    return;
  }
  const std::size_t h = std::size_t{1} << (k - 1);
  if (len > h) {
    std::size_t d[32];
    const int nd = level_terms(k - 1, d);
    kt.to_novel_level(f, 1, h, d, nd);
  }
  // The division writes below the sources only (targets x < len - h/2), so the quotient keeps
  // its extent; the remainder may fill its half.
  novel_rec(kt, f, k - 1, std::min(len, h));
  novel_rec(kt, f + h, k - 1, len > h ? len - h : 0);
}

void mono_block(const kernel_table& kt, u64* f, int k) {
  std::size_t e[32];
  kt.to_mono_low(f, std::size_t{1} << k);
  for (int j = 4; j < k; ++j) {
    const int ne = level_terms(j, e);
    kt.to_mono_level(f, std::size_t{1} << (k - 1 - j), std::size_t{1} << j, e, ne);
  }
}

void mono_rec(const kernel_table& kt, u64* f, int k) {
  if ((std::size_t{8} << k) <= cache_block_bytes || k <= 4) {
    mono_block(kt, f, k);
    return;
  }
  mono_rec(kt, f, k - 1);
  mono_rec(kt, f + (std::size_t{1} << (k - 1)), k - 1);
  std::size_t e[32];
  const int ne = level_terms(k - 1, e);
  kt.to_mono_level(f, 1, std::size_t{1} << (k - 1), e, ne);
}

// Twiddles of r layers starting at layer k of the block at global position u: layer k - L has
// sub-blocks u + b 2^(k-L) (b < 2^L) with twiddle omega((u + b 2^(k-L)) >> (k-L-1)).
void pass_twiddles(u64* lam, int k, int r, u64 u) {
  for (int layer = 0; layer < r; ++layer) {
    const std::size_t nb = std::size_t{1} << layer;
    for (std::size_t b = 0; b < nb; ++b) {
      const u64 pos = u + (static_cast<u64>(b) << (k - layer));
      lam[nb - 1 + b] = omega(pos >> (k - layer - 1));
    }
  }
}

// Transforms run depth-first (one radix-8 pass over a block, then its eight sub-blocks) down to
// blocks of 2^fft_block_log elements (L1-resident), which are then done pass by pass.
constexpr int fft_block_log = 12;
constexpr std::size_t max_pass_blocks = std::size_t{1} << (fft_block_log - 4);

// Layer groups of a block of 2^k (k >= 4) above the three lowest layers: sizes from the top,
// the first one taking the remainder so that the others are radix 8.
int group_sizes(int k, int* sizes) {
  const int layers = k - 3;
  int n = 0;
  if (layers % 3 != 0) sizes[n++] = layers % 3;
  for (int i = 0; i < layers / 3; ++i) sizes[n++] = 3;
  return n;
}

void fwd_block(const kernel_table& kt, u64* d, int k, u64 pos) {
  int sizes[16];
  const int ng = group_sizes(k, sizes);
  u64 lam[7 * max_pass_blocks];
  int top = k;
  for (int g = 0; g < ng; ++g) {
    const int r = sizes[g];
    const std::size_t nb = std::size_t{1} << (k - top);
    for (std::size_t b = 0; b < nb; ++b) pass_twiddles(lam + 7 * b, top, r, pos + (static_cast<u64>(b) << top));
    kt.fwd_pass(d, nb, std::size_t{1} << (top - r), r, lam);
    top -= r;
  }
  kt.fwd_low(d, std::size_t{1} << k, pos, tables());
}

void inv_block(const kernel_table& kt, u64* d, int k, u64 pos) {
  int sizes[16];
  const int ng = group_sizes(k, sizes);
  u64 lam[7 * max_pass_blocks];
  kt.inv_low(d, std::size_t{1} << k, pos, tables());
  int top = 3;
  for (int g = ng - 1; g >= 0; --g) {
    const int r = sizes[g];
    top += r;
    const std::size_t nb = std::size_t{1} << (k - top);
    for (std::size_t b = 0; b < nb; ++b) pass_twiddles(lam + 7 * b, top, r, pos + (static_cast<u64>(b) << top));
    kt.inv_pass(d, nb, std::size_t{1} << (top - r), r, lam);
  }
}

void fwd_rec(const kernel_table& kt, u64* d, int k, u64 pos) {
  if (k <= fft_block_log) {
    fwd_block(kt, d, k, pos);
    return;
  }
  const int r = std::min(3, k - fft_block_log);
  u64 lam[7];
  pass_twiddles(lam, k, r, pos);
  const std::size_t sub = std::size_t{1} << (k - r);
  kt.fwd_pass(d, 1, sub, r, lam);
  for (std::size_t t = 0; t < (std::size_t{1} << r); ++t) fwd_rec(kt, d + t * sub, k - r, pos + t * sub);
}

void inv_rec(const kernel_table& kt, u64* d, int k, u64 pos) {
  if (k <= fft_block_log) {
    inv_block(kt, d, k, pos);
    return;
  }
  const int r = std::min(3, k - fft_block_log);
  const std::size_t sub = std::size_t{1} << (k - r);
  for (std::size_t t = 0; t < (std::size_t{1} << r); ++t) inv_rec(kt, d + t * sub, k - r, pos + t * sub);
  u64 lam[7];
  pass_twiddles(lam, k, r, pos);
  kt.inv_pass(d, 1, sub, r, lam);
}

}  // namespace

u64 gf_mul_slow(u64 a, u64 b) {
  u64 lo = 0, hi = 0;
  for (int i = 0; i < 64; ++i)
    if ((b >> i) & 1) {
      lo ^= a << i;
      if (i != 0) hi ^= a >> (64 - i);
    }
  const u64 o = (hi >> 60) ^ (hi >> 61) ^ (hi >> 63);
  return lo ^ hi ^ (hi << 1) ^ (hi << 3) ^ (hi << 4) ^ o ^ (o << 1) ^ (o << 3) ^ (o << 4);
}

const field_tables& tables() {
  static const field_tables t = make_tables();
  return t;
}

const kernel_table* kernels_by_name(std::string_view name) {
  if (name == "portable") return &portable_kernels();
#if defined(__x86_64__)
  __builtin_cpu_init();
  if (name == "pclmulqdq")
    return __builtin_cpu_supports("pclmul") && __builtin_cpu_supports("sse4.1") ? pclmul_kernels() : nullptr;
  if (name == "avx512-vpclmulqdq")
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                   __builtin_cpu_supports("vpclmulqdq") && __builtin_cpu_supports("pclmul")
               ? avx512_kernels()
               : nullptr;
#endif
  return nullptr;
}

const kernel_table& best_kernels() {
  static const kernel_table* const best = [] {
    for (const char* n : {"avx512-vpclmulqdq", "pclmulqdq"})
      if (const kernel_table* k = kernels_by_name(n)) return k;
    return &portable_kernels();
  }();
  return *best;
}

void to_novel(const kernel_table& kt, u32* f, int k, std::size_t len) { novel_rec(kt, f, k, len); }
void to_mono(const kernel_table& kt, u64* f, int k) { mono_rec(kt, f, k); }
void fft_forward(const kernel_table& kt, u64* d, int k) { fwd_rec(kt, d, k, 0); }
void fft_inverse(const kernel_table& kt, u64* d, int k) { inv_rec(kt, d, k, 0); }

}  // namespace cvqkd::reconciliation::privacy::detail
