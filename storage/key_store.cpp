#include "storage/key_store.hpp"

#include <rocksdb/db.h>
#include <rocksdb/iterator.h>
#include <rocksdb/metadata.h>
#include <rocksdb/options.h>
#include <rocksdb/slice.h>
#include <rocksdb/write_batch.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <map>
#include <mutex>
#include <set>
#include <unordered_map>
#include <utility>

#include "storage/aead.hpp"

namespace cvqkd::storage {

std::string_view to_string(key_state s) noexcept {
  switch (s) {
    case key_state::reserved: return "reserved";
    case key_state::ready: return "ready";
    case key_state::master_delivered: return "master_delivered";
  }
  return "unknown";
}

std::string_view to_string(audit_event e) noexcept {
  switch (e) {
    case audit_event::store_opened: return "store_opened";
    case audit_event::block_appended: return "block_appended";
    case audit_event::bits_taken: return "bits_taken";
    case audit_event::key_stored: return "key_stored";
    case audit_event::key_ready: return "key_ready";
    case audit_event::key_delivered_master: return "key_delivered_master";
    case audit_event::key_delivered_slave: return "key_delivered_slave";
    case audit_event::key_erased: return "key_erased";
    case audit_event::key_expired: return "key_expired";
    case audit_event::unauthorized_request: return "unauthorized_request";
    case audit_event::compacted: return "compacted";
  }
  return "unknown";
}

namespace {

constexpr std::uint32_t schema_version = 1;
constexpr std::size_t max_block_bytes = 16u << 20;
constexpr std::size_t max_key_bytes = 8192;
constexpr std::size_t max_id_bytes = 200;
constexpr std::uint8_t erased_state = 4;  // tombstone: metadata only, no material
constexpr std::string_view kek_check_plain = "cvqkd key store: key-encryption key check v1";

// Column families (README "On-disk layout").
enum cf_index : std::size_t { cf_default = 0, cf_pool, cf_e2e, cf_meta, cf_audit, cf_count };
const char* const cf_names[cf_count] = {"default", "link_pool", "e2e_keys", "meta", "audit"};

// --- byte encoding -------------------------------------------------------------------------

void put_u8(std::string& s, std::uint8_t v) { s.push_back(static_cast<char>(v)); }
void put_be32(std::string& s, std::uint32_t v) {
  for (int i = 3; i >= 0; --i) s.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
void put_be64(std::string& s, std::uint64_t v) {
  for (int i = 7; i >= 0; --i) s.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
void put_str(std::string& s, std::string_view v) {
  const auto n = static_cast<std::uint16_t>(std::min<std::size_t>(v.size(), 0xffff));
  s.push_back(static_cast<char>(n >> 8));
  s.push_back(static_cast<char>(n & 0xff));
  s.append(v.substr(0, n));
}
std::string be64(std::uint64_t v) {
  std::string s;
  put_be64(s, v);
  return s;
}

struct reader {
  std::string_view in;
  bool ok = true;
  std::uint64_t uint(int bytes) {
    if (in.size() < static_cast<std::size_t>(bytes)) {
      ok = false;
      return 0;
    }
    std::uint64_t v = 0;
    for (int i = 0; i < bytes; ++i) v = (v << 8) | static_cast<unsigned char>(in[static_cast<std::size_t>(i)]);
    in.remove_prefix(static_cast<std::size_t>(bytes));
    return v;
  }
  std::string str() {
    const auto n = static_cast<std::size_t>(uint(2));
    if (!ok || in.size() < n) {
      ok = false;
      return {};
    }
    std::string v(in.substr(0, n));
    in.remove_prefix(n);
    return v;
  }
  std::vector<std::string> strs() {
    const auto n = static_cast<std::size_t>(uint(2));
    std::vector<std::string> v;
    for (std::size_t i = 0; ok && i < n; ++i) v.push_back(str());
    return v;
  }
};

void put_strs(std::string& s, const std::vector<std::string>& v) {
  s.push_back(static_cast<char>((v.size() >> 8) & 0xff));
  s.push_back(static_cast<char>(v.size() & 0xff));
  for (const auto& x : v) put_str(s, x);
}

std::string_view as_view(const rocksdb::Slice& s) { return {s.data(), s.size()}; }
rocksdb::Slice as_slice(std::string_view s) { return {s.data(), s.size()}; }

std::span<const std::byte> as_bytes(std::string_view s) { return std::as_bytes(std::span{s.data(), s.size()}); }

expected<void> check(const rocksdb::Status& st, std::string_view what) {
  if (st.ok()) return {};
  return fail(errc::io_error, std::string(what) + " failed in RocksDB: " + st.ToString() +
                                "; check free space and permissions of the store directory");
}

// --- link pools ----------------------------------------------------------------------------

std::string_view dir_name(direction d) { return d == direction::forward ? "forward" : "reverse"; }

// Pool keys: link_id || 0x00 || direction || be64(seq), so that a pool is one contiguous,
// seq-ordered key range (big-endian sorts numerically under RocksDB's bytewise comparator).
std::string pool_prefix(const pool_id& p) {
  std::string s = p.link_id;
  s.push_back('\0');
  s.push_back(static_cast<char>(p.dir));
  return s;
}

// Block value: u8 version || be32 block_len || be32 start_offset || sealed(bytes[start_offset..]).
// The AAD binds the pool, seq, length and offset: a block cannot be moved or its consumed
// prefix re-exposed by rewriting the header.
struct block_header {
  std::uint32_t block_len = 0;
  std::uint32_t start = 0;
  std::string_view sealed;
};
constexpr std::size_t block_header_bytes = 9;

expected<block_header> decode_block(std::string_view v) {
  reader r{v};
  const auto version = r.uint(1);
  block_header h;
  h.block_len = static_cast<std::uint32_t>(r.uint(4));
  h.start = static_cast<std::uint32_t>(r.uint(4));
  if (!r.ok || version != 1 || r.in.size() < aead_overhead || h.start >= h.block_len ||
      r.in.size() - aead_overhead != h.block_len - h.start)
    return fail(errc::parse_error, "a link-pool block record is malformed; the database is damaged — restore it from a backup");
  h.sealed = r.in;
  return h;
}

std::string block_aad(std::string_view key, std::uint32_t block_len, std::uint32_t start) {
  std::string a = "cvqkd/pool/v1";
  put_str(a, key);
  put_be32(a, block_len);
  put_be32(a, start);
  return a;
}

expected<std::string> encode_block(const aead& crypt, std::string_view key, std::uint32_t block_len, std::uint32_t start,
                                   std::span<const std::byte> rest) {
  std::string v;
  put_u8(v, 1);
  put_be32(v, block_len);
  put_be32(v, start);
  if (auto r = crypt.seal(rest, block_aad(key, block_len, start), v); !r) return std::unexpected(r.error());
  return v;
}

// Meta key of a pool's high-water mark: "next_seq" || 0x00 || pool prefix.
std::string next_seq_key(std::string_view prefix) {
  std::string k = "next_seq";
  k.push_back('\0');
  k.append(prefix);
  return k;
}

std::uint64_t seq_of(std::string_view key) {
  reader r{key.substr(key.size() - 8)};
  return r.uint(8);
}

// --- end-to-end keys -----------------------------------------------------------------------

// Value: header || sealed(material). Header: u8 version || u8 state || u8 flags || be64 created
// || be64 expiry || be64 serial || str master || strs slaves || strs pending || strs route ||
// be32 material_len. The AAD is "cvqkd/e2e/v1" || key ID || header: it binds the ID, the state
// and every piece of metadata (a record cannot be replayed under another ID or state).
struct e2e_record {
  std::uint8_t state = 0;
  bool serve_master = true;
  bool serve_slaves = true;
  std::int64_t created = 0;
  std::int64_t expiry = 0;
  std::uint64_t serial = 0;
  std::string master;
  std::vector<std::string> slaves, pending, route;
  std::uint32_t material_len = 0;
  std::string_view header;  // into the value, for the AAD
  std::string_view sealed;  // into the value
};

std::string encode_e2e_header(const e2e_record& r) {
  std::string h;
  put_u8(h, 1);
  put_u8(h, r.state);
  put_u8(h, static_cast<std::uint8_t>((r.serve_master ? 1 : 0) | (r.serve_slaves ? 2 : 0)));
  put_be64(h, static_cast<std::uint64_t>(r.created));
  put_be64(h, static_cast<std::uint64_t>(r.expiry));
  put_be64(h, r.serial);
  put_str(h, r.master);
  put_strs(h, r.slaves);
  put_strs(h, r.pending);
  put_strs(h, r.route);
  put_be32(h, r.material_len);
  return h;
}

expected<e2e_record> decode_e2e(std::string_view v) {
  reader rd{v};
  e2e_record r;
  const auto version = rd.uint(1);
  r.state = static_cast<std::uint8_t>(rd.uint(1));
  const auto flags = rd.uint(1);
  r.serve_master = (flags & 1) != 0;
  r.serve_slaves = (flags & 2) != 0;
  r.created = static_cast<std::int64_t>(rd.uint(8));
  r.expiry = static_cast<std::int64_t>(rd.uint(8));
  r.serial = rd.uint(8);
  r.master = rd.str();
  r.slaves = rd.strs();
  r.pending = rd.strs();
  r.route = rd.strs();
  r.material_len = static_cast<std::uint32_t>(rd.uint(4));
  const bool sizes_ok = r.state == erased_state ? rd.in.empty() : rd.in.size() == r.material_len + aead_overhead;
  if (!rd.ok || version != 1 || r.state < 1 || r.state > erased_state || !sizes_ok)
    return fail(errc::parse_error, "an end-to-end key record is malformed; the database is damaged — restore it from a backup");
  r.header = v.substr(0, v.size() - rd.in.size());
  r.sealed = rd.in;
  return r;
}

std::string e2e_aad(const key_id& id, std::string_view header) {
  std::string a = "cvqkd/e2e/v1";
  a.append(reinterpret_cast<const char*>(id.bytes.data()), id.bytes.size());
  a.append(header);
  return a;
}

expected<std::string> encode_e2e(const aead& crypt, const key_id& id, const e2e_record& r,
                                 std::span<const std::byte> material) {
  std::string v = encode_e2e_header(r);
  if (r.state == erased_state) return v;
  const std::string aad = e2e_aad(id, v);
  if (auto s = crypt.seal(material, aad, v); !s) return std::unexpected(s.error());
  return v;
}

std::string id_key(const key_id& id) { return {reinterpret_cast<const char*>(id.bytes.data()), id.bytes.size()}; }

std::string pair_key(std::string_view master, std::string_view slave) {
  std::string s(master);
  s.push_back('\0');
  s.append(slave);
  return s;
}

bool contains(const std::vector<std::string>& v, std::string_view x) { return std::find(v.begin(), v.end(), x) != v.end(); }

expected<void> check_name(std::string_view what, std::string_view v) {
  if (v.empty() || v.size() > max_id_bytes || v.find('\0') != std::string_view::npos)
    return fail(errc::invalid_argument, std::string(what) + " must be 1.." + std::to_string(max_id_bytes) +
                                          " bytes without NUL characters; got " + std::to_string(v.size()) + " bytes");
  return {};
}

}  // namespace

// ---------------------------------------------------------------------------------------------

struct key_store::impl {
  struct pool_state {
    std::mutex m;
    bool loaded = false;
    std::string prefix;
    std::string name;  // "link/direction" for messages and audit
    std::uint64_t available_bytes = 0;
    std::uint64_t blocks = 0;
    std::optional<std::uint64_t> next_seq;
    std::optional<std::uint64_t> head_seq;
  };

  // In-memory index of the e2e column family, rebuilt from the record headers at open (no
  // decryption needed), kept in step with every committed batch under e2e_mutex.
  struct e2e_entry {
    std::string pair;
    std::uint64_t serial = 0;
    std::int64_t expiry = 0;
    std::uint8_t state = 0;
    bool serve_master = true;
  };

  store_options opt;
  std::unique_ptr<aead> crypt;
  std::unique_ptr<rocksdb::DB> db;
  std::vector<rocksdb::ColumnFamilyHandle*> cf;
  rocksdb::WriteOptions synced;
  std::atomic<std::uint64_t> next_audit{0};
  std::atomic<std::uint64_t> pool_deletes{0};
  std::atomic<std::uint64_t> e2e_deletes{0};

  std::mutex pools_mutex;
  std::map<std::string, std::unique_ptr<pool_state>> pools;

  std::mutex e2e_mutex;
  std::unordered_map<key_id, e2e_entry, key_id_hash> entries;
  std::map<std::string, std::set<std::pair<std::uint64_t, key_id>>> ready_queue;  // ready && serve_master
  std::map<std::string, std::uint64_t> live_count;
  std::set<std::pair<std::int64_t, key_id>> by_expiry;  // live records and tombstones
  std::uint64_t next_serial = 0;

  ~impl() {
    if (db) {
      for (auto* h : cf)
        if (h != nullptr) db->DestroyColumnFamilyHandle(h);
      db->Close().PermitUncheckedError();
    }
  }

  std::int64_t now() const { return opt.time->now_unix_ms(); }

  void audit(rocksdb::WriteBatch& batch, audit_event ev, std::string_view subject, std::string_view sae,
             std::string_view detail) {
    std::string v;
    put_be64(v, static_cast<std::uint64_t>(now()));
    put_u8(v, static_cast<std::uint8_t>(ev));
    put_str(v, subject);
    put_str(v, sae);
    put_str(v, opt.node_id);
    put_str(v, detail);
    batch.Put(cf[cf_audit], be64(next_audit.fetch_add(1)), v).PermitUncheckedError();
  }

  expected<void> commit(rocksdb::WriteBatch& batch, std::string_view what) {
    return check(db->Write(synced, &batch), what);
  }

  expected<std::optional<std::string>> get(std::size_t family, std::string_view key) {
    std::string v;
    const auto st = db->Get(rocksdb::ReadOptions{}, cf[family], as_slice(key), &v);
    if (st.IsNotFound()) return std::optional<std::string>{};
    if (auto r = check(st, "reading a record"); !r) return std::unexpected(r.error());
    return std::optional<std::string>{std::move(v)};
  }

  // The stored record value of a live (indexed, not erased, unexpired) end-to-end key; empty when
  // there is none. The caller holds e2e_mutex.
  expected<std::optional<std::string>> live_e2e_value(const key_id& id) {
    const auto e = entries.find(id);
    if (e == entries.end() || e->second.state == erased_state || e->second.expiry <= now())
      return std::optional<std::string>{};
    auto v = get(cf_e2e, id_key(id));
    if (v && !v->has_value())
      return fail(errc::parse_error, "key " + id.to_string() + " is indexed but missing; restart the node");
    return v;
  }

  // --- open -----------------------------------------------------------------------------

  expected<void> open_db() {
    rocksdb::DBOptions dbo;
    dbo.create_if_missing = true;
    dbo.create_missing_column_families = true;
    dbo.paranoid_checks = true;
    // Synced writes: a torn record at the WAL tail can only be an unacknowledged write, which
    // point-in-time recovery drops.
    dbo.wal_recovery_mode = rocksdb::WALRecoveryMode::kPointInTimeRecovery;
    dbo.recycle_log_file_num = 0;           // a recycled WAL would keep old ciphertext in place
    dbo.WAL_ttl_seconds = 0;                // obsolete WAL files are deleted at once ...
    dbo.WAL_size_limit_MB = 0;              // ... not archived
    dbo.max_total_wal_size = 64ull << 20;   // bounds the WAL: beyond it the oldest memtables flush
    dbo.keep_log_file_num = 4;              // RocksDB's info LOG (no key data) across restarts
    dbo.avoid_flush_during_recovery = false;
    rocksdb::ColumnFamilyOptions cfo;
    cfo.compression = rocksdb::kNoCompression;  // ciphertext does not compress
    std::vector<rocksdb::ColumnFamilyDescriptor> descs;
    for (const char* n : cf_names) descs.emplace_back(n, cfo);
    rocksdb::DB* raw = nullptr;
    const auto st = rocksdb::DB::Open(dbo, opt.directory.string(), descs, &cf, &raw);
    if (!st.ok()) {
      std::string hint = st.IsIOError() && st.ToString().find("lock") != std::string::npos
                           ? "; another process has this store open — stop it or use another directory"
                           : "; check the directory, its permissions and free space";
      return fail(errc::io_error, "cannot open the key store at " + opt.directory.string() + ": " + st.ToString() + hint);
    }
    db.reset(raw);
    synced.sync = true;  // every write path: README "Durability"
    return {};
  }

  expected<void> check_schema_and_kek() {
    auto schema = get(cf_meta, "schema");
    if (!schema) return std::unexpected(schema.error());
    const std::string check_aad = "cvqkd/kek-check/v1";
    if (!schema->has_value()) {
      // A new store — unless data exists without metadata, which only damage can produce.
      for (std::size_t f : {cf_pool, cf_e2e}) {
        std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions{}, cf[f]));
        it->SeekToFirst();
        if (it->Valid())
          return fail(errc::config_error, "the store at " + opt.directory.string() +
                                            " holds keys but no metadata (schema, KEK check value); it is damaged — "
                                            "restore it from a backup");
      }
      rocksdb::WriteBatch b;
      std::string v;
      put_be32(v, schema_version);
      b.Put(cf[cf_meta], "schema", v).PermitUncheckedError();
      std::string check_value;
      if (auto r = crypt->seal(as_bytes(kek_check_plain), check_aad, check_value); !r) return r;
      b.Put(cf[cf_meta], "kek_check", check_value).PermitUncheckedError();
      return commit(b, "initialising the store");
    }
    reader r{**schema};
    const auto version = r.uint(4);
    if (!r.ok || version != schema_version)
      return fail(errc::config_error, "the store at " + opt.directory.string() + " has schema version " +
                                        std::to_string(version) + "; this build reads version " +
                                        std::to_string(schema_version) + " — use a matching cvqkd release");
    auto stored = get(cf_meta, "kek_check");
    if (!stored) return std::unexpected(stored.error());
    const auto wrong = [&] {
      return fail(errc::config_error, "the key-encryption key in " + opt.kek_file.string() +
                                        " is not the one the store at " + opt.directory.string() +
                                        " was created with (check value mismatch); start with the original KEK file — "
                                        "the stored keys cannot be decrypted without it");
    };
    if (!stored->has_value()) return wrong();
    auto plain = crypt->open(**stored, check_aad);
    if (!plain || !constant_time_equal(plain->bytes(), as_bytes(kek_check_plain))) return wrong();
    return {};
  }

