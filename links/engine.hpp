#pragma once
// One link end over its whole life: round after round of the per-round protocol (protocol.hpp),
// driving the optical hardware, committing keys to durable pools, surviving lost messages,
// reconnects and crashes of either end. Still no threads and no sockets: bytes leave through an
// injected wire, the durable state sits behind link_state_store (the key store implements it in
// node/), time is passed in. The link actor (actors/) runs one engine on its own thread.
//
// Round handshake (Bob, the receiver, leads: reverse reconciliation makes his data the reference):
//   Bob   -> Alice  start{round, committed, auth}   round: a fresh round number (> any Alice saw);
//                                                   committed: Bob's last committed round;
//                                                   auth: where in the authentication pool Bob
//                                                   took this round's authentication key
//   Alice -> Bob    ready{round}                    Alice settled her held round, took the same
//                                                   authentication key, and listens for sift
//   Alice -> Bob    retry{round, reason}            the round number or pools do not fit; Bob
//                                                   starts over with a higher number (or stops)
//   both            proto{envelope}                 the round's protocol messages
// Settlement of the last round: Alice's round ends when she sends confirm_ack, Bob's when he
// receives it. So Alice *holds* her key (durably) and releases it into her pool only when a later
// start says Bob committed that round; a start with a lower `committed` makes her discard it. At
// most one round can be held, so both pools always end up with the same blocks, whatever was lost.
// Authentication key: every round takes `round_auth_budget` bytes from the link's authentication
// pool (the commissioned pre-shared secret first, then the reserve that each committed round puts
// back). Bob takes first, durably, and names the position; Alice burns anything before it. Taken
// bytes are never taken again, so a crash can waste authentication key but never reuse it.
// The control messages ride the TLS channel between nodes without their own tag: a forged one can
// cost a round or a held block (a denial of service, which the channel's owner can always do),
// never expose a key: every key still comes out of a round whose transcript both ends verified.

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "core/secure_buffer.hpp"
#include "hw/simulator.hpp"
#include "links/protocol.hpp"

