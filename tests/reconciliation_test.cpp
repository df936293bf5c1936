// Reconciliation: octonion algebra, MDR, parity-check matrices and AList, QC lifting, the BP decoder,
// rate selection, verification hashing, GA density evolution, and the short-block FER regression table.
#include <gtest/gtest.h>
#include <hwy/targets.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <iostream>
#include <fstream>
#include <numbers>
#include <random>
#include <set>
#include <sstream>
#include <thread>
#include <tuple>

#include "core/drbg.hpp"
#include "reconciliation/ldpc/alist.hpp"
#include "reconciliation/ldpc/check_kernels.hpp"
#include "reconciliation/ldpc/codes.hpp"
#include "reconciliation/ldpc/decoder.hpp"
#include "reconciliation/ldpc/density_evolution.hpp"
#include "reconciliation/ldpc/frame_simulation.hpp"
#include "reconciliation/ldpc/operating_point.hpp"
#include "reconciliation/ldpc/protograph_search.hpp"
#include "reconciliation/mdr/mdr.hpp"
#include "reconciliation/mdr/octonion.hpp"
#include "reconciliation/verification/hash.hpp"
#include "tests/test_seed.hpp"

namespace mdr = cvqkd::reconciliation::mdr;
namespace ldpc = cvqkd::reconciliation::ldpc;
namespace ver = cvqkd::reconciliation::verification;
using cvqkd::test_support::base_seed;
using cvqkd::test_support::seed_note;

namespace {

#if defined(__SANITIZE_ADDRESS__)
constexpr int scale_down = 4;  // sanitizer builds run fewer frames
#else
constexpr int scale_down = 1;
#endif

template <std::size_t D>
mdr::hypercomplex<D> random_element(std::mt19937_64& rng) {
  std::normal_distribution<double> n(0.0, 1.0);
  mdr::hypercomplex<D> r{};
  for (auto& v : r) v = n(rng);
  return r;
}

template <std::size_t D>
void check_algebra(std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  for (int t = 0; t < 200; ++t) {
    const auto a = random_element<D>(rng), b = random_element<D>(rng);
    const auto ab = mdr::multiply<D>(a, b);
    // normed division algebra: |ab| = |a||b|
    EXPECT_NEAR(mdr::norm<D>(ab), mdr::norm<D>(a) * mdr::norm<D>(b), 1e-12 * (1 + mdr::norm<D>(ab)));
    // alternativity: (aa)b = a(ab) and (ab)b = a(bb)
    const auto l1 = mdr::multiply<D>(mdr::multiply<D>(a, a), b), r1 = mdr::multiply<D>(a, mdr::multiply<D>(a, b));
    const auto l2 = mdr::multiply<D>(mdr::multiply<D>(a, b), b), r2 = mdr::multiply<D>(a, mdr::multiply<D>(b, b));
    for (std::size_t i = 0; i < D; ++i) {
      EXPECT_NEAR(l1[i], r1[i], 1e-11);
      EXPECT_NEAR(l2[i], r2[i], 1e-11);
    }
    // a a* = |a|^2 (real)
    const auto aa = mdr::multiply<D>(a, mdr::conj<D>(a));
    EXPECT_NEAR(aa[0], mdr::norm<D>(a) * mdr::norm<D>(a), 1e-11);
    for (std::size_t i = 1; i < D; ++i) EXPECT_NEAR(aa[i], 0.0, 1e-11);
  }
}

}  // namespace

TEST(Octonion, NormMultiplicativeAndAlternative) {
  const auto seed = base_seed();
  SCOPED_TRACE(seed_note(seed));
  check_algebra<1>(seed);
  check_algebra<2>(seed + 1);
  check_algebra<4>(seed + 2);
  check_algebra<8>(seed + 3);
}

TEST(Octonion, QuaternionsAssociateOctonionsDoNot) {
  const auto seed = base_seed();
  SCOPED_TRACE(seed_note(seed));
  std::mt19937_64 rng(seed);
  const auto a = random_element<4>(rng), b = random_element<4>(rng), c = random_element<4>(rng);
  const auto l = mdr::multiply<4>(mdr::multiply<4>(a, b), c), r = mdr::multiply<4>(a, mdr::multiply<4>(b, c));
  for (int i = 0; i < 4; ++i) EXPECT_NEAR(l[i], r[i], 1e-11);
  const auto x = random_element<8>(rng), y = random_element<8>(rng), z = random_element<8>(rng);
  const auto l8 = mdr::multiply<8>(mdr::multiply<8>(x, y), z), r8 = mdr::multiply<8>(x, mdr::multiply<8>(y, z));
  double diff = 0;
  for (int i = 0; i < 8; ++i) diff += std::fabs(l8[i] - r8[i]);
  EXPECT_GT(diff, 1e-6);  // the octonions are not associative
  // basis check: e1 e2 = e3 in the quaternions (Cayley-Dickson with this convention)
  const mdr::hypercomplex<4> e1{0, 1, 0, 0}, e2{0, 0, 1, 0};
  const auto e3 = mdr::multiply<4>(e1, e2);
  EXPECT_DOUBLE_EQ(std::fabs(e3[3]), 1.0);
}

TEST(Mdr, NoiselessReproducesBobsBits) {
  const auto seed = base_seed();
  SCOPED_TRACE(seed_note(seed));
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> n(0.0, 1.0);
  for (unsigned d : {1u, 2u, 4u, 8u}) {
    const std::size_t len = 8 * 1000;
    std::vector<double> y(len);
    std::vector<std::uint8_t> bits(len);
    for (auto& v : y) v = n(rng);
    for (auto& b : bits) b = rng() & 1u;
    auto msg = mdr::bob_map(y, bits, d);
    ASSERT_TRUE(msg) << msg.error().message;
    std::vector<float> llr(len);
    ASSERT_TRUE(mdr::alice_llr(y, *msg, 0.5, llr));  // Alice's x equals Bob's y
    auto v = mdr::alice_rotate(y, *msg);
    ASSERT_TRUE(v);
    for (std::size_t i = 0; i < len; ++i) {
      ASSERT_EQ(llr[i] < 0 ? 1 : 0, bits[i]) << "d=" << d << " i=" << i;
      ASSERT_NEAR((*v)[i], (1.0 - 2.0 * bits[i]) / std::sqrt(double(d)), 1e-12);
    }
  }
}

