// ETSI GS QKD 014 layer: request parsing and validation, error rendering and the router without
// TLS; the key services of two KMEs (enc_keys at A, dec_keys at B); and HTTPS round trips over
// mutual TLS against the in-process servers (a minimal blocking OpenSSL client below).
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <nlohmann/json.hpp>
#include <mutex>
#include <set>
#include <thread>

#include "node/api/etsi_api.hpp"
#include "tests/api/kme_network.hpp"
#include "tests/storage_test_support.hpp"

namespace api = cvqkd::api;
using nlohmann::json;

namespace {

void expect_refusal(const api::api_refusal& r, api::http_status status, std::string_view message) {
  EXPECT_EQ(r.status, status);
  EXPECT_EQ(r.message, message);
}

// --- parsing ------------------------------------------------------------------------------

TEST(EtsiParse, EmptyBodyMeansDefaults) {
  for (const char* body : {"", "  \r\n\t", "{}"}) {
    auto p = api::parse_enc_keys_body(body);
    ASSERT_TRUE(p) << body;
    EXPECT_EQ(p->number, 1u);
    EXPECT_EQ(p->size_bits, 0u);  // the service's default
    EXPECT_TRUE(p->additional_slaves.empty());
    EXPECT_FALSE(p->route);
  }
}

TEST(EtsiParse, FullKeyRequest) {
  auto p = api::parse_enc_keys_body(R"({"number": 3, "size": 512, "additional_slave_SAE_IDs": ["s2", "s3"],
      "extension_mandatory": {"cvqkd_route_type": "relay"}, "extension_optional": {"other_x": 1, "cvqkd_route_type": "direct"}})");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->number, 3u);
  EXPECT_EQ(p->size_bits, 512u);
  EXPECT_EQ(p->additional_slaves, (std::vector<std::string>{"s2", "s3"}));
  EXPECT_EQ(p->route, api::route_type::relay);  // mandatory wins over optional
  EXPECT_TRUE(p->route_mandatory);
}

TEST(EtsiParse, OptionalExtensionsAreBestEffort) {
  auto p = api::parse_enc_keys_body(R"({"extension_optional": {"vendor_x": true, "cvqkd_route_type": "multipath"}})");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->route, api::route_type::multipath);
  EXPECT_FALSE(p->route_mandatory);
  auto bad = api::parse_enc_keys_body(R"({"extension_optional": {"cvqkd_route_type": "teleport"}})");
  ASSERT_TRUE(bad);
  EXPECT_FALSE(bad->route);
}

TEST(EtsiParse, MalformedAndMistypedBodies) {
  auto m = api::parse_enc_keys_body("{\"number\": ");
  ASSERT_FALSE(m);
  EXPECT_EQ(m.error().status, api::http_status::bad_request);
  EXPECT_TRUE(m.error().message.starts_with("malformed JSON")) << m.error().message;
  ASSERT_EQ(m.error().details.size(), 1u);
  EXPECT_EQ(m.error().details[0].first, "parse_error");

  for (const char* body : {"[]", "null", "3", "\"x\""}) {
    auto r = api::parse_enc_keys_body(body);
    ASSERT_FALSE(r) << body;
    EXPECT_EQ(r.error().message, "the request body shall be a JSON object (Key request)");
  }
  for (const char* body : {R"({"number": 0})", R"({"number": -1})", R"({"number": 1.5})", R"({"number": "2"})"}) {
    auto r = api::parse_enc_keys_body(body);
    ASSERT_FALSE(r) << body;
    EXPECT_EQ(r.error().message, "number shall be a positive integer") << body;
  }
  auto s = api::parse_enc_keys_body(R"({"size": true})");
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().message, "size shall be a positive integer (bits)");
  auto u = api::parse_enc_keys_body(R"({"sise": 256})");
  ASSERT_FALSE(u);
  EXPECT_TRUE(u.error().message.starts_with("unknown field in the Key request: sise")) << u.error().message;
  auto a = api::parse_enc_keys_body(R"({"additional_slave_SAE_IDs": ["ok", 5]})");
  ASSERT_FALSE(a);
  EXPECT_EQ(a.error().message, "additional_slave_SAE_IDs shall be an array of non-empty strings");
}