  expected<void> load_indices() {
    {
      std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions{}, cf[cf_audit]));
      it->SeekToLast();
      if (it->Valid()) next_audit = seq_of(as_view(it->key())) + 1;
      if (auto r = check(it->status(), "reading the audit log"); !r) return r;
    }
    std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions{}, cf[cf_e2e]));
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      const auto k = as_view(it->key());
      if (k.size() != 16)
        return fail(errc::parse_error, "an end-to-end key ID in the store is malformed; restore the database from a backup");
      key_id id;
      std::memcpy(id.bytes.data(), k.data(), 16);
      auto rec = decode_e2e(as_view(it->value()));
      if (!rec) return std::unexpected(rec.error());
      index_insert(id, *rec);
      next_serial = std::max(next_serial, rec->serial + 1);
    }
    return check(it->status(), "reading the end-to-end keys");
  }

  // Every restart flushes the recovered WAL into small SST files. In the append-only audit family
  // (increasing keys) RocksDB moves them down a level without merging them, so a node restarted
  // often would collect thousands of tiny files, all opened at start-up. Merge a family once it
  // holds more than 32 files.
  expected<void> merge_small_files() {
    for (std::size_t f = cf_pool; f < cf_count; ++f) {
      rocksdb::ColumnFamilyMetaData md;
      db->GetColumnFamilyMetaData(cf[f], &md);
      if (md.file_count <= 32) continue;
      rocksdb::CompactRangeOptions co;
      co.bottommost_level_compaction = rocksdb::BottommostLevelCompaction::kForce;
      if (auto r = check(db->CompactRange(co, cf[f], nullptr, nullptr), "compacting the store at start-up"); !r) return r;
    }
    return {};
  }

  // --- e2e index --------------------------------------------------------------------------

  void index_insert(const key_id& id, const e2e_record& r) {
    e2e_entry e{pair_key(r.master, r.slaves.empty() ? std::string_view{} : std::string_view{r.slaves[0]}), r.serial,
                r.expiry, r.state, r.serve_master};
    if (e.state != erased_state) ++live_count[e.pair];
    if (e.state == static_cast<std::uint8_t>(key_state::ready) && e.serve_master) ready_queue[e.pair].insert({e.serial, id});
    by_expiry.insert({e.expiry, id});
    entries[id] = std::move(e);
  }

  void index_remove(const key_id& id) {
    const auto it = entries.find(id);
    if (it == entries.end()) return;
    const auto& e = it->second;
    if (e.state != erased_state) {
      if (auto c = live_count.find(e.pair); c != live_count.end() && --c->second == 0) live_count.erase(c);
    }
    if (auto q = ready_queue.find(e.pair); q != ready_queue.end()) {
      q->second.erase({e.serial, id});
      if (q->second.empty()) ready_queue.erase(q);
    }
    by_expiry.erase({e.expiry, id});
    entries.erase(it);
  }

  // --- pools ------------------------------------------------------------------------------

  expected<pool_state*> pool(const pool_id& p) {
    if (auto r = check_name("link ID", p.link_id); !r) return std::unexpected(r.error());
    if (p.dir != direction::forward && p.dir != direction::reverse)
      return fail(errc::invalid_argument, "pool direction must be forward or reverse");
    std::string prefix = pool_prefix(p);
    std::lock_guard lock(pools_mutex);
    auto& slot = pools[prefix];
    if (!slot) {
      slot = std::make_unique<pool_state>();
      slot->prefix = std::move(prefix);
      slot->name = p.link_id + "/" + std::string(dir_name(p.dir));
    }
    return slot.get();
  }

  std::string pool_upper(const pool_state& p) {
    std::string u = p.prefix;
    u.back() = static_cast<char>(u.back() + 1);  // the direction byte is 0 or 1
    return u;
  }

  // Caller holds p.m.
  expected<void> load(pool_state& p) {
    if (p.loaded) return {};
    auto next = get(cf_meta, next_seq_key(p.prefix));
    if (!next) return std::unexpected(next.error());
    p.next_seq.reset();
    if (next->has_value()) {
      reader r{**next};
      p.next_seq = r.uint(8);
    }
    p.available_bytes = 0;
    p.blocks = 0;
    p.head_seq.reset();
    const std::string upper = pool_upper(p);
    rocksdb::Slice ub(upper);
    rocksdb::ReadOptions ro;
    ro.iterate_upper_bound = &ub;
    std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(ro, cf[cf_pool]));
    for (it->Seek(p.prefix); it->Valid(); it->Next()) {
      auto h = decode_block(as_view(it->value()));
      if (!h) return std::unexpected(h.error());
      if (!p.head_seq) p.head_seq = seq_of(as_view(it->key()));
      p.available_bytes += h->block_len - h->start;
      ++p.blocks;
    }
    if (auto r = check(it->status(), "reading link pool " + p.name); !r) return r;
    p.loaded = true;
    return {};
  }

  void maybe_compact(std::atomic<std::uint64_t>& counter, std::uint64_t added, std::size_t family,
                     const std::string* begin, const std::string* end) {
    if (opt.compact_after_deletes == 0 || added == 0) return;
    if (counter.fetch_add(added) + added < opt.compact_after_deletes) return;
    counter = 0;
    rocksdb::CompactRangeOptions co;
    co.bottommost_level_compaction = rocksdb::BottommostLevelCompaction::kForce;
    co.exclusive_manual_compaction = false;
    rocksdb::Slice b, e;
    if (begin) b = *begin;
    if (end) e = *end;
    // Best effort: a failed compaction leaves only ciphertext behind for longer.
    db->CompactRange(co, cf[family], begin ? &b : nullptr, end ? &e : nullptr).PermitUncheckedError();
  }
};

