#pragma once
// The persistent key store: link key pools and end-to-end keys on RocksDB, encrypted at rest,
// every acknowledged state change on a synced write-ahead log. See storage/README.md for the
// on-disk layout, the durability of each write path and what RocksDB can keep on disk.
//
// Thread-safe: one key_store may be shared by any number of threads (see README, "Concurrency").
// Errors: infrastructure failures are cvqkd::error values (io_error: RocksDB or the disk;
// config_error: KEK or schema problems at open; parse_error: a record that fails authentication;
// invalid_argument: bad arguments or a conflicting re-append). Refusals that the ETSI GS QKD 014
// API reports to a client (not found, unauthorized, not enough keys, capacity) are values in the
// results, so that the API layer can map them to 400/401/503 without parsing messages.

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.hpp"
#include "core/secure_buffer.hpp"
#include "storage/env.hpp"
#include "storage/key_id.hpp"

namespace cvqkd::storage {

// ---------------------------------------------------------------------------------------------
// Opening

struct store_options {
  std::filesystem::path directory;  // the RocksDB directory; created with mode 0700 if missing
  std::filesystem::path kek_file;   // 32 raw bytes or 64 hex digits; must have no group/other permission bits
  std::string node_id;              // written into every audit entry
  /// Live e2e keys per (master SAE, primary slave SAE) pair, whatever their state (ETSI
  /// max_key_count; the spec's example value).
  std::uint64_t max_key_count = 100'000;
  /// After this many deleted records (consumed blocks, erased keys) the store compacts the
  /// consumed ranges so that RocksDB drops the old ciphertext and tombstones; 0 = only on compact().
  std::uint64_t compact_after_deletes = 65'536;
  std::shared_ptr<const clock> time;  // null: system_clock
  std::shared_ptr<file_system> fs;    // null: posix_file_system
};

class key_store;

// ---------------------------------------------------------------------------------------------
// Link key pools: per link and direction, blocks ordered by a caller-given sequence number that
// both ends of the link share; bytes are handed out oldest first, exactly once.

/// Which way the pool's keys are used. Both ends of a link name a pool the same way: forward is
/// the direction from the link's transmitter (Alice) to its receiver (Bob).
enum class direction : std::uint8_t { forward = 0, reverse = 1 };

struct pool_id {
  std::string link_id;  // 1..200 bytes, no NUL
  direction dir = direction::forward;
};

enum class append_status : std::uint8_t {
  appended,   // new block stored (synced)
  duplicate,  // the same sequence number and bytes were already stored: nothing changed
  stale,      // the sequence number is below the pool's high-water mark and the block is gone
              // (consumed): nothing changed. Re-importing after a restart lands here.
};

/// Where a pool's next unconsumed byte is: block `seq`, byte `offset` in it.
struct pool_position {
  std::uint64_t seq = 0;
  std::uint32_t offset = 0;
  auto operator<=>(const pool_position&) const = default;
};

struct pool_status {
  std::uint64_t available_bits = 0;
  std::uint64_t blocks = 0;                 // blocks holding unconsumed bytes
  std::optional<std::uint64_t> next_seq;    // one past the highest sequence number ever appended
  std::optional<pool_position> head;        // the oldest unconsumed byte; empty when the pool is empty
};

struct pool_take {
  secure_buffer bytes;       // n_bits / 8 bytes, oldest first
  pool_position start;       // where the taken range began
  pool_position end;         // the pool's head after the take (one past the last taken byte)
};

// ---------------------------------------------------------------------------------------------
// End-to-end keys (ETSI GS QKD 014): reserved -> ready -> delivered to the master (enc_keys)
// -> delivered to each slave (dec_keys) -> erased.

enum class key_state : std::uint8_t {
  reserved = 1,          // stored, not deliverable: the slave's KME does not yet hold the key
  ready = 2,             // deliverable to the master (or, on a slave-side store, to the slaves)
  master_delivered = 3,  // the master has it; waiting for the slaves' dec_keys
};
std::string_view to_string(key_state s) noexcept;

struct key_spec {
  std::optional<key_id> id;             // empty: a fresh UUIDv4 is allocated
  std::string master_sae;               // 1..200 bytes
  std::vector<std::string> slave_saes;  // [0] the slave named in enc_keys, then additional slaves (>= 1)
  std::vector<std::string> route;       // node IDs the key was relayed through (informational)
  std::chrono::milliseconds ttl{};      // expiry = now + ttl; > 0
  key_state state = key_state::ready;   // reserved or ready
  bool serve_master = true;             // this store owes the master one enc_keys delivery
  bool serve_slaves = true;             // this store owes every named slave one dec_keys delivery
};

enum class put_status : std::uint8_t {
  stored,          // new record (synced)
  already_stored,  // same ID and same material already present: nothing changed (idempotent)
  already_erased,  // the ID was delivered or erased before (its tombstone lives until the key's
                   // expiry): nothing stored, so a re-sent key is never delivered twice
  capacity_full,   // the pair already holds max_key_count live keys: nothing stored
};

struct put_result {
  key_id id;
  put_status status = put_status::stored;
};

/// Metadata of a live key, never its material.
struct key_info {
  key_id id;
  key_state state = key_state::ready;
  std::string master_sae;
  std::vector<std::string> slave_saes;
  std::vector<std::string> pending_slaves;  // named slaves still owed a dec_keys delivery
  std::vector<std::string> route;
  std::int64_t created_unix_ms = 0;
  std::int64_t expiry_unix_ms = 0;
  bool serve_master = true;
  std::size_t size_bits = 0;
};

enum class refusal : std::uint8_t {
  none,
  not_found,          // ETSI 400 "one or more keys specified are not found on KME"
  unauthorized,       // ETSI 401: the caller is not a slave named for one of the keys
  insufficient_keys,  // ETSI 503: fewer ready keys for the pair than requested
};

struct delivered_key {
  key_id id;
  secure_buffer material;
};

/// The outcome of a delivery: either every requested key (refused == none) or none of them.
struct delivery {
  refusal refused = refusal::none;
  std::string reason;  // for a refusal: what happened and what the caller can do
  std::vector<delivered_key> keys;
};

struct pair_status {
  std::uint64_t ready = 0;  // deliverable to the master now (ETSI stored_key_count)
  std::uint64_t live = 0;   // all records of the pair, counted against max_key_count
};

// ---------------------------------------------------------------------------------------------
// Audit log: append-only; never holds key bytes.

enum class audit_event : std::uint8_t {
  store_opened = 1,
  block_appended,
  bits_taken,
  key_stored,
  key_ready,
  key_delivered_master,
  key_delivered_slave,
  key_erased,
  key_expired,
  unauthorized_request,
  compacted,
};
std::string_view to_string(audit_event e) noexcept;

struct audit_entry {
  std::uint64_t index = 0;   // strictly increasing
  std::int64_t time_unix_ms = 0;
  audit_event event = audit_event::store_opened;
  std::string subject;  // key ID, or "link/dir/seq" for pool events
  std::string sae;      // the SAE concerned, if any
  std::string node;     // store_options::node_id
  std::string detail;   // e.g. "bits=256 from=3:0 to=3:32"
};

// ---------------------------------------------------------------------------------------------

class key_store {
public:
  /// Opens (or creates) the store. Reads the KEK file through options.fs and refuses it unless
  /// its mode grants nothing to group or others; checks the KEK against the check value stored
  /// at creation. Errors: config_error (KEK file mode or format, wrong KEK, unknown schema
  /// version, empty node_id), io_error (RocksDB cannot open: another process holds the lock,
  /// disk, permissions).
  static expected<std::unique_ptr<key_store>> open(store_options options);
  ~key_store();
  key_store(const key_store&) = delete;
  key_store& operator=(const key_store&) = delete;

