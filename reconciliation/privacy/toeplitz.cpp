#include "reconciliation/privacy/toeplitz.hpp"

#include <openssl/crypto.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <new>
#include <string>
#include <utility>

#include "reconciliation/privacy/gf2_fft.hpp"

namespace cvqkd::reconciliation::privacy {
namespace {

using u32 = std::uint32_t;
using u64 = std::uint64_t;

// Bits [pos, pos + cnt) of a packed vector of `nbits` bits (cnt <= 64; bits past nbits read 0).
u64 get_bits(const u64* w, std::size_t nbits, std::size_t pos, unsigned cnt) {
  if (cnt == 0 || pos >= nbits) return 0;
  const std::size_t nw = (nbits + 63) / 64;
  const std::size_t i = pos / 64;
  const unsigned s = static_cast<unsigned>(pos % 64);
  u64 v = w[i] >> s;
  if (s != 0 && i + 1 < nw) v |= w[i + 1] << (64 - s);
  if (cnt < 64) v &= (u64{1} << cnt) - 1;
  return v;
}

// ORs bits [src_pos, src_pos + len) of src into the zero-initialised words dst at bit dst_pos.
// dst is raw bytes (the transform buffers), written with memcpy.
void or_bits(std::byte* dst, std::size_t dst_pos, const u64* src, std::size_t src_bits, std::size_t src_pos,
             std::size_t len) {
  while (len > 0) {
    const std::size_t wi = dst_pos / 64;
    const unsigned off = static_cast<unsigned>(dst_pos % 64);
    const unsigned cnt = static_cast<unsigned>(std::min<std::size_t>(64 - off, len));
    u64 cur;
    std::memcpy(&cur, dst + 8 * wi, 8);
    cur |= get_bits(src, src_bits, src_pos, cnt) << off;
    std::memcpy(dst + 8 * wi, &cur, 8);
    dst_pos += cnt;
    src_pos += cnt;
    len -= cnt;
  }
}

int ceil_log2(std::size_t v) { return v <= 1 ? 0 : std::bit_width(v - 1); }

// How the middle product is cut: p pieces of x of h bits (the last one H bits, H >= h), each
// multiplied by an (n_out + H - 1)-bit window of U; all products aligned so that the output is
// bits [H - 1, H - 1 + n_out) of their sum. Transforms of 2^k coefficients of 32 bits.
struct fft_plan {
  std::size_t pieces = 1, h = 0, big_h = 0;
  int k = 0;
};

fft_plan choose_plan(std::size_t n, std::size_t m) {
  fft_plan best;
  double best_cost = 0;
  for (std::size_t p = 1; p <= 16; ++p) {
    fft_plan c;
    c.pieces = p;
    if (p == 1) {
      c.h = c.big_h = n;
    } else {
      c.h = (n / p) / 64 * 64;
      if (c.h == 0) break;
      c.big_h = n - (p - 1) * c.h;
    }
    const std::size_t a = (m + c.big_h - 1 + 31) / 32, b = (c.big_h + 31) / 32;
    c.k = std::max(detail::min_log_size, ceil_log2(a + b - 1));
    // Per transform: k butterfly layers plus about as much again for conversions and packing.
    const double cost = static_cast<double>(2 * p + 1) * std::ldexp(1.0, c.k) * (c.k + 8);
    if (p == 1 || cost < best_cost) {
      best = c;
      best_cost = cost;
    }
  }
  return best;
}

constexpr std::size_t naive_limit = std::size_t{1} << 24;  // n_in * n_out

}  // namespace

expected<void> validate_toeplitz_shape(std::size_t n_in, std::size_t n_out, std::size_t seed_bits) {
  if (n_out == 0)
    return fail(errc::invalid_argument, "Toeplitz hash: n_out is 0; ask for at least one output bit");
  if (n_in < n_out)
    return fail(errc::invalid_argument, "Toeplitz hash: n_in = " + std::to_string(n_in) + " < n_out = " +
                                            std::to_string(n_out) + "; the output cannot be longer than the input");
  if (seed_bits != n_in + n_out - 1)
    return fail(errc::invalid_argument, "Toeplitz hash: seed has " + std::to_string(seed_bits) +
                                            " bits, expected n_in + n_out - 1 = " + std::to_string(n_in + n_out - 1));
  return {};
}

expected<bit_vector> toeplitz_naive(const bit_vector& x, const bit_vector& seed, std::size_t n_out) {
  const std::size_t n = x.size(), m = n_out;
  if (auto v = validate_toeplitz_shape(n, m, seed.size()); !v) return std::unexpected(v.error());
  // Row i of T is r[m-1-i .. m-1-i+n) with r[k] = s[m-1-k] (k < m), s[n+2m-2-k] (k >= m).
  const std::size_t len = n + m - 1;
  bit_vector r(len);
  for (std::size_t k = 0; k < len; ++k) r.set(k, seed.get(k < m ? m - 1 - k : n + 2 * m - 2 - k));
  bit_vector out(m);
  const u64* xw = x.words().data();
  const u64* rw = r.words().data();
  const std::size_t nw = x.word_count();
  for (std::size_t i = 0; i < m; ++i) {
    const std::size_t o = m - 1 - i;
    u64 acc = 0;
    for (std::size_t w = 0; w < nw; ++w) acc ^= xw[w] & get_bits(rw, len, o + 64 * w, 64);
    if (std::popcount(acc) & 1) out.set(i, true);
  }
  return out;
}

std::string_view to_string(toeplitz_method m) noexcept {
  switch (m) {
    case toeplitz_method::automatic: return "auto";
    case toeplitz_method::naive: return "naive";
    case toeplitz_method::additive_fft: return "additive-fft";
  }
  return "?";
}

expected<toeplitz_method> parse_toeplitz_method(std::string_view name) {
  for (auto m : {toeplitz_method::automatic, toeplitz_method::naive, toeplitz_method::additive_fft})
    if (name == to_string(m)) return m;
  return fail(errc::invalid_argument,
              "unknown privacy-amplification method '" + std::string(name) + "'; use auto, naive or additive-fft");
}

struct toeplitz_hasher::impl {
  const detail::kernel_table* kt = nullptr;
  options opt;
  toeplitz_method last = toeplitz_method::automatic;
  secure_buffer buf_a, buf_b, buf_acc;  // 2^k 64-bit coefficients each