namespace {
std::unexpected<error> behind_head(const std::string& pool, pool_position from) {
  return std::unexpected(error{errc::invalid_argument,
                               "position " + std::to_string(from.seq) + ":" + std::to_string(from.offset) + " of link pool " +
                                 pool + " is behind its head: those bytes were used already and are never handed out again"});
}
}  // namespace

key_store::key_store(std::unique_ptr<impl> p) : impl_(std::move(p)) {}
key_store::~key_store() = default;

expected<std::unique_ptr<key_store>> key_store::open(store_options options) {
  if (options.node_id.empty())
    return fail(errc::config_error, "the key store needs a node ID for its audit log; set store_options::node_id");
  if (options.directory.empty()) return fail(errc::config_error, "the key store needs a directory; set store_options::directory");
  if (!options.time) options.time = std::make_shared<system_clock>();
  if (!options.fs) options.fs = std::make_shared<posix_file_system>();

  auto file = options.fs->read_file_with_mode(options.kek_file);
  if (!file) return fail(errc::config_error, "cannot read the key-encryption key: " + file.error().message);
  if ((file->mode & 077) != 0) {
    char mode[16];
    std::snprintf(mode, sizeof mode, "%04o", file->mode);
    return fail(errc::config_error, "the key-encryption key file " + options.kek_file.string() + " has mode " + mode +
                                      "; it must not be accessible to group or others — run `chmod 600 " +
                                      options.kek_file.string() + "`");
  }
  auto kek = parse_kek(file->content.bytes(), options.kek_file.string());
  if (!kek) return std::unexpected(kek.error());
  if (auto r = options.fs->create_private_directory(options.directory); !r) return std::unexpected(r.error());

  auto p = std::make_unique<impl>();
  p->opt = std::move(options);
  p->crypt = std::make_unique<aead>(std::move(*kek));
  if (auto r = p->open_db(); !r) return std::unexpected(r.error());
  if (auto r = p->check_schema_and_kek(); !r) return std::unexpected(r.error());
  if (auto r = p->load_indices(); !r) return std::unexpected(r.error());
  if (auto r = p->merge_small_files(); !r) return std::unexpected(r.error());
  // Not synced: nobody is told about it; the next synced write carries it to disk.
  rocksdb::WriteBatch b;
  p->audit(b, audit_event::store_opened, p->opt.directory.string(), "", "");
  if (auto r = check(p->db->Write(rocksdb::WriteOptions{}, &b), "writing the audit log"); !r)
    return std::unexpected(r.error());
  return std::unique_ptr<key_store>(new key_store(std::move(p)));
}