TEST(Mdr, SignAgreementMatchesVirtualChannel) {
  // With y = x + z, z ~ N(0, sigma^2) and x ~ N(0, 1), Alice's v_i is u_i plus Gaussian noise and a bit is
  // wrong with probability E[Q(sqrt(G/d) / sigma)], G ~ chi^2_d (the block norm is a chi variable; for large
  // d this tends to Q(1/sigma), the BIAWGN error probability). Derivation in mdr.hpp / density_evolution.hpp.
  const auto seed = base_seed();
  SCOPED_TRACE(seed_note(seed));
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> n(0.0, 1.0);
  const unsigned d = 8;
  for (double snr : {0.161, 1.0}) {
    const double sigma = std::sqrt(1.0 / snr);
    const std::size_t len = 8 * 40000;
    std::vector<double> x(len), y(len);
    std::vector<std::uint8_t> bits(len);
    for (std::size_t i = 0; i < len; ++i) {
      x[i] = n(rng);
      y[i] = x[i] + sigma * n(rng);
      bits[i] = rng() & 1u;
    }
    auto msg = mdr::bob_map(y, bits, d);
    ASSERT_TRUE(msg);
    std::vector<float> llr(len);
    ASSERT_TRUE(mdr::alice_llr(x, *msg, sigma * sigma, llr));
    std::size_t errors = 0;
    double llr_mean = 0;
    for (std::size_t i = 0; i < len; ++i) {
      errors += (llr[i] < 0 ? 1u : 0u) != bits[i];
      llr_mean += (bits[i] ? -llr[i] : llr[i]);
    }
    llr_mean /= len;
    // E[Q(sqrt(G/8)/sigma)] with the chi^2_8 density g^3 e^{-g/2} / 96, by the midpoint rule
    double p = 0;
    const double h = 1e-3;
    for (double g = h / 2; g < 80; g += h)
      p += std::pow(g, 3) * std::exp(-g / 2) / 96.0 * 0.5 * std::erfc(std::sqrt(g / d) / sigma / std::sqrt(2.0)) * h;
    const double rate = double(errors) / len;
    const double sd = std::sqrt(p * (1 - p) / len);
    EXPECT_NEAR(rate, p, 5 * sd) << "snr " << snr << " observed " << rate << " theory " << p;
    // the large-d limit Q(1/sigma) is close but not equal at d = 8
    EXPECT_NEAR(p, 0.5 * std::erfc(1 / sigma / std::sqrt(2.0)), 0.02);
    // consistent LLRs: mean 2 SNR (the GA channel mean used in code design)
    EXPECT_NEAR(llr_mean, 2 * snr, 0.03 * 2 * snr + 0.01);
  }
}

TEST(Mdr, RejectsBadInput) {
  std::vector<double> y(16, 1.0);
  std::vector<std::uint8_t> bits(16, 0);
  EXPECT_FALSE(mdr::bob_map(y, bits, 3));
  EXPECT_FALSE(mdr::bob_map(std::span(y).first(12), std::span(bits).first(12), 8));
  bits[3] = 2;
  EXPECT_FALSE(mdr::bob_map(y, bits, 8));
  bits[3] = 0;
  std::fill(y.begin(), y.begin() + 8, 0.0);
  auto m = mdr::bob_map(y, bits, 8);
  ASSERT_FALSE(m);
  EXPECT_EQ(m.error().code, cvqkd::errc::invalid_argument);
  EXPECT_NE(m.error().message.find("drop"), std::string::npos);
}

namespace {
ldpc::sparse_matrix small_matrix() {
  return *ldpc::sparse_matrix::from_entries(3, 6, {{0, 0}, {0, 1}, {0, 3}, {1, 1}, {1, 2}, {1, 4}, {2, 0}, {2, 2}, {2, 5}});
}
}  // namespace

TEST(SparseMatrix, CsrCscAndSyndrome) {
  const auto h = small_matrix();
  EXPECT_EQ(h.edges(), 9u);
  ASSERT_EQ(h.col(2).size(), 2u);
  EXPECT_EQ(h.col(2)[0], 1u);
  EXPECT_EQ(h.col(2)[1], 2u);
  for (std::uint32_t c = 0; c < h.cols(); ++c)
    for (std::uint32_t k = h.col_ptr()[c]; k < h.col_ptr()[c + 1]; ++k) EXPECT_EQ(h.col_idx()[h.col_edge()[k]], c);
  std::vector<std::uint8_t> w{1, 0, 0, 0, 0, 1}, s(3);
  h.syndrome(w, s);
  EXPECT_EQ(s, (std::vector<std::uint8_t>{1, 0, 0}));
  EXPECT_FALSE(ldpc::sparse_matrix::from_entries(2, 2, {{0, 0}, {0, 0}}));
  EXPECT_FALSE(ldpc::sparse_matrix::from_entries(2, 2, {{2, 0}}));
}

