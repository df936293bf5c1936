#include "reconciliation/ldpc/frame_simulation.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <thread>

#include "core/drbg.hpp"
#include "reconciliation/mdr/mdr.hpp"
#include "reconciliation/verification/hash.hpp"

namespace cvqkd::reconciliation::ldpc {
namespace {

using clock = std::chrono::steady_clock;

struct frame_data {
  std::vector<float> llr;
  std::vector<std::uint8_t> bits, syndrome, decoded;
};

expected<void> simulate_frame(const sparse_matrix& hs, const simulation_options& o, std::uint64_t f, frame_data& d) {
  const std::size_t n = hs.cols();
  seeded_drbg rng(o.seed, fmt::format("reconcile-frame-{}", f));
  gaussian_sampler gauss(rng);
  std::vector<double> x(n), y(n);
  gauss.fill(x, 1.0);
  gauss.fill(y, std::sqrt(1.0 / o.snr));
  for (std::size_t i = 0; i < n; ++i) y[i] += x[i];
  d.bits.resize(n);
  std::vector<std::byte> raw((n + 7) / 8);
  rng.fill(raw);
  for (std::size_t i = 0; i < n; ++i) d.bits[i] = (std::to_integer<unsigned>(raw[i / 8]) >> (i % 8)) & 1u;
  d.syndrome.resize(hs.rows());
  hs.syndrome(d.bits, d.syndrome);
  auto msg = mdr::bob_map(y, d.bits, o.mdr_dimension);
  if (!msg) return std::unexpected(msg.error());
  d.llr.resize(n);
  if (auto ok = mdr::alice_llr(x, *msg, 1.0 / o.snr, d.llr); !ok) return ok;
  d.decoded.assign(n, 0);
  return {};
}

}  // namespace

expected<simulation_summary> simulate_reconciliation(const qc_matrix& h, const simulation_options& o,
                                                     std::uint64_t frames) {
  if (!(o.snr > 0.0) || !std::isfinite(o.snr))
    return fail(errc::invalid_argument, fmt::format("SNR {} must be positive and finite", o.snr));
  if (frames == 0) return fail(errc::invalid_argument, "simulate at least one frame");
  if (!mdr::supported_dimension(o.mdr_dimension) || h.cols() % o.mdr_dimension != 0)
    return fail(errc::invalid_argument,
                fmt::format("frame length {} must be a multiple of the MDR dimension {} (1, 2, 4 or 8)", h.cols(),
                            o.mdr_dimension));
  if (auto probe = decoder::create(h, o.decoding); !probe) return std::unexpected(probe.error());
  const auto t0 = clock::now();
  const sparse_matrix hs = h.expand();
  const unsigned threads = std::max(1u, o.threads);
  const std::size_t batch = std::size_t(threads) * 2;
  simulation_summary s;
  s.frames = frames;
  std::uint64_t iteration_sum = 0;
  std::vector<frame_data> data(batch);
  seeded_drbg key_rng(o.seed, "reconcile-verification-keys");
  {
    auto dec = decoder::create(h, o.decoding);
    s.decoder_memory_bytes = dec->memory_bytes();
  }
  for (std::uint64_t first = 0; first < frames; first += batch) {
    const std::size_t count = static_cast<std::size_t>(std::min<std::uint64_t>(batch, frames - first));
    // simulate the batch in parallel
    std::atomic<std::size_t> next{0};
    std::vector<expected<void>> sim_ok(count);
    {
      std::vector<std::jthread> pool;
      for (unsigned t = 0; t < std::min<std::size_t>(threads, count); ++t)
        pool.emplace_back([&] {
          for (std::size_t i = next++; i < count; i = next++) sim_ok[i] = simulate_frame(hs, o, first + i, data[i]);
        });
    }
    for (auto& ok : sim_ok)
      if (!ok) return std::unexpected(ok.error());
    // decode the batch, frames in parallel
    std::vector<frame_job> jobs;
    for (std::size_t i = 0; i < count; ++i) jobs.push_back({data[i].llr, data[i].syndrome, data[i].decoded});
    const auto d0 = clock::now();
    auto results = decode_parallel(h, o.decoding, jobs, threads);
    s.decode_seconds += std::chrono::duration<double>(clock::now() - d0).count();
    if (!results) return std::unexpected(results.error());
    // verify: Bob sends a fresh key, both sides compare tags
    for (std::size_t i = 0; i < count; ++i) {
      const auto& r = (*results)[i];
      const auto key = verification::draw_key(key_rng);
      const bool tags_equal = verification::tag(key, data[i].decoded) == verification::tag(key, data[i].bits);
      const bool correct = data[i].decoded == data[i].bits;
      const bool accepted = r.success && tags_equal;
      if (!accepted) ++s.failed;
      if (accepted && !correct) ++s.undetected;
      if (r.success && !correct) ++s.syndrome_ok_but_wrong;
      iteration_sum += r.iterations;
      s.max_iterations = std::max(s.max_iterations, r.iterations);
    }
  }
  s.mean_iterations = double(iteration_sum) / double(frames);
  s.wall_seconds = std::chrono::duration<double>(clock::now() - t0).count();
  return s;
}

}  // namespace cvqkd::reconciliation::ldpc
