#include "reconciliation/mdr/mdr.hpp"

#include <fmt/format.h>

#include <cmath>

#include "reconciliation/mdr/octonion.hpp"

namespace cvqkd::reconciliation::mdr {
namespace {

template <std::size_t D>
hypercomplex<D> load(std::span<const double> s, std::size_t block) {
  hypercomplex<D> r{};
  for (std::size_t i = 0; i < D; ++i) r[i] = s[block * D + i];
  return r;
}

template <std::size_t D>
expected<mapping_message> bob_map_d(std::span<const double> y, std::span<const std::uint8_t> bits) {
  mapping_message msg;
  msg.dimension = D;
  const std::size_t blocks = y.size() / D;
  msg.mapping.resize(y.size());
  msg.norms.resize(blocks);
  const double amp = 1.0 / std::sqrt(static_cast<double>(D));
  for (std::size_t k = 0; k < blocks; ++k) {
    auto yb = load<D>(y, k);
    const double ny = norm<D>(yb);
    if (!(ny > 0.0) || !std::isfinite(ny))
      return fail(errc::invalid_argument,
                  fmt::format("MDR: block {} of Bob's data has norm {} (zero or not finite); drop such blocks "
                              "before reconciliation",
                              k, ny));
    for (auto& v : yb) v /= ny;
    hypercomplex<D> u{};
    for (std::size_t i = 0; i < D; ++i) u[i] = bits[k * D + i] ? -amp : amp;
    const auto m = multiply<D>(u, conj<D>(yb));  // m * y' = u (alternativity: (u y'*) y' = u |y'|^2)
    for (std::size_t i = 0; i < D; ++i) msg.mapping[k * D + i] = m[i];
    msg.norms[k] = ny;
  }
  return msg;
}

template <std::size_t D, class Out>
expected<void> alice_d(std::span<const double> x, const mapping_message& msg, Out&& out) {
  const std::size_t blocks = x.size() / D;
  for (std::size_t k = 0; k < blocks; ++k) {
    auto xb = load<D>(x, k);
    const double nx = norm<D>(xb);
    if (!(nx > 0.0)) {
      for (std::size_t i = 0; i < D; ++i) out(k, i, 0.0, 0.0);  // no information on this block
      continue;
    }
    for (auto& v : xb) v /= nx;
    const auto m = load<D>(msg.mapping, k);
    const auto v = multiply<D>(m, xb);
    for (std::size_t i = 0; i < D; ++i) out(k, i, v[i], nx);
  }
  return {};
}

expected<void> check_shapes(std::size_t n, std::size_t other, unsigned d, const char* what) {
  if (!supported_dimension(d))
    return fail(errc::invalid_argument, fmt::format("MDR: dimension {} is not supported; use 1, 2, 4 or 8", d));
  if (n % d != 0)
    return fail(errc::invalid_argument,
                fmt::format("MDR: {} reals is not a multiple of the dimension {}; trim the frame", n, d));
  if (other != n)
    return fail(errc::invalid_argument, fmt::format("MDR: {} has {} entries for {} reals; pass equal lengths", what,
                                                    other, n));
  return {};
}

}  // namespace

bool supported_dimension(unsigned d) noexcept { return d == 1 || d == 2 || d == 4 || d == 8; }

std::vector<double> interleave_quadratures(std::span<const double> q, std::span<const double> p) {
  std::vector<double> r(2 * std::min(q.size(), p.size()));
  for (std::size_t i = 0; i < r.size() / 2; ++i) {
    r[2 * i] = q[i];
    r[2 * i + 1] = p[i];
  }
  return r;
}

expected<mapping_message> bob_map(std::span<const double> y, std::span<const std::uint8_t> bits, unsigned d) {
  if (auto ok = check_shapes(y.size(), bits.size(), d, "the bit vector"); !ok) return std::unexpected(ok.error());
  for (std::size_t i = 0; i < bits.size(); ++i)
    if (bits[i] > 1)
      return fail(errc::invalid_argument, fmt::format("MDR: bit {} has value {}; bits must be 0 or 1", i, bits[i]));
  switch (d) {
    case 1: return bob_map_d<1>(y, bits);
    case 2: return bob_map_d<2>(y, bits);
    case 4: return bob_map_d<4>(y, bits);
    default: return bob_map_d<8>(y, bits);
  }
}

namespace {
template <class Out>
expected<void> dispatch(std::span<const double> x, const mapping_message& m, Out&& out) {
  switch (m.dimension) {
    case 1: return alice_d<1>(x, m, out);
    case 2: return alice_d<2>(x, m, out);
    case 4: return alice_d<4>(x, m, out);
    default: return alice_d<8>(x, m, out);
  }
}
expected<void> check_message(std::span<const double> x, const mapping_message& m) {
  if (auto ok = check_shapes(x.size(), m.mapping.size(), m.dimension, "Bob's mapping"); !ok) return ok;
  if (m.norms.size() * m.dimension != x.size())
    return fail(errc::invalid_argument,
                fmt::format("MDR: Bob sent {} norms for {} blocks; the message is truncated or from another frame",
                            m.norms.size(), x.size() / m.dimension));
  return {};
}
}  // namespace

expected<void> alice_llr(std::span<const double> x, const mapping_message& message, double noise_variance,
                         std::span<float> llr) {
  if (auto ok = check_message(x, message); !ok) return ok;
  if (llr.size() != x.size())
    return fail(errc::invalid_argument, fmt::format("MDR: LLR output has {} entries for {} reals; size it to the frame",
                                                    llr.size(), x.size()));
  if (!(noise_variance > 0.0) || !std::isfinite(noise_variance))
    return fail(errc::invalid_argument,
                fmt::format("MDR: noise variance {} must be positive and finite (sigma^2 = Var(x)/SNR)", noise_variance));
  const unsigned d = message.dimension;
  const double scale = 2.0 / (noise_variance * std::sqrt(static_cast<double>(d)));
  return dispatch(x, message, [&](std::size_t k, std::size_t i, double v, double nx) {
    llr[k * d + i] = static_cast<float>(scale * nx * message.norms[k] * v);
  });
}

expected<std::vector<double>> alice_rotate(std::span<const double> x, const mapping_message& message) {
  if (auto ok = check_message(x, message); !ok) return std::unexpected(ok.error());
  std::vector<double> r(x.size());
  const unsigned d = message.dimension;
  auto ok = dispatch(x, message, [&](std::size_t k, std::size_t i, double v, double) { r[k * d + i] = v; });
  if (!ok) return std::unexpected(ok.error());
  return r;
}

}  // namespace cvqkd::reconciliation::mdr
