#include "node/pki/pki.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <system_error>
#include <utility>

namespace cvqkd::pki {
namespace {

namespace fs = std::filesystem;

// ---------------------------------------------------------------------------------------------
// RAII over OpenSSL handles

template <auto Free>
struct ossl_deleter {
  template <class T>
  void operator()(T* p) const noexcept {
    Free(p);
  }
};
using pkey_ptr = std::unique_ptr<EVP_PKEY, ossl_deleter<EVP_PKEY_free>>;
using x509_ptr = std::unique_ptr<X509, ossl_deleter<X509_free>>;
using bio_ptr = std::unique_ptr<BIO, ossl_deleter<BIO_free_all>>;
using bn_ptr = std::unique_ptr<BIGNUM, ossl_deleter<BN_free>>;
using name_ptr = std::unique_ptr<X509_NAME, ossl_deleter<X509_NAME_free>>;
using ext_ptr = std::unique_ptr<X509_EXTENSION, ossl_deleter<X509_EXTENSION_free>>;
using store_ptr = std::unique_ptr<X509_STORE, ossl_deleter<X509_STORE_free>>;
using store_ctx_ptr = std::unique_ptr<X509_STORE_CTX, ossl_deleter<X509_STORE_CTX_free>>;
using md_ctx_ptr = std::unique_ptr<EVP_MD_CTX, ossl_deleter<EVP_MD_CTX_free>>;

void free_x509_stack(STACK_OF(X509) * s) noexcept { sk_X509_pop_free(s, X509_free); }
using x509_stack_ptr = std::unique_ptr<STACK_OF(X509), ossl_deleter<free_x509_stack>>;

// Key file text: cleansed when dropped.
struct secret_text {
  std::string text;
  secret_text() = default;
  secret_text(const secret_text&) = delete;
  secret_text& operator=(const secret_text&) = delete;
  secret_text(secret_text&& o) noexcept : text(std::move(o.text)) {}
  ~secret_text() {
    if (!text.empty()) OPENSSL_cleanse(text.data(), text.size());
  }
};

// The OpenSSL error queue as text (and cleared), for messages.
std::string ssl_errors() {
  std::string out;
  while (const unsigned long e = ERR_get_error()) {
    std::array<char, 256> buf{};
    ERR_error_string_n(e, buf.data(), buf.size());
    if (!out.empty()) out += "; ";
    out += buf.data();
  }
  return out.empty() ? std::string{"no detail from OpenSSL"} : out;
}

std::string errno_text(int e) { return std::error_code(e, std::generic_category()).message(); }

// ---------------------------------------------------------------------------------------------
// Layout

std::string_view kind_dir(kind k) {
  switch (k) {
    case kind::node: return "nodes";
    case kind::sae: return "saes";
    case kind::operator_: return "operators";
  }
  return "?";
}
std::string_view kind_role(kind k) {
  switch (k) {
    case kind::node: return role_node;
    case kind::sae: return role_sae;
    case kind::operator_: return role_operator;
  }
  return "?";
}
fs::path identity_dir(const fs::path& dir, kind k, std::string_view name) { return dir / kind_dir(k) / name; }
fs::path cert_file(const fs::path& dir, kind k, std::string_view name) {
  return identity_dir(dir, k, name) / fmt::format("{}.crt", to_string(k));
}
fs::path key_file(const fs::path& dir, kind k, std::string_view name) {
  return identity_dir(dir, k, name) / fmt::format("{}.key", to_string(k));
}
fs::path ca_cert_file(const fs::path& dir) { return dir / "ca" / "ca.crt"; }
fs::path ca_key_file(const fs::path& dir) { return dir / "ca" / "ca.key"; }
fs::path secret_file(const fs::path& dir, std::string_view node, std::string_view link_id) {
  return dir / "nodes" / node / "secrets" / fmt::format("{}.psk", link_id);
}

constexpr unsigned ca_validity_days = 3650;
constexpr unsigned max_validity_days = 3650;
constexpr std::size_t max_secret_file_bytes = 1 << 20;

// ---------------------------------------------------------------------------------------------
// Files

// The names of the entries of `dir` (sorted; none when it is missing), without throwing.
std::vector<std::string> list_dir(const fs::path& dir, bool directories_only) {
  std::vector<std::string> names;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    std::error_code type_ec;
    if (directories_only && !it->is_directory(type_ec)) continue;
    names.push_back(it->path().filename().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

bool path_exists(const fs::path& p) {
  std::error_code ec;
  return fs::exists(fs::symlink_status(p, ec));
}

// Creates `p` (not its parents) as a 0700 directory, or tightens an existing one to 0700.
expected<void> ensure_private_dir(const fs::path& p) {
  if (::mkdir(p.c_str(), 0700) != 0 && errno != EEXIST)
    return fail(errc::io_error, fmt::format("cannot create directory {}: {}; check the permissions of {}", p.string(),
                                            errno_text(errno), p.parent_path().string()));
  struct stat st {};
  if (::lstat(p.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
    return fail(errc::io_error, fmt::format("{} exists and is not a directory; move it away", p.string()));
  if ((st.st_mode & 07777) != 0700 && ::chmod(p.c_str(), 0700) != 0)
    return fail(errc::io_error, fmt::format("cannot chmod 700 {}: {}", p.string(), errno_text(errno)));
  return {};
}

// Writes `data` to `p` with `mode` through a temporary file in the same directory and rename(2),
// fsyncing file and directory, so that readers see the old file or the whole new one.
expected<void> write_file_atomic(const fs::path& p, std::span<const std::byte> data, mode_t mode) {
  std::string tmp = (p.parent_path() / fmt::format(".{}.tmp-XXXXXX", p.filename().string())).string();
  const int fd = ::mkostemp(tmp.data(), O_CLOEXEC);  // created 0600
  if (fd < 0)
    return fail(errc::io_error, fmt::format("cannot create a file in {}: {}; check its permissions and free space",
                                            p.parent_path().string(), errno_text(errno)));
  auto abandon = [&](std::string what) -> expected<void> {
    const int e = errno;
    ::close(fd);
    ::unlink(tmp.c_str());
    return fail(errc::io_error, fmt::format("cannot write {}: {} ({}); check free space and permissions", p.string(),
                                            what, errno_text(e)));
  };
  const auto* bytes = reinterpret_cast<const char*>(data.data());
  std::size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = ::write(fd, bytes + done, data.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return abandon("write");
    }
    done += static_cast<std::size_t>(n);
  }
  if (::fchmod(fd, mode) != 0) return abandon("fchmod");
  if (::fsync(fd) != 0) return abandon("fsync");
  if (::close(fd) != 0) {
    const int e = errno;
    ::unlink(tmp.c_str());
    return fail(errc::io_error, fmt::format("cannot write {}: close ({})", p.string(), errno_text(e)));
  }
  if (::rename(tmp.c_str(), p.c_str()) != 0) {
    const int e = errno;
    ::unlink(tmp.c_str());
    return fail(errc::io_error, fmt::format("cannot rename {} to {}: {}", tmp, p.string(), errno_text(e)));
  }
  if (const int dfd = ::open(p.parent_path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
  return {};
}

expected<void> write_text(const fs::path& p, std::string_view text, mode_t mode) {
  return write_file_atomic(p, std::as_bytes(std::span(text.data(), text.size())), mode);
}

// Reads a regular file (symlinks followed: the target's type and mode count) through `sink`; returns
// its mode bits.
template <class Sink>
expected<mode_t> read_regular_file(const fs::path& p, Sink&& sink) {
  const int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int e = errno;
    return fail(errc::io_error, fmt::format("cannot open {}: {}{}", p.string(), errno_text(e),
                                            e == ENOENT ? "; check the path (run `cvqkd pki init` to create it)" : ""));
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return fail(errc::io_error, fmt::format("{} is not a regular file; point to the file itself", p.string()));
  }
  if (static_cast<std::size_t>(st.st_size) > max_secret_file_bytes) {
    ::close(fd);
    return fail(errc::io_error, fmt::format("{} is {} bytes, larger than any PKI file ({} bytes at most); check the path",
                                            p.string(), st.st_size, max_secret_file_bytes));
  }
  auto r = sink(fd, static_cast<std::size_t>(st.st_size), st.st_mode);
  ::close(fd);
  if (!r) return std::unexpected(r.error());
  return st.st_mode & 07777;
}

// Reads exactly n bytes from fd into dst.
expected<void> read_exact(int fd, std::byte* dst, std::size_t n, const fs::path& p) {
  std::size_t done = 0;
  while (done < n) {
    const ssize_t r = ::read(fd, dst + done, n - done);
    if (r < 0) {
      if (errno == EINTR) continue;
      return fail(errc::io_error, fmt::format("cannot read {}: {}", p.string(), errno_text(errno)));
    }
    if (r == 0) return fail(errc::io_error, fmt::format("{} shrank while being read; retry", p.string()));
    done += static_cast<std::size_t>(r);
  }
  return {};
}

expected<secret_text> read_secret_text(const fs::path& p) {
  secret_text out;
  auto r = read_regular_file(p, [&](int fd, std::size_t n, mode_t) -> expected<void> {
    out.text.resize(n);
    return read_exact(fd, reinterpret_cast<std::byte*>(out.text.data()), n, p);
  });
  if (!r) return std::unexpected(r.error());
  return out;
}

// ---------------------------------------------------------------------------------------------
// PEM, keys and certificates

// Refuses to prompt for a passphrase: demo keys are unencrypted, anything else is an error.
int no_passphrase(char*, int, int, void*) { return 0; }

bio_ptr mem_bio(std::string_view text) {
  return bio_ptr(BIO_new_mem_buf(text.data(), static_cast<int>(text.size())));
}

// All certificates of a PEM text, in order.
expected<std::vector<x509_ptr>> parse_certificates(std::string_view pem, std::string_view what) {
  ERR_clear_error();
  auto bio = mem_bio(pem);
  if (!bio) return fail(errc::io_error, "out of memory reading a certificate");
  std::vector<x509_ptr> certs;
  while (X509* x = PEM_read_bio_X509(bio.get(), nullptr, no_passphrase, nullptr)) certs.emplace_back(x);
  const unsigned long last = ERR_peek_last_error();
  // Reaching the end of the text is how the loop ends; anything else is a malformed block.
  if (last != 0 && !(ERR_GET_LIB(last) == ERR_LIB_PEM && ERR_GET_REASON(last) == PEM_R_NO_START_LINE))
    return fail(errc::parse_error, fmt::format("{} holds a malformed PEM certificate ({}); copy it again from the PKI "
                                               "directory",
                                               what, ssl_errors()));
  ERR_clear_error();
  if (certs.empty())
    return fail(errc::parse_error, fmt::format("{} holds no PEM certificate (expected '-----BEGIN CERTIFICATE-----'); "
                                               "check that it is a certificate, not a key",
                                               what));
  return certs;
}

expected<pkey_ptr> parse_private_key(std::string_view pem, const fs::path& file) {
  ERR_clear_error();
  auto bio = mem_bio(pem);
  pkey_ptr key(bio ? PEM_read_bio_PrivateKey(bio.get(), nullptr, no_passphrase, nullptr) : nullptr);
  if (!key)
    return fail(errc::parse_error, fmt::format("{} is not an unencrypted PEM private key ({}); point to the .key file "
                                               "written by `cvqkd pki`",
                                               file.string(), ssl_errors()));
  return key;
}

expected<pkey_ptr> load_private_key(const fs::path& file) {
  auto text = read_secret_text(file);
  if (!text) return std::unexpected(text.error());
  return parse_private_key(text->text, file);
}

expected<x509_ptr> load_certificate(const fs::path& file) {
  auto text = read_file_text(file);
  if (!text) return std::unexpected(text.error());
  auto certs = parse_certificates(*text, file.string());
  if (!certs) return std::unexpected(certs.error());
  return std::move(certs->front());
}

expected<pkey_ptr> generate_p256() {
  ERR_clear_error();
  pkey_ptr key(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
  if (!key) return fail(errc::io_error, fmt::format("cannot generate a P-256 key: {}", ssl_errors()));
  return key;
}

// PKCS#8 PEM of a private key, through a secure-heap BIO that cleanses its buffer when freed.
expected<secret_text> private_key_pem(EVP_PKEY* key) {
  ERR_clear_error();
  bio_ptr bio(BIO_new(BIO_s_secmem()));
  if (!bio || PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr) != 1)
    return fail(errc::io_error, fmt::format("cannot encode a private key: {}", ssl_errors()));
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio.get(), &data);
  secret_text out;
  out.text.assign(data, static_cast<std::size_t>(n));
  return out;
}

expected<std::string> certificate_pem(X509* cert) {
  bio_ptr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_X509(bio.get(), cert) != 1)
    return fail(errc::io_error, fmt::format("cannot encode a certificate: {}", ssl_errors()));
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<std::size_t>(n));
}

std::string name_entry(const X509_NAME* name, int nid) {
  const int i = X509_NAME_get_index_by_NID(name, nid, -1);
  if (i < 0) return {};
  const ASN1_STRING* s = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i));
  unsigned char* utf8 = nullptr;
  const int n = ASN1_STRING_to_UTF8(&utf8, s);
  if (n < 0) return {};
  std::string out(reinterpret_cast<const char*>(utf8), static_cast<std::size_t>(n));
  OPENSSL_free(utf8);
  return out;
}

std::string iso_time(const ASN1_TIME* t) {
  std::tm tm{};
  if (t == nullptr || ASN1_TIME_to_tm(t, &tm) != 1) return "?";
  std::array<char, 32> buf{};
  std::strftime(buf.data(), buf.size(), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf.data();
}

std::string one_line_name(const X509_NAME* name) {
  bio_ptr bio(BIO_new(BIO_s_mem()));
  if (!bio || X509_NAME_print_ex(bio.get(), name, 0, XN_FLAG_RFC2253) < 0) return "?";
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<std::size_t>(n));
}

expected<void> add_extension(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  ext_ptr ext(X509V3_EXT_nconf_nid(nullptr, &ctx, nid, value));
  if (!ext || X509_add_ext(cert, ext.get(), -1) != 1)
    return fail(errc::io_error, fmt::format("cannot add the extension {}={}: {}", OBJ_nid2sn(nid), value, ssl_errors()));
  return {};
}

struct cert_request {
  std::string common_name;
  std::string_view role;
  EVP_PKEY* subject_key = nullptr;
  X509* issuer = nullptr;  // nullptr: self-signed
  EVP_PKEY* issuer_key = nullptr;
  long validity_days = 0;
  std::vector<std::pair<int, std::string>> extensions;  // beyond subject/authority key identifiers
};

expected<x509_ptr> make_certificate(const cert_request& r) {
  ERR_clear_error();
  x509_ptr cert(X509_new());
  if (!cert) return fail(errc::io_error, "out of memory creating a certificate");
  auto fail_ssl = [](std::string_view what) {
    return fail(errc::io_error, fmt::format("cannot build a certificate ({}): {}", what, ssl_errors()));
  };
  if (X509_set_version(cert.get(), X509_VERSION_3) != 1) return fail_ssl("version");

  // Serial: 128 random bits (RFC 5280 4.1.2.2 allows up to 20 octets; CA/B forum asks >= 64 random bits).
  std::array<unsigned char, 16> serial{};
  if (RAND_bytes(serial.data(), static_cast<int>(serial.size())) != 1) return fail_ssl("serial");
  bn_ptr bn(BN_bin2bn(serial.data(), static_cast<int>(serial.size()), nullptr));
  if (!bn || BN_to_ASN1_INTEGER(bn.get(), X509_get_serialNumber(cert.get())) == nullptr) return fail_ssl("serial");

  // Back-dated five minutes so that a peer whose clock lags slightly accepts a fresh certificate.
  if (X509_gmtime_adj(X509_getm_notBefore(cert.get()), -300) == nullptr ||
      X509_time_adj_ex(X509_getm_notAfter(cert.get()), static_cast<int>(r.validity_days), 0, nullptr) == nullptr)
    return fail_ssl("validity");

  name_ptr name(X509_NAME_new());
  const auto add = [&](const char* field, std::string_view value) {
    return X509_NAME_add_entry_by_txt(name.get(), field, MBSTRING_UTF8,
                                      reinterpret_cast<const unsigned char*>(value.data()),
                                      static_cast<int>(value.size()), -1, 0) == 1;
  };
  if (!name || !add("O", "cvqkd demo") || !add("OU", r.role) || !add("CN", r.common_name)) return fail_ssl("subject");
  if (X509_set_subject_name(cert.get(), name.get()) != 1) return fail_ssl("subject");
  if (X509_set_issuer_name(cert.get(), r.issuer ? X509_get_subject_name(r.issuer) : name.get()) != 1)
    return fail_ssl("issuer");
  if (X509_set_pubkey(cert.get(), r.subject_key) != 1) return fail_ssl("public key");

  X509* issuer = r.issuer ? r.issuer : cert.get();
  for (const auto& [nid, value] : r.extensions)
    if (auto ok = add_extension(cert.get(), issuer, nid, value.c_str()); !ok) return std::unexpected(ok.error());
  if (auto ok = add_extension(cert.get(), issuer, NID_subject_key_identifier, "hash"); !ok)
    return std::unexpected(ok.error());
  if (r.issuer != nullptr)
    if (auto ok = add_extension(cert.get(), issuer, NID_authority_key_identifier, "keyid:always"); !ok)
      return std::unexpected(ok.error());

  if (X509_sign(cert.get(), r.issuer_key, EVP_sha256()) <= 0) return fail_ssl("signature");
  return cert;
}

// ---------------------------------------------------------------------------------------------
// The CA and the identities it issues

struct ca_material {
  x509_ptr cert;
  pkey_ptr key;
  std::string cert_pem;
};

bool ca_present(const fs::path& dir) { return path_exists(ca_cert_file(dir)) || path_exists(ca_key_file(dir)); }

expected<ca_material> load_ca(const fs::path& dir) {
  const auto crt = ca_cert_file(dir), key = ca_key_file(dir);
  if (!path_exists(crt) || !path_exists(key))
    return fail(errc::config_error,
                fmt::format("no complete CA under {} ({} or {} missing); create one with `cvqkd pki init --dir {}` "
                            "(add --force to discard a broken one)",
                            dir.string(), crt.string(), key.string(), dir.string()));
  ca_material ca;
  auto pem = read_file_text(crt);
  if (!pem) return std::unexpected(pem.error());
  auto certs = parse_certificates(*pem, crt.string());
  if (!certs) return std::unexpected(certs.error());
  ca.cert = std::move(certs->front());
  ca.cert_pem = std::move(*pem);
  auto k = load_private_key(key);
  if (!k) return std::unexpected(k.error());
  ca.key = std::move(*k);
  if (X509_check_private_key(ca.cert.get(), ca.key.get()) != 1) {
    ERR_clear_error();
    return fail(errc::config_error, fmt::format("{} does not belong to {}; restore the matching pair, or start over "
                                                "with `cvqkd pki init --force`",
                                                key.string(), crt.string()));
  }
  if (X509_check_ca(ca.cert.get()) == 0)
    return fail(errc::config_error, fmt::format("{} is not a CA certificate; start over with `cvqkd pki init --force`",
                                                crt.string()));
  return ca;
}

expected<ca_material> create_ca(const fs::path& dir) {
  if (auto ok = ensure_private_dir(dir / "ca"); !ok) return std::unexpected(ok.error());
  auto key = generate_p256();
  if (!key) return std::unexpected(key.error());
  // A random suffix tells apart the CAs of different commissioning runs (in errors and `pki show`).
  std::array<unsigned char, 4> tag{};
  if (RAND_bytes(tag.data(), static_cast<int>(tag.size())) != 1)
    return fail(errc::io_error, fmt::format("random generator failed: {}", ssl_errors()));
  cert_request req{.common_name = fmt::format("cvqkd demo CA {:02x}{:02x}{:02x}{:02x}", tag[0], tag[1], tag[2], tag[3]),
                   .role = role_ca,
                   .subject_key = key->get(),
                   .issuer = nullptr,
                   .issuer_key = key->get(),
                   .validity_days = ca_validity_days,
                   .extensions = {{NID_basic_constraints, "critical,CA:TRUE,pathlen:0"},
                                  {NID_key_usage, "critical,keyCertSign,cRLSign"}}};
  auto cert = make_certificate(req);
  if (!cert) return std::unexpected(cert.error());
  auto key_pem = private_key_pem(key->get());
  if (!key_pem) return std::unexpected(key_pem.error());
  auto cert_pem = certificate_pem(cert->get());
  if (!cert_pem) return std::unexpected(cert_pem.error());
  if (auto ok = write_text(ca_key_file(dir), key_pem->text, 0600); !ok) return std::unexpected(ok.error());
  if (auto ok = write_text(ca_cert_file(dir), *cert_pem, 0644); !ok) return std::unexpected(ok.error());
  return ca_material{std::move(*cert), std::move(*key), std::move(*cert_pem)};
}

// The IP addresses in the certificate's subjectAltName, in order (IPv4 dotted quads, IPv6 text).
std::vector<std::string> ip_addresses_of(X509* cert) {
  std::vector<std::string> out;
  auto* names = static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  if (names == nullptr) return out;
  for (int i = 0; i < sk_GENERAL_NAME_num(names); ++i) {
    const GENERAL_NAME* g = sk_GENERAL_NAME_value(names, i);
    if (g->type != GEN_IPADD) continue;
    const int len = ASN1_STRING_length(g->d.iPAddress);
    const unsigned char* data = ASN1_STRING_get0_data(g->d.iPAddress);
    char text[INET6_ADDRSTRLEN] = {};
    if ((len == 4 && ::inet_ntop(AF_INET, data, text, sizeof text)) ||
        (len == 16 && ::inet_ntop(AF_INET6, data, text, sizeof text)))
      out.emplace_back(text);
  }
  GENERAL_NAMES_free(names);
  return out;
}

expected<void> write_identity(const fs::path& dir, const ca_material& ca, kind k, std::string_view name, unsigned days,
                              const std::vector<std::string>& addresses = {}) {
  for (const auto& d : {dir / kind_dir(k), identity_dir(dir, k, name)})
    if (auto ok = ensure_private_dir(d); !ok) return ok;
  if (k == kind::node)
    if (auto ok = ensure_private_dir(identity_dir(dir, k, name) / "secrets"); !ok) return ok;
  auto key = generate_p256();
  if (!key) return std::unexpected(key.error());
  cert_request req{.common_name = std::string(name),
                   .role = kind_role(k),
                   .subject_key = key->get(),
                   .issuer = ca.cert.get(),
                   .issuer_key = ca.key.get(),
                   .validity_days = days,
                   .extensions = {{NID_basic_constraints, "critical,CA:FALSE"},
                                  {NID_key_usage, "critical,digitalSignature"}}};
  if (k == kind::node) {
    // The node is TLS server (inter-node channel, ETSI 014 KME) and client (inter-node channel).
    req.extensions.emplace_back(NID_ext_key_usage, "serverAuth,clientAuth");
    std::string san = "DNS:localhost,IP:127.0.0.1";
    for (const auto& a : addresses)
      if (a != "127.0.0.1") san += ",IP:" + a;
    req.extensions.emplace_back(NID_subject_alt_name, san);
  } else {
    req.extensions.emplace_back(NID_ext_key_usage, "clientAuth");
  }
  auto cert = make_certificate(req);
  if (!cert) return std::unexpected(cert.error());
  auto key_pem = private_key_pem(key->get());
  if (!key_pem) return std::unexpected(key_pem.error());
  auto cert_pem = certificate_pem(cert->get());
  if (!cert_pem) return std::unexpected(cert_pem.error());
  // Key first: an identity counts as present once its certificate exists.
  if (auto ok = write_text(key_file(dir, k, name), key_pem->text, 0600); !ok) return ok;
  if (auto ok = write_text(identity_dir(dir, k, name) / "ca.crt", ca.cert_pem, 0644); !ok) return ok;
  return write_text(cert_file(dir, k, name), *cert_pem, 0644);
}

// Checks an identity whose certificate exists: it verifies under `ca` with the right CN and OU, and
// its key matches. With `repair`, restores a missing CA copy (else reports it).
expected<void> check_identity(const fs::path& dir, const ca_material& ca, kind k, std::string_view name,
                              bool repair) {
  const auto crt = cert_file(dir, k, name);
  const auto redo = fmt::format("remove {} and run init again to reissue it, or start over with --force",
                                identity_dir(dir, k, name).string());
  auto pem = read_file_text(crt);
  if (!pem) return std::unexpected(pem.error());
  auto subj = verify_certificate(ca_cert_file(dir), *pem);
  if (!subj) return fail(errc::config_error, fmt::format("{}: {}; {}", crt.string(), subj.error().message, redo));
  if (subj->common_name != name || subj->role != kind_role(k))
    return fail(errc::config_error, fmt::format("{} names CN={}, OU={} instead of CN={}, OU={}; {}", crt.string(),
                                                subj->common_name, subj->role, name, kind_role(k), redo));
  auto key = load_private_key(key_file(dir, k, name));
  if (!key) return fail(errc::config_error, fmt::format("{}; {}", key.error().message, redo));
  auto cert = parse_certificates(*pem, crt.string());
  if (!cert) return std::unexpected(cert.error());
  if (X509_check_private_key(cert->front().get(), key->get()) != 1) {
    ERR_clear_error();
    return fail(errc::config_error,
                fmt::format("{} does not match {}; {}", key_file(dir, k, name).string(), crt.string(), redo));
  }
  const auto ca_copy = identity_dir(dir, k, name) / "ca.crt";
  auto copy = read_file_text(ca_copy);
  if (!copy || *copy != ca.cert_pem) {
    if (repair) return write_text(ca_copy, ca.cert_pem, 0644);
    return fail(errc::config_error,
                fmt::format("{} is missing or differs from the CA certificate; run `cvqkd pki init --dir {}` to "
                            "restore it",
                            ca_copy.string(), dir.string()));
  }
  return {};
}

// Issues the identity unless it exists (then checks it). A node certificate whose subjectAltName
// lacks one of `addresses` is reissued (new key and certificate under the same CA; its link secrets
// stay), so that moving a site to another address needs no manual step. Returns whether it was issued.
expected<bool> ensure_identity(const fs::path& dir, const ca_material& ca, kind k, std::string_view name,
                               unsigned days, const std::vector<std::string>& addresses = {}) {
  if (path_exists(cert_file(dir, k, name))) {
    if (auto ok = check_identity(dir, ca, k, name, true); !ok) return std::unexpected(ok.error());
    if (addresses.empty()) return false;
    auto cert = load_certificate(cert_file(dir, k, name));
    if (!cert) return std::unexpected(cert.error());
    const auto have = ip_addresses_of(cert->get());
    if (std::all_of(addresses.begin(), addresses.end(),
                    [&](const std::string& a) { return std::find(have.begin(), have.end(), a) != have.end(); }))
      return false;
  }
  if (auto ok = write_identity(dir, ca, k, name, days, addresses); !ok) return std::unexpected(ok.error());
  return true;
}

// Checks the extra subjectAltName addresses of a node: IPv4 or IPv6 literals, returned in canonical text.
expected<std::vector<std::string>> canonical_addresses(std::string_view node, const std::vector<std::string>& in) {
  std::vector<std::string> out;
  for (const auto& a : in) {
    unsigned char buf[16] = {};
    char text[INET6_ADDRSTRLEN] = {};
    if (::inet_pton(AF_INET, a.c_str(), buf) == 1) ::inet_ntop(AF_INET, buf, text, sizeof text);
    else if (::inet_pton(AF_INET6, a.c_str(), buf) == 1) ::inet_ntop(AF_INET6, buf, text, sizeof text);
    else
      return fail(errc::invalid_argument,
                  fmt::format("address '{}' of node {} is not an IP address; give the IPv4 (or IPv6) address the "
                              "node listens on, e.g. 10.91.0.2",
                              a, node));
    if (std::find(out.begin(), out.end(), text) == out.end()) out.emplace_back(text);
  }
  return out;
}

bool node_issued(const fs::path& dir, std::string_view node) { return path_exists(cert_file(dir, kind::node, node)); }

// Nodes holding <link_id>.psk.
std::vector<std::string> secret_holders(const fs::path& dir, std::string_view link_id) {
  std::vector<std::string> holders;
  for (const auto& node : list_dir(dir / "nodes", true))
    if (path_exists(secret_file(dir, node, link_id))) holders.push_back(node);
  return holders;
}

// The ID must not already connect other nodes (a link ID names one link).
expected<void> check_link_unused_elsewhere(const fs::path& dir, std::string_view link_id, std::string_view a,
                                           std::string_view b) {
  for (const auto& holder : secret_holders(dir, link_id))
    if (holder != a && holder != b)
      return fail(errc::invalid_argument,
                  fmt::format("link ID '{}' is already used by node '{}' ({}); choose another link ID for {}:{}",
                              link_id, holder, secret_file(dir, holder, link_id).string(), a, b));
  return {};
}

expected<secure_buffer> read_secret_file(const fs::path& p) {
  secure_buffer out;
  auto mode = read_regular_file(p, [&](int fd, std::size_t n, mode_t m) -> expected<void> {
    if ((m & 077) != 0)
      return fail(errc::config_error,
                  fmt::format("{} is readable or writable by group or others (mode {:04o}); a link secret must be "
                              "private: run `chmod 600 {}`",
                              p.string(), m & 07777, p.string()));
    if (n < link_secret_min_bytes)
      return fail(errc::config_error,
                  fmt::format("{} holds {} bytes, fewer than the {} a link secret needs; copy the link's secret again "
                              "from the PKI directory (`cvqkd pki issue --link ...` writes one)",
                              p.string(), n, link_secret_min_bytes));
    out = secure_buffer(n);
    return read_exact(fd, out.data(), n, p);
  });
  if (!mode) return std::unexpected(mode.error());
  return out;
}

expected<void> write_link_secret(const fs::path& dir, std::string_view node, std::string_view link_id,
                                 std::span<const std::byte> secret) {
  const auto secrets = dir / "nodes" / node / "secrets";
  if (auto ok = ensure_private_dir(secrets); !ok) return ok;
  return write_file_atomic(secret_file(dir, node, link_id), secret, 0600);
}

expected<void> validate_days(unsigned days) {
  if (days < 1 || days > max_validity_days)
    return fail(errc::invalid_argument,
                fmt::format("validity of {} days is outside 1..{}; choose a validity up to the CA's 10 years", days,
                            max_validity_days));
  return {};
}

expected<void> prepare_root(const fs::path& dir) {
  if (dir.empty()) return fail(errc::invalid_argument, "no PKI directory given; pass --dir DIR");
  std::error_code ec;
  if (!fs::exists(dir, ec)) {
    fs::create_directories(dir, ec);
    if (ec)
      return fail(errc::io_error, fmt::format("cannot create {}: {}; check the permissions of its parent", dir.string(),
                                              ec.message()));
    if (::chmod(dir.c_str(), 0700) != 0)
      return fail(errc::io_error, fmt::format("cannot chmod 700 {}: {}", dir.string(), errno_text(errno)));
  } else if (!fs::is_directory(dir, ec)) {
    return fail(errc::config_error, fmt::format("{} exists and is not a directory; choose another --dir", dir.string()));
  }
  return {};
}

}  // namespace

