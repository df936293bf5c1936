// The key store's semantics: link pools (order, idempotent and conflicting re-append, atomic
// takes, restart), end-to-end keys (deliver once to master and slave, unauthorized slaves,
// expiry, capacity), the KEK policy, concurrent takers, and a scan of the database files for
// plaintext key bytes. The crash harness is in storage_crash_test.cpp.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>
#include <array>
#include <fstream>
#include <mutex>
#include <set>
#include <thread>

#include "core/drbg.hpp"
#include "storage/key_store.hpp"
#include "storage_test_support.hpp"
#include "test_seed.hpp"

using namespace cvqkd;
using namespace cvqkd::storage;
using namespace std::chrono_literals;
using test_support::temp_dir;

namespace {

std::vector<std::byte> block_bytes(std::uint64_t seed, std::uint64_t first_g, std::size_t n) {
  std::vector<std::byte> b(n);
  for (std::size_t i = 0; i < n; ++i) b[i] = test_support::stream_byte(seed, first_g + i);
  return b;
}

std::vector<std::byte> random_key(random_source& rng, std::size_t n = 32) {
  std::vector<std::byte> k(n);
  rng.fill(k);
  return k;
}

class store_fixture : public ::testing::Test {
protected:
  void SetUp() override {
    kek = dir.path() / "kek";
    ASSERT_TRUE(create_kek_file(kek).has_value());
    clk = std::make_shared<manual_clock>();
  }
  store_options options() {
    store_options o;
    o.directory = dir.path() / "db";
    o.kek_file = kek;
    o.node_id = "node-a";
    o.time = clk;
    o.max_key_count = max_key_count;
    return o;
  }
  std::unique_ptr<key_store> open_store() {
    auto s = key_store::open(options());
    EXPECT_TRUE(s.has_value()) << (s ? "" : to_string(s.error()));
    return s ? std::move(*s) : nullptr;
  }
  key_spec spec(std::vector<std::string> slaves = {"sae-b"}) {
    key_spec k;
    k.master_sae = "sae-a";
    k.slave_saes = std::move(slaves);
    k.route = {"node-a", "node-b"};
    k.ttl = 60s;
    return k;
  }

  temp_dir dir;
  std::filesystem::path kek;
  std::shared_ptr<manual_clock> clk;
  std::uint64_t max_key_count = 100'000;
};

const pool_id link1{"link-1", direction::forward};

bool same(std::span<const std::byte> a, std::span<const std::byte> b) { return constant_time_equal(a, b); }

}  // namespace

// --- link pools --------------------------------------------------------------------------------

TEST_F(store_fixture, pool_takes_oldest_first_across_blocks) {
  auto s = open_store();
  ASSERT_TRUE(s);
  const auto stream = block_bytes(7, 0, 300);  // blocks of 100 bytes, seq 10, 11, 12
  for (std::uint64_t i = 0; i < 3; ++i)
    ASSERT_EQ(*s->append_block(link1, 10 + i, std::span(stream).subspan(i * 100, 100)), append_status::appended);
  EXPECT_EQ(s->status(link1)->available_bits, 2400u);

  auto t1 = s->take(link1, 8 * 30);
  ASSERT_TRUE(t1.has_value());
  EXPECT_TRUE(same(t1->bytes.bytes(), std::span(stream).subspan(0, 30)));
  EXPECT_EQ(t1->start, (pool_position{10, 0}));
  EXPECT_EQ(t1->end, (pool_position{10, 30}));

  auto t2 = s->take(link1, 8 * 150);  // the rest of block 10 and 80 bytes of block 11
  ASSERT_TRUE(t2.has_value());
  EXPECT_TRUE(same(t2->bytes.bytes(), std::span(stream).subspan(30, 150)));
  EXPECT_EQ(t2->start, (pool_position{10, 30}));
  EXPECT_EQ(t2->end, (pool_position{11, 80}));

  const auto st = s->status(link1);
  ASSERT_TRUE(st.has_value());
  EXPECT_EQ(st->available_bits, 8u * 120);
  EXPECT_EQ(st->blocks, 2u);
  EXPECT_EQ(st->next_seq, 13u);
  EXPECT_EQ(st->head, (pool_position{11, 80}));
  // The pools of other links and of the other direction are untouched.
  EXPECT_EQ(s->status(pool_id{"link-1", direction::reverse})->available_bits, 0u);
  EXPECT_EQ(s->status(pool_id{"link-2", direction::forward})->available_bits, 0u);
}

