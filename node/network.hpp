#pragma once
// `cvqkd network`: turns a topology (config/topology.hpp) into a runnable network on one machine —
// a demo PKI and one node file per site (generate) — and runs it as one `cvqkd node` process per
// site under a small supervisor that restarts crashed nodes and shows a live link table (up).
//
// Directory written by generate():
//   <dir>/pki/                 the demo PKI (node/pki/pki.hpp): every node, link secret, SAE and
//                              one operator "operator"
//   <dir>/<NODE>/node.toml     the node's configuration (config/node_config.hpp), rewritten each time
//   <dir>/<NODE>/state/        its key store, <dir>/<NODE>/kek its key-encryption key (made by the
//                              node on first start; kept by later runs)
//   <dir>/<NODE>/node.log      its stdout and stderr (written by up())
// Ports: node i (in topology order) listens on HOST:(base_port + 2i) for the inter-node channel and
// on HOST:(base_port + 2i + 1) for its HTTPS API, HOST being the site's address (the topology
// node's `host`, or `--host SITE=ADDR`; default 127.0.0.1). Its peers dial that address, and its
// certificate names it (subjectAltName IP), so the sites can live on different hosts.

#include <cstdint>
#include <filesystem>
#include <iosfwd>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "config/node_config.hpp"
#include "config/topology.hpp"
#include "core/error.hpp"

