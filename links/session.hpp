#pragma once
// One link, both ends in one process, through the real protocol state machines (protocol.hpp):
// simulated hardware -> sifting and estimation -> MDR + LDPC reconciliation -> verification ->
// privacy amplification -> key blocks at both ends. The classical channel between the two ends
// can drop, duplicate, reorder or tamper with messages (seeded), to show that none of it
// corrupts a key.

#include <cstdint>
#include <optional>
#include <string>

#include "links/protocol.hpp"
#include "links/simulation.hpp"

namespace cvqkd::links {

/// Faults of the in-process classical channel.
struct channel_faults {
  double drop = 0.0;        // probability a message is lost (it is resent on timeout)
  double duplicate = 0.0;   // probability a message is delivered twice
  double reorder = 0.0;     // probability a message overtakes the one before it
  std::optional<msg_type> tamper;  // flip one bit in the first message of this type
  std::uint64_t seed = 1;
};

struct session_config {
  simulation_config link;          // hardware, block size, n_pe, eps, detector model, beta target
  bool short_codes = false;        // CI-sized codes (a few 1e4 bits) instead of ~1e6-bit ones
  unsigned max_iterations = 200;
  channel_faults channel;
};

struct session_report {
  hw::true_parameters truth;
  round_report alice, bob;
  bool keys_identical = false;
  std::uint64_t secret_key_bits = 0;    // released at each end
  double bits_per_symbol = 0.0;         // secret_key_bits / N
  double finite_size_bound = 0.0;       // K_fin at the achieved beta and FER, bits per symbol of N
  std::string abort_reason;             // empty when key was released
  std::uint64_t clipped_samples = 0, lost_symbols = 0, messages = 0, retransmissions = 0;
  double seconds_total = 0.0, seconds_hardware = 0.0;
};

/// Runs one round. The pre-shared authentication secret is drawn from the seed (as `cvqkd pki`
/// would commission it). Errors: configuration errors (invalid_argument) and hardware faults;
/// a round that releases no key is not an error: see abort_reason.
expected<session_report> run_session(const session_config& config);

}  // namespace cvqkd::links
