#pragma once
// Which efficiency beta a link asks of its codes. Asking more than the codes can decode loses whole
// frames (a failed frame is discarded, never fixed); asking less gives I_AB away. So the link (Alice,
// who chooses the rate) takes the beta that maximises the key it expects,
//   K(beta) = (n/N) (1 - FER(SNR, beta)) [beta I_AB - chi_BE(T_min, xi_max) - Delta(n)]   (LGG 2010, eq. 2),
// with FER(SNR, beta) measured on the shipped long code members (the table in operating_point.cpp) and
// the bound evaluated at the first frame's estimates. The target beta of the profile or link is an upper
// limit: a link never asks more than its operator configured.

#include <cstdint>
#include <span>

#include "core/error.hpp"
#include "reconciliation/security/key_rate.hpp"

namespace cvqkd::reconciliation::ldpc {

/// One measured point: `cvqkd bench reconcile --snr SNR --beta BETA --rate auto` on the long member of
/// the family that select_rate picks, `fer` = failed frames / frames.
struct fer_measurement {
  double snr;
  double beta;
  double fer;
};

/// The measured table, sorted by SNR, then beta. Long members only (about 1e6 bits per frame); MDR d = 8,
/// layered sum-product, 200 iterations (the links' default), 20 frames per point, seed 11. The command
/// and machine are given in operating_point.cpp.
std::span<const fer_measurement> long_code_fer_table() noexcept;

/// FER the long members are expected to give at (snr, beta), in [0, 1]. Within an SNR row: linear in
/// beta between measured points, the first point's FER below them (an upper bound: FER does not rise as beta falls),
/// and 1 above the last measured beta. Between rows: linear in log(snr); outside the measured SNR range
/// the nearest row. snr per real dimension (linear, not dB).
double expected_fer(double snr, double beta) noexcept;

struct operating_point {
  double beta = 0.0;               // to ask of select_rate
  double expected_fer = 0.0;       // expected_fer(snr, beta)
  double expected_key_rate = 0.0;  // K_fin (bits per symbol of the block) if the final estimates equal `s`
};

/// Chooses beta in [0.80, target] (steps of 0.005, and target itself) maximising the expected K_fin
/// of the LGG 2010 bound (key_rate_finite) at the estimates `s` (t_hat, sigma2_hat of the first frame),
/// with `s.samples` replaced by `pe_samples` (what the whole block will disclose) and the block's
/// n_total, n_pe symbols. `p` gives detection, model, V_A, eta and Bob's v_el. When no beta gives a
/// positive expected key the target is returned unchanged (the round then reports why it made no key).
/// Errors: invalid_argument when snr <= 0 or target is outside (0, 1); errors of key_rate_finite other
/// than no_secret_key and insufficient_data.
expected<operating_point> choose_operating_point(double snr, double target, const security::channel_parameters& p,
                                                 const security::pe_statistics& s, std::uint64_t n_total,
                                                 std::uint64_t n_pe, std::uint64_t pe_samples,
                                                 const security::epsilons& e);

}  // namespace cvqkd::reconciliation::ldpc
