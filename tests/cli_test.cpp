// End-to-end tests of the `cvqkd` binary: help texts, the key-rate reference values, distance
// sweeps (CSV, JSON, plots), usage errors (exit 2 naming the flag), `link simulate` against its
// true parameters, and the built-in profiles.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <poll.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

extern char** environ;

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// ---------------------------------------------------------------------------------------------
// Running the binary

struct run_result {
  int exit_code = -1;  // exit status, or 128 + signal number when killed by a signal
  std::string out, err;
};

std::string describe(const std::vector<std::string>& args) {
  std::string s = "cvqkd";
  for (const auto& a : args) s += " " + a;
  return s;
}

// Runs CVQKD_BINARY with `args`, capturing stdout and stderr separately.
run_result run_cvqkd(const std::vector<std::string>& args) {
  std::array<int, 2> out_pipe{-1, -1}, err_pipe{-1, -1};
  if (::pipe(out_pipe.data()) != 0 || ::pipe(err_pipe.data()) != 0) {
    ADD_FAILURE() << "pipe: " << std::strerror(errno);
    return {};
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, out_pipe[1], STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, err_pipe[1], STDERR_FILENO);
  for (int fd : {out_pipe[0], out_pipe[1], err_pipe[0], err_pipe[1]}) posix_spawn_file_actions_addclose(&actions, fd);

  std::vector<std::string> argv_storage{CVQKD_BINARY};
  argv_storage.insert(argv_storage.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_storage) argv.push_back(a.data());
  argv.push_back(nullptr);

  pid_t pid = -1;
  const int spawn_rc = ::posix_spawn(&pid, CVQKD_BINARY, &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  ::close(out_pipe[1]);
  ::close(err_pipe[1]);
  run_result r;
  if (spawn_rc != 0) {
    ::close(out_pipe[0]);
    ::close(err_pipe[0]);
    ADD_FAILURE() << "posix_spawn " << CVQKD_BINARY << ": " << std::strerror(spawn_rc);
    return r;
  }

  // Drain both pipes together so that neither can fill up and block the child.
  std::array<pollfd, 2> fds{pollfd{out_pipe[0], POLLIN, 0}, pollfd{err_pipe[0], POLLIN, 0}};
  std::array<std::string*, 2> sinks{&r.out, &r.err};
  int open_fds = 2;
  std::array<char, 4096> buf{};
  while (open_fds > 0) {
    if (::poll(fds.data(), fds.size(), -1) < 0) {
      if (errno == EINTR) continue;
      ADD_FAILURE() << "poll: " << std::strerror(errno);
      break;
    }
    for (std::size_t i = 0; i < fds.size(); ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0) continue;
      const ssize_t n = ::read(fds[i].fd, buf.data(), buf.size());
      if (n > 0) {
        sinks[i]->append(buf.data(), static_cast<std::size_t>(n));
      } else if (n == 0 || errno != EINTR) {
        ::close(fds[i].fd);
        fds[i].fd = -1;
        --open_fds;
      }
    }
  }
  for (const auto& p : fds)
    if (p.fd >= 0) ::close(p.fd);

  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status)) r.exit_code = WEXITSTATUS(status);
  else if (WIFSIGNALED(status)) r.exit_code = 128 + WTERMSIG(status);
  return r;
}

std::string show(const run_result& r) {
  return "exit " + std::to_string(r.exit_code) + "\n--- stdout ---\n" + r.out + "--- stderr ---\n" + r.err;
}

// Parses stdout as JSON; records a failure (with the output) when it is not.
json parse_json(const run_result& r) {
  try {
    return json::parse(r.out);
  } catch (const json::exception& e) {
    ADD_FAILURE() << "stdout is not JSON (" << e.what() << ")\n" << show(r);
    return json{};
  }
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> parts;
  std::string cur;
  for (char c : s) {
    if (c == sep) {
      parts.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  parts.push_back(cur);
  return parts;
}

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void write_file(const fs::path& p, const std::string& text) {
  std::ofstream out(p, std::ios::binary);
  out << text;
  ASSERT_TRUE(out.good()) << "cannot write " << p;
}

// A fresh directory under the system temp directory, removed with the fixture.
class temp_dir_test : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string templ = (fs::temp_directory_path() / "cvqkd-cli-test-XXXXXX").string();
    ASSERT_NE(::mkdtemp(templ.data()), nullptr) << std::strerror(errno);
    dir_ = templ;
  }
  void TearDown() override {
    std::error_code ec;
    if (!dir_.empty()) fs::remove_all(dir_, ec);
  }
  fs::path dir_;
};

// The reference keyrate point; `overrides` replace (or, with nullopt, drop) a flag's value, and
// flags not in the base are appended.
std::vector<std::string> keyrate_args(
  std::initializer_list<std::pair<std::string, std::optional<std::string>>> overrides = {},
  std::vector<std::string> extra = {}) {
  std::vector<std::pair<std::string, std::optional<std::string>>> base{
    {"--detection", "heterodyne"}, {"--va", "1"},    {"--transmittance", "0.5"}, {"--xi", "0.01"},
    {"--eta", "0.8"},              {"--vel", "0.1"}, {"--beta", "0.95"}};
  for (const auto& [flag, value] : overrides) {
    auto it = std::find_if(base.begin(), base.end(), [&](const auto& kv) { return kv.first == flag; });
    if (it != base.end()) it->second = value;
    else base.emplace_back(flag, value);
  }
  std::vector<std::string> args{"keyrate"};
  for (const auto& [flag, value] : base) {
    if (!value) continue;
    args.push_back(flag);
    if (!value->empty()) args.push_back(*value);
  }
  args.insert(args.end(), extra.begin(), extra.end());
  return args;
}

// The finite-size reference row's parameters, channel chosen by the caller.
std::vector<std::string> homodyne_args(std::vector<std::string> extra) {
  std::vector<std::string> args{"keyrate", "--detection", "homodyne", "--va",   "4",      "--xi", "0.01",
                                "--eta",   "0.6",         "--vel",    "0.05", "--beta", "0.95"};
  args.insert(args.end(), extra.begin(), extra.end());
  return args;
}

