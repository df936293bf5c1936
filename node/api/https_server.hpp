#pragma once
// A small HTTPS server for the node's APIs (ETSI GS QKD 014 key delivery, and later the admin API
// and /metrics): Boost.Beast over Asio SSL (OpenSSL 3), TLS 1.2 and 1.3 only, mutual TLS against
// one CA file, HTTP/1.1 keep-alive, a router from (method, path pattern) to handlers, handlers run
// on a bounded thread pool (never on the I/O threads), graceful stop.
//
// Client identity: the subject CN of the verified client certificate; role: its subject OU
// (cvqkd-sae for the ETSI API, cvqkd-operator for the admin API). A route names the role it
// requires; a client with another role gets 401 without a body.
//
// Beast and Asio stay in https_server.cpp: including this header is cheap.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/error.hpp"

namespace cvqkd::api {

/// Who is calling, from the verified client certificate.
struct peer_identity {
  std::string common_name;          // identity (the SAE ID for cvqkd-sae clients)
  std::string organizational_unit;  // role; empty when the certificate has none or several
};

inline constexpr std::string_view role_sae = "cvqkd-sae";
inline constexpr std::string_view role_operator = "cvqkd-operator";

struct http_request {
  std::string method;  // "GET", "POST", ... as sent
  std::string path;    // the target without the query, not decoded
  std::vector<std::pair<std::string, std::string>> query;   // percent-decoded, in order ('+' is kept)
  std::vector<std::pair<std::string, std::string>> params;  // the pattern's {name} segments, decoded
  std::string content_type;
  std::string body;
  peer_identity peer;

  /// The value of path parameter `name`; empty if the pattern has none.
  std::string_view param(std::string_view name) const;
};

/// Splits a query string (without the '?') at '&' into name=value pairs, percent-decoded (RFC 3986
/// 2.1; a malformed escape is kept literally, '+' is kept), in order; empty parts are skipped and a
/// part without '=' has an empty value. What the server hands its handlers as http_request::query.
std::vector<std::pair<std::string, std::string>> parse_query(std::string_view query);

struct http_response {
  unsigned status = 200;
  std::string content_type = "application/json";
  std::string body;
  /// The body holds key material: the server cleanses it (OPENSSL_cleanse) once it is sent.
  bool sensitive = false;
  std::vector<std::pair<std::string, std::string>> headers;
};

using http_handler = std::function<http_response(const http_request&)>;

/// Error body {"message": ...} (the ETSI Error shape) with the given status.
http_response json_error(unsigned status, std::string_view message);

/// (method, path pattern) -> handler. Patterns are absolute paths whose segments are literals or
/// `{name}` (matches one non-empty segment). Routes are added before the server starts and are
/// read-only afterwards (dispatch is thread-safe then).
class router {
public:
  /// `role`: the certificate OU the caller must have (empty: any verified client). Errors:
  /// invalid_argument for a pattern that is not absolute, has an empty or malformed segment, or
  /// duplicates an existing (method, pattern).
  expected<void> add(std::string method, std::string pattern, std::string role, http_handler handler);

  /// Matches `r.path`, fills r.params and runs the handler (on the calling thread). No match:
  /// 404; path matched with another method: 405 with Allow; wrong role or no identity: 401
  /// without body. An exception from a handler becomes 503 {"message": ...} (never crashes the
  /// server; handlers should not throw).
  http_response dispatch(http_request& r) const;

private:
  struct route {
    std::string method;
    std::vector<std::string> segments;  // literal, or "{name}"
    std::string role;
    http_handler handler;
  };
  std::vector<route> routes_;
};

struct tls_files {
  std::filesystem::path certificate_chain;  // PEM: the server certificate (and intermediates)
  std::filesystem::path private_key;        // PEM
  std::filesystem::path client_ca;          // PEM: the CA(s) that client certificates must chain to
};

struct server_options {
  std::string address = "127.0.0.1";  // IPv4 or IPv6 literal to bind
  std::uint16_t port = 0;             // 0: an ephemeral port (see https_server::port())
  tls_files tls;
  std::size_t io_threads = 1;          // Asio threads: TLS and HTTP parsing
  std::size_t handler_threads = 4;     // the handler pool (handlers may block on disk or relays)
  std::size_t max_pending = 1024;      // requests queued or running in the pool; beyond: 503 at once
  std::size_t max_connections = 4096;  // beyond: new connections are closed at once
  std::size_t max_body_bytes = 1 << 20;                      // larger bodies: 413, connection closed
  std::chrono::milliseconds handshake_timeout{10'000};
  std::chrono::milliseconds idle_timeout{60'000};            // keep-alive connections idle this long are closed
};

class https_server {
public:
  /// Loads the TLS material, binds, and starts serving `routes` on background threads.
  /// Errors: config_error (unreadable or mismatched certificate/key, unreadable CA file, bad
  /// options), io_error (cannot bind: address in use, permissions).
  static expected<std::unique_ptr<https_server>> start(server_options options, std::shared_ptr<const router> routes);

  ~https_server();  // stop()
  https_server(const https_server&) = delete;
  https_server& operator=(const https_server&) = delete;

  /// The bound port.
  std::uint16_t port() const noexcept;

  /// Graceful stop: stops accepting, answers requests already read (with Connection: close) and
  /// waits up to `grace` for them to be written, then closes every connection and joins the
  /// threads. Idempotent; must not be called from a handler.
  void stop(std::chrono::milliseconds grace = std::chrono::milliseconds{5'000});

  struct impl;

private:
  explicit https_server(std::unique_ptr<impl> p);
  std::unique_ptr<impl> impl_;
};

}  // namespace cvqkd::api
