#include "config/node_config.hpp"

#include <cerrno>
#include <charconv>
#include <cstring>
#include <cmath>
#include <fstream>
#include <set>
#include <sstream>

#include <fmt/format.h>
#include <toml++/toml.h>

#include "config/profile.hpp"

namespace cvqkd::config {

namespace {

// Collects the first error; every accessor names the dotted field.
class reader {
public:
  explicit reader(std::string source) : source_(std::move(source)) {}

  bool ok() const { return !error_; }
  const error& err() const { return *error_; }

  void fail(const std::string& field, const std::string& what) {
    if (!error_) error_ = error{errc::config_error, fmt::format("{}: {}: {}", source_, field, what)};
  }

  // Rejects keys not in `known` (a typo would otherwise be ignored silently).
  void only(const toml::table& t, const std::string& prefix, std::initializer_list<std::string_view> known) {
    for (const auto& [k, v] : t) {
      (void)v;
      bool found = false;
      for (auto n : known) found = found || n == k.str();
      if (!found) {
        std::string list;
        for (auto n : known) list += (list.empty() ? "" : ", ") + std::string(n);
        fail(prefix + std::string(k.str()), fmt::format("unknown key; expected one of: {}", list));
      }
    }
  }

  std::optional<std::string> text(const toml::table& t, const std::string& prefix, std::string_view key, bool required,
                                  std::string_view meaning) {
    const auto* node = t.get(key);
    const std::string field = prefix + std::string(key);
    if (node == nullptr) {
      if (required) fail(field, fmt::format("missing; add {} = \"...\" ({})", key, meaning));
      return std::nullopt;
    }
    const auto v = node->value<std::string>();
    if (!node->is_string() || !v) {
      fail(field, fmt::format("expected a string ({})", meaning));
      return std::nullopt;
    }
    if (v->empty()) {
      fail(field, fmt::format("is empty; expected {}", meaning));
      return std::nullopt;
    }
    return *v;
  }

  std::optional<double> number(const toml::table& t, const std::string& prefix, std::string_view key, bool required,
                               double lo, double hi, bool lo_open, std::string_view meaning) {
    const auto* node = t.get(key);
    const std::string field = prefix + std::string(key);
    if (node == nullptr) {
      if (required) fail(field, fmt::format("missing; add {} = <number> ({})", key, meaning));
      return std::nullopt;
    }
    if (!node->is_number()) {
      fail(field, fmt::format("expected a number ({})", meaning));
      return std::nullopt;
    }
    const double v = node->is_integer() ? static_cast<double>(*node->value<std::int64_t>()) : *node->value<double>();
    const bool below = lo_open ? !(v > lo) : !(v >= lo);
    if (!std::isfinite(v) || below || v > hi) {
      fail(field, fmt::format("got {}, expected {} in {}{}, {}]", v, meaning, lo_open ? "(" : "[", lo, hi));
      return std::nullopt;
    }
    return v;
  }

  // A whole number in [lo, hi]; TOML integers, or floats such as 1e6 that are whole.
  std::optional<std::uint64_t> whole(const toml::table& t, const std::string& prefix, std::string_view key,
                                     bool required, double lo, double hi, std::string_view meaning) {
    const auto v = number(t, prefix, key, required, lo, hi, false, meaning);
    if (!v) return std::nullopt;
    if (*v != std::floor(*v)) {
      fail(prefix + std::string(key), fmt::format("got {}, expected a whole number ({})", *v, meaning));
      return std::nullopt;
    }
    return static_cast<std::uint64_t>(*v);
  }

  std::optional<bool> boolean(const toml::table& t, const std::string& prefix, std::string_view key) {
    const auto* node = t.get(key);
    if (node == nullptr) return std::nullopt;
    if (!node->is_boolean()) {
      fail(prefix + std::string(key), "expected true or false");
      return std::nullopt;
    }
    return *node->value<bool>();
  }