std::vector<std::string> link_args(std::vector<std::string> extra) {
  std::vector<std::string> args{"link", "simulate", "--distance-km", "25", "--symbols", "20000"};
  args.insert(args.end(), extra.begin(), extra.end());
  return args;
}

// Removes the line holding "elapsed_seconds" (the only run-dependent field of link simulate).
// The JSON report without its wall-clock timings (elapsed_seconds and the per-stage "seconds"),
// which differ from run to run; everything else must be reproducible.
std::string without_elapsed(const std::string& text) {
  auto j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return text;
  j.erase("elapsed_seconds");
  j.erase("seconds");
  return j.dump(2);
}

bool gnuplot_available() { return std::system("command -v gnuplot >/dev/null 2>&1") == 0; }

const std::vector<std::string> builtin_profiles{"highrate_metro", "llo_100km", "llo_metro", "tlo_80km"};

// ---------------------------------------------------------------------------------------------
// 1. Help

struct help_case {
  std::string name;
  std::vector<std::string> args;
  std::vector<std::string> mentions;
};

// Keeps GoogleTest from printing the case as raw bytes in test listings.
void PrintTo(const help_case& c, std::ostream* os) { *os << describe(c.args); }

class cli_help : public ::testing::TestWithParam<help_case> {};

TEST_P(cli_help, ExitsZeroAndListsItsFlags) {
  const auto& c = GetParam();
  auto args = c.args;
  args.push_back("--help");
  const auto r = run_cvqkd(args);
  ASSERT_EQ(r.exit_code, 0) << describe(args) << '\n' << show(r);
  EXPECT_NE(r.out.find("Usage:"), std::string::npos) << show(r);
  for (const auto& m : c.mentions) EXPECT_NE(r.out.find(m), std::string::npos) << "help lacks '" << m << "'\n" << r.out;
}

INSTANTIATE_TEST_SUITE_P(
  cli, cli_help,
  ::testing::Values(
    help_case{"root", {}, {"keyrate", "link", "profiles", "--version"}},
    help_case{"keyrate",
              {"keyrate"},
              {"--detection", "--va", "--transmittance", "--distance-km", "--attenuation-db-per-km",
               "--insertion-loss-db", "--xi", "--eta", "--vel", "--beta", "--detector-model", "--n-total", "--n-pe",
               "--eps", "--eps-pe", "--eps-smooth", "--eps-pa", "--sweep-distance", "--csv", "--plot", "--json"}},
    help_case{"link", {"link"}, {"simulate", "plan"}},
    help_case{"link_plan",
              {"link", "plan"},
              {"--profile", "--distance-km", "--insertion-loss-db", "--eps", "--beta", "--max-symbols", "--json"}},
    help_case{"link_simulate",
              {"link", "simulate"},
              {"--profile", "--distance-km", "--attenuation-db-per-km", "--insertion-loss-db", "--symbols", "--n-pe",
               "--seed", "--eps", "--beta", "--detector-model", "--eve", "--fault", "--json"}},
    help_case{"profiles", {"profiles"}, {"list", "show"}},
    help_case{"profiles_list", {"profiles", "list"}, {"--json"}},
    help_case{"profiles_show", {"profiles", "show"}, {"name", "--json"}}),
  [](const auto& info) { return info.param.name; });

TEST(cli_root, VersionPrintsTheVersion) {
  const auto r = run_cvqkd({"--version"});
  ASSERT_EQ(r.exit_code, 0) << show(r);
  EXPECT_NE(r.out.find("cvqkd "), std::string::npos) << show(r);
}

TEST(cli_root, MissingSubcommandIsAUsageError) {
  for (const auto& args : std::vector<std::vector<std::string>>{{}, {"link"}, {"profiles"}}) {
    const auto r = run_cvqkd(args);
    EXPECT_EQ(r.exit_code, 2) << describe(args) << '\n' << show(r);
    EXPECT_NE(r.err.find("subcommand"), std::string::npos) << describe(args) << '\n' << show(r);
  }
}

// ---------------------------------------------------------------------------------------------
// 2. Key-rate reference values

TEST(cli_keyrate, HeterodyneAsymptoticReference) {
  const auto r = run_cvqkd(keyrate_args({}, {"--json"}));
  ASSERT_EQ(r.exit_code, 0) << show(r);
  EXPECT_TRUE(r.err.empty()) << show(r);
  const auto j = parse_json(r);
  ASSERT_TRUE(j.is_object());
  EXPECT_NEAR(j.at("key_rate_asymptotic").get<double>(), 0.1149423661, 1e-8);
  EXPECT_EQ(j.at("detection"), "heterodyne");
  EXPECT_EQ(j.at("detector_model"), "trusted");
  EXPECT_DOUBLE_EQ(j.at("transmittance").get<double>(), 0.5);
  EXPECT_NEAR(j.at("loss_db").get<double>(), 3.0103, 1e-4);
  // K = beta I_AB - chi_BE, and no finite-size fields without --n-total.
  EXPECT_NEAR(j.at("key_rate_asymptotic").get<double>(),
              0.95 * j.at("i_ab").get<double>() - j.at("chi_be").get<double>(), 1e-12);
  EXPECT_FALSE(j.contains("key_rate_finite"));
  EXPECT_FALSE(j.contains("t_min"));
}

