// The demo PKI (node/pki): layout and file modes, link secrets, certificate verification against the
// right and a foreign CA, signatures, the node certificate's extensions, idempotent init, name
// checks, mutual TLS with the issued certificates (OpenSSL over a BIO pair), and `cvqkd pki`.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <fcntl.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "node/pki/pki.hpp"

extern char** environ;

namespace {

namespace fs = std::filesystem;
namespace pki = cvqkd::pki;
using cvqkd::errc;

std::string read_text(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

unsigned mode_of(const fs::path& p) {
  struct stat st {};
  EXPECT_EQ(::lstat(p.c_str(), &st), 0) << p;
  return st.st_mode & 07777;
}

std::span<const std::byte> as_bytes(std::string_view s) { return std::as_bytes(std::span(s.data(), s.size())); }

struct x509_free_t {
  void operator()(X509* x) const noexcept { X509_free(x); }
};
using x509_ptr = std::unique_ptr<X509, x509_free_t>;

x509_ptr load_cert(const fs::path& p) {
  const std::string pem = read_text(p);
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), BIO_free);
  return x509_ptr(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
}

class pki_test : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string templ = (fs::temp_directory_path() / "cvqkd-pki-test-XXXXXX").string();
    ASSERT_NE(::mkdtemp(templ.data()), nullptr) << std::strerror(errno);
    tmp_ = templ;
    dir_ = tmp_ / "pki";
  }
  void TearDown() override {
    std::error_code ec;
    if (!tmp_.empty()) fs::remove_all(tmp_, ec);
  }

  // Three nodes in a line, two links, one SAE, one operator.
  static pki::init_options network(const fs::path& dir) {
    return {.dir = dir,
            .nodes = {"ko1", "ko2", "ko3"},
            .links = {{"ko1-ko2", "ko1", "ko2"}, {"ko2-ko3", "ko2", "ko3"}},
            .saes = {{"app1", "ko1"}},
            .operators = {"alice"}};
  }
  void init_network() { ASSERT_TRUE(pki::init(network(dir_))) << "init failed"; }

  fs::path node_dir(std::string_view n) const { return dir_ / "nodes" / n; }
  fs::path secret(std::string_view n, std::string_view link) const {
    return node_dir(n) / "secrets" / (std::string(link) + ".psk");
  }

  fs::path tmp_, dir_;
};

// ---------------------------------------------------------------------------------------------
// Layout

TEST_F(pki_test, init_writes_the_layout_with_private_modes) {
  init_network();
  const fs::path ca = dir_ / "ca" / "ca.crt";
  const std::vector<fs::path> certs{ca,
                                    node_dir("ko1") / "node.crt",
                                    node_dir("ko2") / "node.crt",
                                    node_dir("ko3") / "node.crt",
                                    dir_ / "saes" / "app1" / "sae.crt",
                                    dir_ / "operators" / "alice" / "operator.crt"};
  for (const auto& c : certs) EXPECT_TRUE(fs::is_regular_file(c)) << c;
  const std::vector<fs::path> private_files{dir_ / "ca" / "ca.key",
                                            node_dir("ko1") / "node.key",
                                            node_dir("ko2") / "node.key",
                                            node_dir("ko3") / "node.key",
                                            dir_ / "saes" / "app1" / "sae.key",
                                            dir_ / "operators" / "alice" / "operator.key",
                                            secret("ko1", "ko1-ko2"),
                                            secret("ko2", "ko1-ko2"),
                                            secret("ko2", "ko2-ko3"),
                                            secret("ko3", "ko2-ko3")};
  for (const auto& f : private_files) {
    ASSERT_TRUE(fs::is_regular_file(f)) << f;
    EXPECT_EQ(mode_of(f), 0600u) << f;
  }
  const std::vector<fs::path> dirs{dir_,
                                   dir_ / "ca",
                                   dir_ / "nodes",
                                   node_dir("ko1"),
                                   node_dir("ko1") / "secrets",
                                   node_dir("ko3") / "secrets",
                                   dir_ / "saes",
                                   dir_ / "saes" / "app1",
                                   dir_ / "operators",
                                   dir_ / "operators" / "alice"};
  for (const auto& d : dirs) {
    ASSERT_TRUE(fs::is_directory(d)) << d;
    EXPECT_EQ(mode_of(d), 0700u) << d;
  }
  // Each identity carries a copy of the CA certificate; no temporary files are left behind.
  const std::string ca_pem = read_text(ca);
  for (const auto& d : {node_dir("ko1"), node_dir("ko2"), dir_ / "saes" / "app1", dir_ / "operators" / "alice"})
    EXPECT_EQ(read_text(d / "ca.crt"), ca_pem) << d;
  for (const auto& e : fs::recursive_directory_iterator(dir_))
    EXPECT_EQ(e.path().filename().string().find(".tmp-"), std::string::npos) << e.path();
  // No link between ko1 and ko3, so neither holds the other's secret.
  EXPECT_FALSE(fs::exists(secret("ko1", "ko2-ko3")));
  EXPECT_FALSE(fs::exists(secret("ko3", "ko1-ko2")));
}