// --- link pools ------------------------------------------------------------------------------

expected<append_status> key_store::append_block(const pool_id& pool, std::uint64_t seq, std::span<const std::byte> bytes) {
  const block_append one{pool, seq, bytes};
  auto r = append_blocks(std::span<const block_append>(&one, 1));
  if (!r) return std::unexpected(r.error());
  return r->front();
}

expected<std::vector<append_status>> key_store::append_blocks(std::span<const block_append> blocks) {
  std::vector<impl::pool_state*> states;
  for (const auto& blk : blocks) {
    if (blk.bytes.empty() || blk.bytes.size() > max_block_bytes)
      return fail(errc::invalid_argument, "a key block must hold 1.." + std::to_string(max_block_bytes) +
                                            " bytes; got " + std::to_string(blk.bytes.size()));
    auto ps = impl_->pool(blk.pool);
    if (!ps) return std::unexpected(ps.error());
    if (std::find(states.begin(), states.end(), *ps) != states.end())
      return fail(errc::invalid_argument, "append_blocks names pool " + (*ps)->name + " twice; append one block per pool");
    states.push_back(*ps);
  }
  // Lock in a global order (by address) so that concurrent batches cannot deadlock.
  std::vector<impl::pool_state*> order = states;
  std::sort(order.begin(), order.end());
  std::vector<std::unique_lock<std::mutex>> locks;
  for (auto* st : order) locks.emplace_back(st->m);

  std::vector<append_status> out(blocks.size(), append_status::appended);
  rocksdb::WriteBatch b;
  for (std::size_t i = 0; i < blocks.size(); ++i) {
    auto& p = *states[i];
    const auto& blk = blocks[i];
    if (auto r = impl_->load(p); !r) return std::unexpected(r.error());
    std::string key = p.prefix + be64(blk.seq);
    if (p.next_seq && blk.seq < *p.next_seq) {
      auto existing = impl_->get(cf_pool, key);
      if (!existing) return std::unexpected(existing.error());
      if (!existing->has_value()) {
        out[i] = append_status::stale;
        continue;
      }
      auto h = decode_block(**existing);
      if (!h) return std::unexpected(h.error());
      const auto conflict = [&] {
        return fail(errc::invalid_argument, "block " + std::to_string(blk.seq) + " of link pool " + p.name +
                                              " is already stored with different bytes: the two ends of the link disagree — "
                                              "stop using this link and investigate (its post-processing or transport is faulty)");
      };
      if (h->block_len != blk.bytes.size()) return conflict();
      auto rest = impl_->crypt->open(h->sealed, block_aad(key, h->block_len, h->start));
      if (!rest) return std::unexpected(rest.error());
      if (!constant_time_equal(rest->bytes(), blk.bytes.subspan(h->start))) return conflict();
      out[i] = append_status::duplicate;
      continue;
    }
    auto value = encode_block(*impl_->crypt, key, static_cast<std::uint32_t>(blk.bytes.size()), 0, blk.bytes);
    if (!value) return std::unexpected(value.error());
    b.Put(impl_->cf[cf_pool], key, *value).PermitUncheckedError();
    b.Put(impl_->cf[cf_meta], next_seq_key(p.prefix), be64(blk.seq + 1)).PermitUncheckedError();
    impl_->audit(b, audit_event::block_appended, p.name + "/" + std::to_string(blk.seq), "",
                 "bits=" + std::to_string(blk.bytes.size() * 8));
  }
  if (std::count(out.begin(), out.end(), append_status::appended) == 0) return out;
  if (auto r = impl_->commit(b, "appending key blocks"); !r) return std::unexpected(r.error());
  for (std::size_t i = 0; i < blocks.size(); ++i) {
    if (out[i] != append_status::appended) continue;
    auto& p = *states[i];
    p.available_bytes += blocks[i].bytes.size();
    ++p.blocks;
    p.next_seq = blocks[i].seq + 1;
    if (!p.head_seq) p.head_seq = blocks[i].seq;
  }
  return out;
}