// ---------------------------------------------------------------------------------------------

std::string_view to_string(kind k) noexcept {
  switch (k) {
    case kind::node: return "node";
    case kind::sae: return "sae";
    case kind::operator_: return "operator";
  }
  return "?";
}

expected<void> validate_name(std::string_view what, std::string_view name) {
  const auto allowed = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
           c == '-';
  };
  if (name.empty() || name.size() > 64 || name == "." || name == ".." ||
      !std::all_of(name.begin(), name.end(), allowed))
    return fail(errc::invalid_argument,
                fmt::format("{} '{}' is not valid: use 1 to 64 characters of A-Z a-z 0-9 . _ - (it becomes a file "
                            "name)",
                            what, name));
  return {};
}

expected<void> init(const init_options& opts) {
  // 1. Validate everything before writing anything.
  if (auto ok = validate_days(opts.validity_days); !ok) return ok;
  if (opts.dir.empty()) return fail(errc::invalid_argument, "no PKI directory given; pass --dir DIR");
  for (const auto& n : opts.nodes)
    if (auto ok = validate_name("node ID", n); !ok) return ok;
  for (const auto& s : opts.saes) {
    if (auto ok = validate_name("SAE ID", s.id); !ok) return ok;
    if (auto ok = validate_name("home node of SAE " + s.id, s.node); !ok) return ok;
  }
  for (const auto& o : opts.operators)
    if (auto ok = validate_name("operator name", o); !ok) return ok;
  std::map<std::string, std::vector<std::string>> addresses;
  for (const auto& [node, list] : opts.node_addresses) {
    if (std::find(opts.nodes.begin(), opts.nodes.end(), node) == opts.nodes.end())
      return fail(errc::invalid_argument,
                  fmt::format("addresses are given for node '{}', which is not among the nodes to issue; add --node {}",
                              node, node));
    auto canon = canonical_addresses(node, list);
    if (!canon) return std::unexpected(canon.error());
    addresses[node] = std::move(*canon);
  }

  std::error_code ec;
  if (fs::exists(opts.dir, ec) && !fs::is_directory(opts.dir, ec))
    return fail(errc::config_error,
                fmt::format("{} exists and is not a directory; choose another --dir", opts.dir.string()));
  const bool reuse = ca_present(opts.dir) && !opts.force;
  if (!ca_present(opts.dir) && !opts.force)
    for (const char* sub : {"nodes", "saes", "operators"})
      if (!list_dir(opts.dir / sub, false).empty())
        return fail(errc::config_error,
                    fmt::format("{} holds issued identities but no CA (ca/ca.crt, ca/ca.key); restore the CA, or "
                                "discard everything with --force",
                                opts.dir.string()));
  std::optional<ca_material> ca;
  if (reuse) {
    auto loaded = load_ca(opts.dir);
    if (!loaded) return std::unexpected(loaded.error());
    ca = std::move(*loaded);
  }
  const std::set<std::string> new_nodes(opts.nodes.begin(), opts.nodes.end());
  const auto known_node = [&](const std::string& n) {
    return new_nodes.contains(n) || (reuse && node_issued(opts.dir, n));
  };
  for (const auto& s : opts.saes)
    if (!known_node(s.node))
      return fail(errc::invalid_argument,
                  fmt::format("SAE {} names home node '{}', which is neither given with --node nor issued under {}; "
                              "add --node {}",
                              s.id, s.node, opts.dir.string(), s.node));
  std::map<std::string, std::pair<std::string, std::string>> links;
  for (const auto& l : opts.links) {
    if (auto ok = validate_name("link ID", l.id); !ok) return ok;
    if (auto ok = validate_name("node ID", l.node_a); !ok) return ok;
    if (auto ok = validate_name("node ID", l.node_b); !ok) return ok;
    if (l.node_a == l.node_b)
      return fail(errc::invalid_argument,
                  fmt::format("link {} joins node {} to itself; a link needs two different nodes", l.id, l.node_a));
    for (const auto& n : {l.node_a, l.node_b})
      if (!known_node(n))
        return fail(errc::invalid_argument,
                    fmt::format("link {} ends at node '{}', which is neither given with --node nor issued under {}; "
                                "add --node {}",
                                l.id, n, opts.dir.string(), n));
    auto ends = std::minmax(l.node_a, l.node_b);
    auto [it, inserted] = links.emplace(l.id, std::pair{ends.first, ends.second});
    if (!inserted && it->second != std::pair{ends.first, ends.second})
      return fail(errc::invalid_argument,
                  fmt::format("link ID {} is given twice, for {}:{} and {}:{}; give each link its own ID", l.id,
                              it->second.first, it->second.second, ends.first, ends.second));
    if (reuse)
      if (auto ok = check_link_unused_elsewhere(opts.dir, l.id, l.node_a, l.node_b); !ok) return ok;
  }

  // 2. The CA: reuse, or create (after discarding the old PKI with --force).
  if (auto ok = prepare_root(opts.dir); !ok) return ok;
  if (!reuse) {
    if (opts.force)
      for (const char* sub : {"ca", "nodes", "saes", "operators"}) {
        fs::remove_all(opts.dir / sub, ec);
        if (ec)
          return fail(errc::io_error, fmt::format("cannot remove {}: {}; remove it by hand",
                                                  (opts.dir / sub).string(), ec.message()));
      }
    auto created = create_ca(opts.dir);
    if (!created) return std::unexpected(created.error());
    ca = std::move(*created);
  }

  // 3. Identities, then link secrets.
  for (const auto& n : new_nodes)
    if (auto ok = ensure_identity(opts.dir, *ca, kind::node, n, opts.validity_days, addresses[n]); !ok)
      return std::unexpected(ok.error());
  for (const auto& s : opts.saes)
    if (auto ok = ensure_identity(opts.dir, *ca, kind::sae, s.id, opts.validity_days); !ok)
      return std::unexpected(ok.error());
  for (const auto& o : opts.operators)
    if (auto ok = ensure_identity(opts.dir, *ca, kind::operator_, o, opts.validity_days); !ok)
      return std::unexpected(ok.error());
  for (const auto& [id, ends] : links)
    if (auto ok = issue_link_secret(opts.dir, id, ends.first, ends.second); !ok) return ok;
  return {};
}

