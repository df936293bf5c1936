#pragma once
// The operations the ETSI GS QKD 014 API needs from a node, behind an abstract interface so that
// the HTTPS layer (node/api/etsi_api.hpp) does not depend on the node runtime (actors, relay).
// All calls are synchronous and may block (disk, relaying): the server runs them on its handler
// thread pool, never on its I/O threads. Implementations must be thread-safe.
//
// Refusals that the API reports to a client are values (api_refusal: 400, 401 or 503 with the
// ETSI message), not errors; an implementation maps its infrastructure failures to 503.

#include <cstddef>
#include <cstdint>
#include <expected>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/secure_buffer.hpp"

namespace cvqkd::api {

/// HTTP status codes the ETSI API answers with (V1.1.1 clause 5: 200, 400, 401, 503).
enum class http_status : unsigned {
  ok = 200,
  bad_request = 400,
  unauthorized = 401,  // sent without a body
  service_unavailable = 503,
};

/// A refusal: the status code, the ETSI `message` and the optional `details` entries
/// ({name: value} objects, rendered as strings).
struct api_refusal {
  http_status status = http_status::bad_request;
  std::string message;
  std::vector<std::pair<std::string, std::string>> details;
};

template <class T>
using api_result = std::expected<T, api_refusal>;

/// Shorthands: `return refuse_400("size shall be a multiple of 8");`.
api_refusal refuse(http_status status, std::string message, std::vector<std::pair<std::string, std::string>> details = {});
inline std::unexpected<api_refusal> refuse_400(std::string message, std::vector<std::pair<std::string, std::string>> details = {}) {
  return std::unexpected(refuse(http_status::bad_request, std::move(message), std::move(details)));
}
inline std::unexpected<api_refusal> refuse_401() { return std::unexpected(refuse(http_status::unauthorized, {})); }
inline std::unexpected<api_refusal> refuse_503(std::string message, std::vector<std::pair<std::string, std::string>> details = {}) {
  return std::unexpected(refuse(http_status::service_unavailable, std::move(message), std::move(details)));
}

/// The spec's fixed messages (ETSI GS QKD 014 V1.1.1, clause 6), byte for byte.
inline constexpr std::string_view msg_size_multiple_of_8 = "size shall be a multiple of 8";
inline constexpr std::string_view msg_extension_unsupported = "not all extension_mandatory parameters are supported";
inline constexpr std::string_view msg_extension_unmet = "not all extension_mandatory request options could be met";
inline constexpr std::string_view msg_keys_not_found = "one or more keys specified are not found on KME";

/// The vendor extension naming how the key reaches the slave's KME (`cvqkd_route_type`).
enum class route_type : std::uint8_t {
  direct,     // only over a direct QKD link between the two KMEs
  relay,      // hop-by-hop through trusted nodes (one path)
  multipath,  // split over node-disjoint paths (XOR of the shares)
};
std::string_view to_string(route_type r) noexcept;
/// "direct" | "relay" | "multipath"; empty otherwise.
std::optional<route_type> parse_route_type(std::string_view text) noexcept;

/// What the status call reports for (master, slave): ETSI "Status" (sizes in bits).
struct status_info {
  std::string source_kme_id;  // this KME
  std::string target_kme_id;  // the slave SAE's KME
  std::string master_sae_id;  // the caller
  std::string slave_sae_id;
  std::uint64_t key_size = 0;              // default key size, bits
  std::uint64_t stored_key_count = 0;      // keys deliverable now without provisioning (<= max_key_count)
  std::uint64_t max_key_count = 0;
  std::uint64_t max_key_per_request = 0;
  std::uint64_t max_key_size = 0;          // bits
  std::uint64_t min_key_size = 0;          // bits
  std::uint64_t max_sae_id_count = 0;      // additional slave SAEs per request; 0 = no multicast
};

/// A parsed enc_keys request (defaults already applied by the API layer).
struct key_request {
  std::string master_sae;                       // the caller (from its certificate)
  std::string slave_sae;                        // from the path
  std::size_t number = 1;
  std::size_t size_bits = 0;                    // > 0
  std::vector<std::string> additional_slaves;   // multicast (ETSI Annex B)
  std::optional<route_type> route;              // cvqkd_route_type, if given
  bool route_mandatory = false;                 // given in extension_mandatory
};

/// One key: UUID string and material (size_bits / 8 bytes).
struct delivered_key {
  std::string key_id;
  secure_buffer material;
};

struct key_container {
  std::vector<delivered_key> keys;
};

/// The limits a key service enforces (and reports in status).
struct key_limits {
  std::uint64_t default_key_size = 256;
  std::uint64_t min_key_size = 64;
  std::uint64_t max_key_size = 1024;
  std::uint64_t max_key_per_request = 128;
  std::uint64_t max_key_count = 100'000;
  std::uint64_t max_sae_id_count = 4;
};

/// The request checks every implementation applies, in this order: number >= 1, number <=
/// max_key_per_request, size a multiple of 8, size within [min, max], at most max_sae_id_count
/// additional slaves, no repeated or self-naming slave. Returns the 400 refusal of the first
/// failed check (messages in docs/etsi-014-decisions.md).
std::optional<api_refusal> check_key_request(const key_limits& limits, const key_request& r);

class key_service {
public:
  virtual ~key_service() = default;

  /// Get status, called by `master_sae` naming `slave_sae`. 400 for an unknown slave SAE,
  /// 401 when the caller is not an SAE of this KME.
  virtual api_result<status_info> status(std::string_view master_sae, std::string_view slave_sae) = 0;

  /// Get key (enc_keys): `r.number` fresh keys of `r.size_bits` bits for the master and every
  /// named slave. Returns IDs only once every slave's KME holds the keys. 400 for invalid
  /// parameters, unknown SAEs or an unmet mandatory extension; 401 for a caller that is not an
  /// SAE of this KME; 503 when key material cannot be provided (the message says why).
  virtual api_result<key_container> enc_keys(const key_request& r) = 0;

  /// Get key with key IDs (dec_keys) by `caller_sae` for keys that `master_sae` obtained.
  /// All or none: 400 msg_keys_not_found when an ID is unknown, already fetched or expired;
  /// 401 when the caller is not a slave named for the keys or not an SAE of this KME.
  virtual api_result<key_container> dec_keys(std::string_view caller_sae, std::string_view master_sae,
                                             std::span<const std::string> key_ids) = 0;
};

}  // namespace cvqkd::api
