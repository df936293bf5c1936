// links::plan_block: the smallest finite-size block with key, from a link's design values.
#include <gtest/gtest.h>

#include <cmath>

#include "config/profile.hpp"
#include "links/block_plan.hpp"
#include "node/runtime.hpp"
#include "reconciliation/ldpc/codes.hpp"
#include "reconciliation/ldpc/operating_point.hpp"
#include "reconciliation/security/key_rate.hpp"

namespace {
using namespace cvqkd;
namespace sec = cvqkd::security;

links::block_plan_inputs metro(double km, double insertion_db = 0.0, const char* profile = "llo_metro") {
  links::block_plan_inputs in;
  auto p = config::builtin_profile(profile);
  EXPECT_TRUE(p);
  in.profile = *p;
  in.transmittance = std::pow(10.0, -(0.2 * km + insertion_db) / 10);
  return in;
}

TEST(BlockPlan, SmallestGridBlockWithPositiveKey) {
  auto in = metro(25);
  auto plan = links::plan_block(in);
  ASSERT_TRUE(plan) << plan.error().message;
  // 25 km llo_metro makes key at the profile's 1e7 symbols (cvqkd link simulate), so the smallest block is no larger.
  EXPECT_LE(plan->block_symbols, 20'000'000u);
  EXPECT_GE(plan->block_symbols, 10'000u);
  EXPECT_GT(plan->key_bits, 0.0);
  EXPECT_GT(plan->key_rate, 0.0);
  EXPECT_LT(plan->key_rate, plan->key_rate_asymptotic);  // finite-size penalties
  EXPECT_LE(plan->beta, in.profile.beta_target);
  EXPECT_DOUBLE_EQ(plan->seconds_per_block, double(plan->block_symbols) / in.profile.symbol_rate_baud);
  // One grid step below, no key: the plan is the smallest.
  in.max_symbols = plan->block_symbols - 1;
  auto below = links::plan_block(in);
  ASSERT_FALSE(below);
  EXPECT_EQ(below.error().code, errc::no_secret_key);
  EXPECT_NE(below.error().message.find("raise the block limit"), std::string::npos) << below.error().message;
}

TEST(BlockPlan, LongerLinksNeedLargerBlocksAndEveryBlockHoldsAWholeFrame) {
  std::uint64_t last = 0;
  for (double km : {1.0, 5.0, 15.0, 25.0, 35.0}) {
    auto in = metro(km);
    auto plan = links::plan_block(in);
    ASSERT_TRUE(plan) << km << " km: " << plan.error().message;
    EXPECT_GE(plan->block_symbols, last) << km << " km";
    last = plan->block_symbols;
    // The key symbols (N - n_pe, two samples each for heterodyne) hold at least one code frame.
    auto code = reconciliation::ldpc::select_rate(plan->snr, plan->beta);
    ASSERT_TRUE(code) << km << " km";
    EXPECT_GE(2 * (plan->block_symbols - plan->block_symbols / 2), code->frame_bits()) << km << " km";
  }
}

TEST(BlockPlan, NoKeyAtAnyBlockSizeSaysWhy) {
  // The Tokyo 90 km loop-back: 30 dB.
  auto in = metro(0, 30.0, "tlo_80km");
  auto plan = links::plan_block(in);
  ASSERT_FALSE(plan);
  EXPECT_EQ(plan.error().code, errc::no_secret_key);
  EXPECT_NE(plan.error().message.find("below the lowest the shipped codes offer"), std::string::npos)
    << plan.error().message;
  // A short link with a strong transmitter: the rate asked is above every code.
  auto near = metro(1, 0.0, "tlo_80km");
  auto high = links::plan_block(near);
  ASSERT_FALSE(high);
  EXPECT_NE(high.error().message.find("lower the link's beta"), std::string::npos) << high.error().message;
  near.beta_target = 0.5;  // which the codes offer
  EXPECT_TRUE(links::plan_block(near)) << "beta 0.5 at 1 km";
}

TEST(BlockPlan, BadInputIsRefused) {
  auto in = metro(25);
  in.transmittance = 0.0;
  EXPECT_EQ(links::plan_block(in).error().code, errc::invalid_argument);
  in = metro(25);
  in.pe_fraction = 1.0;
  EXPECT_EQ(links::plan_block(in).error().code, errc::invalid_argument);
}

TEST(BlockPlan, NodeConfigAutoBlocksArePlannedAndOthersKept) {
  config::node_config c;
  c.id = "ko1";
  config::link_config l;
  l.id = "l25";
  l.profile = *config::builtin_profile("llo_metro");
  l.length_km = 25;
  l.beta = l.profile.beta_target;
  l.block_symbols = l.profile.block_symbols;
  l.block_auto = true;
  c.links.push_back(l);
  l.id = "fixed";
  l.block_auto = false;
  l.block_symbols = 5'000'000;
  c.links.push_back(l);
  l.id = "far";  // 150 km at 0.2 dB/km: no key at any size
  l.block_auto = true;
  l.length_km = 150;
  l.block_symbols = l.profile.block_symbols;
  c.links.push_back(l);
  const auto planned = node::with_planned_blocks(c);
  links::block_plan_inputs in = metro(25);
  in.eps = sec::epsilons{.pe = c.eps_pe, .smooth = c.eps_smooth, .pa = c.eps_pa};
  EXPECT_EQ(planned.links[0].block_symbols, links::plan_block(in)->block_symbols);
  EXPECT_LE(planned.links[0].frame_symbols, planned.links[0].block_symbols);
  EXPECT_EQ(planned.links[1].block_symbols, 5'000'000u);
  EXPECT_EQ(planned.links[2].block_symbols, l.profile.block_symbols);
}

}  // namespace
