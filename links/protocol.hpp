#pragma once
// The classical protocol of one CV-QKD link as a pure state machine per role. No threads, no
// sockets: messages leave through an injected `transport` and arrive through `receive()`, so the
// same code runs in-process (links/session.hpp), under actors, or against a lossy test channel.
//
// One round (one block of N symbols), reverse reconciliation:
//   Bob   -> Alice  sift       per hardware frame: homodyne bases, lost symbols, y of the disclosed
//                              (parameter-estimation) symbols
//   Alice -> Bob    rate       after the first frame: SNR estimate and the chosen code
//   Bob   -> Alice  recon      per code frame: MDR mapping and norms, syndrome of his bits, a
//                              fresh verification-hash key
//   Alice -> Bob    verify     decoding outcome and the hash of her decoded frame
//   Bob   -> Alice  verdict    frame kept (hashes equal) or discarded
//   Bob   -> Alice  block_end  number of code frames sent
//   Alice -> Bob    pa_params  final estimation statistics, FER and the key length n_out, or abort
//   Bob   -> Alice  pa_seed    Toeplitz seed; both hash their reconciled bits
//   Bob   -> Alice  confirm    hash of the final key under a fresh key
//   Alice -> Bob    confirm_ack
// Authentication (links/auth.hpp) covers transcripts: each end hashes every message it sends, in
// order, and the checkpoint messages (pa_params, pa_seed, confirm, confirm_ack, abort) carry a
// one-time-padded tag of that hash; the receiver compares it with the hash of what it received.
// Alice tags her transcript before Bob draws the Toeplitz seed, Bob his before Alice computes the
// key, so no key is ever computed from an unverified message, at a cost of four tags per round
// instead of one per message. Per direction, messages carry sequence numbers; duplicates are
// dropped, early ones held back, lost ones resent on `retransmit()`, so loss, duplication and
// reordering cannot corrupt either end. A failed tag aborts the round: both ends discard its
// material. Known limit: Alice releases her key on sending confirm_ack; if that last message is
// lost for good, Bob's end never completes (the key store's commit protocol must settle it).

#include <cstddef>
#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "core/hardware_profile.hpp"
#include "core/secure_buffer.hpp"
#include "hw/driver.hpp"
#include "links/auth.hpp"
#include "reconciliation/security/key_rate.hpp"

