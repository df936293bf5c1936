#include "relay/messages.hpp"

#include <cstring>
#include <type_traits>

namespace cvqkd::relay {

std::string_view to_string(route_type t) noexcept {
  switch (t) {
    case route_type::direct: return "direct";
    case route_type::relay: return "relay";
    case route_type::multipath: return "multipath";
  }
  return "unknown";
}

expected<route_type> parse_route_type(std::string_view text) {
  if (text == "direct") return route_type::direct;
  if (text == "relay") return route_type::relay;
  if (text == "multipath") return route_type::multipath;
  return fail(errc::invalid_argument,
              "unknown route type '" + std::string(text) + "'; use direct, relay or multipath");
}

std::string_view to_string(abort_reason r) noexcept {
  switch (r) {
    case abort_reason::timeout: return "timeout";
    case abort_reason::link_down: return "link down";
    case abort_reason::pool_exhausted: return "link key pool exhausted";
    case abort_reason::auth_failure: return "authentication failure";
    case abort_reason::bad_message: return "malformed message";
    case abort_reason::store_failed: return "key store refused the key";
    case abort_reason::superseded: return "superseded by a newer round";
    case abort_reason::cancelled: return "cancelled";
  }
  return "unknown";
}

message clone(const message& m) {
  return std::visit(
    [](const auto& v) -> message {
      using T = std::decay_t<decltype(v)>;
      if constexpr (std::is_same_v<T, relay_key>)
        return relay_key{v.ref, v.path, v.hop, v.range, v.ciphertext.clone(), v.tag};
      else
        return v;
    },
    m);
}

namespace {

// Fixed-layout little-endian writer into a buffer sized once (this runs twice per hop message).
class encoder {
public:
  explicit encoder(std::size_t size) : out_(size) {}
  void u64(std::uint64_t v) {
    for (int i = 0; i < 8; ++i) out_[pos_ + i] = static_cast<std::byte>(v >> (8 * i));
    pos_ += 8;
  }
  void raw(const void* p, std::size_t n) {
    if (n > 0) std::memcpy(out_.data() + pos_, p, n);
    pos_ += n;
  }
  void str(std::string_view s) {
    u64(s.size());
    raw(s.data(), s.size());
  }
  void bytes(std::span<const std::byte> b) {
    u64(b.size());
    raw(b.data(), b.size());
  }
  void common(std::string_view domain, const share_ref& ref, const std::vector<node_id>& path,
              std::uint32_t hop, pool_range range) {
    str(domain);
    str(ref.source);
    str(ref.key_id);
    u64(ref.attempt);
    u64(ref.share_index);
    u64(ref.share_count);
    u64(path.size());
    for (const auto& n : path) str(n);
    u64(hop);
    u64(range.offset);
    u64(range.bytes);
  }
  std::vector<std::byte> take() { return std::move(out_); }

private:
  std::vector<std::byte> out_;
  std::size_t pos_ = 0;
};

constexpr std::string_view key_domain = "cvqkd-relay-key-v1";
constexpr std::string_view done_domain = "cvqkd-relay-done-v1";

// Exact size of common(): 11 words, the strings' lengths and bytes.
std::size_t common_size(std::string_view domain, const share_ref& ref, const std::vector<node_id>& path) {
  std::size_t n = 11 * 8 + domain.size() + ref.source.size() + ref.key_id.size();
  for (const auto& p : path) n += 8 + p.size();
  return n;
}

}  // namespace

std::vector<std::byte> authenticated_bytes(const relay_key& m) {
  encoder e(common_size(key_domain, m.ref, m.path) + 8 + m.ciphertext.size());
  e.common(key_domain, m.ref, m.path, m.hop, m.range);
  e.bytes(m.ciphertext.bytes());
  return e.take();
}

std::vector<std::byte> authenticated_bytes(const relay_done& m) {
  encoder e(common_size(done_domain, m.ref, m.path));
  e.common(done_domain, m.ref, m.path, m.hop, m.range);
  return e.take();
}

}  // namespace cvqkd::relay
