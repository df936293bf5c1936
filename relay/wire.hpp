#pragma once
// Byte encoding of the relay's messages for the inter-node channel (the actors carry the bytes;
// the relay's Wegman–Carter tags do not depend on this encoding: they cover authenticated_bytes()).
// Little-endian, a version byte, a type byte, then the fields in declaration order.

#include <cstddef>
#include <span>
#include <vector>

#include "core/error.hpp"
#include "relay/messages.hpp"

namespace cvqkd::relay {

/// Encodes any relay message (key material is copied into the result: the caller must treat the
/// bytes as secret until they are sent and dropped).
std::vector<std::byte> encode(const message& m);

/// Decodes what encode() produced. Errors: parse_error for truncated, oversized or unknown input
/// (a peer running another version, or corruption); nothing is partially decoded.
expected<message> decode(std::span<const std::byte> bytes);

}  // namespace cvqkd::relay