TEST_F(pki_test, link_secrets_are_identical_at_both_ends_and_differ_between_links) {
  init_network();
  const std::string a = read_text(secret("ko1", "ko1-ko2")), b = read_text(secret("ko2", "ko1-ko2"));
  const std::string c = read_text(secret("ko2", "ko2-ko3")), d = read_text(secret("ko3", "ko2-ko3"));
  EXPECT_EQ(a.size(), pki::link_secret_bytes);
  EXPECT_EQ(a, b);
  EXPECT_EQ(c.size(), pki::link_secret_bytes);
  EXPECT_EQ(c, d);
  EXPECT_NE(a, c);

  auto s = pki::read_link_secret(node_dir("ko1") / "secrets", "ko1-ko2");
  ASSERT_TRUE(s) << s.error().message;
  ASSERT_EQ(s->size(), pki::link_secret_bytes);
  EXPECT_EQ(std::memcmp(s->data(), a.data(), a.size()), 0);
}

TEST_F(pki_test, read_link_secret_refuses_loose_permissions_short_files_and_bad_ids) {
  init_network();
  const fs::path secrets = node_dir("ko1") / "secrets";
  const fs::path f = secret("ko1", "ko1-ko2");
  ASSERT_EQ(::chmod(f.c_str(), 0644), 0);
  auto r = pki::read_link_secret(secrets, "ko1-ko2");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, errc::config_error);
  EXPECT_NE(r.error().message.find("chmod 600 " + f.string()), std::string::npos) << r.error().message;
  ASSERT_EQ(::chmod(f.c_str(), 0640), 0);
  EXPECT_FALSE(pki::read_link_secret(secrets, "ko1-ko2"));
  ASSERT_EQ(::chmod(f.c_str(), 0600), 0);
  EXPECT_TRUE(pki::read_link_secret(secrets, "ko1-ko2"));

  const fs::path short_file = secrets / "short.psk";
  {
    std::ofstream out(short_file, std::ios::binary);
    out << std::string(255, 'x');
  }
  ASSERT_EQ(::chmod(short_file.c_str(), 0600), 0);
  r = pki::read_link_secret(secrets, "short");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, errc::config_error);
  EXPECT_NE(r.error().message.find("255 bytes"), std::string::npos) << r.error().message;

  r = pki::read_link_secret(secrets, "missing");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, errc::io_error);
  r = pki::read_link_secret(secrets, "../ko1-ko2");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, errc::invalid_argument);
}

// ---------------------------------------------------------------------------------------------
// Certificates

TEST_F(pki_test, verify_certificate_returns_cn_and_ou_of_each_issued_certificate) {
  init_network();
  const fs::path ca = dir_ / "ca" / "ca.crt";
  struct expect_t {
    fs::path file;
    std::string cn, ou;
  };
  const std::vector<expect_t> cases{{node_dir("ko1") / "node.crt", "ko1", "cvqkd-node"},
                                    {node_dir("ko3") / "node.crt", "ko3", "cvqkd-node"},
                                    {dir_ / "saes" / "app1" / "sae.crt", "app1", "cvqkd-sae"},
                                    {dir_ / "operators" / "alice" / "operator.crt", "alice", "cvqkd-operator"}};
  for (const auto& c : cases) {
    auto pem = pki::read_file_text(c.file);
    ASSERT_TRUE(pem) << pem.error().message;
    auto s = pki::verify_certificate(ca, *pem);
    ASSERT_TRUE(s) << c.file << ": " << s.error().message;
    EXPECT_EQ(s->common_name, c.cn);
    EXPECT_EQ(s->role, c.ou);
    // The node's own CA copy works as well.
    EXPECT_TRUE(pki::verify_certificate(node_dir("ko2") / "ca.crt", *pem));
  }
}

TEST_F(pki_test, verify_certificate_rejects_a_foreign_ca_a_tampered_and_a_malformed_certificate) {
  init_network();
  const fs::path other = tmp_ / "other";
  ASSERT_TRUE(pki::init(network(other)));
  const fs::path ca = dir_ / "ca" / "ca.crt";

  // Same names, independent CA.
  auto foreign = pki::verify_certificate(ca, read_text(other / "nodes" / "ko1" / "node.crt"));
  ASSERT_FALSE(foreign);
  EXPECT_EQ(foreign.error().code, errc::config_error);
  EXPECT_NE(foreign.error().message.find("another CA"), std::string::npos) << foreign.error().message;
  EXPECT_FALSE(pki::verify_certificate(other / "ca" / "ca.crt", read_text(node_dir("ko1") / "node.crt")));

  // Change the CN inside the signed part (ko1 -> ko9), re-encode, verify.
  x509_ptr cert = load_cert(node_dir("ko1") / "node.crt");
  ASSERT_TRUE(cert);
  unsigned char* der = nullptr;
  const int len = i2d_X509(cert.get(), &der);
  ASSERT_GT(len, 0);
  std::string bytes(reinterpret_cast<const char*>(der), static_cast<std::size_t>(len));
  OPENSSL_free(der);
  const auto at = bytes.find("ko1");
  ASSERT_NE(at, std::string::npos);
  bytes[at + 2] = '9';
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  x509_ptr tampered(d2i_X509(nullptr, &p, static_cast<long>(bytes.size())));
  ASSERT_TRUE(tampered);
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), BIO_free);
  ASSERT_EQ(PEM_write_bio_X509(bio.get(), tampered.get()), 1);
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio.get(), &data);
  const std::string tampered_pem(data, static_cast<std::size_t>(n));
  ASSERT_NE(tampered_pem, read_text(node_dir("ko1") / "node.crt"));
  auto t = pki::verify_certificate(ca, tampered_pem);
  ASSERT_FALSE(t);
  EXPECT_EQ(t.error().code, errc::config_error);
  EXPECT_NE(t.error().message.find("signature"), std::string::npos) << t.error().message;

  // A flipped character in the base64 text, and a key instead of a certificate.
  std::string garbled = read_text(node_dir("ko1") / "node.crt");
  garbled[garbled.size() / 2] = garbled[garbled.size() / 2] == 'A' ? 'B' : 'A';
  EXPECT_FALSE(pki::verify_certificate(ca, garbled));
  auto k = pki::verify_certificate(ca, read_text(node_dir("ko1") / "node.key"));
  ASSERT_FALSE(k);
  EXPECT_EQ(k.error().code, errc::parse_error);
  auto missing = pki::verify_certificate(tmp_ / "nope.crt", read_text(node_dir("ko1") / "node.crt"));
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, errc::io_error);
}

