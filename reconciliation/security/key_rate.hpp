#pragma once
// Key-rate bounds of GG02 with reverse reconciliation against collective attacks, in bits per
// symbol (channel use). Formulas and reference values: ../shared/reference/cvqkd-theory.md, from
//   Laudenbach et al., Adv. Quantum Technol. 1, 1800011 (2018), sec. 5 (trusted detector);
//   Lodewyck et al., PRA 76, 042305 (2007) (homodyne); Fossier et al., J. Phys. B 42, 114014 (2009)
//   (heterodyne); Leverrier, Grosshans, Grangier, PRA 81, 062343 (2010) (finite size, "LGG");
//   Pirandola et al., Nat. Commun. 8, 15043 (2017) (PLOB).
// Every variance is in SNU; xi is referred to the channel input.

#include <cstdint>

#include "core/error.hpp"
#include "core/physics.hpp"

namespace cvqkd::security {

/// What Alice and Bob know about one link (true, estimated or worst-case values).
struct channel_parameters {
  detection det = detection::heterodyne;
  detector_model model = detector_model::trusted;
  double v_a = 4.0;           // Alice's modulation variance per quadrature, SNU, > 0
  double transmittance = 0.5; // T of the channel (fibre and insertion loss), (0, 1]
  double xi = 0.01;           // excess noise referred to the channel input, SNU, >= 0
  double eta = 1.0;           // Bob's detector efficiency, (0, 1]
  double v_el = 0.0;          // Bob's electronic noise (per arm for heterodyne), SNU, >= 0
};

/// Domain limits of validate(): beyond them double precision no longer resolves chi_BE.
inline constexpr double min_transmittance = 1e-10;  // 100 dB
inline constexpr double max_v_a = 1e4;
inline constexpr double max_xi = 100.0;

/// Checks every field's domain (NaN included). Errors: invalid_argument naming the field.
expected<void> validate(const channel_parameters& p);

/// Signal-to-noise ratio per real dimension at Bob: eta*T*V_A / (1 + v_el + eta*T*xi) (homodyne),
/// eta*T*V_A / (2 + 2*v_el + eta*T*xi) (heterodyne, each arm).
double snr(const channel_parameters& p) noexcept;

/// Excess noise seen at Bob's detector output, xi_B = eta*T*xi (SNU; the total over both arms
/// for heterodyne).
double xi_bob(const channel_parameters& p) noexcept;

/// Alice–Bob mutual information I_AB (bits/symbol): 1/2 log2((V+chi_tot)/(1+chi_tot)) for
/// homodyne, twice that for heterodyne (Laudenbach 2018, eqs. 41, 45). The same for both
/// detector models, since Bob's data are the same.
double mutual_information(const channel_parameters& p) noexcept;

/// Holevo bound chi_BE on Eve's information about Bob's data (bits/symbol), reverse
/// reconciliation, collective attacks; symplectic eigenvalues as in cvqkd-theory.md.
double holevo_bound(const channel_parameters& p) noexcept;

/// Asymptotic secret key rate K = beta*I_AB - chi_BE (bits/symbol); may be negative.
double key_rate_asymptotic(const channel_parameters& p, double beta) noexcept;

/// PLOB bound -log2(1 - T) (bits/channel use): no protocol over a pure-loss channel does better.
double plob_bound(double transmittance) noexcept;

/// g(nu) = G((nu - 1)/2), G(x) = (x+1) log2(x+1) - x log2 x: von Neumann entropy of a thermal
/// mode with symplectic eigenvalue nu >= 1 (values within rounding below 1 count as 1).
double g_entropy(double nu) noexcept;

// ---- finite size ---------------------------------------------------------------------------

/// Which finite-size analysis. LGG 2010 is implemented; the composable bounds of Pirandola,
/// PRR 3, 043014 (2021) / Mountogiannakis et al., PRR 4, 013099 (2022) are the next entries.
enum class finite_size_model { lgg2010 };

/// Security parameters (failure probabilities), each in (0, 1).
struct epsilons {
  double pe = 1e-10;      // parameter estimation
  double smooth = 1e-10;  // smoothing, the eps-bar of Delta(n)
  double pa = 1e-10;      // privacy amplification
};
expected<void> validate(const epsilons& e);

/// Sufficient statistics of parameter estimation over the disclosed samples (SNU). `samples` is
/// the number of (x, y) pairs: m for homodyne, 2m for heterodyne (q and p pooled).
struct pe_statistics {
  double t_hat = 0.0;        // <xy>/<x^2>
  double sigma2_hat = 0.0;   // <(y - t_hat x)^2>
  double v_a = 0.0;          // modulation variance used for the interval on t (SNU)
  std::uint64_t samples = 0;
};

/// Point estimates and one-sided worst-case bounds (LGG 2010, eqs. 18-20; heterodyne
/// conventions of cvqkd-theory.md: T = 2 t^2 / eta and xi = 2 (sigma^2 - 1 - v_el)/(eta T)).
struct pe_bounds {
  double transmittance_hat = 0.0;
  double xi_hat = 0.0;
  double t_min = 0.0;        // t_hat - z sqrt(sigma2_hat / (samples V_A))
  double sigma2_max = 0.0;   // sigma2_hat + z sigma2_hat sqrt(2/samples)
  double transmittance_min = 0.0;
  double xi_max = 0.0;
  double z = 0.0;            // z_{eps_PE/2}
};

/// Computes the bounds from PE statistics. eta, v_el are Bob's calibrated values.
/// Errors: insufficient_data when samples < 2 or the sample cannot bound T away from 0
/// (t_min <= 0); no_secret_key when T_min > 1 or xi_max < 0 (non-physical: calibration or gain
/// is wrong);
/// invalid_argument for bad inputs.
expected<pe_bounds> estimate_bounds(detection det, const pe_statistics& s, double eta, double v_el, double eps_pe);

/// The statistics a perfectly average sample of `samples` pairs would give for parameters `p`
/// (sigma^2 = 1 + v_el + eta T xi, per arm for heterodyne). Used for the reference values and to
/// plan block sizes before any data exist.
pe_statistics expected_statistics(const channel_parameters& p, std::uint64_t samples) noexcept;

/// Delta(n) = 7 sqrt(log2(2/eps_smooth)/n) + (2/n) log2(1/eps_pa) (LGG 2010, eq. 3), n key symbols.
double delta_n(double n, const epsilons& e) noexcept;

struct finite_size_result {
  pe_bounds bounds;
  double i_ab = 0.0;                // at the point estimates
  double chi_be_worst = 0.0;        // chi_BE(T_min, xi_max)
  double delta_n = 0.0;
  double key_rate = 0.0;            // K_fin, bits per symbol of the whole block (n/N included)
};

/// K_fin = (n/N)(1 - FER)[beta I_AB(T_hat, xi_hat) - chi_BE(T_min, xi_max) - Delta(n)] with
/// n = n_total - n_pe key symbols (LGG 2010, eq. 2). `p` supplies detection, model, V_A, eta, v_el;
/// its T and xi are replaced by the estimates. Errors: invalid_argument (n_pe >= n_total, bad
/// beta/fer), unsupported (model), and those of estimate_bounds.
expected<finite_size_result> key_rate_finite(finite_size_model model, const channel_parameters& p,
                                             const pe_statistics& s, std::uint64_t n_total, std::uint64_t n_pe,
                                             double beta, double fer, const epsilons& e);

}  // namespace cvqkd::security