TEST(EtsiParse, UnknownMandatoryExtensionUsesTheSpecMessage) {
  auto r = api::parse_enc_keys_body(R"({"extension_mandatory": {"abc_route_type": "direct", "xyz_qos": 1}})");
  ASSERT_FALSE(r);
  expect_refusal(r.error(), api::http_status::bad_request, "not all extension_mandatory parameters are supported");
  ASSERT_EQ(r.error().details.size(), 2u);
  EXPECT_EQ(r.error().details[0], (std::pair<std::string, std::string>{"extension_mandatory_unsupported", "abc_route_type is not supported"}));
  EXPECT_EQ(r.error().details[1].second, "xyz_qos is not supported");

  auto v = api::parse_enc_keys_body(R"({"extension_mandatory": {"cvqkd_route_type": "teleport"}})");
  ASSERT_FALSE(v);
  expect_refusal(v.error(), api::http_status::bad_request, "not all extension_mandatory request options could be met");
}

TEST(EtsiParse, EncKeysQuery) {
  auto p = api::parse_enc_keys_query({{"number", "3"}, {"size", "512"}});
  ASSERT_TRUE(p);
  EXPECT_EQ(p->number, 3u);
  EXPECT_EQ(p->size_bits, 512u);
  auto d = api::parse_enc_keys_query({});
  ASSERT_TRUE(d);
  EXPECT_EQ(d->number, 1u);
  EXPECT_EQ(d->size_bits, 0u);
  for (const char* bad : {"", "0", "+5", "5x", "-1", "99999999999999999999999"}) {
    auto r = api::parse_enc_keys_query({{"size", bad}});
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error().message, "size shall be a positive decimal integer");
  }
  EXPECT_FALSE(api::parse_enc_keys_query({{"number", "1"}, {"number", "2"}}));
  auto u = api::parse_enc_keys_query({{"count", "2"}});
  ASSERT_FALSE(u);
  EXPECT_EQ(u.error().message, "unknown query parameter count (enc_keys takes number and size)");
}

TEST(EtsiParse, DecKeysBodyAndQuery) {
  const std::string id = "0b9e1c36-5d1e-4f2a-8a3c-1f2e3d4c5b6a";
  auto ok = api::parse_dec_keys_body(R"({"key_IDs": [{"key_ID": ")" + id + R"(", "key_ID_extension": {}}], "key_IDs_extension": {}})");
  ASSERT_TRUE(ok);
  EXPECT_EQ(*ok, std::vector<std::string>{id});

  auto empty = api::parse_dec_keys_body("");
  ASSERT_FALSE(empty);
  EXPECT_EQ(empty.error().status, api::http_status::bad_request);
  for (const char* body : {"{}", R"({"key_IDs": []})", R"({"key_IDs": [{}]})", R"({"key_IDs": [{"key_ID": 7}]})", R"({"keys": []})"})
    EXPECT_FALSE(api::parse_dec_keys_body(body)) << body;
  auto malformed = api::parse_dec_keys_body(R"({"key_IDs": [{"key_ID": "not-a-uuid"}]})");
  ASSERT_FALSE(malformed);
  expect_refusal(malformed.error(), api::http_status::bad_request, "one or more keys specified are not found on KME");
  EXPECT_EQ(malformed.error().details.at(0).second, "not-a-uuid is not a UUID");

  auto q = api::parse_dec_keys_query({{"key_ID", id}});
  ASSERT_TRUE(q);
  EXPECT_EQ(q->at(0), id);
  EXPECT_FALSE(api::parse_dec_keys_query({}));
  EXPECT_FALSE(api::parse_dec_keys_query({{"key_ID", id}, {"key_ID", id}}));
  auto mq = api::parse_dec_keys_query({{"key_ID", id.substr(1)}});
  ASSERT_FALSE(mq);
  EXPECT_EQ(mq.error().message, "one or more keys specified are not found on KME");
}

TEST(EtsiValidate, LimitsInSpecOrder) {
  api::key_limits l;  // 64..1024, default 256, 128 per request, 4 additional SAEs
  api::key_request r{"m", "s", 1, 256, {}, {}, false};
  EXPECT_FALSE(api::check_key_request(l, r));
  r.size_bits = 100;
  EXPECT_EQ(api::check_key_request(l, r)->message, "size shall be a multiple of 8");
  r.size_bits = 2048;
  auto big = api::check_key_request(l, r);
  EXPECT_EQ(big->message, "size shall be between min_key_size and max_key_size");
  EXPECT_EQ(big->details, (std::vector<std::pair<std::string, std::string>>{{"min_key_size", "64"}, {"max_key_size", "1024"}}));
  r.size_bits = 56;
  EXPECT_EQ(api::check_key_request(l, r)->message, "size shall be between min_key_size and max_key_size");
  r.size_bits = 256;
  r.number = 129;
  auto many = api::check_key_request(l, r);
  EXPECT_EQ(many->message, "number shall not exceed max_key_per_request");
  EXPECT_EQ(many->details.at(0).second, "128");
  r.number = 1;
  r.additional_slaves = {"a", "b", "c", "d", "e"};
  EXPECT_EQ(api::check_key_request(l, r)->message, "additional_slave_SAE_IDs shall name at most max_SAE_ID_count SAEs");
  r.additional_slaves = {"a", "s"};
  EXPECT_TRUE(api::check_key_request(l, r));
  r.additional_slaves = {};
  r.slave_sae = "m";
  EXPECT_TRUE(api::check_key_request(l, r));
}

