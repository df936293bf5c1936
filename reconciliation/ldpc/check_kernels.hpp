#pragma once
// Check-node kernels of the LDPC decoder, vectorised with Highway and dispatched at run time to the
// best instruction set of the CPU (SSE4, AVX2, AVX-512 on x86; NEON/SVE elsewhere): one binary serves
// every machine of a deployment.
//
// Layout (structure of arrays): a check row block of degree k is processed `check_tile` check nodes at a
// time; t and o hold k arrays of `check_tile` floats each (t[j * check_tile + i] is the variable-to-check
// message of edge j of check node i, in LLR units: ln P(0)/P(1)); sg holds check_tile signs (+1 or -1:
// -1 where the check's syndrome bit is 1). Only the first n entries of each array are meaningful; the
// kernels read and write all check_tile entries (whole vectors), so every entry must hold a finite float.
#include <cstdint>

namespace cvqkd::reconciliation::ldpc {

/// Check nodes processed together: a multiple of every vector width (AVX-512: 16 floats), and small
/// enough that the k message arrays stay in L1.
inline constexpr std::uint32_t check_tile = 256;
/// Largest row degree the kernels accept (their scratch space).
inline constexpr unsigned max_check_degree = 64;

/// Sum-product update (Kschischang, Frey & Loeliger, IEEE Trans. IT 47, 498 (2001), eq. 7 in LLR form):
/// o_j = sg * 2 atanh(prod_{i != j} tanh(t_i / 2)), with forward-backward products (no division) and
/// the product clamped to |p| <= 1 - 2^-23 (|o_j| <= ~16.6). k in [1, max_check_degree], n <= check_tile.
void check_sum_product(const float* t, float* o, const float* sg, unsigned k, unsigned n);

/// Min-sum update (Fossorier et al., IEEE Trans. Commun. 47, 673 (1999); normalized / offset variants
/// after Chen & Fossorier, IEEE Trans. Commun. 50, 406 (2002)):
/// |o_j| = max(scale * min_{i != j} |t_i| - offset, 0), sign = sg * prod_{i != j} sign(t_i).
void check_min_sum(const float* t, float* o, const float* sg, unsigned k, unsigned n, float scale, float offset);

/// The instruction set the dispatcher picked on this CPU (e.g. "AVX3", "AVX2"), for benchmark reports.
const char* check_kernel_target();

}  // namespace cvqkd::reconciliation::ldpc
