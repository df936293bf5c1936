#include "node/runtime.hpp"

#include <atomic>
#include <csignal>
#include <filesystem>
#include <fstream>

#include <unistd.h>
#include <thread>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/io/middleman.hpp>
#include <caf/logger.hpp>
#include <caf/openssl/manager.hpp>
#include <caf/openssl/publish.hpp>
#include <caf/openssl/remote_actor.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/typed_event_based_actor.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "actors/link_actor.hpp"
#include "actors/node_actors.hpp"
#include "actors/relay_actor.hpp"
#include "actors/system.hpp"
#include "links/block_plan.hpp"
#include "node/link_store.hpp"
#include "node/metrics/metrics.hpp"
#include "node/pki/pki.hpp"
#include "node/relay_core.hpp"
#include "node/services.hpp"
#include "storage/key_store.hpp"

namespace cvqkd::node {

namespace {

namespace fs = std::filesystem;

// CAF's TLS settings; refuses missing files, since CAF would silently run without TLS.
expected<void> configure_tls(caf::actor_system_config& cfg, const config::node_config& c) {
  for (const auto& [what, path] : {std::pair{"pki.ca", c.ca}, {"pki.certificate", c.certificate}, {"pki.key", c.key}}) {
    std::error_code ec;
    if (!fs::is_regular_file(path, ec))
      return fail(errc::config_error,
                  fmt::format("{}: {} = {} does not exist; the inter-node channel runs only over TLS: create the PKI "
                              "with `cvqkd pki init` and point [pki] at it",
                              c.source.string(), what, path.string()));
  }
  cfg.load<caf::io::middleman>();
  cfg.load<caf::openssl::manager>();
  cfg.openssl_certificate = c.certificate.string();
  cfg.openssl_key = c.key.string();
  cfg.openssl_cafile = c.ca.string();
  actors::add_message_types(cfg);
  return {};
}

expected<actors::node_identity> make_identity(const config::node_config& c) {
  auto pem = pki::read_file_text(c.certificate);
  if (!pem) return std::unexpected(pem.error());
  auto self = pki::verify_certificate(c.ca, *pem);
  if (!self)
    return fail(errc::config_error, fmt::format("{}: this node's certificate {} does not verify: {}", c.source.string(),
                                                c.certificate.string(), self.error().message));
  if (self->common_name != c.id || self->role != pki::role_node)
    return fail(errc::config_error,
                fmt::format("{}: certificate {} is CN={}, OU={}, but node.id is '{}' (expected OU={}); use the "
                            "certificate issued for this node",
                            c.source.string(), c.certificate.string(), self->common_name, self->role, c.id,
                            pki::role_node));
  actors::node_identity id;
  id.node_id = c.id;
  id.certificate_pem = *pem;
  id.sign = [key = c.key](std::span<const std::byte> m) { return pki::sign(key, m); };
  id.verify_node_certificate = [ca = c.ca](const std::string& cert) -> expected<std::string> {
    auto s = pki::verify_certificate(ca, cert);
    if (!s) return std::unexpected(s.error());
    if (s->role != pki::role_node)
      return fail(errc::config_error, fmt::format("certificate of '{}' has role {}, expected {}", s->common_name,
                                                  s->role, pki::role_node));
    return s->common_name;
  };
  id.verify_signature = [](const std::string& cert, std::span<const std::byte> m, std::span<const std::byte> sig) {
    return pki::verify_signature(cert, m, sig);
  };
  return id;
}

hw::simulator_config simulator_of(const config::link_config& l) {
  hw::simulator_config s;
  s.profile = l.profile;
  s.transmittance = l.transmittance();
  s.seed = l.seed;
  if (l.attack.type == config::link_attack::kind::intercept_resend) {
    s.eve = {hw::eavesdropper::kind::intercept_resend, l.attack.parameter};
  } else if (l.attack.type == config::link_attack::kind::entangling_cloner && s.transmittance < 1.0) {
    // xi_E = (1 - T)(W - 1)/T for Eve's EPR variance W (hw/simulator.hpp), solved for W.
    const double t = s.transmittance;
    s.eve = {hw::eavesdropper::kind::entangling_cloner, 1.0 + l.attack.parameter * t / (1.0 - t)};
  }
  return s;
}

links::engine_config engine_of(const config::node_config& c, const config::link_config& l) {
  links::engine_config e;
  e.link_id = l.id;
  e.self = l.role == config::link_role::alice ? links::role::alice : links::role::bob;
  e.round.n_symbols = l.block_symbols;
  e.round.n_pe = l.n_pe();
  e.round.profile = l.profile;
  e.round.model = c.model;
  e.round.eps = security::epsilons{.pe = c.eps_pe, .smooth = c.eps_smooth, .pa = c.eps_pa};
  e.round.beta_target = l.beta;
  e.round.short_codes = l.short_codes;
  e.round.max_iterations = l.max_iterations;
  e.frame_symbols = l.frame_symbols;
  // 30 s, plus 5 s per million symbols: a 2e7-symbol block's decoding may pause the conversation
  // for well over 30 s when the CPU is shared by several links.
  e.round_timeout = std::chrono::milliseconds(30'000 + static_cast<std::int64_t>(l.block_symbols / 200));
  e.pool_max_bits = l.pool_max_bits;
  return e;
}

// CAF 0.17 keeps a reference to a system's logger in a thread-local of every thread that
// constructed the system or used a scoped_actor on it, and ~actor_system waits until the logger is
// released. With several systems in one process a thread must drop that reference before another
// thread destroys the system, or the destructor waits forever.
void release_caf_logger() { caf::logger::set_current_actor_system(nullptr); }

actors::link_summary summary_of(const config::link_config& l) {
  return {l.id, l.peer, std::string(config::to_string(l.role)), l.profile_name, l.block_symbols};
}

}  // namespace

// Links with block_symbols = "auto" get the smallest block with a positive expected key at their
// design values (links::plan_block); both ends compute it from the same inputs, so they agree. A link
// that makes no key at any size keeps its profile's block and will say why in its rounds.
config::node_config with_planned_blocks(config::node_config c) {
  for (auto& l : c.links) {
    if (!l.block_auto) continue;
    links::block_plan_inputs in;
    in.profile = l.profile;
    in.transmittance = l.transmittance();
    in.model = c.model;
    in.eps = security::epsilons{.pe = c.eps_pe, .smooth = c.eps_smooth, .pa = c.eps_pa};
    in.beta_target = l.beta;
    in.pe_fraction = l.pe_fraction;
    in.short_codes = l.short_codes;
    if (auto plan = links::plan_block(in)) {
      l.block_symbols = std::max<std::uint64_t>(plan->block_symbols, 1000);
      spdlog::info("node {}: link {}: block_symbols = {} (auto: smallest block with key; expected {:.0f} bits per "
                   "block at beta {:.3f}, FER {:.2f})",
                   c.id, l.id, l.block_symbols, plan->key_bits, plan->beta, plan->expected_fer);
    } else {
      spdlog::warn("node {}: link {}: block_symbols = \"auto\" kept the profile's {}: {}", c.id, l.id,
                   l.block_symbols, plan.error().message);
    }
    if (l.frame_symbols > l.block_symbols) {
      spdlog::info("node {}: link {}: frame_symbols {} lowered to the planned block", c.id, l.id, l.frame_symbols);
      l.frame_symbols = l.block_symbols;
    }
  }
  return c;
}

struct running_node::impl {
  // Declaration order is destruction order reversed: the config and the store outlive the actor
  // system (its actors use both), the system outlives the handles and the services.
  config::node_config c;
  node_tuning tuning;
  // Set first thing on stop: a link decoding a frame ends it at the next BP iteration and aborts the
  // round (round_parameters::cancel), so a stop never waits for a whole frame of a loaded CPU.
  std::atomic<bool> stopping{false};
  std::unique_ptr<storage::key_store> store;
  fs::path pid_file;
  std::unique_ptr<caf::actor_system_config> cfg;
  std::unique_ptr<caf::actor_system> sys;
  actors::supervisor_actor supervisor;
  actors::node_endpoint_local_actor endpoint;
  actors::relay_actor relay;
  std::unique_ptr<relay_key_provider> provider;
  std::unique_ptr<metrics::node_metrics> node_metrics;
  std::unique_ptr<node_services> services;
  bool stop_begun = false, stopped = false;

