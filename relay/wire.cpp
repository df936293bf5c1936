#include "relay/wire.hpp"

#include <cstring>
#include <string>
#include <type_traits>

namespace cvqkd::relay {
namespace {

constexpr std::uint8_t wire_version = 1;
enum class tag : std::uint8_t { ad = 1, key, done, abort, sync };
constexpr std::size_t max_items = 4096;  // path lengths, link lists: far beyond any network

class writer {
public:
  void u8(std::uint8_t v) { out_.push_back(std::byte{v}); }
  void u64(std::uint64_t v) {
    for (int i = 0; i < 8; ++i) out_.push_back(static_cast<std::byte>(v >> (8 * i)));
  }
  void f64(double v) {
    std::uint64_t u;
    std::memcpy(&u, &v, 8);
    u64(u);
  }
  void str(std::string_view s) {
    u64(s.size());
    for (char c : s) out_.push_back(static_cast<std::byte>(c));
  }
  void bytes(std::span<const std::byte> b) {
    u64(b.size());
    out_.insert(out_.end(), b.begin(), b.end());
  }
  void ref(const share_ref& r) {
    str(r.source);
    str(r.key_id);
    u64(r.attempt);
    u64(r.share_index);
    u64(r.share_count);
  }
  void path(const std::vector<node_id>& p) {
    u64(p.size());
    for (const auto& n : p) str(n);
  }
  void range(const pool_range& r) {
    u64(r.offset);
    u64(r.bytes);
  }
  std::vector<std::byte> take() { return std::move(out_); }

private:
  std::vector<std::byte> out_;
};

class reader {
public:
  explicit reader(std::span<const std::byte> in) : in_(in) {}
  bool ok() const { return ok_; }
  bool done() const { return pos_ == in_.size(); }
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
  std::uint32_t u32() {
    const auto v = u64();
    if (v > UINT32_MAX) ok_ = false;
    return static_cast<std::uint32_t>(v);
  }
  double f64() {
    const auto u = u64();
    double d;
    std::memcpy(&d, &u, 8);
    return d;
  }
  std::string str() {
    const auto n = u64();
    if (!need(n)) return {};
    std::string s(reinterpret_cast<const char*>(in_.data() + pos_), n);
    pos_ += n;
    return s;
  }
  secure_buffer secret() {
    const auto n = u64();
    if (!need(n)) return {};
    secure_buffer b(in_.subspan(pos_, n));
    pos_ += n;
    return b;
  }
  std::size_t count() {
    const auto n = u64();
    if (n > max_items) ok_ = false;
    return ok_ ? n : 0;
  }
  share_ref ref() {
    share_ref r;
    r.source = str();
    r.key_id = str();
    r.attempt = u32();
    r.share_index = u32();
    r.share_count = u32();
    return r;
  }
  std::vector<node_id> path() {
    std::vector<node_id> p(count());
    for (auto& n : p) n = str();
    return p;
  }
  pool_range range() {
    pool_range r;
    r.offset = u64();
    r.bytes = u64();
    return r;
  }

private:
  bool need(std::uint64_t n) {
    if (!ok_ || n > in_.size() - pos_) ok_ = false;
    return ok_;
  }
  std::span<const std::byte> in_;
  std::size_t pos_ = 0;
  bool ok_ = true;
};

}  // namespace

std::vector<std::byte> encode(const message& m) {
  writer w;
  w.u8(wire_version);
  std::visit(
    [&](const auto& v) {
      using T = std::decay_t<decltype(v)>;
      if constexpr (std::is_same_v<T, link_state_ad>) {
        w.u8(static_cast<std::uint8_t>(tag::ad));
        w.str(v.origin);
        w.u64(v.sequence);
        w.u64(v.age_ms);
        w.u64(v.links.size());
        for (const auto& l : v.links) {
          w.str(l.neighbour);
          w.u8(l.up ? 1 : 0);
          w.u64(l.available_bits);
          w.f64(l.key_rate_bps);
        }
      } else if constexpr (std::is_same_v<T, relay_key>) {
        w.u8(static_cast<std::uint8_t>(tag::key));
        w.ref(v.ref);
        w.path(v.path);
        w.u64(v.hop);
        w.range(v.range);
        w.bytes(v.ciphertext.bytes());
        w.u64(v.tag);
      } else if constexpr (std::is_same_v<T, relay_done>) {
        w.u8(static_cast<std::uint8_t>(tag::done));
        w.ref(v.ref);
        w.path(v.path);
        w.u64(v.hop);
        w.range(v.range);
        w.u64(v.tag);
      } else if constexpr (std::is_same_v<T, relay_abort>) {
        w.u8(static_cast<std::uint8_t>(tag::abort));
        w.ref(v.ref);
        w.path(v.path);
        w.u64(v.hop);
        w.u8(v.downstream ? 1 : 0);
        w.u8(v.range ? 1 : 0);
        if (v.range) w.range(*v.range);
        w.u8(static_cast<std::uint8_t>(v.reason));
        w.str(v.reported_by);
        w.u8(v.culprit ? 1 : 0);
        if (v.culprit) w.str(*v.culprit);
      } else {
        w.u8(static_cast<std::uint8_t>(tag::sync));
        w.u64(v.outgoing_cursor);
      }
    },
    m);
  return w.take();
}

expected<message> decode(std::span<const std::byte> bytes) {
  reader r(bytes);
  const auto version = r.u8();
  const auto t = static_cast<tag>(r.u8());
  if (!r.ok() || version != wire_version)
    return fail(errc::parse_error, "relay message of an unknown version: run the same cvqkd version on every node");
  std::optional<message> out;
  switch (t) {
    case tag::ad: {
      link_state_ad ad;
      ad.origin = r.str();
      ad.sequence = r.u64();
      ad.age_ms = r.u32();
      ad.links.resize(r.count());
      for (auto& l : ad.links) {
        l.neighbour = r.str();
        l.up = r.u8() != 0;
        l.available_bits = r.u64();
        l.key_rate_bps = r.f64();
      }
      out = std::move(ad);
      break;
    }
    case tag::key: {
      relay_key k;
      k.ref = r.ref();
      k.path = r.path();
      k.hop = r.u32();
      k.range = r.range();
      k.ciphertext = r.secret();
      k.tag = r.u64();
      out = std::move(k);
      break;
    }
    case tag::done: {
      relay_done d;
      d.ref = r.ref();
      d.path = r.path();
      d.hop = r.u32();
      d.range = r.range();
      d.tag = r.u64();
      out = std::move(d);
      break;
    }
    case tag::abort: {
      relay_abort a;
      a.ref = r.ref();
      a.path = r.path();
      a.hop = r.u32();
      a.downstream = r.u8() != 0;
      if (r.u8() != 0) a.range = r.range();
      const auto reason = r.u8();
      if (reason > static_cast<std::uint8_t>(abort_reason::cancelled))
        return fail(errc::parse_error, "relay abort with an unknown reason code");
      a.reason = static_cast<abort_reason>(reason);
      a.reported_by = r.str();
      if (r.u8() != 0) a.culprit = r.str();
      out = std::move(a);
      break;
    }
    case tag::sync: out = pool_sync{r.u64()}; break;
    default: return fail(errc::parse_error, "relay message of an unknown type: run the same cvqkd version on every node");
  }
  if (!r.ok() || !r.done())
    return fail(errc::parse_error, "truncated or oversized relay message (corruption, or another cvqkd version)");
  return std::move(*out);
}

}  // namespace cvqkd::relay