  const toml::table* table(const toml::table& root, std::string_view key, bool required) {
    const auto* node = root.get(key);
    if (node == nullptr) {
      if (required) fail(std::string(key), fmt::format("missing section; add a [{}] table", key));
      return nullptr;
    }
    if (!node->is_table()) {
      fail(std::string(key), fmt::format("expected a table [{}]", key));
      return nullptr;
    }
    return node->as_table();
  }

private:
  std::string source_;
  std::optional<error> error_;
};

bool valid_id(std::string_view s, std::size_t max) {
  if (s.empty() || s.size() > max) return false;
  for (char c : s) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
                    c == '-';
    if (!ok) return false;
  }
  return true;
}

std::filesystem::path resolve(const std::filesystem::path& base, const std::string& p) {
  const std::filesystem::path path(p);
  return path.is_absolute() ? path : (base / path).lexically_normal();
}

std::optional<link_attack> parse_attack(const std::string& spec, std::string& why) {
  link_attack a;
  if (spec == "none") return a;
  const auto colon = spec.find(':');
  const std::string name = spec.substr(0, colon);
  double value = 1.0;
  if (colon != std::string::npos) {
    const std::string v = spec.substr(colon + 1);
    auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), value);
    if (ec != std::errc{} || end != v.data() + v.size() || !std::isfinite(value)) {
      why = fmt::format("'{}' is not a number", v);
      return std::nullopt;
    }
  }
  if (name == "intercept-resend") {
    if (!(value > 0 && value <= 1)) {
      why = fmt::format("intercepted fraction {} outside (0, 1]", value);
      return std::nullopt;
    }
    a.type = link_attack::kind::intercept_resend;
  } else if (name == "entangling-cloner") {
    if (colon == std::string::npos || !(value > 0 && value <= 100)) {
      why = "entangling-cloner needs its added excess noise: entangling-cloner:XI with XI in (0, 100] SNU";
      return std::nullopt;
    }
    a.type = link_attack::kind::entangling_cloner;
  } else {
    why = "expected none, intercept-resend[:FRACTION] or entangling-cloner:XI";
    return std::nullopt;
  }
  a.parameter = value;
  return a;
}

}  // namespace

std::string endpoint::to_string() const { return fmt::format("{}:{}", host, port); }

expected<endpoint> parse_endpoint(std::string_view text, std::string_view field) {
  const auto colon = text.rfind(':');
  if (colon == std::string_view::npos || colon == 0 || colon + 1 == text.size())
    return fail(errc::config_error,
                fmt::format("{}: got '{}', expected HOST:PORT such as 127.0.0.1:7001", field, text));
  endpoint e;
  e.host = std::string(text.substr(0, colon));
  const auto port_text = text.substr(colon + 1);
  unsigned port = 0;
  auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (ec != std::errc{} || end != port_text.data() + port_text.size() || port == 0 || port > 65535)
    return fail(errc::config_error,
                fmt::format("{}: port '{}' in '{}' is not in 1..65535; write HOST:PORT such as 127.0.0.1:7001", field,
                            port_text, text));
  e.port = static_cast<std::uint16_t>(port);
  return e;
}

std::string_view to_string(link_role r) noexcept { return r == link_role::alice ? "alice" : "bob"; }

double link_config::transmittance() const noexcept { return fibre_transmittance(length_km, 0.2, extra_loss_db); }

std::uint64_t link_config::n_pe() const noexcept {
  const double n = std::round(pe_fraction * static_cast<double>(block_symbols));
  if (n < 1) return 1;
  if (n >= static_cast<double>(block_symbols)) return block_symbols - 1;
  return static_cast<std::uint64_t>(n);
}

const link_config* node_config::find_link(std::string_view link_id) const noexcept {
  for (const auto& l : links)
    if (l.id == link_id) return &l;
  return nullptr;
}

