#pragma once
// Density evolution with the Gaussian approximation (GA) on raptor-like protographs (protograph EXIT
// analysis in the mean domain: Chung, Richardson, Urbanke, IEEE Trans. Inf. Theory 47, 657 (2001) for the
// GA; Liva & Chiani, IEEE GLOBECOM 2007 for per-edge tracking on a protograph). The channel is the MDR
// virtual channel: given the norm of Bob's block, the LLR is Gaussian with mean 2 g SNR and variance twice
// that, g = |y|^2 / (d (1 + 1/SNR)) ~ chi^2_d / d (see reconciliation/mdr/mdr.hpp); the fading is
// integrated by quadrature over g.

#include <cstdint>

#include "reconciliation/ldpc/qc_code.hpp"

namespace cvqkd::reconciliation::ldpc {

/// phi(m) = 1 - E[tanh(u/2)], u ~ N(m, 2m) (Chung et al. 2001, Definition 1), tabulated by numerical
/// integration; phi(0) = 1, decreasing to 0. ga_phi_inverse is its inverse on (0, 1] (capped at m = 600).
double ga_phi(double m);
double ga_phi_inverse(double y);

struct de_options {
  unsigned max_iterations = 3000;
  unsigned mdr_dimension = 8;    // 1, 2, 4, 8; the fading g ~ chi^2_d / d
  unsigned fading_points = 16;   // quadrature points for g (0: no fading, g = 1)
  double converged_mean = 60.0;  // every core variable's posterior mean must exceed this
};

/// Whether GA density evolution of `p` with its first `extension_rows` extension rows converges at `snr`.
bool ga_converges(const raptor_protograph& p, std::uint32_t extension_rows, double snr, const de_options& o = {});

/// The GA threshold: the smallest SNR (bisection to relative precision 1e-3 within [1e-4, 100]) at which
/// density evolution converges. The efficiency at threshold is beta = R / (0.5 log2(1 + snr)).
double ga_threshold_snr(const raptor_protograph& p, std::uint32_t extension_rows, const de_options& o = {});

}  // namespace cvqkd::reconciliation::ldpc
