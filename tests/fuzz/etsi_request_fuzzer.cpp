// libFuzzer target for the ETSI GS QKD 014 request parsing (node/api/etsi_api.hpp) and the HTTPS
// router's path matching (node/api/https_server.hpp). Built and run by scripts/fuzz.
//
// Input layout: byte 0 selects the request, the bytes up to the first '\n' are the query string
// (for the raw-target selector: the whole request target, path?query), the rest is the body.
//   selector bits 0-2: 0 GET status, 1 GET enc_keys, 2 POST enc_keys, 3 GET dec_keys,
//                      4 POST dec_keys, 5-7 raw target (any path)
//            bit 3:    the other method (GET <-> POST: 405, or the other form of the call)
//            bits 4-5: the SAE ID path segment: "sae2", "unknown", "sae%31" (decodes to the caller,
//                      sae1), "s%2Fx%" (decodes to "s/x%")
//            bit 6:    the caller has the operator role (401)
//            bit 7:    the caller has no identity (401)
//
// Every input runs the four parse functions on the query and the body directly, then the request
// through a router carrying the real ETSI routes and a fake key service. Invariants (a failure
// aborts, so libFuzzer keeps the input):
//   - parsing never throws; a refusal is a 400 with a message, and render_refusal turns it into a
//     JSON Error whose message reads back equal (for valid UTF-8);
//   - a successful parse yields values inside the documented limits (number >= 1, size > 0 when
//     given, non-empty slave SAE IDs, a mandatory route is set, 1 or more UUID key IDs) and
//     round-trips: decimal query values print back, a Key request / Key IDs body rendered from
//     the parsed values parses to the same values;
//   - dispatch never throws and answers 200/400/401/404/405 (never the router's 503 for a handler
//     that threw; the fake service never refuses with 503); bodies are JSON (none for 401);
//     the service receives exactly what the parse functions produce; key containers decode back
//     to the bytes and IDs the service delivered.

#include <openssl/evp.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "node/api/etsi_api.hpp"

namespace api = cvqkd::api;
using nlohmann::json;

#define FUZZ_CHECK(cond)                                                                               \
  do {                                                                                                 \
    if (!(cond)) {                                                                                     \
      std::fprintf(stderr, "etsi_request_fuzzer: invariant failed: %s (%s:%d)\n", #cond, __FILE__, __LINE__); \
      std::abort();                                                                                    \
    }                                                                                                  \
  } while (0)

namespace {

// --- helpers --------------------------------------------------------------------------------

bool valid_utf8(const std::string& s) {
  try {
    (void)json(s).dump();
    return true;
  } catch (const json::type_error&) {
    return false;
  }
}

bool is_uuid(std::string_view s) {
  if (s.size() != 36) return false;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    const bool hex = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
    if ((i == 8 || i == 13 || i == 18 || i == 23) ? c != '-' : !hex) return false;
  }
  return true;
}

// The server's own query splitting and percent-decoding, so that the parse functions see exactly
// what the server gives them.
api::query_list split_query(std::string_view rest) { return api::parse_query(rest); }

std::string base64_decode(const std::string& b64) {
  FUZZ_CHECK(b64.size() % 4 == 0);
  std::string raw(b64.size() / 4 * 3, '\0');
  const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(raw.data()), reinterpret_cast<const unsigned char*>(b64.data()),
                                static_cast<int>(b64.size()));
  FUZZ_CHECK(n >= 0 && static_cast<std::size_t>(n) == raw.size());
  std::size_t pad = 0;
  if (!b64.empty() && b64.back() == '=') ++pad;
  if (b64.size() > 1 && b64[b64.size() - 2] == '=') ++pad;
  raw.resize(raw.size() - pad);
  return raw;
}

