#pragma once
// A network topology file: the sites (nodes, with the SAEs each serves) and the CV-QKD links
// between them. `cvqkd network` turns it into a PKI and one node file per site
// (config/node_config.hpp). Layout:
//
//   [network]  name
//   [[nodes]]  id, saes = ["..."], host (the site's IPv4 address: its inter-node channel and HTTPS
//              API listen there, its peers dial it, its certificate names it; default 127.0.0.1)
//   [[links]]  id, a, b (node IDs; a runs the transmitter, Alice), length_km, loss_db (total
//              channel loss, fibre and connectors; default 0.2 dB/km x length), profile,
//              block_symbols (default the profile's), beta, short_codes, frame_symbols,
//              pool_max_bits
//
// Errors are config_error values naming the file, the dotted field and what to write instead.

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.hpp"
#include "core/hardware_profile.hpp"

namespace cvqkd::config {

struct topology_node {
  std::string id;                 // 1..64 of [A-Za-z0-9._-]
  std::vector<std::string> saes;  // SAE IDs served at this site (network-wide unique)
  std::string host;               // IPv4 address of the site; empty: 127.0.0.1 (all sites on one machine)
};

struct topology_link {
  std::string id;
  std::string a, b;               // a: Alice (transmitter), b: Bob (receiver)
  double length_km = 0.0;         // >= 0
  double loss_db = 0.0;           // total channel loss, >= 0
  std::string profile_name;
  hardware_profile profile;
  std::uint64_t block_symbols = 0;
  bool block_auto = false;  // block_symbols = "auto": written through to the node files
  double beta = 0.0;              // 0: the profile's beta_target
  bool short_codes = false;
  std::uint64_t frame_symbols = 262'144;
  std::uint64_t pool_max_bits = 0;
};

struct topology {
  std::filesystem::path source;
  std::string name;
  std::vector<topology_node> nodes;
  std::vector<topology_link> links;
  const topology_node* find_node(std::string_view id) const noexcept;
};

/// Checks a site address (a topology node's `host`, `cvqkd network generate --host`): a dotted-quad
/// IPv4 address the node can listen on and its peers can dial, so not 0.0.0.0, not broadcast and
/// not multicast. Returns the address in canonical form. Error: config_error naming `field`.
expected<std::string> parse_host_address(std::string_view text, std::string_view field);

/// Parses a topology file's text. Errors: config_error for syntax, unknown keys, wrong types,
/// out-of-domain values, duplicate node/link/SAE IDs, links naming unknown nodes or joining a node
/// to itself, two links between the same pair, and unresolvable profiles.
expected<topology> parse_topology(std::string_view toml_text, std::string_view source_name);
/// Reads and parses a file. Errors: io_error when it cannot be read; else as parse_topology.
expected<topology> load_topology(const std::filesystem::path& path);

/// Names of the topologies shipped in config/topologies/ (embedded in the binary).
std::vector<std::string> builtin_topology_names();
/// A shipped topology by name ("tokyo-2010", "test-ring"), else a file path. Errors: config_error
/// naming the shipped ones when `name_or_path` is neither; else as load_topology.
expected<topology> resolve_topology(std::string_view name_or_path);

}  // namespace cvqkd::config
