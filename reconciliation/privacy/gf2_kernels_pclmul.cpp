// Internal: the PCLMULQDQ tier of the additive-FFT kernels (x86-64 with SSE4.1 + PCLMULQDQ). This
// translation unit is compiled with -mpclmul -msse4.1 (reconciliation/CMakeLists.txt); it is only
// called after a run-time CPU check.
#include <cstring>

#include "reconciliation/privacy/gf2_kernels.hpp"

#if defined(__x86_64__) && defined(__PCLMUL__) && defined(__SSE4_1__)
#include <wmmintrin.h>
#include <smmintrin.h>

namespace {

struct gf_mul {
  static std::uint64_t mul(std::uint64_t a, std::uint64_t b) {
    const __m128i p = _mm_clmulepi64_si128(_mm_cvtsi64_si128(static_cast<long long>(a)),
                                           _mm_cvtsi64_si128(static_cast<long long>(b)), 0x00);
    return cvqkd::reconciliation::privacy::detail::gf_reduce(static_cast<std::uint64_t>(_mm_cvtsi128_si64(p)),
                     static_cast<std::uint64_t>(_mm_extract_epi64(p, 1)));
  }
};

#include "reconciliation/privacy/gf2_kernels_generic.inc"

constexpr kernel_table pclmul_table = make_generic_table("pclmulqdq");

}  // namespace

namespace cvqkd::reconciliation::privacy::detail {
const kernel_table* pclmul_kernels() { return &pclmul_table; }
}  // namespace cvqkd::reconciliation::privacy::detail

#else

namespace cvqkd::reconciliation::privacy::detail {
const kernel_table* pclmul_kernels() { return nullptr; }
}  // namespace cvqkd::reconciliation::privacy::detail

#endif
