#include "config/profile.hpp"

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <limits>
#include <optional>
#include <span>
#include <sstream>
#include <system_error>
#include <type_traits>
#include <utility>
#include <variant>

#include <toml++/toml.h>

namespace cvqkd::config {

namespace detail {
// Defined in the generated embedded_profiles.cpp (see embedded_profiles.cpp.in).
extern const std::pair<std::string_view, std::string_view> embedded_profiles[];
extern const std::size_t embedded_profile_count;
}  // namespace detail

namespace {

constexpr double inf = std::numeric_limits<double>::infinity();

std::string cat(std::initializer_list<std::string_view> parts) {
  std::string out;
  for (auto p : parts) out += p;
  return out;
}

std::string join(std::span<const std::string> items, std::string_view sep) {
  std::string out;
  for (const auto& s : items) out += (out.empty() ? "" : sep), out += s;
  return out;
}

// Shortest text that reads back as the same double (the std::to_chars guarantee), with the exponent
// as people write it ("1e8", not "1e+08"); "nan", "inf".
std::string shortest(double v) {
  std::array<char, 64> buf{};
  auto [end, ec] = std::to_chars(buf.data(), buf.data() + buf.size(), v);
  std::string s(buf.data(), end);
  if (auto e = s.find('e'); e != std::string::npos) {
    auto digits = s.find_first_not_of("+-", e + 1);
    auto first_nonzero = std::min(s.find_first_not_of('0', digits), s.size() - 1);
    s.erase(digits, first_nonzero - digits);
    if (s[e + 1] == '+') s.erase(e + 1, 1);
  }
  return s;
}

// TOML reads "4" as an integer, so a float keeps a decimal point.
std::string toml_float(double v) {
  std::string s = shortest(v);
  if (s.find_first_of(".en") == std::string::npos) s += ".0";
  return s;
}

// A TOML basic string: quotes, backslashes and control characters escaped, UTF-8 kept as it is.
std::string toml_string(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      case '\r': out += "\\r"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
          std::array<char, 8> hex{};
          std::snprintf(hex.data(), hex.size(), "\\u%04x", static_cast<unsigned>(c));
          out += hex.data();
        } else {
          out += c;
        }
    }
  }
  return out + '"';
}

// The two values of each enum, in the order the messages list them.
constexpr std::array<detection, 2> choices(detection) { return {detection::homodyne, detection::heterodyne}; }
constexpr std::array<lo_type, 2> choices(lo_type) { return {lo_type::transmitted, lo_type::local}; }

// Admissible values of a number or integer field.
struct domain {
  double lo = -inf;
  double hi = inf;
  bool lo_open = false;
  bool hi_open = false;

  bool contains(double v) const { return (lo_open ? v > lo : v >= lo) && (hi_open ? v < hi : v <= hi); }
  std::string text() const {
    if (hi == inf) return cat({lo_open ? "> " : ">= ", shortest(lo)});
    return cat({"in ", lo_open ? "(" : "[", shortest(lo), ", ", shortest(hi), hi_open ? ")" : "]"});
  }
};
constexpr domain any{};
constexpr domain positive{.lo = 0, .lo_open = true};
constexpr domain non_negative{.lo = 0};
constexpr bool optional = false;

using hp = hardware_profile;
using member = std::variant<std::string hp::*, detection hp::*, lo_type hp::*, double hp::*, unsigned hp::*,
                            std::uint64_t hp::*>;

struct field {
  std::string_view table;  // "" for a top-level key
  std::string_view key;
  member target;
  std::string_view what;  // meaning and unit, for messages and comments
  domain range = any;     // numbers and integers only
  bool required = true;

  std::string path() const { return table.empty() ? std::string(key) : cat({table, ".", key}); }
};