  void exit_actors() {
    if (relay) caf::anon_send_exit(relay, caf::exit_reason::user_shutdown);
    if (endpoint) caf::anon_send_exit(endpoint, caf::exit_reason::user_shutdown);
    if (supervisor) caf::anon_send_exit(supervisor, caf::exit_reason::user_shutdown);
  }
};

running_node::running_node(std::unique_ptr<impl> p) : impl_(std::move(p)) {}
running_node::~running_node() { stop(); }
const std::string& running_node::id() const noexcept { return impl_->c.id; }
std::uint16_t running_node::api_port() const noexcept { return impl_->services ? impl_->services->port() : 0; }

expected<actors::node_status> running_node::status(std::chrono::milliseconds timeout) {
  auto& p = *impl_;
  if (p.stopped || !p.supervisor) return fail(errc::io_error, fmt::format("node {} is stopped", p.c.id));
  expected<actors::node_status> r = fail(errc::io_error, "no answer");
  {
    caf::scoped_actor self{*p.sys};
    self->request(p.supervisor, timeout, actors::status_atom_v)
      .receive([&](actors::node_status& s) { r = std::move(s); },
               [&](caf::error& e) { r = std::unexpected(from_caf_error(*p.sys, e)); });
  }
  release_caf_logger();
  return r;
}

void running_node::begin_stop() {
  auto& p = *impl_;
  if (p.stop_begun) return;
  p.stop_begun = true;
  p.stopping = true;
  if (p.services) p.services->stop();
  if (p.supervisor) {
    caf::scoped_actor self{*p.sys};
    self->request(p.supervisor, std::chrono::seconds(8), actors::stop_atom_v)
      .receive([](bool) {}, [&](caf::error& e) { spdlog::warn("node {}: stop: {}", p.c.id, p.sys->render(e)); });
  }
  release_caf_logger();
}

void running_node::stop() {
  auto& p = *impl_;
  if (p.stopped) return;
  begin_stop();
  // Give the middleman a moment to deliver the links' abort messages to the peers.
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  p.exit_actors();
  p.services.reset();
  p.provider.reset();
  p.supervisor = nullptr;
  p.endpoint = nullptr;
  p.relay = nullptr;
  p.sys.reset();  // waits for every actor
  p.store.reset();
  std::error_code ec;
  if (!p.pid_file.empty()) fs::remove(p.pid_file, ec);
  p.stopped = true;
  spdlog::info("node {}: stopped", p.c.id);
}

expected<std::unique_ptr<running_node>> running_node::start(const config::node_config& given, const node_tuning& tuning) {
  auto holder = std::make_unique<impl>();
  auto& p = *holder;
  p.c = with_planned_blocks(given);
  p.tuning = tuning;
  const config::node_config& c = p.c;

  p.cfg = std::make_unique<caf::actor_system_config>();
  if (auto ok = configure_tls(*p.cfg, c); !ok) return std::unexpected(ok.error());
  if (tuning.scheduler_threads > 0) p.cfg->set("scheduler.max-threads", tuning.scheduler_threads);
  if (tuning.sharing_scheduler) p.cfg->set("scheduler.policy", caf::atom("sharing"));
  if (tuning.middleman_workers > 0) p.cfg->set("middleman.workers", tuning.middleman_workers);
  auto identity = make_identity(c);
  if (!identity) return std::unexpected(identity.error());

  std::error_code ec;
  if (!fs::exists(c.kek_file, ec)) {
    if (auto made = storage::create_kek_file(c.kek_file); !made) return std::unexpected(made.error());
    spdlog::info("node {}: created a new key-encryption key {}", c.id, c.kek_file.string());
  }
  storage::store_options so;
  so.directory = c.storage;
  so.kek_file = c.kek_file;
  so.node_id = c.id;
  auto opened = storage::key_store::open(std::move(so));
  if (!opened) return std::unexpected(opened.error());
  p.store = std::move(*opened);
  // The PID, for the operator's kill-node drill and service managers (removed on a clean stop; the
  // key store's lock already keeps a second node off this directory).
  if (tuning.pid_file) {
    p.pid_file = c.storage / "node.pid";
    if (std::ofstream pf(p.pid_file, std::ios::trunc); pf) pf << ::getpid() << "\n";
  }

  p.sys = std::make_unique<caf::actor_system>(*p.cfg);
  caf::actor_system& sys = *p.sys;
  release_caf_logger();
  // From here on a failure must stop what was started: the node's destructor does.
  auto node = std::unique_ptr<running_node>(new running_node(std::move(holder)));

  std::vector<actors::link_summary> summaries;
  for (const auto& l : c.links) summaries.push_back(summary_of(l));

  actors::supervisor_config sc;
  sc.node_id = c.id;
  sc.links = summaries;
  sc.spawn = [&c, st = p.store.get(), id = *identity, stopping = &p.stopping](
                 caf::actor_system& s, const std::string& link_id,
                 actors::supervisor_actor supervisor) -> actors::link_actor {
    const auto* l = c.find_link(link_id);
    actors::link_actor_config lc;
    lc.summary = summary_of(*l);
    lc.peer_host = l->peer_address.host;
    lc.peer_port = l->peer_address.port;
    lc.identity = id;
    lc.supervisor = std::move(supervisor);
    lc.make_parts = [&c, l, st, stopping]() -> expected<actors::link_parts> {
      actors::link_parts parts;
      // The secret is needed on the first open only (later opens ignore it), so a missing file is
      // an error only if the key store does not know the link yet.
      auto secret = pki::read_link_secret(c.secrets, l->id);
      auto state = open_link_state(*st, l->id, secret ? secret->bytes() : std::span<const std::byte>{});
      if (!state) {
        if (!secret) return std::unexpected(secret.error());
        return std::unexpected(state.error());
      }
      parts.store = std::move(*state);
      auto hw = links::simulated_hardware::create(
        l->role == config::link_role::alice ? links::role::alice : links::role::bob, simulator_of(*l));
      if (!hw) return std::unexpected(hw.error());
      parts.hardware = std::move(*hw);
      parts.rng = std::make_unique<system_random>();
      parts.engine = engine_of(c, *l);
      parts.engine.round.cancel = stopping;
      return parts;
    };
    lc.dial = [&s](const std::string& host, std::uint16_t port) {
      return caf::openssl::remote_actor<actors::node_endpoint_actor>(s, host, port);
    };
    return actors::spawn_link(s, std::move(lc), true);
  };
  p.supervisor = actors::spawn_supervisor(sys, std::move(sc));
  actors::endpoint_config epc;
  epc.identity = *identity;
  epc.links = summaries;
  p.endpoint = actors::spawn_endpoint(sys, std::move(epc), p.supervisor);

  auto port = caf::openssl::publish(caf::actor_cast<actors::node_endpoint_actor>(p.endpoint), c.listen.port,
                                    c.listen.host.c_str(), true);
  if (!port)
    return fail(errc::io_error, fmt::format("{}: cannot listen on node.listen = {}: {}; is another node running there?",
                                            c.source.string(), c.listen.to_string(), sys.render(port.error())));
  spdlog::info("node {}: listening on {}:{} (TLS), {} link(s)", c.id, c.listen.host, *port, c.links.size());
  caf::anon_send(p.supervisor, actors::start_atom_v, p.endpoint);

  // The relay: its own actor and channel to each neighbour (actors/relay_actor.hpp).
  auto relay_cfg = relay_config_of(c);
  if (!relay_cfg) return std::unexpected(relay_cfg.error());
  actors::relay_actor_config rc;
  rc.node_id = c.id;
  for (const auto& l : c.links)
    rc.links.push_back({l.id, l.peer, l.role == config::link_role::bob, l.peer_address.host, l.peer_address.port});
  rc.identity = *identity;
  rc.make_core = [st = p.store.get(), hc = std::move(*relay_cfg)](actors::relay_outbox& out) {
    return make_relay_core(hc, *st, out);
  };
  rc.dial = [&sys](const std::string& host, std::uint16_t pt) {
    return caf::openssl::remote_actor<actors::node_endpoint_actor>(sys, host, pt);
  };
  rc.endpoint = p.endpoint;
  rc.supervisor = p.supervisor;
  p.relay = actors::spawn_relay(sys, std::move(rc), true);

  // The HTTPS services (ETSI 014, admin, /metrics) when [node] api_listen is set.
  p.provider = std::make_unique<relay_key_provider>(sys, p.relay, std::chrono::seconds(15));
  auto node_metrics = metrics::node_metrics::create(c.id);
  if (!node_metrics) return std::unexpected(node_metrics.error());
  p.node_metrics = std::move(*node_metrics);
  if (c.api_listen) {
    status_function status = [&sys, supervisor = p.supervisor]() -> expected<actors::node_status> {
      expected<actors::node_status> r = fail(errc::io_error, "no answer");
      caf::scoped_actor self{sys};
      self->request(supervisor, std::chrono::seconds(5), actors::status_atom_v)
        .receive([&](actors::node_status& s) { r = std::move(s); },
                 [&](caf::error& e) { r = std::unexpected(from_caf_error(sys, e)); });
      return r;
    };
    routes_function routes = [&sys, relay = p.relay]() -> expected<nlohmann::json> {
      expected<nlohmann::json> r = fail(errc::io_error, "no answer");
      caf::scoped_actor self{sys};
      self->request(relay, std::chrono::seconds(5), actors::routes_atom_v)
        .receive([&](std::string& text) { r = nlohmann::json::parse(text, nullptr, false); },
                 [&](caf::error& e) { r = std::unexpected(from_caf_error(sys, e)); });
      return r;
    };
    drill_function drill = [&sys, supervisor = p.supervisor](const std::string& action, const std::string& link,
                                                             const actors::link_faults& faults) -> expected<std::string> {
      expected<std::string> r = fail(errc::io_error, "no answer");
      caf::scoped_actor self{sys};
      self->request(supervisor, std::chrono::seconds(10), actors::drill_atom_v, action, link, faults)
        .receive([&](std::string& done) { r = std::move(done); },
                 [&](caf::error& e) {
                   auto err = from_caf_error(sys, e);
                   if (e.category() == actors::error_category() &&
                       (e.code() == static_cast<std::uint8_t>(actors::actor_errc::unknown_link) ||
                        e.code() == static_cast<std::uint8_t>(actors::actor_errc::invalid_argument)))
                     err.code = errc::invalid_argument;
                   r = std::unexpected(std::move(err));
                 });
      return r;
    };
    services_tuning st;
    st.handler_threads = tuning.api_handler_threads;
    auto started = node_services::start(c, *p.store, *p.provider, *p.node_metrics, std::move(status),
                                        std::move(routes), st, std::move(drill));
    if (!started) return std::unexpected(started.error());
    p.services = std::move(*started);
    spdlog::info("node {}: HTTPS API on {}:{} (ETSI GS QKD 014, admin, metrics)", c.id, c.api_listen->host,
                 p.services->port());
  }
  release_caf_logger();
  return node;
}

expected<void> run_node(const config::node_config& c) {
  // Every thread CAF starts inherits this mask, so the signals reach only sigwait below.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::signal(SIGPIPE, SIG_IGN);
  spdlog::set_level(spdlog::level::from_str(c.log_level));

  auto node = running_node::start(c);
  if (!node) return std::unexpected(node.error());
  int sig = 0;
  sigwait(&signals, &sig);
  spdlog::info("node {}: {} received, stopping", c.id, sig == SIGTERM ? "SIGTERM" : "SIGINT");
  (*node)->stop();
  return {};
}

expected<actors::node_status> fetch_status(const config::node_config& c, std::chrono::milliseconds timeout) {
  caf::actor_system_config cfg;
  if (auto ok = configure_tls(cfg, c); !ok) return std::unexpected(ok.error());
  caf::actor_system sys{cfg};
  auto ep = caf::openssl::remote_actor<actors::node_endpoint_actor>(sys, c.listen.host, c.listen.port);
  if (!ep)
    return fail(errc::io_error, fmt::format("cannot reach node {} at {}: {}; is `cvqkd node --config {}` running?", c.id,
                                            c.listen.to_string(), sys.render(ep.error()), c.source.string()));
  expected<actors::node_status> result = fail(errc::io_error, "no answer");
  caf::scoped_actor self{sys};
  self->request(*ep, timeout, actors::status_atom_v)
    .receive([&](actors::node_status& s) { result = std::move(s); },
             [&](caf::error& e) {
               result = fail(errc::io_error, fmt::format("node {} did not answer the status request: {}", c.id,
                                                         sys.render(e)));
             });
  return result;
}

}  // namespace cvqkd::node