expected<node_config> parse_node_config(std::string_view toml_text, std::string_view source_name,
                                        const std::filesystem::path& base_dir) {
  toml::table root;
  try {
    root = toml::parse(toml_text, source_name);
  } catch (const toml::parse_error& e) {
    const auto& b = e.source().begin;
    return fail(errc::config_error, fmt::format("{}:{}:{}: TOML syntax error: {}", source_name, b.line, b.column,
                                                e.description()));
  }
  reader r{std::string(source_name)};
  node_config c;
  c.source = std::string(source_name);
  r.only(root, "", {"node", "pki", "security", "links", "saes", "remote_saes"});

  if (const auto* n = r.table(root, "node", true)) {
    const std::string p = "node.";
    r.only(*n, p, {"id", "listen", "api_listen", "storage", "kek_file", "log_level"});
    if (auto v = r.text(*n, p, "id", true, "the node ID, the CN of its certificate")) {
      if (!valid_id(*v, 64)) r.fail("node.id", fmt::format("got '{}', expected 1..64 characters of A-Z a-z 0-9 . _ -", *v));
      c.id = *v;
    }
    if (auto v = r.text(*n, p, "listen", true, "HOST:PORT of the inter-node channel, e.g. \"127.0.0.1:7001\"")) {
      auto e = parse_endpoint(*v, std::string(source_name) + ": node.listen");
      if (!e) r.fail("node.listen", fmt::format("got '{}', expected HOST:PORT with a port in 1..65535", *v));
      else c.listen = *e;
    }
    if (auto v = r.text(*n, p, "api_listen", false, "HOST:PORT of the HTTPS API")) {
      auto e = parse_endpoint(*v, "node.api_listen");
      if (!e) r.fail("node.api_listen", fmt::format("got '{}', expected HOST:PORT with a port in 1..65535", *v));
      else c.api_listen = *e;
    }
    if (auto v = r.text(*n, p, "storage", true, "the key store directory")) c.storage = resolve(base_dir, *v);
    if (auto v = r.text(*n, p, "kek_file", true, "the key-encryption key file (created with mode 0600 if missing)"))
      c.kek_file = resolve(base_dir, *v);
    if (auto v = r.text(*n, p, "log_level", false, "a log level")) {
      static const std::set<std::string> levels{"trace", "debug", "info", "warn", "error", "critical", "off"};
      if (!levels.contains(*v))
        r.fail("node.log_level", fmt::format("got '{}', expected trace, debug, info, warn, error, critical or off", *v));
      c.log_level = *v;
    }
  }

  if (const auto* t = r.table(root, "pki", true)) {
    const std::string p = "pki.";
    r.only(*t, p, {"ca", "certificate", "key", "secrets"});
    if (auto v = r.text(*t, p, "ca", true, "the CA certificate (PEM) that signed every node certificate"))
      c.ca = resolve(base_dir, *v);
    if (auto v = r.text(*t, p, "certificate", true, "this node's certificate (PEM), from cvqkd pki init"))
      c.certificate = resolve(base_dir, *v);
    if (auto v = r.text(*t, p, "key", true, "this node's private key (PEM, mode 0600)")) c.key = resolve(base_dir, *v);
    if (auto v = r.text(*t, p, "secrets", true, "the directory of the links' pre-shared secrets"))
      c.secrets = resolve(base_dir, *v);
  }

  if (const auto* s = r.table(root, "security", false)) {
    const std::string p = "security.";
    r.only(*s, p, {"eps_pe", "eps_smooth", "eps_pa", "detector_model"});
    if (auto v = r.number(*s, p, "eps_pe", false, 0, 0.5, true, "a failure probability")) c.eps_pe = *v;
    if (auto v = r.number(*s, p, "eps_smooth", false, 0, 0.5, true, "a failure probability")) c.eps_smooth = *v;
    if (auto v = r.number(*s, p, "eps_pa", false, 0, 0.5, true, "a failure probability")) c.eps_pa = *v;
    if (auto v = r.text(*s, p, "detector_model", false, "trusted or untrusted")) {
      auto m = parse_detector_model(*v);
      if (!m) r.fail("security.detector_model", fmt::format("got '{}', expected trusted or untrusted", *v));
      else c.model = *m;
    }
  }

  if (const auto* node = root.get("links")) {
    const auto* arr = node->as_array();
    if (arr == nullptr || !arr->is_array_of_tables()) {
      r.fail("links", "expected [[links]] tables");
    } else {
      std::set<std::string> seen;
      for (std::size_t i = 0; i < arr->size(); ++i) {
        const auto& t = *arr->get(i)->as_table();
        const std::string p = fmt::format("links[{}].", i);
        r.only(t, p,
               {"id", "peer", "peer_address", "role", "profile", "length_km", "extra_loss_db", "block_symbols",
                "pe_fraction", "frame_symbols", "beta", "short_codes", "max_iterations", "pool_max_bits", "seed",
                "attack"});
        link_config l;
        if (auto v = r.text(t, p, "id", true, "the link ID, the same at both ends")) {
          if (!valid_id(*v, 200)) r.fail(p + "id", fmt::format("got '{}', expected 1..200 characters of A-Z a-z 0-9 . _ -", *v));
          if (!seen.insert(*v).second) r.fail(p + "id", fmt::format("link '{}' is configured twice; give each link one [[links]] entry", *v));
          l.id = *v;
        }
        if (auto v = r.text(t, p, "peer", true, "the node ID at the other end")) {
          if (!valid_id(*v, 64)) r.fail(p + "peer", fmt::format("got '{}', expected a node ID", *v));
          if (*v == c.id) r.fail(p + "peer", fmt::format("'{}' is this node; name the node at the other end", *v));
          l.peer = *v;
        }
        if (auto v = r.text(t, p, "peer_address", true, "HOST:PORT of the peer's [node] listen")) {
          auto e = parse_endpoint(*v, "peer_address");
          if (!e) r.fail(p + "peer_address", fmt::format("got '{}', expected HOST:PORT with a port in 1..65535", *v));
          else l.peer_address = *e;
        }
        if (auto v = r.text(t, p, "role", true, "alice (transmitter, waits for the peer) or bob (receiver, dials)")) {
          if (*v == "alice") l.role = link_role::alice;
          else if (*v == "bob") l.role = link_role::bob;
          else r.fail(p + "role", fmt::format("got '{}', expected alice or bob", *v));
        }
        if (auto v = r.text(t, p, "profile", true, "a built-in profile name (cvqkd profiles list) or a TOML file")) {
          l.profile_name = *v;
          const bool is_path = v->find('/') != std::string::npos || v->ends_with(".toml");
          auto prof = resolve_profile(is_path ? resolve(base_dir, *v).string() : *v);
          if (!prof) r.fail(p + "profile", prof.error().message);
          else l.profile = *prof;
        }
        if (auto v = r.number(t, p, "length_km", true, 0, 500, false, "a fibre length (km)")) l.length_km = *v;
        if (auto v = r.number(t, p, "extra_loss_db", false, 0, 100, false, "an insertion loss (dB)")) l.extra_loss_db = *v;
        if (r.ok() && l.transmittance() < 1e-10)
          r.fail(p + "length_km", fmt::format("{} km plus {} dB is more than 100 dB of loss; the model covers T >= 1e-10",
                                              l.length_km, l.extra_loss_db));
        l.block_symbols = l.profile.block_symbols;
        if (const auto* b = t.get("block_symbols"); b != nullptr && b->is_string()) {
          if (b->value_or(std::string{}) == "auto") l.block_auto = true;
          else
            r.fail(p + "block_symbols", fmt::format("got \"{}\", expected a whole number of symbols or \"auto\" (the "
                                                    "smallest block with key, see `cvqkd link plan`)",
                                                    b->value_or(std::string{})));
        } else if (auto v = r.whole(t, p, "block_symbols", false, 1000, 1e10, "a block size N (symbols)")) {
          l.block_symbols = *v;
        }
        if (auto v = r.number(t, p, "pe_fraction", false, 0, 1, true, "the disclosed fraction of the block")) {
          if (*v >= 1) r.fail(p + "pe_fraction", fmt::format("got {}, expected a fraction below 1", *v));
          l.pe_fraction = *v;
        }
        if (auto v = r.whole(t, p, "frame_symbols", false, 1000, 1e10, "symbols per hardware frame")) l.frame_symbols = *v;
        if (r.ok() && l.frame_symbols > l.block_symbols && !l.block_auto) {
          if (t.get("frame_symbols") != nullptr)
            r.fail(p + "frame_symbols", fmt::format("{} exceeds block_symbols {}; give frame_symbols <= block_symbols",
                                                    l.frame_symbols, l.block_symbols));
          else
            l.frame_symbols = l.block_symbols;  // the default frame is larger than a small block
        }
        l.beta = l.profile.beta_target;
        if (auto v = r.number(t, p, "beta", false, 0, 1, true, "a reconciliation efficiency")) {
          if (*v >= 1) r.fail(p + "beta", fmt::format("got {}, expected a reconciliation efficiency below 1", *v));
          l.beta = *v;
        }
        if (auto v = r.boolean(t, p, "short_codes")) l.short_codes = *v;
        if (auto v = r.whole(t, p, "max_iterations", false, 1, 100000, "belief-propagation iterations per frame"))
          l.max_iterations = static_cast<unsigned>(*v);
        if (auto v = r.whole(t, p, "pool_max_bits", false, 0, 9e15, "a pool limit (bits, 0: none)")) l.pool_max_bits = *v;
        if (auto v = r.whole(t, p, "seed", true, 0, 9e15, "the shared simulation seed (the same at both ends)")) l.seed = *v;
        if (auto v = r.text(t, p, "attack", false, "a drill attack")) {
          std::string why;
          auto a = parse_attack(*v, why);
          if (!a) r.fail(p + "attack", fmt::format("got '{}': {}", *v, why));
          else l.attack = *a;
        }
        c.links.push_back(std::move(l));
      }
    }
  }

  if (const auto* node = root.get("saes")) {
    const auto* arr = node->as_array();
    if (arr == nullptr || !arr->is_array_of_tables()) {
      r.fail("saes", "expected [[saes]] tables");
    } else {
      std::set<std::string> seen;
      for (std::size_t i = 0; i < arr->size(); ++i) {
        const auto& t = *arr->get(i)->as_table();
        const std::string p = fmt::format("saes[{}].", i);
        r.only(t, p, {"id"});
        if (auto v = r.text(t, p, "id", true, "an SAE ID (the CN of the SAE's certificate)")) {
          if (!valid_id(*v, 200)) r.fail(p + "id", fmt::format("got '{}', expected 1..200 characters of A-Z a-z 0-9 . _ -", *v));
          if (!seen.insert(*v).second) r.fail(p + "id", fmt::format("SAE '{}' is listed twice", *v));
          c.saes.push_back({*v});
        }
      }
    }
  }

  if (const auto* node = root.get("remote_saes")) {
    const auto* arr = node->as_array();
    if (arr == nullptr || !arr->is_array_of_tables()) {
      r.fail("remote_saes", "expected [[remote_saes]] tables");
    } else {
      std::set<std::string> seen;
      for (const auto& s : c.saes) seen.insert(s.id);
      for (std::size_t i = 0; i < arr->size(); ++i) {
        const auto& t = *arr->get(i)->as_table();
        const std::string p = fmt::format("remote_saes[{}].", i);
        r.only(t, p, {"id", "node"});
        auto id = r.text(t, p, "id", true, "the SAE ID (the CN of the SAE's certificate)");
        auto kme = r.text(t, p, "node", true, "the node ID of the KME that serves this SAE");
        if (!id || !kme) continue;
        if (!valid_id(*id, 200)) r.fail(p + "id", fmt::format("got '{}', expected 1..200 characters of A-Z a-z 0-9 . _ -", *id));
        if (!valid_id(*kme, 64)) r.fail(p + "node", fmt::format("got '{}', expected a node ID (1..64 characters of A-Z a-z 0-9 . _ -)", *kme));
        if (*kme == c.id) r.fail(p + "node", fmt::format("names this node '{}'; list SAE '{}' under [[saes]] instead", *kme, *id));
        if (!seen.insert(*id).second)
          r.fail(p + "id", fmt::format("SAE '{}' is listed twice (in [[saes]] or [[remote_saes]]); keep one entry", *id));
        c.remote_saes.push_back({*id, *kme});
      }
    }
  }

  if (!r.ok()) return std::unexpected(r.err());
  return c;
}

expected<node_config> load_node_config(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    return fail(errc::io_error, fmt::format("cannot read node configuration {}: {}; check the --config path",
                                            path.string(), std::strerror(errno)));
  std::ostringstream ss;
  ss << in.rdbuf();
  const auto base = std::filesystem::absolute(path).parent_path();
  return parse_node_config(ss.str(), path.string(), base);
}

}  // namespace cvqkd::config
