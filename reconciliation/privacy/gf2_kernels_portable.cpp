// Internal: the portable tier of the additive-FFT kernels (no special instructions). Correct on
// every CPU but slow: carry-less multiplication is done bit by bit.
#include <cstring>

#include "reconciliation/privacy/gf2_kernels.hpp"

namespace {

struct gf_mul {
  static std::uint64_t mul(std::uint64_t a, std::uint64_t b) {
    // 4-bit windowed carry-less product: table of a * w for w < 16 (each at most 67 bits).
    std::uint64_t tl[16], th[16];
    tl[0] = th[0] = 0;
    for (int w = 1; w < 16; ++w) {
      std::uint64_t lo = 0, hi = 0;
      for (int k = 0; k < 4; ++k)
        if (w & (1 << k)) {
          lo ^= a << k;
          hi ^= k == 0 ? 0 : a >> (64 - k);
        }
      tl[w] = lo;
      th[w] = hi;
    }
    std::uint64_t lo = 0, hi = 0;
    for (int s = 60; s >= 0; s -= 4) {
      hi = (hi << 4) | (lo >> 60);
      lo <<= 4;
      const unsigned w = static_cast<unsigned>((b >> s) & 15);
      lo ^= tl[w];
      hi ^= th[w];
    }
    return cvqkd::reconciliation::privacy::detail::gf_reduce(lo, hi);
  }
};

#include "reconciliation/privacy/gf2_kernels_generic.inc"

constexpr kernel_table portable_table = make_generic_table("portable");

}  // namespace

namespace cvqkd::reconciliation::privacy::detail {
const kernel_table& portable_kernels() { return portable_table; }
}  // namespace cvqkd::reconciliation::privacy::detail