TEST_F(pki_test, node_certificate_has_the_san_and_both_tls_usages) {
  init_network();
  x509_ptr node = load_cert(node_dir("ko1") / "node.crt");
  x509_ptr sae = load_cert(dir_ / "saes" / "app1" / "sae.crt");
  x509_ptr ca = load_cert(dir_ / "ca" / "ca.crt");
  ASSERT_TRUE(node && sae && ca);
  EXPECT_EQ(X509_check_ip_asc(node.get(), "127.0.0.1", 0), 1);
  EXPECT_EQ(X509_check_host(node.get(), "localhost", 0, 0, nullptr), 1);
  EXPECT_NE(X509_check_host(node.get(), "example.org", 0, 0, nullptr), 1);
  const uint32_t node_eku = X509_get_extended_key_usage(node.get());
  EXPECT_TRUE(node_eku & XKU_SSL_SERVER);
  EXPECT_TRUE(node_eku & XKU_SSL_CLIENT);
  EXPECT_EQ(X509_check_purpose(node.get(), X509_PURPOSE_SSL_SERVER, 0), 1);
  EXPECT_EQ(X509_check_purpose(node.get(), X509_PURPOSE_SSL_CLIENT, 0), 1);
  const uint32_t sae_eku = X509_get_extended_key_usage(sae.get());
  EXPECT_TRUE(sae_eku & XKU_SSL_CLIENT);
  EXPECT_FALSE(sae_eku & XKU_SSL_SERVER);
  EXPECT_EQ(X509_check_ca(node.get()), 0);
  EXPECT_NE(X509_check_ca(ca.get()), 0);

  // ECDSA P-256 keys, SHA-256 signatures, 128-bit serials.
  EVP_PKEY* pub = X509_get0_pubkey(node.get());
  ASSERT_NE(pub, nullptr);
  EXPECT_TRUE(EVP_PKEY_is_a(pub, "EC"));
  std::array<char, 64> group{};
  std::size_t group_len = 0;
  ASSERT_EQ(EVP_PKEY_get_utf8_string_param(pub, "group", group.data(), group.size(), &group_len), 1);
  EXPECT_STREQ(group.data(), "prime256v1");
  EXPECT_EQ(X509_get_signature_nid(node.get()), NID_ecdsa_with_SHA256);
  std::unique_ptr<BIGNUM, decltype(&BN_free)> serial(ASN1_INTEGER_to_BN(X509_get0_serialNumber(node.get()), nullptr),
                                                      BN_free);
  EXPECT_LE(BN_num_bits(serial.get()), 128);
  EXPECT_GT(BN_num_bits(serial.get()), 96);  // fails with probability 2^-32 for a random serial
}

