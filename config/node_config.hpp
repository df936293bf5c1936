#pragma once
// The TOML file one node process runs from (`cvqkd node --config node.toml`). Layout:
//
//   [node]      id, listen ("127.0.0.1:PORT": the TLS inter-node channel), api_listen (HTTPS for
//               ETSI 014, admin and metrics), storage (key store directory), kek_file, log_level
//   [pki]       ca, certificate, key, secrets (paths; relative ones resolve against the TOML
//               file's directory)
//   [security]  eps_pe, eps_smooth, eps_pa (default 1e-10 each), detector_model (trusted|untrusted)
//   [[links]]   one per link end this node runs: id, peer, peer_address (the bob end dials it, the
//               alice end waits), role, profile, length_km, extra_loss_db, block_symbols,
//               pe_fraction, frame_symbols, beta, short_codes, max_iterations, pool_max_bits,
//               seed, attack
//   [[saes]]    id: the SAEs this node serves over the ETSI 014 API
//   [[remote_saes]] id, node: SAEs of the network served by other nodes (their KME = node), the
//               slaves this node's SAEs may ask keys for
//
// `seed` is the shared simulation seed of the link: both ends must give the same value, so that
// the two simulated devices see the same fibre. It stands in for the quantum channel and is no
// secret (real hardware has no such seed). Nothing here throws: every error is a config_error
// naming the file, the dotted field and what to write instead.

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.hpp"
#include "core/hardware_profile.hpp"
#include "core/physics.hpp"

namespace cvqkd::config {

/// host:port of a TCP endpoint.
struct endpoint {
  std::string host;
  std::uint16_t port = 0;
  std::string to_string() const;
};

/// Parses "HOST:PORT" (an IPv4 address or a name, port 1..65535). Errors: config_error naming
/// `field`.
expected<endpoint> parse_endpoint(std::string_view text, std::string_view field);

enum class link_role : std::uint8_t { alice, bob };
std::string_view to_string(link_role r) noexcept;

/// Attacks the simulated fibre of a link can be put under (drills).
struct link_attack {
  enum class kind : std::uint8_t { none, intercept_resend, entangling_cloner };
  kind type = kind::none;
  double parameter = 0.0;  // intercept-resend: intercepted fraction (0, 1]; entangling cloner: added xi (SNU), (0, 100]
};

struct link_config {
  std::string id;                    // 1..200 bytes of [A-Za-z0-9._-]: names the pools in the key store
  std::string peer;                  // the peer's node ID
  endpoint peer_address;             // where the peer's [node] listen is (the bob end dials it)
  link_role role = link_role::alice;
  std::string profile_name;          // builtin name or path, as written
  hardware_profile profile;          // resolved
  double length_km = 0.0;            // fibre length, >= 0
  double extra_loss_db = 0.0;        // insertion loss on top of the fibre, >= 0
  std::uint64_t block_symbols = 0;   // N per round; default the profile's block_symbols
  bool block_auto = false;           // block_symbols = "auto": the node sets N at start (links::plan_block)
  double pe_fraction = 0.5;          // n_pe / N, (0, 1)
  std::uint64_t frame_symbols = 262'144;  // symbols per hardware frame, [1000, block_symbols]
  double beta = 0.0;                 // reconciliation efficiency asked for; default the profile's beta_target
  bool short_codes = false;          // CI-sized codes
  unsigned max_iterations = 200;     // BP iterations per frame, 1..100000
  std::uint64_t pool_max_bits = 0;   // pause the link when its pool holds this much (0: no limit)
  std::uint64_t seed = 1;            // shared simulation seed (the same at both ends)
  link_attack attack;                // drills only

  /// The channel transmittance T = 10^(-(0.2 dB/km * length + extra loss)/10) (core/physics.hpp).
  double transmittance() const noexcept;
  /// n_pe = round(pe_fraction * block_symbols), clamped to [1, N - 1].
  std::uint64_t n_pe() const noexcept;
};

struct sae_config {
  std::string id;
};

/// An SAE served by another node ([[remote_saes]]): `node` is its KME (a node ID).
struct remote_sae_config {
  std::string id;
  std::string node;
};

struct node_config {
  std::filesystem::path source;       // the TOML file (for messages)
  std::string id;                     // node ID: 1..64 bytes of [A-Za-z0-9._-]; the CN of its certificate
  endpoint listen;                    // inter-node channel (TLS)
  std::optional<endpoint> api_listen; // HTTPS API; optional until the API server lands
  std::filesystem::path storage;      // key store directory
  std::filesystem::path kek_file;     // key-encryption key file (created on first start if missing)
  std::string log_level = "info";     // trace|debug|info|warn|error|critical|off

  std::filesystem::path ca, certificate, key, secrets;  // [pki]

  double eps_pe = 1e-10, eps_smooth = 1e-10, eps_pa = 1e-10;
  detector_model model = detector_model::trusted;

  std::vector<link_config> links;
  std::vector<sae_config> saes;
  std::vector<remote_sae_config> remote_saes;

  /// The link with this ID, or nullptr.
  const link_config* find_link(std::string_view link_id) const noexcept;
};

/// Parses a node file's text; relative paths resolve against `base_dir`. Errors: config_error
/// naming `source_name`, the dotted field (e.g. "links[1].role") and the expected value, for
/// syntax errors, missing or unknown keys, wrong types and out-of-domain values, duplicate link
/// or SAE IDs, and a link whose profile cannot be resolved.
expected<node_config> parse_node_config(std::string_view toml_text, std::string_view source_name,
                                        const std::filesystem::path& base_dir);

/// Reads and parses `path` (relative paths inside resolve against its directory). Errors: io_error
/// when it cannot be read; otherwise as parse_node_config.
expected<node_config> load_node_config(const std::filesystem::path& path);

}  // namespace cvqkd::config
