#include "node/network.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <tuple>
#include <cerrno>
#include <cstring>
#include <fstream>

#include <cmath>
#include <map>
#include <set>

#include <fmt/format.h>

#include "node/pki/pki.hpp"

namespace cvqkd::network {

namespace {

namespace fs = std::filesystem;

// A TOML basic string: quotes, backslashes and control characters escaped.
std::string toml_string(std::string_view s) {
  std::string out = "\"";
  for (const char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) out += fmt::format("\\u{:04x}", static_cast<unsigned>(c));
        else out += c;
    }
  }
  return out + "\"";
}

// A profile given as a file is resolved against the working directory by the topology loader;
// the node file resolves relative paths against its own directory, so write it absolute.
std::string profile_reference(const std::string& name) {
  const bool is_path = name.find('/') != std::string::npos || name.ends_with(".toml");
  return is_path ? fs::absolute(name).lexically_normal().string() : name;
}

config::endpoint at(const config::topology_node& n, std::uint32_t port) {
  return {host_of(n), static_cast<std::uint16_t>(port)};
}

expected<void> write_atomically(const fs::path& path, const std::string& text) {
  const fs::path tmp = path.string() + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << text;
    out.flush();
    if (!out)
      return fail(errc::io_error, fmt::format("cannot write {}: {}; check the directory's permissions and free space",
                                              tmp.string(), std::strerror(errno)));
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec)
    return fail(errc::io_error, fmt::format("cannot rename {} to {}: {}; check the directory's permissions",
                                            tmp.string(), path.string(), ec.message()));
  return {};
}

expected<void> make_private_dir(const fs::path& d) {
  std::error_code ec;
  fs::create_directories(d, ec);
  if (ec)
    return fail(errc::io_error, fmt::format("cannot create directory {}: {}; choose a writable --dir", d.string(),
                                            ec.message()));
  // The node directory holds the KEK and the key store: owner only.
  if (::chmod(d.c_str(), 0700) != 0)
    return fail(errc::io_error, fmt::format("cannot chmod 700 {}: {}", d.string(), std::strerror(errno)));
  return {};
}

}  // namespace

double extra_loss_db(const config::topology_link& link) noexcept {
  return std::max(0.0, link.loss_db - fibre_attenuation_db_per_km * link.length_km);
}

std::uint64_t link_seed(std::string_view link_id) noexcept {
  // FNV-1a, 64-bit (offset basis 14695981039346656037, prime 1099511628211).
  std::uint64_t h = 14695981039346656037ull;
  for (const char c : link_id) {
    h ^= static_cast<unsigned char>(c);
    h *= 1099511628211ull;
  }
  return h & ((std::uint64_t{1} << 52) - 1);
}

std::string host_of(const config::topology_node& n) { return n.host.empty() ? std::string("127.0.0.1") : n.host; }

expected<void> apply_hosts(config::topology& topo, const std::vector<std::string>& specs) {
  std::map<std::string, std::string> hosts;
  for (const auto& spec : specs) {
    const auto eq = spec.find('=');
    if (eq == std::string::npos || eq == 0)
      return fail(errc::invalid_argument,
                  fmt::format("--host '{}': expected SITE=ADDRESS, e.g. --host A=10.91.0.2", spec));
    const std::string site = spec.substr(0, eq);
    if (topo.find_node(site) == nullptr) {
      std::string known;
      for (const auto& n : topo.nodes) known += (known.empty() ? "" : ", ") + n.id;
      return fail(errc::invalid_argument,
                  fmt::format("--host '{}': '{}' is not a site of the topology {} (its sites: {})", spec, site,
                              topo.source.string(), known));
    }
    auto addr = config::parse_host_address(std::string_view(spec).substr(eq + 1), fmt::format("--host {}", site));
    if (!addr) return fail(errc::invalid_argument, addr.error().message);
    if (!hosts.emplace(site, *addr).second)
      return fail(errc::invalid_argument,
                  fmt::format("--host: site {} is given twice; give each site one address", site));
  }
  for (auto& n : topo.nodes)
    if (auto it = hosts.find(n.id); it != hosts.end()) n.host = it->second;
  return {};
}

const generated_node* generated_network::find(std::string_view id) const noexcept {
  for (const auto& n : nodes)
    if (n.id == id) return &n;
  return nullptr;
}

