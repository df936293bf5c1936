#include "node/api/https_server.hpp"

#include <openssl/crypto.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <atomic>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <condition_variable>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

namespace cvqkd::api {

namespace net = boost::asio;
namespace ssl = boost::asio::ssl;
namespace beast = boost::beast;
namespace http = boost::beast::http;
using tcp = boost::asio::ip::tcp;

// ---------------------------------------------------------------------------------------------
// Router

namespace {

std::vector<std::string> split_path(std::string_view path) {
  std::vector<std::string> out;
  std::size_t i = 1;
  while (i <= path.size()) {
    const auto j = path.find('/', i);
    const auto end = j == std::string_view::npos ? path.size() : j;
    out.emplace_back(path.substr(i, end - i));
    i = end + 1;
  }
  return out;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Percent-decoding (RFC 3986 2.1); a malformed escape is kept literally.
std::string percent_decode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && hex_value(s[i + 1]) >= 0 && hex_value(s[i + 2]) >= 0) {
      out.push_back(static_cast<char>(hex_value(s[i + 1]) * 16 + hex_value(s[i + 2])));
      i += 2;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

bool is_param(const std::string& seg) { return seg.size() > 2 && seg.front() == '{' && seg.back() == '}'; }

}  // namespace

std::vector<std::pair<std::string, std::string>> parse_query(std::string_view rest) {
  std::vector<std::pair<std::string, std::string>> out;
  while (!rest.empty()) {
    const auto amp = rest.find('&');
    const auto part = rest.substr(0, amp);
    if (!part.empty()) {
      const auto eq = part.find('=');
      out.emplace_back(percent_decode(part.substr(0, eq)),
                       eq == std::string_view::npos ? std::string{} : percent_decode(part.substr(eq + 1)));
    }
    rest = amp == std::string_view::npos ? std::string_view{} : rest.substr(amp + 1);
  }
  return out;
}

std::string_view http_request::param(std::string_view name) const {
  for (const auto& [k, v] : params)
    if (k == name) return v;
  return {};
}

http_response json_error(unsigned status, std::string_view message) {
  http_response r;
  r.status = status;
  // The message may echo the raw request path, whose bytes need not be UTF-8 (Beast accepts any
  // byte >= 0x80): replace invalid sequences rather than throw out of dispatch (that terminated the server).
  r.body = nlohmann::json{{"message", message}}.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  return r;
}

expected<void> router::add(std::string method, std::string pattern, std::string role, http_handler handler) {
  if (pattern.empty() || pattern.front() != '/')
    return fail(errc::invalid_argument, "route pattern '" + pattern + "' must start with '/'");
  auto segs = split_path(pattern);
  for (const auto& s : segs) {
    if (s.empty()) return fail(errc::invalid_argument, "route pattern '" + pattern + "' has an empty segment");
    if ((s.find('{') != std::string::npos || s.find('}') != std::string::npos) && !is_param(s))
      return fail(errc::invalid_argument, "route pattern '" + pattern + "': a parameter segment must be exactly {name}");
  }
  for (const auto& r : routes_)
    if (r.method == method && r.segments == segs)
      return fail(errc::invalid_argument, "route " + method + " " + pattern + " is already registered");
  if (!handler) return fail(errc::invalid_argument, "route " + method + " " + pattern + " has no handler");
  routes_.push_back({std::move(method), std::move(segs), std::move(role), std::move(handler)});
  return {};
}

http_response router::dispatch(http_request& r) const {
  const auto segs = (r.path.empty() || r.path.front() != '/') ? std::vector<std::string>{} : split_path(r.path);
  std::string allow;
  for (const auto& route : routes_) {
    if (route.segments.size() != segs.size()) continue;
    std::vector<std::pair<std::string, std::string>> params;
    bool match = true;
    for (std::size_t i = 0; i < segs.size() && match; ++i) {
      if (is_param(route.segments[i])) {
        if (segs[i].empty()) match = false;
        else params.emplace_back(route.segments[i].substr(1, route.segments[i].size() - 2), percent_decode(segs[i]));
      } else {
        match = route.segments[i] == segs[i];
      }
    }
    if (!match) continue;
    if (route.method != r.method) {
      allow += (allow.empty() ? "" : ", ") + route.method;
      continue;
    }
    if (r.peer.common_name.empty() || (!route.role.empty() && r.peer.organizational_unit != route.role)) {
      http_response u;
      u.status = 401;
      u.content_type.clear();
      return u;
    }
    r.params = std::move(params);
    try {
      return route.handler(r);
    } catch (const std::exception& e) {
      return json_error(503, std::string("internal error while handling the request: ") + e.what() + "; retry later");
    } catch (...) {
      return json_error(503, "internal error while handling the request; retry later");
    }
  }
  if (!allow.empty()) {
    auto res = json_error(405, "method " + r.method + " is not allowed on " + r.path + "; use " + allow);
    res.headers.emplace_back("Allow", allow);
    return res;
  }
  return json_error(404, "no such resource: " + r.path);
}

// ---------------------------------------------------------------------------------------------
// Server

namespace {

// The single subject entry `nid` as UTF-8; empty when absent or repeated (ambiguous identity).
std::string subject_entry(X509_NAME* name, int nid) {
  const int i = X509_NAME_get_index_by_NID(name, nid, -1);
  if (i < 0 || X509_NAME_get_index_by_NID(name, nid, i) >= 0) return {};
  unsigned char* utf8 = nullptr;
  const int n = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i)));
  if (n < 0) return {};
  std::string out(reinterpret_cast<char*>(utf8), static_cast<std::size_t>(n));
  OPENSSL_free(utf8);
  if (out.find('\0') != std::string::npos) return {};
  return out;
}