// --- rendering ----------------------------------------------------------------------------

TEST(EtsiRender, ErrorShapes) {
  auto u = api::render_refusal(api::refuse(api::http_status::unauthorized, "ignored"));
  EXPECT_EQ(u.status, 401u);
  EXPECT_TRUE(u.body.empty());
  EXPECT_TRUE(u.content_type.empty());
  auto b = api::render_refusal(api::refuse(api::http_status::bad_request, "size shall be a multiple of 8", {{"size", "100"}}));
  EXPECT_EQ(b.status, 400u);
  EXPECT_EQ(json::parse(b.body), json::parse(R"({"message": "size shall be a multiple of 8", "details": [{"size": "100"}]})"));
  auto s = api::render_refusal(api::refuse(api::http_status::service_unavailable, "not enough key material: x"));
  EXPECT_EQ(s.status, 503u);
  EXPECT_EQ(json::parse(s.body), json::parse(R"({"message": "not enough key material: x"})"));
}

TEST(EtsiRender, KeyContainerIsBase64AndSensitive) {
  api::key_container c;
  for (std::size_t n : {1u, 2u, 3u, 32u, 128u}) {
    cvqkd::secure_buffer m(n);
    for (std::size_t i = 0; i < n; ++i) m.data()[i] = static_cast<std::byte>(i * 37 + n);
    c.keys.push_back({"00000000-0000-4000-8000-00000000000" + std::to_string(n % 10), std::move(m)});
  }
  auto r = api::render_keys(c);
  EXPECT_TRUE(r.sensitive);
  EXPECT_EQ(r.status, 200u);
  const auto j = json::parse(r.body);
  ASSERT_EQ(j.at("keys").size(), 5u);
  std::size_t k = 0;
  for (std::size_t n : {1u, 2u, 3u, 32u, 128u}) {
    const auto b64 = j["keys"][k]["key"].get<std::string>();
    std::string raw(b64.size(), '\0');
    const int len = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(raw.data()), reinterpret_cast<const unsigned char*>(b64.data()),
                                    static_cast<int>(b64.size()));
    ASSERT_GE(len, static_cast<int>(n));
    for (std::size_t i = 0; i < n; ++i) EXPECT_EQ(static_cast<unsigned char>(raw[i]), static_cast<unsigned char>(i * 37 + n));
    EXPECT_TRUE(c.keys[k].material.empty());  // cleansed as encoded
    ++k;
  }
  const auto again = json::parse(api::render_keys(c).body);  // the materials are gone: empty keys
  EXPECT_EQ(again["keys"][0]["key"], "");
  api::key_container none;
  EXPECT_EQ(api::render_keys(none).body, R"({"keys":[]})");
}

// Found by tests/fuzz/etsi_request_fuzzer: refusals echo client bytes (query names and values,
// JSON parser errors) that need not be UTF-8; rendering them threw nlohmann's type_error 316, and
// the request got the router's 503 "internal error" instead of its 400.
TEST(EtsiRender, RefusalsEchoingNonUtf8BytesStayJson) {
  std::vector<api::api_refusal> refusals;
  auto q = api::parse_dec_keys_query({{"key_ID", "\xff\xfe"}});
  ASSERT_FALSE(q);
  refusals.push_back(q.error());
  auto n = api::parse_enc_keys_query({{"\xb0$}", "1"}});  // the fuzzer's input
  ASSERT_FALSE(n);
  refusals.push_back(n.error());
  auto b = api::parse_enc_keys_body("{\"number\": \xff}");
  ASSERT_FALSE(b);
  EXPECT_TRUE(b.error().message.starts_with("malformed JSON")) << b.error().message;
  refusals.push_back(b.error());
  for (const auto& r : refusals) {
    api::http_response res;
    ASSERT_NO_THROW(res = api::render_refusal(r)) << r.message;
    EXPECT_EQ(res.status, 400u);
    json j;
    ASSERT_NO_THROW(j = json::parse(res.body)) << res.body;
    EXPECT_TRUE(j.at("message").is_string());
    ASSERT_EQ(j.at("details").size(), r.details.size());
  }
  // Invalid bytes become U+FFFD.
  EXPECT_EQ(json::parse(api::render_refusal(n.error()).body).at("message"),
            "unknown query parameter \xef\xbf\xbd$} (enc_keys takes number and size)");
  const auto j = json::parse(api::render_refusal(q.error()).body);
  EXPECT_EQ(j["details"][0]["key_ID"], "\xef\xbf\xbd\xef\xbf\xbd is not a UUID");
}

