#pragma once
// Two KMEs in one process for the API tests: KME_A and KME_B, each with its own key store (in a
// temporary directory), store_key_service and https_server on a free loopback port, and a test
// key_provider that draws fresh random keys and stores them in the master's store and every
// slave KME's store (slave first, master made ready last: no tentative keys). Used by
// etsi_api_test and by etsi_test_server (the curl and Python suites).
//
// SAEs: sae_a1, sae_a2 on KME_A; sae_b1, sae_b2 on KME_B; sae_z on KME_Z (no route: 503).
// Certificates (test_pki): sae_* and sae_x (valid, but in no KME's SAE map) with OU=cvqkd-sae;
// op1 with OU=cvqkd-operator; sae_a1 from a foreign CA.

#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <string>

#include "node/api/https_server.hpp"
#include "node/api/store_key_service.hpp"
#include "storage/key_store.hpp"
#include "tests/api/test_pki.hpp"

namespace cvqkd::test_support {

/// Provisions keys for masters at `self` into every store of the network (see the file comment).
/// multipath is refused with errc::unsupported (the test network has one path); a slave at a
/// KME without a store gets errc::insufficient_data ("no route").
class network_provider final : public api::key_provider {
public:
  network_provider(std::string self, std::map<std::string, storage::key_store*> stores,
                   std::map<std::string, std::string, std::less<>> sae_kme, std::chrono::milliseconds ttl);
  expected<std::vector<storage::key_id>> provide(const api::provide_request& r) override;

private:
  std::string self_;
  std::map<std::string, storage::key_store*> stores_;
  std::map<std::string, std::string, std::less<>> sae_kme_;
  std::chrono::milliseconds ttl_;
};

struct kme_network_options {
  std::filesystem::path dir;  // created if missing; stores, KEKs and certificates go below it
  std::size_t handler_threads = 4;
  std::size_t io_threads = 1;
  api::key_limits limits;
};

class kme_network {
public:
  /// Throws std::runtime_error when anything fails to start (test code).
  explicit kme_network(kme_network_options options);
  ~kme_network();

  struct kme {
    std::string id;
    std::unique_ptr<storage::key_store> store;
    std::unique_ptr<network_provider> provider;
    std::shared_ptr<api::store_key_service> service;
    std::unique_ptr<api::https_server> server;
  };
  kme a, b;
  std::filesystem::path ca_cert, foreign_ca_cert;
  std::map<std::string, cert_files> clients;  // sae_a1 ... sae_x, op1, and "foreign_sae_a1"
  std::map<std::string, std::string, std::less<>> sae_kme;

  /// {"kmes": {"KME_A": {"port", "host"}, ...}, "ca": path, "foreign_ca": path, "clients": {name: {"cert","key"}},
  ///  "saes": {sae: kme}, "limits": {...}} as JSON text.
  std::string describe() const;

private:
  kme_network_options opt_;
};

}  // namespace cvqkd::test_support