peer_identity identity_of(SSL* ssl) {
  peer_identity id;
  if (SSL_get_verify_result(ssl) != X509_V_OK) return id;
  X509* cert = SSL_get0_peer_certificate(ssl);
  if (cert == nullptr) return id;
  X509_NAME* subject = X509_get_subject_name(cert);
  id.common_name = subject_entry(subject, NID_commonName);
  id.organizational_unit = subject_entry(subject, NID_organizationalUnitName);
  return id;
}

class session;

}  // namespace

struct https_server::impl {
  // Declaration order matters: sessions still queued in the io_context are destroyed with it and
  // touch `connections` and `ctx`, so those are declared (and outlive it) first.
  server_options opt;
  std::shared_ptr<const router> routes;
  std::atomic<bool> stopping{false};
  std::atomic<std::size_t> pending{0};  // requests dispatched whose response is not yet written
  std::atomic<std::size_t> connections{0};
  std::mutex stop_mutex;
  std::condition_variable idle;
  bool stopped = false;
  std::uint16_t port = 0;
  ssl::context ctx{ssl::context::tls_server};
  net::io_context ioc;
  tcp::acceptor acceptor{ioc};
  // Keeps ioc.run() going while a request is in the handler pool and nothing else is pending
  // (e.g. during stop(), after the acceptor closed): its response must still be written.
  net::executor_work_guard<net::io_context::executor_type> work{ioc.get_executor()};
  net::thread_pool pool;
  std::vector<std::thread> io_threads;

  explicit impl(std::size_t handler_threads) : pool(handler_threads) {}
  void accept();
  void request_done() {
    if (pending.fetch_sub(1) == 1) {
      std::lock_guard lock(stop_mutex);
      idle.notify_all();
    }
  }
};

namespace {

class session : public std::enable_shared_from_this<session> {
public:
  session(tcp::socket&& socket, https_server::impl& srv) : stream_(std::move(socket), srv.ctx), srv_(srv) {
    ++srv_.connections;
  }
  ~session() { --srv_.connections; }

  void run() {
    net::dispatch(stream_.get_executor(), [self = shared_from_this()] {
      beast::get_lowest_layer(self->stream_).expires_after(self->srv_.opt.handshake_timeout);
      self->stream_.async_handshake(ssl::stream_base::server,
                                    [self](beast::error_code ec) { self->on_handshake(ec); });
    });
  }

private:
  void on_handshake(beast::error_code ec) {
    // A client without an acceptable certificate fails here (TLS 1.2: during the handshake;
    // TLS 1.3: the client thinks it is done and sees the alert at its first read).
    if (ec) return;
    peer_ = identity_of(stream_.native_handle());
    do_read();
  }

  void do_read() {
    parser_.emplace();
    parser_->body_limit(srv_.opt.max_body_bytes);
    beast::get_lowest_layer(stream_).expires_after(srv_.opt.idle_timeout);
    http::async_read(stream_, buffer_, *parser_,
                     [self = shared_from_this()](beast::error_code ec, std::size_t) { self->on_read(ec); });
  }

