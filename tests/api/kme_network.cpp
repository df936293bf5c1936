#include "tests/api/kme_network.hpp"

#include <openssl/rand.h>

#include <nlohmann/json.hpp>
#include <set>
#include <stdexcept>

#include "node/api/etsi_api.hpp"
#include "storage/env.hpp"

namespace cvqkd::test_support {

network_provider::network_provider(std::string self, std::map<std::string, storage::key_store*> stores,
                                   std::map<std::string, std::string, std::less<>> sae_kme, std::chrono::milliseconds ttl)
    : self_(std::move(self)), stores_(std::move(stores)), sae_kme_(std::move(sae_kme)), ttl_(ttl) {}

expected<std::vector<storage::key_id>> network_provider::provide(const api::provide_request& r) {
  std::set<std::string> slave_kmes;
  for (const auto& s : r.slaves) {
    auto it = sae_kme_.find(s);
    if (it == sae_kme_.end()) return fail(errc::invalid_argument, "unknown SAE " + s);
    if (!stores_.contains(it->second))
      return fail(errc::insufficient_data, "no route from " + self_ + " to " + it->second + " (serving " + s +
                                               "): no link key is available on any path; retry when the link is up");
    slave_kmes.insert(it->second);
  }
  if (r.route == api::route_type::multipath) {
    if (r.route_mandatory)
      return fail(errc::unsupported, "multipath needs node-disjoint paths; the test network has a single path");
  }
  storage::key_store& master = *stores_.at(self_);
  std::vector<storage::key_id> out;
  for (std::size_t i = 0; i < r.number; ++i) {
    auto id = storage::key_id::generate();
    if (!id) return std::unexpected(id.error());
    secure_buffer material(r.size_bits / 8);
    if (RAND_priv_bytes(reinterpret_cast<unsigned char*>(material.data()), static_cast<int>(material.size())) != 1)
      return fail(errc::io_error, "RAND_priv_bytes failed");
    storage::key_spec spec;
    spec.id = *id;
    spec.master_sae = r.master_sae;
    spec.slave_saes = r.slaves;
    spec.ttl = ttl_;
    spec.route = {self_};
    for (const auto& k : slave_kmes)
      if (k != self_) spec.route.push_back(k);
    // The master's copy first, reserved (not deliverable); then every remote slave KME's copy
    // (ready to serve the slaves); then the master's copy becomes ready.
    spec.state = storage::key_state::reserved;
    spec.serve_master = true;
    spec.serve_slaves = slave_kmes.contains(self_);
    auto put = master.put_key(spec, material.bytes());
    if (!put) return std::unexpected(put.error());
    if (put->status != storage::put_status::stored) return fail(errc::io_error, "the master's store refused a fresh key (capacity?)");
    for (const auto& k : slave_kmes) {
      if (k == self_) continue;
      storage::key_spec remote = spec;
      remote.state = storage::key_state::ready;
      remote.serve_master = false;
      remote.serve_slaves = true;
      auto p = stores_.at(k)->put_key(remote, material.bytes());
      if (!p || p->status != storage::put_status::stored) {
        (void)master.erase_key(*id);
        return fail(errc::io_error, "the slave KME " + k + " did not store the key");
      }
    }
    auto ready = master.mark_ready(*id);
    if (!ready || !*ready) return fail(errc::io_error, "could not mark the key ready");
    out.push_back(*id);
  }
  return out;
}

kme_network::kme_network(kme_network_options options) : opt_(std::move(options)) {
  namespace fs = std::filesystem;
  fs::create_directories(opt_.dir);
  const fs::path pki = opt_.dir / "pki";
  test_ca ca(pki / "ca", "cvqkd test CA", "ca");
  test_ca foreign(pki / "foreign", "foreign CA", "foreign-ca");
  ca_cert = ca.cert_file();
  foreign_ca_cert = foreign.cert_file();
  for (const auto* s : {"sae_a1", "sae_a2", "sae_b1", "sae_b2", "sae_z", "sae_x"}) clients[s] = ca.issue_client(pki / "saes", s, "cvqkd-sae");
  clients["op1"] = ca.issue_client(pki / "operators", "op1", "cvqkd-operator");
  clients["foreign_sae_a1"] = foreign.issue_client(pki / "foreign-saes", "sae_a1", "cvqkd-sae");
  sae_kme = {{"sae_a1", "KME_A"}, {"sae_a2", "KME_A"}, {"sae_b1", "KME_B"}, {"sae_b2", "KME_B"}, {"sae_z", "KME_Z"}};

  a.id = "KME_A";
  b.id = "KME_B";
  for (kme* k : {&a, &b}) {
    const fs::path kek = opt_.dir / ("kek-" + k->id);
    if (!fs::exists(kek))
      if (auto e = storage::create_kek_file(kek); !e) throw std::runtime_error(e.error().message);
    storage::store_options so;
    so.directory = opt_.dir / ("store-" + k->id);
    so.kek_file = kek;
    so.node_id = k->id;
    so.max_key_count = opt_.limits.max_key_count;
    auto st = storage::key_store::open(so);
    if (!st) throw std::runtime_error(to_string(st.error()));
    k->store = std::move(*st);
  }
  std::map<std::string, storage::key_store*> stores{{"KME_A", a.store.get()}, {"KME_B", b.store.get()}};
  for (kme* k : {&a, &b}) {
    k->provider = std::make_unique<network_provider>(k->id, stores, sae_kme, std::chrono::hours(1));
    auto svc = api::store_key_service::create(*k->store, *k->provider, {k->id, sae_kme, opt_.limits});
    if (!svc) throw std::runtime_error(to_string(svc.error()));
    k->service = std::move(*svc);
    auto routes = std::make_shared<api::router>();
    if (auto e = api::add_etsi_routes(*routes, k->service); !e) throw std::runtime_error(to_string(e.error()));
    const auto node = ca.issue_node(pki / "nodes", k->id);
    api::server_options o;
    o.tls = {node.cert, node.key, ca_cert};
    o.handler_threads = opt_.handler_threads;
    o.io_threads = opt_.io_threads;
    auto srv = api::https_server::start(o, routes);
    if (!srv) throw std::runtime_error(to_string(srv.error()));
    k->server = std::move(*srv);
  }
}

kme_network::~kme_network() {
  // Servers first: no handler may run once the services and stores are gone.
  for (kme* k : {&a, &b})
    if (k->server) k->server->stop();
}

std::string kme_network::describe() const {
  using nlohmann::json;
  json j;
  for (const kme* k : {&a, &b}) j["kmes"][k->id] = {{"host", "127.0.0.1"}, {"port", k->server->port()}};
  j["ca"] = ca_cert.string();
  j["foreign_ca"] = foreign_ca_cert.string();
  for (const auto& [name, f] : clients) j["clients"][name] = {{"cert", f.cert.string()}, {"key", f.key.string()}};
  for (const auto& [sae, k] : sae_kme) j["saes"][sae] = k;
  const auto& l = opt_.limits;
  j["limits"] = {{"key_size", l.default_key_size},       {"min_key_size", l.min_key_size},
                 {"max_key_size", l.max_key_size},       {"max_key_per_request", l.max_key_per_request},
                 {"max_key_count", l.max_key_count},     {"max_SAE_ID_count", l.max_sae_id_count}};
  return j.dump(2);
}

}  // namespace cvqkd::test_support
