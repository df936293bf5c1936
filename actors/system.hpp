#pragma once
// What every actor system of a cvqkd process needs: the message types (registered under the same
// names on every node: the remote interface check compares names) and the error category that
// carries cvqkd::error across actor boundaries.

#include <cstdint>
#include <string>

#include <caf/actor_system_config.hpp>
#include <caf/error.hpp>

#include "core/error.hpp"

namespace cvqkd::actors {

/// Error codes at actor boundaries: cvqkd::errc's values, plus the runtime's own.
enum class actor_errc : std::uint8_t {
  invalid_argument = 1, config_error, io_error, parse_error, insufficient_data, no_secret_key, device_fault,
  unsupported, cancelled,
  unauthenticated = 32,  // a peer failed authentication (certificate, node ID or signature)
  unknown_link,          // a message named a link this node does not run
  not_running,           // the actor is stopping or its engine failed
};

/// The category atom of cvqkd errors ("cvqkd").
caf::atom_value error_category() noexcept;

/// Builds a caf::error of category "cvqkd" carrying `message` as its context.
caf::error make_caf_error(actor_errc code, std::string message);
/// cvqkd::error -> caf::error (same code, same message).
caf::error to_caf_error(const error& e);
/// The message of a caf::error of any category (its context string, or CAF's rendering).
std::string describe(const caf::error& e);

/// Registers every cvqkd message type and the "cvqkd" error category (renderer: "cvqkd: CODE:
/// MESSAGE"). Call once per actor_system_config, before constructing the system.
void add_message_types(caf::actor_system_config& cfg);

}  // namespace cvqkd::actors