TEST(Alist, RoundTripAndPaddedInput) {
  const auto h = small_matrix();
  std::stringstream ss;
  ldpc::write_alist(ss, h);
  auto back = ldpc::read_alist(ss);
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(*back, h);
  // MacKay's zero-padded variant
  std::stringstream padded("3 2\n2 2\n1 2 1\n2 2\n1 0\n1 2\n2 0\n1 2\n2 3\n");
  auto p = ldpc::read_alist(padded);
  ASSERT_TRUE(p) << p.error().message;
  EXPECT_EQ(p->edges(), 4u);
  std::stringstream broken("3 2\n2 2\n1 2 1\n2 2\n1 2\n2\n1\n1 2\n1 2\n");  // row list disagrees
  auto b = ldpc::read_alist(broken);
  ASSERT_FALSE(b);
  EXPECT_EQ(b.error().code, cvqkd::errc::parse_error);
  // a lifted code survives the round trip too
  const auto& fam = ldpc::code_families().front();
  auto q = ldpc::lift(fam.proto, 40, fam.seed, 40 * 10);
  ASSERT_TRUE(q);
  const auto hq = q->expand();
  std::stringstream s2;
  ldpc::write_alist(s2, hq);
  auto b2 = ldpc::read_alist(s2);
  ASSERT_TRUE(b2);
  EXPECT_EQ(*b2, hq);
}

TEST(QcCode, DeterministicGirthSixAndRate) {
  for (const auto& fam : ldpc::code_families()) {
    SCOPED_TRACE(std::string(fam.name));
    const std::uint32_t z = 32;
    const std::uint64_t ext = z * fam.proto.extension_rows.size() - 17;  // a truncated last row block
    auto a = ldpc::lift(fam.proto, z, fam.seed, ext), b = ldpc::lift(fam.proto, z, fam.seed, ext);
    ASSERT_TRUE(a && b);
    const auto ha = a->expand(), hb = b->expand();
    EXPECT_EQ(ha, hb);
    EXPECT_EQ(ha.cols(), fam.proto.core_cols * z + ext);
    EXPECT_EQ(ha.rows(), fam.proto.precode_rows.size() * z + ext);
    EXPECT_NEAR(a->rate(), fam.proto.rate(z, ext), 1e-12);
    // no 4-cycles: two checks share at most one variable
    std::vector<std::uint32_t> seen(ha.rows(), UINT32_MAX);
    for (std::uint32_t r = 0; r < ha.rows(); ++r) {
      for (auto c : ha.row(r))
        for (auto r2 : ha.col(c)) {
          if (r2 == r) continue;
          ASSERT_NE(seen[r2], r) << "4-cycle through checks " << r << " and " << r2;
          seen[r2] = r;
        }
    }
    EXPECT_FALSE(ldpc::lift(fam.proto, z, fam.seed, 0));
    EXPECT_FALSE(ldpc::lift(fam.proto, z, fam.seed, z * fam.proto.extension_rows.size() + 1));
  }
}

TEST(QcCode, ExpansionKeepsDegreesRateAndThreshold) {
  // Copy-and-permute expansion: every base column c becomes columns c L .. c L + L - 1 with c's degrees, every
  // row keeps its degree, so the rate and the density-evolution threshold are those of the base protograph.
  auto fam = ldpc::find_family("pbrl-r0.10");
  ASSERT_TRUE(fam);
  const auto& base = (*fam)->base;
  const auto& proto = (*fam)->proto;
  const std::uint32_t l = (*fam)->expansion;
  auto again = ldpc::expand_protograph(base, l, (*fam)->seed);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->precode_rows, proto.precode_rows);  // deterministic
  EXPECT_EQ(again->extension_rows, proto.extension_rows);
  ASSERT_EQ(proto.core_cols, base.core_cols * l);
  ASSERT_EQ(proto.precode_rows.size(), base.precode_rows.size() * l);
  ASSERT_EQ(proto.extension_rows.size(), base.extension_rows.size() * l);
  auto degrees = [](const std::vector<std::vector<std::uint32_t>>& rows, std::uint32_t cols) {
    std::vector<std::uint32_t> d(cols, 0);
    for (const auto& r : rows)
      for (auto c : r) ++d[c];
    return d;
  };
  using rows_t = std::vector<std::vector<std::uint32_t>>;
  for (auto member : {&ldpc::raptor_protograph::precode_rows, &ldpc::raptor_protograph::extension_rows}) {
    const rows_t& rb = base.*member;
    const rows_t& rp = proto.*member;
    const auto db = degrees(rb, base.core_cols), dp = degrees(rp, proto.core_cols);
    for (std::uint32_t c = 0; c < proto.core_cols; ++c) EXPECT_EQ(dp[c], db[c / l]) << "column " << c;
    for (std::size_t r = 0; r < rp.size(); ++r) EXPECT_EQ(rp[r].size(), rb[r / l].size()) << "row " << r;
  }
  EXPECT_NEAR((*fam)->min_rate(), base.rate(1, base.extension_rows.size()), 1e-12);
  EXPECT_FALSE(ldpc::expand_protograph(base, 0, 1));
  // GA threshold (4-point fading, within 2 % of the listed 16-point value) of the design rate, base and expanded
  ldpc::de_options o;
  o.fading_points = 4;
  const double snr = (*fam)->design_threshold_snr;
  const auto e = (*fam)->design_extension_rows;
  EXPECT_TRUE(ldpc::ga_converges(base, e, snr * 1.02, o));
  EXPECT_FALSE(ldpc::ga_converges(base, e, snr * 0.98, o));
  EXPECT_TRUE(ldpc::ga_converges(proto, e * l, snr * 1.02, o));
  EXPECT_FALSE(ldpc::ga_converges(proto, e * l, snr * 0.98, o));
}

namespace {

// BIAWGN observation of `bits` at noise sigma: LLR = 2 y / sigma^2, y = (1 - 2b) + noise.
std::vector<float> observe(const std::vector<std::uint8_t>& bits, double sigma, std::mt19937_64& rng) {
  std::normal_distribution<double> n(0.0, sigma);
  std::vector<float> llr(bits.size());
  for (std::size_t i = 0; i < bits.size(); ++i)
    llr[i] = static_cast<float>(2.0 * ((1.0 - 2.0 * bits[i]) + n(rng)) / (sigma * sigma));
  return llr;
}

}  // namespace

