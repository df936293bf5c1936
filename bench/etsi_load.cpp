// Keep-alive load generator for the ETSI GS QKD 014 enc_keys call, against etsi_test_server (or
// any KME given the same info JSON). Open loop: each of C connections sends requests on a fixed
// schedule (rate / C per second); latency is measured from the scheduled send time, so a stalled
// server is charged for the requests it delayed (no coordinated omission). Prints JSON.
//   cvqkd_etsi_load --info info.json [--rate 1000] [--seconds 10] [--connections 8]
//                   [--number 1] [--size 256] [--kme KME_A] [--sae sae_a1] [--slave sae_b1]
//   --rate 0: closed loop (each connection sends as fast as answers come): maximum throughput.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

namespace {

using clock_type = std::chrono::steady_clock;

struct options {
  std::string info, kme = "KME_A", sae = "sae_a1", slave = "sae_b1";
  double rate = 1000, seconds = 10;
  int connections = 8, number = 1, size = 256;
};

struct worker_result {
  std::vector<double> latency_ms;
  std::size_t errors = 0, keys = 0;
};

// One keep-alive connection; returns false on any failure.
class connection {
public:
  connection(SSL_CTX* ctx, int port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<std::uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    ok_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    ssl_ = SSL_new(ctx);
    SSL_set_fd(ssl_, fd_);
    ok_ = ok_ && SSL_connect(ssl_) == 1;
  }
  ~connection() {
    SSL_free(ssl_);
    ::close(fd_);
  }
  bool ok() const { return ok_; }
  // Sends `req`, reads one response; returns the status (0 on failure) and counts keys.
  int exchange(const std::string& req, std::size_t& keys) {
    if (SSL_write(ssl_, req.data(), static_cast<int>(req.size())) <= 0) return 0;
    std::size_t header_end;
    char chunk[16384];
    while ((header_end = buf_.find("\r\n\r\n")) == std::string::npos) {
      const int n = SSL_read(ssl_, chunk, sizeof chunk);
      if (n <= 0) return 0;
      buf_.append(chunk, static_cast<std::size_t>(n));
    }
    const int status = std::atoi(buf_.c_str() + 9);
    std::size_t length = 0;
    if (auto p = buf_.find("Content-Length: "); p != std::string::npos && p < header_end) length = std::strtoul(buf_.c_str() + p + 16, nullptr, 10);
    while (buf_.size() < header_end + 4 + length) {
      const int n = SSL_read(ssl_, chunk, sizeof chunk);
      if (n <= 0) return 0;
      buf_.append(chunk, static_cast<std::size_t>(n));
    }
    std::string_view body(buf_.data() + header_end + 4, length);
    for (std::size_t p = body.find("\"key_ID\""); p != std::string_view::npos; p = body.find("\"key_ID\"", p + 1)) ++keys;
    buf_.erase(0, header_end + 4 + length);
    return status;
  }

private:
  int fd_ = -1;
  SSL* ssl_ = nullptr;
  bool ok_ = false;
  std::string buf_;
};

double percentile(std::vector<double>& v, double q) {
  if (v.empty()) return 0;
  const auto k = static_cast<std::size_t>(q * static_cast<double>(v.size() - 1));
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
  return v[k];
}

}  // namespace

