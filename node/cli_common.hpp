#pragma once
// Shared pieces of the `cvqkd` subcommands: exit codes, error reporting, flag validation.

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <string_view>

#include "core/error.hpp"

namespace cvqkd::cli {

/// Process exit codes of every subcommand.
enum exit_code : int { ok = 0, runtime_failure = 1, usage_error = 2 };

/// Thrown inside a subcommand's callback to end the process with a code and message; main()
/// catches it. (CLI11 itself reports through exceptions, so the CLI layer follows suit.)
struct cli_exit {
  int code;
  std::string message;
};

/// Exit code for a library error: configuration and argument problems are usage errors (2),
/// everything else a runtime failure (1).
int exit_code_for(const error& e) noexcept;

/// Ends the command: throws cli_exit with the error's message and exit code.
[[noreturn]] void fail_with(const error& e);
/// Ends the command as a usage error naming `flag`.
[[noreturn]] void usage(std::string_view flag, std::string_view message);

/// Validates a numeric flag value: finite and inside [lo, hi] (open ends where the flags say).
/// Throws cli_exit (usage_error) naming the flag and the expected domain.
void require_finite(std::string_view flag, double v);
void require_range(std::string_view flag, double v, double lo, double hi, bool lo_open, bool hi_open,
                   std::string_view meaning);

/// Prints a JSON document (pretty, trailing newline) to stdout.
void print_json(const nlohmann::json& j);

}  // namespace cvqkd::cli