// Found by tests/fuzz/etsi_request_fuzzer: a number beyond double's range made nlohmann throw
// out_of_range (not parse_error), which escaped the parse functions (the router answered 503).
TEST(EtsiParse, NumbersBeyondDoubleAreMalformedJson) {
  for (const char* body : {R"({"e": 21e563})", R"({"number": 1e999})", R"({"size": -1e400})"}) {
    api::api_result<api::enc_keys_params> r;
    ASSERT_NO_THROW(r = api::parse_enc_keys_body(body)) << body;
    ASSERT_FALSE(r) << body;
    EXPECT_EQ(r.error().status, api::http_status::bad_request);
    EXPECT_TRUE(r.error().message.starts_with("malformed JSON")) << r.error().message;
  }
  api::api_result<std::vector<std::string>> d;
  ASSERT_NO_THROW(d = api::parse_dec_keys_body(R"({"key_IDs": [{"key_ID": "x", "key_ID_extension": {"n": 1e999}}]})"));
  ASSERT_FALSE(d);
  EXPECT_TRUE(d.error().message.starts_with("malformed JSON")) << d.error().message;
}

// --- router -------------------------------------------------------------------------------

TEST(Router, MatchesMethodsRolesAndParams) {
  api::router rt;
  ASSERT_TRUE(rt.add("GET", "/a/{x}/b", "role1", [](const api::http_request& r) {
    api::http_response res;
    res.body = std::string(r.param("x"));
    return res;
  }));
  ASSERT_TRUE(rt.add("GET", "/metrics", "", [](const api::http_request&) { return api::http_response{200, "text/plain", "m", false, {}}; }));
  EXPECT_FALSE(rt.add("GET", "/a/{x}/b", "", [](const api::http_request&) { return api::http_response{}; }));
  EXPECT_FALSE(rt.add("GET", "a/b", "", [](const api::http_request&) { return api::http_response{}; }));
  EXPECT_FALSE(rt.add("GET", "/a//b", "", [](const api::http_request&) { return api::http_response{}; }));
  EXPECT_FALSE(rt.add("GET", "/a/{x", "", [](const api::http_request&) { return api::http_response{}; }));

  api::http_request r;
  r.method = "GET";
  r.path = "/a/sae%20one/b";
  r.peer = {"alice", "role1"};
  auto ok = rt.dispatch(r);
  EXPECT_EQ(ok.status, 200u);
  EXPECT_EQ(ok.body, "sae one");
  r.peer.organizational_unit = "role2";
  EXPECT_EQ(rt.dispatch(r).status, 401u);
  r.peer = {"", "role1"};
  EXPECT_EQ(rt.dispatch(r).status, 401u);
  r.peer = {"op", "anything"};
  r.path = "/metrics";
  EXPECT_EQ(rt.dispatch(r).body, "m");
  r.method = "POST";
  auto m = rt.dispatch(r);
  EXPECT_EQ(m.status, 405u);
  ASSERT_EQ(m.headers.size(), 1u);
  EXPECT_EQ(m.headers[0].second, "GET");
  r.method = "GET";
  r.path = "/a//b";
  EXPECT_EQ(rt.dispatch(r).status, 404u);
  r.path = "/nothing";
  EXPECT_EQ(rt.dispatch(r).status, 404u);
}

// Found by tests/fuzz/etsi_request_fuzzer: a 404 or 405 for a path with bytes that are not UTF-8
// (Beast accepts any byte >= 0x80 in a request target) threw out of dispatch, on the server's
// handler pool, outside the handler's try: the process terminated.
TEST(Router, NonUtf8PathsGetJson404And405) {
  api::router rt;
  ASSERT_TRUE(rt.add("GET", "/a/{x}", "", [](const api::http_request&) { return api::http_response{}; }));
  api::http_request r;
  r.peer = {"alice", "role1"};
  r.method = "GET";
  r.path = "/\xff\xfe";
  api::http_response nf;
  ASSERT_NO_THROW(nf = rt.dispatch(r));
  EXPECT_EQ(nf.status, 404u);
  EXPECT_EQ(json::parse(nf.body).at("message"), "no such resource: /\xef\xbf\xbd\xef\xbf\xbd");
  r.method = "POST";
  r.path = "/a/\xc3";
  api::http_response na;
  ASSERT_NO_THROW(na = rt.dispatch(r));
  EXPECT_EQ(na.status, 405u);
  EXPECT_TRUE(json::accept(na.body)) << na.body;
}