TEST_F(store_fixture, pool_reappend_is_idempotent_and_consumed_blocks_are_stale) {
  auto s = open_store();
  ASSERT_TRUE(s);
  const auto b1 = block_bytes(1, 0, 64), b2 = block_bytes(1, 64, 64);
  ASSERT_EQ(*s->append_block(link1, 1, b1), append_status::appended);
  ASSERT_EQ(*s->append_block(link1, 2, b2), append_status::appended);
  EXPECT_EQ(*s->append_block(link1, 1, b1), append_status::duplicate);
  ASSERT_TRUE(s->take(link1, 8 * 70).has_value());  // block 1 gone, block 2 partly used
  EXPECT_EQ(*s->append_block(link1, 1, b1), append_status::stale);
  EXPECT_EQ(*s->append_block(link1, 2, b2), append_status::duplicate);
  EXPECT_EQ(s->status(link1)->available_bits, 8u * 58);  // nothing was added back
  // A gap below the high-water mark is stale too: appends must come in increasing order.
  ASSERT_EQ(*s->append_block(link1, 5, b1), append_status::appended);
  EXPECT_EQ(*s->append_block(link1, 4, b2), append_status::stale);
  EXPECT_EQ(s->status(link1)->available_bits, 8u * (58 + 64));
}

TEST_F(store_fixture, pool_conflicting_reappend_is_rejected) {
  auto s = open_store();
  ASSERT_TRUE(s);
  auto b = block_bytes(2, 0, 64);
  ASSERT_EQ(*s->append_block(link1, 1, b), append_status::appended);
  auto other = b;
  other[63] ^= std::byte{1};
  auto r = s->append_block(link1, 1, other);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, errc::invalid_argument);
  EXPECT_NE(r.error().message.find("disagree"), std::string::npos) << r.error().message;
  EXPECT_FALSE(s->append_block(link1, 1, std::span(b).first(63)).has_value());  // other length
  // After a partial take only the unconsumed part can be compared: it still must match.
  ASSERT_TRUE(s->take(link1, 8 * 10).has_value());
  EXPECT_FALSE(s->append_block(link1, 1, other).has_value());
  EXPECT_EQ(*s->append_block(link1, 1, b), append_status::duplicate);
  EXPECT_EQ(s->status(link1)->available_bits, 8u * 54);
}

TEST_F(store_fixture, pool_take_beyond_available_fails_and_changes_nothing) {
  auto s = open_store();
  ASSERT_TRUE(s);
  const auto b = block_bytes(3, 0, 40);
  ASSERT_TRUE(s->append_block(link1, 1, b).has_value());
  const auto audit_before = s->read_audit()->size();
  auto r = s->take(link1, 8 * 41);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, errc::insufficient_data);
  EXPECT_NE(r.error().message.find("holds 320 bits"), std::string::npos) << r.error().message;
  EXPECT_EQ(s->read_audit()->size(), audit_before);
  for (std::uint64_t bad : {0ull, 7ull, 12ull}) EXPECT_EQ(s->take(link1, bad).error().code, errc::invalid_argument);
  EXPECT_EQ(s->take(pool_id{"", direction::forward}, 8).error().code, errc::invalid_argument);
  EXPECT_EQ(s->take(pool_id{"nothing-here", direction::forward}, 8).error().code, errc::insufficient_data);
  auto all = s->take(link1, 8 * 40);
  ASSERT_TRUE(all.has_value());
  EXPECT_TRUE(same(all->bytes.bytes(), b));
  EXPECT_EQ(s->status(link1)->available_bits, 0u);
  EXPECT_FALSE(s->status(link1)->head.has_value());
}

