// Highway's foreach_target compiles this file once per instruction set (HWY_TARGET_INCLUDE); the
// HWY_ONCE part at the end defines the public functions, which call the best compiled version the CPU
// supports (HWY_DYNAMIC_DISPATCH, chosen on the first call).
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "reconciliation/ldpc/check_kernels.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep

#include <hwy/contrib/math/math-inl.h>
#include <hwy/highway.h>

#include "reconciliation/ldpc/check_kernels.hpp"

HWY_BEFORE_NAMESPACE();
namespace cvqkd::reconciliation::ldpc::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// Largest |tanh product| kept: 1 - 2^-23, so that 2 atanh stays finite (<= ~16.6).
constexpr float max_product = 0.99999988f;

void CheckSumProduct(const float* HWY_RESTRICT t, float* HWY_RESTRICT o, const float* HWY_RESTRICT sg, unsigned k,
                     unsigned n) {
  const hn::ScalableTag<float> d;
  const std::size_t lanes = hn::Lanes(d);
  const std::size_t end = (n + lanes - 1) / lanes * lanes;  // whole vectors: check_tile is a multiple
  HWY_ALIGN float th[max_check_degree * check_tile];
  HWY_ALIGN float acc[check_tile];
  const auto half = hn::Set(d, 0.5f);
  const auto one = hn::Set(d, 1.0f);
  const auto two = hn::Set(d, 2.0f);
  const auto hi = hn::Set(d, max_product);
  const auto lo = hn::Set(d, -max_product);
  for (unsigned j = 0; j < k; ++j)
    for (std::size_t i = 0; i < end; i += lanes)
      hn::Store(hn::Tanh(d, hn::Mul(hn::LoadU(d, t + j * check_tile + i), half)), d, th + j * check_tile + i);
  // forward: o_j = sg * prod_{i < j} tanh(t_i / 2)
  for (std::size_t i = 0; i < end; i += lanes) hn::Store(hn::LoadU(d, sg + i), d, acc + i);
  for (unsigned j = 0; j < k; ++j)
    for (std::size_t i = 0; i < end; i += lanes) {
      const auto a = hn::Load(d, acc + i);
      hn::StoreU(a, d, o + j * check_tile + i);
      hn::Store(hn::Mul(a, hn::Load(d, th + j * check_tile + i)), d, acc + i);
    }
  // backward: times prod_{i > j}, then 2 atanh
  for (std::size_t i = 0; i < end; i += lanes) hn::Store(one, d, acc + i);
  for (unsigned j = k; j-- > 0;)
    for (std::size_t i = 0; i < end; i += lanes) {
      float* oj = o + j * check_tile + i;
      const auto a = hn::Load(d, acc + i);
      const auto p = hn::Min(hn::Max(hn::Mul(hn::LoadU(d, oj), a), lo), hi);
      hn::Store(hn::Mul(a, hn::Load(d, th + j * check_tile + i)), d, acc + i);
      hn::StoreU(hn::Mul(two, hn::Atanh(d, p)), d, oj);
    }
}

void CheckMinSum(const float* HWY_RESTRICT t, float* HWY_RESTRICT o, const float* HWY_RESTRICT sg, unsigned k,
                 unsigned n, float scale, float offset) {
  const hn::ScalableTag<float> d;
  const std::size_t lanes = hn::Lanes(d);
  const std::size_t end = (n + lanes - 1) / lanes * lanes;
  const auto sign_bit = hn::SignBit(d);
  const auto vscale = hn::Set(d, scale);
  const auto voffset = hn::Set(d, offset);
  const auto zero = hn::Zero(d);
  for (std::size_t i = 0; i < end; i += lanes) {
    // min1 <= min2: the two smallest |t_j|; at: the edge index of min1 (as float, exact for j < 2^24);
    // sgn: sg times the sign of every t_j.
    auto min1 = hn::Set(d, 1e30f), min2 = min1, at = zero;
    auto sgn = hn::LoadU(d, sg + i);
    for (unsigned j = 0; j < k; ++j) {
      const auto tj = hn::LoadU(d, t + j * check_tile + i);
      const auto a = hn::Abs(tj);
      const auto lower = hn::Lt(a, min1);
      min2 = hn::IfThenElse(lower, min1, hn::Min(min2, a));
      min1 = hn::IfThenElse(lower, a, min1);
      at = hn::IfThenElse(lower, hn::Set(d, static_cast<float>(j)), at);
      sgn = hn::Xor(sgn, hn::And(tj, sign_bit));
    }
    const auto mag1 = hn::Max(hn::Sub(hn::Mul(min1, vscale), voffset), zero);
    const auto mag2 = hn::Max(hn::Sub(hn::Mul(min2, vscale), voffset), zero);
    for (unsigned j = 0; j < k; ++j) {
      const auto tj = hn::LoadU(d, t + j * check_tile + i);
      const auto mag = hn::IfThenElse(hn::Eq(at, hn::Set(d, static_cast<float>(j))), mag2, mag1);
      // sign of the product over the other edges: sgn with t_j's own sign taken out again
      hn::StoreU(hn::Mul(hn::Xor(sgn, hn::And(tj, sign_bit)), mag), d, o + j * check_tile + i);
    }
  }
}

const char* KernelTarget() { return hwy::TargetName(HWY_TARGET); }

}  // namespace cvqkd::reconciliation::ldpc::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace cvqkd::reconciliation::ldpc {

HWY_EXPORT(CheckSumProduct);
HWY_EXPORT(CheckMinSum);
HWY_EXPORT(KernelTarget);

void check_sum_product(const float* t, float* o, const float* sg, unsigned k, unsigned n) {
  HWY_DYNAMIC_DISPATCH(CheckSumProduct)(t, o, sg, k, n);
}

void check_min_sum(const float* t, float* o, const float* sg, unsigned k, unsigned n, float scale, float offset) {
  HWY_DYNAMIC_DISPATCH(CheckMinSum)(t, o, sg, k, n, scale, offset);
}

const char* check_kernel_target() { return HWY_DYNAMIC_DISPATCH(KernelTarget)(); }

}  // namespace cvqkd::reconciliation::ldpc
#endif
