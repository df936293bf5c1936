#pragma once
// Authentication of the classical channel between Alice and Bob: Wegman–Carter (J. Comput. Syst.
// Sci. 22, 265 (1981)) with the polynomial hash over GF(2^128) of reconciliation/verification and
// a one-time pad per tag. The polynomial hash is eps-almost-XOR-universal with
// eps = (L + 1) / 2^128 for L 128-bit message blocks, so a one-time-padded tag lets an adversary
// forge with probability at most eps (Krawczyk, CRYPTO 1994, thm. 3). The hash key may serve a
// whole round; the pad is fresh for every tag.
//
// Key material comes from an auth_key_stream: the link's pre-shared secret for the first round,
// then key the link itself produced. Both ends draw from it in the same order.

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "core/error.hpp"
#include "core/secure_buffer.hpp"
#include "reconciliation/verification/hash.hpp"

namespace cvqkd::links {

using reconciliation::verification::gf128;

/// Bytes of key one tag consumes (its one-time pad), and the hash key of a round.
inline constexpr std::size_t tag_bytes = 16;
inline constexpr std::size_t hash_key_bytes = 16;

/// Polynomial hash of `message` bytes under `key` (16-byte little-endian blocks, zero-padded, then a
/// length block; Horner's rule). Collision probability of two distinct messages of at most L
/// blocks: (L + 1) / 2^128.
gf128 poly_hash(gf128 key, std::span<const std::byte> message) noexcept;

/// Continues a polynomial hash over a sequence of messages: the state after message i, Horner's
/// rule over its blocks and a length block, is the input of message i + 1. The encoding (each
/// message zero-padded to whole blocks, then its length) is injective on sequences, so the
/// collision bound of poly_hash holds with L the total number of blocks.
gf128 poly_hash_update(gf128 key, gf128 state, std::span<const std::byte> message) noexcept;

/// A stream of authentication key: consumed front to back, never rewound. The pre-shared secret is
/// handed over once and marked spent when the first produced key is appended, so it is never used
/// again.
class auth_key_stream {
public:
  auth_key_stream() = default;
  /// Starts from the link's pre-shared secret (at least 2 * tag_bytes).
  explicit auth_key_stream(secure_buffer pre_shared);
  /// Replaces the stream with key produced by the link (the rest is dropped, so both ends restart
  /// aligned); from then on the pre-shared secret is gone for good.
  void replenish(secure_buffer key);
  /// Takes the next `n` bytes. Errors: no_secret_key when the stream runs dry (the link must be
  /// re-commissioned with a new pre-shared secret or fed from the pool).
  expected<secure_buffer> take(std::size_t n);
  std::size_t available() const noexcept { return buffer_.size() - cursor_; }
  std::uint64_t consumed_bytes() const noexcept { return consumed_; }
  bool pre_shared_in_use() const noexcept { return pre_shared_; }

private:
  secure_buffer buffer_;
  std::size_t cursor_ = 0;
  std::uint64_t consumed_ = 0;
  bool pre_shared_ = false;
};

/// Tags and checks the transcripts of one round for one end. Both ends construct it from the same
/// stream position, so they draw the same hash key and pads. A tag covers the hash of everything
/// one end sent so far in the round (its transcript); the receiver compares it with the hash of
/// everything it received in that direction, so any lost, altered or injected message shows.
class authenticator {
public:
  /// Draws the round's hash key. Errors: those of auth_key_stream::take.
  static expected<authenticator> begin_round(auth_key_stream& keys);
  /// Hash key of the round (for transcript hashes with poly_hash_update).
  gf128 hash_key() const noexcept { return hash_key_; }
  /// Tag of a transcript hash (draws pad `pad_index`; sender and receiver must agree on it).
  expected<gf128> tag(gf128 transcript_hash, std::uint64_t pad_index);
  /// Checks a received tag against the local transcript hash. Errors: no_secret_key when the pad
  /// cannot be drawn; invalid_argument when the tag does not verify (forged or altered messages).
  expected<void> verify(gf128 transcript_hash, std::uint64_t pad_index, gf128 received);
  std::uint64_t consumed_bits() const noexcept { return 8 * consumed_bytes_; }

private:
  authenticator(auth_key_stream& keys, gf128 hash_key) : keys_(&keys), hash_key_(hash_key) {}
  expected<gf128> pad(std::uint64_t index);

  auth_key_stream* keys_;
  gf128 hash_key_;
  std::vector<gf128> pads_;  // drawn in index order; kept until the round ends (retransmissions)
  std::uint64_t consumed_bytes_ = hash_key_bytes;
};

}  // namespace cvqkd::links
