#include "config/topology.hpp"

#include <arpa/inet.h>

#include <fmt/format.h>
#include <toml++/toml.h>

#include <algorithm>
#include <cctype>
#include <fstream>
#include <set>
#include <sstream>

#include "config/profile.hpp"

namespace cvqkd::config {
namespace detail {
// Defined in the generated embedded_topologies.cpp (see embedded_topologies.cpp.in).
extern const std::pair<std::string_view, std::string_view> embedded_topologies[];
extern const std::size_t embedded_topology_count;
}  // namespace detail

namespace {

bool valid_name(std::string_view s) {
  if (s.empty() || s.size() > 64) return false;
  for (char c : s)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-')) return false;
  return true;
}

class parser {
public:
  explicit parser(std::string source) : source_(std::move(source)) {}

  std::optional<error> err;

  void fail(const std::string& field, const std::string& what) {
    if (!err) err = error{errc::config_error, fmt::format("{}: {}: {}", source_, field, what)};
  }

  // A message that already names the field.
  void fail_raw(const std::string& message) {
    if (!err) err = error{errc::config_error, fmt::format("{}: {}", source_, message)};
  }

  void only(const toml::table& t, const std::string& prefix, std::initializer_list<std::string_view> known) {
    for (const auto& [k, v] : t) {
      (void)v;
      bool found = false;
      std::string list;
      for (auto n : known) {
        found = found || n == k.str();
        list += (list.empty() ? "" : ", ") + std::string(n);
      }
      if (!found) fail(prefix + std::string(k.str()), "unknown key; expected one of: " + list);
    }
  }

  std::string name(const toml::table& t, const std::string& prefix, std::string_view key) {
    const auto v = t[key].value<std::string>();
    if (!v) {
      fail(prefix + std::string(key), "missing or not a string; expected 1..64 characters of A-Z a-z 0-9 . _ -");
      return {};
    }
    if (!valid_name(*v)) fail(prefix + std::string(key), fmt::format("'{}' is not 1..64 characters of A-Z a-z 0-9 . _ -", *v));
    return *v;
  }

  std::optional<double> number(const toml::table& t, const std::string& prefix, std::string_view key, double lo,
                               double hi, std::string_view meaning) {
    const auto* n = t.get(key);
    if (n == nullptr) return std::nullopt;
    std::optional<double> v = n->value<double>();
    if (!v || !(n->is_floating_point() || n->is_integer())) {
      fail(prefix + std::string(key), fmt::format("expected a number ({})", meaning));
      return std::nullopt;
    }
    if (!(*v >= lo && *v <= hi)) fail(prefix + std::string(key), fmt::format("{} is outside [{}, {}] ({})", *v, lo, hi, meaning));
    return v;
  }

