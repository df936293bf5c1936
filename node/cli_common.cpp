#include "node/cli_common.hpp"

#include <fmt/format.h>

#include <cmath>
#include <iostream>

namespace cvqkd::cli {

int exit_code_for(const error& e) noexcept {
  switch (e.code) {
    case errc::invalid_argument:
    case errc::config_error: return usage_error;
    default: return runtime_failure;
  }
}

void fail_with(const error& e) { throw cli_exit{exit_code_for(e), to_string(e)}; }

void usage(std::string_view flag, std::string_view message) {
  throw cli_exit{usage_error, fmt::format("{}: {}", flag, message)};
}

void require_finite(std::string_view flag, double v) {
  if (!std::isfinite(v)) usage(flag, fmt::format("got {}, expected a finite number", v));
}

void require_range(std::string_view flag, double v, double lo, double hi, bool lo_open, bool hi_open,
                   std::string_view meaning) {
  require_finite(flag, v);
  const bool ok = (lo_open ? v > lo : v >= lo) && (hi_open ? v < hi : v <= hi);
  if (!ok)
    usage(flag, fmt::format("got {}, expected {} in {}{}, {}{}", v, meaning, lo_open ? "(" : "[", lo,
                            std::isinf(hi) ? std::string{"inf"} : fmt::format("{}", hi), hi_open ? ")" : "]"));
}

void print_json(const nlohmann::json& j) { std::cout << j.dump(2) << '\n'; }

}  // namespace cvqkd::cli
