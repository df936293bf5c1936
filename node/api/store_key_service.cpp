#include "node/api/store_key_service.hpp"

#include <algorithm>
#include <set>

namespace cvqkd::api {

namespace {

api_refusal unknown_slave(std::string_view field, std::string_view sae) {
  return refuse(http_status::bad_request, "unknown SAE: " + std::string(sae) + " is not served by any KME of this network",
                {{std::string(field), std::string(sae)}});
}

std::unexpected<api_refusal> infrastructure(const error& e) {
  return refuse_503("the KME cannot serve keys now: " + to_string(e) + "; retry later");
}

}  // namespace

expected<std::unique_ptr<store_key_service>> store_key_service::create(storage::key_store& store, key_provider& provider,
                                                                       store_service_options o) {
  if (o.kme_id.empty()) return fail(errc::config_error, "store_key_service: kme_id is empty; set this node's KME ID");
  if (std::none_of(o.sae_kme.begin(), o.sae_kme.end(), [&](const auto& p) { return p.second == o.kme_id; }))
    return fail(errc::config_error, "store_key_service: no SAE is mapped to KME " + o.kme_id + "; add this node's SAEs to the SAE map");
  const auto& l = o.limits;
  if (l.min_key_size == 0 || l.min_key_size % 8 || l.max_key_size % 8 || l.default_key_size % 8 || l.min_key_size > l.default_key_size ||
      l.default_key_size > l.max_key_size || l.max_key_size > 8192 * 8)
    return fail(errc::config_error, "store_key_service: key sizes must be multiples of 8 with 8 <= min <= default <= max <= 65536 bits");
  if (l.max_key_per_request == 0 || l.max_key_count == 0)
    return fail(errc::config_error, "store_key_service: max_key_per_request and max_key_count must be at least 1");
  return std::unique_ptr<store_key_service>(new store_key_service(store, provider, std::move(o)));
}

store_key_service::store_key_service(storage::key_store& store, key_provider& provider, store_service_options options)
    : store_(store), provider_(provider), opt_(std::move(options)) {}

const std::string* store_key_service::kme_of(std::string_view sae) const {
  const auto it = opt_.sae_kme.find(sae);
  return it == opt_.sae_kme.end() ? nullptr : &it->second;
}

bool store_key_service::is_local(std::string_view sae) const {
  const auto* k = kme_of(sae);
  return k != nullptr && *k == opt_.kme_id;
}

struct store_key_service::waiter {
  const key_request* request;
  std::optional<api_result<key_container>> result;
};

struct store_key_service::pair_queue {
  std::mutex mutex;
  std::condition_variable done;
  std::vector<waiter*> pending;
  bool leader_active = false;
};

store_key_service::~store_key_service() = default;

store_key_service::pair_queue& store_key_service::queue_of(const std::string& master, const std::string& slave) {
  std::lock_guard lock(pairs_mutex_);
  auto& q = pairs_[master + '\0' + slave];
  if (!q) q = std::make_unique<pair_queue>();
  return *q;
}

bool store_key_service::is_plain(const key_request& r) const {
  return r.additional_slaves.empty() && r.size_bits == opt_.limits.default_key_size && !(r.route && r.route_mandatory);
}

api_result<status_info> store_key_service::status(std::string_view master_sae, std::string_view slave_sae) {
  if (!is_local(master_sae)) return refuse_401();
  const auto* target = kme_of(slave_sae);
  if (target == nullptr) return std::unexpected(unknown_slave("slave_SAE_ID", slave_sae));
  const auto st = store_.status(master_sae, slave_sae);
  const auto& l = opt_.limits;
  status_info s;
  s.source_kme_id = opt_.kme_id;
  s.target_kme_id = *target;
  s.master_sae_id = master_sae;
  s.slave_sae_id = slave_sae;
  s.key_size = l.default_key_size;
  s.stored_key_count = std::min(st.ready, l.max_key_count);
  s.max_key_count = l.max_key_count;
  s.max_key_per_request = l.max_key_per_request;
  s.max_key_size = l.max_key_size;
  s.min_key_size = l.min_key_size;
  s.max_sae_id_count = l.max_sae_id_count;
  return s;
}

api_result<key_container> store_key_service::enc_keys(const key_request& r) {
  if (!is_local(r.master_sae)) return refuse_401();
  if (kme_of(r.slave_sae) == nullptr) return std::unexpected(unknown_slave("slave_SAE_ID", r.slave_sae));
  for (const auto& s : r.additional_slaves)
    if (kme_of(s) == nullptr) return std::unexpected(unknown_slave("additional_slave_SAE_IDs", s));
  if (auto bad = check_key_request(opt_.limits, r)) return std::unexpected(std::move(*bad));

  // Combining queue: join the pair's queue and wait until either a leader has served this request
  // or no batch is running; then become the leader for everything queued so far (this request
  // included). The leader hands over after one batch, so nobody serves others for long.
  auto& q = queue_of(r.master_sae, r.slave_sae);
  waiter self{&r, std::nullopt};
  std::unique_lock lock(q.mutex);
  q.pending.push_back(&self);
  while (true) {
    q.done.wait(lock, [&] { return self.result.has_value() || !q.leader_active; });
    if (self.result) return std::move(*self.result);
    q.leader_active = true;
    std::vector<waiter*> batch;
    batch.swap(q.pending);  // holds `self`: no batch was running, so nobody took it
    lock.unlock();
    std::vector<std::optional<api_result<key_container>>> results;
    try {
      results = serve_batch(batch);
    } catch (const std::exception& e) {  // e.g. bad_alloc: never leave the queue without a leader
      results.clear();
      results.resize(batch.size());
      for (auto& x : results) x = refuse_503(std::string("internal error: ") + e.what() + "; retry later");
    }
    lock.lock();
    for (std::size_t i = 0; i < batch.size(); ++i) batch[i]->result = std::move(results[i]);
    q.leader_active = false;
    q.done.notify_all();
  }
}

std::vector<std::optional<api_result<key_container>>> store_key_service::serve_batch(const std::vector<waiter*>& batch) {
  std::vector<std::optional<api_result<key_container>>> out(batch.size());
  // Plain requests (unicast, default size, no mandatory route) may share one delivery from stock.
  std::size_t plain_total = 0, plain_count = 0;
  for (const auto* w : batch)
    if (is_plain(*w->request)) {
      plain_total += w->request->number;
      ++plain_count;
    }
  const auto& first = *batch.front()->request;
  if (plain_count > 1 && store_.status(first.master_sae, first.slave_sae).ready >= plain_total) {
    auto d = store_.deliver_to_master(first.master_sae, first.slave_sae, plain_total);
    const bool ok = d && d->refused == storage::refusal::none && d->keys.size() == plain_total;
    std::size_t next = 0;
    for (std::size_t i = 0; i < batch.size(); ++i) {
      const auto& r = *batch[i]->request;
      if (!is_plain(r)) continue;
      if (!ok) {
        out[i] = !d ? infrastructure(d.error()) : refuse_503("not enough key material: " + d->reason);
        continue;
      }
      key_container c;
      for (std::size_t k = 0; k < r.number; ++k, ++next) {
        auto& key = d->keys[next];
        if (key.material.size() * 8 != r.size_bits) {
          out[i] = refuse_503("the KME delivered a key that does not match the request (stock of another size); "
                              "report this to the operator");
          break;
        }
        c.keys.push_back({key.id.to_string(), std::move(key.material)});
      }
      if (!out[i]) out[i] = std::move(c);
    }
  }
  for (std::size_t i = 0; i < batch.size(); ++i)
    if (!out[i]) out[i] = serve_one(*batch[i]->request);
  return out;
}

api_result<key_container> store_key_service::serve_one(const key_request& r) {
  // The store hands out the oldest ready keys of (master, slave) whatever their size, slave list
  // or route. Keys provisioned ahead of time ("stock") are unicast keys of the default size, so
  // only such requests may take them; any other request is served only by the keys provisioned
  // for it, which the pair's combining queue keeps together from provide() to deliver_to_master().
  const bool plain = is_plain(r);
  const std::uint64_t ready = store_.status(r.master_sae, r.slave_sae).ready;
  std::vector<storage::key_id> provided;
  if (!plain && ready > 0)
    return refuse_503(std::to_string(ready) + " pre-provisioned keys of " + std::to_string(opt_.limits.default_key_size) +
                          " bits wait for this pair and would be delivered first: request the default size without "
                          "additional slaves or a mandatory route, or retry once they are used",
                      {{"stored_key_count", std::to_string(ready)}});
  if (!plain || ready < r.number) {
    provide_request p{r.master_sae, {r.slave_sae}, plain ? r.number - ready : r.number, r.size_bits, r.route,
                      r.route_mandatory};
    p.slaves.insert(p.slaves.end(), r.additional_slaves.begin(), r.additional_slaves.end());
    auto got = provider_.provide(p);
    if (!got) {
      if (got.error().code == errc::unsupported && r.route_mandatory)
        return refuse_400(std::string(msg_extension_unmet), {{"cvqkd_route_type", got.error().message}});
      return refuse_503("not enough key material: " + got.error().message, {{"slave_SAE_ID", r.slave_sae}});
    }
    provided = std::move(*got);
  }
  auto erase_provided = [&] {
    for (const auto& id : provided) (void)store_.erase_key(id);
  };
  auto d = store_.deliver_to_master(r.master_sae, r.slave_sae, r.number);
  if (!d) {
    erase_provided();
    return infrastructure(d.error());
  }
  if (d->refused != storage::refusal::none) {
    erase_provided();
    return refuse_503("not enough key material: " + d->reason, {{"slave_SAE_ID", r.slave_sae}});
  }
  key_container out;
  out.keys.reserve(d->keys.size());
  std::set<storage::key_id> expected_ids(provided.begin(), provided.end());
  for (auto& k : d->keys) {
    // Defence in depth against a provider that broke its contract (or stock of another kind).
    if (k.material.size() * 8 != r.size_bits || (!plain && !expected_ids.contains(k.id)))
      return refuse_503("the KME delivered a key that does not match the request (provider contract violated); "
                        "report this to the operator");
    out.keys.push_back({k.id.to_string(), std::move(k.material)});
  }
  return out;
}

api_result<key_container> store_key_service::dec_keys(std::string_view caller_sae, std::string_view master_sae,
                                                      std::span<const std::string> key_ids) {
  if (!is_local(caller_sae)) return refuse_401();
  if (key_ids.empty()) return refuse_400("key_IDs shall name at least one key");
  if (key_ids.size() > opt_.limits.max_key_per_request)
    return refuse_400("key_IDs shall name at most max_key_per_request keys",
                      {{"max_key_per_request", std::to_string(opt_.limits.max_key_per_request)}});
  std::vector<storage::key_id> ids;
  ids.reserve(key_ids.size());
  for (const auto& s : key_ids) {
    auto id = storage::key_id::parse(s);
    if (!id) return refuse_400(std::string(msg_keys_not_found), {{"key_ID", s}});
    ids.push_back(*id);
  }
  auto d = store_.deliver_to_slave(caller_sae, master_sae, ids);
  if (!d) return infrastructure(d.error());
  switch (d->refused) {
    case storage::refusal::none: break;
    case storage::refusal::not_found: return refuse_400(std::string(msg_keys_not_found));
    case storage::refusal::unauthorized: return refuse_401();
    case storage::refusal::insufficient_keys: return refuse_503("not enough key material: " + d->reason);
  }
  key_container out;
  out.keys.reserve(d->keys.size());
  for (auto& k : d->keys) out.keys.push_back({k.id.to_string(), std::move(k.material)});
  return out;
}

}  // namespace cvqkd::api
