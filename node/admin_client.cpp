#include "node/admin_client.hpp"

#include <openssl/ssl.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <fmt/format.h>

#include <optional>

namespace cvqkd::node {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;

namespace {

expected<void> load_tls(ssl::context& ctx, const client_tls& tls) {
  ctx.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                  ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
  SSL_CTX_set_min_proto_version(ctx.native_handle(), TLS1_2_VERSION);
  boost::system::error_code ec;
  auto check = [&](const char* what, const std::filesystem::path& p) -> expected<void> {
    if (!ec) return {};
    return fail(errc::config_error, fmt::format("cannot use the {} {}: {}; check the path (a PEM file from the PKI "
                                                "directory, `cvqkd pki show` lists them)",
                                                what, p.string(), ec.message()));
  };
  ctx.load_verify_file(tls.ca.string(), ec);
  if (auto ok = check("CA file", tls.ca); !ok) return ok;
  ctx.use_certificate_chain_file(tls.certificate.string(), ec);
  if (auto ok = check("client certificate", tls.certificate); !ok) return ok;
  ctx.use_private_key_file(tls.key.string(), ssl::context::pem, ec);
  if (auto ok = check("client key", tls.key); !ok) return ok;
  if (SSL_CTX_check_private_key(ctx.native_handle()) != 1)
    return fail(errc::config_error, fmt::format("the key {} does not belong to the certificate {}; use the pair "
                                                "issued together",
                                                tls.key.string(), tls.certificate.string()));
  ctx.set_verify_mode(ssl::verify_peer);
  return {};
}

// One request on its own io_context: resolve, connect, handshake, write, read, each bounded by the
// stream's deadline; the first error ends the chain.
struct exchange {
  asio::io_context io;
  ssl::context ctx{ssl::context::tls_client};
  std::optional<beast::ssl_stream<beast::tcp_stream>> stream;
  beast::flat_buffer buffer;
  http::request<http::string_body> req;
  http::response_parser<http::string_body> parser;
  std::string stage = "connect";
  std::optional<beast::error_code> result;