TEST_F(pki_test, node_addresses_go_into_the_san_and_a_changed_address_reissues_only_that_node) {
  auto opts = network(dir_);
  opts.node_addresses = {{"ko1", {"10.91.0.2"}}, {"ko2", {"10.91.0.3", "fd00::3"}}};
  ASSERT_TRUE(pki::init(opts));
  x509_ptr ko1 = load_cert(node_dir("ko1") / "node.crt");
  x509_ptr ko2 = load_cert(node_dir("ko2") / "node.crt");
  x509_ptr ko3 = load_cert(node_dir("ko3") / "node.crt");
  ASSERT_TRUE(ko1 && ko2 && ko3);
  EXPECT_EQ(X509_check_ip_asc(ko1.get(), "10.91.0.2", 0), 1);
  EXPECT_EQ(X509_check_ip_asc(ko1.get(), "127.0.0.1", 0), 1);  // loopback stays
  EXPECT_NE(X509_check_ip_asc(ko1.get(), "10.91.0.3", 0), 1);
  EXPECT_EQ(X509_check_ip_asc(ko2.get(), "10.91.0.3", 0), 1);
  EXPECT_EQ(X509_check_ip_asc(ko2.get(), "fd00::3", 0), 1);
  EXPECT_NE(X509_check_ip_asc(ko3.get(), "10.91.0.2", 0), 1);

  auto inv = pki::inspect(dir_);
  ASSERT_TRUE(inv) << inv.error().message;
  for (const auto& c : inv->certificates) {
    if (c.kind != "node") continue;
    const std::vector<std::string> want = c.name == "ko1"   ? std::vector<std::string>{"127.0.0.1", "10.91.0.2"}
                                          : c.name == "ko2" ? std::vector<std::string>{"127.0.0.1", "10.91.0.3", "fd00::3"}
                                                            : std::vector<std::string>{"127.0.0.1"};
    EXPECT_EQ(c.ip_addresses, want) << c.name;
    EXPECT_TRUE(c.problem.empty()) << c.problem;
  }

  // Same addresses again: nothing reissued. ko1 moves: only its certificate and key change.
  const std::string crt1 = read_text(node_dir("ko1") / "node.crt"), key1 = read_text(node_dir("ko1") / "node.key");
  const std::string crt2 = read_text(node_dir("ko2") / "node.crt"), psk = read_text(secret("ko1", "ko1-ko2"));
  ASSERT_TRUE(pki::init(opts));
  EXPECT_EQ(read_text(node_dir("ko1") / "node.crt"), crt1);
  opts.node_addresses["ko1"] = {"10.91.0.12"};
  ASSERT_TRUE(pki::init(opts));
  EXPECT_NE(read_text(node_dir("ko1") / "node.crt"), crt1);
  EXPECT_NE(read_text(node_dir("ko1") / "node.key"), key1);
  EXPECT_EQ(read_text(node_dir("ko2") / "node.crt"), crt2);
  EXPECT_EQ(read_text(secret("ko1", "ko1-ko2")), psk);
  ko1 = load_cert(node_dir("ko1") / "node.crt");
  ASSERT_TRUE(ko1);
  EXPECT_EQ(X509_check_ip_asc(ko1.get(), "10.91.0.12", 0), 1);
  auto subj = pki::verify_certificate(dir_ / "ca" / "ca.crt", read_text(node_dir("ko1") / "node.crt"));
  ASSERT_TRUE(subj) << subj.error().message;
  EXPECT_EQ(subj->common_name, "ko1");

  // Bad addresses and addresses for something other than a node: refused, nothing changes.
  const std::string before = read_text(node_dir("ko3") / "node.crt");
  for (const auto& [node, addr] : std::vector<std::pair<std::string, std::string>>{
         {"ko3", "10.91.0"}, {"ko3", "host.example"}, {"ko3", ""}, {"ko9", "10.91.0.9"}}) {
    auto bad = network(dir_);
    bad.node_addresses = {{node, {addr}}};
    auto r = pki::init(bad);
    ASSERT_FALSE(r) << node << " " << addr;
    EXPECT_EQ(r.error().code, errc::invalid_argument);
    EXPECT_NE(r.error().message.find(node == "ko9" ? "ko9" : "not an IP address"), std::string::npos)
      << r.error().message;
  }
  EXPECT_EQ(read_text(node_dir("ko3") / "node.crt"), before);
  auto r = pki::issue(dir_, pki::kind::sae, "app2", 825, false, {"10.91.0.5"});
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("node certificates only"), std::string::npos) << r.error().message;
  EXPECT_FALSE(fs::exists(dir_ / "saes" / "app2"));
  ASSERT_TRUE(pki::issue(dir_, pki::kind::node, "ko3", 825, true, {"10.91.0.4"}));
  ko3 = load_cert(node_dir("ko3") / "node.crt");
  ASSERT_TRUE(ko3);
  EXPECT_EQ(X509_check_ip_asc(ko3.get(), "10.91.0.4", 0), 1);
}

TEST_F(pki_test, sign_and_verify_round_trip) {
  init_network();
  const std::string msg = "relay ko1 -> ko3, block 42";
  auto sig = pki::sign(node_dir("ko1") / "node.key", as_bytes(msg));
  ASSERT_TRUE(sig) << sig.error().message;
  EXPECT_GE(sig->size(), 8u);
  EXPECT_LE(sig->size(), 72u);
  const std::string cert = read_text(node_dir("ko1") / "node.crt");
  auto ok = pki::verify_signature(cert, as_bytes(msg), *sig);
  EXPECT_TRUE(ok) << ok.error().message;

  std::string altered = msg;
  altered[0] ^= 0x01;
  auto bad_msg = pki::verify_signature(cert, as_bytes(altered), *sig);
  ASSERT_FALSE(bad_msg);
  EXPECT_EQ(bad_msg.error().code, errc::invalid_argument);
  auto flipped = *sig;
  flipped[flipped.size() - 1] ^= std::byte{0x01};
  EXPECT_FALSE(pki::verify_signature(cert, as_bytes(msg), flipped));
  EXPECT_FALSE(pki::verify_signature(read_text(node_dir("ko2") / "node.crt"), as_bytes(msg), *sig));

  auto no_key = pki::sign(node_dir("ko1") / "node.crt", as_bytes(msg));
  ASSERT_FALSE(no_key);
  EXPECT_EQ(no_key.error().code, errc::parse_error);
}

// ---------------------------------------------------------------------------------------------
// init and issue

