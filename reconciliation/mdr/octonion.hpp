#pragma once
// Real Cayley-Dickson algebras of dimension d in {1, 2, 4, 8}: reals, complex numbers, quaternions,
// octonions. Multidimensional reconciliation (Leverrier et al., PRA 77, 042325 (2008), sec. III)
// uses them because they are normed division algebras: |p q| = |p| |q|, so multiplying by a unit
// element is a rotation of R^d.

#include <array>
#include <cmath>
#include <cstddef>

namespace cvqkd::reconciliation::mdr {

/// An element of the d-dimensional Cayley-Dickson algebra, coefficients in the basis (1, e1, ..., e_{d-1}).
template <std::size_t D>
using hypercomplex = std::array<double, D>;

/// Conjugate: (a, b)* = (a*, -b), i.e. the real part is kept and every imaginary part negated.
template <std::size_t D>
constexpr hypercomplex<D> conj(const hypercomplex<D>& p) noexcept {
  hypercomplex<D> r{};
  r[0] = p[0];
  for (std::size_t i = 1; i < D; ++i) r[i] = -p[i];
  return r;
}

/// Product by the Cayley-Dickson recursion (cvqkd-theory.md, MDR step 3):
/// p = (a, b), q = (c, d):  p q = (a c - d* b, d a + b c*).
template <std::size_t D>
constexpr hypercomplex<D> multiply(const hypercomplex<D>& p, const hypercomplex<D>& q) noexcept {
  static_assert(D == 1 || D == 2 || D == 4 || D == 8, "Cayley-Dickson dimension must be 1, 2, 4 or 8");
  if constexpr (D == 1) {
    return {p[0] * q[0]};
  } else {
    constexpr std::size_t H = D / 2;
    hypercomplex<H> a{}, b{}, c{}, d{};
    for (std::size_t i = 0; i < H; ++i) {
      a[i] = p[i];
      b[i] = p[H + i];
      c[i] = q[i];
      d[i] = q[H + i];
    }
    const auto ac = multiply<H>(a, c);
    const auto db = multiply<H>(conj<H>(d), b);
    const auto da = multiply<H>(d, a);
    const auto bc = multiply<H>(b, conj<H>(c));
    hypercomplex<D> r{};
    for (std::size_t i = 0; i < H; ++i) {
      r[i] = ac[i] - db[i];
      r[H + i] = da[i] + bc[i];
    }
    return r;
  }
}

/// Euclidean norm |p| = sqrt(p p*).
template <std::size_t D>
double norm(const hypercomplex<D>& p) noexcept {
  double s = 0;
  for (double v : p) s += v * v;
  return std::sqrt(s);
}

}  // namespace cvqkd::reconciliation::mdr
