#include "core/error.hpp"

namespace cvqkd {

std::string_view to_string(errc code) noexcept {
  switch (code) {
    case errc::invalid_argument: return "invalid_argument";
    case errc::config_error: return "config_error";
    case errc::io_error: return "io_error";
    case errc::parse_error: return "parse_error";
    case errc::insufficient_data: return "insufficient_data";
    case errc::no_secret_key: return "no_secret_key";
    case errc::device_fault: return "device_fault";
    case errc::unsupported: return "unsupported";
    case errc::cancelled: return "cancelled";
  }
  return "unknown_error";
}

std::string to_string(const error& e) {
  std::string out{to_string(e.code)};
  out += ": ";
  out += e.message;
  return out;
}

}  // namespace cvqkd
