#pragma once
// Random sources. A real transmitter must draw its symbols from a QRNG; hw/ defines the driver
// interface for one. Simulation and tests need reproducible streams, so they use seeded_drbg.

#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string_view>

namespace cvqkd {

/// Source of uniformly random bytes (QRNG, OS DRBG, or a seeded DRBG).
class random_source {
public:
  virtual ~random_source() = default;
  /// Fills `out` with random bytes. Never fails: a source that cannot deliver must abort its
  /// owner through its own health check before it is used.
  virtual void fill(std::span<std::byte> out) = 0;
  /// A uniformly distributed 64-bit word.
  std::uint64_t next_u64();
  /// A uniform double in [0, 1) with 53 random bits.
  double next_unit();
};

/// Deterministic generator: the AES-256-CTR keystream (the generate function of NIST SP 800-90A
/// CTR_DRBG, without derivation function or reseeding) under the key SHA-256(domain || seed).
/// Reproducible for a given (seed, domain); `domain` separates independent streams that share
/// a seed (e.g. "alice-symbols" vs "pe-selection"). Not a substitute for a QRNG in production.
class seeded_drbg final : public random_source {
public:
  seeded_drbg(std::uint64_t seed, std::string_view domain);
  ~seeded_drbg() override;
  seeded_drbg(const seeded_drbg&) = delete;
  seeded_drbg& operator=(const seeded_drbg&) = delete;
  void fill(std::span<std::byte> out) override;

private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

/// OpenSSL's system DRBG (RAND_priv_bytes; CTR_DRBG seeded from the OS). Aborts the process if
/// OpenSSL reports that its DRBG failed, since continuing would produce predictable key.
class system_random final : public random_source {
public:
  void fill(std::span<std::byte> out) override;
};

/// The Marsaglia polar method (Marsaglia & Bray, SIAM Review 6, 260 (1964)): exact N(0, 1)
/// variates, two per accepted pair of uniform draws. `unit()` must return uniforms in [0, 1).
class polar_normal {
public:
  template <class UniformFn>
  double next(UniformFn&& unit) {
    if (has_spare_) {
      has_spare_ = false;
      return spare_;
    }
    double u, v, s;
    do {
      u = 2.0 * unit() - 1.0;
      v = 2.0 * unit() - 1.0;
      s = u * u + v * v;
    } while (s >= 1.0 || s == 0.0);
    const double f = std::sqrt(-2.0 * std::log(s) / s);
    spare_ = v * f;
    has_spare_ = true;
    return u * f;
  }
  /// Forgets the buffered variate (it may derive from secret randomness).
  void clear() noexcept;

private:
  double spare_ = 0.0;
  bool has_spare_ = false;
};

/// Standard normal variates from a random_source (polar method over 53-bit uniforms).
class gaussian_sampler {
public:
  explicit gaussian_sampler(random_source& source) : source_(&source) {}
  ~gaussian_sampler();  // cleanses the buffered words: they determine Alice's symbols
  gaussian_sampler(const gaussian_sampler&) = delete;
  gaussian_sampler& operator=(const gaussian_sampler&) = delete;
  /// One N(0, 1) variate.
  double next();
  /// Fills `out` with i.i.d. N(0, sigma^2) variates.
  void fill(std::span<double> out, double sigma = 1.0);

private:
  double next_unit();

  random_source* source_;
  std::array<std::uint64_t, 256> words_{};  // uniform words drawn in batches: one fill() per 256
  std::size_t next_word_ = words_.size();
  polar_normal polar_;
};

}  // namespace cvqkd
