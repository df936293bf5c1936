#pragma once
// The project's error vocabulary. Plain libraries return cvqkd::expected<T>; actors translate
// to caf::error at their boundary. Every message says what the user can do about the problem.

#include <expected>
#include <string>
#include <string_view>
#include <utility>

namespace cvqkd {

enum class errc {
  invalid_argument = 1,  // a caller passed a value outside its documented domain
  config_error,          // a configuration file or field is missing or invalid
  io_error,              // a file or device could not be read or written
  parse_error,           // input data (file, wire) is malformed
  insufficient_data,     // too few samples for the requested statistic
  no_secret_key,         // the security bound is <= 0: no key may be released
  device_fault,          // the (simulated or real) hardware reported a fault
  unsupported,           // a feature is not available in this build or driver
  cancelled,             // stopped because its owner is shutting down (retry when it is back)
};

/// Stable, lower-case name of an error code, e.g. "config_error".
std::string_view to_string(errc code) noexcept;

struct error {
  errc code;
  std::string message;  // says what went wrong and what the user can do about it
};

template <class T>
using expected = std::expected<T, error>;

/// Shorthand for returning an error: `return fail(errc::io_error, "cannot open ...")`.
inline std::unexpected<error> fail(errc code, std::string message) {
  return std::unexpected<error>(error{code, std::move(message)});
}

/// "config_error: <message>" — for logs and CLI output.
std::string to_string(const error& e);

}  // namespace cvqkd