  // Buffers are over-allocated by 64 bytes so that the transforms can start on a 64-byte
  // boundary (the AVX-512 kernels use aligned loads).
  static std::byte* ensure(secure_buffer& b, std::size_t bytes) {
    if (b.size() < bytes + 64) {
      b.reset();
      b = secure_buffer(bytes + 64);
    }
    const auto addr = reinterpret_cast<std::uintptr_t>(b.data());
    return b.data() + ((64 - addr % 64) % 64);
  }

  bit_vector fft_hash(const bit_vector& x, const bit_vector& seed, std::size_t m);
};

toeplitz_hasher::toeplitz_hasher(std::unique_ptr<impl> p) : impl_(std::move(p)) {}
toeplitz_hasher::toeplitz_hasher(toeplitz_hasher&&) noexcept = default;
toeplitz_hasher& toeplitz_hasher::operator=(toeplitz_hasher&&) noexcept = default;
toeplitz_hasher::~toeplitz_hasher() = default;

expected<toeplitz_hasher> toeplitz_hasher::create(const options& opt) {
  auto p = std::make_unique<impl>();
  p->opt = opt;
  if (opt.kernel.empty()) {
    p->kt = &detail::best_kernels();
  } else {
    p->kt = detail::kernels_by_name(opt.kernel);
    if (p->kt == nullptr)
      return fail(errc::unsupported, "Toeplitz kernel '" + opt.kernel +
                                         "' is not available on this CPU or build; use portable, pclmulqdq or "
                                         "avx512-vpclmulqdq (or leave it empty for the fastest available)");
  }
  return toeplitz_hasher(std::move(p));
}

std::string_view toeplitz_hasher::kernel_name() const noexcept { return impl_->kt->name; }
std::size_t toeplitz_hasher::workspace_bytes() const noexcept {
  return impl_->buf_a.size() + impl_->buf_b.size() + impl_->buf_acc.size();
}
toeplitz_method toeplitz_hasher::last_method() const noexcept { return impl_->last; }

expected<bit_vector> toeplitz_hasher::hash(const bit_vector& x, const bit_vector& seed, std::size_t n_out) {
  if (auto v = validate_toeplitz_shape(x.size(), n_out, seed.size()); !v) return std::unexpected(v.error());
  toeplitz_method m = impl_->opt.method;
  if (m == toeplitz_method::automatic) {
    const bool tiny = x.size() <= naive_limit / n_out;
    m = tiny ? toeplitz_method::naive : toeplitz_method::additive_fft;
  }
  impl_->last = m;
  if (m == toeplitz_method::naive) return toeplitz_naive(x, seed, n_out);
  const int k = choose_plan(x.size(), n_out).k;
  if (k > 40)
    return fail(errc::invalid_argument, "Toeplitz hash: n_in = " + std::to_string(x.size()) +
                                            " is beyond the supported size (transform over 2^40); split the block");
  try {
    return impl_->fft_hash(x, seed, n_out);
  } catch (const std::bad_alloc&) {
    return fail(errc::unsupported, "Toeplitz hash: cannot allocate the " + std::to_string(3 * (std::size_t{8} << k)) +
                                       "-byte workspace for n_in = " + std::to_string(x.size()) +
                                       "; free memory or use smaller blocks");
  }
}

bit_vector toeplitz_hasher::impl::fft_hash(const bit_vector& x, const bit_vector& seed, std::size_t m) {
  const std::size_t n = x.size();
  const fft_plan plan = choose_plan(n, m);
  const std::size_t len = std::size_t{1} << plan.k;
  const std::size_t bytes = len * 8;
  std::byte* const pa = ensure(buf_a, bytes);
  std::byte* const pb = ensure(buf_b, bytes);
  std::byte* const pacc = plan.pieces > 1 ? ensure(buf_acc, bytes) : pa;
  const std::size_t lw = m + plan.big_h - 1;  // window of U per piece
  const u64* sw = seed.words().data();
  const u64* xw = x.words().data();
  const std::size_t sbits = seed.size();

  // The buffers are raw bytes; the kernels see them as arrays of 32- or 64-bit coefficients.
  auto* a32 = reinterpret_cast<u32*>(pa);
  auto* a64 = reinterpret_cast<u64*>(pa);
  auto* b32 = reinterpret_cast<u32*>(pb);
  auto* b64 = reinterpret_cast<u64*>(pb);
  auto* acc = reinterpret_cast<u64*>(pacc);

  for (std::size_t q = 0; q < plan.pieces; ++q) {
    const std::size_t hq = q + 1 == plan.pieces ? plan.big_h : plan.h;
    const std::size_t c = n - q * plan.h - plan.big_h;  // window start in U
    // A: U[c, c + lw) as 32-bit chunks; U = s[m .. m+n-1) followed by s[0 .. m).
    std::memset(pa, 0, bytes / 2);
    if (c < n - 1) {
      const std::size_t l1 = std::min(lw, n - 1 - c);
      or_bits(pa, 0, sw, sbits, m + c, l1);
      if (l1 < lw) or_bits(pa, l1, sw, sbits, 0, lw - l1);
    } else {
      or_bits(pa, 0, sw, sbits, c - (n - 1), lw);
    }
    // B: x[q h, q h + hq), word aligned (h is a multiple of 64).
    std::memset(pb, 0, bytes / 2);
    {
      const std::size_t w0 = q * plan.h / 64, nwq = (hq + 63) / 64;
      std::memcpy(pb, xw + w0, nwq * 8);
      if (hq % 64 != 0) {
        u64 last;
        std::memcpy(&last, pb + 8 * (nwq - 1), 8);
        last &= (u64{1} << (hq % 64)) - 1;
        std::memcpy(pb + 8 * (nwq - 1), &last, 8);
      }
    }
    detail::to_novel(*kt, a32, plan.k, (lw + 31) / 32);
    kt->widen(a64, len);
    detail::fft_forward(*kt, a64, plan.k);
    detail::to_novel(*kt, b32, plan.k, (hq + 31) / 32);
    kt->widen(b64, len);
    detail::fft_forward(*kt, b64, plan.k);
    kt->mul(acc, a64, b64, len, q > 0);
  }
  detail::fft_inverse(*kt, acc, plan.k);
  detail::to_mono(*kt, acc, plan.k);

  // acc[j] holds bits [32 j, 32 j + 63) of the product P; out = P[H - 1, H - 1 + m).
  auto coef = [&](std::size_t j) -> u64 { return j < len ? acc[j] : 0; };
  auto p64 = [&](std::size_t j) -> u64 {
    return coef(2 * j) ^ (coef(2 * j + 1) << 32) ^ (j > 0 ? coef(2 * j - 1) >> 32 : 0);
  };
  bit_vector out(m);
  u64* ow = out.words().data();
  const std::size_t start = plan.big_h - 1, j0 = start / 64;
  const unsigned s = static_cast<unsigned>(start % 64);
  u64 cur = p64(j0);
  for (std::size_t w = 0; w < out.word_count(); ++w) {
    const u64 next = p64(j0 + w + 1);
    ow[w] = s == 0 ? cur : (cur >> s) | (next << (64 - s));
    cur = next;
  }
  out.clear_padding();
  if (opt.wipe) {
    OPENSSL_cleanse(pb, bytes);
    OPENSSL_cleanse(pacc, bytes);
  }
  return out;
}

}  // namespace cvqkd::reconciliation::privacy
