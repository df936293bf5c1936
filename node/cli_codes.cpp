// `cvqkd codes list|generate|search`: the shipped rate-adaptive LDPC code families, AList export of a member,
// and the base-protograph search they were designed with.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <iostream>
#include <memory>
#include <string>

#include "node/cli_common.hpp"
#include "reconciliation/ldpc/alist.hpp"
#include "reconciliation/ldpc/codes.hpp"
#include "reconciliation/ldpc/protograph_search.hpp"

namespace cvqkd::cli {
namespace {

namespace ldpc = reconciliation::ldpc;

struct generate_options {
  std::string family, output;
  double rate = 0, snr = 0, beta = 0.93;
  bool short_block = false;
};

struct search_options {
  std::string family;
  std::uint64_t candidates = 2000, seed = 1;
  std::uint32_t design_rows = 0;
  bool json = false;
};

// Rows in the notation of codes.cpp: "c,c,c;c,c;...".
std::string rows_text(const std::vector<std::vector<std::uint32_t>>& rows) {
  std::string s;
  for (const auto& r : rows) {
    if (!s.empty()) s += ';';
    s += fmt::format("{}", fmt::join(r, ","));
  }
  return s;
}

void run_search(const search_options& o) {
  auto fam = ldpc::find_family(o.family);
  if (!fam) usage("--family", fam.error().message);
  const auto& f = **fam;
  ldpc::protograph_search_options so;
  so.design_rows = o.design_rows ? o.design_rows : f.design_extension_rows;
  so.candidates = o.candidates;
  so.seed = o.seed;
  if (o.candidates == 0) usage("--candidates", "evaluate at least one candidate");
  if (so.design_rows > f.base.extension_rows.size())
    usage("--design-rows", fmt::format("family {} has {} extension rows", f.name, f.base.extension_rows.size()));
  if (auto ok = ldpc::check_precode_structure(f.base); !ok)
    fail_with(fail(errc::invalid_argument, fmt::format("family {}: {}", f.name, ok.error().message)).error());
  const double start = ldpc::ga_threshold_snr(f.base, so.design_rows, so.de);
  if (!o.json)
    std::cout << fmt::format("search from {} at {} extension rows (rate {:.4f}): start threshold SNR {:.5f} (4-point "
                             "quadrature), {} candidates, seed {}\n",
                             f.name, so.design_rows, f.base.rate(1, so.design_rows), start, o.candidates, o.seed);
  auto r = ldpc::search_protograph(f.base, so, [&](const ldpc::protograph_search_step& s) {
    if (!o.json)
      std::cout << fmt::format("  candidate {:>6}: SNR {:.5f}, beta {:.4f}\n", s.candidate, s.threshold_snr,
                               f.base.rate(1, so.design_rows) / ldpc::capacity(s.threshold_snr))
                << std::flush;
  });
  if (!r) fail_with(r.error());
  nlohmann::json curve = nlohmann::json::array();
  for (const auto& g : f.ga_curve) {
    const double snr = ldpc::ga_threshold_snr(r->best, g.extension_rows);  // 16-point quadrature, as shipped
    const double rate = r->best.rate(1, g.extension_rows);
    curve.push_back({{"extension_rows", g.extension_rows}, {"rate", rate}, {"snr", snr},
                     {"beta", rate / ldpc::capacity(snr)}, {"shipped_snr", g.snr}});
  }
  nlohmann::json j{{"family", f.name},
                   {"design_rows", so.design_rows},
                   {"seed", o.seed},
                   {"candidates_evaluated", r->evaluated},
                   {"kept", r->kept},
                   {"start_threshold_snr", start},
                   {"threshold_snr", r->threshold_snr},
                   {"precode", rows_text(r->best.precode_rows)},
                   {"extension", rows_text(r->best.extension_rows)},
                   {"ga_curve", curve}};
  if (o.json) return print_json(j);
  std::cout << fmt::format("best threshold SNR {:.5f} (start {:.5f}); {} evaluated, {} kept\nprecode   {}\nextension "
                           "{}\nGA thresholds (16-point quadrature), rows / rate / SNR / beta (shipped SNR):\n",
                           r->threshold_snr, start, r->evaluated, r->kept, j["precode"].get<std::string>(),
                           j["extension"].get<std::string>());
  for (const auto& c : curve)
    std::cout << fmt::format("  {:>3} / {:.4f} / {:.5f} / {:.4f} ({:.5f})\n", c["extension_rows"].get<unsigned>(),
                             c["rate"].get<double>(), c["snr"].get<double>(), c["beta"].get<double>(),
                             c["shipped_snr"].get<double>());
}

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

  auto so = std::make_shared<search_options>();
  auto* search = cmd->add_subcommand(
      "search", "hill-climb a family's base protograph on its GA threshold (how the families were designed)");
  search->add_option("--family", so->family, "start from this family's base (see `cvqkd codes list`)")->required();
  search->add_option("--candidates", so->candidates, "valid candidates to evaluate (~0.1-0.5 s each)")
      ->capture_default_str();
  search->add_option("--seed", so->seed, "seed of the move sequence")->capture_default_str();
  search->add_option("--design-rows", so->design_rows, "extension rows at the design rate (default: the family's)");
  search->add_flag("--json", so->json, "print JSON");
  search->callback([so] { run_search(*so); });
}

}  // namespace cvqkd::cli