// --- two KMEs -----------------------------------------------------------------------------

class TwoKmes : public ::testing::Test {
protected:
  static void SetUpTestSuite() {
    dir_ = new cvqkd::test_support::temp_dir();
    cvqkd::test_support::kme_network_options o;
    o.dir = dir_->path();
    o.handler_threads = 2;
    net_ = new cvqkd::test_support::kme_network(o);
  }
  static void TearDownTestSuite() {
    delete net_;
    delete dir_;
  }
  static api::key_request req(std::string master, std::string slave, std::size_t n = 1, std::size_t size = 256) {
    return api::key_request{std::move(master), std::move(slave), n, size, {}, {}, false};
  }
  static std::vector<std::string> ids_of(const api::key_container& c) {
    std::vector<std::string> out;
    for (const auto& k : c.keys) out.push_back(k.key_id);
    return out;
  }
  static inline cvqkd::test_support::temp_dir* dir_ = nullptr;
  static inline cvqkd::test_support::kme_network* net_ = nullptr;
};

TEST_F(TwoKmes, EncAtMasterKmeDecAtSlaveKmeGiveTheSameKeys) {
  auto& a = *net_->a.service;
  auto& b = *net_->b.service;
  auto enc = a.enc_keys(req("sae_a1", "sae_b1", 3, 512));
  ASSERT_TRUE(enc) << enc.error().message;
  ASSERT_EQ(enc->keys.size(), 3u);
  // No tentative keys: the slave's KME holds every key before its ID is returned.
  for (const auto& k : enc->keys) {
    auto id = cvqkd::storage::key_id::parse(k.key_id);
    ASSERT_TRUE(id);
    auto info = net_->b.store->info(*id);
    ASSERT_TRUE(info && info->has_value());
    EXPECT_EQ((*info)->pending_slaves, std::vector<std::string>{"sae_b1"});
    EXPECT_EQ(k.material.size(), 64u);
  }
  const auto ids = ids_of(*enc);
  EXPECT_EQ(b.dec_keys("sae_b2", "sae_a1", ids).error().status, api::http_status::unauthorized);  // a third SAE
  auto dec = b.dec_keys("sae_b1", "sae_a1", ids);
  ASSERT_TRUE(dec) << dec.error().message;
  ASSERT_EQ(dec->keys.size(), 3u);
  for (std::size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(dec->keys[i].key_id, ids[i]);
    EXPECT_TRUE(cvqkd::constant_time_equal(dec->keys[i].material.bytes(), enc->keys[i].material.bytes()));
  }
  auto again = b.dec_keys("sae_b1", "sae_a1", ids);
  ASSERT_FALSE(again);
  expect_refusal(again.error(), api::http_status::bad_request, "one or more keys specified are not found on KME");
  // The master's KME does not serve the slave (the slave is elsewhere), and sae_b1 is not its SAE.
  EXPECT_EQ(a.dec_keys("sae_b1", "sae_a1", ids).error().status, api::http_status::unauthorized);
}

TEST_F(TwoKmes, StatusNamesBothKmesAndTheLimits) {
  auto s = net_->a.service->status("sae_a1", "sae_b1");
  ASSERT_TRUE(s);
  EXPECT_EQ(s->source_kme_id, "KME_A");
  EXPECT_EQ(s->target_kme_id, "KME_B");
  EXPECT_EQ(s->master_sae_id, "sae_a1");
  EXPECT_EQ(s->key_size, 256u);
  EXPECT_EQ(s->max_key_per_request, 128u);
  EXPECT_EQ(net_->a.service->status("sae_b1", "sae_a1").error().status, api::http_status::unauthorized);  // not A's SAE
  EXPECT_EQ(net_->a.service->status("sae_a1", "nobody").error().status, api::http_status::bad_request);
}

TEST_F(TwoKmes, Refusals) {
  auto& a = *net_->a.service;
  EXPECT_EQ(a.enc_keys(req("sae_b1", "sae_a1")).error().status, api::http_status::unauthorized);
  auto unknown = a.enc_keys(req("sae_a1", "nobody"));
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.error().status, api::http_status::bad_request);
  EXPECT_EQ(unknown.error().message, "unknown SAE: nobody is not served by any KME of this network");
  auto no_route = a.enc_keys(req("sae_a1", "sae_z"));
  ASSERT_FALSE(no_route);
  EXPECT_EQ(no_route.error().status, api::http_status::service_unavailable);
  EXPECT_TRUE(no_route.error().message.starts_with("not enough key material: no route from KME_A to KME_Z")) << no_route.error().message;
  auto r = req("sae_a1", "sae_b1");
  r.route = api::route_type::multipath;
  r.route_mandatory = true;
  expect_refusal(a.enc_keys(r).error(), api::http_status::bad_request, "not all extension_mandatory request options could be met");
  r.route_mandatory = false;  // optional: served over the path there is
  EXPECT_TRUE(a.enc_keys(r));
  EXPECT_EQ(a.enc_keys(req("sae_a1", "sae_b1", 1, 260)).error().message, "size shall be a multiple of 8");
}

