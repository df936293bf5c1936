#pragma once
// Self-contained test PKI (OpenSSL 3 C API): a CA, node (KME) certificates CN=<node>
// OU=cvqkd-node with SAN IP:127.0.0.1 and DNS:localhost, client certificates CN=<name> OU=<role>,
// all ECDSA P-256 / SHA-256, written as PEM files. Mirrors the layout of `cvqkd pki init`
// (identity = CN, role = OU) without depending on it. Throws std::runtime_error on failure
// (test code only).

#include <openssl/evp.h>
#include <openssl/x509.h>

#include <filesystem>
#include <memory>
#include <string>

namespace cvqkd::test_support {

struct cert_files {
  std::filesystem::path cert;  // PEM certificate
  std::filesystem::path key;   // PEM private key (mode 0600)
};

class test_ca {
public:
  /// A self-signed CA named `cn`, its certificate written to `dir/<file_stem>.crt`.
  test_ca(const std::filesystem::path& dir, const std::string& cn, const std::string& file_stem);
  ~test_ca();
  test_ca(const test_ca&) = delete;
  test_ca& operator=(const test_ca&) = delete;

  const std::filesystem::path& cert_file() const { return cert_file_; }

  /// A server+client certificate for a KME: CN=node, OU=cvqkd-node, SAN IP:127.0.0.1, DNS:localhost.
  cert_files issue_node(const std::filesystem::path& dir, const std::string& node);
  /// A client certificate CN=name, OU=role (empty role: no OU), extendedKeyUsage clientAuth.
  cert_files issue_client(const std::filesystem::path& dir, const std::string& name, const std::string& role);

private:
  cert_files issue(const std::filesystem::path& dir, const std::string& cn, const std::string& ou, bool server);
  EVP_PKEY* key_ = nullptr;
  X509* cert_ = nullptr;
  std::filesystem::path cert_file_;
};

}  // namespace cvqkd::test_support