TEST_F(store_fixture, pool_survives_restart_and_reimport_is_idempotent) {
  const auto stream = block_bytes(4, 0, 200);
  {
    auto s = open_store();
    ASSERT_TRUE(s);
    ASSERT_TRUE(s->append_block(link1, 1, std::span(stream).first(100)).has_value());
    ASSERT_TRUE(s->append_block(link1, 2, std::span(stream).subspan(100)).has_value());
    ASSERT_TRUE(s->take(link1, 8 * 130).has_value());
  }
  auto s = open_store();
  ASSERT_TRUE(s);
  auto st = s->status(link1);
  ASSERT_TRUE(st.has_value());
  EXPECT_EQ(st->available_bits, 8u * 70);
  EXPECT_EQ(st->head, (pool_position{2, 30}));
  EXPECT_EQ(st->next_seq, 3u);
  // Re-importing both blocks after the restart adds nothing.
  EXPECT_EQ(*s->append_block(link1, 1, std::span(stream).first(100)), append_status::stale);
  EXPECT_EQ(*s->append_block(link1, 2, std::span(stream).subspan(100)), append_status::duplicate);
  auto rest = s->take(link1, 8 * 70);
  ASSERT_TRUE(rest.has_value());
  EXPECT_TRUE(same(rest->bytes.bytes(), std::span(stream).subspan(130)));
}

// --- end-to-end keys ---------------------------------------------------------------------------

TEST_F(store_fixture, e2e_keys_are_delivered_once_to_master_and_once_to_slave) {
  auto s = open_store();
  ASSERT_TRUE(s);
  seeded_drbg rng(test_support::base_seed(), "storage-e2e");
  std::vector<std::vector<std::byte>> material;
  std::vector<key_id> ids;
  for (int i = 0; i < 3; ++i) {
    material.push_back(random_key(rng));
    auto r = s->put_key(spec(), material.back());
    ASSERT_TRUE(r.has_value());
    ASSERT_EQ(r->status, put_status::stored);
    ids.push_back(r->id);
    clk->advance(1ms);
  }
  EXPECT_EQ(s->status("sae-a", "sae-b").ready, 3u);
  // The slave cannot fetch a key the master has not received yet.
  EXPECT_EQ(s->deliver_to_slave("sae-b", "sae-a", std::span(ids).first(1))->refused, refusal::not_found);

  auto m = s->deliver_to_master("sae-a", "sae-b", 2);
  ASSERT_TRUE(m.has_value());
  ASSERT_EQ(m->refused, refusal::none);
  ASSERT_EQ(m->keys.size(), 2u);
  for (int i = 0; i < 2; ++i) {  // oldest first
    EXPECT_EQ(m->keys[static_cast<std::size_t>(i)].id, ids[static_cast<std::size_t>(i)]);
    EXPECT_TRUE(same(m->keys[static_cast<std::size_t>(i)].material.bytes(), material[static_cast<std::size_t>(i)]));
  }
  EXPECT_EQ((*s->info(ids[0]))->state, key_state::master_delivered);
  auto again = s->deliver_to_master("sae-a", "sae-b", 2);  // only one ready key is left: all or nothing
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(again->refused, refusal::insufficient_keys);
  EXPECT_TRUE(again->keys.empty());
  EXPECT_EQ(s->status("sae-a", "sae-b").ready, 1u);

  const std::array<key_id, 2> wanted{ids[0], ids[1]};
  auto d = s->deliver_to_slave("sae-b", "sae-a", wanted);
  ASSERT_TRUE(d.has_value());
  ASSERT_EQ(d->refused, refusal::none) << d->reason;
  ASSERT_EQ(d->keys.size(), 2u);
  EXPECT_TRUE(same(d->keys[1].material.bytes(), material[1]));
  auto twice = s->deliver_to_slave("sae-b", "sae-a", std::span(wanted).first(1));
  EXPECT_EQ(twice->refused, refusal::not_found);
  EXPECT_FALSE(s->info(ids[0])->has_value());
  // The same key sent again (e.g. a relay retry after a restart) is not stored again.
  EXPECT_EQ(s->put_key([&] { auto k = spec(); k.id = ids[0]; return k; }(), material[0])->status, put_status::already_erased);
  EXPECT_EQ(s->status("sae-a", "sae-b").live, 1u);

  std::vector<audit_event> events;
  const auto audit = s->read_audit();
  ASSERT_TRUE(audit.has_value());
  for (const auto& e : *audit) {
    events.push_back(e.event);
    EXPECT_EQ(e.node, "node-a");
  }
  EXPECT_EQ(std::count(events.begin(), events.end(), audit_event::key_delivered_master), 2);
  EXPECT_EQ(std::count(events.begin(), events.end(), audit_event::key_delivered_slave), 2);
}

