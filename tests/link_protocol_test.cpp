// The link protocol end to end on simulated hardware: identical keys at both ends, nothing
// released under attack or tampering, and a lossy classical channel that changes nothing.
#include <gtest/gtest.h>

#include "links/session.hpp"
#include "test_seed.hpp"

using namespace cvqkd;
using namespace cvqkd::links;

namespace {

// A short, bright campus link (0.46 dB) at SNR ~0.2, where the CI-sized code family reconciles
// reliably at beta = 0.8 and a 2e6-symbol block gives a positive finite-size key.
session_config campus_link(std::uint64_t seed) {
  session_config s;
  auto& p = s.link.hardware.profile;
  p.name = "test-campus";
  p.detection = detection::heterodyne;
  p.v_a = 0.56;
  p.xi = 0.01;
  p.eta = 0.8;
  p.v_el = 0.01;
  p.residual_phase_noise_rad2 = 1e-4;
  p.calibration_samples = 400000;
  p.symbol_rate_baud = 1e8;
  s.link.hardware.transmittance = 0.9;
  s.link.hardware.seed = seed;
  s.link.symbols = 2'000'000;
  s.link.beta = 0.8;
  s.short_codes = true;
  return s;
}

}  // namespace

TEST(link_protocol, both_ends_get_the_same_positive_key) {
  const auto seed = test_support::base_seed();
  SCOPED_TRACE(test_support::seed_note(seed));
  auto r = run_session(campus_link(seed));
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_TRUE(r->abort_reason.empty()) << r->abort_reason;
  EXPECT_TRUE(r->keys_identical);
  EXPECT_GT(r->secret_key_bits, 0u);
  EXPECT_EQ(r->alice.secret_bits, r->bob.secret_bits);
  EXPECT_EQ(r->alice.n_out, r->secret_key_bits + r->alice.auth_reserve_bits);
  EXPECT_GT(r->alice.frames, 10u);
  EXPECT_LE(r->alice.fer, 0.5);
  EXPECT_GT(r->finite_size_bound, 0.0);
  // What was released never exceeds what the bound allows.
  EXPECT_LE(r->bits_per_symbol, r->finite_size_bound);
}

TEST(link_protocol, intercept_resend_releases_nothing_and_says_why) {
  auto s = campus_link(test_support::base_seed() + 1);
  s.link.hardware.eve = hw::eavesdropper{hw::eavesdropper::kind::intercept_resend, 1.0};
  auto r = run_session(s);
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_EQ(r->secret_key_bits, 0u);
  EXPECT_FALSE(r->abort_reason.empty());
  EXPECT_TRUE(r->keys_identical) << "neither end may hold a key";
}

TEST(link_protocol, tampering_with_any_message_type_aborts_the_round) {
  for (auto type : {msg_type::sift, msg_type::rate, msg_type::recon, msg_type::verify, msg_type::verdict,
                    msg_type::pa_params, msg_type::pa_seed, msg_type::confirm}) {
    auto s = campus_link(test_support::base_seed() + 2);
    s.link.symbols = 1'000'000;
    s.link.beta = 0.75;
    s.channel.tamper = type;
    auto r = run_session(s);
    ASSERT_TRUE(r.has_value()) << r.error().message;
    SCOPED_TRACE(static_cast<int>(type));
    EXPECT_EQ(r->secret_key_bits, 0u);
    // Either the altered contents fail first (a malformed or inconsistent message) or the next
    // transcript tag does; the round ends without key at both ends either way.
    EXPECT_FALSE(r->abort_reason.empty());
    EXPECT_EQ(r->alice.status, round_report::state::aborted);
    EXPECT_EQ(r->bob.status, round_report::state::aborted);
  }
}

TEST(link_protocol, an_altered_rate_message_never_yields_mismatched_keys) {
  // The rate message (SNR estimate and code name) altered in transit: whatever it turns into, the
  // round must end without a key at either end, never with two different keys.
  auto s = campus_link(test_support::base_seed() + 4);
  s.link.symbols = 1'000'000;
  s.link.beta = 0.75;
  s.channel.tamper = msg_type::rate;  // the SNR estimate: a valid double, silently changed
  auto r = run_session(s);
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_EQ(r->secret_key_bits, 0u);
  EXPECT_TRUE(r->keys_identical) << "neither end may hold a key";
}

TEST(link_protocol, loss_duplication_and_reordering_do_not_change_the_key) {
  const auto seed = test_support::base_seed() + 3;
  SCOPED_TRACE(test_support::seed_note(seed));
  auto clean = run_session(campus_link(seed));
  ASSERT_TRUE(clean.has_value());
  ASSERT_GT(clean->secret_key_bits, 0u) << clean->abort_reason;
  auto s = campus_link(seed);
  s.channel = channel_faults{.drop = 0.1, .duplicate = 0.1, .reorder = 0.2, .tamper = std::nullopt, .seed = seed};
  auto lossy = run_session(s);
  ASSERT_TRUE(lossy.has_value()) << lossy.error().message;
  EXPECT_TRUE(lossy->keys_identical);
  EXPECT_EQ(lossy->secret_key_bits, clean->secret_key_bits);
  EXPECT_GT(lossy->retransmissions, 0u);
  EXPECT_EQ(lossy->alice.frames_failed, clean->alice.frames_failed);
}
