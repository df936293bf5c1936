#include "node/api/key_service.hpp"

#include <algorithm>

namespace cvqkd::api {

api_refusal refuse(http_status status, std::string message, std::vector<std::pair<std::string, std::string>> details) {
  return api_refusal{status, std::move(message), std::move(details)};
}

std::string_view to_string(route_type r) noexcept {
  switch (r) {
    case route_type::direct: return "direct";
    case route_type::relay: return "relay";
    case route_type::multipath: return "multipath";
  }
  return "?";
}

std::optional<route_type> parse_route_type(std::string_view text) noexcept {
  if (text == "direct") return route_type::direct;
  if (text == "relay") return route_type::relay;
  if (text == "multipath") return route_type::multipath;
  return std::nullopt;
}

std::optional<api_refusal> check_key_request(const key_limits& limits, const key_request& r) {
  if (r.number < 1) return refuse(http_status::bad_request, "number shall be at least 1", {{"number", std::to_string(r.number)}});
  if (r.number > limits.max_key_per_request)
    return refuse(http_status::bad_request, "number shall not exceed max_key_per_request",
                  {{"max_key_per_request", std::to_string(limits.max_key_per_request)}});
  if (r.size_bits % 8 != 0) return refuse(http_status::bad_request, std::string(msg_size_multiple_of_8));
  if (r.size_bits < limits.min_key_size || r.size_bits > limits.max_key_size)
    return refuse(http_status::bad_request, "size shall be between min_key_size and max_key_size",
                  {{"min_key_size", std::to_string(limits.min_key_size)}, {"max_key_size", std::to_string(limits.max_key_size)}});
  if (r.additional_slaves.size() > limits.max_sae_id_count)
    return refuse(http_status::bad_request, "additional_slave_SAE_IDs shall name at most max_SAE_ID_count SAEs",
                  {{"max_SAE_ID_count", std::to_string(limits.max_sae_id_count)}});
  std::vector<std::string_view> seen{r.master_sae, r.slave_sae};
  for (const auto& s : r.additional_slaves) {
    if (std::find(seen.begin(), seen.end(), s) != seen.end())
      return refuse(http_status::bad_request, "additional_slave_SAE_IDs shall not repeat an SAE or name the master or the slave",
                    {{"additional_slave_SAE_IDs", s + " is repeated"}});
    seen.push_back(s);
  }
  if (r.master_sae == r.slave_sae)
    return refuse(http_status::bad_request, "the slave SAE shall differ from the master SAE (the caller)",
                  {{"slave_SAE_ID", r.slave_sae}});
  return std::nullopt;
}

}  // namespace cvqkd::api