namespace cvqkd::links {

using engine_clock = std::chrono::steady_clock;

/// Authentication key one round may draw: the round's hash key, the four checkpoint pads and two
/// spare pads (an abort message is tagged too).
inline constexpr std::size_t round_auth_budget = hash_key_bytes + 6 * tag_bytes;

/// A position in the authentication pool: block `block`, byte `offset` in it (the key store's
/// pool_position). Block 0 is the commissioned pre-shared secret, block r the reserve of round r.
struct auth_position {
  std::uint64_t block = 0;
  std::uint32_t offset = 0;
  auto operator<=>(const auth_position&) const = default;
};

/// Durable state of one link end. Every mutating call is durable when it returns (a synced write)
/// and idempotent for the same arguments, so a crash between any two calls leaves a state the
/// engine recovers from.
class link_state_store {
public:
  virtual ~link_state_store() = default;
  /// The highest round whose key this end committed to its key pool (0: none yet).
  virtual expected<std::uint64_t> committed_round() = 0;
  /// Commits round `round` (> committed_round()): `key` to the key pool, `auth_reserve` appended to
  /// the authentication pool as block `round`.
  virtual expected<void> commit(std::uint64_t round, const secure_buffer& key, const secure_buffer& auth_reserve) = 0;
  /// Alice: stores round `round`'s output without committing it (at most one held round).
  virtual expected<void> hold(std::uint64_t round, const secure_buffer& key, const secure_buffer& auth_reserve) = 0;
  /// Alice: the held round, if any.
  virtual expected<std::optional<std::uint64_t>> held_round() = 0;
  /// Alice: commits the held round (as commit() would) or discards it (zeroized).
  virtual expected<void> settle_held(bool commit) = 0;
  /// The next unused byte of the authentication pool; errc::no_secret_key when the pool is empty
  /// (the link must be re-commissioned with a new pre-shared secret).
  virtual expected<auth_position> auth_head() = 0;
  /// Discards the authentication pool up to `from`, then takes `bytes` starting exactly there.
  /// Errors: invalid_argument when `from` is behind the head (those bytes are used: never again),
  /// no_secret_key when the pool holds too few bytes.
  virtual expected<secure_buffer> take_auth(auth_position from, std::size_t bytes) = 0;
  /// Key bits in this end's key pool (backpressure).
  virtual expected<std::uint64_t> pool_bits() = 0;
};

/// The optical hardware of one end, round by round.
class link_hardware {
public:
  virtual ~link_hardware() = default;
  /// Readies the device for round `round`.
  virtual expected<void> begin_round(std::uint64_t round) = 0;
  /// Alice: the modulation of the next `n` symbols of the round.
  virtual expected<hw::alice_frame> emit(std::size_t n) = 0;
  /// Bob: a shot-noise calibration for the round.
  virtual expected<hw::shot_noise_calibration> calibrate() = 0;
  /// Bob: the next `n` symbols of the round.
  virtual expected<hw::bob_frame> measure(std::size_t n) = 0;
  /// What the simulator knows (empty for real hardware).
  virtual std::optional<hw::true_parameters> truth() const = 0;
  /// Drill faults (operations.md failure modes). Real hardware cannot fake them: the default
  /// refuses (invalid_argument) and says so.
  virtual expected<void> set_faults(const hw::fault_state& faults);
};

/// Simulated hardware for one end. Both ends of a link build the same channel from the same
/// `config.seed` and the round number, so Alice's node and Bob's node simulate the same fibre
/// without exchanging anything: the stand-in for the quantum channel (a simulation, not a
/// secret: real hardware has no such seed). Bob's end also replays Alice's emission, since the
/// simulated receiver can only measure what was emitted. `faults` apply from the next round on
/// (set_faults). Errors: those of hw::validate.
class simulated_hardware final : public link_hardware {
public:
  static expected<std::unique_ptr<simulated_hardware>> create(role end, const hw::simulator_config& config);
  expected<void> begin_round(std::uint64_t round) override;
  expected<hw::alice_frame> emit(std::size_t n) override;
  expected<hw::shot_noise_calibration> calibrate() override;
  expected<hw::bob_frame> measure(std::size_t n) override;
  std::optional<hw::true_parameters> truth() const override;
  /// Applies drill faults (operations.md) at once (the round in progress sees them from its next
  /// symbol; later rounds from their first). Errors: invalid fault values (nothing changes).
  expected<void> set_faults(const hw::fault_state& faults) override;
  ~simulated_hardware() override;

private:
  simulated_hardware(role end, const hw::simulator_config& config);
  role end_;
  hw::simulator_config config_;
  std::unique_ptr<hw::simulated_link> link_;
};

/// Where the engine's bytes go (the peer's engine receives them unchanged, in any order).
class wire {
public:
  virtual ~wire() = default;
  virtual void send(std::vector<std::byte> bytes) = 0;
};

struct engine_config {
  std::string link_id;               // names the link in errors and status
  role self = role::alice;
  /// Per-round parameters both ends must share (round and public_seed are set per round):
  /// n_symbols, n_pe, profile, model, eps, beta_target, short_codes, max_iterations.
  round_parameters round;
  std::uint64_t frame_symbols = 1u << 18;  // symbols per hardware frame; the same at both ends
  std::uint64_t pool_max_bits = 0;         // Bob starts no round while his pool holds this much (0: no limit)
  std::size_t window = 64;                 // Bob measures no further while this many messages are unacknowledged
  std::chrono::milliseconds resend_after{1000};     // nothing heard for this long: resend
  // Nothing heard for this long: abort the round (a node sets it from the block size: decoding a
  // large block takes minutes on a loaded CPU).
  std::chrono::milliseconds round_timeout{30'000};
  /// errc::config_error naming the field unless: link_id non-empty, frame_symbols >= 1000,
  /// round.n_symbols >= frame_symbols, 0 < round.n_pe < round.n_symbols, window >= 4, timeouts > 0.
  expected<void> validate() const;
};

/// What an operator sees of one link end.
struct engine_status {
  enum class state { idle, handshake, running, paused_pool_full, waiting_peer, failed };
  state current = state::idle;
  std::uint64_t round = 0;               // the round in progress (or last started)
  std::uint64_t committed_round = 0;
  std::uint64_t symbols_done = 0;        // of the round in progress
  std::uint64_t rounds_completed = 0, rounds_aborted = 0;
  std::uint64_t key_bits_committed = 0;  // by this engine since it started
  std::uint64_t malformed_messages = 0, resends = 0;
  std::string last_error;                // why the last round aborted, or why the engine failed
  std::optional<round_report> last_round;  // the last finished round (done or aborted)
  std::optional<hw::true_parameters> truth;
  engine_clock::time_point last_round_end{};
  double last_round_seconds = 0.0;
};
std::string_view to_string(engine_status::state s) noexcept;

class link_engine {
public:
  /// The collaborators must outlive the engine. Errors: config_error from validate(); io_error
  /// when the store cannot be read.
  static expected<std::unique_ptr<link_engine>> create(engine_config config, link_hardware& hardware,
                                                       link_state_store& store, wire& out, random_source& rng);
  ~link_engine();
  link_engine(const link_engine&) = delete;
  link_engine& operator=(const link_engine&) = delete;

  /// Bytes from the peer's engine (duplicated, reordered, stale or malformed input is tolerated:
  /// malformed input is counted and dropped).
  void receive(std::span<const std::byte> bytes, engine_clock::time_point now);
  /// Does a bounded slice of work: at most one hardware frame, plus timeouts. Returns true when
  /// more work is ready now (call again soon), false when waiting for the peer or a full pool.
  bool step(engine_clock::time_point now);
  /// The channel to the peer came (back) up: the handshake restarts at once.
  void peer_connected(engine_clock::time_point now);
  /// The channel is down: the round in progress is aborted (nothing is committed from it).
  void peer_lost(const std::string& why);
  /// Aborts the round in progress, telling the peer (graceful shutdown); the engine stays idle.
  void stop(const std::string& why);
  /// Drill (classical-authentication break): while on, every round this end starts from now on
  /// authenticates with a corrupted copy of its authentication key (one bit of the round's hash
  /// key flipped; the stored pool is untouched), so the peer's check of this end's first tag fails
  /// and the round aborts with the protocol's authentication error. Off: rounds verify again.
  void corrupt_authentication(bool on) noexcept;

  const engine_status& status() const noexcept;

  struct impl;

private:
  explicit link_engine(std::unique_ptr<impl> p);
  std::unique_ptr<impl> impl_;
};

}  // namespace cvqkd::links