  void on_read(beast::error_code ec) {
    if (ec == http::error::end_of_stream) return do_close();
    if (ec == http::error::body_limit) return send_local(json_error(413, "request body too large; at most " +
                                                                          std::to_string(srv_.opt.max_body_bytes) + " bytes"));
    if (ec.category() == http::make_error_code(http::error::bad_target).category())
      return send_local(json_error(400, "malformed HTTP request: " + ec.message()));
    if (ec) return;  // timeout, reset, TLS failure: drop the connection
    auto& req = parser_->get();
    keep_alive_ = req.keep_alive() && !srv_.stopping;
    version_ = req.version();
    if (srv_.stopping) return send_local(json_error(503, "the server is shutting down; retry on another KME or later"));
    if (srv_.pending.fetch_add(1) >= srv_.opt.max_pending) {
      srv_.request_done();
      return send_local(json_error(503, "too many requests in progress; retry later"));
    }
    http_request r;
    r.method = std::string(req.method_string());
    const std::string_view target(req.target().data(), req.target().size());
    const auto q = target.find('?');
    r.path = std::string(target.substr(0, q));
    if (q != std::string_view::npos) r.query = parse_query(target.substr(q + 1));
    if (auto ct = req.find(http::field::content_type); ct != req.end()) r.content_type = std::string(ct->value());
    r.body = std::move(req.body());
    r.peer = peer_;
    net::post(srv_.pool, [self = shared_from_this(), r = std::move(r)]() mutable {
      auto res = self->srv_.routes->dispatch(r);
      OPENSSL_cleanse(r.body.data(), r.body.size());
      net::post(self->stream_.get_executor(), [self, res = std::move(res)]() mutable { self->write(std::move(res), true); });
    });
  }

  // A response made by the server itself (not counted in `pending`); the connection closes after it.
  void send_local(http_response res) {
    keep_alive_ = false;
    write(std::move(res), false);
  }

  void write(http_response res, bool counted) {
    res_ = {};
    res_.version(version_ == 10 ? 10 : 11);
    res_.result(res.status);
    res_.set(http::field::server, "cvqkd");
    if (!res.content_type.empty()) res_.set(http::field::content_type, res.content_type);
    for (auto& [k, v] : res.headers) res_.set(k, v);
    if (srv_.stopping) keep_alive_ = false;
    res_.keep_alive(keep_alive_);
    sensitive_ = res.sensitive;
    res_.body() = std::move(res.body);
    if (sensitive_) OPENSSL_cleanse(res.body.data(), res.body.size());
    res_.prepare_payload();
    beast::get_lowest_layer(stream_).expires_after(srv_.opt.idle_timeout);
    http::async_write(stream_, res_, [self = shared_from_this(), counted](beast::error_code ec, std::size_t) {
      self->on_write(ec, counted);
    });
  }

  void on_write(beast::error_code ec, bool counted) {
    if (sensitive_) OPENSSL_cleanse(res_.body().data(), res_.body().size());
    res_.body().clear();
    if (counted) srv_.request_done();
    if (ec) return;
    if (!keep_alive_) return do_close();
    do_read();
  }

  void do_close() {
    beast::get_lowest_layer(stream_).expires_after(std::chrono::seconds(5));
    stream_.async_shutdown([self = shared_from_this()](beast::error_code) {});
  }

  beast::ssl_stream<beast::tcp_stream> stream_;
  https_server::impl& srv_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  http::response<http::string_body> res_;
  peer_identity peer_;
  unsigned version_ = 11;
  bool keep_alive_ = true;
  bool sensitive_ = false;
};

}  // namespace

void https_server::impl::accept() {
  acceptor.async_accept(net::make_strand(ioc), [this](beast::error_code ec, tcp::socket socket) {
    if (ec) {
      if (ec == net::error::operation_aborted || !acceptor.is_open()) return;
      accept();  // e.g. too many open files: keep serving the connections we have
      return;
    }
    if (stopping || connections.load() >= opt.max_connections) {
      beast::error_code ignored;
      socket.close(ignored);
    } else {
      socket.set_option(tcp::no_delay(true), ec);
      std::make_shared<session>(std::move(socket), *this)->run();
    }
    if (!stopping) accept();
  });
}