expected<pool_take> key_store::take(const pool_id& pool, std::uint64_t n_bits) { return take_impl(pool, n_bits, {}); }

expected<pool_take> key_store::peek(const pool_id& pool, std::uint64_t n_bits) {
  return take_impl(pool, n_bits, {}, false);
}

expected<pool_take> key_store::take_at(const pool_id& pool, pool_position from, std::uint64_t n_bits) {
  return take_impl(pool, n_bits, from);
}

expected<pool_take> key_store::take_impl(const pool_id& pool, std::uint64_t n_bits, std::optional<pool_position> from,
                                         bool consume) {
  const bool positioned = from.has_value();
  if ((n_bits == 0 && !positioned) || n_bits % 8 != 0)
    return fail(errc::invalid_argument, "take needs a positive multiple of 8 bits (the pool hands out whole bytes); got " +
                                          std::to_string(n_bits));
  auto ps = impl_->pool(pool);
  if (!ps) return std::unexpected(ps.error());
  auto& p = **ps;
  const std::uint64_t need = n_bits / 8;
  std::uint64_t deleted = 0;
  std::string compact_end;
  pool_take out;
  {
    std::lock_guard lock(p.m);
    if (auto r = impl_->load(p); !r) return std::unexpected(r.error());
    if (from && p.head_seq && pool_position{*p.head_seq, 0} > *from) return behind_head(p.name, *from);
    if (need > p.available_bytes)
      return fail(errc::insufficient_data, "link pool " + p.name + " holds " + std::to_string(p.available_bytes * 8) +
                                             " bits, " + std::to_string(n_bits) +
                                             " requested; wait for the link to produce more key or request fewer bits");
    out.bytes = secure_buffer(static_cast<std::size_t>(need));
    const std::string lower = p.prefix + be64(p.head_seq.value_or(0));
    const std::string upper = impl_->pool_upper(p);
    rocksdb::Slice ub(upper);
    rocksdb::ReadOptions ro;
    ro.iterate_upper_bound = &ub;  // seeking at the head skips the tombstones of consumed blocks
    std::unique_ptr<rocksdb::Iterator> it(impl_->db->NewIterator(ro, impl_->cf[cf_pool]));
    rocksdb::WriteBatch b;
    std::uint64_t got = 0, burned = 0;
    std::optional<std::uint64_t> new_head;
    bool first = true;
    for (it->Seek(lower); it->Valid(); it->Next()) {
      const std::string key(as_view(it->key()));
      const std::uint64_t seq = seq_of(key);
      if (got == need && !from) {
        new_head = seq;
        break;
      }
      auto h = decode_block(as_view(it->value()));
      if (!h) return std::unexpected(h.error());
      // take_at: everything before `from` is burned (deleted unread), never handed out.
      std::uint32_t skip = 0;
      if (from && first) {
        if (seq < from->seq) {
          b.Delete(impl_->cf[cf_pool], key).PermitUncheckedError();
          burned += h->block_len - h->start;
          ++deleted;
          continue;
        }
        if (seq > from->seq || h->start > from->offset) return behind_head(p.name, *from);
        if (from->offset > h->block_len) return behind_head(p.name, *from);
        skip = from->offset - h->start;
        burned += skip;
      }
      auto rest = impl_->crypt->open(h->sealed, block_aad(key, h->block_len, h->start));
      if (!rest) return std::unexpected(rest.error());
      const std::uint32_t start = h->start + skip;
      if (skip == rest->size()) {  // `from` is this block's end: the take starts in the next block
        b.Delete(impl_->cf[cf_pool], key).PermitUncheckedError();
        ++deleted;
        from.reset();
        continue;
      }
      if (first) out.start = {seq, start};
      first = false;
      from.reset();
      const std::size_t k = static_cast<std::size_t>(std::min<std::uint64_t>(rest->size() - skip, need - got));
      if (k > 0) std::memcpy(out.bytes.data() + got, rest->data() + skip, k);  // k == 0: a burn-only take_at
      got += k;
      const auto end_offset = static_cast<std::uint32_t>(start + k);
      out.end = {seq, end_offset};
      if (end_offset == h->block_len) {
        b.Delete(impl_->cf[cf_pool], key).PermitUncheckedError();
        ++deleted;
      } else {
        auto v = encode_block(*impl_->crypt, key, h->block_len, end_offset, rest->bytes().subspan(skip + k));
        if (!v) return std::unexpected(v.error());
        b.Put(impl_->cf[cf_pool], key, *v).PermitUncheckedError();
        new_head = seq;
        break;
      }
    }
    if (auto r = check(it->status(), "reading link pool " + p.name); !r) return std::unexpected(r.error());
    if (got != need && positioned)
      return fail(errc::insufficient_data, "link pool " + p.name + " holds too few bits at the requested position; wait "
                                           "for the link to produce more key");
    if (got != need)
      return fail(errc::parse_error, "link pool " + p.name + " holds fewer bytes than its index says; restore the database "
                                                             "from a backup");
    impl_->audit(b, audit_event::bits_taken, p.name + "/" + std::to_string(out.start.seq), "",
                 "bits=" + std::to_string(n_bits) + " from=" + std::to_string(out.start.seq) + ":" +
                   std::to_string(out.start.offset) + " to=" + std::to_string(out.end.seq) + ":" +
                   std::to_string(out.end.offset));
    if (!consume) return out;
    if (auto r = impl_->commit(b, "taking key bits"); !r) return std::unexpected(r.error());
    p.available_bytes -= need + burned;
    p.blocks -= deleted;
    p.head_seq = new_head;
    compact_end = p.prefix + be64(new_head ? *new_head : out.end.seq + 1);
  }
  impl_->maybe_compact(impl_->pool_deletes, deleted, cf_pool, &p.prefix, &compact_end);
  return out;
}