expected<std::vector<std::pair<std::string, std::string>>> render_node_files(const config::topology& topo,
                                                                             std::uint16_t base_port) {
  const std::uint64_t last = std::uint64_t{base_port} + 2 * topo.nodes.size() - 1;
  if (base_port == 0 || last > 65535)
    return fail(errc::invalid_argument,
                fmt::format("--base-port {}: {} nodes need ports {}..{}, beyond 65535; give --base-port between 1 and {}",
                            base_port, topo.nodes.size(), base_port, last, 65536 - 2 * topo.nodes.size()));
  std::vector<config::endpoint> listen;
  for (std::size_t i = 0; i < topo.nodes.size(); ++i) listen.push_back(at(topo.nodes[i], base_port + 2 * i));
  auto index_of = [&](const std::string& id) {
    for (std::size_t i = 0; i < topo.nodes.size(); ++i)
      if (topo.nodes[i].id == id) return i;
    return topo.nodes.size();
  };

  std::vector<std::pair<std::string, std::string>> files;
  for (std::size_t i = 0; i < topo.nodes.size(); ++i) {
    const auto& n = topo.nodes[i];
    std::string t;
    t += fmt::format("# Generated by `cvqkd network generate` from the topology \"{}\" ({}); rewritten on every run.\n",
                     topo.name, topo.source.string());
    t += "[node]\n";
    t += fmt::format("id = {}\n", toml_string(n.id));
    t += fmt::format("listen = {}\n", toml_string(listen[i].to_string()));
    t += fmt::format("api_listen = {}\n", toml_string(at(n, base_port + 2 * i + 1).to_string()));
    t += "storage = \"state\"\nkek_file = \"kek\"\nlog_level = \"info\"\n\n";
    const std::string pki = "../pki/nodes/" + n.id + "/";
    t += "[pki]\n";
    t += fmt::format("ca = {}\ncertificate = {}\nkey = {}\nsecrets = {}\n", toml_string(pki + "ca.crt"),
                     toml_string(pki + "node.crt"), toml_string(pki + "node.key"), toml_string(pki + "secrets"));
    for (const auto& l : topo.links) {
      if (l.a != n.id && l.b != n.id) continue;
      const bool alice = l.a == n.id;
      const std::string& peer = alice ? l.b : l.a;
      const std::size_t p = index_of(peer);
      if (p == topo.nodes.size())
        return fail(errc::config_error, fmt::format("{}: link {} names node '{}', which is not in [[nodes]]",
                                                    topo.source.string(), l.id, peer));
      t += fmt::format("\n# {} = {} (Alice) -> {} (Bob): {} km, {} dB total loss\n", l.id, l.a, l.b, l.length_km,
                       l.loss_db);
      t += "[[links]]\n";
      t += fmt::format("id = {}\npeer = {}\n", toml_string(l.id), toml_string(peer));
      // The bob end dials the alice end's listen address; the alice end waits (its value is unused).
      t += fmt::format("peer_address = {}\n", toml_string(listen[p].to_string()));
      t += fmt::format("role = {}\n", alice ? "\"alice\"" : "\"bob\"");
      t += fmt::format("profile = {}\n", toml_string(profile_reference(l.profile_name)));
      t += fmt::format("length_km = {}\nextra_loss_db = {}\n", l.length_km, extra_loss_db(l));
      t += l.block_auto ? fmt::format("block_symbols = \"auto\"\nframe_symbols = {}\n", l.frame_symbols)
                        : fmt::format("block_symbols = {}\nframe_symbols = {}\n", l.block_symbols, l.frame_symbols);
      if (l.beta > 0) t += fmt::format("beta = {}\n", l.beta);
      t += fmt::format("short_codes = {}\npool_max_bits = {}\nseed = {}\n", l.short_codes ? "true" : "false",
                       l.pool_max_bits, link_seed(l.id));
    }
    for (const auto& s : n.saes) t += fmt::format("\n[[saes]]\nid = {}\n", toml_string(s));
    // Every other site's SAEs: the slaves this node's SAEs may ask keys for, and their KME.
    for (const auto& other : topo.nodes)
      if (other.id != n.id)
        for (const auto& s : other.saes)
          t += fmt::format("\n[[remote_saes]]\nid = {}\nnode = {}\n", toml_string(s), toml_string(other.id));
    files.emplace_back(n.id, std::move(t));
  }
  return files;
}