// A refusal from a parse function: 400, a message, and an Error body that reads back.
void check_refusal(const api::api_refusal& r) {
  FUZZ_CHECK(r.status == api::http_status::bad_request);
  FUZZ_CHECK(!r.message.empty());
  const auto res = api::render_refusal(r);
  FUZZ_CHECK(res.status == 400);
  FUZZ_CHECK(res.content_type == "application/json");
  const auto j = json::parse(res.body);  // throws (and so crashes the fuzzer) when not JSON
  FUZZ_CHECK(j.at("message").is_string());
  if (valid_utf8(r.message)) FUZZ_CHECK(j["message"] == r.message);
  if (r.details.empty()) {
    FUZZ_CHECK(!j.contains("details"));
  } else {
    FUZZ_CHECK(j.at("details").size() == r.details.size());
    for (std::size_t i = 0; i < r.details.size(); ++i) {
      const auto& [k, v] = r.details[i];
      if (valid_utf8(k) && valid_utf8(v)) FUZZ_CHECK(j["details"][i] == json({{k, v}}));
    }
  }
}

// --- the parse functions, called directly --------------------------------------------------

std::optional<api::enc_keys_params> check_enc_query(const api::query_list& q) {
  auto p = api::parse_enc_keys_query(q);
  if (!p) {
    check_refusal(p.error());
    return std::nullopt;
  }
  FUZZ_CHECK(p->number >= 1);
  FUZZ_CHECK(p->additional_slaves.empty() && !p->route && !p->route_mandatory);
  FUZZ_CHECK(q.size() <= 2);
  std::set<std::string> names;
  for (const auto& [k, v] : q) {
    FUZZ_CHECK(k == "number" || k == "size");
    FUZZ_CHECK(names.insert(k).second);
    const auto value = k == "number" ? p->number : p->size_bits;
    FUZZ_CHECK(value >= 1);
    const auto digits = v.find_first_not_of('0');
    FUZZ_CHECK(digits != std::string::npos && v.substr(digits) == std::to_string(value));  // decimal round trip
  }
  if (!names.contains("number")) FUZZ_CHECK(p->number == 1);
  if (!names.contains("size")) FUZZ_CHECK(p->size_bits == 0);
  return *p;
}

std::optional<std::vector<std::string>> check_dec_query(const api::query_list& q) {
  auto ids = api::parse_dec_keys_query(q);
  if (!ids) {
    check_refusal(ids.error());
    return std::nullopt;
  }
  FUZZ_CHECK(ids->size() == 1 && q.size() == 1);
  FUZZ_CHECK(q[0].first == "key_ID" && q[0].second == ids->front());
  FUZZ_CHECK(is_uuid(ids->front()));
  return *ids;
}

// The Key request JSON for `p` (what a client sends to get exactly these parameters).
json key_request_json(const api::enc_keys_params& p) {
  json j{{"number", p.number}};
  if (p.size_bits != 0) j["size"] = p.size_bits;
  if (!p.additional_slaves.empty()) j["additional_slave_SAE_IDs"] = p.additional_slaves;
  if (p.route)
    j[p.route_mandatory ? "extension_mandatory" : "extension_optional"] = json{{"cvqkd_route_type", std::string(api::to_string(*p.route))}};
  return j;
}

bool same(const api::enc_keys_params& a, const api::enc_keys_params& b) {
  return a.number == b.number && a.size_bits == b.size_bits && a.additional_slaves == b.additional_slaves && a.route == b.route &&
         a.route_mandatory == b.route_mandatory;
}

std::optional<api::enc_keys_params> check_enc_body(const std::string& body) {
  auto p = api::parse_enc_keys_body(body);
  if (!p) {
    check_refusal(p.error());
    return std::nullopt;
  }
  FUZZ_CHECK(p->number >= 1);
  for (const auto& s : p->additional_slaves) FUZZ_CHECK(!s.empty());
  if (p->route_mandatory) FUZZ_CHECK(p->route.has_value());
  // Agrees with an independent reading of the body (or the defaults for a blank one).
  if (body.find_first_not_of(" \t\r\n") != std::string::npos) {
    const auto j = json::parse(body);
    FUZZ_CHECK(j.is_object());
    FUZZ_CHECK(p->number == (j.contains("number") ? j["number"].get<std::size_t>() : 1u));
    FUZZ_CHECK(p->size_bits == (j.contains("size") ? j["size"].get<std::size_t>() : 0u));
    if (j.contains("size")) FUZZ_CHECK(p->size_bits >= 1);
    FUZZ_CHECK(p->additional_slaves.size() == (j.contains("additional_slave_SAE_IDs") ? j["additional_slave_SAE_IDs"].size() : 0u));
  } else {
    FUZZ_CHECK(same(*p, api::enc_keys_params{}));
  }
  // Round trip: the Key request rendered from the parsed values parses to the same values.
  auto again = api::parse_enc_keys_body(key_request_json(*p).dump());
  FUZZ_CHECK(again && same(*again, *p));
  return *p;
}