TEST_F(store_fixture, e2e_unauthorized_and_wrong_master_are_refused_without_change) {
  auto s = open_store();
  ASSERT_TRUE(s);
  seeded_drbg rng(test_support::base_seed(), "storage-auth");
  const auto mat = random_key(rng);
  auto put = s->put_key(spec({"sae-b", "sae-c"}), mat);  // sae-c is an additional slave
  ASSERT_TRUE(put.has_value());
  const std::array ids{put->id};
  ASSERT_EQ(s->deliver_to_master("sae-a", "sae-b", 1)->refused, refusal::none);

  auto intruder = s->deliver_to_slave("sae-x", "sae-a", ids);
  ASSERT_TRUE(intruder.has_value());
  EXPECT_EQ(intruder->refused, refusal::unauthorized);
  EXPECT_TRUE(intruder->keys.empty());
  EXPECT_EQ(s->deliver_to_slave("sae-b", "sae-other", ids)->refused, refusal::not_found);  // wrong master
  const auto audit = *s->read_audit();
  EXPECT_TRUE(std::any_of(audit.begin(), audit.end(), [](const audit_entry& e) {
    return e.event == audit_event::unauthorized_request && e.sae == "sae-x";
  }));
  // Unknown IDs mixed with an unauthorized one: 401 wins, as the ETSI API answers it.
  const std::array mixed{put->id, *key_id::generate()};
  EXPECT_EQ(s->deliver_to_slave("sae-x", "sae-a", mixed)->refused, refusal::unauthorized);
  EXPECT_EQ(s->deliver_to_slave("sae-b", "sae-a", mixed)->refused, refusal::not_found);  // all or nothing

  auto b = s->deliver_to_slave("sae-b", "sae-a", ids);
  ASSERT_EQ(b->refused, refusal::none) << b->reason;
  EXPECT_TRUE(same(b->keys.at(0).material.bytes(), mat));
  EXPECT_EQ((*s->info(put->id))->pending_slaves, std::vector<std::string>{"sae-c"});
  auto c = s->deliver_to_slave("sae-c", "sae-a", ids);
  ASSERT_EQ(c->refused, refusal::none) << c->reason;
  EXPECT_TRUE(same(c->keys.at(0).material.bytes(), mat));
  EXPECT_FALSE(s->info(put->id)->has_value());  // erased after the last delivery
  EXPECT_EQ(s->deliver_to_slave("sae-c", "sae-a", ids)->refused, refusal::not_found);
}

TEST_F(store_fixture, e2e_reserved_keys_wait_and_slave_side_stores_skip_the_master) {
  auto s = open_store();
  ASSERT_TRUE(s);
  seeded_drbg rng(test_support::base_seed(), "storage-reserved");
  auto k = spec();
  k.state = key_state::reserved;
  auto put = s->put_key(k, random_key(rng));
  ASSERT_TRUE(put.has_value());
  EXPECT_EQ(s->deliver_to_master("sae-a", "sae-b", 1)->refused, refusal::insufficient_keys);
  EXPECT_EQ(s->status("sae-a", "sae-b").live, 1u);
  ASSERT_TRUE(*s->mark_ready(put->id));
  EXPECT_EQ(s->deliver_to_master("sae-a", "sae-b", 1)->keys.at(0).id, put->id);
  EXPECT_FALSE(*s->mark_ready(*key_id::generate()));

  // A slave-side store holds the key for the slave only: no enc_keys, dec_keys at once.
  auto slave_side = spec();
  slave_side.serve_master = false;
  const auto mat = random_key(rng);
  auto sp = s->put_key(slave_side, mat);
  ASSERT_TRUE(sp.has_value());
  EXPECT_EQ(s->deliver_to_master("sae-a", "sae-b", 1)->refused, refusal::insufficient_keys);
  const std::array ids{sp->id};
  auto d = s->deliver_to_slave("sae-b", "sae-a", ids);
  ASSERT_EQ(d->refused, refusal::none) << d->reason;
  EXPECT_TRUE(same(d->keys.at(0).material.bytes(), mat));

  // Idempotent put, and a reused ID with other material is an error.
  auto again = spec();
  again.id = sp->id;
  EXPECT_EQ(s->put_key(again, random_key(rng))->status, put_status::already_erased);
  const auto fresh = random_key(rng);
  auto p3 = s->put_key(spec(), fresh);
  auto same_id = spec();
  same_id.id = p3->id;
  EXPECT_EQ(s->put_key(same_id, fresh)->status, put_status::already_stored);
  EXPECT_EQ(s->put_key(same_id, random_key(rng)).error().code, errc::invalid_argument);
  EXPECT_EQ(s->put_key(spec({}), fresh).error().code, errc::invalid_argument);
}