expected<void> issue(const fs::path& dir, kind k, std::string_view name, unsigned validity_days, bool replace,
                     const std::vector<std::string>& node_addresses) {
  if (auto ok = validate_days(validity_days); !ok) return ok;
  static constexpr std::array<std::string_view, 3> what{"node ID", "SAE ID", "operator name"};
  if (auto ok = validate_name(what[static_cast<std::size_t>(k)], name); !ok) return ok;
  if (k != kind::node && !node_addresses.empty())
    return fail(errc::invalid_argument, fmt::format("addresses go into node certificates only; drop them for {} {}",
                                                    to_string(k), name));
  auto addresses = canonical_addresses(name, node_addresses);
  if (!addresses) return std::unexpected(addresses.error());
  auto ca = load_ca(dir);
  if (!ca) return std::unexpected(ca.error());
  if (!replace && path_exists(cert_file(dir, k, name)))
    return fail(errc::config_error, fmt::format("{} {} already exists ({}); pass --force to replace its key and "
                                                "certificate (renewal)",
                                                to_string(k), name, cert_file(dir, k, name).string()));
  return write_identity(dir, *ca, k, name, validity_days, *addresses);
}

expected<void> issue_link_secret(const fs::path& dir, std::string_view link_id, std::string_view node_a,
                                 std::string_view node_b) {
  if (auto ok = validate_name("link ID", link_id); !ok) return ok;
  if (auto ok = validate_name("node ID", node_a); !ok) return ok;
  if (auto ok = validate_name("node ID", node_b); !ok) return ok;
  if (node_a == node_b)
    return fail(errc::invalid_argument,
                fmt::format("link {} joins node {} to itself; a link needs two different nodes", link_id, node_a));
  for (const auto n : {node_a, node_b})
    if (!node_issued(dir, n))
      return fail(errc::config_error, fmt::format("node {} has no certificate under {}; issue it first: `cvqkd pki "
                                                  "issue --dir {} --node {}`",
                                                  n, dir.string(), dir.string(), n));
  if (auto ok = check_link_unused_elsewhere(dir, link_id, node_a, node_b); !ok) return ok;

  const auto file_a = secret_file(dir, node_a, link_id), file_b = secret_file(dir, node_b, link_id);
  const bool has_a = path_exists(file_a), has_b = path_exists(file_b);
  if (has_a && has_b) {
    auto a = read_secret_file(file_a);
    if (!a) return std::unexpected(a.error());
    auto b = read_secret_file(file_b);
    if (!b) return std::unexpected(b.error());
    if (a->size() != b->size() || !constant_time_equal(a->bytes(), b->bytes()))
      return fail(errc::config_error,
                  fmt::format("the two ends of link {} hold different secrets ({} and {}); delete both and run `cvqkd "
                              "pki issue --dir {} --link {}:{}:{}` to commission it again",
                              link_id, file_a.string(), file_b.string(), dir.string(), link_id, node_a, node_b));
    return {};
  }
  if (has_a || has_b) {  // one end was commissioned: give the other the same secret
    auto s = read_secret_file(has_a ? file_a : file_b);
    if (!s) return std::unexpected(s.error());
    return write_link_secret(dir, has_a ? node_b : node_a, link_id, s->bytes());
  }
  secure_buffer secret(link_secret_bytes);
  if (RAND_priv_bytes(reinterpret_cast<unsigned char*>(secret.data()), static_cast<int>(secret.size())) != 1)
    return fail(errc::io_error, fmt::format("OpenSSL's random generator failed ({}); no secret written", ssl_errors()));
  if (auto ok = write_link_secret(dir, node_a, link_id, secret.bytes()); !ok) return ok;
  return write_link_secret(dir, node_b, link_id, secret.bytes());
}

