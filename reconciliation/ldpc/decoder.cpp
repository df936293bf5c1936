#include "reconciliation/ldpc/decoder.hpp"

#include "reconciliation/ldpc/check_kernels.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <cassert>
#include <cmath>
#include <cstring>
#include <thread>

namespace cvqkd::reconciliation::ldpc {
namespace {

// Row blocks are processed check_tile check nodes at a time (check_kernels.hpp).
constexpr std::uint32_t tile = check_tile;

// The gather/scatter loops around the check kernels, written so that g++ vectorizes them: pointers
// that do not alias and a 64-bit index (col[p + i] with 32-bit p + i may wrap, which kept these loops
// scalar: they took two thirds of the decoder's time).
void subtract(const float* __restrict a, const float* __restrict b, float* __restrict out, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) out[i] = a[i] - b[i];
}
// out may be a (flooding: app_next += c2v), never b.
void add(const float* a, const float* __restrict b, float* out, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) out[i] = a[i] + b[i];
}
void hard_decisions(const float* __restrict app, std::uint8_t* __restrict hard, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) hard[i] = static_cast<std::uint8_t>(std::signbit(app[i]) && app[i] != 0.0f);
}

}  // namespace

expected<schedule> parse_schedule(std::string_view s) {
  if (s == "flooding") return schedule::flooding;
  if (s == "layered") return schedule::layered;
  return fail(errc::invalid_argument, fmt::format("unknown schedule '{}'; use flooding or layered", s));
}

expected<update_rule> parse_update_rule(std::string_view s) {
  if (s == "sum-product") return update_rule::sum_product;
  if (s == "normalized-min-sum") return update_rule::normalized_min_sum;
  if (s == "offset-min-sum") return update_rule::offset_min_sum;
  return fail(errc::invalid_argument,
              fmt::format("unknown update rule '{}'; use sum-product, normalized-min-sum or offset-min-sum", s));
}

decoder::decoder(const qc_matrix& h, decoder_options o) : h_(&h), opt_(o) {
  const std::size_t n = std::size_t(h.base_cols) * h.lifting;
  app_.assign(n, 0.0f);
  if (o.sched == schedule::flooding) app_next_.assign(n, 0.0f);
  hard_.assign(n, 0);
  c2v_offset_.resize(h.blocks.size());
  std::size_t off = 0;
  for (std::uint32_t r = 0; r < h.base_rows; ++r) {
    max_row_degree_ = std::max(max_row_degree_, h.row_ptr[r + 1] - h.row_ptr[r]);
    for (std::uint32_t e = h.row_ptr[r]; e < h.row_ptr[r + 1]; ++e) {
      c2v_offset_[e] = off;
      off += h.rows_in(r);
    }
  }
  c2v_.assign(off, 0.0f);
  t_.assign(std::size_t(max_row_degree_) * tile, 0.0f);
  o_.assign(std::size_t(max_row_degree_) * tile, 0.0f);
  sign_.assign(tile, 1.0f);
  acc_.assign(h.lifting, 0);
}

expected<decoder> decoder::create(const qc_matrix& h, decoder_options options) {
  if (auto ok = h.validate(); !ok) return std::unexpected(ok.error());
  for (std::uint32_t r = 0; r < h.base_rows; ++r)
    if (h.row_ptr[r + 1] - h.row_ptr[r] > max_check_degree)
      return fail(errc::invalid_argument, fmt::format("row block {} has degree {}; the decoder supports at most {}", r,
                                                      h.row_ptr[r + 1] - h.row_ptr[r], max_check_degree));
  if (options.max_iterations == 0) return fail(errc::invalid_argument, "max_iterations must be at least 1");
  if (!(options.normalization > 0.0f && options.normalization <= 1.0f))
    return fail(errc::invalid_argument, "min-sum normalization must lie in (0, 1]");
  if (!(options.offset >= 0.0f && options.offset < 10.0f))
    return fail(errc::invalid_argument, "min-sum offset must lie in [0, 10)");
  return decoder(h, options);
}

std::size_t decoder::memory_bytes() const noexcept {
  return (app_.capacity() + app_next_.capacity() + c2v_.capacity() + t_.capacity() + o_.capacity() +
          sign_.capacity()) * sizeof(float) +
         hard_.capacity() + acc_.capacity() + c2v_offset_.capacity() * sizeof(std::size_t);
}

bool decoder::syndrome_ok(std::span<const std::uint8_t> syndrome) {
  const qc_matrix& h = *h_;
  const std::uint32_t z = h.lifting;
  for (std::uint32_t r = 0; r < h.base_rows; ++r) {
    const std::uint32_t len = h.rows_in(r);
    std::uint8_t* acc = acc_.data();
    std::memcpy(acc, syndrome.data() + std::size_t(r) * z, len);
    for (std::uint32_t e = h.row_ptr[r]; e < h.row_ptr[r + 1]; ++e) {
      const std::uint8_t* col = hard_.data() + std::size_t(h.blocks[e].col) * z;
      const std::uint32_t s = h.blocks[e].shift;
      const std::uint32_t n1 = std::min(len, z - s);
      for (std::uint32_t i = 0; i < n1; ++i) acc[i] ^= col[s + i];
      for (std::uint32_t i = n1; i < len; ++i) acc[i] ^= col[i - n1];
    }
    std::uint8_t any = 0;
    for (std::uint32_t i = 0; i < len; ++i) any |= acc[i];
    if (any) return false;
  }
  return true;
}

