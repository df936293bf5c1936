#pragma once
// Helpers of the metrics tests: the Prometheus text format parsed into (series -> value), child
// processes that are always stopped (RAII), a loopback HTTP GET, and running a command.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

extern char** environ;

namespace cvqkd::test_support {

/// "name{a="1",b="2"}" with the labels sorted by name (the key of parse_exposition's map).
inline std::string series_key(const std::string& name, std::map<std::string, std::string> labels) {
  std::string k = name + "{";
  bool first = true;
  for (const auto& [l, v] : labels) {
    if (!first) k += ",";
    first = false;
    k += l + "=\"" + v + "\"";
  }
  return k + "}";
}

/// Parses the sample lines of the text exposition format (no escapes inside label values needed
/// here). Returns series_key -> value; NaN stays NaN.
inline std::map<std::string, double> parse_exposition(const std::string& text) {
  std::map<std::string, double> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::string name, labels_text, value_text;
    const auto brace = line.find('{');
    const auto space = line.rfind(' ');
    if (brace != std::string::npos && brace < space) {
      name = line.substr(0, brace);
      const auto close = line.find('}', brace);
      labels_text = line.substr(brace + 1, close - brace - 1);
    } else {
      name = line.substr(0, space);
    }
    value_text = line.substr(space + 1);
    std::map<std::string, std::string> labels;
    std::size_t pos = 0;
    while (pos < labels_text.size()) {
      const auto eq = labels_text.find('=', pos);
      const auto q2 = labels_text.find('"', eq + 2);
      labels[labels_text.substr(pos, eq - pos)] = labels_text.substr(eq + 2, q2 - eq - 2);
      pos = q2 + 2;  // skip '",'
    }
    out[series_key(name, labels)] = std::strtod(value_text.c_str(), nullptr);
  }
  return out;
}

/// Runs a shell command; returns (exit status, stdout+stderr).
inline std::pair<int, std::string> run_command(const std::string& cmd) {
  std::string out;
  FILE* p = ::popen((cmd + " 2>&1").c_str(), "r");
  if (p == nullptr) return {-1, "popen failed"};
  char buf[4096];
  while (auto n = std::fread(buf, 1, sizeof buf, p)) out.append(buf, n);
  const int st = ::pclose(p);
  return {WIFEXITED(st) ? WEXITSTATUS(st) : -1, out};
}

/// A child process that is stopped (SIGTERM, then SIGKILL after `grace`) when this object dies, so
/// that a failing assertion never leaves a server running.
class child_process {
public:
  /// Starts argv[0] with argv; stdout goes to a pipe (read_line) when capture_stdout, stderr (and
  /// otherwise stdout) to `log_file` ("" = inherit).
  child_process(const std::vector<std::string>& argv, bool capture_stdout, const std::string& log_file) {
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    int pipe_fds[2] = {-1, -1};
    if (capture_stdout) {
      if (::pipe(pipe_fds) != 0) return;
      posix_spawn_file_actions_adddup2(&fa, pipe_fds[1], 1);
      posix_spawn_file_actions_addclose(&fa, pipe_fds[0]);
    }
    if (!log_file.empty()) {
      posix_spawn_file_actions_addopen(&fa, 2, log_file.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      if (!capture_stdout) posix_spawn_file_actions_adddup2(&fa, 2, 1);
    }
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    if (posix_spawn(&pid_, args[0], &fa, nullptr, args.data(), environ) != 0) pid_ = -1;
    posix_spawn_file_actions_destroy(&fa);
    if (capture_stdout) {
      ::close(pipe_fds[1]);
      out_fd_ = pipe_fds[0];
    }
  }
  child_process(const child_process&) = delete;
  child_process& operator=(const child_process&) = delete;
  ~child_process() {
    stop();
    if (out_fd_ >= 0) ::close(out_fd_);
  }

  bool started() const { return pid_ > 0; }
  /// True while the process runs (reaps it when it has exited).
  bool running() {
    if (pid_ <= 0) return false;
    int st = 0;
    if (::waitpid(pid_, &st, WNOHANG) == pid_) {
      pid_ = -1;
      return false;
    }
    return true;
  }
  /// One line of the child's stdout, or nullopt at EOF or after `timeout`.
  std::optional<std::string> read_line(std::chrono::milliseconds timeout) {
    std::string line;
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      pollfd p{out_fd_, POLLIN, 0};
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (::poll(&p, 1, static_cast<int>(std::max<long>(1, left.count()))) <= 0) continue;
      char c;
      if (::read(out_fd_, &c, 1) != 1) return std::nullopt;
      if (c == '\n') return line;
      line += c;
    }
    return std::nullopt;
  }
  /// SIGTERM, wait up to `grace`, then SIGKILL; always reaps.
  void stop(std::chrono::milliseconds grace = std::chrono::milliseconds(5000)) {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGTERM);
    const auto deadline = std::chrono::steady_clock::now() + grace;
    int st = 0;
    while (std::chrono::steady_clock::now() < deadline) {
      if (::waitpid(pid_, &st, WNOHANG) == pid_) {
        pid_ = -1;
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, &st, 0);
    pid_ = -1;
  }

private:
  pid_t pid_ = -1;
  int out_fd_ = -1;
};

/// A loopback port that was free a moment ago (bind port 0, read it back, close). Another process
/// may take it before the caller binds: callers retry on a bind failure.
inline int probe_free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof a;
  int port = -1;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 && ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0)
    port = ntohs(a.sin_port);
  ::close(fd);
  return port;
}

/// HTTP/1.0 GET http://127.0.0.1:port<path>; returns (status, body), or nullopt when the connection
/// fails or nothing complete arrives within `timeout`.
inline std::optional<std::pair<int, std::string>> http_get(int port, const std::string& path,
                                                           std::chrono::milliseconds timeout = std::chrono::milliseconds(3000)) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return std::nullopt;
  timeval tv{static_cast<time_t>(timeout.count() / 1000), static_cast<suseconds_t>((timeout.count() % 1000) * 1000)};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return std::nullopt;
  }
  const std::string req = "GET " + path + " HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
  if (::send(fd, req.data(), req.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(req.size())) {
    ::close(fd);
    return std::nullopt;
  }
  std::string resp;
  char buf[8192];
  ssize_t n;
  while ((n = ::recv(fd, buf, sizeof buf, 0)) > 0) resp.append(buf, static_cast<std::size_t>(n));
  ::close(fd);
  if (n < 0) return std::nullopt;  // timed out before the server closed
  const auto sp = resp.find(' ');
  const auto hdr_end = resp.find("\r\n\r\n");
  if (sp == std::string::npos || hdr_end == std::string::npos) return std::nullopt;
  return std::make_pair(std::atoi(resp.c_str() + sp + 1), resp.substr(hdr_end + 4));
}

/// Percent-encodes a URL query value.
inline std::string url_encode(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '_' || c == '-' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      char b[4];
      std::snprintf(b, sizeof b, "%%%02X", c);
      out += b;
    }
  }
  return out;
}

}  // namespace cvqkd::test_support