TEST_F(TwoKmes, MulticastAndLocalSlaves) {
  auto& a = *net_->a.service;
  auto r = req("sae_a1", "sae_b1", 2);
  r.additional_slaves = {"sae_b2", "sae_a2"};
  auto enc = a.enc_keys(r);
  ASSERT_TRUE(enc) << enc.error().message;
  const auto ids = ids_of(*enc);
  for (const char* slave : {"sae_b1", "sae_b2"}) {
    auto d = net_->b.service->dec_keys(slave, "sae_a1", ids);
    ASSERT_TRUE(d) << slave << ": " << d.error().message;
    EXPECT_TRUE(cvqkd::constant_time_equal(d->keys[1].material.bytes(), enc->keys[1].material.bytes()));
  }
  auto local = a.dec_keys("sae_a2", "sae_a1", ids);  // the additional slave on the master's own KME
  ASSERT_TRUE(local) << local.error().message;
  EXPECT_TRUE(cvqkd::constant_time_equal(local->keys[0].material.bytes(), enc->keys[0].material.bytes()));
  // sae_b2 at KME_A: not A's SAE.
  EXPECT_EQ(a.dec_keys("sae_b2", "sae_a1", ids).error().status, api::http_status::unauthorized);
}

TEST_F(TwoKmes, StockIsSharedByConcurrentRequestsWithoutReuse) {
  auto& a = *net_->a.service;
  auto stock = net_->a.provider->provide({"sae_a1", {"sae_b2"}, 40, 256, std::nullopt, false});
  ASSERT_TRUE(stock) << stock.error().message;
  EXPECT_EQ(a.status("sae_a1", "sae_b2")->stored_key_count, 40u);
  // Stock is unicast keys of the default size: another size must not take it.
  auto other = a.enc_keys(req("sae_a1", "sae_b2", 1, 512));
  ASSERT_FALSE(other);
  EXPECT_EQ(other.error().status, api::http_status::service_unavailable);
  EXPECT_TRUE(other.error().message.starts_with("40 pre-provisioned keys of 256 bits")) << other.error().message;
  // 8 threads x 5 requests share the 40 keys (batched deliveries): each exactly once.
  std::mutex m;
  std::vector<std::string> got;
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < 5; ++i) {
        auto k = a.enc_keys(req("sae_a1", "sae_b2"));
        std::lock_guard lock(m);
        if (!k) got.push_back("error: " + k.error().message);
        else got.push_back(k->keys.at(0).key_id);
      }
    });
  for (auto& t : threads) t.join();
  std::set<std::string> expected;
  for (const auto& id : *stock) expected.insert(id.to_string());
  EXPECT_EQ(std::set<std::string>(got.begin(), got.end()), expected);
  EXPECT_EQ(got.size(), 40u);
  EXPECT_EQ(a.status("sae_a1", "sae_b2")->stored_key_count, 0u);
}

// --- HTTPS --------------------------------------------------------------------------------

struct tls_client {
  std::string cert, key, ca;
  int min_version = TLS1_2_VERSION;
  int max_version = TLS1_3_VERSION;
};

struct http_reply {
  bool ok = false;
  std::string failure;  // where it failed: "handshake", "write", "read"
  int status = 0;
  std::string headers, body;
};

