// Two KMEs (KME_A, KME_B) with separate key stores in a temporary directory, each serving the
// ETSI GS QKD 014 API over mutual TLS on a free loopback port, for the curl and Python client
// suites. Writes the ports, certificate paths, SAE map and limits as JSON to the file named on
// the command line (atomically: written to <file>.tmp, then renamed), then runs until SIGTERM
// or SIGINT, and removes its directory on exit.
//   etsi_test_server <info.json> [--dir DIR] [--handler-threads N] [--prefill N]
// --prefill N: before the info file is written, KME_A provisions N keys of the default size for
// (sae_a1, sae_b1) (stock for throughput measurements; see bench/etsi_load.cpp).
#include <signal.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <algorithm>
#include <stdexcept>
#include <string>

#include "tests/api/kme_network.hpp"

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << "usage: etsi_test_server <info.json> [--dir DIR] [--handler-threads N] [--prefill N]\n";
    return 2;
  }
  const std::filesystem::path info = argv[1];
  std::filesystem::path dir;
  cvqkd::test_support::kme_network_options o;
  std::size_t prefill = 0;
  for (int i = 2; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--dir") dir = argv[i + 1];
    else if (flag == "--handler-threads") o.handler_threads = std::strtoul(argv[i + 1], nullptr, 10);
    else if (flag == "--prefill") prefill = std::strtoul(argv[i + 1], nullptr, 10);
    else {
      std::cerr << "etsi_test_server: unknown option " << flag << "\n";
      return 2;
    }
  }
  bool own_dir = false;
  if (dir.empty()) {
    std::string pattern = (std::filesystem::temp_directory_path() / "cvqkd-etsi-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) {
      std::perror("mkdtemp");
      return 1;
    }
    dir = pattern;
    own_dir = true;
  }
  o.dir = dir;
  // Block the signals before any thread starts, so that only sigwait below receives them.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  int rc = 0;
  try {
    cvqkd::test_support::kme_network net(o);
    for (std::size_t done = 0; done < prefill;) {
      const std::size_t n = std::min<std::size_t>(prefill - done, 1000);
      auto p = net.a.provider->provide({"sae_a1", {"sae_b1"}, n, o.limits.default_key_size, std::nullopt, false});
      if (!p) throw std::runtime_error("prefill: " + p.error().message);
      done += n;
    }
    {
      std::ofstream out(info.string() + ".tmp");
      out << net.describe() << "\n";
    }
    std::filesystem::rename(info.string() + ".tmp", info);
    std::cerr << "etsi_test_server: KME_A on 127.0.0.1:" << net.a.server->port() << ", KME_B on 127.0.0.1:"
              << net.b.server->port() << "; SIGTERM to stop\n";
    int sig = 0;
    sigwait(&set, &sig);
  } catch (const std::exception& e) {
    std::cerr << "etsi_test_server: " << e.what() << "\n";
    rc = 1;
  }
  if (own_dir) std::filesystem::remove_all(dir);
  return rc;
}
