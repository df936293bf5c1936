#pragma once
// The demo PKI a cvqkd network is commissioned with: a self-signed CA, one certificate per node,
// SAE (application) and operator, and one pre-shared authentication secret per link (it bootstraps
// the links' Wegman–Carter authentication), written to both end nodes' secrets directories.
//
// Layout under the PKI directory (fixed; `cvqkd node` and the API server read it):
//   ca/ca.crt, ca/ca.key                       self-signed CA, CA:TRUE, 10 years
//   nodes/<NODE>/node.crt, node.key, ca.crt    CN=<NODE>, OU=cvqkd-node, SAN DNS:localhost,
//                                              IP:127.0.0.1 and the node's own addresses when given
//                                              (a site on another host), extendedKeyUsage serverAuth+clientAuth
//   nodes/<NODE>/secrets/<LINK>.psk            4096 random bytes, identical at both ends of <LINK>
//   saes/<SAE>/sae.crt, sae.key, ca.crt        CN=<SAE>, OU=cvqkd-sae, clientAuth
//   operators/<NAME>/operator.crt, operator.key, ca.crt   CN=<NAME>, OU=cvqkd-operator, clientAuth
// Keys are ECDSA P-256 (PKCS#8 PEM, unencrypted), signatures ECDSA with SHA-256, serials 128-bit
// random. Private keys and secrets are written 0600, directories 0700, certificates 0644; every
// file is written to a temporary name and renamed, so a crash never leaves half a file.
//
// Identity = CN, role = OU. Names (node, SAE, operator and link IDs) are 1..64 characters of
// [A-Za-z0-9._-] because they become file names.
//
// Everything uses OpenSSL 3's libcrypto (EVP, X509); nothing shells out to the openssl CLI.

#include <cstddef>
#include <filesystem>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.hpp"
#include "core/secure_buffer.hpp"