std::optional<std::vector<std::string>> check_dec_body(const std::string& body) {
  auto ids = api::parse_dec_keys_body(body);
  if (!ids) {
    check_refusal(ids.error());
    return std::nullopt;
  }
  FUZZ_CHECK(!ids->empty());
  for (const auto& id : *ids) FUZZ_CHECK(is_uuid(id));
  json list = json::array();
  for (const auto& id : *ids) list.push_back(json{{"key_ID", id}});
  auto again = api::parse_dec_keys_body(json{{"key_IDs", list}}.dump());
  FUZZ_CHECK(again && *again == *ids);
  return *ids;
}

// --- a fake key service that checks what the routes hand it -------------------------------

std::uint8_t key_byte(std::size_t key, std::size_t i) { return static_cast<std::uint8_t>(key * 131 + i * 7 + 1); }

std::string uuid_of(std::uint64_t n) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "00000000-0000-4000-8000-%012llx", static_cast<unsigned long long>(n & 0xffffffffffffULL));
  return buf;
}

class fake_service final : public api::key_service {
public:
  api::key_limits limits;
  std::optional<api::key_request> last_enc;
  std::optional<std::vector<std::string>> last_dec;
  int status_calls = 0;

  void reset() {
    last_enc.reset();
    last_dec.reset();
    status_calls = 0;
  }

  api::api_result<api::status_info> status(std::string_view master, std::string_view slave) override {
    ++status_calls;
    FUZZ_CHECK(!master.empty() && !slave.empty());
    if (slave == "unknown") return api::refuse_400("unknown slave SAE ID", {{"slave_SAE_ID", std::string(slave)}});
    api::status_info s{"kme1", "kme2", std::string(master), std::string(slave), limits.default_key_size, 25000, limits.max_key_count,
                       limits.max_key_per_request, limits.max_key_size, limits.min_key_size, limits.max_sae_id_count};
    return s;
  }

  api::api_result<api::key_container> enc_keys(const api::key_request& r) override {
    last_enc = r;
    FUZZ_CHECK(!r.master_sae.empty() && !r.slave_sae.empty());
    FUZZ_CHECK(r.number >= 1 && r.size_bits >= 1);
    if (auto refusal = api::check_key_request(limits, r)) return std::unexpected(*refusal);
    if (r.slave_sae == "unknown") return api::refuse_400("unknown slave SAE ID");
    api::key_container c;
    for (std::size_t k = 0; k < r.number; ++k) {
      cvqkd::secure_buffer m(r.size_bits / 8);
      for (std::size_t i = 0; i < m.size(); ++i) m.data()[i] = static_cast<std::byte>(key_byte(k, i));
      c.keys.push_back({uuid_of(next_id_++), std::move(m)});
    }
    return c;
  }

  api::api_result<api::key_container> dec_keys(std::string_view caller, std::string_view master, std::span<const std::string> ids) override {
    last_dec.emplace(ids.begin(), ids.end());
    FUZZ_CHECK(!caller.empty() && !master.empty() && !ids.empty());
    for (const auto& id : ids) FUZZ_CHECK(is_uuid(id));
    if (master == "unknown") return api::refuse_400(std::string(api::msg_keys_not_found));
    api::key_container c;
    for (std::size_t k = 0; k < ids.size(); ++k) {
      cvqkd::secure_buffer m(32);
      for (std::size_t i = 0; i < m.size(); ++i) m.data()[i] = static_cast<std::byte>(key_byte(k, i));
      c.keys.push_back({ids[k], std::move(m)});
    }
    return c;
  }

private:
  std::uint64_t next_id_ = 1;
};