TEST_F(pki_test, init_again_keeps_the_ca_and_adds_new_names) {
  init_network();
  const std::string ca = read_text(dir_ / "ca" / "ca.crt"), ca_key = read_text(dir_ / "ca" / "ca.key");
  const std::string ko1 = read_text(node_dir("ko1") / "node.crt");
  const std::string secret12 = read_text(secret("ko1", "ko1-ko2"));

  // The same options again plus a new node, a link to it, an SAE and an operator.
  auto opts = network(dir_);
  opts.nodes.push_back("ko4");
  opts.links.push_back({"ko3-ko4", "ko4", "ko3"});
  opts.saes.push_back({"app4", "ko4"});
  opts.operators.push_back("bob");
  auto r = pki::init(opts);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(read_text(dir_ / "ca" / "ca.crt"), ca);
  EXPECT_EQ(read_text(dir_ / "ca" / "ca.key"), ca_key);
  EXPECT_EQ(read_text(node_dir("ko1") / "node.crt"), ko1);
  EXPECT_EQ(read_text(secret("ko1", "ko1-ko2")), secret12);
  EXPECT_TRUE(pki::verify_certificate(dir_ / "ca" / "ca.crt", read_text(node_dir("ko4") / "node.crt")));
  EXPECT_TRUE(pki::verify_certificate(dir_ / "ca" / "ca.crt", read_text(dir_ / "operators" / "bob" / "operator.crt")));
  EXPECT_EQ(read_text(secret("ko3", "ko3-ko4")), read_text(secret("ko4", "ko3-ko4")));

  // Only names: links may end at nodes issued earlier.
  r = pki::init({.dir = dir_, .links = {{"ko1-ko4", "ko1", "ko4"}}});
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(read_text(secret("ko1", "ko1-ko4")).size(), pki::link_secret_bytes);
  EXPECT_EQ(read_text(dir_ / "ca" / "ca.crt"), ca);

  // --force starts over with a new CA.
  r = pki::init({.dir = dir_, .nodes = {"ko1"}, .force = true});
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_NE(read_text(dir_ / "ca" / "ca.crt"), ca);
  EXPECT_FALSE(fs::exists(node_dir("ko2")));
  EXPECT_TRUE(pki::verify_certificate(dir_ / "ca" / "ca.crt", read_text(node_dir("ko1") / "node.crt")));
}

TEST_F(pki_test, init_refuses_a_broken_ca_and_a_foreign_identity) {
  init_network();
  // A CA certificate whose key is missing: nothing is overwritten.
  const std::string ca = read_text(dir_ / "ca" / "ca.crt");
  fs::remove(dir_ / "ca" / "ca.key");
  auto r = pki::init(network(dir_));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, errc::config_error);
  EXPECT_NE(r.error().message.find("--force"), std::string::npos) << r.error().message;
  EXPECT_EQ(read_text(dir_ / "ca" / "ca.crt"), ca);

  // Issued identities but no CA at all: init does not mint a new CA beside them.
  fs::remove_all(dir_ / "ca");
  r = pki::init(network(dir_));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, errc::config_error);
  EXPECT_FALSE(fs::exists(dir_ / "ca"));

  // A node certificate from another PKI placed under this one.
  const fs::path d2 = tmp_ / "second";
  ASSERT_TRUE(pki::init(network(d2)));
  const fs::path other = tmp_ / "other";
  ASSERT_TRUE(pki::init({.dir = other, .nodes = {"ko1"}}));
  fs::copy_file(other / "nodes" / "ko1" / "node.crt", d2 / "nodes" / "ko1" / "node.crt",
                fs::copy_options::overwrite_existing);
  r = pki::init(network(d2));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, errc::config_error);
  EXPECT_NE(r.error().message.find("another CA"), std::string::npos) << r.error().message;
}

TEST_F(pki_test, invalid_names_and_links_are_refused_before_anything_is_written) {
  for (const std::string& bad : std::vector<std::string>{"", ".", "..", "a/b", "a b", "ko1:x", "é", std::string(65, 'a')}) {
    auto r = pki::validate_name("node ID", bad);
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error().code, errc::invalid_argument);
    EXPECT_NE(r.error().message.find("A-Z a-z 0-9 . _ -"), std::string::npos);
  }
  for (const std::string& good : std::vector<std::string>{"a", "ko1", "Ko-1.site_A", std::string(64, 'z')})
    EXPECT_TRUE(pki::validate_name("node ID", good)) << good;

  const auto refused = [&](pki::init_options o) {
    o.dir = dir_;
    auto r = pki::init(o);
    EXPECT_FALSE(r);
    if (!r) {
      EXPECT_EQ(r.error().code, errc::invalid_argument) << r.error().message;
    }
    EXPECT_FALSE(fs::exists(dir_)) << "init wrote files despite invalid input";
  };
  refused({.nodes = {"ko1", "../evil"}});
  refused({.nodes = {"ko1"}, .operators = {"a b"}});
  refused({.nodes = {"ko1", "ko2"}, .links = {{"l/1", "ko1", "ko2"}}});
  refused({.nodes = {"ko1", "ko2"}, .links = {{"l1", "ko1", "ko9"}}});  // unknown end
  refused({.nodes = {"ko1", "ko2"}, .links = {{"l1", "ko1", "ko1"}}});  // to itself
  refused({.nodes = {"ko1", "ko2", "ko3"}, .links = {{"l1", "ko1", "ko2"}, {"l1", "ko2", "ko3"}}});
  refused({.nodes = {"ko1"}, .saes = {{"app", "ko2"}}});  // unknown home node
  auto days = pki::init({.dir = dir_, .nodes = {"ko1"}, .validity_days = 0});
  EXPECT_FALSE(days);
  EXPECT_FALSE(fs::exists(dir_));

  // A link ID names one link: reusing it for another pair is refused.
  init_network();
  auto r = pki::issue_link_secret(dir_, "ko1-ko2", "ko2", "ko3");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, errc::invalid_argument);
  EXPECT_FALSE(fs::exists(secret("ko3", "ko1-ko2")));
}