TEST_F(store_fixture, e2e_keys_expire) {
  auto s = open_store();
  ASSERT_TRUE(s);
  seeded_drbg rng(test_support::base_seed(), "storage-expiry");
  auto short_lived = spec();
  short_lived.ttl = 1000ms;
  auto a = s->put_key(short_lived, random_key(rng));
  auto b = s->put_key(spec(), random_key(rng));  // 60 s
  ASSERT_TRUE(a && b);
  clk->advance(999ms);
  EXPECT_TRUE(s->info(a->id)->has_value());
  clk->advance(1ms);
  EXPECT_FALSE(s->info(a->id)->has_value());
  auto m = s->deliver_to_master("sae-a", "sae-b", 2);  // only b is deliverable
  EXPECT_EQ(m->refused, refusal::insufficient_keys);
  EXPECT_EQ(*s->sweep_expired(), 1u);
  EXPECT_EQ(s->status("sae-a", "sae-b").live, 1u);
  auto one = s->deliver_to_master("sae-a", "sae-b", 1);
  ASSERT_EQ(one->keys.size(), 1u);
  EXPECT_EQ(one->keys[0].id, b->id);
  clk->advance(60s);  // b expires while waiting for its slave
  const std::array ids{b->id};
  EXPECT_EQ(s->deliver_to_slave("sae-b", "sae-a", ids)->refused, refusal::not_found);
  EXPECT_EQ(*s->sweep_expired(), 1u);
  EXPECT_EQ(*s->sweep_expired(), 0u);
}

TEST_F(store_fixture, e2e_capacity_per_sae_pair) {
  max_key_count = 3;
  auto s = open_store();
  ASSERT_TRUE(s);
  seeded_drbg rng(test_support::base_seed(), "storage-capacity");
  for (int i = 0; i < 3; ++i) EXPECT_EQ(s->put_key(spec(), random_key(rng))->status, put_status::stored);
  EXPECT_EQ(s->put_key(spec(), random_key(rng))->status, put_status::capacity_full);
  EXPECT_EQ(s->put_key(spec({"sae-c"}), random_key(rng))->status, put_status::stored);  // another pair
  // A key delivered to the master still occupies its slot until the slave fetched it.
  auto m = s->deliver_to_master("sae-a", "sae-b", 1);
  EXPECT_EQ(s->put_key(spec(), random_key(rng))->status, put_status::capacity_full);
  const std::array ids{m->keys.at(0).id};
  ASSERT_EQ(s->deliver_to_slave("sae-b", "sae-a", ids)->refused, refusal::none);
  EXPECT_EQ(s->put_key(spec(), random_key(rng))->status, put_status::stored);
}

TEST_F(store_fixture, e2e_state_survives_restart) {
  seeded_drbg rng(test_support::base_seed(), "storage-restart");
  const auto mat = random_key(rng);
  key_id id;
  {
    auto s = open_store();
    ASSERT_TRUE(s);
    id = s->put_key(spec(), mat)->id;
    ASSERT_TRUE(s->put_key(spec(), random_key(rng)).has_value());
    ASSERT_EQ(s->deliver_to_master("sae-a", "sae-b", 1)->keys.at(0).id, id);
  }
  auto s = open_store();
  ASSERT_TRUE(s);
  EXPECT_EQ((*s->info(id))->state, key_state::master_delivered);
  EXPECT_EQ((*s->info(id))->route, (std::vector<std::string>{"node-a", "node-b"}));
  auto m = s->deliver_to_master("sae-a", "sae-b", 1);
  ASSERT_EQ(m->keys.size(), 1u);
  EXPECT_NE(m->keys[0].id, id);  // never served to the master twice
  const std::array ids{id};
  auto d = s->deliver_to_slave("sae-b", "sae-a", ids);
  ASSERT_EQ(d->refused, refusal::none);
  EXPECT_TRUE(same(d->keys.at(0).material.bytes(), mat));
  const auto audit = *s->read_audit();
  ASSERT_FALSE(audit.empty());
  for (std::size_t i = 1; i < audit.size(); ++i) EXPECT_LT(audit[i - 1].index, audit[i].index);
}