expected<pool_status> key_store::status(const pool_id& pool) {
  auto ps = impl_->pool(pool);
  if (!ps) return std::unexpected(ps.error());
  auto& p = **ps;
  std::lock_guard lock(p.m);
  if (auto r = impl_->load(p); !r) return std::unexpected(r.error());
  pool_status s;
  s.available_bits = p.available_bytes * 8;
  s.blocks = p.blocks;
  s.next_seq = p.next_seq;
  if (p.head_seq) {
    auto v = impl_->get(cf_pool, p.prefix + be64(*p.head_seq));
    if (!v) return std::unexpected(v.error());
    if (v->has_value()) {
      auto h = decode_block(**v);
      if (!h) return std::unexpected(h.error());
      s.head = pool_position{*p.head_seq, h->start};
    }
  }
  return s;
}

// --- end-to-end keys -------------------------------------------------------------------------

expected<put_result> key_store::put_key(const key_spec& spec, std::span<const std::byte> material) {
  if (material.empty() || material.size() > max_key_bytes)
    return fail(errc::invalid_argument, "an end-to-end key must hold 1.." + std::to_string(max_key_bytes) + " bytes; got " +
                                          std::to_string(material.size()));
  if (auto r = check_name("master SAE ID", spec.master_sae); !r) return std::unexpected(r.error());
  if (spec.slave_saes.empty()) return fail(errc::invalid_argument, "an end-to-end key needs at least one slave SAE ID");
  for (const auto& s : spec.slave_saes)
    if (auto r = check_name("slave SAE ID", s); !r) return std::unexpected(r.error());
  if (spec.ttl.count() <= 0) return fail(errc::invalid_argument, "an end-to-end key needs a positive ttl");
  if (spec.state != key_state::reserved && spec.state != key_state::ready)
    return fail(errc::invalid_argument, "a new end-to-end key is stored as reserved or ready");
  if (!spec.serve_master && !spec.serve_slaves)
    return fail(errc::invalid_argument, "a stored key must be owed to the master, the slaves or both (serve_master/serve_slaves)");
  key_id id;
  if (spec.id) {
    id = *spec.id;
  } else {
    auto g = key_id::generate();
    if (!g) return std::unexpected(g.error());
    id = *g;
  }
  auto& s = *impl_;
  std::lock_guard lock(s.e2e_mutex);
  const std::string key = id_key(id);
  if (s.entries.contains(id)) {
    auto v = s.get(cf_e2e, key);
    if (!v) return std::unexpected(v.error());
    if (!v->has_value()) return fail(errc::parse_error, "key " + id.to_string() + " is indexed but missing; restart the node");
    auto rec = decode_e2e(**v);
    if (!rec) return std::unexpected(rec.error());
    if (rec->state == erased_state) return put_result{id, put_status::already_erased};
    auto stored = s.crypt->open(rec->sealed, e2e_aad(id, rec->header));
    if (!stored) return std::unexpected(stored.error());
    if (!constant_time_equal(stored->bytes(), material) || rec->master != spec.master_sae || rec->slaves != spec.slave_saes)
      return fail(errc::invalid_argument, "key " + id.to_string() +
                                            " is already stored with different material or SAEs; a key ID is never reused — "
                                            "check the peer that sent it");
    return put_result{id, put_status::already_stored};
  }
  const std::string pair = pair_key(spec.master_sae, spec.slave_saes[0]);
  if (auto c = s.live_count.find(pair); c != s.live_count.end() && c->second >= s.opt.max_key_count)
    return put_result{id, put_status::capacity_full};
  e2e_record r;
  r.state = static_cast<std::uint8_t>(spec.state);
  r.serve_master = spec.serve_master;
  r.serve_slaves = spec.serve_slaves;
  r.created = s.now();
  r.expiry = r.created + spec.ttl.count();
  r.serial = s.next_serial;
  r.master = spec.master_sae;
  r.slaves = spec.slave_saes;
  if (spec.serve_slaves) r.pending = spec.slave_saes;
  r.route = spec.route;
  r.material_len = static_cast<std::uint32_t>(material.size());
  auto value = encode_e2e(*s.crypt, id, r, material);
  if (!value) return std::unexpected(value.error());
  rocksdb::WriteBatch b;
  b.Put(s.cf[cf_e2e], key, *value).PermitUncheckedError();
  s.audit(b, audit_event::key_stored, id.to_string(), spec.master_sae,
          "state=" + std::string(to_string(spec.state)) + " bits=" + std::to_string(material.size() * 8));
  if (auto c = s.commit(b, "storing an end-to-end key"); !c) return std::unexpected(c.error());
  ++s.next_serial;
  s.index_insert(id, r);
  return put_result{id, put_status::stored};
}

namespace {
// A live record with its material decrypted, for the state transitions below.
struct loaded_key {
  key_id id;
  std::string value;  // owns the bytes the record views into
  e2e_record rec;
  secure_buffer material;
};
}  // namespace

expected<bool> key_store::mark_ready(const key_id& id) {
  auto& s = *impl_;
  std::lock_guard lock(s.e2e_mutex);
  const auto e = s.entries.find(id);
  if (e == s.entries.end() || e->second.state == erased_state || e->second.expiry <= s.now()) return false;
  if (e->second.state != static_cast<std::uint8_t>(key_state::reserved)) return true;
  auto v = s.get(cf_e2e, id_key(id));
  if (!v) return std::unexpected(v.error());
  if (!v->has_value()) return fail(errc::parse_error, "key " + id.to_string() + " is indexed but missing; restart the node");
  auto rec = decode_e2e(**v);
  if (!rec) return std::unexpected(rec.error());
  auto material = s.crypt->open(rec->sealed, e2e_aad(id, rec->header));
  if (!material) return std::unexpected(material.error());
  rec->state = static_cast<std::uint8_t>(key_state::ready);
  auto value = encode_e2e(*s.crypt, id, *rec, material->bytes());
  if (!value) return std::unexpected(value.error());
  rocksdb::WriteBatch b;
  b.Put(s.cf[cf_e2e], id_key(id), *value).PermitUncheckedError();
  s.audit(b, audit_event::key_ready, id.to_string(), rec->master, "");
  if (auto c = s.commit(b, "marking a key ready"); !c) return std::unexpected(c.error());
  s.index_remove(id);
  s.index_insert(id, *rec);
  return true;
}