TEST_F(pki_test, issue_adds_identities_and_link_secrets_under_the_existing_ca) {
  auto no_ca = pki::issue(dir_, pki::kind::node, "ko1");
  ASSERT_FALSE(no_ca);
  EXPECT_EQ(no_ca.error().code, errc::config_error);
  EXPECT_NE(no_ca.error().message.find("pki init"), std::string::npos);

  init_network();
  ASSERT_TRUE(pki::issue(dir_, pki::kind::operator_, "carol"));
  EXPECT_EQ(mode_of(dir_ / "operators" / "carol" / "operator.key"), 0600u);
  auto dup = pki::issue(dir_, pki::kind::operator_, "carol");
  ASSERT_FALSE(dup);
  EXPECT_EQ(dup.error().code, errc::config_error);
  const std::string before = read_text(dir_ / "operators" / "carol" / "operator.crt");
  ASSERT_TRUE(pki::issue(dir_, pki::kind::operator_, "carol", 30, true));  // renewal
  EXPECT_NE(read_text(dir_ / "operators" / "carol" / "operator.crt"), before);
  EXPECT_FALSE(pki::issue(dir_, pki::kind::sae, "bad name"));

  // A link secret needs both nodes; it is idempotent and repairs a lost end.
  auto missing_node = pki::issue_link_secret(dir_, "ko1-ko5", "ko1", "ko5");
  ASSERT_FALSE(missing_node);
  EXPECT_NE(missing_node.error().message.find("--node ko5"), std::string::npos) << missing_node.error().message;
  ASSERT_TRUE(pki::issue_link_secret(dir_, "ko1-ko3", "ko1", "ko3"));
  const std::string s13 = read_text(secret("ko1", "ko1-ko3"));
  ASSERT_TRUE(pki::issue_link_secret(dir_, "ko1-ko3", "ko3", "ko1"));
  EXPECT_EQ(read_text(secret("ko3", "ko1-ko3")), s13);
  fs::remove(secret("ko3", "ko1-ko3"));
  ASSERT_TRUE(pki::issue_link_secret(dir_, "ko1-ko3", "ko1", "ko3"));
  EXPECT_EQ(read_text(secret("ko3", "ko1-ko3")), s13);
  EXPECT_EQ(mode_of(secret("ko3", "ko1-ko3")), 0600u);

  auto inv = pki::inspect(dir_);
  ASSERT_TRUE(inv) << inv.error().message;
  EXPECT_EQ(inv->ca.role, "cvqkd-ca");
  EXPECT_EQ(inv->certificates.size(), 3u + 1u + 2u);  // ko1..3, app1, alice, carol
  for (const auto& c : inv->certificates) EXPECT_TRUE(c.problem.empty()) << c.name << ": " << c.problem;
  ASSERT_EQ(inv->links.size(), 3u);
  EXPECT_EQ(inv->links[0].id, "ko1-ko2");
  EXPECT_EQ(inv->links[0].nodes, (std::vector<std::string>{"ko1", "ko2"}));
  EXPECT_EQ(inv->links[0].bytes, pki::link_secret_bytes);
  for (const auto& l : inv->links) EXPECT_TRUE(l.problem.empty()) << l.id << ": " << l.problem;
}

// ---------------------------------------------------------------------------------------------
// Mutual TLS with the issued certificates

struct ssl_ctx_free_t {
  void operator()(SSL_CTX* c) const noexcept { SSL_CTX_free(c); }
};
struct ssl_free_t {
  void operator()(SSL* s) const noexcept { SSL_free(s); }
};
using ssl_ctx_ptr = std::unique_ptr<SSL_CTX, ssl_ctx_free_t>;
using ssl_ptr = std::unique_ptr<SSL, ssl_free_t>;

std::string ssl_errors() {
  std::string out;
  while (const unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    out += std::string(buf) + "; ";
  }
  return out;
}

// A context presenting cert/key and requiring a peer certificate issued by `ca`.
ssl_ctx_ptr make_ctx(bool server, const fs::path& cert, const fs::path& key, const fs::path& ca) {
  ssl_ctx_ptr ctx(SSL_CTX_new(server ? TLS_server_method() : TLS_client_method()));
  EXPECT_TRUE(ctx);
  if (!ctx) return ctx;
  EXPECT_EQ(SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION), 1);
  EXPECT_EQ(SSL_CTX_use_certificate_chain_file(ctx.get(), cert.c_str()), 1) << ssl_errors();
  EXPECT_EQ(SSL_CTX_use_PrivateKey_file(ctx.get(), key.c_str(), SSL_FILETYPE_PEM), 1) << ssl_errors();
  EXPECT_EQ(SSL_CTX_check_private_key(ctx.get()), 1) << ssl_errors();
  EXPECT_EQ(SSL_CTX_load_verify_locations(ctx.get(), ca.c_str(), nullptr), 1) << ssl_errors();
  SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
  return ctx;
}

struct handshake_result {
  bool client_ok = false, server_ok = false;
  std::string server_saw_cn;   // CN of the client certificate, as the server verified it
  std::string app_data;        // what the server read from the client after the handshake
};