// --- key-encryption key ------------------------------------------------------------------------

TEST_F(store_fixture, wrong_kek_is_a_clear_startup_error) {
  { ASSERT_TRUE(open_store()); }
  auto o = options();
  o.kek_file = dir.path() / "other-kek";
  ASSERT_TRUE(create_kek_file(o.kek_file).has_value());
  auto r = key_store::open(o);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, errc::config_error);
  EXPECT_NE(r.error().message.find("is not the one the store"), std::string::npos) << r.error().message;
  EXPECT_TRUE(open_store());  // the right KEK still opens it
}

TEST_F(store_fixture, kek_file_readable_by_others_is_refused) {
  ASSERT_EQ(::chmod(kek.c_str(), 0644), 0);
  auto r = key_store::open(options());
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, errc::config_error);
  EXPECT_NE(r.error().message.find("mode 0644"), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find("chmod 600"), std::string::npos) << r.error().message;
  EXPECT_FALSE(std::filesystem::exists(dir.path() / "db"));  // refused before anything was created
  ASSERT_EQ(::chmod(kek.c_str(), 0640), 0);
  EXPECT_FALSE(key_store::open(options()).has_value());
  ASSERT_EQ(::chmod(kek.c_str(), 0400), 0);
  EXPECT_TRUE(open_store());
}

TEST_F(store_fixture, kek_file_format_and_absence) {
  auto o = options();
  o.kek_file = dir.path() / "short";
  {
    std::ofstream(o.kek_file) << "abcd\n";
  }
  ASSERT_EQ(::chmod(o.kek_file.c_str(), 0600), 0);
  auto r = key_store::open(o);
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().message.find("64 hex digits"), std::string::npos) << r.error().message;
  o.kek_file = dir.path() / "missing";
  EXPECT_EQ(key_store::open(o).error().code, errc::config_error);
  EXPECT_FALSE(create_kek_file(kek).has_value());  // never overwrites a key
}

namespace {
// A file system whose KEK file reports any mode: the permission policy without chmod.
class fake_fs final : public file_system {
public:
  explicit fake_fs(unsigned mode) : mode_(mode) {}
  expected<private_file> read_file_with_mode(const std::filesystem::path&) override {
    secure_buffer k(32);
    return private_file{std::move(k), mode_};
  }
  expected<void> create_private_directory(const std::filesystem::path& d) override {
    return posix_file_system{}.create_private_directory(d);
  }

private:
  unsigned mode_;
};
}  // namespace

TEST_F(store_fixture, kek_policy_through_the_file_system_interface) {
  auto o = options();
  o.fs = std::make_shared<fake_fs>(0604);
  EXPECT_NE(key_store::open(o).error().message.find("mode 0604"), std::string::npos);
  o.fs = std::make_shared<fake_fs>(0600);
  EXPECT_TRUE(key_store::open(o).has_value());
}

// --- concurrency -------------------------------------------------------------------------------

