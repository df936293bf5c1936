#pragma once
// End-to-end simulation of reverse reconciliation on a Gaussian channel, for benchmarks and regression
// tests: per frame, Alice's x ~ N(0, 1) per real dimension and Bob's y = x + z, z ~ N(0, 1/SNR) (each
// heterodyne quadrature is one real dimension); Bob draws the frame bits, sends the MDR mapping, norms and
// the syndrome; Alice computes LLRs and decodes; both compare verification tags. A frame counts as failed
// when the decoder does not meet the syndrome or the tags differ. Deterministic for a seed: frame f uses
// its own DRBG streams, independent of the thread count.

#include <cstdint>
#include <vector>

#include "core/error.hpp"
#include "reconciliation/ldpc/decoder.hpp"

namespace cvqkd::reconciliation::ldpc {

struct simulation_options {
  double snr = 0.161;
  unsigned mdr_dimension = 8;
  decoder_options decoding;
  unsigned threads = 1;
  std::uint64_t seed = 1;
};

struct simulation_summary {
  std::uint64_t frames = 0;
  std::uint64_t failed = 0;      // discarded: syndrome not met or verification tags differ
  std::uint64_t undetected = 0;  // accepted yet different from Bob's bits (expected 0)
  std::uint64_t syndrome_ok_but_wrong = 0;  // caught by the verification hash only
  double mean_iterations = 0;
  unsigned max_iterations = 0;
  double decode_seconds = 0;  // wall time spent in parallel decoding (simulation and MDR excluded)
  double wall_seconds = 0;    // everything
  std::size_t decoder_memory_bytes = 0;      // per decoding thread
};

/// Runs `frames` frames through the code h. Errors: invalid_argument for snr <= 0, frames == 0, a frame
/// length that is not a multiple of the MDR dimension, or invalid decoder options.
expected<simulation_summary> simulate_reconciliation(const qc_matrix& h, const simulation_options& o,
                                                     std::uint64_t frames);

}  // namespace cvqkd::reconciliation::ldpc
