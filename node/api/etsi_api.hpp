#pragma once
// ETSI GS QKD 014 V1.1.1 key delivery routes on the node's HTTPS router, plus the request parsing
// and response rendering they use (pure functions, tested without TLS; fuzzable).
//
//   GET  /api/v1/keys/{slave_SAE_ID}/status
//   GET  /api/v1/keys/{slave_SAE_ID}/enc_keys?number=&size=
//   POST /api/v1/keys/{slave_SAE_ID}/enc_keys      Key request (empty body: all defaults)
//   GET  /api/v1/keys/{master_SAE_ID}/dec_keys?key_ID=
//   POST /api/v1/keys/{master_SAE_ID}/dec_keys     Key IDs
//
// The caller's SAE ID is its certificate CN (optionally mapped, etsi_api_options), its role must
// be cvqkd-sae. Decisions on what the spec leaves open: docs/etsi-014-decisions.md; response
// schemas: docs/etsi-qkd-014.openapi.json.

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "node/api/https_server.hpp"
#include "node/api/key_service.hpp"

namespace cvqkd::api {

/// enc_keys parameters as the client gave them; size_bits 0 = not given (the service's default).
struct enc_keys_params {
  std::size_t number = 1;
  std::size_t size_bits = 0;
  std::vector<std::string> additional_slaves;
  std::optional<route_type> route;
  bool route_mandatory = false;
};

using query_list = std::vector<std::pair<std::string, std::string>>;

/// POST enc_keys body (ETSI "Key request"). Empty or whitespace-only: defaults. 400 for malformed
/// JSON, a non-object, an unknown field, a wrong type, a non-positive number or size; 400
/// msg_extension_unsupported (details: extension_mandatory_unsupported) for an unknown mandatory
/// extension; 400 msg_extension_unmet for a bad cvqkd_route_type value in extension_mandatory.
/// Unknown optional extensions are ignored.
api_result<enc_keys_params> parse_enc_keys_body(std::string_view body);
/// GET enc_keys query: `number` and `size`, each at most once, decimal; nothing else.
api_result<enc_keys_params> parse_enc_keys_query(const query_list& query);
/// POST dec_keys body (ETSI "Key IDs"): 1 or more {"key_ID": uuid}. A key ID that is not a
/// UUID is answered with msg_keys_not_found (such a key cannot exist) and a detail.
api_result<std::vector<std::string>> parse_dec_keys_body(std::string_view body);
/// GET dec_keys query: exactly one `key_ID`.
api_result<std::vector<std::string>> parse_dec_keys_query(const query_list& query);

/// ETSI "Status" JSON.
std::string render_status(const status_info& s);
/// ETSI "Key container" JSON with base64 keys, built in one pre-sized buffer (no reallocation
/// leaves key bytes behind) and marked sensitive; the materials are cleansed as they are encoded.
http_response render_keys(key_container& keys);
/// 401: no body; otherwise the ETSI "Error" JSON {"message", "details"?}.
http_response render_refusal(const api_refusal& r);

struct etsi_api_options {
  /// Certificate CN -> SAE ID. Empty: the SAE ID is the CN. Otherwise a CN not in the map is 401.
  std::map<std::string, std::string, std::less<>> sae_by_cn;
};

/// Adds the five routes to `routes`, each requiring role cvqkd-sae and calling `service` (which
/// must outlive the server; it is shared). Errors: invalid_argument if a route already exists.
expected<void> add_etsi_routes(router& routes, std::shared_ptr<key_service> service, etsi_api_options options = {});

}  // namespace cvqkd::api
