// Structured logging: JSON lines that parse (whatever the message holds), text mode with key=value
// fields, redaction of key-material fields, and the audit log of key deliveries (IDs and sizes only).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <spdlog/logger.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "node/metrics/logging.hpp"

namespace {

using namespace cvqkd::metrics;

std::vector<nlohmann::json> json_lines(const std::string& text) {
  std::vector<nlohmann::json> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    auto j = nlohmann::json::parse(line, nullptr, false);
    EXPECT_FALSE(j.is_discarded()) << "not JSON: " << line;
    EXPECT_TRUE(j.is_object()) << line;
    out.push_back(std::move(j));
  }
  return out;
}

struct captured_logging {
  std::ostringstream out;
  captured_logging(bool json, spdlog::level::level_enum level = spdlog::level::debug) {
    auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(out);
    auto ok = configure_logging(level, json, {sink});
    EXPECT_TRUE(ok.has_value());
  }
  ~captured_logging() { spdlog::set_default_logger(std::make_shared<spdlog::logger>("null")); }
};

TEST(logging, json_lines_parse_and_carry_ts_level_logger_msg_and_fields) {
  captured_logging cap(true);
  spdlog::info("plain message with \"quotes\", a backslash \\ and a newline\nsecond line");
  spdlog::warn("invalid UTF-8: \xff\xfe end");
  auto link = component_logger("link");
  log_event(*link, spdlog::level::warn, "round aborted",
            {{"link", "ko1-ko2"}, {"round", std::uint64_t{42}}, {"xi", 0.031}, {"alarm", true}, {"delta", std::int64_t{-3}}});
  spdlog::debug("debug is on");
  spdlog::trace("trace is below the level and not written");
  spdlog::default_logger()->flush();
  link->flush();

  const auto lines = json_lines(cap.out.str());
  ASSERT_EQ(lines.size(), 4u) << cap.out.str();
  for (const auto& j : lines) {
    for (const char* k : {"ts", "level", "logger", "msg"}) EXPECT_TRUE(j.contains(k)) << k << " missing: " << j.dump();
    EXPECT_TRUE(j["ts"].get<std::string>().ends_with("Z"));
    EXPECT_EQ(j["ts"].get<std::string>().size(), std::string("2026-01-02T03:04:05.678Z").size());
  }
  EXPECT_EQ(lines[0]["level"], "info");
  EXPECT_EQ(lines[0]["logger"], "cvqkd");
  EXPECT_EQ(lines[0]["msg"], "plain message with \"quotes\", a backslash \\ and a newline\nsecond line");
  EXPECT_EQ(lines[1]["level"], "warning");
  EXPECT_EQ(lines[2]["logger"], "link");
  EXPECT_EQ(lines[2]["msg"], "round aborted");
  EXPECT_EQ(lines[2]["link"], "ko1-ko2");
  EXPECT_EQ(lines[2]["round"], 42);
  EXPECT_DOUBLE_EQ(lines[2]["xi"].get<double>(), 0.031);
  EXPECT_EQ(lines[2]["alarm"], true);
  EXPECT_EQ(lines[2]["delta"], -3);
  EXPECT_EQ(lines[3]["level"], "debug");
}

TEST(logging, text_mode_renders_fields_as_key_value_pairs) {
  captured_logging cap(false, spdlog::level::info);
  log_event(*spdlog::default_logger(), spdlog::level::info, "relay done", {{"route_type", "multipath"}, {"hops", std::uint64_t{3}}});
  spdlog::default_logger()->flush();
  const auto text = cap.out.str();
  EXPECT_NE(text.find("[info] [cvqkd] relay done route_type=multipath hops=3"), std::string::npos) << text;
  EXPECT_EQ(text.find('{'), std::string::npos) << "no JSON in text mode: " << text;
}

TEST(logging, key_material_fields_are_redacted) {
  captured_logging cap(true);
  const std::string secret = "0123456789abcdef0123456789abcdef";
  log_event(*spdlog::default_logger(), spdlog::level::info, "careless caller",
            {{"key_id", "5f1c0a52-8f3e-4c3d-9a7e-1b2c3d4e5f60"}, {"key", secret}, {"Key_Bytes", secret}, {"secret", secret}});
  spdlog::default_logger()->flush();
  const auto text = cap.out.str();
  EXPECT_EQ(text.find(secret), std::string::npos) << text;
  const auto lines = json_lines(text);
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0]["key_id"], "5f1c0a52-8f3e-4c3d-9a7e-1b2c3d4e5f60");
  EXPECT_EQ(lines[0]["key"], "[redacted]");
  EXPECT_EQ(lines[0]["Key_Bytes"], "[redacted]");
  EXPECT_TRUE(is_key_material_field("KEY"));
  EXPECT_FALSE(is_key_material_field("key_id"));
  EXPECT_FALSE(is_key_material_field("key_size"));
}