  // --- link pools ---

  /// Stores block `seq` of `pool` (its bytes encrypted). Idempotent: the same seq and bytes
  /// again give `duplicate`; a seq already consumed gives `stale`. Synced write. Errors:
  /// invalid_argument for an empty or over-16-MiB block, a bad link ID, or the same seq with
  /// different bytes (the two ends of the link disagree: stop using the link and investigate).
  expected<append_status> append_block(const pool_id& pool, std::uint64_t seq, std::span<const std::byte> bytes);

  /// Stores several blocks (each in a different pool) in one synced batch: after a crash either
  /// all of the new ones are there or none. Per block the same rules and statuses as
  /// append_block; errors leave every pool unchanged. Errors: those of append_block, and
  /// invalid_argument when two blocks name the same pool.
  struct block_append {
    pool_id pool;
    std::uint64_t seq = 0;
    std::span<const std::byte> bytes;
  };
  expected<std::vector<append_status>> append_blocks(std::span<const block_append> blocks);

  /// Takes the oldest n_bits (a positive multiple of 8: byte granularity) from the pool,
  /// atomically: the bytes are deleted (a partly used block is re-encrypted without its used
  /// prefix) in the same synced batch. Concurrent takers never get overlapping bytes. Errors:
  /// invalid_argument (n_bits not a positive multiple of 8), insufficient_data (the pool holds
  /// fewer bits; nothing changes).
  expected<pool_take> take(const pool_id& pool, std::uint64_t n_bits);

