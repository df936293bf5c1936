#pragma once
// Little-endian encoding of the classical channel's message bodies (links/ internal: the protocol
// and the engine share it). A reader that runs past its input, or meets a length that does not
// fit, turns !ok() and returns zeros; callers check ok() once after reading a whole message.

#include <bit>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "reconciliation/verification/hash.hpp"

namespace cvqkd::links::codec {

using reconciliation::verification::gf128;

class writer {
public:
  void u8(std::uint8_t v) { out_.push_back(std::byte{v}); }
  void u64(std::uint64_t v) {
    for (int i = 0; i < 8; ++i) out_.push_back(std::byte(v >> (8 * i)));
  }
  void f64(double v) { u64(std::bit_cast<std::uint64_t>(v)); }
  void g128(gf128 v) {
    u64(v.lo);
    u64(v.hi);
  }
  void text(std::string_view s) {
    u64(s.size());
    for (char c : s) out_.push_back(std::byte(c));
  }
  void f32s(std::span<const double> v) {
    u64(v.size());
    for (double d : v) {
      const auto bits = std::bit_cast<std::uint32_t>(static_cast<float>(d));
      for (int i = 0; i < 4; ++i) out_.push_back(std::byte(bits >> (8 * i)));
    }
  }
  void f64s(std::span<const double> v) {
    u64(v.size());
    for (double d : v) f64(d);
  }
  void bits(std::span<const std::uint8_t> b) {  // one 0/1 per byte in, packed LSB-first out
    u64(b.size());
    std::uint8_t acc = 0;
    for (std::size_t i = 0; i < b.size(); ++i) {
      acc |= static_cast<std::uint8_t>((b[i] & 1u) << (i % 8));
      if (i % 8 == 7 || i + 1 == b.size()) {
        u8(acc);
        acc = 0;
      }
    }
  }
  void bytes(std::span<const std::byte> b) {
    u64(b.size());
    out_.insert(out_.end(), b.begin(), b.end());
  }
  std::vector<std::byte> take() { return std::move(out_); }

private:
  std::vector<std::byte> out_;
};

class reader {
public:
  explicit reader(std::span<const std::byte> in) : in_(in) {}
  bool ok() const noexcept { return ok_; }
  std::uint8_t u8() {
    if (!need(1)) return 0;
    return std::to_integer<std::uint8_t>(in_[pos_++]);
  }
  std::uint64_t u64() {
    if (!need(8)) return 0;
    std::uint64_t v = 0;
    for (int i = 0; i < 8; ++i) v |= std::to_integer<std::uint64_t>(in_[pos_++]) << (8 * i);
    return v;
  }
  double f64() { return std::bit_cast<double>(u64()); }
  gf128 g128() {
    gf128 g;
    g.lo = u64();
    g.hi = u64();
    return g;
  }
  std::string text() {
    const auto n = u64();
    if (!need(n)) return {};
    std::string s(reinterpret_cast<const char*>(in_.data() + pos_), n);
    pos_ += n;
    return s;
  }
  std::vector<double> f32s() {
    const auto n = u64();
    if (n > (in_.size() - pos_) / 4 || !need(4 * n)) return fail_vec<double>();
    std::vector<double> v(n);
    for (auto& d : v) {
      std::uint32_t bits = 0;
      for (int i = 0; i < 4; ++i) bits |= std::to_integer<std::uint32_t>(in_[pos_++]) << (8 * i);
      d = std::bit_cast<float>(bits);
    }
    return v;
  }
  std::vector<double> f64s() {
    const auto n = u64();
    if (n > (in_.size() - pos_) / 8) return fail_vec<double>();
    std::vector<double> v(n);
    for (auto& d : v) d = f64();
    return v;
  }
  std::vector<std::uint8_t> bits() {
    const auto n = u64();
    if (n / 8 > in_.size() - pos_ || !need((n + 7) / 8)) return fail_vec<std::uint8_t>();
    std::vector<std::uint8_t> b(n);
    for (std::size_t i = 0; i < n; ++i) b[i] = (std::to_integer<unsigned>(in_[pos_ + i / 8]) >> (i % 8)) & 1u;
    pos_ += (n + 7) / 8;
    return b;
  }
  std::vector<std::byte> bytes() {
    const auto n = u64();
    if (!need(n)) return {};
    std::vector<std::byte> b(in_.begin() + static_cast<std::ptrdiff_t>(pos_),
                             in_.begin() + static_cast<std::ptrdiff_t>(pos_ + n));
    pos_ += n;
    return b;
  }

private:
  bool need(std::uint64_t n) {
    if (!ok_ || n > in_.size() - pos_) ok_ = false;
    return ok_;
  }
  template <class T>
  std::vector<T> fail_vec() {
    ok_ = false;
    return {};
  }
  std::span<const std::byte> in_;
  std::size_t pos_ = 0;
  bool ok_ = true;
};


}  // namespace cvqkd::links::codec