TEST(cli_keyrate, HomodyneFiniteSizeReferenceJson) {
  const auto r = run_cvqkd(homodyne_args({"--distance-km", "25", "--n-total", "1e8", "--json"}));
  ASSERT_EQ(r.exit_code, 0) << show(r);
  const auto j = parse_json(r);
  ASSERT_TRUE(j.is_object());
  // Each to half a unit in the last printed digit.
  EXPECT_NEAR(j.at("t_min").get<double>(), 0.31554717, 0.5e-8);
  EXPECT_NEAR(j.at("xi_max").get<double>(), 0.01720757, 0.5e-8);
  EXPECT_NEAR(j.at("delta_n").get<double>(), 5.792261e-3, 0.5e-9);
  EXPECT_NEAR(j.at("key_rate_finite").get<double>(), 3.829331e-2, 0.5e-8);
  EXPECT_NEAR(j.at("plob_bound").get<double>(), 0.5484122546, 0.5e-10);
  EXPECT_EQ(j.at("n_total").get<std::uint64_t>(), 100000000u);
  EXPECT_EQ(j.at("n_pe").get<std::uint64_t>(), 50000000u);
  EXPECT_NEAR(j.at("transmittance").get<double>(), std::pow(10.0, -0.5), 1e-12);
  EXPECT_DOUBLE_EQ(j.at("distance_km").get<double>(), 25.0);
  EXPECT_LT(j.at("key_rate_finite").get<double>(), j.at("key_rate_asymptotic").get<double>());
  EXPECT_FALSE(j.contains("no_key_reason"));
}

TEST(cli_keyrate, HomodyneFiniteSizeReferenceText) {
  const auto r = run_cvqkd(homodyne_args({"--distance-km", "25", "--n-total", "1e8"}));
  ASSERT_EQ(r.exit_code, 0) << show(r);
  for (const std::string s : {"0.31554717", "0.01720757", "5.792261e-03", "3.829331e-02", "0.5484122546",
                              "N = 100000000", "n_pe = 50000000"})
    EXPECT_NE(r.out.find(s), std::string::npos) << "missing " << s << '\n' << show(r);
}

TEST(cli_keyrate, TooSmallBlockReportsNoKeyWithAReason) {
  // A long link with a tiny block: the bound has no key, which is a result, not an error.
  const auto r = run_cvqkd(homodyne_args({"--distance-km", "100", "--n-total", "1000", "--json"}));
  ASSERT_EQ(r.exit_code, 0) << show(r);
  const auto j = parse_json(r);
  ASSERT_TRUE(j.is_object());
  EXPECT_LE(j.at("key_rate_finite").get<double>(), 0.0);
  if (j.contains("no_key_reason")) {
    EXPECT_FALSE(j.at("no_key_reason").get<std::string>().empty());
  }
}

// ---------------------------------------------------------------------------------------------
// 3. Sweeps

TEST(cli_keyrate, SweepCsvHasHeaderAndDecreasingRates) {
  const auto r = run_cvqkd(homodyne_args({"--sweep-distance", "0:50:10", "--csv"}));
  ASSERT_EQ(r.exit_code, 0) << show(r);
  const auto lines = lines_of(r.out);
  ASSERT_EQ(lines.size(), 7u) << r.out;
  const auto header = split(lines[0], ',');
  ASSERT_EQ(header.size(), 8u) << lines[0];
  EXPECT_EQ(header[0], "distance_km");
  const auto col = std::find(header.begin(), header.end(), "key_rate_asymptotic") - header.begin();
  ASSERT_LT(col, static_cast<long>(header.size())) << lines[0];
  double previous = INFINITY;
  for (std::size_t i = 1; i < lines.size(); ++i) {
    const auto fields = split(lines[i], ',');
    ASSERT_EQ(fields.size(), header.size()) << lines[i];
    EXPECT_DOUBLE_EQ(std::stod(fields[0]), 10.0 * static_cast<double>(i - 1)) << lines[i];
    const double k = std::stod(fields[static_cast<std::size_t>(col)]);
    EXPECT_LT(k, previous) << "key rate does not decrease at row " << i << ": " << lines[i];
    previous = k;
  }
}

TEST(cli_keyrate, SweepCsvWithFiniteSizeHasFourMoreColumns) {
  const auto r = run_cvqkd(homodyne_args({"--sweep-distance", "0:50:10", "--csv", "--n-total", "1e8"}));
  ASSERT_EQ(r.exit_code, 0) << show(r);
  const auto lines = lines_of(r.out);
  ASSERT_EQ(lines.size(), 7u) << r.out;
  const auto header = split(lines[0], ',');
  ASSERT_EQ(header.size(), 12u) << lines[0];
  EXPECT_EQ(header.back(), "key_rate_finite");
  for (std::size_t i = 1; i < lines.size(); ++i) EXPECT_EQ(split(lines[i], ',').size(), 12u) << lines[i];
}

TEST(cli_keyrate, SweepJsonHasSixPoints) {
  const auto r = run_cvqkd(homodyne_args({"--sweep-distance", "0:50:10", "--json"}));
  ASSERT_EQ(r.exit_code, 0) << show(r);
  const auto j = parse_json(r);
  ASSERT_TRUE(j.is_object());
  EXPECT_EQ(j.at("detection"), "homodyne");
  const auto& pts = j.at("points");
  ASSERT_TRUE(pts.is_array());
  ASSERT_EQ(pts.size(), 6u);
  double previous = INFINITY;
  for (std::size_t i = 0; i < pts.size(); ++i) {
    EXPECT_DOUBLE_EQ(pts[i].at("distance_km").get<double>(), 10.0 * static_cast<double>(i));
    const double k = pts[i].at("key_rate_asymptotic").get<double>();
    EXPECT_LT(k, previous) << "point " << i;
    previous = k;
  }
  // The 20 km point is the same number as a single --distance-km 20 run.
  const auto single = parse_json(run_cvqkd(homodyne_args({"--distance-km", "20", "--json"})));
  ASSERT_TRUE(single.is_object());
  EXPECT_DOUBLE_EQ(pts[2].at("key_rate_asymptotic").get<double>(), single.at("key_rate_asymptotic").get<double>());
}

TEST(cli_keyrate, SweepTableIsTheDefault) {
  const auto r = run_cvqkd(homodyne_args({"--sweep-distance", "0:50:10"}));
  ASSERT_EQ(r.exit_code, 0) << show(r);
  const auto lines = lines_of(r.out);
  ASSERT_EQ(lines.size(), 8u) << r.out;  // header, 6 rows, units note
  EXPECT_NE(lines[0].find("km"), std::string::npos);
  EXPECT_NE(lines[0].find("PLOB"), std::string::npos);
}