namespace {

// splitmix64: a small generator whose output is the same on every platform (std distributions
// are not), so a seed names one topology everywhere.
struct splitmix64 {
  std::uint64_t s;
  std::uint64_t next() {
    std::uint64_t z = (s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }  // [0, 1)
};

}  // namespace

expected<std::string> synthesize_topology(const synth_options& o) {
  const std::size_t n = o.nodes;
  if (n < 2 || n > 9999)
    return fail(errc::invalid_argument, fmt::format("--nodes {}: give 2 to 9999 sites", n));
  const std::size_t max_links = n * (n - 1) / 2;
  if (o.links < n - 1 || o.links > max_links)
    return fail(errc::invalid_argument,
                fmt::format("--links {}: {} sites need {} to {} links (connected, at most one link per pair)", o.links,
                            n, n - 1, max_links));
  if (!(o.min_km >= 0 && o.min_km <= o.max_km && std::isfinite(o.max_km)))
    return fail(errc::invalid_argument, fmt::format("fibre lengths {}..{} km: give 0 <= min <= max", o.min_km, o.max_km));
  splitmix64 rng{o.seed};
  std::vector<std::pair<double, double>> at(n);
  for (auto& p : at) p = {rng.uniform(), rng.uniform()};
  const auto dist2 = [&](std::size_t i, std::size_t j) {
    const double dx = at[i].first - at[j].first, dy = at[i].second - at[j].second;
    return dx * dx + dy * dy;
  };
  std::set<std::pair<std::size_t, std::size_t>> edges;
  std::vector<std::pair<std::size_t, std::size_t>> order;  // links in the order they were chosen
  for (std::size_t i = 1; i < n; ++i) {
    std::size_t best = 0;
    for (std::size_t j = 1; j < i; ++j)
      if (dist2(i, j) < dist2(i, best)) best = j;
    edges.insert({best, i});
    order.push_back({best, i});
  }
  if (o.links > order.size()) {
    std::vector<std::tuple<double, std::size_t, std::size_t>> pairs;
    pairs.reserve(max_links);
    for (std::size_t i = 0; i < n; ++i)
      for (std::size_t j = i + 1; j < n; ++j)
        if (!edges.contains({i, j})) pairs.emplace_back(dist2(i, j), i, j);
    std::sort(pairs.begin(), pairs.end());
    for (const auto& [d, i, j] : pairs) {
      if (order.size() == o.links) break;
      order.push_back({i, j});
    }
  }
  const int width = n < 100 ? 2 : (n < 1000 ? 3 : 4);
  const auto name = [&](std::size_t i) { return fmt::format("N{:0{}}", i + 1, width); };
  std::string t;
  t += fmt::format("# Generated by `cvqkd network synth --nodes {} --links {} --seed {}`: a synthetic metro-scale\n", n,
                   o.links, o.seed);
  t += "# backbone (sites at random points, a nearest-neighbour spanning tree plus the shortest other pairs).\n";
  t += "# Short highrate_metro links, so that small blocks make key; block_symbols = \"auto\": each node plans it.\n\n";
  t += fmt::format("[network]\nname = \"synthetic backbone ({} sites, {} links, seed {})\"\n", n, o.links, o.seed);
  for (std::size_t i = 0; i < n; ++i)
    t += fmt::format("\n[[nodes]]\nid = \"{}\"\nsaes = [\"SAE-{}\"]\n", name(i), name(i));
  for (const auto& [i, j] : order) {
    const double km = std::round((o.min_km + (o.max_km - o.min_km) * rng.uniform()) * 10) / 10;
    const double loss = std::round((fibre_attenuation_db_per_km * km + o.connector_loss_db) * 100) / 100;
    t += fmt::format("\n[[links]]\nid = \"{}-{}\"\na = \"{}\"\nb = \"{}\"\nlength_km = {}\nloss_db = {}\n", name(i),
                     name(j), name(i), name(j), km, loss);
    t += "profile = \"highrate_metro\"\nblock_symbols = \"auto\"\nframe_symbols = 131_072\nbeta = 0.8\nshort_codes = true\n";
    t += fmt::format("pool_max_bits = {}\n", o.pool_max_bits);
  }
  return t;
}

std::map<std::string, int> hops_from(const config::topology& topo, const std::string& from) {
  std::map<std::string, int> d{{from, 0}};
  std::vector<std::string> frontier{from};
  while (!frontier.empty()) {
    std::vector<std::string> next;
    for (const auto& n : frontier)
      for (const auto& l : topo.links) {
        const std::string* other = l.a == n ? &l.b : l.b == n ? &l.a : nullptr;
        if (other != nullptr && !d.contains(*other)) {
          d[*other] = d[n] + 1;
          next.push_back(*other);
        }
      }
    frontier = std::move(next);
  }
  return d;
}

std::vector<std::string> curl_example(const config::topology& topo, const generated_network& net) {
  const config::topology_node *master = nullptr, *slave = nullptr;
  if (const auto *ha = topo.find_node("Ha"), *ho = topo.find_node("Ho"); ha && ho && !ha->saes.empty() && !ho->saes.empty()) {
    master = ha;
    slave = ho;
  }
  for (int want : {2, 1}) {
    for (const auto& a : topo.nodes) {
      if (master != nullptr || a.saes.empty()) continue;
      const auto d = hops_from(topo, a.id);
      for (const auto& b : topo.nodes)
        if (master == nullptr && !b.saes.empty() && d.contains(b.id) && d.at(b.id) == want) {
          master = &a;
          slave = &b;
        }
    }
  }
  if (master == nullptr) return {};
  const auto* gm = net.find(master->id);
  const auto* gs = net.find(slave->id);
  if (gm == nullptr || gs == nullptr) return {};
  const std::string& ms = master->saes.front();
  const std::string& ss = slave->saes.front();
  const auto tls = [&](const std::string& sae) {
    const fs::path d = net.pki / "saes" / sae;
    return fmt::format("--cacert {} --cert {} --key {}", (d / "ca.crt").string(), (d / "sae.crt").string(),
                       (d / "sae.key").string());
  };
  std::string via;
  for (const auto& l : topo.links)
    for (const auto& m : topo.links) {
      const std::string* x = l.a == master->id ? &l.b : l.b == master->id ? &l.a : nullptr;
      const std::string* y = m.a == slave->id ? &m.b : m.b == slave->id ? &m.a : nullptr;
      if (via.empty() && x != nullptr && y != nullptr && *x == *y) via = *x;
    }
  std::vector<std::string> out;
  out.push_back(fmt::format("A key for {} at {} and the same key for {} at {}{}, once their links have key:", ms,
                            master->id, ss, slave->id, via.empty() ? "" : fmt::format(" (relayed through {})", via)));
  out.push_back(fmt::format("  KEY_ID=$(curl -s {} 'https://{}/api/v1/keys/{}/enc_keys?number=1&size=256' | tee /dev/stderr "
                            "| jq -r '.keys[0].key_ID')",
                            tls(ms), gm->api_listen.to_string(), ss));
  out.push_back(fmt::format("  curl -s {} \"https://{}/api/v1/keys/{}/dec_keys?key_ID=$KEY_ID\"", tls(ss),
                            gs->api_listen.to_string(), ms));
  return out;
}

expected<generated_network> generate(const config::topology& topo, const fs::path& dir, std::uint16_t base_port) {
  auto files = render_node_files(topo, base_port);
  if (!files) return std::unexpected(files.error());

  generated_network net;
  net.directory = fs::absolute(dir).lexically_normal();
  net.pki = net.directory / "pki";
  std::error_code ec;
  fs::create_directories(net.directory, ec);
  if (ec)
    return fail(errc::io_error, fmt::format("cannot create the network directory {}: {}; choose a writable --dir",
                                            net.directory.string(), ec.message()));

  pki::init_options po;
  po.dir = net.pki;
  for (const auto& n : topo.nodes) {
    if (auto ok = pki::validate_name("node ID", n.id); !ok) return std::unexpected(ok.error());
    po.nodes.push_back(n.id);
    if (!n.host.empty()) po.node_addresses[n.id] = {n.host};
    for (const auto& s : n.saes) po.saes.push_back({s, n.id});
  }
  for (const auto& l : topo.links) po.links.push_back({l.id, l.a, l.b});
  po.operators.emplace_back(operator_name);
  if (auto ok = pki::init(po); !ok) return std::unexpected(ok.error());

  for (std::size_t i = 0; i < topo.nodes.size(); ++i) {
    const auto& [id, text] = (*files)[i];
    generated_node g;
    g.id = id;
    g.directory = net.directory / id;
    g.config = g.directory / "node.toml";
    g.listen = at(topo.nodes[i], base_port + 2 * i);
    g.api_listen = at(topo.nodes[i], base_port + 2 * i + 1);
    if (auto ok = make_private_dir(g.directory); !ok) return std::unexpected(ok.error());
    if (auto ok = write_atomically(g.config, text); !ok) return std::unexpected(ok.error());
    if (auto loaded = config::load_node_config(g.config); !loaded)
      return fail(errc::config_error,
                  fmt::format("the generated {} does not load: {}; the topology {} has a value the node file cannot "
                              "take (please report it)",
                              g.config.string(), loaded.error().message, topo.source.string()));
    net.nodes.push_back(std::move(g));
  }
  for (const auto& l : topo.links)
    if (l.loss_db < fibre_attenuation_db_per_km * l.length_km)
      net.notes.push_back(fmt::format(
        "link {}: the published loss {} dB is below the node's fibre model ({} dB/km x {} km = {} dB); it is "
        "simulated with {} dB",
        l.id, l.loss_db, fibre_attenuation_db_per_km, l.length_km, fibre_attenuation_db_per_km * l.length_km,
        fibre_attenuation_db_per_km * l.length_km));
  return net;
}

}  // namespace cvqkd::network
