// Privacy amplification: Toeplitz convention and reference vectors, the additive-FFT product against
// the definition on random cases (every kernel tier this CPU has), bit layout, output length from
// the finite-size bound, and statistical sanity of the output.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "core/drbg.hpp"
#include "reconciliation/privacy/bit_vector.hpp"
#include "reconciliation/privacy/gf2_fft.hpp"
#include "reconciliation/privacy/output_length.hpp"
#include "reconciliation/privacy/toeplitz.hpp"
#include "reconciliation/security/key_rate.hpp"
#include "tests/test_seed.hpp"

namespace {

using namespace cvqkd;
using namespace cvqkd::reconciliation::privacy;

bit_vector bits(std::vector<std::uint8_t> v) { return bit_vector::from_bits(v); }

std::vector<std::uint8_t> to_vec(const bit_vector& b) {
  std::vector<std::uint8_t> v(b.size());
  for (std::size_t i = 0; i < b.size(); ++i) v[i] = b.get(i) ? 1 : 0;
  return v;
}

bit_vector random_bits(std::size_t n, random_source& rng) {
  bit_vector v(n);
  rng.fill(std::as_writable_bytes(v.words()));
  v.clear_padding();
  return v;
}

// Every kernel tier compiled in and supported by this CPU ("portable" always).
std::vector<std::string> kernels() {
  std::vector<std::string> k;
  for (const char* name : {"portable", "pclmulqdq", "avx512-vpclmulqdq"})
    if (detail::kernels_by_name(name) != nullptr) k.emplace_back(name);
  return k;
}

toeplitz_hasher fft_hasher(const std::string& kernel) {
  auto h = toeplitz_hasher::create({toeplitz_method::additive_fft, kernel, true});
  EXPECT_TRUE(h.has_value());
  return std::move(*h);
}

struct reference_vector {
  std::size_t n, m;
  std::vector<std::uint8_t> x, s, out;
};

// ../shared/reference/cvqkd-theory.md, "Toeplitz privacy amplification convention".
const reference_vector reference_vectors[] = {
    {3, 2, {1, 0, 0}, {1, 1, 1, 1}, {1, 1}},
    {6, 4, {1, 1, 0, 0, 0, 1}, {1, 1, 0, 1, 0, 1, 0, 0, 1}, {0, 1, 1, 1}},
    {6, 6, {0, 0, 1, 1, 0, 0}, {0, 0, 1, 1, 1, 1, 0, 1, 1, 0, 1}, {1, 1, 1, 0, 1, 0}},
};

TEST(privacy_toeplitz, reference_vectors_naive) {
  for (const auto& r : reference_vectors) {
    SCOPED_TRACE(testing::Message() << "n=" << r.n << " m=" << r.m);
    auto out = toeplitz_naive(bits(r.x), bits(r.s), r.m);
    ASSERT_TRUE(out.has_value()) << out.error().message;
    EXPECT_EQ(to_vec(*out), r.out);
  }
}

TEST(privacy_toeplitz, reference_vectors_every_method_and_kernel) {
  for (const auto& k : kernels()) {
    for (auto method : {toeplitz_method::automatic, toeplitz_method::naive, toeplitz_method::additive_fft}) {
      auto h = toeplitz_hasher::create({method, k, true});
      ASSERT_TRUE(h.has_value()) << h.error().message;
      for (const auto& r : reference_vectors) {
        SCOPED_TRACE(testing::Message() << k << " " << to_string(method) << " n=" << r.n << " m=" << r.m);
        auto out = h->hash(bits(r.x), bits(r.s), r.m);
        ASSERT_TRUE(out.has_value()) << out.error().message;
        EXPECT_EQ(to_vec(*out), r.out);
      }
    }
  }
}

// The definition written out bit by bit, independent of toeplitz_naive's word-parallel form.
TEST(privacy_toeplitz, naive_matches_definition) {
  const std::uint64_t seed = test_support::base_seed() + 1;
  SCOPED_TRACE(test_support::seed_note(seed));
  seeded_drbg rng(seed, "privacy-definition");
  for (std::size_t n : {1, 5, 64, 65, 130, 300}) {
    for (std::size_t m : {std::size_t{1}, (n + 1) / 2, n}) {
      const bit_vector x = random_bits(n, rng), s = random_bits(n + m - 1, rng);
      auto out = toeplitz_naive(x, s, m);
      ASSERT_TRUE(out.has_value());
      for (std::size_t i = 0; i < m; ++i) {
        bool acc = false;
        for (std::size_t j = 0; j < n; ++j) {
          const bool t = i >= j ? s.get(i - j) : s.get(m + n - 1 - (j - i));
          acc ^= t && x.get(j);
        }
        ASSERT_EQ(out->get(i), acc) << "n=" << n << " m=" << m << " i=" << i;
      }
    }
  }
}

TEST(privacy_toeplitz, shapes_are_validated) {
  const bit_vector x(10), s(14);
  auto e = toeplitz_naive(x, s, 0);
  ASSERT_FALSE(e.has_value());
  EXPECT_EQ(e.error().code, errc::invalid_argument);
  EXPECT_NE(e.error().message.find("n_out is 0"), std::string::npos) << e.error().message;

  auto h = toeplitz_hasher::create();
  ASSERT_TRUE(h.has_value());
  e = h->hash(x, bit_vector(20), 11);  // n_out > n_in
  ASSERT_FALSE(e.has_value());
  EXPECT_EQ(e.error().code, errc::invalid_argument);
  EXPECT_NE(e.error().message.find("n_in = 10 < n_out = 11"), std::string::npos) << e.error().message;

  e = h->hash(x, bit_vector(13), 5);  // seed must be 14 bits
  ASSERT_FALSE(e.has_value());
  EXPECT_NE(e.error().message.find("expected n_in + n_out - 1 = 14"), std::string::npos) << e.error().message;
  EXPECT_TRUE(validate_toeplitz_shape(10, 5, 14).has_value());
  EXPECT_EQ(toeplitz_seed_bits(10, 5), 14u);
}

TEST(privacy_toeplitz, unknown_kernel_and_method_are_rejected) {
  auto h = toeplitz_hasher::create({toeplitz_method::additive_fft, "sse9", true});
  ASSERT_FALSE(h.has_value());
  EXPECT_EQ(h.error().code, errc::unsupported);
  auto m = parse_toeplitz_method("fftw");
  ASSERT_FALSE(m.has_value());
  EXPECT_NE(m.error().message.find("additive-fft"), std::string::npos);
  EXPECT_EQ(*parse_toeplitz_method("additive-fft"), toeplitz_method::additive_fft);
}

// Random cases against the naive product: sizes around word and transform boundaries, m = 1,
// m = n, and n up to 1e5 (the FFT path runs even where `auto` would choose naive).
TEST(privacy_toeplitz, additive_fft_matches_naive_on_random_cases) {
  const std::uint64_t seed = test_support::base_seed() + 2;
  SCOPED_TRACE(test_support::seed_note(seed));
  seeded_drbg rng(seed, "privacy-random-cases");
  struct shape { std::size_t n, m; };
  std::vector<shape> shapes;
  for (std::size_t n : {1, 2, 3, 31, 32, 33, 63, 64, 65, 127, 128, 129, 500, 1000, 1023, 1024, 1025, 4097, 10000}) {
    for (std::size_t m : {std::size_t{1}, n / 4 + 1, n / 2, n - n / 3, n}) {
      if (m >= 1 && m <= n) shapes.push_back({n, m});
    }
  }
  shapes.push_back({33333, 8334});
  shapes.push_back({65536 + 77, 16385});
  shapes.push_back({100000, 25000});
  shapes.push_back({100000, 100000});
  for (const auto& k : kernels()) {
    toeplitz_hasher h = fft_hasher(k);
    for (const auto& sh : shapes) {
      if (k == "portable" && sh.n > 10000) continue;  // bit-by-bit carry-less products: slow
      SCOPED_TRACE(testing::Message() << k << " n=" << sh.n << " m=" << sh.m);
      const bit_vector x = random_bits(sh.n, rng), s = random_bits(sh.n + sh.m - 1, rng);
      auto want = toeplitz_naive(x, s, sh.m);
      auto got = h.hash(x, s, sh.m);
      ASSERT_TRUE(want.has_value() && got.has_value());
      EXPECT_EQ(h.last_method(), toeplitz_method::additive_fft);
      ASSERT_EQ(got->size(), sh.m);
      EXPECT_TRUE(*got == *want);
      if (sh.m % 64 != 0) {
        EXPECT_EQ(got->words().back() >> (sh.m % 64), 0u) << "padding bits must stay zero";
      }
    }
  }
}

// Blocks large enough for the transform's cache-blocked recursion and zero-skipping (2^18 and
// more coefficients): output bits at sampled positions against the definition, bit by bit.
TEST(privacy_toeplitz, large_blocks_spot_checked_against_definition) {
  const std::uint64_t seed = test_support::base_seed() + 6;
  SCOPED_TRACE(test_support::seed_note(seed));
  seeded_drbg rng(seed, "privacy-large");
  auto h = toeplitz_hasher::create();
  ASSERT_TRUE(h.has_value());
  for (const auto& [n, m] : {std::pair<std::size_t, std::size_t>{3'000'017, 750'001}, {2'000'000, 2'000'000}}) {
    SCOPED_TRACE(testing::Message() << "n=" << n << " m=" << m);
    const bit_vector x = random_bits(n, rng), s = random_bits(n + m - 1, rng);
    auto out = h->hash(x, s, m);
    ASSERT_TRUE(out.has_value());
    EXPECT_EQ(h->last_method(), toeplitz_method::additive_fft);
    std::vector<std::size_t> rows = {0, 1, m / 2, m - 2, m - 1};
    for (int r = 0; r < 3; ++r) rows.push_back(rng.next_u64() % m);
    for (const std::size_t i : rows) {
      bool acc = false;
      for (std::size_t j = 0; j < n; ++j)
        if (x.get(j)) acc ^= i >= j ? s.get(i - j) : s.get(m + n - 1 - (j - i));
      EXPECT_EQ(out->get(i), acc) << "row " << i;
    }
  }
}

// The hasher keeps its workspace between calls: shrinking and growing sizes must not leave
// stale data behind, and the same input gives the same output.
TEST(privacy_toeplitz, workspace_reuse_across_sizes) {
  const std::uint64_t seed = test_support::base_seed() + 3;
  SCOPED_TRACE(test_support::seed_note(seed));
  seeded_drbg rng(seed, "privacy-reuse");
  auto h = toeplitz_hasher::create({toeplitz_method::additive_fft, "", false});
  ASSERT_TRUE(h.has_value());
  for (std::size_t n : {50000, 700, 50000, 20000, 3}) {
    const std::size_t m = n / 3 + 1;
    const bit_vector x = random_bits(n, rng), s = random_bits(n + m - 1, rng);
    auto a = h->hash(x, s, m);
    auto b = h->hash(x, s, m);
    auto want = toeplitz_naive(x, s, m);
    ASSERT_TRUE(a && b && want);
    EXPECT_TRUE(*a == *want) << "n=" << n;
    EXPECT_TRUE(*b == *want) << "n=" << n;
  }
  EXPECT_GT(h->workspace_bytes(), 0u);
}

// The additive FFT itself: forward then inverse is the identity, and the conversions invert
// each other (monomial -> novel on 32-bit data, back on 64-bit data).
TEST(privacy_gf2_fft, transforms_invert) {
  const std::uint64_t seed = test_support::base_seed() + 4;
  SCOPED_TRACE(test_support::seed_note(seed));
  seeded_drbg rng(seed, "privacy-fft");
  for (const auto& name : kernels()) {
    const auto& kt = *detail::kernels_by_name(name);
    for (int k : {5, 6, 9, 13}) {
      SCOPED_TRACE(testing::Message() << name << " k=" << k);
      const std::size_t n = std::size_t{1} << k;
      std::vector<std::uint64_t> buf(n + 8), orig(n);
      auto* d = reinterpret_cast<std::uint64_t*>((reinterpret_cast<std::uintptr_t>(buf.data()) + 63) & ~std::uintptr_t{63});
      for (std::size_t i = 0; i < n; ++i) d[i] = orig[i] = rng.next_u64();
      detail::fft_forward(kt, d, k);
      EXPECT_NE(std::vector<std::uint64_t>(d, d + n), orig);
      detail::fft_inverse(kt, d, k);
      EXPECT_EQ(std::vector<std::uint64_t>(d, d + n), orig);

      std::vector<std::uint32_t> small(n);
      for (auto& v : small) v = static_cast<std::uint32_t>(rng.next_u64());
      auto* d32 = reinterpret_cast<std::uint32_t*>(d);
      for (std::size_t i = 0; i < n; ++i) d32[i] = small[i];
      detail::to_novel(kt, d32, k, n);
      kt.widen(d, n);
      detail::to_mono(kt, d, k);
      for (std::size_t i = 0; i < n; ++i) ASSERT_EQ(d[i], small[i]) << "i=" << i;
    }
  }
}

TEST(privacy_gf2_fft, cantor_basis) {
  const auto& t = detail::tables();
  EXPECT_EQ(t.beta[0], 1u);
  for (int i = 1; i < 40; ++i) EXPECT_EQ(detail::gf_mul_slow(t.beta[i], t.beta[i]) ^ t.beta[i], t.beta[i - 1]) << i;
  // z * z^63 = z^64 = z^4 + z^3 + z + 1
  EXPECT_EQ(detail::gf_mul_slow(2, std::uint64_t{1} << 63), 0x1Bu);
}

TEST(privacy_bit_vector, layout_is_lsb_first) {
  bit_vector v(70);
  EXPECT_EQ(v.word_count(), 2u);
  v.set(0, true);
  v.set(9, true);
  v.set(64, true);
  v.set(69, true);
  EXPECT_EQ(v.words()[0], 0x201u);
  EXPECT_EQ(v.words()[1], 0x21u);
  EXPECT_EQ(v.popcount(), 4u);
  bit_vector c = v.clone();
  EXPECT_TRUE(c == v);
  c.set(9, false);
  EXPECT_FALSE(c == v);
  v.words()[1] |= ~std::uint64_t{0};
  v.clear_padding();
  EXPECT_EQ(v.words()[1], 0x3Fu);

  bit_vector k = bit_vector::from_bits(std::vector<std::uint8_t>{1, 0, 0, 0, 0, 0, 0, 1, 1, 1});
  const secure_buffer bytes = std::move(k).to_key_bytes();
  ASSERT_EQ(bytes.size(), 2u);
  EXPECT_EQ(static_cast<unsigned>(bytes.data()[0]), 0x81u);
  EXPECT_EQ(static_cast<unsigned>(bytes.data()[1]), 0x03u);
  EXPECT_EQ(k.size(), 0u);
}

// NIST SP 800-22 rev. 1a, tests 2.1 (frequency) and 2.3 (runs): p-values.
double monobit_p(const bit_vector& b) {
  const double n = static_cast<double>(b.size());
  const double s = 2.0 * static_cast<double>(b.popcount()) - n;
  return std::erfc(std::fabs(s) / std::sqrt(2.0 * n));
}
double runs_p(const bit_vector& b) {
  const double n = static_cast<double>(b.size());
  const double pi = static_cast<double>(b.popcount()) / n;
  if (std::fabs(pi - 0.5) >= 2.0 / std::sqrt(n)) return 0.0;  // the frequency prerequisite fails
  double runs = 1;
  for (std::size_t i = 1; i < b.size(); ++i) runs += b.get(i) != b.get(i - 1) ? 1 : 0;
  return std::erfc(std::fabs(runs - 2.0 * n * pi * (1 - pi)) / (2.0 * std::sqrt(2.0 * n) * pi * (1 - pi)));
}

// 1e6 output bits from a 4e6-bit input whose bits are 1 with probability 0.3 (min-entropy 0.51 bit
// per bit, twice the output length): the output must look uniform, the input must not.
TEST(privacy_statistics, output_passes_monobit_and_runs_at_1e6_bits) {
  const std::uint64_t seed = test_support::base_seed() + 5;
  SCOPED_TRACE(test_support::seed_note(seed));
  seeded_drbg rng(seed, "privacy-statistics");
  const std::size_t n_in = 4'000'000, n_out = 1'000'000;
  bit_vector x(n_in);
  {
    std::vector<std::uint8_t> r(n_in);
    rng.fill(std::as_writable_bytes(std::span(r)));
    for (std::size_t i = 0; i < n_in; ++i)
      if (r[i] < 77) x.set(i, true);  // P(1) = 77/256
  }
  const bit_vector s = random_bits(toeplitz_seed_bits(n_in, n_out), rng);
  auto h = toeplitz_hasher::create();
  ASSERT_TRUE(h.has_value());
  auto out = h->hash(x, s, n_out);
  ASSERT_TRUE(out.has_value());
  EXPECT_EQ(h->last_method(), toeplitz_method::additive_fft);

  bit_vector input_window(n_out);
  for (std::size_t w = 0; w < input_window.word_count(); ++w) input_window.words()[w] = x.words()[w];
  EXPECT_LT(monobit_p(input_window), 1e-6) << "control: the biased input must fail the frequency test";

  const double p1 = monobit_p(*out), p2 = runs_p(*out);
  EXPECT_GT(p1, 1e-4) << "monobit p-value";
  EXPECT_GT(p2, 1e-4) << "runs p-value";
}

// ---- output length -------------------------------------------------------------------------

security::channel_parameters homodyne_25km(double xi) {
  security::channel_parameters p;
  p.det = detection::homodyne;
  p.v_a = 4;
  p.transmittance = std::pow(10.0, -0.02 * 25);
  p.xi = xi;
  p.eta = 0.6;
  p.v_el = 0.05;
  return p;
}

security::finite_size_result bound_for(double xi, std::uint64_t n_total) {
  const auto p = homodyne_25km(xi);
  const std::uint64_t m = n_total / 2;
  auto r = security::key_rate_finite(security::finite_size_model::lgg2010, p, security::expected_statistics(p, m),
                                     n_total, m, 0.95, 0.0, security::epsilons{});
  EXPECT_TRUE(r.has_value());
  return *r;
}

TEST(privacy_output_length, matches_the_finite_size_reference) {
  // cvqkd-theory.md: L = 25 km, N = 1e8, m = n = N/2: K_fin = 3.829331e-2 bits per symbol of the block.
  const auto b = bound_for(0.01, 100'000'000);
  output_length_inputs in{.key_symbols = 50'000'000, .beta = 0.95, .fer = 0.0, .bound = b};
  auto n_out = secret_key_length(in);
  ASSERT_TRUE(n_out.has_value()) << n_out.error().message;
  EXPECT_NEAR(static_cast<double>(*n_out), 3.829331e-2 * 1e8, 1.0);
  EXPECT_NEAR(static_cast<double>(*n_out), b.key_rate * 1e8, 1.0);

  in.fer = 0.1;
  in.verification_bits = 1000;
  in.auth_bits = 256;
  n_out = secret_key_length(in);
  ASSERT_TRUE(n_out.has_value());
  EXPECT_EQ(*n_out, static_cast<std::uint64_t>(std::floor(5e7 * 0.9 * (0.95 * b.i_ab - b.chi_be_worst - b.delta_n) - 1256)));
}

TEST(privacy_output_length, says_which_term_leaves_no_key) {
  // Excess noise far above the threshold: the asymptotic part is negative.
  auto noisy = bound_for(0.2, 100'000'000);
  auto r = secret_key_length({.key_symbols = 50'000'000, .beta = 0.95, .fer = 0, .bound = noisy});
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, errc::no_secret_key);
  EXPECT_NE(r.error().message.find("beta*I_AB - chi_BE(T_min, xi_max)"), std::string::npos) << r.error().message;

  // A good channel but a short block: Delta(n) dominates.
  auto b = bound_for(0.01, 100'000'000);
  b.delta_n = 0.95 * b.i_ab - b.chi_be_worst + 1e-3;
  r = secret_key_length({.key_symbols = 1000, .beta = 0.95, .fer = 0, .bound = b});
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, errc::no_secret_key);
  EXPECT_NE(r.error().message.find("Delta(n)"), std::string::npos) << r.error().message;

  // Positive per-symbol rate, but the block cannot pay for verification and authentication.
  b = bound_for(0.01, 100'000'000);
  r = secret_key_length({.key_symbols = 10'000, .beta = 0.95, .fer = 0, .bound = b, .verification_bits = 64'000,
                         .auth_bits = 512});
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, errc::no_secret_key);
  EXPECT_NE(r.error().message.find("verification"), std::string::npos) << r.error().message;

  r = secret_key_length({.key_symbols = 10'000, .beta = 1.5, .fer = 0, .bound = b});
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, errc::invalid_argument);
  r = secret_key_length({.key_symbols = 10'000, .beta = 0.95, .fer = 1.0, .bound = b});
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, errc::invalid_argument);
}

}  // namespace
