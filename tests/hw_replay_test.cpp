// Replay driver: recordings written by write_recording come back exactly through the
// transmitter/receiver interfaces, and malformed or missing recordings fail with useful errors.

#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "hw/replay.hpp"

namespace cvqkd::hw {
namespace {

namespace fs = std::filesystem;

// A fresh directory under the system temp dir per test, removed afterwards.
class replay_files : public ::testing::Test {
protected:
  void SetUp() override {
    std::string test = ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::ranges::replace(test, '/', '_');  // parameterised names contain '/'
    dir_ = fs::temp_directory_path() / ("cvqkd_replay_" + std::to_string(std::random_device{}()) + "_" + test);
    fs::create_directories(dir_);
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  fs::path file(const std::string& name) const { return dir_ / name; }
  fs::path write_text(const std::string& name, const std::string& text) const {
    std::ofstream(file(name), std::ios::binary) << text;
    return file(name);
  }

  fs::path dir_;
};

struct recording {
  std::vector<double> alice, bob;
};

// Gaussian values plus edge cases that must survive the text round trip exactly.
recording random_recording(std::size_t pairs, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> gauss(0.0, 3.0);
  recording r;
  for (std::size_t i = 0; i < pairs; ++i) {
    r.alice.push_back(gauss(rng));
    r.bob.push_back(gauss(rng) * 1e3);
  }
  r.alice[0] = -0.0;
  r.bob[0] = std::numeric_limits<double>::denorm_min();
  r.alice[1] = std::numeric_limits<double>::max();
  r.bob[1] = -1e-300;
  return r;
}

replay_config config_for(const fs::path& path, detection det) {
  return replay_config{.path = path, .format = replay_format::auto_detect, .det = det};
}

struct round_trip_case {
  detection det;
  std::string extension;
};

class replay_round_trip : public replay_files, public ::testing::WithParamInterface<round_trip_case> {};

TEST_P(replay_round_trip, uneven_chunks_return_the_recording_exactly) {
  const auto [det, ext] = GetParam();
  const bool het = det == detection::heterodyne;
  const std::vector<std::size_t> chunks{1, 7, 100, 3, 389};  // 500 symbols
  const std::size_t symbols = 500, pairs = het ? 2 * symbols : symbols;
  const auto rec = random_recording(pairs, 42);
  const auto path = file("rec" + ext);
  ASSERT_TRUE(write_recording(path, replay_format::auto_detect, rec.alice, rec.bob));

  auto tx = open_replay_transmitter(config_for(path, det));
  auto rx = open_replay_receiver(config_for(path, det));
  ASSERT_TRUE(tx) << to_string(tx.error());
  ASSERT_TRUE(rx) << to_string(rx.error());
  EXPECT_EQ((*rx)->detection_type(), det);

  std::size_t next = 0;
  for (const auto n : chunks) {
    const auto a = (*tx)->emit(n);
    const auto b = (*rx)->measure(n);
    ASSERT_TRUE(a) << to_string(a.error());
    ASSERT_TRUE(b) << to_string(b.error());
    EXPECT_EQ(a->first_symbol, next);
    EXPECT_EQ(b->first_symbol, next);
    ASSERT_EQ(a->size(), n);
    ASSERT_EQ(b->size(), n);
    EXPECT_EQ(b->det, det);
    EXPECT_EQ(b->valid, std::vector<std::uint8_t>(n, 1));
    EXPECT_EQ(b->clipped_samples, 0u);
    EXPECT_EQ(b->lost_symbols, 0u);
    for (std::size_t i = 0; i < n; ++i) {
      const std::size_t s = next + i;
      if (het) {
        // Bitwise comparison, so that -0.0 and denormals count too.
        EXPECT_EQ(std::bit_cast<std::uint64_t>(a->q[i]), std::bit_cast<std::uint64_t>(rec.alice[2 * s]));
        EXPECT_EQ(a->p[i], rec.alice[2 * s + 1]);
        EXPECT_EQ(b->y_q[i], rec.bob[2 * s]);
        EXPECT_EQ(b->y_p[i], rec.bob[2 * s + 1]);
      } else {
        EXPECT_EQ(std::bit_cast<std::uint64_t>(a->q[i]), std::bit_cast<std::uint64_t>(rec.alice[s]));
        EXPECT_EQ(a->p[i], 0.0);
        EXPECT_EQ(b->y_q[i], rec.bob[s]);
      }
    }
    if (het) {
      EXPECT_TRUE(b->basis.empty());
    } else {
      EXPECT_TRUE(b->y_p.empty());
      EXPECT_EQ(b->basis, std::vector<std::uint8_t>(n, 0));
    }
    next += n;
  }
  ASSERT_EQ(next, symbols);
  const auto past_end = (*rx)->measure(1);
  ASSERT_FALSE(past_end);
  EXPECT_EQ(past_end.error().code, errc::insufficient_data);
}

INSTANTIATE_TEST_SUITE_P(replay_formats, replay_round_trip,
                         ::testing::Values(round_trip_case{detection::homodyne, ".f64"},
                                           round_trip_case{detection::heterodyne, ".bin"},
                                           round_trip_case{detection::homodyne, ".csv"},
                                           round_trip_case{detection::heterodyne, ".csv"}),
                         [](const auto& info) {
                           return std::string(to_string(info.param.det)) + "_" + info.param.extension.substr(1);
                         });

TEST_F(replay_files, raw_file_is_little_endian_float64_pairs) {
  const auto path = file("one.f64");
  ASSERT_TRUE(write_recording(path, replay_format::auto_detect, std::vector{1.0}, std::vector{-2.0}));
  std::ifstream in(path, std::ios::binary);
  const std::string bytes{std::istreambuf_iterator<char>(in), {}};
  EXPECT_EQ(bytes, std::string("\0\0\0\0\0\0\xF0\x3F\0\0\0\0\0\0\0\xC0", 16));
}

TEST_F(replay_files, bob_values_are_scaled_to_snu_and_calibration_is_the_configured_one) {
  const auto path = file("adc.csv");
  ASSERT_TRUE(write_recording(path, replay_format::csv, std::vector{2.0, -4.0}, std::vector{2.0, -4.0}));
  auto cfg = config_for(path, detection::homodyne);
  cfg.n0_raw = 4.0;
  cfg.v_el = 0.01;
  auto rx = open_replay_receiver(cfg);
  auto tx = open_replay_transmitter(cfg);
  ASSERT_TRUE(rx && tx);

  EXPECT_EQ((*rx)->calibration().n0_raw, 0.0);  // nothing applied before calibrate()
  const auto cal = (*rx)->calibrate();
  ASSERT_TRUE(cal);
  EXPECT_EQ(cal->n0_raw, 4.0);
  EXPECT_EQ(cal->v_el, 0.01);
  EXPECT_EQ(cal->samples, 0u);
  EXPECT_EQ((*rx)->calibration().n0_raw, 4.0);

  const auto b = (*rx)->measure(2);
  ASSERT_TRUE(b);
  EXPECT_EQ(b->y_q, (std::vector{1.0, -2.0}));
  const auto a = (*tx)->emit(2);
  ASSERT_TRUE(a);
  EXPECT_EQ(a->q, (std::vector{2.0, -4.0}));  // Alice's values are SNU already
}

TEST_F(replay_files, truncated_recording_reports_what_remains_and_consumes_nothing) {
  for (const std::string ext : {".f64", ".csv"}) {
    SCOPED_TRACE(ext);
    const auto path = file("short" + ext);
    const auto rec = random_recording(20, 7);  // 10 heterodyne symbols
    ASSERT_TRUE(write_recording(path, replay_format::auto_detect, rec.alice, rec.bob));
    auto rx = open_replay_receiver(config_for(path, detection::heterodyne));
    ASSERT_TRUE(rx);
    ASSERT_TRUE((*rx)->measure(4));

    const auto b = (*rx)->measure(10);
    ASSERT_FALSE(b);
    EXPECT_EQ(b.error().code, errc::insufficient_data);
    EXPECT_NE(b.error().message.find(path.string()), std::string::npos) << b.error().message;
    EXPECT_NE(b.error().message.find("holds 6 more symbols"), std::string::npos) << b.error().message;

    const auto rest = (*rx)->measure(6);
    ASSERT_TRUE(rest) << to_string(rest.error());
    EXPECT_EQ(rest->first_symbol, 4u);
    EXPECT_EQ(rest->y_p.back(), rec.bob.back());
  }
}

TEST_F(replay_files, raw_file_with_a_stray_byte_is_a_parse_error) {
  const auto path = file("stray.bin");
  const auto rec = random_recording(10, 3);
  ASSERT_TRUE(write_recording(path, replay_format::raw_f64, rec.alice, rec.bob));
  std::ofstream(path, std::ios::binary | std::ios::app).put('\0');

  const auto rx = open_replay_receiver(config_for(path, detection::homodyne));
  ASSERT_FALSE(rx);
  EXPECT_EQ(rx.error().code, errc::parse_error);
  EXPECT_NE(rx.error().message.find("161 bytes"), std::string::npos) << rx.error().message;
}

TEST_F(replay_files, raw_heterodyne_file_with_an_odd_number_of_pairs_is_a_parse_error) {
  const auto path = file("odd.f64");
  const auto rec = random_recording(5, 3);
  ASSERT_TRUE(write_recording(path, replay_format::raw_f64, rec.alice, rec.bob));
  const auto tx = open_replay_transmitter(config_for(path, detection::heterodyne));
  ASSERT_FALSE(tx);
  EXPECT_EQ(tx.error().code, errc::parse_error);
  EXPECT_TRUE(open_replay_transmitter(config_for(path, detection::homodyne)));
}

TEST_F(replay_files, malformed_csv_lines_are_parse_errors_with_file_and_line) {
  // CRLF line ends and a blank line must not shift the reported line numbers.
  const auto path = write_text("bad.csv", "alice,bob\r\n1.5,2\r\n\r\nabc,3\r\n");
  auto tx = open_replay_transmitter(config_for(path, detection::homodyne));
  ASSERT_TRUE(tx) << to_string(tx.error());
  const auto first = (*tx)->emit(1);
  ASSERT_TRUE(first) << to_string(first.error());
  EXPECT_EQ(first->q, std::vector{1.5});

  const auto bad = (*tx)->emit(1);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, errc::parse_error);
  EXPECT_NE(bad.error().message.find(path.string() + ":4:"), std::string::npos) << bad.error().message;
  EXPECT_NE(bad.error().message.find("abc"), std::string::npos) << bad.error().message;

