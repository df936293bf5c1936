// Key-store benchmarks: link-pool append and take throughput (256-bit blocks, every write synced),
// the end-to-end deliver path (enc_keys then dec_keys), and bytes on disk per stored key bit.
// Every number here is dominated by fdatasync on the machine it runs on: report the disk too.
#include <benchmark/benchmark.h>
#include <stdlib.h>

#include <array>
#include <filesystem>
#include <vector>

#include "core/drbg.hpp"
#include "storage/key_store.hpp"

using namespace cvqkd;
using namespace cvqkd::storage;

namespace {

struct bench_store {
  bench_store() {
    std::string pattern = (std::filesystem::temp_directory_path() / "cvqkd-storage-bench-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) std::abort();
    dir = pattern;
    if (!create_kek_file(dir / "kek")) std::abort();
    store_options o;
    o.directory = dir / "db";
    o.kek_file = dir / "kek";
    o.node_id = "bench";
    auto s = key_store::open(o);
    if (!s) std::abort();
    store = std::move(*s);
  }
  ~bench_store() {
    store.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
  // All files, or only the SST files (the data, without RocksDB's fixed-size LOG/OPTIONS/MANIFEST).
  std::uint64_t db_bytes(bool sst_only) const {
    std::uint64_t n = 0;
    for (const auto& e : std::filesystem::recursive_directory_iterator(dir / "db"))
      if (e.is_regular_file() && (!sst_only || e.path().extension() == ".sst")) n += e.file_size();
    return n;
  }
  std::filesystem::path dir;
  std::unique_ptr<key_store> store;
};

const pool_id pool{"bench-link", direction::forward};
constexpr std::size_t key_bytes = 32;  // 256-bit keys

std::vector<std::byte> random_bytes(random_source& rng, std::size_t n) {
  std::vector<std::byte> b(n);
  rng.fill(b);
  return b;
}

key_spec spec() {
  key_spec k;
  k.master_sae = "sae-a";
  k.slave_saes = {"sae-b"};
  k.route = {"node-a", "node-b"};
  k.ttl = std::chrono::hours(1);
  return k;
}

void BM_pool_append(benchmark::State& state) {
  bench_store b;
  seeded_drbg rng(1, "bench-append");
  const auto block = random_bytes(rng, key_bytes);
  std::uint64_t seq = 1;
  for (auto _ : state) {
    if (!b.store->append_block(pool, seq++, block)) state.SkipWithError("append failed");
  }
  state.counters["blocks_per_s"] = benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_pool_append)->UseRealTime()->Unit(benchmark::kMicrosecond);

void BM_pool_take(benchmark::State& state) {
  bench_store b;
  seeded_drbg rng(2, "bench-take");
  const auto block = random_bytes(rng, key_bytes);
  std::uint64_t seq = 1, left = 0;
  for (auto _ : state) {
    if (left == 0) {
      state.PauseTiming();
      for (int i = 0; i < 500; ++i) (void)b.store->append_block(pool, seq++, block);
      left = 500;
      state.ResumeTiming();
    }
    auto t = b.store->take(pool, 8 * key_bytes);
    if (!t) state.SkipWithError("take failed");
    benchmark::DoNotOptimize(t->bytes.data());
    --left;
  }
  state.counters["blocks_per_s"] = benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_pool_take)->UseRealTime()->Unit(benchmark::kMicrosecond);

// One enc_keys (1 key) followed by the matching dec_keys: the latency a key pays in the store.
void BM_e2e_deliver_path(benchmark::State& state) {
  bench_store b;
  seeded_drbg rng(3, "bench-deliver");
  std::size_t ready = 0;
  for (auto _ : state) {
    if (ready == 0) {
      state.PauseTiming();
      for (int i = 0; i < 200; ++i) (void)b.store->put_key(spec(), random_bytes(rng, key_bytes));
      ready = 200;
      state.ResumeTiming();
    }
    auto m = b.store->deliver_to_master("sae-a", "sae-b", 1);
    if (!m || m->refused != refusal::none) {
      state.SkipWithError("enc_keys failed");
      break;
    }
    const std::array ids{m->keys[0].id};
    auto d = b.store->deliver_to_slave("sae-b", "sae-a", ids);
    if (!d || d->refused != refusal::none) state.SkipWithError("dec_keys failed");
    --ready;
  }
}
BENCHMARK(BM_e2e_deliver_path)->UseRealTime()->Unit(benchmark::kMicrosecond);

void BM_e2e_put(benchmark::State& state) {
  bench_store b;
  seeded_drbg rng(4, "bench-put");
  const auto k = random_bytes(rng, key_bytes);
  for (auto _ : state)
    if (!b.store->put_key(spec(), k)) state.SkipWithError("put failed");
}
BENCHMARK(BM_e2e_put)->UseRealTime()->Unit(benchmark::kMicrosecond);

// Bytes on disk per stored key bit, after compact() (memtables flushed, WAL files released):
// 5 000 link blocks of 256 bits (arg 0), or 5 000 end-to-end keys of 256 bits (arg 1), with
// their metadata and audit entries; sst_ counts only the SST files, all_ every file.
void BM_disk_bytes_per_key_bit(benchmark::State& state) {
  const bool e2e = state.range(0) == 1;
  constexpr int n = 5'000;
  for (auto _ : state) {
    bench_store b;
    seeded_drbg rng(5, "bench-disk");
    for (int i = 0; i < n; ++i) {
      const auto k = random_bytes(rng, key_bytes);
      const bool ok = e2e ? b.store->put_key(spec(), k).has_value() : b.store->append_block(pool, i + 1, k).has_value();
      if (!ok) state.SkipWithError("write failed");
    }
    if (!b.store->compact()) state.SkipWithError("compact failed");
    state.counters["sst_bytes_per_key_bit"] = static_cast<double>(b.db_bytes(true)) / (8.0 * key_bytes * n);
    state.counters["all_bytes_per_key_bit"] = static_cast<double>(b.db_bytes(false)) / (8.0 * key_bytes * n);
  }
}
BENCHMARK(BM_disk_bytes_per_key_bit)->Arg(0)->Arg(1)->Iterations(1)->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