class cli_plot : public temp_dir_test {};

TEST_F(cli_plot, SweepWritesAnSvg) {
  if (!gnuplot_available()) GTEST_SKIP() << "gnuplot is not on PATH: --plot cannot be tested";
  const auto svg = dir_ / "sweep.svg";
  const auto r = run_cvqkd(homodyne_args({"--sweep-distance", "0:50:10", "--n-total", "1e8", "--plot", svg.string()}));
  ASSERT_EQ(r.exit_code, 0) << show(r);
  ASSERT_TRUE(fs::exists(svg)) << show(r);
  EXPECT_GT(fs::file_size(svg), 0u);
  const auto text = read_file(svg);
  EXPECT_NE(text.find("<svg"), std::string::npos) << text.substr(0, 200);
  EXPECT_NE(text.find("PLOB"), std::string::npos) << "the plot lacks its PLOB curve";
  // The table is still printed alongside the plot.
  EXPECT_EQ(lines_of(r.out).size(), 8u) << r.out;
}

TEST_F(cli_plot, UnknownExtensionIsAUsageError) {
  const auto txt = dir_ / "sweep.txt";
  const auto r = run_cvqkd(homodyne_args({"--sweep-distance", "0:50:10", "--plot", txt.string()}));
  EXPECT_EQ(r.exit_code, 2) << show(r);
  EXPECT_NE(r.err.find("--plot"), std::string::npos) << show(r);
  EXPECT_NE(r.err.find(txt.string()), std::string::npos) << show(r);
  EXPECT_FALSE(fs::exists(txt));
}

// ---------------------------------------------------------------------------------------------
// 4. Usage errors: exit 2 (or 1 for I/O), nothing on stdout, stderr names the flag

struct bad_case {
  std::string name;
  std::vector<std::string> args;
  int exit_code;
  std::vector<std::string> mentions;  // each must appear in stderr
};

void PrintTo(const bad_case& c, std::ostream* os) { *os << describe(c.args); }

class cli_bad_flag : public ::testing::TestWithParam<bad_case> {};

TEST_P(cli_bad_flag, FailsNamingTheFlag) {
  const auto& c = GetParam();
  const auto r = run_cvqkd(c.args);
  EXPECT_EQ(r.exit_code, c.exit_code) << describe(c.args) << '\n' << show(r);
  EXPECT_TRUE(r.out.empty()) << describe(c.args) << '\n' << show(r);
  for (const auto& m : c.mentions)
    EXPECT_NE(r.err.find(m), std::string::npos) << "stderr lacks '" << m << "' for " << describe(c.args) << '\n'
                                                << show(r);
}

using kv = std::pair<std::string, std::optional<std::string>>;