// Sends `requests` one after the other on one TLS connection; a failure ends the exchange.
std::vector<http_reply> exchange(std::uint16_t port, const tls_client& c, const std::vector<std::string>& requests) {
  std::vector<http_reply> out;
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  SSL_CTX_set_min_proto_version(ctx, c.min_version);
  SSL_CTX_set_max_proto_version(ctx, c.max_version);
  SSL_CTX_load_verify_locations(ctx, c.ca.c_str(), nullptr);
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
  if (!c.cert.empty()) {
    SSL_CTX_use_certificate_file(ctx, c.cert.c_str(), SSL_FILETYPE_PEM);
    SSL_CTX_use_PrivateKey_file(ctx, c.key.c_str(), SSL_FILETYPE_PEM);
  }
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  timeval tv{10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  SSL* ssl = SSL_new(ctx);
  auto finish = [&](std::string failure) {
    if (!failure.empty()) {
      http_reply r;
      r.failure = std::move(failure);
      out.push_back(std::move(r));
    }
    SSL_free(ssl);
    ::close(fd);
    SSL_CTX_free(ctx);
    ERR_clear_error();
    return out;
  };
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) return finish("connect");
  SSL_set_fd(ssl, fd);
  SSL_set1_host(ssl, "127.0.0.1");
  if (SSL_connect(ssl) != 1) return finish("handshake");
  std::string buf;
  for (const auto& req : requests) {
    if (SSL_write(ssl, req.data(), static_cast<int>(req.size())) <= 0) return finish("write");
    http_reply r;
    std::size_t header_end;
    char chunk[4096];
    while ((header_end = buf.find("\r\n\r\n")) == std::string::npos) {
      const int n = SSL_read(ssl, chunk, sizeof chunk);
      if (n <= 0) return finish("read");
      buf.append(chunk, static_cast<std::size_t>(n));
    }
    r.headers = buf.substr(0, header_end);
    r.status = std::stoi(r.headers.substr(9, 3));
    std::size_t length = 0;
    if (auto p = r.headers.find("Content-Length: "); p != std::string::npos) length = std::stoul(r.headers.substr(p + 16));
    while (buf.size() < header_end + 4 + length) {
      const int n = SSL_read(ssl, chunk, sizeof chunk);
      if (n <= 0) return finish("read");
      buf.append(chunk, static_cast<std::size_t>(n));
    }
    r.body = buf.substr(header_end + 4, length);
    buf.erase(0, header_end + 4 + length);
    r.ok = true;
    out.push_back(std::move(r));
  }
  return finish("");
}

