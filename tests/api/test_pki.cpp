#include "tests/api/test_pki.hpp"

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>

#include <cstdio>
#include <stdexcept>

namespace cvqkd::test_support {

namespace {

[[noreturn]] void die(const std::string& what) {
  char buf[256] = "";
  ERR_error_string_n(ERR_get_error(), buf, sizeof buf);
  throw std::runtime_error("test_pki: " + what + ": " + buf);
}

void check(int ok, const std::string& what) {
  if (ok != 1) die(what);
}

EVP_PKEY* new_key() {
  EVP_PKEY* k = EVP_EC_gen("P-256");
  if (k == nullptr) die("EC key generation");
  return k;
}

void add_ext(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
  if (ext == nullptr) die(std::string("extension ") + value);
  check(X509_add_ext(cert, ext, -1), "add extension");
  X509_EXTENSION_free(ext);
}

X509* new_cert(EVP_PKEY* key, const std::string& cn, const std::string& ou) {
  X509* c = X509_new();
  check(X509_set_version(c, 2), "version");
  BIGNUM* bn = BN_new();
  check(BN_rand(bn, 127, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY), "serial");
  BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(c));
  BN_free(bn);
  X509_gmtime_adj(X509_getm_notBefore(c), -3600);
  X509_gmtime_adj(X509_getm_notAfter(c), 3600L * 24 * 30);
  check(X509_set_pubkey(c, key), "public key");
  X509_NAME* name = X509_get_subject_name(c);
  if (!ou.empty())
    check(X509_NAME_add_entry_by_txt(name, "OU", MBSTRING_UTF8, reinterpret_cast<const unsigned char*>(ou.c_str()), -1, -1, 0), "OU");
  check(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0), "CN");
  return c;
}

void write_pem(const std::filesystem::path& path, X509* cert, EVP_PKEY* key) {
  FILE* f = std::fopen(path.c_str(), "w");
  if (f == nullptr) throw std::runtime_error("test_pki: cannot write " + path.string());
  const int ok = cert != nullptr ? PEM_write_X509(f, cert)
                                 : PEM_write_PrivateKey(f, key, nullptr, nullptr, 0, nullptr, nullptr);
  std::fclose(f);
  if (ok != 1) die("PEM write " + path.string());
  if (key != nullptr) ::chmod(path.c_str(), 0600);
}

}  // namespace

test_ca::test_ca(const std::filesystem::path& dir, const std::string& cn, const std::string& file_stem) {
  std::filesystem::create_directories(dir);
  key_ = new_key();
  cert_ = new_cert(key_, cn, "cvqkd-ca");
  check(X509_set_issuer_name(cert_, X509_get_subject_name(cert_)), "issuer");
  add_ext(cert_, cert_, NID_basic_constraints, "critical,CA:TRUE");
  add_ext(cert_, cert_, NID_key_usage, "critical,keyCertSign,cRLSign");
  add_ext(cert_, cert_, NID_subject_key_identifier, "hash");
  if (X509_sign(cert_, key_, EVP_sha256()) <= 0) die("CA signature");
  cert_file_ = dir / (file_stem + ".crt");
  write_pem(cert_file_, cert_, nullptr);
}

test_ca::~test_ca() {
  X509_free(cert_);
  EVP_PKEY_free(key_);
}

cert_files test_ca::issue(const std::filesystem::path& dir, const std::string& cn, const std::string& ou, bool server) {
  std::filesystem::create_directories(dir);
  EVP_PKEY* key = new_key();
  X509* c = new_cert(key, cn, ou);
  check(X509_set_issuer_name(c, X509_get_subject_name(cert_)), "issuer");
  add_ext(c, cert_, NID_basic_constraints, "critical,CA:FALSE");
  add_ext(c, cert_, NID_key_usage, "critical,digitalSignature");
  add_ext(c, cert_, NID_ext_key_usage, server ? "serverAuth,clientAuth" : "clientAuth");
  add_ext(c, cert_, NID_authority_key_identifier, "keyid:always");
  if (server) add_ext(c, cert_, NID_subject_alt_name, "IP:127.0.0.1,DNS:localhost");
  if (X509_sign(c, key_, EVP_sha256()) <= 0) die("certificate signature");
  cert_files out{dir / (cn + ".crt"), dir / (cn + ".key")};
  write_pem(out.cert, c, nullptr);
  write_pem(out.key, nullptr, key);
  X509_free(c);
  EVP_PKEY_free(key);
  return out;
}

cert_files test_ca::issue_node(const std::filesystem::path& dir, const std::string& node) {
  return issue(dir, node, "cvqkd-node", true);
}

cert_files test_ca::issue_client(const std::filesystem::path& dir, const std::string& name, const std::string& role) {
  return issue(dir, name, role, false);
}

}  // namespace cvqkd::test_support