  void done(beast::error_code ec) {
    if (!result) result = ec;
  }
};

}  // namespace

expected<https_reply> https_get(const std::string& host, std::uint16_t port, const client_tls& tls,
                                std::string_view path, std::chrono::milliseconds timeout) {
  return https_request(host, port, tls, "GET", path, {}, timeout);
}

expected<https_reply> https_request(const std::string& host, std::uint16_t port, const client_tls& tls,
                                    std::string_view method, std::string_view path, std::string_view json_body,
                                    std::chrono::milliseconds timeout) {
  exchange x;
  if (auto ok = load_tls(x.ctx, tls); !ok) return std::unexpected(ok.error());
  x.ctx.set_verify_callback(ssl::host_name_verification(host));
  x.stream.emplace(x.io, x.ctx);
  boost::system::error_code ec;
  asio::ip::make_address(host, ec);
  if (ec && SSL_set_tlsext_host_name(x.stream->native_handle(), host.c_str()) != 1)
    return fail(errc::invalid_argument, fmt::format("'{}' is not a usable host name; give an IP address or a DNS name", host));

  tcp::resolver resolver(x.io);
  auto endpoints = resolver.resolve(host, std::to_string(port), ec);
  if (ec)
    return fail(errc::io_error, fmt::format("cannot resolve {}: {}; check the host name", host, ec.message()));

  x.req.method(method == "POST" ? http::verb::post : http::verb::get);
  if (method == "POST") {
    x.req.set(http::field::content_type, "application/json");
    x.req.body() = std::string(json_body);
    x.req.prepare_payload();
  }
  x.req.target(beast::string_view(path.data(), path.size()));
  x.req.version(11);
  x.req.set(http::field::host, host);
  x.req.set(http::field::user_agent, "cvqkd");
  x.req.set(http::field::connection, "close");
  x.parser.body_limit(64 * 1024 * 1024);

  auto& lowest = beast::get_lowest_layer(*x.stream);
  lowest.expires_after(timeout);
  lowest.async_connect(endpoints, [&x](beast::error_code e, const tcp::endpoint&) {
    if (e) return x.done(e);
    x.stage = "TLS handshake";
    x.stream->async_handshake(ssl::stream_base::client, [&x](beast::error_code e) {
      if (e) return x.done(e);
      x.stage = "request";
      http::async_write(*x.stream, x.req, [&x](beast::error_code e, std::size_t) {
        if (e) return x.done(e);
        x.stage = "response";
        http::async_read(*x.stream, x.buffer, x.parser, [&x](beast::error_code e, std::size_t) { x.done(e); });
      });
    });
  });
  // The stream's deadline ends every operation; run_for is a second guard.
  x.io.run_for(timeout + std::chrono::seconds(1));
  if (!x.io.stopped()) {
    lowest.close();
    x.io.restart();
    x.io.run();
  }
  const std::string where = fmt::format("https://{}:{}{}", host, port, path);
  if (!x.result || *x.result == beast::error::timeout)
    return fail(errc::io_error, fmt::format("{}: no answer within {} ms ({}); is the node running and is this its "
                                            "api_listen address?",
                                            where, timeout.count(), x.stage));
  if (*x.result) {
    std::string hint = "is the node running and is this its api_listen address?";
    if (x.stage == "TLS handshake")
      hint = "the server's certificate must come from the CA " + tls.ca.string() + " and name " + host;
    else if (x.stage == "response")
      hint = "the node closed the connection: it may refuse this client's certificate (use one issued by the node's CA)";
    return fail(errc::io_error, fmt::format("{}: {} failed: {}; {}", where, x.stage, x.result->message(), hint));
  }
  // A closed connection after the response is normal (Connection: close); no TLS shutdown needed.
  auto& res = x.parser.get();
  https_reply out;
  out.status = res.result_int();
  if (auto ct = res.find(http::field::content_type); ct != res.end()) out.content_type = std::string(ct->value());
  out.body = std::move(res.body());
  return out;
}

expected<nlohmann::json> admin_get(const std::string& host, std::uint16_t port, const std::filesystem::path& ca,
                                   const std::filesystem::path& cert, const std::filesystem::path& key,
                                   std::string_view path, std::chrono::milliseconds timeout) {
  auto r = https_get(host, port, {ca, cert, key}, path, timeout);
  if (!r) return std::unexpected(r.error());
  const std::string where = fmt::format("https://{}:{}{}", host, port, path);
  if (r->status == 401)
    return fail(errc::io_error, fmt::format("{}: 401 unauthorized: the certificate {} may not use it; use an operator "
                                            "certificate (<pki>/operators/<NAME>) or the node's own",
                                            where, cert.string()));
  if (r->status != 200) {
    std::string message = r->body;
    auto j = nlohmann::json::parse(r->body, nullptr, false);
    if (j.is_object() && j.contains("message") && j["message"].is_string()) message = j["message"].get<std::string>();
    return fail(errc::io_error, fmt::format("{}: the node answered {}: {}", where, r->status, message));
  }
  auto j = nlohmann::json::parse(r->body, nullptr, false);
  if (j.is_discarded())
    return fail(errc::parse_error, fmt::format("{}: the answer is not JSON; is this a cvqkd node's api_listen?", where));
  return j;
}

expected<nlohmann::json> fetch_status_https(const config::node_config& c, std::chrono::milliseconds timeout) {
  if (!c.api_listen)
    return fail(errc::config_error, fmt::format("{}: node.api_listen is not set, so the node serves no status; add "
                                                "api_listen = \"127.0.0.1:PORT\" to [node] and restart the node",
                                                c.source.string()));
  return admin_get(c.api_listen->host, c.api_listen->port, c.ca, c.certificate, c.key, "/admin/status", timeout);
}

}  // namespace cvqkd::node
