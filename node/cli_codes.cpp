// `cvqkd codes list|generate`: the shipped rate-adaptive LDPC code families, and AList export of a member.
#include <fmt/format.h>

#include <iostream>
#include <memory>
#include <string>

#include "node/cli_common.hpp"
#include "reconciliation/ldpc/alist.hpp"
#include "reconciliation/ldpc/codes.hpp"

namespace cvqkd::cli {
namespace {

namespace ldpc = reconciliation::ldpc;

struct generate_options {
  std::string family, output;
  double rate = 0, snr = 0, beta = 0.93;
  bool short_block = false;
};

}  // namespace

void add_codes(CLI::App& app) {
  auto* cmd = app.add_subcommand("codes", "the shipped LDPC code families");
  cmd->require_subcommand(1);
  auto json = std::make_shared<bool>(false);
  auto* list = cmd->add_subcommand("list", "list the families, their rate ranges and GA thresholds");
  list->add_flag("--json", *json, "print JSON");
  list->callback([json] {
    nlohmann::json arr = nlohmann::json::array();
    for (const auto& f : ldpc::code_families()) {
      const auto& p = f.proto;
      const double rate = f.min_rate();
      nlohmann::json j{{"name", f.name},
                       {"core_columns", p.core_cols},
                       {"precode_rows", p.precode_rows.size()},
                       {"extension_rows", p.extension_rows.size()},
                       {"min_rate", rate},
                       {"max_rate", f.max_rate()},
                       {"lifting_long", f.lifting_long},
                       {"lifting_short", f.lifting_short},
                       {"frame_bits_long", std::uint64_t(p.core_cols + p.extension_rows.size()) * f.lifting_long},
                       {"frame_bits_short", std::uint64_t(p.core_cols + p.extension_rows.size()) * f.lifting_short},
                       {"seed", f.seed},
                       {"ga_threshold_snr", f.ga_threshold_snr},
                       {"ga_threshold_beta", rate / ldpc::capacity(f.ga_threshold_snr)}};
      arr.push_back(j);
      if (!*json)
        std::cout << fmt::format("{:<12} rates {:.4f} .. {:.4f}  n = {} (short {})  GA threshold at min rate: SNR {:.4f}, "
                                 "beta {:.4f}\n",
                                 f.name, rate, f.max_rate(), j["frame_bits_long"].get<std::uint64_t>(),
                                 j["frame_bits_short"].get<std::uint64_t>(), f.ga_threshold_snr,
                                 j["ga_threshold_beta"].get<double>());
    }
    if (*json) print_json(arr);
  });

  auto o = std::make_shared<generate_options>();
  auto* gen = cmd->add_subcommand("generate", "write one member of a family as an AList file");
  gen->add_option("--family", o->family, "family name (see `cvqkd codes list`)")->required();
  auto* rate_opt = gen->add_option("--rate", o->rate, "code rate (sets the number of extension checks)");
  auto* snr_opt = gen->add_option("--snr", o->snr, "choose the rate for this SNR and --beta instead");
  rate_opt->excludes(snr_opt);
  gen->add_option("--beta", o->beta, "target efficiency with --snr")->capture_default_str();
  gen->add_flag("--short", o->short_block, "the short-block (CI) member");
  gen->add_option("--output,-o", o->output, "AList file to write")->required();
  gen->callback([o, rate_opt, snr_opt] {
    auto fam = ldpc::find_family(o->family);
    if (!fam) usage("--family", fam.error().message);
    double rate = (*fam)->min_rate();
    double snr = 1.0;
    if (*rate_opt) {
      require_range("--rate", o->rate, 0, 1, true, true, "code rate");
      rate = o->rate;
    }
    if (*snr_opt) {
      require_range("--snr", o->snr, 0, 100, true, false, "signal-to-noise ratio");
      require_range("--beta", o->beta, 0, 1, true, true, "target efficiency");
      snr = o->snr;
      rate = o->beta * ldpc::capacity(o->snr);
    }
    auto c = ldpc::choose_for_rate(**fam, rate, snr, o->short_block);
    if (!c) usage(*snr_opt ? "--snr" : "--rate", c.error().message);
    auto h = ldpc::build(*c);
    if (!h) fail_with(h.error());
    if (auto ok = ldpc::write_alist_file(o->output, h->expand()); !ok) fail_with(ok.error());
    std::cerr << fmt::format("cvqkd: wrote {} ({} x {}, rate {:.5f}, {} edges)\n", o->output, h->rows(), h->cols(),
                             c->rate, h->edges());
  });
}

}  // namespace cvqkd::cli