namespace cvqkd::network {

/// Every topology link is simulated with the node config's fibre model, T = 10^(-(0.2 dB/km * L +
/// extra_loss_db)/10) (config/node_config.cpp); generate() chooses extra_loss_db so that T equals
/// the topology's published total loss, 10^(-loss_db/10).
inline constexpr double fibre_attenuation_db_per_km = 0.2;

/// The operator identity generate() issues (for `cvqkd ctl`).
inline constexpr std::string_view operator_name = "operator";

/// extra_loss_db = max(0, loss_db - 0.2 dB/km * length_km). When the published loss is below the
/// 0.2 dB/km fibre model (an ultra-low-loss fibre) the simulated T is then 10^(-0.02 L), slightly
/// lower than published; generate() reports it in `notes`.
double extra_loss_db(const config::topology_link& link) noexcept;

/// The link's shared simulation seed: FNV-1a (64 bit) of the link ID, reduced to 52 bits (the node
/// file reads numbers through a double, exact up to 2^53). The same at both ends and on every run.
std::uint64_t link_seed(std::string_view link_id) noexcept;

struct generated_node {
  std::string id;
  std::filesystem::path directory;  // <dir>/<NODE>
  std::filesystem::path config;     // <dir>/<NODE>/node.toml
  config::endpoint listen;          // inter-node channel
  config::endpoint api_listen;      // HTTPS API
};

struct generated_network {
  std::filesystem::path directory;  // <dir>, absolute
  std::filesystem::path pki;        // <dir>/pki
  std::vector<generated_node> nodes;   // in topology order
  std::vector<std::string> notes;      // things the operator should know (e.g. a loss below the fibre model)
  /// The node with this ID, or nullptr.
  const generated_node* find(std::string_view id) const noexcept;
};

/// Ready-to-paste curl commands (ETSI GS QKD 014 over mutual TLS, the generated SAE certificates)
/// that fetch a key at one site and the same key at a site two hops away: Hakusan and Hongo
/// (through Otemachi) in the Tokyo network, else the first pair of sites with SAEs two links
/// apart (one link apart when no pair is two apart). Empty when no two sites have SAEs.
std::vector<std::string> curl_example(const config::topology& topo, const generated_network& net);

/// Shortest hop counts from site `from` to every site reachable over the topology's links
/// (breadth first); unreachable sites are absent.
std::map<std::string, int> hops_from(const config::topology& topo, const std::string& from);

/// The address node `n` listens on: its `host`, or 127.0.0.1 when none is given.
std::string host_of(const config::topology_node& n);

/// Applies `--host SITE=ADDR` overrides (each an IPv4 address, as the topology's `host` field) to
/// `topo`'s nodes. Errors: invalid_argument naming the flag, for a spec without '=', a site that is
/// not in the topology, a site given twice, or a bad address; `topo` is then unchanged.
expected<void> apply_hosts(config::topology& topo, const std::vector<std::string>& specs);

/// The node files generate() would write, as TOML text, one per node in topology order (no I/O).
/// Errors: invalid_argument when the ports base_port .. base_port + 2 * nodes - 1 do not fit in
/// 1..65535 (the message says which --base-port would).
expected<std::vector<std::pair<std::string, std::string>>> render_node_files(const config::topology& topo,
                                                                             std::uint16_t base_port);

/// Writes the PKI (pki::init: idempotent, an existing CA and identities are kept; a node certificate
/// that does not name the site's address is reissued) and every node's
/// node.toml (each through a temporary file and a rename) under `dir` (created when missing). Keeps
/// existing key stores and KEK files, so re-running it on a directory is safe. Each written file is
/// checked by loading it with config::load_node_config. Errors: invalid_argument (ports),
/// config_error (an inconsistent existing PKI, a file that does not load), io_error.
expected<generated_network> generate(const config::topology& topo, const std::filesystem::path& dir,
                                     std::uint16_t base_port);

// ---------------------------------------------------------------------------------------------
// Synthetic topologies for scale tests (`cvqkd network synth`, `cvqkd bench network`)

struct synth_options {
  std::size_t nodes = 30;
  std::size_t links = 60;
  std::uint64_t seed = 1;
  double min_km = 0.5, max_km = 2.0;   // fibre lengths, uniform (metro: small blocks make key)
  double connector_loss_db = 1.0;      // added to 0.2 dB/km x length
  std::uint64_t pool_max_bits = 60'000;  // a link pauses while its pool holds this much (0: never)
};

/// A connected topology of `nodes` sites and `links` links as topology TOML text (parse_topology
/// reads it), deterministic from the seed: sites at random points of a unit square, a spanning
/// tree joining each site to its nearest earlier one, then the shortest missing pairs until there
/// are `links` links (a meshed backbone whose hop counts grow like sqrt(nodes)). Site i is
/// "N<i>" (zero-padded, from 1) with one SAE "SAE-N<i>"; link "N<i>-N<j>" has Alice at the lower
/// index. Every link: highrate_metro, length in [min_km, max_km] (0.1 km steps), loss 0.2 dB/km x
/// length + connector_loss_db, beta 0.8, the short codes, frames of 131072 symbols and
/// block_symbols = "auto" (each node plans the smallest block with key: about 6.3e5-7.9e5 symbols
/// at 0.5-2 km). Errors: invalid_argument when nodes < 2, links < nodes - 1, links > nodes(nodes-1)/2,
/// nodes > 9999, or the lengths are not 0 <= min_km <= max_km.
expected<std::string> synthesize_topology(const synth_options& options);

// ---------------------------------------------------------------------------------------------
// The launcher (`cvqkd network up`)

struct up_options {
  std::filesystem::path executable;  // the cvqkd binary the nodes run (normally /proc/self/exe)
  std::filesystem::path dir;         // network directory (generate()'s `dir`)
  std::uint16_t base_port = 17000;
  double run_seconds = 0;            // > 0: stop after this long; 0: until SIGINT/SIGTERM
  bool restart = true;               // restart a node that exits unexpectedly (after restart_delay_s)
  double restart_delay_s = 3.0;
  double poll_interval_s = 2.0;      // status poll period (each poll is a `cvqkd node status` subprocess per node)
  double status_timeout_s = 8.0;     // a status request that takes longer is killed and counted as unreachable
  std::ostream* out = nullptr;       // the live table and messages (required)
  bool tty = false;                  // redraw the table in place (else one line per link per change)
  bool in_process = false;           // every node in this process (in_process_network), logs in <dir>/network.log
};

/// What one link did during the run, from its two ends' last answered status.
struct link_summary {
  std::string id, a, b;                 // a: Alice's node, b: Bob's
  std::string state;                    // health as the ends report it ("up", "down", ..., "unreachable")
  std::string reason;                   // why not up / last error (empty when up)
  std::uint64_t committed_round = 0;    // highest round committed (the key store's, across runs)
  std::uint64_t rounds_committed = 0;   // rounds committed during this run
  std::uint64_t key_bits = 0;           // key bits committed during this run
  std::uint64_t pool_bits = 0;          // key in the link's pool now
  std::uint64_t rounds_aborted = 0;     // during this run
  bool has_last_round = false;          // a round has made key (the fields below are from the last one)
  std::uint64_t last_key_bits = 0;
  double beta = 0, xi_hat = 0, bits_per_symbol = 0;
  double hardware_key_rate_bps = 0;     // bits/symbol of the last key round x the profile's symbol rate
  double simulated_key_rate_bps = 0;    // key_bits / wall-clock seconds of the run
};

struct node_summary {
  std::string id;
  unsigned restarts = 0;
  bool running = false;  // when the stop began
};

struct up_summary {
  std::string topology;
  double seconds = 0;  // wall-clock duration of the run
  std::vector<node_summary> nodes;
  std::vector<link_summary> links;
};

/// Generates `opts.dir` (as generate()). With opts.in_process, starts every node inside this
/// process (node/inproc.hpp; no restarts: a failed start is an error, and the table polls each
/// node's supervisor directly); otherwise starts every node as its own process (`executable node
/// --config <dir>/<NODE>/node.toml`, stdout and stderr appended to <dir>/<NODE>/node.log, each in
/// its own process group so that a terminal's Ctrl-C reaches only the launcher), polls every node's
/// status (`executable node status --config ... --json`) every poll_interval_s and prints the link
/// table to *opts.out, restarts nodes that exit unexpectedly, and runs until SIGINT/SIGTERM or
/// run_seconds. Then it sends SIGTERM to every node, waits up to 10 s and SIGKILLs stragglers.
/// Installs handlers for SIGINT and SIGTERM for its duration. Errors: as generate(); io_error when a
/// node cannot be started at all.
expected<up_summary> up(const config::topology& topo, const up_options& opts);

}  // namespace cvqkd::network
