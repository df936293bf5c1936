#pragma once
// key_service over this node's storage::key_store. Keys the store already holds for a pair are
// delivered from it (deliver_to_master / deliver_to_slave); missing keys are obtained from a
// key_provider (the relay, plugged in by the node runtime) that makes them ready in the store
// only once every slave's KME holds them, so that no tentative key ID ever reaches a master.

#include <cstddef>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "node/api/key_service.hpp"
#include "storage/key_id.hpp"
#include "storage/key_store.hpp"

namespace cvqkd::api {

/// What a provider is asked for: `number` keys of `size_bits` bits for `master_sae` and every
/// SAE of `slaves` ([0] the slave named in the path, then the additional slaves).
struct provide_request {
  std::string master_sae;
  std::vector<std::string> slaves;
  std::size_t number = 0;
  std::size_t size_bits = 0;
  std::optional<route_type> route;
  bool route_mandatory = false;
};

/// Obtains end-to-end keys for a pair (in the node: relaying them over link keys).
class key_provider {
public:
  virtual ~key_provider() = default;
  /// Makes `r.number` keys ready in this node's store for (master, slaves[0]) with serve_master
  /// set, each already stored at every slave's KME (no tentative keys), and returns their IDs.
  /// A key that cannot be placed everywhere must not be left ready. Errors: errc::unsupported
  /// when a mandatory route type cannot be used (answered 400 "not all extension_mandatory
  /// request options could be met"); any other error is answered 503 with its message.
  virtual expected<std::vector<storage::key_id>> provide(const provide_request& r) = 0;
};

struct store_service_options {
  std::string kme_id;  // this KME (ETSI source_KME_ID); the CN of its certificate
  /// Every SAE of the network -> the KME that serves it. SAEs mapped to kme_id may call this KME.
  std::map<std::string, std::string, std::less<>> sae_kme;
  key_limits limits;
};

class store_key_service final : public key_service {
public:
  /// Errors: config_error when kme_id is empty, no SAE is mapped to kme_id, or the limits are
  /// inconsistent (sizes not multiples of 8, min > default > max, max_key_size > 65536 — the
  /// store's limit —, max_key_per_request == 0).
  static expected<std::unique_ptr<store_key_service>> create(storage::key_store& store, key_provider& provider,
                                                              store_service_options options);
  ~store_key_service() override;

  api_result<status_info> status(std::string_view master_sae, std::string_view slave_sae) override;
  api_result<key_container> enc_keys(const key_request& r) override;
  api_result<key_container> dec_keys(std::string_view caller_sae, std::string_view master_sae,
                                     std::span<const std::string> key_ids) override;

private:
  // enc_keys requests of one (master, slave) pair are served one batch at a time by whichever
  // request thread finds no batch running (the "leader"): plain requests of a batch that stock
  // can satisfy share one deliver_to_master call, i.e. one synced write (group commit).
  struct waiter;
  struct pair_queue;

  store_key_service(storage::key_store& store, key_provider& provider, store_service_options options);
  bool is_local(std::string_view sae) const;
  const std::string* kme_of(std::string_view sae) const;
  bool is_plain(const key_request& r) const;
  pair_queue& queue_of(const std::string& master, const std::string& slave);
  std::vector<std::optional<api_result<key_container>>> serve_batch(const std::vector<waiter*>& batch);
  api_result<key_container> serve_one(const key_request& r);

  storage::key_store& store_;
  key_provider& provider_;
  store_service_options opt_;
  std::mutex pairs_mutex_;
  std::map<std::string, std::unique_ptr<pair_queue>> pairs_;
};

}  // namespace cvqkd::api
