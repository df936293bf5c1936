#pragma once
// The client side of the node's admin HTTPS API (node/services.hpp): one GET over mutual TLS
// (TLS 1.2 or 1.3, the server verified against the CA file and its certificate's name or IP
// checked against `host`), with an overall deadline. Used by `cvqkd ctl` and `cvqkd node status`.
// Boost.Beast stays in admin_client.cpp.

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "config/node_config.hpp"
#include "core/error.hpp"

namespace cvqkd::node {

struct client_tls {
  std::filesystem::path ca;           // PEM: the CA the server's certificate must chain to
  std::filesystem::path certificate;  // PEM: this client's certificate (its OU is its role)
  std::filesystem::path key;          // PEM: its private key
};

struct https_reply {
  unsigned status = 0;
  std::string content_type;
  std::string body;
};

/// GET https://host:port<path> (path with its query, e.g. "/admin/status"). Returns any HTTP
/// answer. Errors: config_error (unreadable or mismatched certificate, key or CA file),
/// io_error (cannot resolve or connect, TLS handshake refused — e.g. the server's certificate is
/// not from `tls.ca` or does not name `host` —, connection closed, or nothing within `timeout`).
expected<https_reply> https_get(const std::string& host, std::uint16_t port, const client_tls& tls,
                                std::string_view path, std::chrono::milliseconds timeout);

/// As https_get with `method` "GET" or "POST" (then `json_body` is sent as application/json).
expected<https_reply> https_request(const std::string& host, std::uint16_t port, const client_tls& tls,
                                    std::string_view method, std::string_view path, std::string_view json_body,
                                    std::chrono::milliseconds timeout);

/// https_get of a JSON resource: a 200 answer's body parsed. Errors: as https_get; io_error for
/// 401 (the certificate's role may not use `path`: use an operator or node certificate) and for
/// any other status (with the server's message); parse_error when the body is not JSON.
expected<nlohmann::json> admin_get(const std::string& host, std::uint16_t port, const std::filesystem::path& ca,
                                   const std::filesystem::path& cert, const std::filesystem::path& key,
                                   std::string_view path, std::chrono::milliseconds timeout);

/// The status JSON (services.hpp to_json) of the node of `config`, fetched from its api_listen
/// with the node's own certificate ([pki] certificate, key, ca). Errors: config_error when
/// node.api_listen is not set; otherwise as admin_get (io_error: is the node running?).
expected<nlohmann::json> fetch_status_https(const config::node_config& config,
                                            std::chrono::milliseconds timeout = std::chrono::milliseconds(10'000));

}  // namespace cvqkd::node