// The file layout, in order. Domains are the ones documented in core/hardware_profile.hpp.
constexpr field schema[] = {
    {"", "name", &hp::name, "profile name"},
    {"", "description", &hp::description, "free text for people", any, optional},
    {"", "source", &hp::source, "publication the numbers are anchored on", any, optional},
    {"modulation", "v_a", &hp::v_a, "modulation variance per quadrature, SNU", {.lo = 0, .hi = 1e4, .lo_open = true}},
    {"modulation", "symbol_rate_baud", &hp::symbol_rate_baud, "symbols per second on the fibre", positive},
    {"channel", "xi", &hp::xi, "excess noise referred to the channel input, SNU", {.lo = 0, .hi = 100}},
    {"detector", "detection", &hp::detection, "Bob's measurement"},
    {"detector", "lo", &hp::lo, "local-oscillator scheme, TLO or LLO"},
    {"detector", "eta", &hp::eta, "detector efficiency", {.lo = 0, .hi = 1, .lo_open = true}},
    {"detector", "v_el", &hp::v_el, "electronic noise per detector arm, SNU", non_negative},
    {"detector", "shot_noise_raw", &hp::shot_noise_raw, "shot-noise variance in ADC input units, V^2", positive},
    {"detector", "calibration_samples", &hp::calibration_samples, "samples per shot-noise calibration", {.lo = 1000, .hi = 1e9}},
    {"adc", "bits", &hp::adc_bits, "ADC resolution, bits", {.lo = 2, .hi = 24}},
    {"adc", "full_scale_sigma", &hp::adc_full_scale_sigma, "ADC full scale (+-) in signal standard deviations",
     positive},
    {"phase", "residual_noise_rad2", &hp::residual_phase_noise_rad2, "phase noise left after LO correction, rad^2",
     non_negative},
    {"phase", "drift_rad2_per_symbol", &hp::phase_drift_rad2_per_symbol, "Wiener step of uncorrected LO drift, rad^2",
     non_negative},
    {"phase", "relock_symbols", &hp::relock_symbols, "symbols between phase re-locks", {.lo = 1}},
    {"postprocessing", "beta_target", &hp::beta_target, "target reconciliation efficiency",
     {.lo = 0, .hi = 1, .lo_open = true, .hi_open = true}},
    {"postprocessing", "block_symbols", &hp::block_symbols, "finite-size block length N, symbols", {.lo = 1000, .hi = 1e10}},
};

// What a field accepts, e.g. "a number in (0, 1]" or "\"homodyne\" or \"heterodyne\"".
std::string expectation(const field& f) {
  return std::visit(
      [&](auto m) -> std::string {
        using T = std::remove_reference_t<decltype(std::declval<hp&>().*m)>;
        if constexpr (std::is_same_v<T, std::string>) return f.required ? "a non-empty string" : "a string";
        else if constexpr (std::is_same_v<T, double>) return "a number " + f.range.text();
        else if constexpr (std::is_integral_v<T>) return "an integer " + f.range.text();
        else {
          auto [a, b] = choices(T{});
          return cat({"\"", to_string(a), "\" or \"", to_string(b), "\""});
        }
      },
      f.target);
}

std::string_view type_name(const toml::node& n) {
  switch (n.type()) {
    case toml::node_type::table: return "table";
    case toml::node_type::array: return "array";
    case toml::node_type::string: return "string";
    case toml::node_type::integer: return "integer";
    case toml::node_type::floating_point: return "float";
    case toml::node_type::boolean: return "boolean";
    case toml::node_type::date: return "date";
    case toml::node_type::time: return "time";
    case toml::node_type::date_time: return "date-time";
    case toml::node_type::none: break;
  }
  return "nothing";
}

// A scalar as TOML text.
std::string shown_value(const toml::node& n) {
  if (auto f = n.as_floating_point()) return shortest(f->get());
  if (auto str = n.as_string()) return toml_string(str->get());
  std::ostringstream os;
  n.visit([&](const auto& v) { os << v; });
  return os.str();
}

// "path = value" as the user wrote it, for messages; just "path" for a table or an array.
std::string shown(std::string_view path, const toml::node& n) {
  if (n.is_table() || n.is_array()) return std::string(path);
  return cat({path, " = ", shown_value(n)});
}

// Checks the values of one document against the schema, one field at a time.
class reader {
 public:
  reader(const toml::table& root, std::string_view source) : root_(root), source_(source) {}

  // A key outside the schema is most likely a typo of one inside it: reject it, don't ignore it.
  std::optional<error> check_keys() const {
    for (auto&& [key, node] : root_) {
      if (find_field("", key.str())) continue;
      if (!is_table_name(key.str())) return unknown(key.str(), "");
      if (!node.is_table())
        return config_error(cat({shown(key.str(), node), " has the wrong type (", type_name(node),
                                 "): expected the table [", key.str(), "]. Fix the field and retry."}));
      for (auto&& [sub, unused] : *node.as_table())
        if (!find_field(key.str(), sub.str())) return unknown(cat({key.str(), ".", sub.str()}), key.str());
    }
    return std::nullopt;
  }