INSTANTIATE_TEST_SUITE_P(
  keyrate, cli_bad_flag,
  ::testing::Values(
    bad_case{"va_negative", keyrate_args({kv{"--va", "-1"}}), 2, {"--va", "-1"}},
    bad_case{"va_nan", keyrate_args({kv{"--va", "nan"}}), 2, {"--va", "finite"}},
    bad_case{"va_zero", keyrate_args({kv{"--va", "0"}}), 2, {"--va", "(0, 10000]"}},
    bad_case{"va_huge", keyrate_args({kv{"--va", "1e17"}}), 2, {"--va", "(0, 10000]"}},
    bad_case{"xi_huge", keyrate_args({kv{"--xi", "1e300"}}), 2, {"--xi", "[0, 100]"}},
    bad_case{"transmittance_zero", keyrate_args({kv{"--transmittance", "0"}}), 2, {"--transmittance", "[1e-10, 1]"}},
    bad_case{"transmittance_above_one", keyrate_args({kv{"--transmittance", "1.5"}}), 2, {"--transmittance", "1.5"}},
    bad_case{"eta_zero", keyrate_args({kv{"--eta", "0"}}), 2, {"--eta", "(0, 1]"}},
    bad_case{"eta_above_one", keyrate_args({kv{"--eta", "1.2"}}), 2, {"--eta", "1.2"}},
    bad_case{"eta_nan", keyrate_args({kv{"--eta", "nan"}}), 2, {"--eta", "finite"}},
    bad_case{"vel_negative", keyrate_args({kv{"--vel", "-0.1"}}), 2, {"--vel", "-0.1"}},
    bad_case{"xi_negative", keyrate_args({kv{"--xi", "-1"}}), 2, {"--xi", "-1"}},
    bad_case{"beta_zero", keyrate_args({kv{"--beta", "0"}}), 2, {"--beta", "(0, 1]"}},
    bad_case{"beta_above_one", keyrate_args({kv{"--beta", "1.5"}}), 2, {"--beta", "1.5"}},
    bad_case{"attenuation_negative", keyrate_args({kv{"--transmittance", std::nullopt}, kv{"--distance-km", "5"},
                                                   kv{"--attenuation-db-per-km", "-0.2"}}),
             2, {"--attenuation-db-per-km"}},
    bad_case{"distance_negative", keyrate_args({kv{"--transmittance", std::nullopt}, kv{"--distance-km", "-3"}}), 2,
             {"--distance-km", "-3"}},
    bad_case{"distance_beyond_100_db", keyrate_args({kv{"--transmittance", std::nullopt}, kv{"--distance-km", "1e6"}}),
             2, {"--distance-km", "100 dB"}},
    bad_case{"loss_flags_with_transmittance", keyrate_args({kv{"--insertion-loss-db", "3"}}), 2,
             {"--insertion-loss-db", "--transmittance"}},
    bad_case{"detection_unknown", keyrate_args({kv{"--detection", "foo"}}), 2, {"--detection", "foo", "homodyne"}},
    bad_case{"detector_model_unknown", keyrate_args({kv{"--detector-model", "foo"}}), 2,
             {"--detector-model", "foo", "trusted"}},
    bad_case{"va_missing", keyrate_args({kv{"--va", std::nullopt}}), 2, {"--va", "required"}},
    bad_case{"detection_missing", keyrate_args({kv{"--detection", std::nullopt}}), 2, {"--detection", "required"}},
    bad_case{"no_channel", keyrate_args({kv{"--transmittance", std::nullopt}}), 2,
             {"--transmittance", "--distance-km"}},
    bad_case{"transmittance_and_distance", keyrate_args({kv{"--distance-km", "10"}}), 2,
             {"--transmittance", "--distance-km", "exactly one"}},
    bad_case{"transmittance_and_sweep", keyrate_args({kv{"--sweep-distance", "0:10:5"}}), 2, {"--sweep-distance"}},
    bad_case{"n_pe_without_n_total", keyrate_args({kv{"--n-pe", "1000"}}), 2, {"--n-pe", "--n-total"}},
    bad_case{"eps_without_n_total", keyrate_args({kv{"--eps", "1e-9"}}), 2, {"--eps", "--n-total"}},
    bad_case{"n_total_too_small", keyrate_args({kv{"--n-total", "500"}}), 2, {"--n-total", "500"}},
    bad_case{"n_total_fractional", keyrate_args({kv{"--n-total", "1000.5"}}), 2, {"--n-total", "whole number"}},
    bad_case{"n_pe_above_n_total", keyrate_args({kv{"--n-total", "1e8"}, kv{"--n-pe", "2e8"}}), 2,
             {"--n-pe", "200000000"}},
    bad_case{"n_pe_fractional", keyrate_args({kv{"--n-total", "1e8"}, kv{"--n-pe", "1.5"}}), 2,
             {"--n-pe", "whole number"}},
    bad_case{"eps_zero", keyrate_args({kv{"--n-total", "1e8"}, kv{"--eps", "0"}}), 2, {"--eps", "(0, 1)"}},
    bad_case{"eps_pe_above_one", keyrate_args({kv{"--n-total", "1e8"}, kv{"--eps-pe", "2"}}), 2, {"--eps-pe", "2"}},
    bad_case{"eps_smooth_zero", keyrate_args({kv{"--n-total", "1e8"}, kv{"--eps-smooth", "0"}}), 2,
             {"--eps-smooth"}},
    bad_case{"eps_pa_one", keyrate_args({kv{"--n-total", "1e8"}, kv{"--eps-pa", "1"}}), 2, {"--eps-pa"}},
    bad_case{"sweep_backwards",
             keyrate_args({kv{"--transmittance", std::nullopt}, kv{"--sweep-distance", "10:5:1"}}), 2,
             {"--sweep-distance", "TO"}},
    bad_case{"sweep_not_a_range", keyrate_args({kv{"--transmittance", std::nullopt}, kv{"--sweep-distance", "abc"}}),
             2, {"--sweep-distance", "abc", "FROM:TO:STEP"}},
    bad_case{"sweep_zero_step",
             keyrate_args({kv{"--transmittance", std::nullopt}, kv{"--sweep-distance", "0:10:0"}}), 2,
             {"--sweep-distance", "STEP"}},
    bad_case{"sweep_trailing_garbage",
             keyrate_args({kv{"--transmittance", std::nullopt}, kv{"--sweep-distance", "0:10:5:2"}}), 2,
             {"--sweep-distance", "0:10:5:2"}},
    bad_case{"sweep_too_many_points",
             keyrate_args({kv{"--transmittance", std::nullopt}, kv{"--sweep-distance", "0:1e6:1"}}), 2,
             {"--sweep-distance", "100000"}},
    bad_case{"csv_without_sweep", keyrate_args({kv{"--csv", ""}}), 2, {"--csv", "--sweep-distance"}},
    bad_case{"plot_without_sweep", keyrate_args({kv{"--plot", "x.svg"}}), 2, {"--plot", "--sweep-distance"}},
    bad_case{"unknown_flag", keyrate_args({kv{"--bogus-flag", "1"}}), 2, {"--bogus-flag"}},
    bad_case{"not_a_number", keyrate_args({kv{"--va", "four"}}), 2, {"--va", "four"}}),
  [](const auto& info) { return info.param.name; });