int main(int argc, char** argv) {
  options o;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string f = argv[i], v = argv[i + 1];
    if (f == "--info") o.info = v;
    else if (f == "--rate") o.rate = std::stod(v);
    else if (f == "--seconds") o.seconds = std::stod(v);
    else if (f == "--connections") o.connections = std::stoi(v);
    else if (f == "--number") o.number = std::stoi(v);
    else if (f == "--size") o.size = std::stoi(v);
    else if (f == "--kme") o.kme = v;
    else if (f == "--sae") o.sae = v;
    else if (f == "--slave") o.slave = v;
    else {
      std::cerr << "cvqkd_etsi_load: unknown option " << f << " (see the comment at the top of bench/etsi_load.cpp)\n";
      return 2;
    }
  }
  if (o.info.empty() || o.connections < 1 || o.seconds <= 0 || o.rate < 0) {
    std::cerr << "usage: cvqkd_etsi_load --info info.json [--rate R|0] [--seconds S] [--connections C] [--number N] [--size BITS]\n";
    return 2;
  }
  nlohmann::json info;
  {
    std::ifstream in(o.info);
    if (!in) {
      std::cerr << "cvqkd_etsi_load: cannot read " << o.info << "; start etsi_test_server first\n";
      return 2;
    }
    info = nlohmann::json::parse(in);
  }
  const int port = info["kmes"][o.kme]["port"];
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_load_verify_locations(ctx, info["ca"].get<std::string>().c_str(), nullptr);
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
  SSL_CTX_use_certificate_file(ctx, info["clients"][o.sae]["cert"].get<std::string>().c_str(), SSL_FILETYPE_PEM);
  SSL_CTX_use_PrivateKey_file(ctx, info["clients"][o.sae]["key"].get<std::string>().c_str(), SSL_FILETYPE_PEM);

  const std::string req = "GET /api/v1/keys/" + o.slave + "/enc_keys?number=" + std::to_string(o.number) +
                          "&size=" + std::to_string(o.size) + " HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
  std::vector<worker_result> results(static_cast<std::size_t>(o.connections));
  const auto start = clock_type::now() + std::chrono::milliseconds(200);
  const auto end = start + std::chrono::duration_cast<clock_type::duration>(std::chrono::duration<double>(o.seconds));
  const auto interval = o.rate > 0 ? std::chrono::duration_cast<clock_type::duration>(std::chrono::duration<double>(o.connections / o.rate))
                                   : clock_type::duration::zero();
  std::vector<std::thread> threads;
  for (int c = 0; c < o.connections; ++c) {
    threads.emplace_back([&, c] {
      auto& r = results[static_cast<std::size_t>(c)];
      connection conn(ctx, port);
      if (!conn.ok()) {
        ++r.errors;
        return;
      }
      auto next = start + interval * c / o.connections;  // stagger the connections
      while (true) {
        if (o.rate > 0) std::this_thread::sleep_until(next);
        const auto scheduled = o.rate > 0 ? next : clock_type::now();
        if (scheduled >= end) break;
        const int status = conn.exchange(req, r.keys);
        const auto done = clock_type::now();
        if (status != 200) {
          ++r.errors;
          if (status == 0) return;
        }
        r.latency_ms.push_back(std::chrono::duration<double, std::milli>(done - scheduled).count());
        next += interval;
      }
    });
  }
  for (auto& t : threads) t.join();
  // Until the last answer: a server that falls behind stretches the run, and the rate shows it.
  const double elapsed = std::chrono::duration<double>(clock_type::now() - start).count();
  std::vector<double> all;
  std::size_t errors = 0, keys = 0;
  for (auto& r : results) {
    all.insert(all.end(), r.latency_ms.begin(), r.latency_ms.end());
    errors += r.errors;
    keys += r.keys;
  }
  const std::size_t n = all.size();
  nlohmann::json out{{"target_rate_per_s", o.rate},
                     {"connections", o.connections},
                     {"number", o.number},
                     {"size_bits", o.size},
                     {"requests", n},
                     {"errors", errors},
                     {"elapsed_s", elapsed},
                     {"achieved_rate_per_s", static_cast<double>(n) / elapsed},
                     {"keys_per_s", static_cast<double>(keys) / elapsed},
                     {"p50_ms", percentile(all, 0.50)},
                     {"p99_ms", percentile(all, 0.99)},
                     {"max_ms", n ? *std::max_element(all.begin(), all.end()) : 0.0}};
  std::cout << out.dump(2) << "\n";
  SSL_CTX_free(ctx);
  return errors == 0 ? 0 : 1;
}
