#include "links/block_plan.hpp"

#include <fmt/format.h>

#include <cmath>

#include "reconciliation/ldpc/operating_point.hpp"

namespace cvqkd::links {

expected<block_plan> plan_block(const block_plan_inputs& in) {
  if (!(in.transmittance > 0.0 && in.transmittance <= 1.0))
    return fail(errc::invalid_argument, fmt::format("transmittance {} must lie in (0, 1]", in.transmittance));
  if (!(in.pe_fraction > 0.0 && in.pe_fraction < 1.0))
    return fail(errc::invalid_argument, fmt::format("pe_fraction {} must lie in (0, 1)", in.pe_fraction));
  const auto& hp = in.profile;
  const security::channel_parameters p{.det = hp.detection, .model = in.model, .v_a = hp.v_a,
                                       .transmittance = in.transmittance, .xi = hp.xi, .eta = hp.eta,
                                       .v_el = hp.v_el};
  if (auto ok = security::validate(p); !ok) return std::unexpected(ok.error());
  if (auto ok = security::validate(in.eps); !ok) return std::unexpected(ok.error());
  const double target = in.beta_target == 0.0 ? hp.beta_target : in.beta_target;
  const std::uint64_t dims = hp.detection == detection::homodyne ? 1 : 2;

  block_plan plan;
  plan.snr = security::snr(p);
  for (int k = 40; ; ++k) {  // N = 10^(k/10): 1e4, 1.26e4, 1.58e4, ...
    const auto n = static_cast<std::uint64_t>(std::llround(std::pow(10.0, k / 10.0)));
    if (n > in.max_symbols) break;
    const auto n_pe = std::max<std::uint64_t>(1, static_cast<std::uint64_t>(std::llround(in.pe_fraction * double(n))));
    const auto stats = security::expected_statistics(p, n_pe * dims);
    auto op = reconciliation::ldpc::choose_operating_point(plan.snr, target, p, stats, n, n_pe, n_pe * dims, in.eps);
    if (!op) return std::unexpected(op.error());
    const double bits = op->expected_key_rate * double(n) - double(in.overhead_bits);
    if (op->expected_key_rate > 0.0 && bits > 0.0) {
      plan.block_symbols = n;
      plan.beta = op->beta;
      plan.expected_fer = op->expected_fer;
      plan.key_rate = op->expected_key_rate;
      plan.key_bits = bits;
      plan.seconds_per_block = double(n) / hp.symbol_rate_baud;
      plan.key_rate_asymptotic = security::key_rate_asymptotic(p, op->beta);
      return plan;
    }
  }
  const double asymptotic = security::key_rate_asymptotic(p, target);
  if (asymptotic <= 0.0)
    return fail(errc::no_secret_key,
                fmt::format("no block size gives key: even an infinite block has beta I_AB - chi_BE = {:.3e} <= 0 at "
                            "T = {:.4g}, xi = {:.3g} SNU (beta {:.3f}); shorten the link or use a profile with less "
                            "excess noise",
                            asymptotic, in.transmittance, hp.xi, target));
  return fail(errc::no_secret_key,
              fmt::format("no block of up to {:.3g} symbols gives key at T = {:.4g} (asymptotic K {:.3e} bit/symbol at "
                          "beta {:.3f}); raise the block limit or shorten the link",
                          double(in.max_symbols), in.transmittance, asymptotic, target));
}

}  // namespace cvqkd::links
