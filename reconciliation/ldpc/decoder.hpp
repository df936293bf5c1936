#pragma once
// Syndrome-based belief-propagation decoding of a QC-LDPC code (any sparse code as Z = 1). The schedule
// (flooding: all checks from the previous iteration's messages; layered: row block by row block with the
// posteriors updated in place, Hocevar, IEEE SiPS 2004) and the check-node rule (sum-product in the tanh
// domain; normalized or offset min-sum, Chen & Fossorier, IEEE Trans. Commun. 50, 406 (2002)) are chosen
// independently. The syndrome enters as a sign: check r enforces sum of its bits = s_r, so its outgoing
// messages are negated when s_r = 1 (Liveris, Xiong, Georghiades, IEEE Commun. Lett. 6, 440 (2002)).
// Decoding stops early when the hard decision satisfies the syndrome; a frame that never does is reported
// as failed and its bits must be discarded.

#include <atomic>
#include <cstdint>
#include <memory>
#include <span>
#include <string_view>
#include <vector>

#include "core/error.hpp"
#include "reconciliation/ldpc/qc_code.hpp"

namespace cvqkd::reconciliation::ldpc {

enum class schedule { flooding, layered };
enum class update_rule { sum_product, normalized_min_sum, offset_min_sum };

/// Parses "flooding" | "layered" and "sum-product" | "normalized-min-sum" | "offset-min-sum".
expected<schedule> parse_schedule(std::string_view s);
expected<update_rule> parse_update_rule(std::string_view s);

struct decoder_options {
  schedule sched = schedule::layered;
  update_rule rule = update_rule::sum_product;
  unsigned max_iterations = 200;
  float normalization = 0.8f;  // normalized min-sum: messages scaled by this factor (0, 1]
  float offset = 0.15f;        // offset min-sum: subtracted from magnitudes, floored at 0
  // Checked once per iteration: when set (another thread, e.g. a node stopping), decoding ends with
  // success = false and cancelled = true, so that a stop never waits for a whole frame. Not owned.
  const std::atomic<bool>* cancel = nullptr;
};

struct decode_result {
  bool success = false;     // hard decision satisfies the syndrome
  unsigned iterations = 0;  // iterations run (the last one included)
  bool cancelled = false;   // decoder_options::cancel ended decoding (success is false)
};

/// One decoder per thread: it owns the message memory for one frame (about 4 bytes per edge plus 5 per
/// bit) and reuses it across frames.
class decoder {
public:
  /// The matrix must outlive the decoder. Errors: invalid_argument for an invalid matrix or options.
  static expected<decoder> create(const qc_matrix& h, decoder_options options);

  /// Decodes one frame: `llr` (n values, positive favours 0), the target `syndrome` (m bits, one per byte);
  /// writes the decided word to `bits` (n bytes, 0/1). Sizes must match the matrix (checked in debug).
  decode_result decode(std::span<const float> llr, std::span<const std::uint8_t> syndrome, std::span<std::uint8_t> bits);

  std::size_t memory_bytes() const noexcept;
  const qc_matrix& matrix() const noexcept { return *h_; }

private:
  decoder(const qc_matrix& h, decoder_options o);
  bool syndrome_ok(std::span<const std::uint8_t> syndrome);

  const qc_matrix* h_;
  decoder_options opt_;
  std::vector<float> app_, app_next_, c2v_, t_, o_;
  std::vector<std::uint8_t> hard_, acc_;
  std::vector<float> sign_;
  std::vector<std::size_t> c2v_offset_;  // start of each block's messages in c2v_
  std::uint32_t max_row_degree_ = 0;
};

/// One frame for decode_parallel: inputs and the output buffer (n bytes).
struct frame_job {
  std::span<const float> llr;
  std::span<const std::uint8_t> syndrome;
  std::span<std::uint8_t> bits;
};

/// Decodes the frames on `threads` threads (each with its own decoder). Results in frame order.
expected<std::vector<decode_result>> decode_parallel(const qc_matrix& h, const decoder_options& options,
                                                     std::span<const frame_job> frames, unsigned threads);

}  // namespace cvqkd::reconciliation::ldpc
