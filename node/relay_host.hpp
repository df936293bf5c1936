#pragma once
// One node's relay, wired to its key store: relay::node (routing and hop-by-hop OTP relay) over
// the link pools (node/relay_pools.hpp), with end-to-end keys landing in the store for the ETSI
// GS QKD 014 API. Single-threaded like relay::node: the relay actor (actors/) owns one and feeds
// it bytes, ticks and requests; replies leave through the injected outbox.
//
// An ETSI request travels as relay requests whose name carries its context, authenticated hop by
// hop with the relay's Wegman–Carter tags: "<key UUID>|<master SAE>|<slave SAE>[,<slave SAE>...]".
// The destination stores the key for the slaves (ready for dec_keys once the master may have it);
// the source stores it for the master only after the destination confirmed (relay_done), so a key
// ID reaches the master only when the slave's KME holds the key (ETSI 014, and issue #7).
// Keys between two SAEs of this node are drawn from the node's random source: no link is involved.

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/drbg.hpp"
#include "links/protocol.hpp"
#include "node/api/store_key_service.hpp"
#include "node/relay_pools.hpp"
#include "relay/node.hpp"
#include "storage/key_store.hpp"

namespace cvqkd::node {

struct relay_link {
  relay::node_id neighbour;
  std::string link_id;
  links::role self;
};

struct relay_host_config {
  relay::node_config relay;                         // relay.self = this node's ID
  std::vector<relay_link> links;                    // this node's links
  std::map<std::string, std::string, std::less<>> sae_node;  // every SAE of the network -> its node
  std::chrono::milliseconds key_ttl{std::chrono::hours(24)};  // how long a delivered-to-nobody key lives
};

/// The outcome of one provide(): the IDs of the keys made ready for the master, or why not.
using provide_callback = std::function<void(expected<std::vector<storage::key_id>>)>;

class relay_host {
public:
  class outbox {
  public:
    virtual ~outbox() = default;
    /// Relay bytes for neighbour `to` (fire and forget: the relay's timeouts cover loss).
    virtual void send(const relay::node_id& to, std::vector<std::byte> bytes) = 0;
  };

  /// The collaborators must outlive the host. Errors: config_error from relay::node_config or an
  /// SAE map that names no SAE of this node.
  static expected<std::unique_ptr<relay_host>> create(relay_host_config cfg, storage::key_store& store, outbox& out,
                                                      random_source& rng);
  ~relay_host();

  /// Bytes from neighbour `from` (malformed ones are counted and dropped).
  void receive(const relay::node_id& from, std::span<const std::byte> bytes, relay::time_point now);
  void tick(relay::time_point now);
  void link_up(const relay::node_id& neighbour, double key_rate_bps, relay::time_point now);
  void link_down(const relay::node_id& neighbour, relay::time_point now);

  /// Makes `r.number` keys of `r.size_bits` ready in this node's store for r.master_sae and its
  /// slaves (every slave must be served by one node), calling `done` exactly once. Errors through
  /// `done`: invalid_argument (unknown SAE, slaves at several nodes, size not whole bytes),
  /// unsupported (a route type that cannot be used), insufficient_data naming the unreachable
  /// node, and the relay's own errors.
  void provide(const api::provide_request& r, provide_callback done, relay::time_point now);

  /// Routes this node would use now to `destination` ("direct"/"relay": one path).
  expected<std::vector<std::vector<relay::node_id>>> routes(const relay::node_id& destination) const;
  const relay::node_stats& stats() const noexcept;
  std::uint64_t malformed() const noexcept { return malformed_; }

private:
  struct pending;
  class sink;
  class listener;
  class transport;
  relay_host(relay_host_config cfg, storage::key_store& store, outbox& out, random_source& rng);
  void on_result(const relay::relay_result& r);

  relay_host_config cfg_;
  storage::key_store& store_;
  outbox& out_;
  random_source& rng_;
  std::unique_ptr<store_key_pools> pools_;
  std::unique_ptr<sink> sink_;
  std::unique_ptr<listener> listener_;
  std::unique_ptr<transport> transport_;
  std::unique_ptr<relay::node> node_;
  std::map<std::string, std::shared_ptr<pending>> by_relay_id_;  // relay key_id -> its request
  std::uint64_t malformed_ = 0;
};

/// Splits a relay request name "<uuid>|<master>|<slave>[,<slave>...]". Errors: parse_error.
struct relay_context {
  storage::key_id id;
  std::string master;
  std::vector<std::string> slaves;
};
expected<relay_context> parse_relay_name(std::string_view name);
std::string relay_name(const relay_context& c);

}  // namespace cvqkd::node
