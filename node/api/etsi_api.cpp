#include "node/api/etsi_api.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <charconv>
#include <cstring>
#include <nlohmann/json.hpp>

namespace cvqkd::api {

using nlohmann::json;

namespace {

bool blank(std::string_view s) { return s.find_first_not_of(" \t\r\n") == std::string_view::npos; }

api_result<json> parse_object(std::string_view body, std::string_view what) {
  json j;
  try {
    j = json::parse(body);
  } catch (const json::exception& e) {  // parse_error, and out_of_range for a number beyond double (1e999)
    return refuse_400("malformed JSON in the request body; send a " + std::string(what) + " object", {{"parse_error", e.what()}});
  }
  if (!j.is_object()) return refuse_400("the request body shall be a JSON object (" + std::string(what) + ")");
  return j;
}

std::optional<std::size_t> positive_integer(const json& v) {
  if (v.is_number_unsigned() && v.get<std::uint64_t>() > 0) return static_cast<std::size_t>(v.get<std::uint64_t>());
  if (v.is_number_integer() && v.get<std::int64_t>() > 0) return static_cast<std::size_t>(v.get<std::int64_t>());
  return std::nullopt;
}

std::optional<std::size_t> positive_decimal(std::string_view s) {
  std::size_t v = 0;
  const auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc{} || ptr != s.data() + s.size() || s.empty() || s.front() == '+' || v == 0) return std::nullopt;
  return v;
}

bool is_uuid(std::string_view s) {
  if (s.size() != 36) return false;
  for (std::size_t i = 0; i < 36; ++i) {
    const char c = s[i];
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (c != '-') return false;
    } else if (!std::isxdigit(static_cast<unsigned char>(c))) {
      return false;
    }
  }
  return true;
}

constexpr std::string_view route_ext = "cvqkd_route_type";

}  // namespace

api_result<enc_keys_params> parse_enc_keys_body(std::string_view body) {
  enc_keys_params p;
  if (blank(body)) return p;
  auto j = parse_object(body, "Key request");
  if (!j) return std::unexpected(j.error());
  std::optional<route_type> optional_route;
  for (const auto& [name, v] : j->items()) {
    if (name == "number") {
      auto n = positive_integer(v);
      if (!n) return refuse_400("number shall be a positive integer", {{"number", v.dump()}});
      p.number = *n;
    } else if (name == "size") {
      auto n = positive_integer(v);
      if (!n) return refuse_400("size shall be a positive integer (bits)", {{"size", v.dump()}});
      p.size_bits = *n;
    } else if (name == "additional_slave_SAE_IDs") {
      if (!v.is_array()) return refuse_400("additional_slave_SAE_IDs shall be an array of SAE IDs");
      for (const auto& s : v) {
        if (!s.is_string() || s.get_ref<const std::string&>().empty())
          return refuse_400("additional_slave_SAE_IDs shall be an array of non-empty strings", {{"additional_slave_SAE_IDs", s.dump()}});
        p.additional_slaves.push_back(s.get<std::string>());
      }
    } else if (name == "extension_mandatory") {
      if (!v.is_object()) return refuse_400("extension_mandatory shall be a JSON object");
      std::vector<std::pair<std::string, std::string>> unsupported;
      for (const auto& [ext, value] : v.items()) {
        if (ext == route_ext) {
          auto r = value.is_string() ? parse_route_type(value.get<std::string>()) : std::nullopt;
          if (!r)
            return refuse_400(std::string(msg_extension_unmet),
                              {{std::string(route_ext), value.dump() + " is not one of \"direct\", \"relay\", \"multipath\""}});
          p.route = r;
          p.route_mandatory = true;
        } else {
          unsupported.emplace_back("extension_mandatory_unsupported", ext + " is not supported");
        }
      }
      if (!unsupported.empty()) return refuse_400(std::string(msg_extension_unsupported), std::move(unsupported));
    } else if (name == "extension_optional") {
      if (!v.is_object()) return refuse_400("extension_optional shall be a JSON object");
      // Optional extensions may be ignored (V1.1.1 clause 6.2); a bad route type value is too.
      if (auto it = v.find(route_ext); it != v.end() && it->is_string()) optional_route = parse_route_type(it->get<std::string>());
    } else {
      return refuse_400("unknown field in the Key request: " + name +
                            " (allowed: number, size, additional_slave_SAE_IDs, extension_mandatory, extension_optional)",
                        {{"unknown_field", name}});
    }
  }
  if (!p.route_mandatory) p.route = optional_route;
  return p;
}