// Client and server over an in-memory BIO pair; the client checks the server's IP SAN. Drives both
// until each has finished or failed, then sends one application record (under TLS 1.3 the server
// rejects a bad client certificate after the client considers the handshake done).
handshake_result handshake(SSL_CTX* client_ctx, SSL_CTX* server_ctx) {
  handshake_result out;
  ssl_ptr client(SSL_new(client_ctx)), server(SSL_new(server_ctx));
  BIO *client_bio = nullptr, *server_bio = nullptr;
  if (!client || !server || BIO_new_bio_pair(&client_bio, 0, &server_bio, 0) != 1) {
    ADD_FAILURE() << "cannot set up TLS objects: " << ssl_errors();
    return out;
  }
  SSL_set_bio(client.get(), client_bio, client_bio);
  SSL_set_bio(server.get(), server_bio, server_bio);
  X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(client.get()), "127.0.0.1");
  SSL_set_connect_state(client.get());
  SSL_set_accept_state(server.get());

  bool client_done = false, server_done = false, client_failed = false, server_failed = false;
  for (int round = 0; round < 50 && !(client_done && server_done) && !client_failed && !server_failed; ++round) {
    if (!client_done) {
      const int rc = SSL_do_handshake(client.get());
      if (rc == 1) client_done = true;
      else if (const int e = SSL_get_error(client.get(), rc); e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
        client_failed = true;
    }
    if (!server_done) {
      const int rc = SSL_do_handshake(server.get());
      if (rc == 1) server_done = true;
      else if (const int e = SSL_get_error(server.get(), rc); e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
        server_failed = true;
    }
  }
  ERR_clear_error();
  if (client_done && server_done) {
    const std::string msg = "GET /api/v1/keys/ko3/status";
    if (SSL_write(client.get(), msg.data(), static_cast<int>(msg.size())) == static_cast<int>(msg.size())) {
      char buf[256];
      const int n = SSL_read(server.get(), buf, sizeof buf);
      if (n > 0) out.app_data.assign(buf, static_cast<std::size_t>(n));
    }
    ERR_clear_error();
  }
  out.client_ok = client_done && SSL_get_verify_result(client.get()) == X509_V_OK;
  out.server_ok = server_done && SSL_get_verify_result(server.get()) == X509_V_OK;
  if (X509* peer = SSL_get0_peer_certificate(server.get()); peer != nullptr && out.server_ok) {
    char cn[128] = {};
    X509_NAME_get_text_by_NID(X509_get_subject_name(peer), NID_commonName, cn, sizeof cn);
    out.server_saw_cn = cn;
  }
  return out;
}

TEST_F(pki_test, issued_certificates_complete_a_mutual_tls_handshake) {
  init_network();
  const fs::path other = tmp_ / "other";
  ASSERT_TRUE(pki::init(network(other)));
  const fs::path ca = dir_ / "ca" / "ca.crt";
  auto server = make_ctx(true, node_dir("ko1") / "node.crt", node_dir("ko1") / "node.key", node_dir("ko1") / "ca.crt");
  auto client = make_ctx(false, dir_ / "saes" / "app1" / "sae.crt", dir_ / "saes" / "app1" / "sae.key", ca);
  ASSERT_TRUE(server && client);

  const auto good = handshake(client.get(), server.get());
  EXPECT_TRUE(good.client_ok);
  EXPECT_TRUE(good.server_ok);
  EXPECT_EQ(good.server_saw_cn, "app1");
  EXPECT_EQ(good.app_data, "GET /api/v1/keys/ko3/status");

  // Node to node (the inter-node channel): ko2 as client of ko1.
  auto node_client = make_ctx(false, node_dir("ko2") / "node.crt", node_dir("ko2") / "node.key", ca);
  const auto n2n = handshake(node_client.get(), server.get());
  EXPECT_TRUE(n2n.client_ok && n2n.server_ok);
  EXPECT_EQ(n2n.server_saw_cn, "ko2");

  // A client certificate from another CA: the server refuses it.
  auto foreign_client =
    make_ctx(false, other / "saes" / "app1" / "sae.crt", other / "saes" / "app1" / "sae.key", ca);
  const auto bad_client = handshake(foreign_client.get(), server.get());
  EXPECT_FALSE(bad_client.server_ok);
  EXPECT_EQ(bad_client.app_data, "");

  // A server certificate from another CA: the client refuses it.
  auto foreign_server =
    make_ctx(true, other / "nodes" / "ko1" / "node.crt", other / "nodes" / "ko1" / "node.key", ca);
  const auto bad_server = handshake(client.get(), foreign_server.get());
  EXPECT_FALSE(bad_server.client_ok);
  EXPECT_EQ(bad_server.app_data, "");
}

// ---------------------------------------------------------------------------------------------
// The command line

struct run_result {
  int exit_code = -1;
  std::string out, err;
};

run_result run_cvqkd(const fs::path& tmp, const std::vector<std::string>& args) {
  const fs::path out_file = tmp / "stdout.txt", err_file = tmp / "stderr.txt";
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, out_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, err_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  std::vector<std::string> storage{CVQKD_BINARY};
  storage.insert(storage.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : storage) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = -1;
  const int rc = ::posix_spawn(&pid, CVQKD_BINARY, &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  run_result r;
  if (rc != 0) {
    ADD_FAILURE() << "posix_spawn " << CVQKD_BINARY << ": " << std::strerror(rc);
    return r;
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.out = read_text(out_file);
  r.err = read_text(err_file);
  return r;
}

std::string show(const run_result& r) {
  return "exit " + std::to_string(r.exit_code) + "\n--- stdout ---\n" + r.out + "--- stderr ---\n" + r.err;
}

TEST_F(pki_test, cli_init_issue_and_show) {
  const std::string dir = dir_.string();
  auto r = run_cvqkd(tmp_, {"pki", "init", "--dir", dir, "--node", "ko1", "--node", "ko2", "--link", "ko1-ko2:ko1:ko2",
                            "--sae", "app1@ko1", "--operator", "alice", "--json"});
  ASSERT_EQ(r.exit_code, 0) << show(r);
  for (const auto& f : {dir_ / "ca" / "ca.key", node_dir("ko1") / "node.key", secret("ko2", "ko1-ko2"),
                        dir_ / "saes" / "app1" / "sae.key", dir_ / "operators" / "alice" / "operator.key"}) {
    ASSERT_TRUE(fs::exists(f)) << f;
    EXPECT_EQ(mode_of(f), 0600u) << f;
  }
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j.at("certificates").size(), 4u);
  ASSERT_EQ(j.at("links").size(), 1u);
  EXPECT_EQ(j["links"][0]["nodes"], (nlohmann::json{"ko1", "ko2"}));
  EXPECT_EQ(j["links"][0]["bytes"], pki::link_secret_bytes);
  EXPECT_EQ(j["certificates"][0]["role"], "cvqkd-node");

  r = run_cvqkd(tmp_, {"pki", "issue", "--dir", dir, "--sae", "app2", "--address", "10.91.0.4"});
  EXPECT_EQ(r.exit_code, 2) << show(r);
  EXPECT_NE(r.err.find("--address"), std::string::npos) << show(r);
  r = run_cvqkd(tmp_, {"pki", "issue", "--dir", dir, "--node", "ko3", "--address", "10.91.0.x"});
  EXPECT_EQ(r.exit_code, 2) << show(r);
  EXPECT_NE(r.err.find("'10.91.0.x' of node ko3 is not an IP address"), std::string::npos) << show(r);
  EXPECT_FALSE(fs::exists(node_dir("ko3"))) << show(r);
  r = run_cvqkd(tmp_, {"pki", "issue", "--dir", dir, "--node", "ko3", "--address", "10.91.0.4"});
  ASSERT_EQ(r.exit_code, 0) << show(r);
  EXPECT_NE(r.out.find("IP 127.0.0.1,10.91.0.4"), std::string::npos) << show(r);
  r = run_cvqkd(tmp_, {"pki", "issue", "--dir", dir, "--link", "ko2-ko3:ko2:ko3"});
  ASSERT_EQ(r.exit_code, 0) << show(r);
  EXPECT_EQ(read_text(secret("ko2", "ko2-ko3")), read_text(secret("ko3", "ko2-ko3")));
  r = run_cvqkd(tmp_, {"pki", "issue", "--dir", dir, "--node", "ko3"});
  EXPECT_EQ(r.exit_code, 2) << show(r);
  EXPECT_NE(r.err.find("--force"), std::string::npos) << show(r);

  r = run_cvqkd(tmp_, {"pki", "show", "--dir", dir});
  ASSERT_EQ(r.exit_code, 0) << show(r);
  EXPECT_NE(r.out.find("ko2-ko3"), std::string::npos) << show(r);
  EXPECT_NE(r.out.find("OU=cvqkd-operator"), std::string::npos) << show(r);
  EXPECT_EQ(r.out.find("PROBLEM"), std::string::npos) << show(r);
}

TEST_F(pki_test, cli_usage_errors_exit_2_and_write_nothing) {
  const std::string dir = dir_.string();
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases{
    {{"--node", "ko1", "--node", "ko2", "--link", "ko1-ko2:ko1"}, "--link"},
    {{"--node", "ko1", "--node", "ko2", "--link", "a/b:ko1:ko2"}, "--link"},
    {{"--node", "ko1", "--link", "l:ko1:ko1"}, "--link"},
    {{"--node", "ko1", "--node", "ko2", "--link", "l:ko1:ko9"}, "ko9"},
    {{"--node", "ko 1"}, "--node"},
    {{"--node", "ko1", "--sae", "app1"}, "--sae"},
    {{"--node", "ko1", "--operator", ""}, "--operator"},
    {{"--node", "ko1", "--validity-days", "0"}, "--validity-days"},
  };
  for (const auto& [extra, flag] : cases) {
    std::vector<std::string> args{"pki", "init", "--dir", dir};
    args.insert(args.end(), extra.begin(), extra.end());
    const auto r = run_cvqkd(tmp_, args);
    EXPECT_EQ(r.exit_code, 2) << show(r);
    EXPECT_NE(r.err.find(flag), std::string::npos) << show(r);
    EXPECT_EQ(r.err.rfind("cvqkd: ", 0), 0u) << show(r);
    EXPECT_FALSE(fs::exists(dir_)) << "files written despite a usage error: " << show(r);
  }
  const auto r = run_cvqkd(tmp_, {"pki", "show", "--dir", dir});
  EXPECT_EQ(r.exit_code, 2) << show(r);
  EXPECT_NE(r.err.find("pki init"), std::string::npos) << show(r);
}

}  // namespace