std::string get(const std::string& target) { return "GET " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"; }
std::string post(const std::string& target, const std::string& body) {
  return "POST " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: " +
         std::to_string(body.size()) + "\r\n\r\n" + body;
}

TEST_F(TwoKmes, HttpsRoundTripWithKeepAlive) {
  const auto& c = net_->clients;
  tls_client a1{c.at("sae_a1").cert.string(), c.at("sae_a1").key.string(), net_->ca_cert.string()};
  auto replies = exchange(net_->a.server->port(), a1,
                          {get("/api/v1/keys/sae_b1/status"), post("/api/v1/keys/sae_b1/enc_keys", R"({"number": 2})"),
                           get("/api/v1/keys/sae_b1/enc_keys?number=1&size=64")});
  ASSERT_EQ(replies.size(), 3u);
  for (const auto& r : replies) ASSERT_TRUE(r.ok) << r.failure;
  EXPECT_EQ(replies[0].status, 200);
  EXPECT_EQ(json::parse(replies[0].body).at("target_KME_ID"), "KME_B");
  EXPECT_EQ(replies[1].status, 200) << replies[1].body;
  const auto keys = json::parse(replies[1].body).at("keys");
  ASSERT_EQ(keys.size(), 2u);
  EXPECT_EQ(keys[0].at("key").get<std::string>().size(), 44u);  // 256 bits in base64
  EXPECT_EQ(json::parse(replies[2].body).at("keys")[0].at("key").get<std::string>().size(), 12u);

  tls_client b1{c.at("sae_b1").cert.string(), c.at("sae_b1").key.string(), net_->ca_cert.string()};
  const std::string id = keys[0].at("key_ID");
  auto dec = exchange(net_->b.server->port(), b1,
                      {get("/api/v1/keys/sae_a1/dec_keys?key_ID=" + id), get("/api/v1/keys/sae_a1/dec_keys?key_ID=" + id)});
  ASSERT_EQ(dec.size(), 2u);
  ASSERT_TRUE(dec[0].ok && dec[1].ok);
  EXPECT_EQ(dec[0].status, 200);
  EXPECT_EQ(json::parse(dec[0].body).at("keys")[0].at("key"), keys[0].at("key"));
  EXPECT_EQ(dec[1].status, 400);
  EXPECT_EQ(json::parse(dec[1].body).at("message"), "one or more keys specified are not found on KME");
}

TEST_F(TwoKmes, HttpsRefusesBadClients) {
  const auto& c = net_->clients;
  const auto port = net_->a.server->port();
  const std::string ca = net_->ca_cert.string();
  const auto status_req = std::vector<std::string>{get("/api/v1/keys/sae_b1/status")};
  // TLS 1.3 without a client certificate: the client's handshake completes; the request fails.
  auto none13 = exchange(port, {"", "", ca, TLS1_3_VERSION, TLS1_3_VERSION}, status_req);
  ASSERT_EQ(none13.size(), 1u);
  EXPECT_FALSE(none13[0].ok);
  EXPECT_EQ(none13[0].failure, "read");
  auto none12 = exchange(port, {"", "", ca, TLS1_2_VERSION, TLS1_2_VERSION}, status_req);
  ASSERT_EQ(none12.size(), 1u);
  EXPECT_EQ(none12[0].failure, "handshake");
  auto foreign = exchange(port, {c.at("foreign_sae_a1").cert.string(), c.at("foreign_sae_a1").key.string(), ca}, status_req);
  ASSERT_EQ(foreign.size(), 1u);
  EXPECT_FALSE(foreign[0].ok);
  // A valid certificate with another role, and an SAE unknown to this KME: 401 without a body.
  for (const char* who : {"op1", "sae_x", "sae_b1"}) {
    auto r = exchange(port, {c.at(who).cert.string(), c.at(who).key.string(), ca}, status_req);
    ASSERT_EQ(r.size(), 1u);
    ASSERT_TRUE(r[0].ok) << who << " " << r[0].failure;
    EXPECT_EQ(r[0].status, 401) << who;
    EXPECT_TRUE(r[0].body.empty());
  }
  // Unknown route (for an SAE): 404 JSON.
  auto nf = exchange(port, {c.at("sae_a1").cert.string(), c.at("sae_a1").key.string(), ca}, {get("/api/v2/nothing")});
  ASSERT_TRUE(nf.at(0).ok);
  EXPECT_EQ(nf[0].status, 404);
}

// Found by tests/fuzz/etsi_request_fuzzer: targets with bytes that are not UTF-8 are answered
// (404, 400) and the server keeps serving (the 404 used to terminate the process).
TEST_F(TwoKmes, HttpsAnswersNonUtf8Targets) {
  const auto& c = net_->clients;
  tls_client a1{c.at("sae_a1").cert.string(), c.at("sae_a1").key.string(), net_->ca_cert.string()};
  auto replies = exchange(net_->a.server->port(), a1,
                          {get("/api/v1/\xff\xfe"), get("/api/v1/keys/sae_b1/dec_keys?key_ID=%FF"),
                           get("/api/v1/keys/sae_b1/status")});
  ASSERT_EQ(replies.size(), 3u);
  for (const auto& r : replies) ASSERT_TRUE(r.ok) << r.failure;
  EXPECT_EQ(replies[0].status, 404) << replies[0].body;
  EXPECT_EQ(replies[1].status, 400) << replies[1].body;
  EXPECT_EQ(json::parse(replies[1].body).at("message"), "one or more keys specified are not found on KME");
  EXPECT_EQ(replies[2].status, 200);
}

TEST(HttpsServer, ExtraRoutesAndGracefulStop) {
  cvqkd::test_support::temp_dir dir;
  cvqkd::test_support::test_ca ca(dir.path(), "ca", "ca");
  const auto node = ca.issue_node(dir.path() / "n", "KME_T");
  const auto op = ca.issue_client(dir.path() / "c", "op1", "cvqkd-operator");
  auto routes = std::make_shared<api::router>();
  std::atomic<int> started{0};
  ASSERT_TRUE(routes->add("GET", "/admin/slow", "cvqkd-operator", [&](const api::http_request&) {
    ++started;
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    return api::http_response{200, "text/plain", "done", false, {}};
  }));
  api::server_options o;
  o.tls = {node.cert, node.key, ca.cert_file()};
  o.handler_threads = 1;
  auto srv = api::https_server::start(o, routes);
  ASSERT_TRUE(srv) << srv.error().message;
  const auto port = (*srv)->port();
  std::vector<http_reply> reply;
  std::thread client([&] { reply = exchange(port, {op.cert.string(), op.key.string(), ca.cert_file().string()}, {get("/admin/slow")}); });
  while (started.load() == 0) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  (*srv)->stop();  // the request in progress is still answered
  client.join();
  ASSERT_EQ(reply.size(), 1u);
  ASSERT_TRUE(reply[0].ok) << reply[0].failure;
  EXPECT_EQ(reply[0].body, "done");
  EXPECT_NE(reply[0].headers.find("Connection: close"), std::string::npos) << reply[0].headers;
  auto after = exchange(port, {op.cert.string(), op.key.string(), ca.cert_file().string()}, {get("/admin/slow")});
  ASSERT_EQ(after.size(), 1u);
  EXPECT_FALSE(after[0].ok);  // no longer listening

  // Bad TLS material is a config_error naming the file.
  o.tls.private_key = dir.path() / "missing.key";
  auto bad = api::https_server::start(o, routes);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, cvqkd::errc::config_error);
}

}  // namespace