namespace cvqkd::links {

enum class role : std::uint8_t { alice = 0, bob = 1 };

/// A block in which Bob's digitizer lost more than this fraction of the symbols is vetoed: random
/// loss alone would cost only rate, but a digitizer that drops samples can no longer be trusted to
/// keep them aligned with Alice's symbols (operations.md: "inconsistent sampling, integrity
/// failures"). Healthy hardware loses none.
inline constexpr double max_lost_fraction = 1e-2;

enum class msg_type : std::uint8_t {
  sift = 1, rate, recon, verify, verdict, block_end, pa_params, pa_seed, confirm, confirm_ack, abort
};

/// What travels on the classical channel. `ack` (the next sequence number the sender expects from
/// its peer) is a transport hint outside the tag; everything else is authenticated.
struct envelope {
  role from = role::alice;
  std::uint64_t round = 0;
  std::uint64_t seq = 0;
  std::uint64_t ack = 0;
  msg_type type = msg_type::abort;
  std::vector<std::byte> body;
  gf128 tag;
  /// The authenticated bytes: from, round, seq, type, body.
  std::vector<std::byte> signed_bytes() const;
};

/// Where a role sends its messages.
class transport {
public:
  virtual ~transport() = default;
  virtual void send(const envelope& e) = 0;
};

/// A finished block of secret key, identical at both ends under the same sequence number.
struct key_block {
  std::uint64_t sequence = 0;
  secure_buffer key;
};

/// Where a role hands its key (the key store implements it).
class key_sink {
public:
  virtual ~key_sink() = default;
  /// Errors are reported by the round as its abort reason.
  virtual expected<void> deliver(key_block block) = 0;
};

/// What both ends agree on before a round.
struct round_parameters {
  std::uint64_t round = 0;          // also the key block's sequence number
  std::uint64_t n_symbols = 0;      // block size N
  std::uint64_t n_pe = 0;           // symbols disclosed for estimation
  std::uint64_t public_seed = 0;    // selects the disclosed symbols
  hardware_profile profile;         // detection, V_A, eta (Bob's calibrated v_el travels in sift)
  detector_model model = detector_model::trusted;
  security::epsilons eps;
  double beta_target = 0.95;        // highest reconciliation efficiency to ask (long codes: Alice asks the
                                    // beta up to it that maximises the expected key, ldpc/operating_point.hpp)
  bool short_codes = false;         // CI-sized code members instead of the ~1e6-bit ones
  unsigned max_iterations = 200;    // belief-propagation iterations per frame
  // Local, not shared with the peer: set when this end's node stops; a frame being decoded ends at
  // the next iteration and the round aborts ("this node is stopping"). Not owned; may be null.
  const std::atomic<bool>* cancel = nullptr;
};

/// How a round ended, seen from one end.
struct round_report {
  enum class state { running, done, aborted };
  state status = state::running;
  std::string abort_reason;             // empty unless aborted (or no key was released)
  std::uint64_t secret_bits = 0;        // key released to the sink (after the authentication reserve)
  std::uint64_t auth_reserve_bits = 0;  // produced key kept to authenticate the next round
  std::uint64_t auth_consumed_bits = 0; // authentication key this round used (pads + hash key)
  std::uint64_t frames = 0, frames_failed = 0, reconciled_bits = 0, verification_bits = 0;
  std::uint64_t pe_samples = 0;
  double snr_estimate = 0.0, code_rate = 0.0, beta = 0.0, fer = 0.0;
  double beta_target = 0.0;  // Alice: the configured limit (round_parameters::beta_target)
  double beta_asked = 0.0;   // Alice: what rate selection was asked (ldpc::choose_operating_point)
  std::uint64_t code_length = 0;
  std::optional<security::finite_size_result> bound;
  std::uint64_t n_out = 0;              // output of privacy amplification before the reserve
  double seconds_decoding = 0.0, seconds_privacy = 0.0;
};

class link_end {
public:
  /// Builds one end. `keys` is the link's authentication stream (shared position with the peer's);
  /// `rng` draws this end's private randomness (Bob's bits, seeds and hash keys).
  static expected<std::unique_ptr<link_end>> create(role r, const round_parameters& params, auth_key_stream& keys,
                                                    transport& out, key_sink& sink, random_source& rng);
  ~link_end();

  /// Hands over this end's hardware frame (Alice: alice_frame, Bob: bob_frame) in symbol order.
  expected<void> on_alice_frame(const hw::alice_frame& f);
  expected<void> on_bob_frame(const hw::bob_frame& f, const hw::shot_noise_calibration& cal);
  /// Bob: the block's last frame has been handed over.
  expected<void> end_of_block();
  /// Delivers a message from the peer (any order, duplicates allowed).
  void receive(const envelope& e);
  /// Resends the oldest `max_messages` messages the peer has not acknowledged (all by default:
  /// after a reconnect; a probe of one on a timeout, since the oldest is the one a peer that lost
  /// something is waiting for).
  void retransmit(std::size_t max_messages = SIZE_MAX);
  /// Aborts the round locally and tells the peer.
  void abort(const std::string& reason);

  const round_report& report() const noexcept;
  bool finished() const noexcept;
  /// Messages sent and not yet acknowledged by the peer (flow control: the sender pauses).
  std::size_t unacknowledged() const noexcept;

  struct impl;

private:
  explicit link_end(std::unique_ptr<impl> p);
  std::unique_ptr<impl> impl_;
};

}  // namespace cvqkd::links