api_result<enc_keys_params> parse_enc_keys_query(const query_list& query) {
  enc_keys_params p;
  bool have_number = false, have_size = false;
  for (const auto& [k, v] : query) {
    if (k == "number" || k == "size") {
      bool& seen = k == "number" ? have_number : have_size;
      if (seen) return refuse_400("query parameter " + k + " is given more than once");
      seen = true;
      auto n = positive_decimal(v);
      if (!n) return refuse_400(k + " shall be a positive decimal integer", {{k, v}});
      (k == "number" ? p.number : p.size_bits) = *n;
    } else {
      return refuse_400("unknown query parameter " + k + " (enc_keys takes number and size)", {{"unknown_parameter", k}});
    }
  }
  return p;
}

api_result<std::vector<std::string>> parse_dec_keys_body(std::string_view body) {
  if (blank(body)) return refuse_400("the Key IDs body is required: {\"key_IDs\": [{\"key_ID\": \"<uuid>\"}]}");
  auto j = parse_object(body, "Key IDs");
  if (!j) return std::unexpected(j.error());
  std::vector<std::string> ids;
  bool have_ids = false;
  for (const auto& [name, v] : j->items()) {
    if (name == "key_IDs_extension") continue;  // no extension defined: ignored
    if (name != "key_IDs")
      return refuse_400("unknown field in Key IDs: " + name + " (allowed: key_IDs, key_IDs_extension)", {{"unknown_field", name}});
    have_ids = true;
    if (!v.is_array() || v.empty()) return refuse_400("key_IDs shall be a non-empty array of {\"key_ID\": \"<uuid>\"}");
    for (const auto& e : v) {
      if (!e.is_object()) return refuse_400("each key_IDs entry shall be an object {\"key_ID\": \"<uuid>\"}");
      for (const auto& [f, x] : e.items())
        if (f != "key_ID" && f != "key_ID_extension")
          return refuse_400("unknown field in a key_IDs entry: " + f + " (allowed: key_ID, key_ID_extension)", {{"unknown_field", f}});
      auto it = e.find("key_ID");
      if (it == e.end() || !it->is_string()) return refuse_400("each key_IDs entry needs a key_ID string");
      const auto& s = it->get_ref<const std::string&>();
      if (!is_uuid(s)) return refuse_400(std::string(msg_keys_not_found), {{"key_ID", s + " is not a UUID"}});
      ids.push_back(s);
    }
  }
  if (!have_ids) return refuse_400("the Key IDs body needs key_IDs: {\"key_IDs\": [{\"key_ID\": \"<uuid>\"}]}");
  return ids;
}

api_result<std::vector<std::string>> parse_dec_keys_query(const query_list& query) {
  std::vector<std::string> ids;
  for (const auto& [k, v] : query) {
    if (k != "key_ID") return refuse_400("unknown query parameter " + k + " (dec_keys takes key_ID)", {{"unknown_parameter", k}});
    if (!ids.empty()) return refuse_400("GET dec_keys takes exactly one key_ID; use POST for several");
    if (!is_uuid(v)) return refuse_400(std::string(msg_keys_not_found), {{"key_ID", v + " is not a UUID"}});
    ids.push_back(v);
  }
  if (ids.empty()) return refuse_400("query parameter key_ID is required (GET dec_keys?key_ID=<uuid>)");
  return ids;
}

std::string render_status(const status_info& s) {
  return json{{"source_KME_ID", s.source_kme_id},       {"target_KME_ID", s.target_kme_id},
              {"master_SAE_ID", s.master_sae_id},       {"slave_SAE_ID", s.slave_sae_id},
              {"key_size", s.key_size},                 {"stored_key_count", s.stored_key_count},
              {"max_key_count", s.max_key_count},       {"max_key_per_request", s.max_key_per_request},
              {"max_key_size", s.max_key_size},         {"min_key_size", s.min_key_size},
              {"max_SAE_ID_count", s.max_sae_id_count}}
      .dump(-1, ' ', false, json::error_handler_t::replace);  // SAE IDs come from the (percent-decoded) path
}

http_response render_keys(key_container& keys) {
  static constexpr std::string_view head = "{\"keys\":[", tail = "]}", k1 = "{\"key_ID\":\"", k2 = "\",\"key\":\"", k3 = "\"}";
  std::size_t total = head.size() + tail.size();
  for (const auto& k : keys.keys)
    total += k1.size() + k.key_id.size() + k2.size() + 4 * ((k.material.size() + 2) / 3) + k3.size() + 1;
  http_response r;
  r.sensitive = true;
  r.body.assign(total + 1, '\0');  // +1: EVP_EncodeBlock's NUL terminator
  char* out = r.body.data();
  auto put = [&](std::string_view s) {
    std::memcpy(out, s.data(), s.size());
    out += s.size();
  };
  put(head);
  for (std::size_t i = 0; i < keys.keys.size(); ++i) {
    auto& k = keys.keys[i];
    if (i > 0) put(",");
    put(k1);
    put(k.key_id);
    put(k2);
    const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out), reinterpret_cast<const unsigned char*>(k.material.data()),
                                  static_cast<int>(k.material.size()));
    out += n;
    k.material.reset();
    put(k3);
  }
  put(tail);
  r.body.resize(static_cast<std::size_t>(out - r.body.data()));  // shrinking never reallocates
  return r;
}