  // Bob's driver rejects the same line although its own column is fine there.
  auto rx = open_replay_receiver(config_for(path, detection::homodyne));
  ASSERT_TRUE(rx);
  EXPECT_EQ((*rx)->measure(2).error().code, errc::parse_error);

  for (const std::string body : {"1,2,3\n", "1\n", "nan,1\n", "1,inf\n", "1e999,1\n", "1,\n"}) {
    SCOPED_TRACE(body);
    const auto p = write_text("bad2.csv", "alice,bob\n" + body);
    auto r = open_replay_receiver(config_for(p, detection::homodyne));
    ASSERT_TRUE(r);
    const auto b = (*r)->measure(1);
    ASSERT_FALSE(b);
    EXPECT_EQ(b.error().code, errc::parse_error);
    EXPECT_NE(b.error().message.find(p.string() + ":2:"), std::string::npos) << b.error().message;
  }
}

TEST_F(replay_files, csv_heterodyne_recording_ending_after_a_q_pair_is_a_parse_error) {
  const auto path = write_text("odd.csv", "alice,bob\n1,2\n3,4\n5,6\n");
  auto rx = open_replay_receiver(config_for(path, detection::heterodyne));
  ASSERT_TRUE(rx);
  ASSERT_TRUE((*rx)->measure(1));
  const auto b = (*rx)->measure(1);
  ASSERT_FALSE(b);
  EXPECT_EQ(b.error().code, errc::parse_error);
  EXPECT_NE(b.error().message.find(path.string() + ":4:"), std::string::npos) << b.error().message;
}

TEST_F(replay_files, csv_without_header_is_a_parse_error) {
  const auto path = write_text("noheader.csv", "1,2\n");
  const auto rx = open_replay_receiver(config_for(path, detection::homodyne));
  ASSERT_FALSE(rx);
  EXPECT_EQ(rx.error().code, errc::parse_error);
  EXPECT_NE(rx.error().message.find(":1:"), std::string::npos) << rx.error().message;
}

TEST_F(replay_files, csv_accepts_spaces_plus_signs_and_no_final_newline) {
  const auto path = write_text("loose.csv", "\xEF\xBB\xBF" "alice, bob\n +1.25 , -3e2\n0,1");
  auto rx = open_replay_receiver(config_for(path, detection::homodyne));
  ASSERT_TRUE(rx) << to_string(rx.error());
  const auto b = (*rx)->measure(2);
  ASSERT_TRUE(b) << to_string(b.error());
  EXPECT_EQ(b->y_q, (std::vector{-300.0, 1.0}));
  EXPECT_EQ((*rx)->measure(1).error().code, errc::insufficient_data);
}

TEST_F(replay_files, missing_file_is_an_io_error) {
  const auto path = file("does_not_exist.f64");
  const auto tx = open_replay_transmitter(config_for(path, detection::homodyne));
  const auto rx = open_replay_receiver(config_for(path, detection::homodyne));
  ASSERT_FALSE(tx);
  ASSERT_FALSE(rx);
  EXPECT_EQ(tx.error().code, errc::io_error);
  EXPECT_EQ(rx.error().code, errc::io_error);
  EXPECT_NE(rx.error().message.find(path.string()), std::string::npos) << rx.error().message;
}

TEST_F(replay_files, bad_config_is_rejected) {
  const auto path = file("ok.f64");
  ASSERT_TRUE(write_recording(path, replay_format::raw_f64, std::vector{1.0}, std::vector{1.0}));
  const auto rejected = [](const replay_config& cfg) {
    const auto rx = open_replay_receiver(cfg);
    return !rx && rx.error().code == errc::config_error;
  };
  auto cfg = config_for(path, detection::homodyne);
  EXPECT_TRUE(cfg.validate());
  cfg.n0_raw = 0.0;
  EXPECT_TRUE(rejected(cfg));
  cfg.n0_raw = std::numeric_limits<double>::quiet_NaN();
  EXPECT_TRUE(rejected(cfg));
  cfg.n0_raw = std::numeric_limits<double>::infinity();
  EXPECT_TRUE(rejected(cfg));
  cfg.n0_raw = 1.0;
  cfg.v_el = -0.1;
  EXPECT_TRUE(rejected(cfg));
  cfg.v_el = 0.0;
  cfg.path = write_text("rec.dat", "");
  EXPECT_TRUE(rejected(cfg));  // extension says nothing about the format
  cfg.format = replay_format::raw_f64;
  EXPECT_TRUE(cfg.validate());

  auto rx = open_replay_receiver(config_for(path, detection::homodyne));
  ASSERT_TRUE(rx);
  EXPECT_EQ((*rx)->measure(0).error().code, errc::invalid_argument);
}

TEST_F(replay_files, writer_rejects_mismatched_or_non_finite_input) {
  const auto path = file("w.csv");
  EXPECT_EQ(write_recording(path, replay_format::csv, std::vector{1.0, 2.0}, std::vector{1.0}).error().code,
            errc::invalid_argument);
  EXPECT_EQ(write_recording(path, replay_format::csv, std::vector{1.0}, std::vector{std::nan("")}).error().code,
            errc::invalid_argument);
  EXPECT_EQ(write_recording(file("no/such/dir.csv"), replay_format::csv, std::vector{1.0}, std::vector{1.0})
                .error()
                .code,
            errc::io_error);
}

TEST(replay_format_names, parse_inverts_to_string) {
  for (const auto f : {replay_format::auto_detect, replay_format::raw_f64, replay_format::csv})
    EXPECT_EQ(parse_replay_format(to_string(f)), f);
  EXPECT_FALSE(parse_replay_format("f64"));
}

}  // namespace
}  // namespace cvqkd::hw