TEST(Decoder, RecoversKnownWordsForEveryScheduleAndRule) {
  const auto seed = base_seed();
  SCOPED_TRACE(seed_note(seed));
  std::mt19937_64 rng(seed);
  const auto& fam = ldpc::code_families().front();
  auto q = ldpc::lift(fam.proto, 100, fam.seed, 100 * 30);  // rate about 0.23
  ASSERT_TRUE(q);
  const auto h = q->expand();
  for (auto sched : {ldpc::schedule::flooding, ldpc::schedule::layered})
    for (auto rule : {ldpc::update_rule::sum_product, ldpc::update_rule::normalized_min_sum,
                      ldpc::update_rule::offset_min_sum}) {
      SCOPED_TRACE(testing::Message() << "schedule " << int(sched) << " rule " << int(rule));
      ldpc::decoder_options o;
      o.sched = sched;
      o.rule = rule;
      o.max_iterations = 100;
      auto dec = ldpc::decoder::create(*q, o);
      ASSERT_TRUE(dec);
      std::vector<std::uint8_t> bits(h.cols()), syn(h.rows()), out(h.cols());
      for (auto& b : bits) b = rng() & 1u;
      h.syndrome(bits, syn);
      const auto llr = observe(bits, 1.0, rng);  // SNR 1, far above this rate's threshold
      const auto r = dec->decode(llr, syn, out);
      EXPECT_TRUE(r.success);
      EXPECT_LT(r.iterations, 100u);
      EXPECT_EQ(out, bits);
    }
}

// The Highway check kernels against a double-precision reference, on every instruction set compiled
// in and supported by this CPU (Highway's test mock selects each in turn): random messages up to the
// largest magnitude the decoder produces, partial tiles (n not a multiple of the vector width), degree 2
// to max_check_degree, both syndrome signs, and exact zeros/saturated values.
TEST(CheckKernels, MatchScalarReferenceOnEveryInstructionSet) {
  const std::uint64_t seed = base_seed() + 71;
  SCOPED_TRACE(seed_note(seed));
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> msg(0.0f, 4.0f);
  std::vector<std::string> checked;
  for (const std::int64_t target : hwy::SupportedAndGeneratedTargets()) {
    hwy::SetSupportedTargetsForTest(target);
    const std::string name = ldpc::check_kernel_target();
    SCOPED_TRACE(name);
    checked.push_back(name);
    for (const unsigned k : {2u, 3u, 7u, 16u, 33u, ldpc::max_check_degree})
      for (const unsigned n : {1u, 13u, 100u, ldpc::check_tile}) {
        std::vector<float> t(std::size_t(k) * ldpc::check_tile), o(t.size()), sg(ldpc::check_tile);
        for (auto& v : t) v = std::clamp(msg(rng), -30.0f, 30.0f);
        t[0] = 0.0f;  // a zero message: sum-product output 0 on the other edges
        if (k > 2) t[ldpc::check_tile + 1] = 25.0f;  // saturates tanh
        for (auto& v : sg) v = (rng() & 1) ? -1.0f : 1.0f;
        ldpc::check_sum_product(t.data(), o.data(), sg.data(), k, n);
        for (unsigned i = 0; i < n; ++i)
          for (unsigned j = 0; j < k; ++j) {
            double p = sg[i];
            for (unsigned q = 0; q < k; ++q)
              if (q != j) p *= std::tanh(0.5 * t[q * ldpc::check_tile + i]);
            p = std::clamp(p, -0.99999988, 0.99999988);
            const double want = 2.0 * std::atanh(p);
            // float's resolution near |p| = 1 (2^-24 per factor) bounds what any float kernel can do
            const double tol = 1e-4 + 2e-4 * std::fabs(want) + 4.0 * k * 6e-8 / (1.0 - std::fabs(p));
            ASSERT_NEAR(o[j * ldpc::check_tile + i], want, tol)
                << "sum-product k " << k << " n " << n << " edge " << j << " check " << i;
          }
        for (const auto& [scale, offset] : {std::pair{1.0f, 0.0f}, std::pair{0.8f, 0.0f}, std::pair{1.0f, 0.5f}}) {
          ldpc::check_min_sum(t.data(), o.data(), sg.data(), k, n, scale, offset);
          for (unsigned i = 0; i < n; ++i)
            for (unsigned j = 0; j < k; ++j) {
              float m = 1e30f, s = sg[i];
              for (unsigned q = 0; q < k; ++q)
                if (q != j) {
                  m = std::min(m, std::fabs(t[q * ldpc::check_tile + i]));
                  if (std::signbit(t[q * ldpc::check_tile + i])) s = -s;
                }
              ASSERT_FLOAT_EQ(o[j * ldpc::check_tile + i], s * std::max(m * scale - offset, 0.0f))
                  << "min-sum k " << k << " n " << n << " edge " << j << " check " << i;
            }
        }
      }
  }
  hwy::SetSupportedTargetsForTest(0);
  ASSERT_FALSE(checked.empty());
  std::cout << "check kernels verified on:";
  for (const auto& c : checked) std::cout << ' ' << c;
  std::cout << '\n';
}

// A frame of the first family's member (Z = 100) observed at SNR 1/16, far below its threshold (capacity
// 0.04 < rate): no decoder can recover it.
namespace {
struct noisy_frame {
  ldpc::qc_matrix code;
  std::vector<std::uint8_t> bits, syndrome;
  std::vector<float> llr;
};
noisy_frame undecodable_frame(std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  const auto& fam = ldpc::code_families().front();
  noisy_frame f{*ldpc::lift(fam.proto, 100, fam.seed, 100 * 30), {}, {}, {}};
  const auto hq = f.code.expand();
  f.bits.resize(hq.cols());
  f.syndrome.resize(hq.rows());
  for (auto& b : f.bits) b = rng() & 1u;
  hq.syndrome(f.bits, f.syndrome);
  f.llr = observe(f.bits, 4.0, rng);
  return f;
}
}  // namespace