  /// The oldest n_bits, as take() would return them, without consuming anything (for a caller
  /// that must write the bytes elsewhere before it may delete them). Errors: as take().
  expected<pool_take> peek(const pool_id& pool, std::uint64_t n_bits);

  /// Burns every byte before `from` (deleted unread: never handed out) and takes n_bits starting
  /// exactly at `from`, in one synced batch. For two ends that must draw the same bytes after one
  /// of them lost track (the link engine's authentication key, the relay's incoming streams).
  /// n_bits = 0 only burns. Errors: invalid_argument when `from` is behind the head (those bytes
  /// are used) or n_bits is not a multiple of 8;
  /// insufficient_data when fewer bits follow `from` (nothing changes).
  expected<pool_take> take_at(const pool_id& pool, pool_position from, std::uint64_t n_bits);

  /// Available bits, block count, high-water mark and head of a pool.
  expected<pool_status> status(const pool_id& pool);

  // --- end-to-end keys ---

  /// Stores an end-to-end key (material: 1..8192 bytes) under spec.id or a fresh UUIDv4.
  /// Synced write. Errors: invalid_argument (empty SAE IDs, no slave, ttl <= 0, bad state, or
  /// spec.id already stored with different material or metadata).
  expected<put_result> put_key(const key_spec& spec, std::span<const std::byte> material);

  /// reserved -> ready (the slave's KME confirmed it holds the key). Synced. Returns false when
  /// the key is not live (never stored, erased or expired); ready keys stay ready.
  expected<bool> mark_ready(const key_id& id);

  /// enc_keys: the `number` oldest ready keys of (master, slave) that this store serves to the
  /// master, all or none; they become master_delivered (or are erased when no slave is owed a
  /// delivery here). Synced before returning. Refusal insufficient_keys when fewer are ready.
  expected<delivery> deliver_to_master(std::string_view master_sae, std::string_view slave_sae, std::size_t number);

  /// dec_keys by `caller_sae` for keys that `master_sae` obtained: all IDs or none. Refusals:
  /// unauthorized when the caller is not a named slave of an existing key (audited);
  /// not_found when an ID is unknown, expired, not yet deliverable, from another master, or
  /// already delivered to this caller. The caller is removed from the key's pending slaves; a
  /// key with no delivery left is erased. Synced before returning.
  expected<delivery> deliver_to_slave(std::string_view caller_sae, std::string_view master_sae,
                                      std::span<const key_id> ids);

  /// Erases a key whatever its state (e.g. the relay failed). Synced. False when not live.
  expected<bool> erase_key(const key_id& id);

  /// Withdraws a key whose relay round was aborted (relay::key_sink::revoke): a key that nobody
  /// received yet is deleted without a tombstone, so that the relay's retry may store a fresh key
  /// under the same ID; a key already delivered to anyone is erased as by erase_key (its
  /// tombstone keeps the ID from being stored again). Synced. False when not live.
  expected<bool> revoke_key(const key_id& id);

  /// Erases every key whose expiry time is <= now. Synced. Returns the number erased.
  expected<std::size_t> sweep_expired();

  /// Metadata of a live, unexpired key; empty when there is none.
  expected<std::optional<key_info>> info(const key_id& id);

  /// Counts for an SAE pair (master, primary slave).
  pair_status status(std::string_view master_sae, std::string_view slave_sae);

  // --- maintenance ---

  /// Flushes every memtable (so the write-ahead log files can be deleted) and compacts the
  /// consumed pool ranges and the e2e keys, so that RocksDB rewrites its files without the
  /// deleted values. Errors: io_error.
  expected<void> compact();

  /// Audit entries with index >= from, at most `max`, oldest first.
  expected<std::vector<audit_entry>> read_audit(std::uint64_t from = 0, std::size_t max = 1000);

private:
  struct impl;
  expected<pool_take> take_impl(const pool_id& pool, std::uint64_t n_bits, std::optional<pool_position> from,
                                bool consume = true);
  explicit key_store(std::unique_ptr<impl> p);
  std::unique_ptr<impl> impl_;
};

}  // namespace cvqkd::storage