expected<std::unique_ptr<https_server>> https_server::start(server_options o, std::shared_ptr<const router> routes) {
  if (!routes) return fail(errc::invalid_argument, "https_server: no router given");
  if (o.io_threads == 0 || o.handler_threads == 0 || o.max_pending == 0 || o.max_connections == 0)
    return fail(errc::config_error, "https_server: io_threads, handler_threads, max_pending and max_connections must be >= 1");
  auto p = std::make_unique<impl>(o.handler_threads);
  p->opt = o;
  p->routes = std::move(routes);

  SSL_CTX* ctx = p->ctx.native_handle();
  // TLS 1.2 and 1.3 only; ECDHE with AEAD ciphers for 1.2 (1.3's suites are all AEAD).
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_COMPRESSION);
  if (SSL_CTX_set_cipher_list(ctx, "ECDHE+AESGCM:ECDHE+CHACHA20") != 1)
    return fail(errc::config_error, "https_server: OpenSSL refused the TLS 1.2 cipher list");
  static const unsigned char sid_ctx[] = "cvqkd-api";
  SSL_CTX_set_session_id_context(ctx, sid_ctx, sizeof sid_ctx - 1);
  beast::error_code ec;
  p->ctx.use_certificate_chain_file(o.tls.certificate_chain.string(), ec);
  if (ec)
    return fail(errc::config_error, "https_server: cannot load the certificate chain " + o.tls.certificate_chain.string() +
                                        ": " + ec.message() + "; check the path and that it is PEM");
  p->ctx.use_private_key_file(o.tls.private_key.string(), ssl::context::pem, ec);
  if (ec || SSL_CTX_check_private_key(ctx) != 1)
    return fail(errc::config_error, "https_server: cannot load the private key " + o.tls.private_key.string() +
                                        " or it does not match the certificate; check the PKI directory");
  p->ctx.load_verify_file(o.tls.client_ca.string(), ec);
  if (ec)
    return fail(errc::config_error, "https_server: cannot load the client CA file " + o.tls.client_ca.string() + ": " +
                                        ec.message());
  if (STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(o.tls.client_ca.string().c_str())) SSL_CTX_set_client_CA_list(ctx, names);
  p->ctx.set_verify_mode(ssl::verify_peer | ssl::verify_fail_if_no_peer_cert);

  const auto address = net::ip::make_address(o.address, ec);
  if (ec) return fail(errc::config_error, "https_server: '" + o.address + "' is not an IP address literal");
  const tcp::endpoint ep(address, o.port);
  p->acceptor.open(ep.protocol(), ec);
  if (!ec) p->acceptor.set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) p->acceptor.bind(ep, ec);
  if (!ec) p->acceptor.listen(net::socket_base::max_listen_connections, ec);
  if (ec)
    return fail(errc::io_error, "https_server: cannot listen on " + o.address + ":" + std::to_string(o.port) + ": " +
                                    ec.message() + "; choose a free port or stop the other process");
  p->port = p->acceptor.local_endpoint().port();
  p->accept();
  for (std::size_t i = 0; i < o.io_threads; ++i) p->io_threads.emplace_back([ioc = &p->ioc] { ioc->run(); });
  return std::unique_ptr<https_server>(new https_server(std::move(p)));
}

https_server::https_server(std::unique_ptr<impl> p) : impl_(std::move(p)) {}

https_server::~https_server() { stop(); }

std::uint16_t https_server::port() const noexcept { return impl_->port; }

void https_server::stop(std::chrono::milliseconds grace) {
  auto& s = *impl_;
  {
    std::lock_guard lock(s.stop_mutex);
    if (s.stopped) return;
    s.stopped = true;
  }
  s.stopping = true;
  net::post(s.ioc, [&s] {
    beast::error_code ignored;
    s.acceptor.close(ignored);
  });
  {
    std::unique_lock lock(s.stop_mutex);
    s.idle.wait_for(lock, grace, [&s] { return s.pending.load() == 0; });
  }
  s.pool.join();  // handlers still running (past the grace period) finish; their writes are dropped
  s.work.reset();
  s.ioc.stop();
  for (auto& t : s.io_threads) t.join();
  s.io_threads.clear();
}

}  // namespace cvqkd::api
