#include "reconciliation/privacy/output_length.hpp"

#include <fmt/format.h>

#include <cmath>

namespace cvqkd::reconciliation::privacy {

expected<std::uint64_t> secret_key_length(const output_length_inputs& in) {
  if (in.key_symbols == 0)
    return fail(errc::invalid_argument, "secret key length: the block has 0 key symbols; give n > 0");
  if (!(in.beta > 0.0 && in.beta <= 1.0))
    return fail(errc::invalid_argument, fmt::format("secret key length: beta = {} is outside (0, 1]", in.beta));
  if (!(in.fer >= 0.0 && in.fer < 1.0))
    return fail(errc::invalid_argument, fmt::format("secret key length: FER = {} is outside [0, 1)", in.fer));
  const auto& b = in.bound;
  if (!std::isfinite(b.i_ab) || !std::isfinite(b.chi_be_worst) || !std::isfinite(b.delta_n) || b.delta_n < 0.0)
    return fail(errc::invalid_argument,
                "secret key length: the finite-size bound has a non-finite or negative term; recompute it with "
                "security::key_rate_finite");

  const double asymptotic = in.beta * b.i_ab - b.chi_be_worst;  // bits per key symbol
  if (asymptotic <= 0.0)
    return fail(errc::no_secret_key,
                fmt::format("no key: beta*I_AB - chi_BE(T_min, xi_max) = {:.6g} - {:.6g} = {:.6g} bits/symbol <= 0; "
                            "the channel's loss or excess noise (or the reconciliation efficiency) leaves nothing secret",
                            in.beta * b.i_ab, b.chi_be_worst, asymptotic));
  const double per_symbol = asymptotic - b.delta_n;
  if (per_symbol <= 0.0)
    return fail(errc::no_secret_key,
                fmt::format("no key: the finite-size correction Delta(n) = {:.6g} exceeds beta*I_AB - chi_BE = {:.6g} "
                            "bits/symbol at n = {} key symbols; use a larger block",
                            b.delta_n, asymptotic, in.key_symbols));
  const double before_costs = static_cast<double>(in.key_symbols) * (1.0 - in.fer) * per_symbol;
  const double costs = static_cast<double>(in.verification_bits) + static_cast<double>(in.auth_bits);
  const double n_out = std::floor(before_costs - costs);
  if (n_out < 1.0)
    return fail(errc::no_secret_key,
                fmt::format("no key: n (1 - FER) (beta*I_AB - chi_BE - Delta(n)) = {:.6g} bits do not exceed the {} "
                            "verification bits plus {} authentication bits of the block; use a larger block",
                            before_costs, in.verification_bits, in.auth_bits));
  if (n_out >= 18446744073709551616.0)
    return fail(errc::invalid_argument, "secret key length: the result does not fit in 64 bits; check the inputs");
  return static_cast<std::uint64_t>(n_out);
}

}  // namespace cvqkd::reconciliation::privacy