INSTANTIATE_TEST_SUITE_P(
  link, cli_bad_flag,
  ::testing::Values(
    bad_case{"profile_unknown",
             link_args({"--profile", "nonexistent"}),
             2,
             {"nonexistent", "highrate_metro", "llo_100km", "llo_metro", "tlo_80km"}},
    bad_case{"profile_file_missing", link_args({"--profile", "/nonexistent/file.toml"}), 1, {"/nonexistent/file.toml"}},
    bad_case{"distance_negative", {"link", "simulate", "--distance-km", "-3", "--symbols", "20000"}, 2,
             {"--distance-km", "-3"}},
    bad_case{"distance_missing", {"link", "simulate", "--symbols", "20000"}, 2, {"--distance-km", "required"}},
    bad_case{"distance_beyond_100_db", {"link", "simulate", "--distance-km", "1e5", "--symbols", "20000"}, 2,
             {"--distance-km", "100 dB"}},
    bad_case{"symbols_too_many", {"link", "simulate", "--distance-km", "25", "--symbols", "1e11"}, 2, {"--symbols"}},
    bad_case{"symbols_too_few", {"link", "simulate", "--distance-km", "25", "--symbols", "10"}, 2, {"--symbols", "10"}},
    bad_case{"symbols_not_a_number", {"link", "simulate", "--distance-km", "25", "--symbols", "1e4.5"}, 2,
             {"--symbols", "1e4.5"}},
    bad_case{"symbols_fractional", {"link", "simulate", "--distance-km", "25", "--symbols", "20000.5"}, 2,
             {"--symbols", "whole number"}},
    bad_case{"n_pe_above_symbols", link_args({"--n-pe", "20000"}), 2, {"--n-pe", "--symbols"}},
    bad_case{"n_pe_fractional", link_args({"--n-pe", "1.5"}), 2, {"--n-pe", "whole number"}},
    bad_case{"seed_negative", link_args({"--seed", "-1"}), 2, {"--seed", "-1"}},
    bad_case{"attack_unknown", link_args({"--attack", "jamming"}), 2, {"--attack", "jamming"}},
    bad_case{"attack_cloner_without_xi", link_args({"--attack", "entangling-cloner"}), 2, {"--attack-xi"}},
    bad_case{"attack_xi_without_cloner", link_args({"--attack", "intercept-resend", "--attack-xi", "0.2"}), 2,
             {"--attack-xi"}},
    bad_case{"beta_zero", link_args({"--beta", "0"}), 2, {"--beta"}},
    bad_case{"eve_unknown", link_args({"--eve", "foo"}), 2, {"--eve", "foo", "intercept-resend"}},
    bad_case{"eve_intercept_fraction", link_args({"--eve", "intercept-resend:2"}), 2, {"--eve", "intercept-resend"}},
    bad_case{"eve_cloner_below_one", link_args({"--eve", "entangling-cloner:0.5"}), 2,
             {"--eve", "entangling-cloner", "0.5"}},
    bad_case{"eve_cloner_without_value", link_args({"--eve", "entangling-cloner"}), 2,
             {"--eve", "entangling-cloner"}},
    bad_case{"fault_unknown", link_args({"--fault", "foo:1"}), 2, {"--fault", "foo:1", "excess-noise"}},
    bad_case{"fault_negative_noise", link_args({"--fault", "excess-noise:-1"}), 2, {"--fault", "excess-noise", "-1"}},
    bad_case{"fault_loss_above_one", link_args({"--fault", "sample-loss:2"}), 2, {"--fault", "sample-loss", "2"}},
    bad_case{"fault_without_value", link_args({"--fault", "lo-drift"}), 2, {"--fault", "lo-drift"}},
    bad_case{"fault_value_not_a_number", link_args({"--fault", "excess-noise:abc"}), 2, {"--fault", "abc"}},
    bad_case{"eps_zero", link_args({"--eps", "0"}), 2, {"--eps", "(0, 1)"}},
    bad_case{"detector_model_unknown", link_args({"--detector-model", "x"}), 2, {"--detector-model", "'x'"}},
    bad_case{"unknown_flag", link_args({"--bogus-flag"}), 2, {"--bogus-flag"}}),
  [](const auto& info) { return info.param.name; });

INSTANTIATE_TEST_SUITE_P(
  link_plan, cli_bad_flag,
  ::testing::Values(
    bad_case{"distance_missing", {"link", "plan"}, 2, {"--distance-km", "required"}},
    bad_case{"distance_negative", {"link", "plan", "--distance-km", "-1"}, 2, {"--distance-km", "-1"}},
    bad_case{"beta_one", {"link", "plan", "--distance-km", "25", "--beta", "1"}, 2, {"--beta"}},
    bad_case{"max_symbols_tiny", {"link", "plan", "--distance-km", "25", "--max-symbols", "10"}, 2, {"--max-symbols"}},
    bad_case{"profile_unknown", {"link", "plan", "--distance-km", "25", "--profile", "nope"}, 2, {"nope"}}),
  [](const auto& info) { return info.param.name; });

// Site addresses: checked before anything is written (the --dir below is never created).
INSTANTIATE_TEST_SUITE_P(
  network_generate, cli_bad_flag,
  ::testing::Values(
    bad_case{"host_unknown_site",
             {"network", "generate", "--topology", "test-ring", "--dir", "/nonexistent/cvqkd-net", "--host", "Z=10.0.0.1"},
             2, {"--host", "'Z' is not a site", "A, B, C, D"}},
    bad_case{"host_not_ipv4",
             {"network", "generate", "--topology", "test-ring", "--dir", "/nonexistent/cvqkd-net", "--host", "A=alpha"},
             2, {"--host A", "'alpha' is not an IPv4 address"}},
    bad_case{"host_without_site",
             {"network", "generate", "--topology", "test-ring", "--dir", "/nonexistent/cvqkd-net", "--host", "10.0.0.1"},
             2, {"SITE=ADDRESS"}}),
  [](const auto& info) { return info.param.name; });

INSTANTIATE_TEST_SUITE_P(profiles, cli_bad_flag,
                         ::testing::Values(bad_case{"show_unknown", {"profiles", "show", "nope"}, 2, {"nope", "llo_metro"}},
                                           bad_case{"show_without_name", {"profiles", "show"}, 2, {"name"}}),
                         [](const auto& info) { return info.param.name; });

// ---------------------------------------------------------------------------------------------
// 5. link simulate

TEST(cli_link, EstimatesBracketTheTruthAndAreReproducible) {
  const std::vector<std::string> args{"link",   "simulate", "--profile", "llo_metro", "--distance-km", "25",
                                      "--symbols", "200000", "--seed",   "3",         "--json"};
  const auto r = run_cvqkd(args);
  ASSERT_EQ(r.exit_code, 0) << show(r);
  const auto j = parse_json(r);
  ASSERT_TRUE(j.is_object());
  EXPECT_EQ(j.at("profile"), "llo_metro");
  EXPECT_EQ(j.at("seed").get<std::uint64_t>(), 3u);
  EXPECT_EQ(j.at("n_total").get<std::uint64_t>(), 200000u);
  const double t_true = j.at("true").at("transmittance").get<double>();
  EXPECT_NEAR(t_true, std::pow(10.0, -0.5), 1e-12);
  ASSERT_TRUE(j.at("estimated").is_object()) << r.out;
  EXPECT_NEAR(j.at("estimated").at("transmittance").get<double>(), t_true, 0.05 * t_true);
  EXPECT_LE(j.at("t_min").get<double>(), t_true);
  EXPECT_GE(j.at("xi_max").get<double>(), j.at("true").at("xi_effective").get<double>());
  EXPECT_LE(j.at("key_rate_asymptotic_true").get<double>(), j.at("plob_bound").get<double>());
  EXPECT_GE(j.at("elapsed_seconds").get<double>(), 0.0);

  // Same seed: the same bytes, but for the wall-clock time.
  const auto again = run_cvqkd(args);
  ASSERT_EQ(again.exit_code, 0) << show(again);
  EXPECT_EQ(without_elapsed(again.out), without_elapsed(r.out));
  EXPECT_NE(without_elapsed(r.out), r.out) << "elapsed_seconds was not in the output";

  // Another seed: other samples, other estimates; the truth stays.
  auto other_args = args;
  other_args[9] = "4";
  const auto other = run_cvqkd(other_args);
  ASSERT_EQ(other.exit_code, 0) << show(other);
  const auto k = parse_json(other);
  ASSERT_TRUE(k.is_object());
  EXPECT_EQ(k.at("seed").get<std::uint64_t>(), 4u);
  EXPECT_NE(k.at("estimated").at("transmittance").get<double>(), j.at("estimated").at("transmittance").get<double>());
  EXPECT_NE(k.at("estimated").at("xi").get<double>(), j.at("estimated").at("xi").get<double>());
  EXPECT_EQ(k.at("true"), j.at("true"));
}