expected<delivery> key_store::deliver_to_master(std::string_view master_sae, std::string_view slave_sae, std::size_t number) {
  if (number == 0) return fail(errc::invalid_argument, "enc_keys needs number >= 1");
  auto& s = *impl_;
  std::uint64_t erased = 0;
  delivery out;
  {
    std::lock_guard lock(s.e2e_mutex);
    const std::int64_t now = s.now();
    std::vector<key_id> chosen;
    if (auto q = s.ready_queue.find(pair_key(master_sae, slave_sae)); q != s.ready_queue.end()) {
      for (const auto& [serial, id] : q->second) {
        if (chosen.size() == number) break;
        if (s.entries.at(id).expiry > now) chosen.push_back(id);
      }
    }
    if (chosen.size() < number) {
      out.refused = refusal::insufficient_keys;
      out.reason = std::to_string(chosen.size()) + " keys ready for master " + std::string(master_sae) + " and slave " +
                   std::string(slave_sae) + ", " + std::to_string(number) + " requested; retry later or request fewer";
      return out;
    }
    rocksdb::WriteBatch b;
    std::vector<std::pair<key_id, e2e_record>> updated;
    std::vector<std::string> values;
    values.reserve(chosen.size());
    for (const auto& id : chosen) {
      auto v = s.get(cf_e2e, id_key(id));
      if (!v) return std::unexpected(v.error());
      if (!v->has_value()) return fail(errc::parse_error, "key " + id.to_string() + " is indexed but missing; restart the node");
      values.push_back(std::move(**v));
      auto rec = decode_e2e(values.back());
      if (!rec) return std::unexpected(rec.error());
      auto material = s.crypt->open(rec->sealed, e2e_aad(id, rec->header));
      if (!material) return std::unexpected(material.error());
      e2e_record next = *rec;
      const bool slaves_owed = next.serve_slaves && !next.pending.empty();
      next.state = slaves_owed ? static_cast<std::uint8_t>(key_state::master_delivered) : erased_state;
      if (!slaves_owed) next.material_len = 0;
      auto value = encode_e2e(*s.crypt, id, next, material->bytes());
      if (!value) return std::unexpected(value.error());
      b.Put(s.cf[cf_e2e], id_key(id), *value).PermitUncheckedError();
      s.audit(b, audit_event::key_delivered_master, id.to_string(), master_sae, slaves_owed ? "" : "erased");
      if (!slaves_owed) ++erased;
      updated.emplace_back(id, std::move(next));
      out.keys.push_back({id, std::move(*material)});
    }
    if (auto c = s.commit(b, "delivering keys to the master"); !c) {
      out.keys.clear();  // cleanses: nothing was delivered
      return std::unexpected(c.error());
    }
    for (auto& [id, rec] : updated) {
      s.index_remove(id);
      s.index_insert(id, rec);
    }
  }
  // Tombstones (metadata only) replace the ciphertext; compaction drops the superseded values.
  s.maybe_compact(s.e2e_deletes, erased, cf_e2e, nullptr, nullptr);
  return out;
}

expected<delivery> key_store::deliver_to_slave(std::string_view caller_sae, std::string_view master_sae,
                                               std::span<const key_id> ids) {
  if (ids.empty()) return fail(errc::invalid_argument, "dec_keys needs at least one key ID");
  auto& s = *impl_;
  std::uint64_t erased = 0;
  delivery out;
  {
    std::lock_guard lock(s.e2e_mutex);
    const std::int64_t now = s.now();
    std::vector<std::string> values;
    values.reserve(ids.size());
    std::vector<e2e_record> recs;
    std::string not_found, unauthorized;
    std::set<key_id> seen;
    for (const auto& id : ids) {
      const bool duplicate = !seen.insert(id).second;
      const auto e = s.entries.find(id);
      if (duplicate || e == s.entries.end() || e->second.state == erased_state || e->second.expiry <= now) {
        if (not_found.empty()) not_found = id.to_string();
        recs.emplace_back();
        values.emplace_back();
        continue;
      }
      auto v = s.get(cf_e2e, id_key(id));
      if (!v) return std::unexpected(v.error());
      if (!v->has_value()) return fail(errc::parse_error, "key " + id.to_string() + " is indexed but missing; restart the node");
      values.push_back(std::move(**v));
      auto rec = decode_e2e(values.back());
      if (!rec) return std::unexpected(rec.error());
      if (!contains(rec->slaves, caller_sae)) {
        if (unauthorized.empty()) unauthorized = id.to_string();
      } else {
        const bool deliverable =
          rec->serve_slaves && rec->master == master_sae &&
          rec->state == static_cast<std::uint8_t>(rec->serve_master ? key_state::master_delivered : key_state::ready) &&
          contains(rec->pending, caller_sae);
        if (!deliverable && not_found.empty()) not_found = id.to_string();
      }
      recs.push_back(std::move(*rec));
    }
    if (!unauthorized.empty()) {
      rocksdb::WriteBatch b;
      s.audit(b, audit_event::unauthorized_request, unauthorized, caller_sae, "dec_keys by an SAE not named as slave");
      if (auto c = s.commit(b, "writing the audit log"); !c) return std::unexpected(c.error());
      out.refused = refusal::unauthorized;
      out.reason = "SAE " + std::string(caller_sae) + " is not a slave of key " + unauthorized;
      return out;
    }
    if (!not_found.empty()) {
      out.refused = refusal::not_found;
      out.reason = "key " + not_found + " is not available to " + std::string(caller_sae) +
                   " (unknown, expired, not yet delivered to the master, or already fetched)";
      return out;
    }
    rocksdb::WriteBatch b;
    for (std::size_t i = 0; i < ids.size(); ++i) {
      const auto& id = ids[i];
      auto& rec = recs[i];
      auto material = s.crypt->open(rec.sealed, e2e_aad(id, rec.header));
      if (!material) return std::unexpected(material.error());
      std::erase(rec.pending, std::string(caller_sae));
      if (rec.pending.empty()) {
        rec.state = erased_state;
        rec.material_len = 0;
        ++erased;
      }
      auto value = encode_e2e(*s.crypt, id, rec, material->bytes());
      if (!value) return std::unexpected(value.error());
      b.Put(s.cf[cf_e2e], id_key(id), *value).PermitUncheckedError();
      s.audit(b, audit_event::key_delivered_slave, id.to_string(), caller_sae, rec.state == erased_state ? "erased" : "");
      out.keys.push_back({id, std::move(*material)});
    }
    if (auto c = s.commit(b, "delivering keys to a slave"); !c) {
      out.keys.clear();
      return std::unexpected(c.error());
    }
    for (std::size_t i = 0; i < ids.size(); ++i) {
      s.index_remove(ids[i]);
      s.index_insert(ids[i], recs[i]);
    }
  }
  s.maybe_compact(s.e2e_deletes, erased, cf_e2e, nullptr, nullptr);
  return out;
}