TEST(Decoder, InconsistentSyndromeIsReportedAsFailed) {
  // row 2 = row 0 + row 1, so s2 must equal s0 + s1; a syndrome that breaks this has no solution
  auto h = *ldpc::sparse_matrix::from_entries(3, 5, {{0, 0}, {0, 1}, {1, 2}, {1, 3}, {2, 0}, {2, 1}, {2, 2}, {2, 3}, {0, 4}, {1, 4}});
  const auto q = ldpc::qc_matrix::from_sparse(h);
  for (auto rule : {ldpc::update_rule::sum_product, ldpc::update_rule::offset_min_sum}) {
    ldpc::decoder_options o;
    o.rule = rule;
    o.max_iterations = 20;
    auto dec = ldpc::decoder::create(q, o);
    ASSERT_TRUE(dec);
    std::vector<float> llr{3, -2, 1, 4, -1};
    std::vector<std::uint8_t> syn{1, 0, 0}, out(5);
    const auto r = dec->decode(llr, syn, out);
    EXPECT_FALSE(r.success);
    EXPECT_EQ(r.iterations, 20u);
  }
  // and a far too noisy frame of a real code fails rather than being accepted
  const auto f = undecodable_frame(base_seed());
  std::vector<std::uint8_t> out(f.bits.size());
  auto dec = ldpc::decoder::create(f.code, {});
  const auto r = dec->decode(f.llr, f.syndrome, out);
  EXPECT_FALSE(r.success);
  EXPECT_NE(out, f.bits);
}

// A stopping node must not wait for a frame: a set cancel flag ends decoding at the next iteration.
TEST(Decoder, CancelFlagEndsDecodingAtTheNextIteration) {
  SCOPED_TRACE(seed_note(base_seed() + 5));
  const auto f = undecodable_frame(base_seed() + 5);  // would run all iterations
  const auto& llr = f.llr;
  const auto& syn = f.syndrome;
  std::vector<std::uint8_t> out(f.bits.size());
  std::atomic<bool> cancel{false};
  ldpc::decoder_options o;
  o.max_iterations = 1000000;
  o.cancel = &cancel;
  auto dec = ldpc::decoder::create(f.code, o);
  ASSERT_TRUE(dec);
  std::jthread stopper([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    cancel = true;
  });
  const auto r = dec->decode(llr, syn, out);
  EXPECT_TRUE(r.cancelled);
  EXPECT_FALSE(r.success);
  EXPECT_LT(r.iterations, o.max_iterations);
  const auto again = dec->decode(llr, syn, out);  // still set: no iteration at all
  EXPECT_TRUE(again.cancelled);
  EXPECT_EQ(again.iterations, 0u);
}

TEST(Decoder, ParallelMatchesSequential) {
  const auto seed = base_seed();
  SCOPED_TRACE(seed_note(seed));
  std::mt19937_64 rng(seed);
  const auto& fam = ldpc::code_families().front();
  auto q = ldpc::lift(fam.proto, 64, fam.seed, 64 * 40);
  const auto h = q->expand();
  const int frames = 6;
  std::vector<std::vector<std::uint8_t>> bits(frames), syn(frames), out1(frames), out2(frames);
  std::vector<std::vector<float>> llr(frames);
  std::vector<ldpc::frame_job> jobs1, jobs2;
  for (int f = 0; f < frames; ++f) {
    bits[f].resize(h.cols());
    for (auto& b : bits[f]) b = rng() & 1u;
    syn[f].resize(h.rows());
    h.syndrome(bits[f], syn[f]);
    llr[f] = observe(bits[f], 1.6, rng);
    out1[f].resize(h.cols());
    out2[f].resize(h.cols());
    jobs1.push_back({llr[f], syn[f], out1[f]});
    jobs2.push_back({llr[f], syn[f], out2[f]});
  }
  auto r1 = ldpc::decode_parallel(*q, {}, jobs1, 1);
  auto r2 = ldpc::decode_parallel(*q, {}, jobs2, 3);
  ASSERT_TRUE(r1 && r2);
  for (int f = 0; f < frames; ++f) {
    EXPECT_EQ((*r1)[f].success, (*r2)[f].success);
    EXPECT_EQ((*r1)[f].iterations, (*r2)[f].iterations);
    EXPECT_EQ(out1[f], out2[f]);
  }
}