TEST(logging, audit_log_writes_one_json_object_per_delivery_without_key_material) {
  const auto dir = std::filesystem::temp_directory_path() / ("cvqkd_audit_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const auto file = dir / "audit.jsonl";
  {
    auto log = audit_log::open(file);
    ASSERT_TRUE(log.has_value()) << log.error().message;
    const std::vector<std::string> extra{"sae-c", "sae-d"};
    (*log)->key_delivered({.event = "enc_keys", .key_id = "5f1c0a52-8f3e-4c3d-9a7e-1b2c3d4e5f60", .client_sae = "sae-a",
                           .master_sae = "sae-a", .slave_sae = "sae-b", .additional_slave_saes = extra, .size_bits = 256,
                           .route_type = "relay", .peer_kme = "ko2", .status = 200});
    (*log)->key_delivered({.event = "dec_keys", .key_id = "9b2d7c1e-0000-4000-8000-000000000001", .client_sae = "sae-b",
                           .master_sae = "sae-a", .slave_sae = "sae-b", .size_bits = 512, .route_type = "direct",
                           .peer_kme = "ko1", .status = 200});
  }
  {  // reopening appends
    auto log = audit_log::open(file);
    ASSERT_TRUE(log.has_value());
    (*log)->key_delivered({.event = "dec_keys", .key_id = "9b2d7c1e-0000-4000-8000-000000000001", .client_sae = "sae-x",
                           .master_sae = "sae-a", .slave_sae = "sae-b", .size_bits = 512, .route_type = "direct",
                           .peer_kme = "ko1", .status = 401});
  }
  std::ifstream in(file);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::filesystem::remove_all(dir);
  const auto lines = json_lines(text);
  ASSERT_EQ(lines.size(), 3u) << text;
  const std::set<std::string> expected_fields{"ts",        "event",      "key_id",   "client_sae", "master_sae", "slave_sae",
                                              "additional_slave_saes", "size_bits", "route_type", "peer_kme", "status"};
  for (const auto& j : lines) {
    std::set<std::string> fields;
    for (const auto& [k, v] : j.items()) {
      fields.insert(k);
      EXPECT_FALSE(is_key_material_field(k)) << "key material field in the audit log: " << k;
    }
    EXPECT_EQ(fields, expected_fields) << j.dump();
  }
  EXPECT_EQ(lines[0]["event"], "enc_keys");
  EXPECT_EQ(lines[0]["size_bits"], 256);
  EXPECT_EQ(lines[0]["additional_slave_saes"], nlohmann::json::array({"sae-c", "sae-d"}));
  EXPECT_EQ(lines[1]["client_sae"], "sae-b");
  EXPECT_EQ(lines[2]["status"], 401);
}

TEST(logging, audit_log_open_fails_with_an_io_error_naming_the_file) {
  // spdlog creates missing directories, so the parent is a regular file here.
  const auto blocker = std::filesystem::temp_directory_path() / ("cvqkd_audit_blocker_" + std::to_string(::getpid()));
  std::ofstream(blocker) << "not a directory";
  const std::string missing = (blocker / "audit.jsonl").string();
  auto log = audit_log::open(missing);
  std::filesystem::remove(blocker);
  ASSERT_FALSE(log.has_value());
  EXPECT_EQ(log.error().code, cvqkd::errc::io_error);
  EXPECT_NE(log.error().message.find(missing), std::string::npos) << log.error().message;
}

TEST(logging, parse_log_level_accepts_the_documented_names_only) {
  EXPECT_EQ(*parse_log_level("warn"), spdlog::level::warn);
  EXPECT_EQ(*parse_log_level("error"), spdlog::level::err);
  auto bad = parse_log_level("verbose");
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.error().code, cvqkd::errc::invalid_argument);
  EXPECT_NE(bad.error().message.find("trace, debug, info"), std::string::npos);
}

}  // namespace