namespace cvqkd::pki {

/// Size of a freshly issued link secret (the pre-shared authentication key a link starts from).
/// Every round draws links::round_auth_budget (112) bytes from it until committed rounds refill
/// the link's authentication pool, and rounds that make no key (a link beyond its reach, an
/// overloaded node, a fault) refill nothing: 1 MiB lasts about 9,000 such rounds (4 KiB lasted 36,
/// which a 90 km link with no key burned within minutes and then stayed down for good).
inline constexpr std::size_t link_secret_bytes = 1 << 20;
inline constexpr std::size_t link_secret_min_bytes = 256;

/// The OU of each kind of certificate: the role a peer presents.
inline constexpr std::string_view role_ca = "cvqkd-ca";
inline constexpr std::string_view role_node = "cvqkd-node";
inline constexpr std::string_view role_sae = "cvqkd-sae";
inline constexpr std::string_view role_operator = "cvqkd-operator";

/// What a certificate identifies. (`operator` is a C++ keyword, hence `operator_`.)
enum class kind { node, sae, operator_ };

/// "node", "sae", "operator".
std::string_view to_string(kind k) noexcept;

struct link_spec {
  std::string id{};    // link ID, becomes the file name <id>.psk
  std::string node_a{};  // the two end nodes (order does not matter)
  std::string node_b{};
};

struct sae_spec {
  std::string id{};  // SAE ID = CN of its certificate
  std::string node{};  // the SAE's home node (its KME); checked to be a node, only printed
};

struct init_options {
  std::filesystem::path dir{};          // PKI root; created 0700 when missing
  std::vector<std::string> nodes{};     // node IDs
  std::vector<link_spec> links{};       // end nodes must be in `nodes` or already issued
  std::vector<sae_spec> saes{};
  std::vector<std::string> operators{};
  /// Node ID (one of `nodes`) -> IP addresses its certificate names besides 127.0.0.1 (the
  /// addresses it listens on when the sites live on different hosts). An existing node certificate
  /// that lacks one is reissued (new key, same CA; its link secrets stay).
  std::map<std::string, std::vector<std::string>> node_addresses{};
  unsigned validity_days = 825;         // of the leaf certificates (the CA gets 10 years); 1..3650
  bool force = false;                   // discard an existing PKI under `dir` and start over
};

/// Checks a node, SAE, operator or link ID: 1..64 characters of [A-Za-z0-9._-], not "." or "..".
/// `what` names the item in the message ("node ID", "link ID", ...). Error: invalid_argument.
expected<void> validate_name(std::string_view what, std::string_view name);

/// Creates the demo CA under `opts.dir` and issues every named node, SAE, operator and link secret.
/// Everything is validated before anything is written. When a CA already exists it is reused, never
/// overwritten (unless `force`, which first removes ca/, nodes/, saes/ and operators/): items already
/// present are kept (after checking that they verify under that CA) and missing ones are issued, so
/// init is idempotent and can add names later. Errors: invalid_argument (bad name, unknown link end,
/// conflicting link, an address that is not an IP literal or names no node of `nodes`),
/// config_error (an inconsistent existing PKI), io_error.
expected<void> init(const init_options& opts);

/// Issues one node, SAE or operator certificate and key under an existing CA in `dir`; a node's
/// certificate also names `node_addresses` (IP literals) in its subjectAltName.
/// Refuses (config_error) when that identity exists unless `replace` (renewal: new key, new cert).
/// Errors: invalid_argument (bad name, an address that is not an IP literal, addresses for a
/// non-node), config_error (no CA; identity exists), io_error.
expected<void> issue(const std::filesystem::path& dir, kind k, std::string_view name, unsigned validity_days = 825,
                     bool replace = false, const std::vector<std::string>& node_addresses = {});

/// Writes the link's 4096-byte secret (OpenSSL's RAND_priv_bytes) to
/// nodes/<node_a>/secrets/<link_id>.psk and nodes/<node_b>/secrets/<link_id>.psk. Both nodes must
/// have been issued. Idempotent: if both files exist and agree nothing changes; if only one exists
/// it is copied to the other end. Errors: invalid_argument (bad names, node_a == node_b, the link ID
/// already used between other nodes), config_error (missing node, ends disagree), io_error.
expected<void> issue_link_secret(const std::filesystem::path& dir, std::string_view link_id, std::string_view node_a,
                                 std::string_view node_b);

// ---------------------------------------------------------------------------------------------
// Inventory (for `cvqkd pki show`)

struct certificate_info {
  std::string kind{};              // "ca", "node", "sae", "operator"
  std::string name{};              // directory name
  std::string common_name{}, role{};  // CN and OU
  std::string not_after{};         // ISO 8601 UTC, e.g. "2028-03-01T12:00:00Z"
  std::filesystem::path file{};
  std::vector<std::string> ip_addresses{};  // the IP addresses of its subjectAltName
  std::string problem{};           // empty when the certificate verifies under the CA (and has a key)
};

struct link_secret_info {
  std::string id{};
  std::vector<std::string> nodes{};  // nodes holding <id>.psk (2 when commissioned correctly)
  std::size_t bytes = 0;
  std::string problem{};           // empty when exactly two nodes hold identical 0600 files
};

struct inventory {
  certificate_info ca;
  std::vector<certificate_info> certificates;  // nodes, then SAEs, then operators; by name
  std::vector<link_secret_info> links;         // by ID
};

/// Lists what exists under `dir`. Errors: config_error (no CA there), io_error.
expected<inventory> inspect(const std::filesystem::path& dir);

// ---------------------------------------------------------------------------------------------
// Runtime helpers used by the node and the API server

struct subject {
  std::string common_name;
  std::string role;  // OU
};

/// Verifies `cert_pem` (the leaf first; further certificates in the PEM are taken as untrusted
/// intermediates) against the CA certificate(s) in `ca_file` (X509_verify_cert, purpose any, at the
/// current time) and returns its CN and OU. Errors: parse_error (not a PEM certificate),
/// config_error naming why it was rejected (expired, not yet valid, issued by another CA, bad
/// signature) and what to do, io_error (CA file unreadable).
expected<subject> verify_certificate(const std::filesystem::path& ca_file, std::string_view cert_pem);

/// The whole file as text (a regular file of at most 1 MiB; symlinks are followed). Error: io_error naming the file.
expected<std::string> read_file_text(const std::filesystem::path& path);

/// ECDSA (P-256) signature with SHA-256 (EVP_DigestSign) of `message` under the PEM private key in
/// `key_file`; DER-encoded (at most 72 bytes). Errors: io_error, parse_error (not a private key).
expected<std::vector<std::byte>> sign(const std::filesystem::path& key_file, std::span<const std::byte> message);

/// Checks `signature` (as made by sign()) over `message` against the public key of `cert_pem`.
/// Does NOT verify the certificate itself: call verify_certificate first. Errors: parse_error
/// (not a certificate), invalid_argument (the signature does not match).
expected<void> verify_signature(std::string_view cert_pem, std::span<const std::byte> message,
                                std::span<const std::byte> signature);

/// Reads <secrets_dir>/<link_id>.psk. Refuses (config_error) a file with any group/other permission
/// bit (the message says `chmod 600 <file>`), one that is not a regular file, or one shorter than
/// link_secret_min_bytes. Errors also: invalid_argument (bad link ID), io_error.
expected<secure_buffer> read_link_secret(const std::filesystem::path& secrets_dir, std::string_view link_id);

}  // namespace cvqkd::pki