expected<inventory> inspect(const fs::path& dir) {
  auto ca = load_ca(dir);
  if (!ca) return std::unexpected(ca.error());
  inventory inv;
  const X509_NAME* ca_name = X509_get_subject_name(ca->cert.get());
  inv.ca = {.kind = "ca",
            .name = "ca",
            .common_name = name_entry(ca_name, NID_commonName),
            .role = name_entry(ca_name, NID_organizationalUnitName),
            .not_after = iso_time(X509_get0_notAfter(ca->cert.get())),
            .file = ca_cert_file(dir),
            .problem = {}};
  if (X509_cmp_current_time(X509_get0_notAfter(ca->cert.get())) < 0)
    inv.ca.problem = "expired; start over with `cvqkd pki init --force` (every certificate must be reissued)";

  for (const kind k : {kind::node, kind::sae, kind::operator_}) {
    for (const auto& n : list_dir(dir / kind_dir(k), true)) {
      certificate_info info;
      info.kind = to_string(k);
      info.name = n;
      info.file = cert_file(dir, k, n);
      auto cert = load_certificate(info.file);
      if (!cert) {
        info.problem = cert.error().message;
      } else {
        const X509_NAME* s = X509_get_subject_name(cert->get());
        info.common_name = name_entry(s, NID_commonName);
        info.role = name_entry(s, NID_organizationalUnitName);
        info.not_after = iso_time(X509_get0_notAfter(cert->get()));
        info.ip_addresses = ip_addresses_of(cert->get());
        if (auto ok = check_identity(dir, *ca, k, n, false); !ok) info.problem = ok.error().message;
      }
      inv.certificates.push_back(std::move(info));
    }
  }

  std::map<std::string, link_secret_info> links;
  for (const auto& node : list_dir(dir / "nodes", true))
    for (const auto& f : list_dir(dir / "nodes" / node / "secrets", false)) {
      const fs::path file(f);
      if (file.extension() != ".psk" || f.starts_with(".")) continue;
      auto& l = links[file.stem().string()];
      l.id = file.stem().string();
      l.nodes.push_back(node);
    }
  for (auto& [id, l] : links) {
    std::sort(l.nodes.begin(), l.nodes.end());
    std::vector<secure_buffer> secrets;
    for (const auto& n : l.nodes) {
      auto s = read_secret_file(secret_file(dir, n, id));
      if (!s) {
        l.problem = s.error().message;
        break;
      }
      l.bytes = s->size();
      secrets.push_back(std::move(*s));
    }
    if (l.problem.empty()) {
      if (l.nodes.size() != 2)
        l.problem = fmt::format("held by {} node(s) instead of 2; a link ID names exactly one link", l.nodes.size());
      else if (secrets[0].size() != secrets[1].size() || !constant_time_equal(secrets[0].bytes(), secrets[1].bytes()))
        l.problem = "the two ends hold different secrets; delete both files and issue the link again";
    }
    inv.links.push_back(std::move(l));
  }
  return inv;
}