expected<bool> key_store::erase_key(const key_id& id) {
  auto& s = *impl_;
  {
    std::lock_guard lock(s.e2e_mutex);
    auto v = s.live_e2e_value(id);
    if (!v) return std::unexpected(v.error());
    if (!v->has_value()) return false;
    auto rec = decode_e2e(**v);
    if (!rec) return std::unexpected(rec.error());
    e2e_record next = *rec;
    next.state = erased_state;
    next.material_len = 0;
    next.pending.clear();
    auto value = encode_e2e(*s.crypt, id, next, {});
    if (!value) return std::unexpected(value.error());
    rocksdb::WriteBatch b;
    b.Put(s.cf[cf_e2e], id_key(id), *value).PermitUncheckedError();
    s.audit(b, audit_event::key_erased, id.to_string(), rec->master, "");
    if (auto c = s.commit(b, "erasing a key"); !c) return std::unexpected(c.error());
    s.index_remove(id);
    s.index_insert(id, next);
  }
  s.maybe_compact(s.e2e_deletes, 1, cf_e2e, nullptr, nullptr);
  return true;
}

expected<bool> key_store::revoke_key(const key_id& id) {
  auto& s = *impl_;
  {
    std::lock_guard lock(s.e2e_mutex);
    auto v = s.live_e2e_value(id);
    if (!v) return std::unexpected(v.error());
    if (!v->has_value()) return false;
    auto rec = decode_e2e(**v);
    if (!rec) return std::unexpected(rec.error());
    const bool undelivered = rec->state != static_cast<std::uint8_t>(key_state::master_delivered) &&
                             rec->pending.size() == rec->slaves.size();
    if (undelivered) {
      rocksdb::WriteBatch b;
      b.Delete(s.cf[cf_e2e], id_key(id)).PermitUncheckedError();
      s.audit(b, audit_event::key_erased, id.to_string(), rec->master, "revoked");
      if (auto c = s.commit(b, "revoking a key"); !c) return std::unexpected(c.error());
      s.index_remove(id);
      return true;
    }
  }
  return erase_key(id);
}

expected<std::size_t> key_store::sweep_expired() {
  auto& s = *impl_;
  std::size_t swept = 0;
  std::uint64_t deleted = 0;
  {
    std::lock_guard lock(s.e2e_mutex);
    const std::int64_t now = s.now();
    while (!s.by_expiry.empty() && s.by_expiry.begin()->first <= now) {
      // At most 1024 records per synced batch.
      rocksdb::WriteBatch b;
      std::vector<key_id> done;
      for (auto it = s.by_expiry.begin(); it != s.by_expiry.end() && it->first <= now && done.size() < 1024; ++it) {
        const auto& id = it->second;
        b.Delete(s.cf[cf_e2e], id_key(id)).PermitUncheckedError();
        if (s.entries.at(id).state != erased_state) {
          s.audit(b, audit_event::key_expired, id.to_string(), "", "");
          ++swept;
        }
        done.push_back(id);
      }
      if (auto c = s.commit(b, "sweeping expired keys"); !c) return std::unexpected(c.error());
      for (const auto& id : done) s.index_remove(id);
      deleted += done.size();
    }
  }
  s.maybe_compact(s.e2e_deletes, deleted, cf_e2e, nullptr, nullptr);
  return swept;
}

expected<std::optional<key_info>> key_store::info(const key_id& id) {
  auto& s = *impl_;
  std::lock_guard lock(s.e2e_mutex);
  const auto e = s.entries.find(id);
  if (e == s.entries.end() || e->second.state == erased_state || e->second.expiry <= s.now())
    return std::optional<key_info>{};
  auto v = s.get(cf_e2e, id_key(id));
  if (!v) return std::unexpected(v.error());
  if (!v->has_value()) return std::optional<key_info>{};
  auto rec = decode_e2e(**v);
  if (!rec) return std::unexpected(rec.error());
  key_info k;
  k.id = id;
  k.state = static_cast<key_state>(rec->state);
  k.master_sae = rec->master;
  k.slave_saes = rec->slaves;
  k.pending_slaves = rec->pending;
  k.route = rec->route;
  k.created_unix_ms = rec->created;
  k.expiry_unix_ms = rec->expiry;
  k.serve_master = rec->serve_master;
  k.size_bits = static_cast<std::size_t>(rec->material_len) * 8;
  return std::optional<key_info>{std::move(k)};
}

pair_status key_store::status(std::string_view master_sae, std::string_view slave_sae) {
  auto& s = *impl_;
  std::lock_guard lock(s.e2e_mutex);
  const std::string pair = pair_key(master_sae, slave_sae);
  pair_status out;
  if (auto q = s.ready_queue.find(pair); q != s.ready_queue.end()) out.ready = q->second.size();
  if (auto c = s.live_count.find(pair); c != s.live_count.end()) out.live = c->second;
  return out;
}

// --- maintenance -----------------------------------------------------------------------------

expected<void> key_store::compact() {
  auto& s = *impl_;
  rocksdb::FlushOptions fo;
  fo.wait = true;
  std::vector<rocksdb::ColumnFamilyHandle*> all(s.cf.begin(), s.cf.end());
  if (auto r = check(s.db->Flush(fo, all), "flushing the memtables"); !r) return r;
  rocksdb::CompactRangeOptions co;
  co.bottommost_level_compaction = rocksdb::BottommostLevelCompaction::kForce;
  for (std::size_t f : {cf_pool, cf_e2e, cf_meta})
    if (auto r = check(s.db->CompactRange(co, s.cf[f], nullptr, nullptr), "compacting the store"); !r) return r;
  s.pool_deletes = 0;
  s.e2e_deletes = 0;
  rocksdb::WriteBatch b;
  s.audit(b, audit_event::compacted, s.opt.directory.string(), "", "");
  return s.commit(b, "writing the audit log");
}

expected<std::vector<audit_entry>> key_store::read_audit(std::uint64_t from, std::size_t max) {
  auto& s = *impl_;
  std::vector<audit_entry> out;
  std::unique_ptr<rocksdb::Iterator> it(s.db->NewIterator(rocksdb::ReadOptions{}, s.cf[cf_audit]));
  for (it->Seek(be64(from)); it->Valid() && out.size() < max; it->Next()) {
    reader r{as_view(it->value())};
    audit_entry e;
    e.index = seq_of(as_view(it->key()));
    e.time_unix_ms = static_cast<std::int64_t>(r.uint(8));
    e.event = static_cast<audit_event>(r.uint(1));
    e.subject = r.str();
    e.sae = r.str();
    e.node = r.str();
    e.detail = r.str();
    if (!r.ok) return fail(errc::parse_error, "an audit entry is malformed; the database is damaged — restore it from a backup");
    out.push_back(std::move(e));
  }
  if (auto c = check(it->status(), "reading the audit log"); !c) return std::unexpected(c.error());
  return out;
}

}  // namespace cvqkd::storage