struct fixture {
  std::shared_ptr<fake_service> service = std::make_shared<fake_service>();
  api::router routes;
  fixture() {
    auto added = api::add_etsi_routes(routes, service);
    FUZZ_CHECK(added.has_value());
  }
};

fixture& the_fixture() {
  static fixture f;
  return f;
}

// Checks a key container: `expected_ids` (when given) in order, each key `bytes` long and equal
// to the fake service's pattern.
void check_container(const api::http_response& res, std::size_t count, std::size_t bytes,
                     const std::vector<std::string>* expected_ids) {
  FUZZ_CHECK(res.sensitive);
  const auto j = json::parse(res.body);
  FUZZ_CHECK(j.at("keys").is_array() && j["keys"].size() == count);
  std::set<std::string> seen;
  for (std::size_t k = 0; k < count; ++k) {
    const auto& e = j["keys"][k];
    const auto id = e.at("key_ID").get<std::string>();
    FUZZ_CHECK(is_uuid(id));
    if (expected_ids) FUZZ_CHECK(id == (*expected_ids)[k]);
    else FUZZ_CHECK(seen.insert(id).second);  // fresh keys: distinct IDs
    const auto raw = base64_decode(e.at("key").get<std::string>());
    FUZZ_CHECK(raw.size() == bytes);
    for (std::size_t i = 0; i < bytes; ++i) FUZZ_CHECK(static_cast<std::uint8_t>(raw[i]) == key_byte(k, i));
  }
}

// --- routing -------------------------------------------------------------------------------

enum route_kind { status_get, enc_get, enc_post, dec_get, dec_post, raw_target };

constexpr std::string_view sae_segments[] = {"sae2", "unknown", "sae%31", "s%2Fx%"};
constexpr std::string_view sae_decoded[] = {"sae2", "unknown", "sae1", "s/x%"};