// ---------------------------------------------------------------------------------------------
// Runtime helpers

expected<subject> verify_certificate(const fs::path& ca_file, std::string_view cert_pem) {
  auto ca_text = read_file_text(ca_file);
  if (!ca_text) return std::unexpected(ca_text.error());
  auto cas = parse_certificates(*ca_text, ca_file.string());
  if (!cas) return std::unexpected(cas.error());
  auto chain = parse_certificates(cert_pem, "the presented certificate");
  if (!chain) return std::unexpected(chain.error());

  store_ptr store(X509_STORE_new());
  x509_stack_ptr untrusted(sk_X509_new_null());
  store_ctx_ptr ctx(X509_STORE_CTX_new());
  if (!store || !untrusted || !ctx) return fail(errc::io_error, "out of memory verifying a certificate");
  for (const auto& c : *cas)
    if (X509_STORE_add_cert(store.get(), c.get()) != 1)
      return fail(errc::io_error, fmt::format("cannot use the CA in {}: {}", ca_file.string(), ssl_errors()));
  for (std::size_t i = 1; i < chain->size(); ++i)
    if (sk_X509_push(untrusted.get(), X509_dup((*chain)[i].get())) <= 0)
      return fail(errc::io_error, "out of memory verifying a certificate");
  X509* leaf = chain->front().get();
  const std::string cn = name_entry(X509_get_subject_name(leaf), NID_commonName);
  if (X509_STORE_CTX_init(ctx.get(), store.get(), leaf, untrusted.get()) != 1 ||
      X509_STORE_CTX_set_purpose(ctx.get(), X509_PURPOSE_ANY) != 1)
    return fail(errc::io_error, fmt::format("cannot set up certificate verification: {}", ssl_errors()));

  if (X509_verify_cert(ctx.get()) != 1) {
    const int err = X509_STORE_CTX_get_error(ctx.get());
    X509* at = X509_STORE_CTX_get_current_cert(ctx.get());
    const std::string who = at ? fmt::format("certificate '{}'", name_entry(X509_get_subject_name(at), NID_commonName))
                               : std::string{"certificate"};
    ERR_clear_error();
    std::string why;
    switch (err) {
      case X509_V_ERR_CERT_HAS_EXPIRED:
        why = fmt::format("{} expired on {}; issue a new one (`cvqkd pki issue ... --force`)", who,
                          iso_time(X509_get0_notAfter(at)));
        break;
      case X509_V_ERR_CERT_NOT_YET_VALID:
        why = fmt::format("{} is not valid before {}; check this host's clock", who,
                          iso_time(X509_get0_notBefore(at)));
        break;
      case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
      case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
      case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
      case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
        why = fmt::format("{} was issued by another CA ({}), not by the CA in {}; use a certificate issued from this "
                          "PKI (`cvqkd pki issue`) or point to the right CA file",
                          who, at ? one_line_name(X509_get_issuer_name(at)) : std::string{"?"}, ca_file.string());
        break;
      case X509_V_ERR_CERT_SIGNATURE_FAILURE:
        why = fmt::format("the signature on {} does not verify under the CA in {}: it was altered or comes from "
                          "another CA of the same name; copy it again from the PKI directory",
                          who, ca_file.string());
        break;
      default:
        why = fmt::format("{} rejected: {}; reissue it with `cvqkd pki issue`", who,
                          X509_verify_cert_error_string(err));
    }
    return fail(errc::config_error, std::move(why));
  }
  subject s{cn, name_entry(X509_get_subject_name(leaf), NID_organizationalUnitName)};
  if (s.common_name.empty())
    return fail(errc::config_error, "the certificate has no common name (CN), so it names no identity; issue it with "
                                    "`cvqkd pki issue`");
  return s;
}