decode_result decoder::decode(std::span<const float> llr, std::span<const std::uint8_t> syndrome,
                              std::span<std::uint8_t> bits) {
  const qc_matrix& h = *h_;
  const std::uint32_t z = h.lifting;
  const std::size_t n = h.cols();
  assert(llr.size() == n && syndrome.size() == h.rows() && bits.size() == n);
  const bool layered = opt_.sched == schedule::layered;
  std::fill(c2v_.begin(), c2v_.end(), 0.0f);
  for (std::size_t i = 0; i < n; ++i) app_[i] = std::isfinite(llr[i]) ? std::clamp(llr[i], -1e4f, 1e4f) : 0.0f;
  std::fill(app_.begin() + static_cast<std::ptrdiff_t>(n), app_.end(), 0.0f);
  const float scale = opt_.rule == update_rule::normalized_min_sum ? opt_.normalization : 1.0f;
  const float offset = opt_.rule == update_rule::offset_min_sum ? opt_.offset : 0.0f;

  decode_result res;
  for (unsigned it = 1; it <= opt_.max_iterations; ++it) {
    if (opt_.cancel != nullptr && opt_.cancel->load(std::memory_order_relaxed)) {
      res.cancelled = true;
      break;
    }
    float* target = app_.data();
    if (!layered) {
      // the next posteriors start from the channel and collect this iteration's check messages
      for (std::size_t i = 0; i < n; ++i) app_next_[i] = std::isfinite(llr[i]) ? std::clamp(llr[i], -1e4f, 1e4f) : 0.0f;
      target = app_next_.data();
    }
    for (std::uint32_t r = 0; r < h.base_rows; ++r) {
      const std::uint32_t len = h.rows_in(r);
      const std::uint32_t b0 = h.row_ptr[r];
      const unsigned k = h.row_ptr[r + 1] - b0;
      for (std::uint32_t i0 = 0; i0 < len; i0 += tile) {
        const std::uint32_t cnt = std::min(tile, len - i0);
        for (std::uint32_t i = 0; i < cnt; ++i) sign_[i] = syndrome[std::size_t(r) * z + i0 + i] ? -1.0f : 1.0f;
        // gather: t_j = app(rotated) - c2v_j
        for (unsigned j = 0; j < k; ++j) {
          const auto& b = h.blocks[b0 + j];
          const float* col = app_.data() + std::size_t(b.col) * z;
          const float* c2v = c2v_.data() + c2v_offset_[b0 + j] + i0;
          float* tj = t_.data() + std::size_t(j) * tile;
          const std::uint32_t p = (i0 + b.shift) % z;
          const std::uint32_t n1 = std::min(cnt, z - p);
          subtract(col + p, c2v, tj, n1);  // the circulant wraps around once at most
          subtract(col, c2v + n1, tj + n1, cnt - n1);
        }
        if (opt_.rule == update_rule::sum_product) check_sum_product(t_.data(), o_.data(), sign_.data(), k, cnt);
        else check_min_sum(t_.data(), o_.data(), sign_.data(), k, cnt, scale, offset);
        // scatter: new c2v; layered: app = t + c2v; flooding: app_next += c2v
        for (unsigned j = 0; j < k; ++j) {
          const auto& b = h.blocks[b0 + j];
          float* col = target + std::size_t(b.col) * z;
          float* c2v = c2v_.data() + c2v_offset_[b0 + j] + i0;
          const float* tj = t_.data() + std::size_t(j) * tile;
          const float* oj = o_.data() + std::size_t(j) * tile;
          const std::uint32_t p = (i0 + b.shift) % z;
          const std::uint32_t n1 = std::min(cnt, z - p);
          if (layered) {
            add(tj, oj, col + p, n1);
            add(tj + n1, oj + n1, col, cnt - n1);
          } else {
            add(col + p, oj, col + p, n1);
            add(col, oj + n1, col, cnt - n1);
          }
          std::memcpy(c2v, oj, cnt * sizeof(float));
        }
      }
    }
    if (!layered) app_.swap(app_next_);
    hard_decisions(app_.data(), hard_.data(), n);
    res.iterations = it;
    if (syndrome_ok(syndrome)) {
      res.success = true;
      break;
    }
  }
  std::memcpy(bits.data(), hard_.data(), n);
  return res;
}

expected<std::vector<decode_result>> decode_parallel(const qc_matrix& h, const decoder_options& options,
                                                     std::span<const frame_job> frames, unsigned threads) {
  for (std::size_t f = 0; f < frames.size(); ++f)
    if (frames[f].llr.size() != h.cols() || frames[f].bits.size() != h.cols() || frames[f].syndrome.size() != h.rows())
      return fail(errc::invalid_argument,
                  fmt::format("frame {}: sizes (llr {}, syndrome {}, bits {}) do not match the {} x {} code", f,
                              frames[f].llr.size(), frames[f].syndrome.size(), frames[f].bits.size(), h.rows(), h.cols()));
  auto first = decoder::create(h, options);
  if (!first) return std::unexpected(first.error());
  std::vector<decode_result> results(frames.size());
  threads = std::max(1u, std::min<unsigned>(threads, static_cast<unsigned>(frames.size())));
  std::atomic<std::size_t> next{0};
  auto work = [&](decoder& dec) {
    for (std::size_t f = next++; f < frames.size(); f = next++)
      results[f] = dec.decode(frames[f].llr, frames[f].syndrome, frames[f].bits);
  };
  {
    std::vector<std::jthread> pool;
    for (unsigned t = 1; t < threads; ++t)
      pool.emplace_back([&] {
        auto dec = *decoder::create(h, options);
        work(dec);
      });
    work(*first);
  }
  return results;
}

}  // namespace cvqkd::reconciliation::ldpc
