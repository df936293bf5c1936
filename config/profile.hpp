#pragma once
// Hardware profiles as TOML (layout: config/profiles/*.toml): strict parsing, the profiles shipped
// with the binary, and serialisation back to the same layout. Nothing here throws: every failure is
// an error whose message names the file, the dotted field and what to do about it.

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.hpp"
#include "core/hardware_profile.hpp"

namespace cvqkd::config {

/// Parses and validates one profile; `source_name` (usually the file path) prefixes every message.
/// Every field except `description` and `source` is required. Errors: config_error for a TOML syntax
/// error (file:line:column), a missing field, an unknown key, a wrong type, NaN/inf, or a value
/// outside the domain documented in core/hardware_profile.hpp.
expected<hardware_profile> parse_profile(std::string_view toml_text, std::string_view source_name);

/// Reads and parses the profile file at `path`. Errors: io_error (path and OS reason) if it cannot
/// be read; otherwise as parse_profile.
expected<hardware_profile> load_profile_file(const std::filesystem::path& path);

/// A profile shipped in config/profiles/, by file stem (e.g. "llo_metro"). Errors: config_error
/// listing the available names if `name` is not one of them.
expected<hardware_profile> builtin_profile(std::string_view name);

/// The names builtin_profile accepts, sorted.
std::vector<std::string> builtin_profile_names();

/// Loads `name_or_path` as a file if it contains '/' or ends in ".toml", else as a built-in name.
/// Errors: as load_profile_file or builtin_profile.
expected<hardware_profile> resolve_profile(std::string_view name_or_path);

/// The profile as TOML in the layout of config/profiles/*.toml, numbers at full precision, with a
/// comment giving each field's unit and domain. parse_profile reads back unchanged any profile it
/// accepted (integers above 2^63 - 1 have no TOML form and are rejected there).
std::string to_toml(const hardware_profile& profile);

}  // namespace cvqkd::config