  std::optional<error> read(const field& f, hp& out) const {
    const toml::node* node = lookup(f);
    if (!node) {
      if (!f.required) return std::nullopt;
      return config_error(
          cat({f.path(), " is missing: expected ", expectation(f), " (", f.what, "). Add the field and retry."}));
    }
    return std::visit(
        [&](auto m) -> std::optional<error> {
          using T = std::remove_reference_t<decltype(out.*m)>;
          auto value = convert<T>(f, *node);
          if (!value) return std::move(value.error());
          out.*m = std::move(*value);
          return std::nullopt;
        },
        f.target);
  }

 private:
  static const field* find_field(std::string_view table, std::string_view key) {
    auto it = std::ranges::find_if(schema, [&](const field& f) { return f.table == table && f.key == key; });
    return it == std::end(schema) ? nullptr : &*it;
  }
  static bool is_table_name(std::string_view name) {
    return !name.empty() && std::ranges::any_of(schema, [&](const field& f) { return f.table == name; });
  }

  const toml::node* lookup(const field& f) const {
    if (f.table.empty()) return root_.get(f.key);
    const toml::table* t = root_.get_as<toml::table>(f.table);
    return t ? t->get(f.key) : nullptr;
  }

  error config_error(std::string message) const { return error{errc::config_error, cat({source_, ": ", message})}; }

  error bad_value(const field& f, const toml::node& n, std::string_view problem) const {
    return config_error(cat({shown(f.path(), n), " ", problem, ": expected ", expectation(f), " (", f.what,
                             "). Fix the field and retry."}));
  }

  error unknown(std::string_view path, std::string_view table) const {
    std::vector<std::string> known;
    for (const auto& f : schema) {
      if (f.table == table) known.emplace_back(f.key);
      else if (table.empty() && std::ranges::find(known, cat({"[", f.table, "]"})) == known.end())
        known.push_back(cat({"[", f.table, "]"}));
    }
    const std::string where = table.empty() ? "at the top level" : cat({"in [", table, "]"});
    return config_error(cat({path, " is not a known field: expected one of ", join(known, ", "), " ", where,
                             ". Fix the name or remove the field and retry."}));
  }

  template <class T>
  expected<T> convert(const field& f, const toml::node& n) const {
    auto reject = [&](std::string_view problem) { return std::unexpected(bad_value(f, n, problem)); };
    auto wrong_type = [&] { return reject(cat({"has the wrong type (", type_name(n), ")"})); };
    if constexpr (std::is_same_v<T, std::string>) {
      const auto* s = n.as_string();
      if (!s) return wrong_type();
      if (f.required && s->get().empty()) return reject("is empty");
      return s->get();
    } else if constexpr (std::is_same_v<T, double>) {
      double v = 0;
      if (const auto* d = n.as_floating_point()) v = d->get();
      else if (const auto* i = n.as_integer()) v = static_cast<double>(i->get());
      else return wrong_type();
      if (!std::isfinite(v)) return reject("is not a finite number");
      if (!f.range.contains(v)) return reject("is out of range");
      return v;
    } else if constexpr (std::is_integral_v<T>) {
      // Integers may be written as floats with an exact integer value, e.g. block_symbols = 1e9.
      if (const auto* i = n.as_integer()) {
        if (!f.range.contains(static_cast<double>(i->get()))) return reject("is out of range");
        return static_cast<T>(i->get());  // the range is within T and excludes negatives
      }
      const auto* d = n.as_floating_point();
      if (!d) return wrong_type();
      const double v = d->get();
      if (!std::isfinite(v)) return reject("is not a finite number");
      if (std::trunc(v) != v) return reject("is not an integer");
      if (!f.range.contains(v)) return reject("is out of range");
      // TOML integers are 64-bit signed, so to_toml could not write anything larger back.
      if (v >= 0x1p63) return reject("is too large for a TOML integer");
      return static_cast<T>(v);  // the range is within T
    } else {
      const auto* s = n.as_string();
      if (!s) return wrong_type();
      for (T c : choices(T{}))
        if (to_string(c) == s->get()) return c;
      return reject("is not one of the choices");
    }
  }

  const toml::table& root_;
  std::string_view source_;
};

std::span<const std::pair<std::string_view, std::string_view>> embedded() {
  return {detail::embedded_profiles, detail::embedded_profile_count};
}

}  // namespace

