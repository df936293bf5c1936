#include "links/block_plan.hpp"

#include <fmt/format.h>

#include <cmath>

#include "reconciliation/ldpc/codes.hpp"
#include "reconciliation/ldpc/operating_point.hpp"

namespace cvqkd::links {

expected<block_plan> plan_block(const block_plan_inputs& in) {
  if (!(in.transmittance > 0.0 && in.transmittance <= 1.0))
    return fail(errc::invalid_argument, fmt::format("transmittance {} must lie in (0, 1]", in.transmittance));
  if (!(in.pe_fraction > 0.0 && in.pe_fraction < 1.0))
    return fail(errc::invalid_argument, fmt::format("pe_fraction {} must lie in (0, 1)", in.pe_fraction));
  if (!(in.key_fraction > 0.0 && in.key_fraction < 1.0))
    return fail(errc::invalid_argument, fmt::format("key_fraction {} must lie in (0, 1)", in.key_fraction));
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
  bool any_code = false;
  for (int k = 40;; ++k) {  // N = 10^(k/10): 1e4, 1.26e4, 1.58e4, ...
    const auto n = static_cast<std::uint64_t>(std::llround(std::pow(10.0, k / 10.0)));
    if (n > in.max_symbols) break;
    const auto n_pe = std::max<std::uint64_t>(1, static_cast<std::uint64_t>(std::llround(in.pe_fraction * double(n))));
    if (n_pe >= n) continue;
    const auto stats = security::expected_statistics(p, n_pe * dims);
    // The beta a round would ask (protocol.cpp: the table for long codes, the target for short ones).
    double beta = target, fer = 0.0;
    if (!in.short_codes) {
      auto op = reconciliation::ldpc::choose_operating_point(plan.snr, target, p, stats, n, n_pe, n_pe * dims, in.eps);
      if (!op) return std::unexpected(op.error());
      beta = op->beta;
      fer = op->expected_fer;
    }
    if (fer >= 1.0) continue;  // the codes decode nothing at this beta
    // Only whole frames of the chosen code carry key.
    auto code = reconciliation::ldpc::select_rate(plan.snr, beta, in.short_codes);
    if (!code) continue;  // no family offers this rate: no key at this beta, whatever N
    any_code = true;
    const std::uint64_t frame_bits = code->frame_bits();
    const std::uint64_t frames = (n - n_pe) * dims / frame_bits;
    if (frames == 0) continue;
    const std::uint64_t n_used = n_pe + frames * frame_bits / dims;
    auto k_fin = security::key_rate_finite(security::finite_size_model::lgg2010, p, stats, n_used, n_pe, beta, fer, in.eps);
    if (!k_fin) {
      if (k_fin.error().code == errc::no_secret_key || k_fin.error().code == errc::insufficient_data) continue;
      return std::unexpected(k_fin.error());
    }
    const double bits = k_fin->key_rate * double(n_used) - double(in.overhead_bits);
    // K_fin carries the factor (key symbols / N); per key symbol it is compared with the asymptotic key.
    const double per_key_symbol = k_fin->key_rate * double(n_used) / double(n_used - n_pe);
    const double asymptotic = security::key_rate_asymptotic(p, beta);
    const double enough = in.key_fraction * (1.0 - fer) * asymptotic;
    if (k_fin->key_rate > 0.0 && bits > 0.0 && per_key_symbol >= enough) {
      plan.block_symbols = n;
      plan.beta = beta;
      plan.expected_fer = fer;
      plan.key_rate = k_fin->key_rate * double(n_used) / double(n);
      plan.key_bits = bits;
      plan.seconds_per_block = double(n) / hp.symbol_rate_baud;
      plan.key_rate_asymptotic = asymptotic;
      return plan;
    }
  }
  if (!any_code) {
    namespace ldpc = reconciliation::ldpc;
    const double want = target * ldpc::capacity(plan.snr);
    const double lowest = ldpc::code_families().front().min_rate(), highest = ldpc::code_families().back().max_rate();
    if (want < lowest)
      return fail(errc::no_secret_key,
                  fmt::format("this link's SNR {:.4g} needs code rate {:.4f}, below the lowest the shipped codes offer "
                              "({:.4f}, `cvqkd codes list`): too much loss for them; shorten the link",
                              plan.snr, want, lowest));
    return fail(errc::no_secret_key,
                fmt::format("this link's SNR {:.4g} needs code rate {:.4f} at beta {:.3f}, above the highest the "
                            "shipped codes offer ({:.4f}, `cvqkd codes list`): lower the link's beta, or V_A in its "
                            "profile",
                            plan.snr, want, target, highest));
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
