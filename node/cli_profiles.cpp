// `cvqkd profiles list|show`: the hardware profiles built into the binary.
#include <fmt/format.h>

#include <iostream>
#include <memory>

#include "config/profile.hpp"
#include "node/cli_common.hpp"

namespace cvqkd::cli {
namespace {

nlohmann::json to_json(const hardware_profile& p) {
  return {{"name", p.name},
          {"description", p.description},
          {"source", p.source},
          {"detection", to_string(p.detection)},
          {"lo", to_string(p.lo)},
          {"symbol_rate_baud", p.symbol_rate_baud},
          {"v_a", p.v_a},
          {"xi", p.xi},
          {"eta", p.eta},
          {"v_el", p.v_el},
          {"adc_bits", p.adc_bits},
          {"adc_full_scale_sigma", p.adc_full_scale_sigma},
          {"residual_phase_noise_rad2", p.residual_phase_noise_rad2},
          {"beta_target", p.beta_target},
          {"block_symbols", p.block_symbols}};
}

}  // namespace

void add_profiles(CLI::App& app) {
  auto* cmd = app.add_subcommand("profiles", "hardware profiles built into cvqkd");
  cmd->require_subcommand(1);
  auto json = std::make_shared<bool>(false);
  auto* list = cmd->add_subcommand("list", "list the built-in profiles");
  list->add_flag("--json", *json, "print JSON");
  list->callback([json] {
    nlohmann::json arr = nlohmann::json::array();
    for (const auto& name : config::builtin_profile_names()) {
      auto p = config::builtin_profile(name);
      if (!p) fail_with(p.error());
      if (*json) arr.push_back(to_json(*p));
      else
        std::cout << fmt::format("{:<16} {:<10} {:>6.3g} Bd  eta {:<5} v_el {:<5} V_A {:<4} xi {:<5} {}\n", p->name,
                                 to_string(p->detection), p->symbol_rate_baud, p->eta, p->v_el, p->v_a, p->xi,
                                 p->description);
    }
    if (*json) print_json(arr);
  });
  auto name = std::make_shared<std::string>();
  auto* show = cmd->add_subcommand("show", "print a profile as TOML (a starting point for your own)");
  show->add_option("name", *name, "built-in name or TOML file")->required();
  show->add_flag("--json", *json, "print JSON");
  show->callback([name, json] {
    auto p = config::resolve_profile(*name);
    if (!p) fail_with(p.error());
    if (*json) print_json(to_json(*p));
    else std::cout << config::to_toml(*p);
  });
}

}  // namespace cvqkd::cli