  std::optional<std::uint64_t> count(const toml::table& t, const std::string& prefix, std::string_view key,
                                     std::uint64_t lo, std::uint64_t hi, std::string_view meaning) {
    const auto* n = t.get(key);
    if (n == nullptr) return std::nullopt;
    const auto v = n->value<std::int64_t>();
    if (!n->is_integer() || !v || *v < 0 || static_cast<std::uint64_t>(*v) < lo || static_cast<std::uint64_t>(*v) > hi) {
      fail(prefix + std::string(key), fmt::format("expected a whole number in [{}, {}] ({})", lo, hi, meaning));
      return std::nullopt;
    }
    return static_cast<std::uint64_t>(*v);
  }

private:
  std::string source_;
};

}  // namespace

expected<std::string> parse_host_address(std::string_view text, std::string_view field) {
  const std::string s(text);
  in_addr a{};
  // inet_pton accepts exactly the dotted quad (no shorthand like "10.1", no leading zeros, no names).
  if (::inet_pton(AF_INET, s.c_str(), &a) != 1)
    return fail(errc::config_error, fmt::format("{}: '{}' is not an IPv4 address; write the site's address as a dotted "
                                                "quad such as \"10.91.0.2\" (host names and IPv6 are not supported)",
                                                field, text));
  const std::uint32_t h = ntohl(a.s_addr);
  if (h == 0 || h == 0xffffffffu || (h >> 28) == 0xe)
    return fail(errc::config_error,
                fmt::format("{}: '{}' is {}; give the address of the site's own interface, which its peers can dial "
                            "(e.g. \"10.91.0.2\")",
                            field, text,
                            h == 0                ? "the unspecified address"
                            : h == 0xffffffffu    ? "the broadcast address"
                                                  : "a multicast address"));
  char out[INET_ADDRSTRLEN] = {};
  ::inet_ntop(AF_INET, &a, out, sizeof out);
  return std::string(out);
}

const topology_node* topology::find_node(std::string_view id) const noexcept {
  for (const auto& n : nodes)
    if (n.id == id) return &n;
  return nullptr;
}

expected<topology> parse_topology(std::string_view text, std::string_view source_name) {
  toml::table root;
  try {
    root = toml::parse(text, source_name);
  } catch (const toml::parse_error& e) {
    return fail(errc::config_error, fmt::format("{}: line {}: {}", source_name, e.source().begin.line, e.description()));
  }
  parser p{std::string(source_name)};
  topology topo;
  topo.source = std::string(source_name);
  p.only(root, "", {"network", "nodes", "links"});
  if (const auto* net = root["network"].as_table()) {
    p.only(*net, "network.", {"name"});
    topo.name = net->get("name") ? (*net)["name"].value_or(std::string{}) : std::string{};
  }
  if (topo.name.empty()) topo.name = std::string(source_name);

  std::set<std::string> saes;
  const auto* nodes = root["nodes"].as_array();
  if (nodes == nullptr || nodes->empty()) p.fail("nodes", "missing; add at least two [[nodes]] with id = \"...\"");
  for (std::size_t i = 0; nodes && i < nodes->size(); ++i) {
    const std::string prefix = fmt::format("nodes[{}].", i);
    const auto* t = nodes->get(i)->as_table();
    if (!t) {
      p.fail(prefix, "expected a table");
      break;
    }
    p.only(*t, prefix, {"id", "saes", "host"});
    topology_node n;
    n.id = p.name(*t, prefix, "id");
    if (const auto* h = t->get("host")) {
      if (!h->is_string()) {
        p.fail(prefix + "host", "expected a string with the site's IPv4 address, e.g. host = \"10.91.0.2\"");
      } else if (auto a = parse_host_address(h->value_or(std::string{}), prefix + "host"); !a) {
        p.fail_raw(a.error().message);
      } else {
        n.host = *a;
      }
    }
    if (topo.find_node(n.id)) p.fail(prefix + "id", fmt::format("'{}' appears twice; node IDs must be unique", n.id));
    if (const auto* s = t->get("saes")) {
      const auto* arr = s->as_array();
      if (!arr) p.fail(prefix + "saes", "expected an array of SAE IDs");
      for (std::size_t k = 0; arr && k < arr->size(); ++k) {
        const auto v = arr->get(k)->value<std::string>();
        const std::string field = fmt::format("{}saes[{}]", prefix, k);
        if (!v || !valid_name(*v)) {
          p.fail(field, "expected an SAE ID of 1..64 characters of A-Z a-z 0-9 . _ -");
          continue;
        }
        if (!saes.insert(*v).second) p.fail(field, fmt::format("SAE '{}' appears twice; each SAE is served by one node", *v));
        n.saes.push_back(*v);
      }
    }
    topo.nodes.push_back(std::move(n));
  }

  std::set<std::string> link_ids;
  std::set<std::pair<std::string, std::string>> pairs;
  const auto* links = root["links"].as_array();
  for (std::size_t i = 0; links && i < links->size(); ++i) {
    const std::string prefix = fmt::format("links[{}].", i);
    const auto* t = links->get(i)->as_table();
    if (!t) {
      p.fail(prefix, "expected a table");
      break;
    }
    p.only(*t, prefix,
           {"id", "a", "b", "length_km", "loss_db", "profile", "block_symbols", "beta", "short_codes", "frame_symbols",
            "pool_max_bits"});
    topology_link l;
    l.id = p.name(*t, prefix, "id");
    if (!l.id.empty() && !link_ids.insert(l.id).second) p.fail(prefix + "id", fmt::format("'{}' appears twice", l.id));
    l.a = p.name(*t, prefix, "a");
    l.b = p.name(*t, prefix, "b");
    if (!l.a.empty() && !topo.find_node(l.a)) p.fail(prefix + "a", fmt::format("'{}' is not a node of [[nodes]]", l.a));
    if (!l.b.empty() && !topo.find_node(l.b)) p.fail(prefix + "b", fmt::format("'{}' is not a node of [[nodes]]", l.b));
    if (!l.a.empty() && l.a == l.b) p.fail(prefix + "b", "a link must join two different nodes");
    const auto [lo, hi] = std::minmax(l.a, l.b);
    if (!l.a.empty() && !l.b.empty() && !pairs.insert({lo, hi}).second)
      p.fail(prefix + "b", fmt::format("a second link between {} and {}; one link per pair", l.a, l.b));
    l.length_km = p.number(*t, prefix, "length_km", 0, 1000, "fibre length in km").value_or(-1);
    if (l.length_km < 0) p.fail(prefix + "length_km", "missing; add length_km = <km>");
    l.loss_db = p.number(*t, prefix, "loss_db", 0, 100, "total channel loss in dB").value_or(0.2 * std::max(0.0, l.length_km));
    l.profile_name = t->get("profile") ? (*t)["profile"].value_or(std::string{}) : std::string{};
    if (l.profile_name.empty()) {
      p.fail(prefix + "profile", "missing; add profile = \"<name>\" (see `cvqkd profiles list`)");
    } else if (auto prof = resolve_profile(l.profile_name); !prof) {
      p.fail(prefix + "profile", prof.error().message);
    } else {
      l.profile = *prof;
    }
    if (const auto* b = t->get("block_symbols"); b != nullptr && b->is_string()) {
      l.block_symbols = l.profile.block_symbols;  // until the node plans it
      if (b->value_or(std::string{}) == "auto") l.block_auto = true;
      else
        p.fail(prefix + "block_symbols",
               fmt::format("got \"{}\", expected a whole number of symbols or \"auto\" (the smallest block with "
                           "key, see `cvqkd link plan`)",
                           b->value_or(std::string{})));
    } else {
      l.block_symbols = p.count(*t, prefix, "block_symbols", 1000, 10'000'000'000ull, "symbols per block")
                          .value_or(l.profile.block_symbols);
    }
    l.beta = p.number(*t, prefix, "beta", 0.5, 0.999, "reconciliation efficiency").value_or(0.0);
    if (const auto* s = t->get("short_codes")) {
      if (!s->is_boolean()) p.fail(prefix + "short_codes", "expected true or false");
      l.short_codes = s->value_or(false);
    }
    l.frame_symbols = p.count(*t, prefix, "frame_symbols", 1000, l.block_auto ? 10'000'000'000ull : l.block_symbols,
                              "symbols per hardware frame, at most the block")
                        .value_or(std::min<std::uint64_t>(262'144, l.block_symbols));
    l.pool_max_bits = p.count(*t, prefix, "pool_max_bits", 0, UINT64_MAX / 2, "pool limit in bits").value_or(0);
    topo.links.push_back(std::move(l));
  }
  if (p.err) return std::unexpected(*p.err);
  if (topo.nodes.size() < 2) return fail(errc::config_error, fmt::format("{}: nodes: a network needs at least two nodes", source_name));
  return topo;
}

expected<topology> load_topology(const std::filesystem::path& path) {
  std::ifstream in(path);
  if (!in) return fail(errc::io_error, fmt::format("cannot read the topology file {}: check the path", path.string()));
  std::ostringstream text;
  text << in.rdbuf();
  return parse_topology(text.str(), path.string());
}

std::vector<std::string> builtin_topology_names() {
  std::vector<std::string> names;
  for (std::size_t i = 0; i < detail::embedded_topology_count; ++i)
    names.emplace_back(detail::embedded_topologies[i].first);
  return names;
}

expected<topology> resolve_topology(std::string_view name_or_path) {
  for (std::size_t i = 0; i < detail::embedded_topology_count; ++i)
    if (detail::embedded_topologies[i].first == name_or_path)
      return parse_topology(detail::embedded_topologies[i].second, std::string(name_or_path) + " (shipped)");
  std::error_code ec;
  if (std::filesystem::is_regular_file(std::filesystem::path(name_or_path), ec)) return load_topology(name_or_path);
  std::string names;
  for (const auto& n : builtin_topology_names()) names += (names.empty() ? "" : ", ") + n;
  return fail(errc::config_error, fmt::format("'{}' is neither a shipped topology ({}) nor a readable file", name_or_path,
                                              names));
}

}  // namespace cvqkd::config