expected<hardware_profile> parse_profile(std::string_view toml_text, std::string_view source_name) {
  toml::table root;
  try {
    root = toml::parse(toml_text, source_name);
  } catch (const toml::parse_error& e) {
    std::string_view what = e.description();
    if (what.ends_with('.')) what.remove_suffix(1);
    const auto& at = e.source().begin;
    return fail(errc::config_error, cat({source_name, ":", std::to_string(at.line), ":", std::to_string(at.column),
                                         ": TOML syntax error: ", what, ". Fix the syntax and retry."}));
  }
  const reader r{root, source_name};
  if (auto err = r.check_keys()) return std::unexpected(std::move(*err));
  hardware_profile p;
  for (const auto& f : schema)
    if (auto err = r.read(f, p)) return std::unexpected(std::move(*err));
  return p;
}

expected<hardware_profile> load_profile_file(const std::filesystem::path& path) {
  const std::string name = path.string();
  // A directory opens fine on Linux and then reads as empty: say what it is instead.
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec))
    return fail(errc::io_error, cat({"cannot read profile file ", name,
                                     ": it is a directory. Give the path of a .toml file and retry."}));
  errno = 0;
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    const std::string reason = errno ? std::generic_category().message(errno) : "unknown reason";
    return fail(errc::io_error, cat({"cannot open profile file ", name, ": ", reason,
                                     ". Check the path and its permissions and retry."}));
  }
  // Profiles are a few hundred bytes; the cap keeps a wrong path such as /dev/zero from eating memory.
  constexpr std::streamsize max_bytes = 1 << 20;
  std::string text(max_bytes + 1, '\0');
  in.read(text.data(), max_bytes + 1);
  if (in.bad())
    return fail(errc::io_error, cat({"cannot read profile file ", name, ": read error. Check the file and retry."}));
  if (in.gcount() > max_bytes)
    return fail(errc::config_error, cat({name, ": the file is larger than 1 MiB, too large for a hardware profile. ",
                                         "Check that the path names a profile and retry."}));
  text.resize(static_cast<std::size_t>(in.gcount()));
  return parse_profile(text, name);
}

expected<hardware_profile> builtin_profile(std::string_view name) {
  for (const auto& [stem, text] : embedded())
    if (stem == name) return parse_profile(text, cat({"config/profiles/", stem, ".toml (built-in)"}));
  return fail(errc::config_error, cat({"unknown built-in profile '", name, "': expected one of ",
                                       join(builtin_profile_names(), ", "),
                                       ". Pick one of these or give the path of a .toml file."}));
}

std::vector<std::string> builtin_profile_names() {
  std::vector<std::string> names;
  for (const auto& entry : embedded()) names.emplace_back(entry.first);
  std::ranges::sort(names);
  return names;
}

expected<hardware_profile> resolve_profile(std::string_view name_or_path) {
  if (name_or_path.find('/') != std::string_view::npos || name_or_path.ends_with(".toml"))
    return load_profile_file(std::filesystem::path(name_or_path));
  return builtin_profile(name_or_path);
}

std::string to_toml(const hardware_profile& profile) {
  std::string out =
      "# cvqkd hardware profile (core/hardware_profile.hpp). Variances in shot-noise units (SNU).\n";
  std::string_view table;
  for (const auto& f : schema) {
    if (f.table != table) out += cat({"\n[", f.table, "]\n"});
    table = f.table;
    std::string line = cat({f.key, " = "});
    std::string comment;  // strings need none: their text speaks for itself
    std::visit(
        [&](auto m) {
          const auto& v = profile.*m;
          using T = std::remove_cvref_t<decltype(v)>;
          if constexpr (std::is_same_v<T, std::string>) {
            line += toml_string(v);
          } else if constexpr (std::is_arithmetic_v<T>) {
            if constexpr (std::is_integral_v<T>) line += std::to_string(v);
            else line += toml_float(v);
            comment = cat({f.what, ", ", f.range.text()});
          } else {
            line += toml_string(to_string(v));
            comment = cat({f.what, ": ", expectation(f)});
          }
        },
        f.target);
    // Comments start at column 34, as in config/profiles/*.toml.
    if (!comment.empty()) line.resize(std::max<std::size_t>(line.size() + 2, 34), ' '), line += "# " + comment;
    out += line + "\n";
  }
  return out;
}

}  // namespace cvqkd::config