TEST(cli_link, PlanGivesTheSmallestBlockOrSaysWhyNone) {
  const auto r = run_cvqkd({"link", "plan", "--profile", "llo_metro", "--distance-km", "25", "--json"});
  ASSERT_EQ(r.exit_code, 0) << show(r);
  const auto j = parse_json(r);
  ASSERT_TRUE(j.is_object()) << r.out;
  const auto n = j.at("block_symbols").get<std::uint64_t>();
  EXPECT_GE(n, 10'000u);
  EXPECT_LE(n, 20'000'000u);  // link simulate makes key at 2e7 symbols on this link
  EXPECT_GT(j.at("key_bits_per_block").get<double>(), 0.0);
  EXPECT_LE(j.at("beta").get<double>(), 0.95);
  EXPECT_TRUE(j.at("no_key_reason").is_null());
  // Longer link, larger block.
  const auto far = run_cvqkd({"link", "plan", "--profile", "llo_metro", "--distance-km", "40", "--json"});
  ASSERT_EQ(far.exit_code, 0) << show(far);
  EXPECT_GT(parse_json(far).at("block_symbols").get<std::uint64_t>(), n);
  // The Tokyo 90 km loop-back (30 dB): no block, and why.
  const auto none = run_cvqkd({"link", "plan", "--profile", "tlo_80km", "--distance-km", "0", "--insertion-loss-db",
                               "30", "--json"});
  ASSERT_EQ(none.exit_code, 0) << show(none);
  const auto k = parse_json(none);
  EXPECT_TRUE(k.at("block_symbols").is_null());
  EXPECT_FALSE(k.at("no_key_reason").get<std::string>().empty());
}

TEST(cli_link, InterceptResendLeavesNoKey) {
  const auto r = run_cvqkd({"link", "simulate", "--profile", "llo_metro", "--distance-km", "25", "--symbols", "200000",
                            "--seed", "3", "--eve", "intercept-resend", "--json"});
  ASSERT_EQ(r.exit_code, 0) << show(r);
  const auto j = parse_json(r);
  ASSERT_TRUE(j.is_object());
  EXPECT_LE(j.at("key_rate_finite").get<double>(), 0.0);
  EXPECT_EQ(j.at("key_rate_bps").get<double>(), 0.0);
  ASSERT_TRUE(j.contains("no_key_reason")) << r.out;
  EXPECT_FALSE(j.at("no_key_reason").get<std::string>().empty());
  // Full intercept-resend adds 2 SNU of input-referred noise, and the estimate sees it.
  EXPECT_GT(j.at("true").at("xi").get<double>(), 2.0);
  EXPECT_GT(j.at("estimated").at("xi").get<double>(), 1.0);
}

TEST(cli_link, ExcessNoiseFaultIsEstimated) {
  const auto r = run_cvqkd({"link", "simulate", "--profile", "llo_metro", "--distance-km", "25", "--symbols", "200000",
                            "--seed", "3", "--fault", "excess-noise:0.3", "--json"});
  ASSERT_EQ(r.exit_code, 0) << show(r);
  const auto j = parse_json(r);
  ASSERT_TRUE(j.is_object());
  EXPECT_NEAR(j.at("true").at("xi").get<double>(), 0.32, 1e-12);  // profile's 0.02 + the fault's 0.3
  EXPECT_GT(j.at("estimated").at("xi").get<double>(), 0.2);
  EXPECT_GE(j.at("xi_max").get<double>(), j.at("true").at("xi_effective").get<double>());
}

TEST(cli_link, TextReportShowsTrueEstimatedAndWorstCase) {
  const auto r = run_cvqkd(link_args({"--seed", "5"}));
  ASSERT_EQ(r.exit_code, 0) << show(r);
  for (const std::string s : {"profile llo_metro", "25.0 km", "seed 5", "transmittance T", "xi (input, SNU)",
                              "true", "estimated", "worst case", "estimation pass: 20000 symbols"})
    EXPECT_NE(r.out.find(s), std::string::npos) << "missing '" << s << "'\n" << show(r);
}

// ---------------------------------------------------------------------------------------------
// 6. Profiles

TEST(cli_profiles, ListJsonHasTheFourBuiltIns) {
  const auto r = run_cvqkd({"profiles", "list", "--json"});
  ASSERT_EQ(r.exit_code, 0) << show(r);
  const auto j = parse_json(r);
  ASSERT_TRUE(j.is_array()) << r.out;
  std::set<std::string> names;
  for (const auto& p : j) {
    names.insert(p.at("name").get<std::string>());
    const auto det = p.at("detection").get<std::string>();
    EXPECT_TRUE(det == "homodyne" || det == "heterodyne") << p.dump();
    EXPECT_GT(p.at("eta").get<double>(), 0.0) << p.dump();
    EXPECT_LE(p.at("eta").get<double>(), 1.0) << p.dump();
    EXPECT_GT(p.at("v_a").get<double>(), 0.0) << p.dump();
    EXPECT_GE(p.at("block_symbols").get<double>(), 1000.0) << p.dump();
  }
  EXPECT_EQ(names, (std::set<std::string>(builtin_profiles.begin(), builtin_profiles.end())));
  EXPECT_EQ(j.size(), builtin_profiles.size());
}

TEST(cli_profiles, ListTextHasOneLinePerProfile) {
  const auto r = run_cvqkd({"profiles", "list"});
  ASSERT_EQ(r.exit_code, 0) << show(r);
  const auto lines = lines_of(r.out);
  ASSERT_EQ(lines.size(), builtin_profiles.size()) << r.out;
  for (const auto& name : builtin_profiles)
    EXPECT_EQ(std::count_if(lines.begin(), lines.end(), [&](const auto& l) { return l.starts_with(name + " "); }), 1)
      << name << '\n'
      << r.out;
}

class cli_profile_file : public temp_dir_test {
 protected:
  // `profiles show NAME` written to DIR/FILE.
  fs::path save(const std::string& name, const std::string& file) {
    const auto r = run_cvqkd({"profiles", "show", name});
    EXPECT_EQ(r.exit_code, 0) << show(r);
    const auto path = dir_ / file;
    write_file(path, r.out);
    return path;
  }
  // Replaces the value of the first line starting with "KEY =" in `toml`.
  static std::string with_field(const std::string& toml, const std::string& key, const std::string& value) {
    std::string result;
    bool replaced = false;
    for (const auto& line : lines_of(toml)) {
      if (!replaced && line.starts_with(key + " =")) {
        result += key + " = " + value + '\n';
        replaced = true;
      } else {
        result += line + '\n';
      }
    }
    EXPECT_TRUE(replaced) << "no field " << key << " in\n" << toml;
    return result;
  }
};

TEST_F(cli_profile_file, ShowRoundTripsEveryBuiltIn) {
  for (const auto& name : builtin_profiles) {
    const auto path = save(name, name + ".toml");
    const auto from_file = run_cvqkd({"profiles", "show", path.string()});
    ASSERT_EQ(from_file.exit_code, 0) << name << '\n' << show(from_file);
    EXPECT_EQ(from_file.out, read_file(path)) << name;
    const auto builtin_json = run_cvqkd({"profiles", "show", name, "--json"});
    const auto file_json = run_cvqkd({"profiles", "show", path.string(), "--json"});
    ASSERT_EQ(builtin_json.exit_code, 0) << show(builtin_json);
    ASSERT_EQ(file_json.exit_code, 0) << show(file_json);
    EXPECT_EQ(parse_json(file_json), parse_json(builtin_json)) << name;
  }
}

TEST_F(cli_profile_file, LinkSimulateRunsFromTheSavedFile) {
  const auto path = save("llo_metro", "mine.toml");
  const std::vector<std::string> tail{"--distance-km", "10", "--symbols", "20000", "--seed", "9", "--json"};
  std::vector<std::string> from_file{"link", "simulate", "--profile", path.string()};
  from_file.insert(from_file.end(), tail.begin(), tail.end());
  std::vector<std::string> builtin{"link", "simulate", "--profile", "llo_metro"};
  builtin.insert(builtin.end(), tail.begin(), tail.end());
  const auto a = run_cvqkd(from_file);
  ASSERT_EQ(a.exit_code, 0) << show(a);
  const auto j = parse_json(a);
  ASSERT_TRUE(j.is_object());
  EXPECT_EQ(j.at("profile"), "llo_metro");
  const auto b = run_cvqkd(builtin);
  ASSERT_EQ(b.exit_code, 0) << show(b);
  EXPECT_EQ(without_elapsed(a.out), without_elapsed(b.out)) << "the saved profile differs from the built-in";
}

TEST_F(cli_profile_file, OutOfRangeFieldNamesFieldAndFile) {
  const auto good = read_file(save("llo_metro", "good.toml"));
  const auto bad = dir_ / "bad_eta.toml";
  write_file(bad, with_field(good, "eta", "1.3"));
  for (const auto& args : std::vector<std::vector<std::string>>{
         {"link", "simulate", "--profile", bad.string(), "--distance-km", "5", "--symbols", "20000"},
         {"profiles", "show", bad.string()}}) {
    const auto r = run_cvqkd(args);
    EXPECT_EQ(r.exit_code, 2) << describe(args) << '\n' << show(r);
    EXPECT_TRUE(r.out.empty()) << show(r);
    EXPECT_NE(r.err.find("detector.eta"), std::string::npos) << show(r);
    EXPECT_NE(r.err.find(bad.string()), std::string::npos) << show(r);
    EXPECT_NE(r.err.find("1.3"), std::string::npos) << show(r);
  }
}

TEST_F(cli_profile_file, OtherBadFieldsNameTheirDottedPath) {
  const auto good = read_file(save("llo_metro", "good.toml"));
  const std::vector<std::tuple<std::string, std::string, std::string>> cases{
    {"bits", "40", "adc.bits"},
    {"detection", "\"foo\"", "detector.detection"},
    {"v_a", "-5.0", "modulation.v_a"},
    {"beta_target", "1.5", "postprocessing.beta_target"}};
  for (const auto& [key, value, dotted] : cases) {
    const auto path = dir_ / ("bad_" + key + ".toml");
    write_file(path, with_field(good, key, value));
    const auto r = run_cvqkd({"link", "simulate", "--profile", path.string(), "--distance-km", "5", "--symbols", "20000"});
    EXPECT_EQ(r.exit_code, 2) << key << '\n' << show(r);
    EXPECT_NE(r.err.find(dotted), std::string::npos) << key << '\n' << show(r);
    EXPECT_NE(r.err.find(path.string()), std::string::npos) << key << '\n' << show(r);
  }
}

TEST_F(cli_profile_file, SyntaxErrorNamesTheFile) {
  const auto path = dir_ / "broken.toml";
  write_file(path, "name = \"broken\"\n[detector\neta = 0.5\n");
  const auto r = run_cvqkd({"link", "simulate", "--profile", path.string(), "--distance-km", "5", "--symbols", "20000"});
  EXPECT_EQ(r.exit_code, 2) << show(r);
  EXPECT_NE(r.err.find(path.string()), std::string::npos) << show(r);
}

}  // namespace