TEST(RateSelection, MeetsTheRequestedBetaAcrossTheRange) {
  for (const auto& fam : ldpc::code_families()) {
    for (double beta : {0.9, 0.93, 0.95}) {
      // SNRs across the family's range
      for (double frac : {0.0, 0.3, 0.7}) {
        const double rate = fam.min_rate() * (1 + frac) + 1e-4;
        const double snr = std::pow(2.0, 2 * rate / beta) - 1;  // cvqkd-theory.md: SNR = 2^(2R/beta) - 1
        auto c = ldpc::select_rate(snr, beta, true);
        ASSERT_TRUE(c) << c.error().message;
        EXPECT_GE(c->beta, beta - 1e-12) << fam.name << " snr " << snr;
        EXPECT_LT(c->beta, beta + 2e-3) << fam.name << " snr " << snr;
        auto h = ldpc::build(*c);
        ASSERT_TRUE(h);
        EXPECT_NEAR(h->rate(), c->rate, 1e-12);
        EXPECT_EQ(h->cols() % 8, 0u);  // whole MDR blocks
      }
    }
  }
  // the operating points (and the 7 dB metro links, SNR 0.32) each get the family designed for them,
  // with a full-length frame: no other family offering that rate is predicted by GA-DE to do better
  for (const auto& [snr, beta, name] : {std::tuple{0.029, 0.95, "pbrl-r0.02"}, std::tuple{0.161, 0.93, "pbrl-r0.10"},
                                        std::tuple{0.32, 0.93, "pbrl-r0.19"}, std::tuple{0.5, 0.93, "pbrl-r0.27"}}) {
    auto c = ldpc::select_rate(snr, beta);
    ASSERT_TRUE(c) << c.error().message;
    EXPECT_EQ(c->family->name, name) << "snr " << snr;
    const double n = double(c->family->proto.core_cols) * c->lifting + double(c->extension_checks);
    EXPECT_GE(n, 1e6) << "snr " << snr;
    for (const auto& f : ldpc::code_families())  // no other family offering the rate is predicted to do better
      if (f.min_rate() <= c->rate && c->rate <= f.max_rate()) {
        EXPECT_LE(f.ga_beta(c->rate), c->family->ga_beta(c->rate)) << f.name;
      }
  }
  // ga_curve holds the GA-DE thresholds it claims (4-point fading: within 2 % of the 16-point values)
  for (const auto& fam : ldpc::code_families()) {
    SCOPED_TRACE(std::string(fam.name));
    ASSERT_FALSE(fam.ga_curve.empty());
    ldpc::de_options o;
    o.fading_points = 4;
    const auto& g = fam.ga_curve[fam.ga_curve.size() / 2];
    EXPECT_TRUE(ldpc::ga_converges(fam.base, g.extension_rows, g.snr * 1.02, o));
    EXPECT_FALSE(ldpc::ga_converges(fam.base, g.extension_rows, g.snr * 0.98, o));
    for (std::size_t i = 1; i < fam.ga_curve.size(); ++i)
      EXPECT_LT(fam.ga_curve[i - 1].extension_rows, fam.ga_curve[i].extension_rows);
  }
  // high rates go to the high-rate family, not to a low-rate one punctured far from its design point
  for (double rate : {0.3, 0.45, 0.6}) {
    auto c = ldpc::select_rate(std::pow(2.0, 2 * rate / 0.9) - 1, 0.9);
    ASSERT_TRUE(c) << c.error().message;
    EXPECT_EQ(c->family->name, "pbrl-r0.27") << "rate " << rate;
  }
  EXPECT_FALSE(ldpc::select_rate(-1, 0.95));
  EXPECT_FALSE(ldpc::select_rate(0.1, 1.2));
  EXPECT_FALSE(ldpc::select_rate(1e-6, 0.95));  // below every family's lowest rate
}

TEST(Verification, FieldArithmeticAndTags) {
  const auto seed = base_seed();
  SCOPED_TRACE(seed_note(seed));
  cvqkd::seeded_drbg rng(seed, "verification-test");
  const ver::gf128 one{1, 0};
  for (int t = 0; t < 20; ++t) {
    const auto a = ver::draw_key(rng), b = ver::draw_key(rng), c = ver::draw_key(rng);
    EXPECT_EQ(ver::multiply(a, one), a);
    EXPECT_EQ(ver::multiply(a, b), ver::multiply(b, a));
    const ver::gf128 bc{b.lo ^ c.lo, b.hi ^ c.hi};
    const auto ab = ver::multiply(a, b), ac = ver::multiply(a, c), abc = ver::multiply(a, bc);
    EXPECT_EQ(abc, (ver::gf128{ab.lo ^ ac.lo, ab.hi ^ ac.hi}));
    EXPECT_EQ(ver::multiply(ver::multiply(a, b), c), ver::multiply(a, ver::multiply(b, c)));
  }
  // x^127 * x = x^128 = x^7 + x^2 + x + 1
  EXPECT_EQ(ver::multiply({0, 1ull << 63}, {2, 0}), (ver::gf128{0x87, 0}));
  std::vector<std::uint8_t> frame(100000);
  for (auto& b : frame) b = rng.next_u64() & 1u;
  const auto key = ver::draw_key(rng);
  const auto t0 = ver::tag(key, frame);
  EXPECT_EQ(ver::tag(key, frame), t0);
  for (std::size_t i : {std::size_t{0}, std::size_t{127}, std::size_t{128}, frame.size() - 1}) {
    frame[i] ^= 1u;
    EXPECT_NE(ver::tag(key, frame), t0) << "bit " << i;
    frame[i] ^= 1u;
  }
  EXPECT_NE(ver::tag(key, std::span(frame).first(frame.size() - 1)), t0);
  EXPECT_LE(ver::collision_bound(1'000'000), std::ldexp(1.0, -64));
  EXPECT_EQ(ver::tag_bits, 128u);
}

TEST(DensityEvolution, PhiAndRegularCodeThreshold) {
  EXPECT_NEAR(ldpc::ga_phi(1e-3), 1 - 5e-4, 1e-5);
  for (double m : {0.01, 0.3, 2.0, 10.0, 50.0}) EXPECT_NEAR(ldpc::ga_phi_inverse(ldpc::ga_phi(m)), m, 1e-3 * m);
  // (3,6)-regular LDPC on the BIAWGN channel: GA threshold sigma ~ 0.8747 (Chung et al. 2001, Table I)
  ldpc::raptor_protograph p;
  p.core_cols = 6;
  for (int i = 0; i < 3; ++i) p.precode_rows.push_back({0, 1, 2, 3, 4, 5});
  ldpc::de_options o;
  o.fading_points = 0;
  const double snr = ldpc::ga_threshold_snr(p, 0, o);
  EXPECT_NEAR(1 / std::sqrt(snr), 0.8747, 0.006);
}