http_response render_refusal(const api_refusal& r) {
  http_response out;
  out.status = static_cast<unsigned>(r.status);
  if (r.status == http_status::unauthorized) {
    out.content_type.clear();
    return out;
  }
  json j{{"message", r.message}};
  if (!r.details.empty()) {
    json d = json::array();
    for (const auto& [k, v] : r.details) d.push_back(json{{k, v}});
    j["details"] = std::move(d);
  }
  // Messages and details echo client bytes (query names and values, path segments, JSON parser
  // errors), which need not be UTF-8: replace invalid sequences with U+FFFD instead of throwing.
  out.body = j.dump(-1, ' ', false, json::error_handler_t::replace);
  return out;
}

expected<void> add_etsi_routes(router& routes, std::shared_ptr<key_service> service, etsi_api_options options) {
  if (!service) return fail(errc::invalid_argument, "add_etsi_routes: no key service given");
  auto opt = std::make_shared<const etsi_api_options>(std::move(options));
  // The caller's SAE ID; empty when the certificate CN is not mapped.
  auto sae_of = [opt](const http_request& r) -> std::string {
    if (opt->sae_by_cn.empty()) return r.peer.common_name;
    auto it = opt->sae_by_cn.find(r.peer.common_name);
    return it == opt->sae_by_cn.end() ? std::string{} : it->second;
  };
  auto ok_json = [](std::string body) {
    http_response r;
    r.body = std::move(body);
    return r;
  };
  auto keys_or_refusal = [](api_result<key_container> k) { return k ? render_keys(*k) : render_refusal(k.error()); };
  auto enc = [service, sae_of, keys_or_refusal](const http_request& r, api_result<enc_keys_params> p) {
    if (!p) return render_refusal(p.error());
    key_request req{sae_of(r), std::string(r.param("slave_SAE_ID")), p->number, p->size_bits, std::move(p->additional_slaves),
                    p->route, p->route_mandatory};
    if (req.master_sae.empty()) return render_refusal(refuse(http_status::unauthorized, {}));
    if (req.size_bits == 0) {
      auto st = service->status(req.master_sae, req.slave_sae);
      if (!st) return render_refusal(st.error());
      req.size_bits = st->key_size;
    }
    return keys_or_refusal(service->enc_keys(req));
  };
  auto dec = [service, sae_of, keys_or_refusal](const http_request& r, api_result<std::vector<std::string>> ids) {
    if (!ids) return render_refusal(ids.error());
    const auto caller = sae_of(r);
    if (caller.empty()) return render_refusal(refuse(http_status::unauthorized, {}));
    return keys_or_refusal(service->dec_keys(caller, r.param("master_SAE_ID"), *ids));
  };
  const std::string role(role_sae);
  const std::string base = "/api/v1/keys/";
  auto add = [&](const char* method, const std::string& pattern, http_handler h) -> expected<void> {
    return routes.add(method, pattern, role, std::move(h));
  };
  if (auto e = add("GET", base + "{slave_SAE_ID}/status",
                   [service, sae_of, ok_json](const http_request& r) {
                     const auto caller = sae_of(r);
                     if (caller.empty()) return render_refusal(refuse(http_status::unauthorized, {}));
                     auto st = service->status(caller, r.param("slave_SAE_ID"));
                     return st ? ok_json(render_status(*st)) : render_refusal(st.error());
                   });
      !e)
    return e;
  if (auto e = add("GET", base + "{slave_SAE_ID}/enc_keys", [enc](const http_request& r) { return enc(r, parse_enc_keys_query(r.query)); }); !e)
    return e;
  if (auto e = add("POST", base + "{slave_SAE_ID}/enc_keys", [enc](const http_request& r) { return enc(r, parse_enc_keys_body(r.body)); }); !e)
    return e;
  if (auto e = add("GET", base + "{master_SAE_ID}/dec_keys", [dec](const http_request& r) { return dec(r, parse_dec_keys_query(r.query)); }); !e)
    return e;
  return add("POST", base + "{master_SAE_ID}/dec_keys", [dec](const http_request& r) { return dec(r, parse_dec_keys_body(r.body)); });
}

}  // namespace cvqkd::api
