// The relay's byte encoding (relay/wire.hpp): every message type survives a round trip with every
// field, and truncated, extended or foreign input is refused.
#include <gtest/gtest.h>

#include "relay/wire.hpp"

namespace cvqkd::relay {
namespace {

share_ref ref() { return share_ref{"Hakusan", "0b3c-key", 3, 1, 2}; }

TEST(relay_wire, every_message_type_round_trips) {
  link_state_ad ad{"Otemachi", 42, 17, {{"Hongo", true, 8192, 1234.5}, {"Koganei", false, 0, 0.0}}};
  message key_msg = relay_key{ref(), {"Hakusan", "Otemachi", "Hongo"}, 1, {1ull << 25 | 7, 64}, secure_buffer(32), 0xfeedu};
  auto& key = std::get<relay_key>(key_msg);
  key.ciphertext.data()[5] = std::byte{0xAA};
  relay_done done{ref(), {"Hakusan", "Otemachi"}, 0, {9, 48}, 77};
  relay_abort ab{ref(), {"Hakusan", "Otemachi"}, 0, false, pool_range{5, 6}, abort_reason::auth_failure, "Otemachi",
                 std::string("Hongo")};
  relay_abort ab2{ref(), {"A", "B"}, 0, true, std::nullopt, abort_reason::timeout, "A", std::nullopt};
  pool_sync sync{123456};

  auto back_ad = decode(encode(ad));
  ASSERT_TRUE(back_ad.has_value());
  const auto& a = std::get<link_state_ad>(*back_ad);
  EXPECT_EQ(a.origin, "Otemachi");
  EXPECT_EQ(a.sequence, 42u);
  EXPECT_EQ(a.age_ms, 17u);
  EXPECT_EQ(a.links, ad.links);

  auto back_key = decode(encode(key_msg));
  ASSERT_TRUE(back_key.has_value());
  const auto& k = std::get<relay_key>(*back_key);
  EXPECT_EQ(k.ref, key.ref);
  EXPECT_EQ(k.path, key.path);
  EXPECT_EQ(k.hop, 1u);
  EXPECT_EQ(k.range, key.range);
  EXPECT_TRUE(constant_time_equal(k.ciphertext.bytes(), key.ciphertext.bytes()));
  EXPECT_EQ(k.tag, 0xfeedu);
  EXPECT_EQ(authenticated_bytes(k), authenticated_bytes(key));

  auto back_done = decode(encode(done));
  ASSERT_TRUE(back_done.has_value());
  EXPECT_EQ(authenticated_bytes(std::get<relay_done>(*back_done)), authenticated_bytes(done));
  EXPECT_EQ(std::get<relay_done>(*back_done).tag, 77u);

  for (const auto& m : {ab, ab2}) {
    auto back = decode(encode(m));
    ASSERT_TRUE(back.has_value());
    const auto& x = std::get<relay_abort>(*back);
    EXPECT_EQ(x.ref, m.ref);
    EXPECT_EQ(x.path, m.path);
    EXPECT_EQ(x.downstream, m.downstream);
    EXPECT_EQ(x.range.has_value(), m.range.has_value());
    if (x.range) {
      EXPECT_EQ(*x.range, *m.range);
    }
    EXPECT_EQ(x.reason, m.reason);
    EXPECT_EQ(x.reported_by, m.reported_by);
    EXPECT_EQ(x.culprit, m.culprit);
  }
  auto back_sync = decode(encode(sync));
  ASSERT_TRUE(back_sync.has_value());
  EXPECT_EQ(std::get<pool_sync>(*back_sync).outgoing_cursor, 123456u);
}

TEST(relay_wire, truncated_extended_and_foreign_bytes_are_refused) {
  message key = relay_key{ref(), {"A", "B"}, 0, {0, 32}, secure_buffer(32), 1};
  auto bytes = encode(key);
  for (std::size_t n = 0; n < bytes.size(); n += 7) {
    auto r = decode(std::span<const std::byte>(bytes).first(n));
    ASSERT_FALSE(r.has_value()) << "prefix of " << n << " bytes";
    EXPECT_EQ(r.error().code, errc::parse_error);
  }
  auto longer = bytes;
  longer.push_back(std::byte{0});
  EXPECT_FALSE(decode(longer).has_value());
  auto other = bytes;
  other[0] = std::byte{9};  // version
  EXPECT_FALSE(decode(other).has_value());
  other = bytes;
  other[1] = std::byte{99};  // type
  EXPECT_FALSE(decode(other).has_value());
  // A path length far beyond any network is refused before allocating.
  std::vector<std::byte> huge{std::byte{1}, std::byte{2}};
  for (int i = 0; i < 2; ++i) {  // source, key_id: empty strings
    for (int j = 0; j < 8; ++j) huge.push_back(std::byte{0});
  }
  for (int j = 0; j < 24; ++j) huge.push_back(std::byte{0});  // attempt, index, count
  for (int j = 0; j < 8; ++j) huge.push_back(std::byte{0xFF});  // path length
  EXPECT_FALSE(decode(huge).has_value());
}

}  // namespace
}  // namespace cvqkd::relay
