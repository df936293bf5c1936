#pragma once
// In-memory link-key pools for tests, the simulator and benchmarks: each link {a, b} holds two
// one-way streams (a→b, b→a) of seeded pseudo-random bytes that both ends share; each end keeps
// its own consumption state. Every range handed out or burnt is logged, so that tests can prove
// independently that no link-key byte is ever used twice. Not thread-safe.

#include <cstdint>
#include <map>
#include <memory>
#include <utility>
#include <vector>

#include "core/drbg.hpp"
#include "relay/types.hpp"

namespace cvqkd::relay {

class memory_key_pools {
public:
  /// Stream contents are derived from `seed` (AES-256-CTR per stream; see core/drbg.hpp).
  explicit memory_key_pools(std::uint64_t seed);
  ~memory_key_pools();
  memory_key_pools(const memory_key_pools&) = delete;
  memory_key_pools& operator=(const memory_key_pools&) = delete;

  /// Appends `bytes` of fresh key to both streams of link {a, b} (creating the link).
  void fill(const node_id& a, const node_id& b, std::size_t bytes);
  /// Appends `bytes` to the one stream from -> to.
  void fill_stream(const node_id& from, const node_id& to, std::size_t bytes);

  /// The pools as node `n` sees them (created on first use; valid as long as this object).
  link_key_source& end(const node_id& n);

  enum class op { take_next, take_at, discard };
  /// One logged event: at node `at`, range `range` of stream from -> to was taken or burnt.
  struct record {
    node_id from, to, at;
    op kind;
    pool_range range;
  };
  const std::vector<record>& log() const noexcept { return log_; }
  void clear_log() { log_.clear(); }

  /// Bytes of stream from -> to still usable at end `at` (which must be from or to).
  std::uint64_t remaining(const node_id& from, const node_id& to, const node_id& at) const;
  /// Bytes of stream from -> to that end `to` neither took nor burnt below `below` (gaps left by
  /// lost messages; 0 after a pool_sync).
  std::uint64_t unclaimed_below(const node_id& from, const node_id& to, std::uint64_t below) const;
  /// A copy of range `r` of stream from -> to, whatever its state (tests only: to check what a
  /// transit node could decrypt).
  secure_buffer peek(const node_id& from, const node_id& to, pool_range r) const;

private:
  struct stream_state;
  class end_view;
  friend class end_view;
  stream_state* find(const node_id& from, const node_id& to) const;

  std::uint64_t seed_;
  std::map<std::pair<node_id, node_id>, std::unique_ptr<stream_state>> streams_;
  std::map<node_id, std::unique_ptr<end_view>> ends_;
  std::vector<record> log_;
};

}  // namespace cvqkd::relay