TEST(FerRegression, ShortBlockOfEveryFamilyMatchesItsStoredTable) {
  // tests/data/reconcile_short_fer*.json were written by `cvqkd bench reconcile --short --sweep ... --json`
  // (command in each file), one per shipped family; the same seeds are rerun here on fewer frames and
  // compared with a binomial margin.
  std::set<std::string> families;
  for (const char* name : {"reconcile_short_fer.json", "reconcile_short_fer_r002.json", "reconcile_short_fer_r019.json",
                           "reconcile_short_fer_r027.json"}) {
    SCOPED_TRACE(name);
    std::ifstream f(std::string(CVQKD_SOURCE_DIR) + "/tests/data/" + name);
    ASSERT_TRUE(f) << "missing tests/data/" << name;
    const auto doc = nlohmann::json::parse(f);
    auto fam = ldpc::find_family(doc["family"].get<std::string>());
    ASSERT_TRUE(fam);
    families.insert(std::string((*fam)->name));
    const double rate = doc["rate"].get<double>();
    auto c = ldpc::choose_for_rate(**fam, rate, 1.0, true);
    ASSERT_TRUE(c);
    auto h = ldpc::build(*c);
    ASSERT_TRUE(h);
    EXPECT_EQ(h->cols(), doc["frame_bits"].get<std::uint32_t>());
    for (const auto& pt : doc["points"]) {
      ldpc::simulation_options o;
      o.snr = pt["snr"].get<double>();
      o.seed = doc["seed"].get<std::uint64_t>();
      o.threads = 2;
      o.decoding.max_iterations = doc["max_iterations"].get<unsigned>();
      const std::uint64_t frames = std::max<std::uint64_t>(8, doc["ci_frames"].get<std::uint64_t>() / scale_down);
      auto s = ldpc::simulate_reconciliation(*h, o, frames);
      ASSERT_TRUE(s) << s.error().message;
      const double fer_ref = pt["fer"].get<double>();
      const double fer = double(s->failed) / double(frames);
      const double margin = 3 * std::sqrt(std::max(fer_ref * (1 - fer_ref), 0.02) / double(frames)) + 1.0 / frames;
      EXPECT_NEAR(fer, fer_ref, margin) << "snr " << o.snr;
      EXPECT_EQ(s->undetected, 0u);
    }
  }
  EXPECT_EQ(families.size(), ldpc::code_families().size()) << "a shipped family has no stored FER table";
}

namespace {
namespace sec = cvqkd::security;

// llo_metro (heterodyne, V_A 5, eta 0.65, v_el 0.01) with xi = 0.02: the estimates a first frame
// (200,000 samples) would give on average.
struct metro_block {
  sec::channel_parameters p;
  sec::pe_statistics s;
  double snr;
  explicit metro_block(double transmittance)
      : p{.det = cvqkd::detection::heterodyne, .v_a = 5, .transmittance = transmittance, .xi = 0.02, .eta = 0.65,
          .v_el = 0.01},
        s(sec::expected_statistics(p, 200000)),
        snr(sec::snr(p)) {}
};

}  // namespace

TEST(OperatingPoint, TableIsSortedAndInterpolatesItsOwnPoints) {
  const auto t = ldpc::long_code_fer_table();
  ASSERT_GE(t.size(), 8u);
  for (std::size_t i = 1; i < t.size(); ++i)
    EXPECT_TRUE(t[i - 1].snr < t[i].snr || (t[i - 1].snr == t[i].snr && t[i - 1].beta < t[i].beta)) << i;
  for (const auto& m : t) {
    EXPECT_GE(m.fer, 0.0);
    EXPECT_LE(m.fer, 1.0);
    EXPECT_NEAR(ldpc::expected_fer(m.snr, m.beta), m.fer, 1e-12) << m.snr << " " << m.beta;
  }
  // Beyond a row's last beta nothing decodes; outside the SNR range the end rows hold.
  EXPECT_EQ(ldpc::expected_fer(t.back().snr, 0.999), 1.0);
  EXPECT_EQ(ldpc::expected_fer(t.front().snr / 10, t.front().beta), t.front().fer);
  EXPECT_EQ(ldpc::expected_fer(t.back().snr * 10, t.back().beta), t.back().fer);
}

TEST(OperatingPoint, AsksLessThanAnUndecodableTargetAndNeverMoreThanTheTarget) {
  const metro_block b(std::pow(10.0, -0.2 * 25 / 10));
  ASSERT_NEAR(b.snr, 0.507, 0.005);
  sec::epsilons e;
  // The profile's 0.95 decodes no frame at SNR 0.5 (table): the choice lowers it and expects key.
  auto op = ldpc::choose_operating_point(b.snr, 0.95, b.p, b.s, 20'000'000, 10'000'000, 20'000'000, e);
  ASSERT_TRUE(op) << op.error().message;
  EXPECT_LT(op->beta, 0.95);
  EXPECT_GE(op->beta, 0.85);
  EXPECT_LT(op->expected_fer, 0.5);
  EXPECT_GT(op->expected_key_rate, 0.0);
  EXPECT_NEAR(op->expected_fer, ldpc::expected_fer(b.snr, op->beta), 1e-12);
  // Its expected key is the best over the candidates, target included.
  for (int i = 0; i <= 15; ++i) {
    const double beta = 0.80 + 0.01 * i;
    auto k = sec::key_rate_finite(sec::finite_size_model::lgg2010, b.p, [&] { auto s = b.s; s.samples = 20'000'000; return s; }(),
                                  20'000'000, 10'000'000, beta, ldpc::expected_fer(b.snr, beta), e);
    if (k) {
      EXPECT_LE(k->key_rate, op->expected_key_rate + 1e-15) << beta;
    }
  }
  // A target every frame decodes at is kept: lower beta only gives I_AB away.
  const double low = ldpc::long_code_fer_table().front().beta;
  auto kept = ldpc::choose_operating_point(b.snr, low, b.p, b.s, 20'000'000, 10'000'000, 20'000'000, e);
  ASSERT_TRUE(kept);
  EXPECT_EQ(kept->beta, low);
}