void check_dispatch(std::uint8_t selector, std::string_view line, const std::string& body,
                    const std::optional<api::enc_keys_params>& enc_q, const std::optional<std::vector<std::string>>& dec_q,
                    const std::optional<api::enc_keys_params>& enc_b, const std::optional<std::vector<std::string>>& dec_b) {
  auto& f = the_fixture();
  f.service->reset();
  const int kind = std::min(selector & 7, static_cast<int>(raw_target));
  const bool other_method = (selector & 8) != 0;
  const std::size_t sae = (selector >> 4) & 3;
  const bool operator_role = (selector & 64) != 0;
  const bool anonymous = (selector & 128) != 0;

  api::http_request r;
  const bool post = (kind == enc_post || kind == dec_post) != other_method;
  r.method = post ? "POST" : "GET";
  if (kind == raw_target) {
    const auto q = line.find('?');
    r.path = std::string(line.substr(0, q));
    if (q != std::string_view::npos) r.query = split_query(line.substr(q + 1));
  } else {
    static constexpr std::string_view calls[] = {"status", "enc_keys", "enc_keys", "dec_keys", "dec_keys"};
    r.path = "/api/v1/keys/" + std::string(sae_segments[sae]) + "/" + std::string(calls[kind]);
    r.query = split_query(line);
  }
  r.body = body;
  if (!anonymous) r.peer = {"sae1", std::string(operator_role ? api::role_operator : api::role_sae)};

  api::http_response res;
  try {
    res = f.routes.dispatch(r);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "etsi_request_fuzzer: router::dispatch threw: %s\n", e.what());
    std::abort();
  }
  // 503 is the router's answer to a handler that threw; the fake service never answers 503.
  FUZZ_CHECK(res.status == 200 || res.status == 400 || res.status == 401 || res.status == 404 || res.status == 405);
  if (res.status == 401) {
    FUZZ_CHECK(res.body.empty());
  } else {
    const auto j = json::parse(res.body);
    if (res.status != 200) FUZZ_CHECK(j.at("message").is_string() && !j["message"].get<std::string>().empty());
  }
  if (res.status == 405) FUZZ_CHECK(!res.headers.empty() && res.headers[0].first == "Allow");
  if (kind == raw_target) return;

  // The five ETSI routes: the path always matches, so 404 is impossible; POST status is 405.
  FUZZ_CHECK(res.status != 404);
  if (kind == status_get && post) {
    FUZZ_CHECK(res.status == 405);
    return;
  }
  FUZZ_CHECK(res.status != 405);
  if (anonymous || operator_role) {
    FUZZ_CHECK(res.status == 401);
    return;
  }
  const std::string slave(sae_decoded[sae]);
  const bool is_enc = kind == enc_get || kind == enc_post;
  if (kind == status_get) {
    FUZZ_CHECK(f.service->status_calls == 1);
    FUZZ_CHECK(res.status == (slave == "unknown" ? 400u : 200u));
    if (res.status == 200) {
      const auto j = json::parse(res.body);
      FUZZ_CHECK(j.at("slave_SAE_ID") == slave && j.at("master_SAE_ID") == "sae1" && j.at("key_size") == 256);
    }
  } else if (is_enc) {
    const auto& parsed = post ? enc_b : enc_q;
    if (!parsed) {  // the parse refusal goes out as it is
      FUZZ_CHECK(res.status == 400 && !f.service->last_enc && f.service->status_calls == 0);
      return;
    }
    if (parsed->size_bits == 0) FUZZ_CHECK(f.service->status_calls == 1);  // the default size comes from status
    if (parsed->size_bits == 0 && slave == "unknown") {
      FUZZ_CHECK(res.status == 400 && !f.service->last_enc);
      return;
    }
    FUZZ_CHECK(f.service->last_enc.has_value());
    const auto& seen = *f.service->last_enc;
    FUZZ_CHECK(seen.master_sae == "sae1" && seen.slave_sae == slave);
    FUZZ_CHECK(seen.number == parsed->number);
    FUZZ_CHECK(seen.size_bits == (parsed->size_bits == 0 ? 256u : parsed->size_bits));
    FUZZ_CHECK(seen.additional_slaves == parsed->additional_slaves);
    FUZZ_CHECK(seen.route == parsed->route && seen.route_mandatory == parsed->route_mandatory);
    const bool acceptable = !api::check_key_request(f.service->limits, seen) && slave != "unknown";
    FUZZ_CHECK(res.status == (acceptable ? 200u : 400u));
    if (acceptable) check_container(res, seen.number, seen.size_bits / 8, nullptr);
  } else {
    const auto& parsed = post ? dec_b : dec_q;
    if (!parsed) {
      FUZZ_CHECK(res.status == 400 && !f.service->last_dec);
      return;
    }
    FUZZ_CHECK(f.service->last_dec && *f.service->last_dec == *parsed);
    FUZZ_CHECK(res.status == (slave == "unknown" ? 400u : 200u));
    if (res.status == 200) check_container(res, parsed->size(), 32, &*parsed);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::uint8_t selector = data[0];
  const std::string_view rest(reinterpret_cast<const char*>(data + 1), size - 1);
  const auto nl = rest.find('\n');
  const std::string_view line = rest.substr(0, nl);
  const std::string body(nl == std::string_view::npos ? std::string_view{} : rest.substr(nl + 1));

  std::string_view query_string = line;
  if ((selector & 7) >= raw_target) {
    const auto q = line.find('?');
    query_string = q == std::string_view::npos ? std::string_view{} : line.substr(q + 1);
  }
  const auto query = split_query(query_string);
  const auto enc_q = check_enc_query(query);
  const auto dec_q = check_dec_query(query);
  const auto enc_b = check_enc_body(body);
  const auto dec_b = check_dec_body(body);
  check_dispatch(selector, line, body, enc_q, dec_q, enc_b, dec_b);
  return 0;
}
