#include "core/physics.hpp"

namespace cvqkd {

std::optional<detection> parse_detection(std::string_view s) noexcept {
  if (s == "homodyne") return detection::homodyne;
  if (s == "heterodyne") return detection::heterodyne;
  return std::nullopt;
}

std::optional<detector_model> parse_detector_model(std::string_view s) noexcept {
  if (s == "trusted") return detector_model::trusted;
  if (s == "untrusted") return detector_model::untrusted;
  return std::nullopt;
}

std::optional<lo_type> parse_lo_type(std::string_view s) noexcept {
  if (s == "transmitted") return lo_type::transmitted;
  if (s == "local") return lo_type::local;
  return std::nullopt;
}

}  // namespace cvqkd
