// Serves a node_metrics filled with realistic values (metrics_fixture.hpp) over prometheus-cpp's
// plain-HTTP exposer on a free loopback port, for the Prometheus tests.
//   metrics_fixture_server [--max-seconds N]
// Prints "port <N>" on stdout once listening, then serves until SIGTERM/SIGINT or N seconds
// (default 120, so that a crashed test cannot leave it running). Exit: 0 ok, 1 failure, 2 usage.
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <string>

#include "tests/metrics/metrics_fixture.hpp"

int main(int argc, char** argv) {
  long max_seconds = 120;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--max-seconds" && i + 1 < argc) {
      max_seconds = std::strtol(argv[++i], nullptr, 10);
    } else {
      std::fprintf(stderr, "usage: metrics_fixture_server [--max-seconds N]\n");
      return 2;
    }
  }
  if (max_seconds <= 0) {
    std::fprintf(stderr, "metrics_fixture_server: --max-seconds must be a positive number of seconds\n");
    return 2;
  }
  // Block the stop signals before the exposer starts its threads, so that they inherit the mask
  // and the signals are taken only by sigtimedwait below.
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);

  auto m = cvqkd::metrics::node_metrics::create("ko1");
  if (!m) {
    std::fprintf(stderr, "metrics_fixture_server: %s\n", m.error().message.c_str());
    return 1;
  }
  cvqkd::test_support::fill_fixture_metrics(**m);
  auto exposer = cvqkd::metrics::start_exposer((*m)->registry, "127.0.0.1:0");
  if (!exposer) {
    std::fprintf(stderr, "metrics_fixture_server: %s\n", exposer.error().message.c_str());
    return 1;
  }
  std::printf("port %d\n", (*exposer)->port());
  std::fflush(stdout);

  const timespec limit{max_seconds, 0};
  const int sig = sigtimedwait(&stop, nullptr, &limit);
  std::fprintf(stderr, "metrics_fixture_server: stopping (%s)\n", sig > 0 ? "signal" : "time limit");
  return 0;
}