// Several threads take random amounts while another appends: every byte of the stream is handed
// out exactly once, and the bytes at each reported position are the bytes appended there.
TEST_F(store_fixture, concurrent_takers_never_overlap) {
  const std::uint64_t seed = test_support::base_seed() ^ 0x5eed;
  SCOPED_TRACE(test_support::seed_note(seed));
  auto s = open_store();
  ASSERT_TRUE(s);
  constexpr std::size_t block = 61, blocks = 400, takers = 4;
  constexpr std::size_t total = block * blocks;
  const auto stream = block_bytes(seed, 0, total);
  for (std::size_t i = 0; i < blocks / 2; ++i)
    ASSERT_TRUE(s->append_block(link1, i + 1, std::span(stream).subspan(i * block, block)).has_value());
  std::atomic<bool> appending{true};
  std::thread appender([&] {
    for (std::size_t i = blocks / 2; i < blocks; ++i)
      EXPECT_TRUE(s->append_block(link1, i + 1, std::span(stream).subspan(i * block, block)).has_value());
    appending = false;
  });
  std::mutex m;
  std::vector<int> owner(total, -1);
  std::size_t overlaps = 0, mismatches = 0;
  std::vector<std::thread> threads;
  for (std::size_t t = 0; t < takers; ++t) {
    threads.emplace_back([&, t] {
      seeded_drbg rng(seed + t, "storage-takers");
      for (;;) {
        const std::uint64_t n = 1 + rng.next_u64() % 90;
        auto r = s->take(link1, 8 * n);
        if (!r) {
          if (r.error().code != errc::insufficient_data) ADD_FAILURE() << to_string(r.error());
          if (!appending && s->status(link1)->available_bits == 0) return;
          std::this_thread::yield();
          continue;
        }
        const std::size_t g0 = (r->start.seq - 1) * block + r->start.offset;
        std::lock_guard lock(m);
        for (std::size_t i = 0; i < n; ++i) {
          if (g0 + i >= total) {
            ++mismatches;
            continue;
          }
          if (owner[g0 + i] != -1) ++overlaps;
          owner[g0 + i] = static_cast<int>(t);
          if (r->bytes.data()[i] != stream[g0 + i]) ++mismatches;
        }
        EXPECT_EQ((r->end.seq - 1) * block + r->end.offset, g0 + n);
      }
    });
  }
  appender.join();
  for (auto& t : threads) t.join();
  EXPECT_EQ(overlaps, 0u);
  EXPECT_EQ(mismatches, 0u);
  EXPECT_EQ(std::count(owner.begin(), owner.end(), -1), 0) << "bytes never handed out";
  std::set<int> who(owner.begin(), owner.end());
  EXPECT_GT(who.size(), 1u) << "the takers did not run concurrently";
}

TEST_F(store_fixture, concurrent_master_deliveries_never_share_a_key) {
  auto s = open_store();
  ASSERT_TRUE(s);
  seeded_drbg rng(test_support::base_seed(), "storage-concurrent-e2e");
  for (int i = 0; i < 120; ++i) ASSERT_TRUE(s->put_key(spec(), random_key(rng)).has_value());
  std::mutex m;
  std::set<key_id> seen;
  std::size_t dup = 0;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 15; ++i) {
        auto d = s->deliver_to_master("sae-a", "sae-b", 2);
        ASSERT_TRUE(d.has_value());
        ASSERT_EQ(d->refused, refusal::none);
        std::lock_guard lock(m);
        for (const auto& k : d->keys) dup += seen.insert(k.id).second ? 0 : 1;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(dup, 0u);
  EXPECT_EQ(seen.size(), 120u);
}

// --- what is left on disk ----------------------------------------------------------------------

// After a run — keys stored, delivered, erased, pool bytes taken — no delivered or stored key
// (32 random bytes each) appears in any file of the database directory: WAL, SST, MANIFEST, LOG.
TEST_F(store_fixture, database_files_hold_no_plaintext_key_bytes) {
  seeded_drbg rng(test_support::base_seed(), "storage-scan");
  std::vector<std::string> needles;
  const auto note = [&](std::span<const std::byte> b) {
    for (std::size_t i = 0; i + 32 <= b.size(); i += 32) needles.emplace_back(reinterpret_cast<const char*>(b.data() + i), 32);
  };
  {
    auto s = open_store();
    ASSERT_TRUE(s);
    std::vector<key_id> ids;
    for (int i = 0; i < 60; ++i) {
      const auto k = random_key(rng);
      note(k);
      ids.push_back(s->put_key(spec(), k)->id);
    }
    auto m = s->deliver_to_master("sae-a", "sae-b", 40);
    ASSERT_EQ(m->refused, refusal::none);
    for (int i = 0; i < 30; ++i) {
      const std::array one{ids[static_cast<std::size_t>(i)]};
      ASSERT_EQ(s->deliver_to_slave("sae-b", "sae-a", one)->refused, refusal::none);
    }
    for (std::uint64_t seq = 1; seq <= 20; ++seq) {
      const auto b = random_key(rng, 128);
      note(b);
      ASSERT_TRUE(s->append_block(link1, seq, b).has_value());
    }
    ASSERT_TRUE(s->take(link1, 8 * 128 * 15).has_value());
  }
  // The sanity check of the scanner: metadata is stored in the clear, so the SAE ID is found.
  const auto sanity = test_support::scan_for(dir.path() / "db", {std::string("\0\6node-a", 8)});
  EXPECT_FALSE(sanity.empty()) << "the scan does not see the database contents";
  const auto found = test_support::scan_for(dir.path() / "db", needles);
  EXPECT_EQ(needles.size(), 60u + 20u * 4u);
  for (const auto& [i, path] : found) ADD_FAILURE() << "plaintext key bytes " << i << " found in " << path;
  // Also after a compaction and a reopen (WAL recovery, flushed SST files).
  {
    auto s = open_store();
    ASSERT_TRUE(s);
    ASSERT_TRUE(s->compact().has_value());
  }
  EXPECT_TRUE(test_support::scan_for(dir.path() / "db", needles).empty());
}