expected<std::string> read_file_text(const fs::path& path) {
  std::string out;
  auto r = read_regular_file(path, [&](int fd, std::size_t n, mode_t) -> expected<void> {
    out.resize(n);
    return read_exact(fd, reinterpret_cast<std::byte*>(out.data()), n, path);
  });
  if (!r) return std::unexpected(r.error());
  return out;
}

expected<std::vector<std::byte>> sign(const fs::path& key_file, std::span<const std::byte> message) {
  auto key = load_private_key(key_file);
  if (!key) return std::unexpected(key.error());
  ERR_clear_error();
  md_ctx_ptr ctx(EVP_MD_CTX_new());
  std::size_t len = 0;
  const auto* msg = reinterpret_cast<const unsigned char*>(message.data());
  if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key->get()) != 1 ||
      EVP_DigestSign(ctx.get(), nullptr, &len, msg, message.size()) != 1)
    return fail(errc::parse_error, fmt::format("cannot sign with {} ({}); it must be an ECDSA key written by `cvqkd pki`",
                                               key_file.string(), ssl_errors()));
  std::vector<std::byte> sig(len);
  if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()), &len, msg, message.size()) != 1)
    return fail(errc::io_error, fmt::format("signing with {} failed: {}", key_file.string(), ssl_errors()));
  sig.resize(len);
  return sig;
}

