// Hardware-profile loading (config/profile.hpp): the shipped profiles against
// shared/data/topologies/profiles.csv, the TOML round trip, and for every field a rejected value
// whose message names the file and the dotted field.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cctype>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

#include "config/profile.hpp"

namespace {

namespace fs = std::filesystem;
using namespace cvqkd;
using namespace cvqkd::config;

// Every field, so that EXPECT_EQ compares (and prints) whole profiles.
auto fields(const hardware_profile& p) {
  return std::tie(p.name, p.description, p.source, p.detection, p.lo, p.symbol_rate_baud, p.v_a, p.xi, p.eta, p.v_el,
                  p.shot_noise_raw, p.adc_bits, p.adc_full_scale_sigma, p.residual_phase_noise_rad2,
                  p.phase_drift_rad2_per_symbol, p.relock_symbols, p.calibration_samples, p.beta_target,
                  p.block_symbols);
}

// One row of shared/data/topologies/profiles.csv.
struct csv_row {
  std::string_view name;
  detection det;
  lo_type lo;
  double symbol_rate_baud, eta, v_el, v_a, xi, beta_target;
  std::uint64_t block_symbols;
  unsigned adc_bits;
  double adc_full_scale_sigma, residual_phase_noise_rad2;
};
const csv_row profiles_csv[] = {
    {"tlo_80km", detection::homodyne, lo_type::transmitted, 1e6, 0.606, 0.041, 4, 0.01, 0.95, 1'000'000'000, 12, 6,
     1e-5},
    {"llo_100km", detection::heterodyne, lo_type::local, 1e8, 0.65, 0.01, 2, 0.02, 0.95, 1'000'000'000, 12, 6, 1e-4},
    {"llo_metro", detection::heterodyne, lo_type::local, 1e8, 0.65, 0.01, 5, 0.02, 0.95, 10'000'000, 12, 6, 1e-4},
    {"highrate_metro", detection::heterodyne, lo_type::local, 2.5e8, 0.8, 0.01, 2, 0.01, 0.93, 10'000'000, 12, 6, 1e-4},
};

// A valid profile in the layout of config/profiles/*.toml; each key appears once, so a test can
// change a field by its key alone.
constexpr std::string_view valid_toml = R"(name = "llo_metro"
description = "test profile"
source = "test"

[modulation]
v_a = 5.0
symbol_rate_baud = 1e8

[channel]
xi = 0.02

[detector]
detection = "heterodyne"
lo = "local"
eta = 0.65
v_el = 0.01
shot_noise_raw = 1e-4
calibration_samples = 4_000_000

[adc]
bits = 12
full_scale_sigma = 6.0

[phase]
residual_noise_rad2 = 1e-4
drift_rad2_per_symbol = 0.0
relock_symbols = 10_000

[postprocessing]
beta_target = 0.95
block_symbols = 10_000_000
)";

// `text` with the line that sets `key` replaced by `line` (removed if `line` is empty).
std::string with_line(std::string_view text, std::string_view key, std::string_view line) {
  std::istringstream in{std::string(text)};
  std::string out, l;
  bool found = false;
  while (std::getline(in, l)) {
    if (l.starts_with(std::string(key) + " = ")) {
      found = true;
      if (!line.empty()) out.append(line) += '\n';
    } else {
      out += l + '\n';
    }
  }
  EXPECT_TRUE(found) << "no line sets " << key;
  return out;
}

// A file under the test's temporary directory, removed at the end of the test.
struct temp_file {
  fs::path path;
  explicit temp_file(std::string_view name, std::string_view content)
      : path(fs::path(::testing::TempDir()) / (std::to_string(::getpid()) + "_" + std::string(name))) {
    std::ofstream(path) << content;
  }
  ~temp_file() {
    std::error_code ec;
    fs::remove(path, ec);
  }
};

TEST(config_builtin, names_are_the_shipped_files) {
  const std::vector<std::string> shipped{"highrate_metro", "llo_100km", "llo_metro", "tlo_80km"};
  EXPECT_EQ(builtin_profile_names(), shipped);
}

TEST(config_builtin, profiles_match_profiles_csv) {
  for (const auto& row : profiles_csv) {
    SCOPED_TRACE(row.name);
    auto p = builtin_profile(row.name);
    ASSERT_TRUE(p) << p.error().message;
    EXPECT_EQ(p->name, row.name);
    EXPECT_FALSE(p->description.empty());
    EXPECT_FALSE(p->source.empty());
    EXPECT_EQ(p->detection, row.det);
    EXPECT_EQ(p->lo, row.lo);
    EXPECT_EQ(p->symbol_rate_baud, row.symbol_rate_baud);
    EXPECT_EQ(p->eta, row.eta);
    EXPECT_EQ(p->v_el, row.v_el);
    EXPECT_EQ(p->v_a, row.v_a);
    EXPECT_EQ(p->xi, row.xi);
    EXPECT_EQ(p->beta_target, row.beta_target);
    EXPECT_EQ(p->block_symbols, row.block_symbols);
    EXPECT_EQ(p->adc_bits, row.adc_bits);
    EXPECT_EQ(p->adc_full_scale_sigma, row.adc_full_scale_sigma);
    EXPECT_EQ(p->residual_phase_noise_rad2, row.residual_phase_noise_rad2);
    // Common to all profiles (not in the csv).
    EXPECT_EQ(p->phase_drift_rad2_per_symbol, 0.0);
    EXPECT_EQ(p->relock_symbols, 10'000u);
    EXPECT_EQ(p->calibration_samples, 4'000'000u);
    EXPECT_EQ(p->shot_noise_raw, 1e-4);
  }
}

TEST(config_builtin, embedded_text_matches_files_on_disk) {
  for (const auto& name : builtin_profile_names()) {
    SCOPED_TRACE(name);
    auto from_file = load_profile_file(fs::path(CVQKD_SOURCE_DIR) / "config" / "profiles" / (name + ".toml"));
    auto embedded = builtin_profile(name);
    ASSERT_TRUE(from_file) << from_file.error().message;
    ASSERT_TRUE(embedded) << embedded.error().message;
    EXPECT_EQ(fields(*from_file), fields(*embedded));
  }
}

TEST(config_builtin, unknown_name_lists_the_available_ones) {
  auto p = builtin_profile("llo_metr");
  ASSERT_FALSE(p);
  EXPECT_EQ(p.error().code, errc::config_error);
  EXPECT_NE(p.error().message.find("llo_metr"), std::string::npos) << p.error().message;
  for (const auto& name : builtin_profile_names())
    EXPECT_NE(p.error().message.find(name), std::string::npos) << p.error().message;
}

TEST(config_round_trip, builtins_survive_to_toml_and_back) {
  for (const auto& name : builtin_profile_names()) {
    SCOPED_TRACE(name);
    auto p = builtin_profile(name);
    ASSERT_TRUE(p) << p.error().message;
    const std::string text = to_toml(*p);
    auto back = parse_profile(text, "round_trip.toml");
    ASSERT_TRUE(back) << back.error().message << "\n" << text;
    EXPECT_EQ(fields(*back), fields(*p));
  }
}

TEST(config_round_trip, awkward_values_survive) {
  auto p = builtin_profile("tlo_80km");
  ASSERT_TRUE(p);
  p->description = "quote \" backslash \\ newline \n tab \t unicode \u00e9 \u2713";
  p->source.clear();
  p->v_a = 0.1 + 0.2;  // needs all 17 digits
  p->xi = 0.0;
  p->eta = 1.0;
  p->symbol_rate_baud = 123456789.123;
  p->shot_noise_raw = 1e-300;
  p->adc_bits = 24;
  p->calibration_samples = 1000;
  p->relock_symbols = 1;
  p->block_symbols = 10'000'000'000;  // the largest block the schema accepts
  p->beta_target = std::nextafter(1.0, 0.0);
  const std::string text = to_toml(*p);
  auto back = parse_profile(text, "round_trip.toml");
  ASSERT_TRUE(back) << back.error().message << "\n" << text;
  EXPECT_EQ(fields(*back), fields(*p));
}

TEST(config_round_trip, to_toml_uses_the_file_layout) {
  auto p = builtin_profile("llo_metro");
  ASSERT_TRUE(p);
  const std::string text = to_toml(*p);
  std::size_t at = 0;
  for (std::string_view part :
       {"name = \"llo_metro\"", "description = ", "source = ", "[modulation]", "v_a = 5.0", "symbol_rate_baud = 1e8",
        "[channel]", "xi = 0.02", "[detector]", "detection = \"heterodyne\"", "lo = \"local\"", "eta = 0.65",
        "v_el = 0.01", "shot_noise_raw = 1e-4", "calibration_samples = 4000000", "[adc]", "bits = 12",
        "full_scale_sigma = 6.0", "[phase]", "residual_noise_rad2 = 1e-4", "drift_rad2_per_symbol = 0.0",
        "relock_symbols = 10000", "[postprocessing]", "beta_target = 0.95", "block_symbols = 10000000"}) {
    const auto next = text.find(part, at);
    ASSERT_NE(next, std::string::npos) << "missing or out of order: " << part << "\n" << text;
    at = next;
  }
}

TEST(config_parse, accepts_numbers_written_as_integers_and_integers_as_exact_floats) {
  std::string text = with_line(valid_toml, "v_a", "v_a = 4");
  text = with_line(text, "block_symbols", "block_symbols = 1e7");
  text = with_line(text, "calibration_samples", "calibration_samples = 4.0e6");
  text = with_line(text, "description", "");  // optional
  text = with_line(text, "source", "");       // optional
  auto p = parse_profile(text, "ok.toml");
  ASSERT_TRUE(p) << p.error().message;
  EXPECT_EQ(p->v_a, 4.0);
  EXPECT_EQ(p->block_symbols, 10'000'000u);
  EXPECT_EQ(p->calibration_samples, 4'000'000u);
  EXPECT_TRUE(p->description.empty());
  EXPECT_TRUE(p->source.empty());
}

// One rejected edit of valid_toml: the line setting `key` becomes `line` ("" deletes it).
struct bad_case {
  std::string_view path;  // the dotted field the message must name
  std::string_view key;
  std::string_view line;
  std::string_view problem;  // part of the message that says what is wrong
};

void PrintTo(const bad_case& c, std::ostream* os) { *os << '\'' << c.line << '\''; }

class config_bad_value : public ::testing::TestWithParam<bad_case> {};

TEST_P(config_bad_value, is_a_config_error_naming_file_and_field) {
  const auto& c = GetParam();
  auto p = parse_profile(with_line(valid_toml, c.key, c.line), "bad.toml");
  ASSERT_FALSE(p) << "accepted: " << c.line;
  EXPECT_EQ(p.error().code, errc::config_error);
  const std::string& msg = p.error().message;
  EXPECT_TRUE(msg.starts_with("bad.toml: " + std::string(c.path) + " ")) << msg;
  EXPECT_NE(msg.find(c.problem), std::string::npos) << msg;
  EXPECT_TRUE(msg.ends_with("and retry.")) << msg;
}

const bad_case bad_cases[] = {
    {"name", "name", R"(name = "")", "is empty"},
    {"name", "name", "name = 3", "has the wrong type (integer)"},
    {"name", "name", "", "is missing"},
    {"description", "description", "description = 5", "has the wrong type"},
    {"source", "source", "source = true", "has the wrong type (boolean)"},
    {"modulation.v_a", "v_a", "v_a = -1.0", "is out of range: expected a number in (0, 10000]"},
    {"modulation.v_a", "v_a", "v_a = 2e4", "is out of range: expected a number in (0, 10000]"},
    {"modulation.v_a", "v_a", "v_a = 0", "is out of range"},
    {"modulation.v_a", "v_a", "v_a = nan", "= nan is not a finite number"},
    {"modulation.v_a", "v_a", R"(v_a = "4")", "has the wrong type (string)"},
    {"modulation.v_a", "v_a", "", "is missing"},
    {"modulation.symbol_rate_baud", "symbol_rate_baud", "symbol_rate_baud = inf", "is not a finite number"},
    {"modulation.symbol_rate_baud", "symbol_rate_baud", "symbol_rate_baud = 0.0", "is out of range"},
    {"modulation.symbol_rate_baud", "symbol_rate_baud", "", "is missing"},
    {"channel.xi", "xi", "xi = -0.01", "is out of range: expected a number in [0, 100]"},
    {"channel.xi", "xi", "xi = 101.0", "is out of range: expected a number in [0, 100]"},
    {"channel.xi", "xi", "xi = nan", "is not a finite number"},
    {"channel.xi", "xi", "xi = [0.01]", "has the wrong type (array)"},
    {"detector.detection", "detection", R"(detection = "homodyn")", R"(expected "homodyne" or "heterodyne")"},
    {"detector.detection", "detection", "detection = 1", "has the wrong type"},
    {"detector.detection", "detection", "", "is missing"},
    {"detector.lo", "lo", R"(lo = "remote")", R"(expected "transmitted" or "local")"},
    {"detector.lo", "lo", "", "is missing"},
    {"detector.eta", "eta", "eta = 0", "= 0 is out of range: expected a number in (0, 1]"},
    {"detector.eta", "eta", "eta = 1.5", "= 1.5 is out of range: expected a number in (0, 1]"},
    {"detector.eta", "eta", "eta = nan", "is not a finite number"},
    {"detector.eta", "eta", R"(eta = "high")", R"(= "high" has the wrong type (string))"},
    {"detector.eta", "eta", "", "is missing: expected a number in (0, 1]"},
    {"detector.eta", "eta", "[detector.eta]", "has the wrong type (table)"},
    {"detector.v_el", "v_el", "v_el = -0.1", "is out of range"},
    {"detector.v_el", "v_el", "v_el = inf", "is not a finite number"},
    {"detector.shot_noise_raw", "shot_noise_raw", "shot_noise_raw = 0.0", "is out of range"},
    {"detector.shot_noise_raw", "shot_noise_raw", "", "is missing"},
    {"detector.calibration_samples", "calibration_samples", "calibration_samples = 999", "expected an integer in [1000, 1e9]"},
    {"detector.calibration_samples", "calibration_samples", "calibration_samples = 1_000_000_000_000", "expected an integer in [1000, 1e9]"},
    {"detector.calibration_samples", "calibration_samples", "calibration_samples = 4000000.5", "is not an integer"},
    {"detector.calibration_samples", "calibration_samples", "calibration_samples = -1", "is out of range"},
    {"detector.calibration_samples", "calibration_samples", "calibration_samples = true", "has the wrong type"},
    {"adc.bits", "bits", "bits = 30", "= 30 is out of range: expected an integer in [2, 24]"},
    {"adc.bits", "bits", "bits = 1", "is out of range"},
    {"adc.bits", "bits", "bits = 12.5", "is not an integer"},
    {"adc.bits", "bits", "bits = nan", "is not a finite number"},
    {"adc.full_scale_sigma", "full_scale_sigma", "full_scale_sigma = 0", "is out of range"},
    {"adc.full_scale_sigma", "full_scale_sigma", "full_scale_sigma = -inf", "is not a finite number"},
    {"phase.residual_noise_rad2", "residual_noise_rad2", "residual_noise_rad2 = -1e-4", "is out of range"},
    {"phase.residual_noise_rad2", "residual_noise_rad2", "", "is missing"},
    {"phase.drift_rad2_per_symbol", "drift_rad2_per_symbol", "drift_rad2_per_symbol = -1.0", "is out of range"},
    {"phase.drift_rad2_per_symbol", "drift_rad2_per_symbol", "drift_rad2_per_symbol = nan", "is not a finite number"},
    {"phase.relock_symbols", "relock_symbols", "relock_symbols = 0", "expected an integer >= 1"},
    {"phase.relock_symbols", "relock_symbols", "relock_symbols = 1e30", "is too large for a TOML integer"},
    {"postprocessing.beta_target", "beta_target", "beta_target = 1.0", "expected a number in (0, 1)"},
    {"postprocessing.beta_target", "beta_target", "beta_target = 0", "is out of range"},
    {"postprocessing.beta_target", "beta_target", "", "is missing"},
    {"postprocessing.block_symbols", "block_symbols", "block_symbols = 10000000.5", "is not an integer"},
    {"postprocessing.block_symbols", "block_symbols", "block_symbols = -1e7", "is out of range"},
    {"postprocessing.block_symbols", "block_symbols", "block_symbols = 999", "expected an integer in [1000, 1e10]"},
    {"postprocessing.block_symbols", "block_symbols", "block_symbols = nan", "is not a finite number"},
    {"postprocessing.block_symbols", "block_symbols", R"(block_symbols = "1e7")", "has the wrong type (string)"},
    // Typos must not be ignored.
    {"detector.etaa", "eta", "eta = 0.65\netaa = 0.65", "is not a known field: expected one of detection, lo, eta"},
    {"modulation.V_a", "v_a", "v_a = 5.0\nV_a = 5.0", "is not a known field"},
    {"colour", "name", "name = \"llo_metro\"\ncolour = \"blue\"", "is not a known field: expected one of name"},
    {"extra", "block_symbols", "block_symbols = 10_000_000\n[extra]\nx = 1", "is not a known field"},
    {"detector.sub", "block_symbols", "block_symbols = 10_000_000\n[detector.sub]\nx = 1", "is not a known field"},
};

std::string case_name(const ::testing::TestParamInfo<bad_case>& info) {
  std::string name = std::to_string(info.index) + "_" + std::string(info.param.path);
  for (char& ch : name)
    if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
  return name;
}

INSTANTIATE_TEST_SUITE_P(every_field, config_bad_value, ::testing::ValuesIn(bad_cases), case_name);

TEST(config_parse, a_table_that_is_not_a_table_is_rejected) {
  auto p = parse_profile("name = \"x\"\ndetector = 3\n", "bad.toml");
  ASSERT_FALSE(p);
  EXPECT_EQ(p.error().code, errc::config_error);
  EXPECT_TRUE(p.error().message.starts_with("bad.toml: detector = 3 has the wrong type (integer): expected the table"))
      << p.error().message;
}

TEST(config_parse, a_missing_table_names_its_first_field) {
  std::string text{valid_toml};
  text.erase(text.find("[adc]"), text.find("[phase]") - text.find("[adc]"));
  auto p = parse_profile(text, "bad.toml");
  ASSERT_FALSE(p);
  EXPECT_EQ(p.error().message.rfind("bad.toml: adc.bits is missing", 0), 0u) << p.error().message;
}

TEST(config_parse, syntax_errors_report_file_line_and_column) {
  using text_and_place = std::pair<std::string_view, std::string_view>;
  for (auto [text, where] : {text_and_place{"name = \"x\"\n[detector\neta = 1\n", "bad.toml:2:"},  // unclosed [
                             text_and_place{"name = \"x\"\n\nv_a = \n", "bad.toml:3:"},             // no value
                             text_and_place{"name = \"x\"\nname = \"y\"\n", "bad.toml:2:"}}) {     // duplicate key
    auto p = parse_profile(text, "bad.toml");
    ASSERT_FALSE(p) << text;
    EXPECT_EQ(p.error().code, errc::config_error);
    EXPECT_TRUE(p.error().message.starts_with(where)) << p.error().message;
    EXPECT_NE(p.error().message.find("TOML syntax error"), std::string::npos) << p.error().message;
  }
}

TEST(config_file, loads_a_profile_file) {
  const temp_file f("good.toml", with_line(valid_toml, "eta", "eta = 0.7"));
  auto p = load_profile_file(f.path);
  ASSERT_TRUE(p) << p.error().message;
  EXPECT_EQ(p->eta, 0.7);
}

TEST(config_file, errors_in_a_file_name_the_path) {
  const temp_file f("bad_eta.toml", with_line(valid_toml, "eta", "eta = 1.3"));
  auto p = load_profile_file(f.path);
  ASSERT_FALSE(p);
  EXPECT_TRUE(p.error().message.starts_with(f.path.string() + ": detector.eta = 1.3 is out of range"))
      << p.error().message;
}

TEST(config_file, missing_file_is_an_io_error_with_path_and_reason) {
  const fs::path path = fs::path(::testing::TempDir()) / "no_such_dir" / "profile.toml";
  auto p = load_profile_file(path);
  ASSERT_FALSE(p);
  EXPECT_EQ(p.error().code, errc::io_error);
  EXPECT_NE(p.error().message.find(path.string()), std::string::npos) << p.error().message;
  EXPECT_NE(p.error().message.find("No such file or directory"), std::string::npos) << p.error().message;
}

TEST(config_file, directory_is_an_io_error) {
  auto p = load_profile_file(::testing::TempDir());
  ASSERT_FALSE(p);
  EXPECT_EQ(p.error().code, errc::io_error);
  EXPECT_NE(p.error().message.find("directory"), std::string::npos) << p.error().message;
}

TEST(config_file, oversized_file_is_rejected_before_parsing) {
  const temp_file f("huge.toml", std::string((1 << 20) + 1, '#'));
  auto p = load_profile_file(f.path);
  ASSERT_FALSE(p);
  EXPECT_EQ(p.error().code, errc::config_error);
  EXPECT_NE(p.error().message.find("larger than 1 MiB"), std::string::npos) << p.error().message;
}

TEST(config_file, unreadable_file_is_an_io_error) {
  // Permissions do not stop root (CI runs as root), but a path through a regular file fails for
  // everyone, with the OS reason in the message.
  const temp_file f("not-a-dir.toml", valid_toml);
  auto p = load_profile_file(f.path / "inner.toml");
  ASSERT_FALSE(p);
  EXPECT_EQ(p.error().code, errc::io_error);
  EXPECT_NE(p.error().message.find("inner.toml"), std::string::npos) << p.error().message;
  EXPECT_NE(p.error().message.find("Not a directory"), std::string::npos) << p.error().message;
}

TEST(config_resolve, names_are_builtins_and_paths_are_files) {
  auto builtin = resolve_profile("highrate_metro");
  ASSERT_TRUE(builtin) << builtin.error().message;
  EXPECT_EQ(builtin->symbol_rate_baud, 2.5e8);

  const temp_file f("custom.toml", with_line(valid_toml, "name", R"(name = "custom")"));
  auto file = resolve_profile(f.path.string());
  ASSERT_TRUE(file) << file.error().message;
  EXPECT_EQ(file->name, "custom");

  auto missing_file = resolve_profile("llo_metro.toml");  // ends in .toml: a file, not the builtin
  ASSERT_FALSE(missing_file);
  EXPECT_EQ(missing_file.error().code, errc::io_error);

  auto unknown = resolve_profile("nope");
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.error().code, errc::config_error);
  EXPECT_NE(unknown.error().message.find("llo_metro"), std::string::npos) << unknown.error().message;
}

}  // namespace
