#include "actors/system.hpp"

#include <caf/atom.hpp>
#include <caf/message.hpp>
#include <caf/sec.hpp>

#include "actors/interfaces.hpp"

namespace cvqkd::actors {

namespace {

std::string_view code_name(std::uint8_t code) {
  switch (static_cast<actor_errc>(code)) {
    case actor_errc::unauthenticated: return "unauthenticated";
    case actor_errc::unknown_link: return "unknown_link";
    case actor_errc::not_running: return "not_running";
    default:
      if (code >= 1 && code <= static_cast<std::uint8_t>(errc::cancelled)) return to_string(static_cast<errc>(code));
      return "unknown";
  }
}

std::string context_text(const caf::message& ctx) {
  if (ctx.size() == 1 && ctx.match_element<std::string>(0)) return ctx.get_as<std::string>(0);
  return ctx.empty() ? std::string{} : to_string(ctx);
}

template <class T>
void add(caf::actor_system_config& cfg) {
  cfg.add_message_type<T>(caf::type_name<T>::value);
}

}  // namespace

caf::atom_value error_category() noexcept { return caf::atom("cvqkd"); }

caf::error make_caf_error(actor_errc code, std::string message) {
  return caf::error(static_cast<std::uint8_t>(code), error_category(), caf::make_message(std::move(message)));
}

caf::error to_caf_error(const error& e) {
  return make_caf_error(static_cast<actor_errc>(static_cast<std::uint8_t>(e.code)), e.message);
}

std::string describe(const caf::error& e) {
  if (!e) return "no error";
  if (e.category() == error_category()) return context_text(e.context());
  std::string s = to_string(e);
  return s;
}

void add_message_types(caf::actor_system_config& cfg) {
  add<link_bytes>(cfg);
  add<hello_request>(cfg);
  add<hello_reply>(cfg);
  add<hello_finish>(cfg);
  add<link_status>(cfg);
  add<node_status>(cfg);
  add<actor_status>(cfg);
  add<relay_bytes>(cfg);
  add<relay_provide>(cfg);
  add<relay_keys>(cfg);
  add<link_faults>(cfg);
  cfg.add_message_type<node_endpoint_actor>("cvqkd::actors::node_endpoint_actor");
  cfg.add_message_type<node_endpoint_local_actor>("cvqkd::actors::node_endpoint_local_actor");
  cfg.add_message_type<link_actor>("cvqkd::actors::link_actor");
  cfg.add_message_type<supervisor_actor>("cvqkd::actors::supervisor_actor");
  cfg.add_message_type<relay_actor>("cvqkd::actors::relay_actor");
  cfg.add_error_category(error_category(), [](std::uint8_t code, caf::atom_value, const caf::message& ctx) {
    std::string s = "cvqkd: ";
    s += code_name(code);
    const auto text = context_text(ctx);
    if (!text.empty()) s += ": " + text;
    return s;
  });
}

}  // namespace cvqkd::actors