expected<void> verify_signature(std::string_view cert_pem, std::span<const std::byte> message,
                                std::span<const std::byte> signature) {
  auto certs = parse_certificates(cert_pem, "the signer's certificate");
  if (!certs) return std::unexpected(certs.error());
  EVP_PKEY* pub = X509_get0_pubkey(certs->front().get());
  md_ctx_ptr ctx(EVP_MD_CTX_new());
  if (pub == nullptr || !ctx || EVP_DigestVerifyInit(ctx.get(), nullptr, EVP_sha256(), nullptr, pub) != 1)
    return fail(errc::parse_error,
                fmt::format("cannot use the signer's certificate for verification: {}", ssl_errors()));
  const int rc = EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(signature.data()), signature.size(),
                                  reinterpret_cast<const unsigned char*>(message.data()), message.size());
  ERR_clear_error();
  if (rc != 1)
    return fail(errc::invalid_argument,
                fmt::format("the signature does not match the message under the key of '{}': the message was altered "
                            "or signed by someone else; reject it",
                            name_entry(X509_get_subject_name(certs->front().get()), NID_commonName)));
  return {};
}

expected<secure_buffer> read_link_secret(const fs::path& secrets_dir, std::string_view link_id) {
  if (auto ok = validate_name("link ID", link_id); !ok) return std::unexpected(ok.error());
  return read_secret_file(secrets_dir / fmt::format("{}.psk", link_id));
}

}  // namespace cvqkd::pki