TEST(OperatingPoint, NoPositiveKeyKeepsTheTargetAndBadInputIsRefused) {
  const metro_block far(std::pow(10.0, -0.2 * 200 / 10));  // 200 km: no beta gives key
  sec::epsilons e;
  auto op = ldpc::choose_operating_point(far.snr, 0.93, far.p, far.s, 20'000'000, 10'000'000, 20'000'000, e);
  ASSERT_TRUE(op) << op.error().message;
  EXPECT_EQ(op->beta, 0.93);
  EXPECT_EQ(op->expected_key_rate, 0.0);
  EXPECT_FALSE(ldpc::choose_operating_point(0.0, 0.93, far.p, far.s, 20'000'000, 10'000'000, 20'000'000, e));
  EXPECT_FALSE(ldpc::choose_operating_point(0.5, 1.0, far.p, far.s, 20'000'000, 10'000'000, 20'000'000, e));
}

// The precode rule the families are designed under: degree-1/2 precode columns form a forest, so no
// precode word of weight 2 (two such columns on the same rows) or of a short cycle exists.
TEST(ProtographSearch, PrecodeStructureRuleHoldsForEveryFamilyAndNamesWhatBreaksIt) {
  for (const auto& f : ldpc::code_families()) {
    auto ok = ldpc::check_precode_structure(f.base);
    EXPECT_TRUE(ok.has_value()) << f.name << ": " << ok.error().message;
  }
  ldpc::raptor_protograph p;
  p.core_cols = 6;
  p.extension_rows = {{0, 1}, {2, 3}, {4, 5}};
  p.precode_rows = {{0, 1, 2, 3}, {0, 1, 4, 5}, {2, 4, 5}};  // columns 0 and 1 both on rows 0 and 1
  auto two = ldpc::check_precode_structure(p);
  ASSERT_FALSE(two.has_value());
  EXPECT_NE(two.error().message.find("precode column 1 (rows 0,1) closes a cycle"), std::string::npos)
      << two.error().message;
  p.precode_rows = {{0, 2, 3}, {0, 1, 4}, {1, 2, 5, 3}};  // 0: rows 0-1, 1: rows 1-2, 2: rows 0-2: a triangle
  auto three = ldpc::check_precode_structure(p);
  ASSERT_FALSE(three.has_value());
  EXPECT_NE(three.error().message.find("column 2"), std::string::npos) << three.error().message;
  p.precode_rows = {{0, 1, 2, 3}, {0, 1, 2, 3, 4}, {0, 1, 2, 3, 5}};  // columns 0-3 all on rows 0, 1 and 2
  auto shared = ldpc::check_precode_structure(p);
  ASSERT_FALSE(shared.has_value());
  EXPECT_NE(shared.error().message.find("share one precode support"), std::string::npos) << shared.error().message;
  p.precode_rows = {{0, 1, 2}, {3}};
  EXPECT_FALSE(ldpc::check_precode_structure(p).has_value());
}

TEST(ProtographSearch, HillClimbNeverWorsensIsDeterministicAndKeepsTheRules) {
  ldpc::raptor_protograph start;
  start.core_cols = 6;
  start.precode_rows = {{0, 1, 2, 3, 4}, {0, 1, 2, 4, 5}, {0, 1, 3, 4}};
  start.extension_rows = {{0, 1}, {2, 3}, {4, 5}, {0, 2, 4}, {1, 3}, {5, 0}, {0, 1}, {2, 3}};
  ASSERT_TRUE(ldpc::check_precode_structure(start).has_value());
  ldpc::protograph_search_options o;
  o.design_rows = 6;
  o.candidates = 25;
  o.seed = base_seed();
  SCOPED_TRACE(seed_note(o.seed));
  std::uint64_t improvements = 0;
  double last = 1e9;
  auto a = ldpc::search_protograph(start, o, [&](const ldpc::protograph_search_step& s) {
    EXPECT_LT(s.threshold_snr, last);
    last = s.threshold_snr;
    ++improvements;
  });
  ASSERT_TRUE(a.has_value()) << a.error().message;
  EXPECT_EQ(a->evaluated, o.candidates);
  EXPECT_LE(a->threshold_snr, ldpc::ga_threshold_snr(start, o.design_rows, o.de));
  EXPECT_DOUBLE_EQ(a->threshold_snr, ldpc::ga_threshold_snr(a->best, o.design_rows, o.de));
  EXPECT_TRUE(ldpc::check_precode_structure(a->best).has_value());
  EXPECT_TRUE(a->best.validate().has_value());
  for (std::size_t i = o.design_rows; i < a->best.extension_rows.size(); ++i)
    EXPECT_EQ(a->best.extension_rows[i], a->best.extension_rows[i - o.design_rows]);
  auto b = ldpc::search_protograph(start, o);
  ASSERT_TRUE(b.has_value());
  EXPECT_EQ(b->best.precode_rows, a->best.precode_rows);
  EXPECT_EQ(b->best.extension_rows, a->best.extension_rows);
  o.design_rows = 9;
  EXPECT_FALSE(ldpc::search_protograph(start, o).has_value());
  o.design_rows = 6;
  o.candidates = 0;
  EXPECT_FALSE(ldpc::search_protograph(start, o).has_value());
  auto bad = start;
  bad.precode_rows = {{0, 1, 2, 3}, {0, 1, 4, 5}};
  EXPECT_FALSE(ldpc::search_protograph(bad, {.design_rows = 6}).has_value());
  std::cout << "search: " << improvements << " improvements in " << a->evaluated << " candidates, threshold SNR "
            << a->threshold_snr << '\n';
}