namespace cvqkd::storage {
namespace {

TEST_F(store_fixture, append_blocks_is_atomic_across_pools_and_idempotent) {
  auto s = open_store();
  const pool_id a{"link-x", direction::forward}, b{"link-x", direction::reverse}, c{"link-x/auth", direction::forward};
  const auto ka = block_bytes(1, 0, 64), kb = block_bytes(2, 0, 64), kc = block_bytes(3, 0, 16);
  std::vector<key_store::block_append> blocks{{a, 1, ka}, {b, 1, kb}, {c, 1, kc}};
  auto r = s->append_blocks(blocks);
  ASSERT_TRUE(r.has_value()) << to_string(r.error());
  EXPECT_EQ((*r)[0], append_status::appended);
  EXPECT_EQ((*r)[2], append_status::appended);
  r = s->append_blocks(blocks);  // again: nothing changes
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ((*r)[1], append_status::duplicate);
  EXPECT_EQ(s->status(b)->available_bits, 512u);
  // A conflicting block anywhere in the batch refuses the whole batch.
  const auto other = block_bytes(9, 0, 64);
  std::vector<key_store::block_append> bad{{a, 2, ka}, {b, 1, other}};
  EXPECT_FALSE(s->append_blocks(bad).has_value());
  EXPECT_EQ(s->status(a)->next_seq.value_or(0), 2u) << "the good block of a refused batch must not land";
  std::vector<key_store::block_append> twice{{a, 3, ka}, {a, 4, ka}};
  EXPECT_EQ(s->append_blocks(twice).error().code, errc::invalid_argument);
}

TEST_F(store_fixture, take_at_burns_what_lies_before_the_position_and_peek_consumes_nothing) {
  auto s = open_store();
  const auto b1 = block_bytes(4, 0, 32), b2 = block_bytes(5, 0, 32);
  ASSERT_TRUE(s->append_block(link1, 1, b1).has_value());
  ASSERT_TRUE(s->append_block(link1, 2, b2).has_value());
  auto p = s->peek(link1, 64);
  ASSERT_TRUE(p.has_value());
  EXPECT_TRUE(std::equal(b1.begin(), b1.begin() + 8, p->bytes.bytes().begin()));
  EXPECT_EQ(s->status(link1)->available_bits, 512u);
  // Take 8 bytes at block 2 offset 4: block 1 and 4 bytes of block 2 are burned.
  auto t = s->take_at(link1, pool_position{2, 4}, 64);
  ASSERT_TRUE(t.has_value()) << to_string(t.error());
  EXPECT_TRUE(std::equal(b2.begin() + 4, b2.begin() + 12, t->bytes.bytes().begin()));
  EXPECT_EQ(t->start, (pool_position{2, 4}));
  EXPECT_EQ(s->status(link1)->available_bits, 8u * 20);
  // Behind the head: refused, nothing changes.
  auto behind = s->take_at(link1, pool_position{2, 0}, 8);
  ASSERT_FALSE(behind.has_value());
  EXPECT_EQ(behind.error().code, errc::invalid_argument);
  // More than follows the position: insufficient_data, nothing changes.
  EXPECT_EQ(s->take_at(link1, pool_position{2, 12}, 8 * 21).error().code, errc::insufficient_data);
  EXPECT_EQ(s->status(link1)->available_bits, 8u * 20);
  // The state survives a reopen.
  s.reset();
  s = open_store();
  EXPECT_EQ(s->status(link1)->available_bits, 8u * 20);
  EXPECT_EQ(s->status(link1)->head, (pool_position{2, 12}));
}

}  // namespace
}  // namespace cvqkd::storage
