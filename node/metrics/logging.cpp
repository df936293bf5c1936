#include "node/metrics/logging.hpp"

#include <nlohmann/json.hpp>
#include <spdlog/formatter.h>
#include <spdlog/logger.h>
#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <chrono>
#include <ctime>
#include <exception>

namespace cvqkd::metrics {

namespace {

// A structured event travels through spdlog as its payload: this marker, then a JSON object with
// "msg" and the fields. The formatters below recognise it; a plain spdlog call has no marker.
constexpr char structured_marker = '\x1e';  // ASCII record separator

std::string utc_timestamp(spdlog::log_clock::time_point t) {
  using namespace std::chrono;
  const auto ms = duration_cast<milliseconds>(t.time_since_epoch()).count();
  const std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[40];
  const auto n = std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  return std::string(buf, n) + fmt::format(".{:03d}Z", static_cast<int>(ms % 1000));
}

std::string_view level_name(spdlog::level::level_enum l) {
  const auto sv = spdlog::level::to_string_view(l);
  return {sv.data(), sv.size()};
}

// The structured object of a payload, or null when the payload is a plain message.
nlohmann::ordered_json structured(std::string_view payload) {
  if (payload.empty() || payload.front() != structured_marker) return nullptr;
  auto j = nlohmann::ordered_json::parse(payload.substr(1), nullptr, false);
  return j.is_object() ? j : nullptr;
}

std::string dump(const nlohmann::ordered_json& j) {
  return j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

class json_formatter final : public spdlog::formatter {
public:
  void format(const spdlog::details::log_msg& m, spdlog::memory_buf_t& dest) override {
    nlohmann::ordered_json line;
    line["ts"] = utc_timestamp(m.time);
    line["level"] = level_name(m.level);
    line["logger"] = std::string_view(m.logger_name.data(), m.logger_name.size());
    const std::string_view payload(m.payload.data(), m.payload.size());
    if (auto s = structured(payload); !s.is_null()) {
      for (auto& [k, v] : s.items())
        if (k != "ts" && k != "level" && k != "logger") line[k] = v;
    } else {
      line["msg"] = payload;
    }
    const auto text = dump(line);
    dest.append(text.data(), text.data() + text.size());
    dest.push_back('\n');
  }
  std::unique_ptr<spdlog::formatter> clone() const override { return std::make_unique<json_formatter>(); }
};

class text_formatter final : public spdlog::formatter {
public:
  text_formatter() : pattern_("[%Y-%m-%dT%H:%M:%S.%eZ] [%l] [%n] %v", spdlog::pattern_time_type::utc) {}
  void format(const spdlog::details::log_msg& m, spdlog::memory_buf_t& dest) override {
    const std::string_view payload(m.payload.data(), m.payload.size());
    auto s = structured(payload);
    if (s.is_null()) return pattern_.format(m, dest);
    std::string text = s.contains("msg") && s["msg"].is_string() ? s["msg"].get<std::string>() : std::string();
    for (auto& [k, v] : s.items()) {
      if (k == "msg") continue;
      text += ' ';
      text += k;
      text += '=';
      text += v.is_string() ? v.get<std::string>() : dump(v);
    }
    auto copy = m;
    copy.payload = spdlog::string_view_t(text.data(), text.size());
    pattern_.format(copy, dest);
  }
  std::unique_ptr<spdlog::formatter> clone() const override { return std::make_unique<text_formatter>(); }

private:
  spdlog::pattern_formatter pattern_;
};

}  // namespace

expected<spdlog::level::level_enum> parse_log_level(std::string_view text) {
  static constexpr std::array<std::pair<std::string_view, spdlog::level::level_enum>, 7> names{{
      {"trace", spdlog::level::trace}, {"debug", spdlog::level::debug}, {"info", spdlog::level::info},
      {"warn", spdlog::level::warn}, {"error", spdlog::level::err}, {"critical", spdlog::level::critical},
      {"off", spdlog::level::off}}};
  for (const auto& [name, level] : names)
    if (name == text) return level;
  return fail(errc::invalid_argument, "log level '" + std::string(text) +
                                          "' is unknown; use trace, debug, info, warn, error, critical or off");
}

std::unique_ptr<spdlog::formatter> make_formatter(bool json_lines) {
  if (json_lines) return std::make_unique<json_formatter>();
  return std::make_unique<text_formatter>();
}

expected<void> configure_logging(spdlog::level::level_enum level, bool json_lines, std::vector<spdlog::sink_ptr> sinks) {
  try {
    if (sinks.empty()) sinks.push_back(std::make_shared<spdlog::sinks::stderr_sink_mt>());
    auto logger = std::make_shared<spdlog::logger>("cvqkd", sinks.begin(), sinks.end());
    logger->set_formatter(make_formatter(json_lines));
    logger->set_level(level);
    logger->flush_on(spdlog::level::warn);
    spdlog::set_default_logger(std::move(logger));
    return {};
  } catch (const std::exception& e) {
    return fail(errc::io_error, std::string("logging: cannot set up the log sinks: ") + e.what());
  }
}

std::shared_ptr<spdlog::logger> component_logger(std::string_view name) {
  return spdlog::default_logger()->clone(std::string(name));
}

bool is_key_material_field(std::string_view key) noexcept {
  static constexpr std::array<std::string_view, 7> banned{"key", "keys", "key_bytes", "key_material", "secret",
                                                          "secret_key", "pad"};
  if (key.size() > 16) return false;
  char buf[16];
  std::transform(key.begin(), key.end(), buf, [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  const std::string_view k(buf, key.size());
  return std::find(banned.begin(), banned.end(), k) != banned.end();
}

void log_event(spdlog::logger& logger, spdlog::level::level_enum level, std::string_view msg,
               std::initializer_list<log_field> fields) {
  if (!logger.should_log(level)) return;
  try {
    nlohmann::ordered_json j;
    j["msg"] = msg;
    for (const auto& f : fields) {
      const std::string k(f.key);
      if (k.empty() || k == "msg") continue;
      if (is_key_material_field(k)) {
        j[k] = "[redacted]";
        continue;
      }
      std::visit([&](const auto& v) { j[k] = v; }, f.value);
    }
    const std::string payload = structured_marker + dump(j);
    logger.log(level, spdlog::string_view_t(payload.data(), payload.size()));
  } catch (const std::exception& e) {
    logger.log(level, "{} (structured fields dropped: {})", msg, e.what());
  }
}

// ---------------------------------------------------------------------------------------------

expected<std::unique_ptr<audit_log>> audit_log::open(const std::filesystem::path& file) {
  try {
    auto sink = std::make_shared<spdlog::sinks::basic_file_sink_mt>(file.string(), /*truncate=*/false);
    std::unique_ptr<audit_log> a(new audit_log());
    a->logger_ = std::make_shared<spdlog::logger>("audit", std::move(sink));
    a->logger_->set_pattern("%v", spdlog::pattern_time_type::utc);
    a->logger_->set_level(spdlog::level::info);
    a->logger_->flush_on(spdlog::level::info);
    return a;
  } catch (const std::exception& e) {
    return fail(errc::io_error, "audit log: cannot open '" + file.string() + "' (" + e.what() +
                                    "); check that the directory exists and the node may write to it");
  }
}

audit_log::~audit_log() = default;

void audit_log::key_delivered(const key_delivery_record& r) {
  nlohmann::ordered_json j;
  j["ts"] = utc_timestamp(spdlog::log_clock::now());
  j["event"] = r.event;
  j["key_id"] = r.key_id;
  j["client_sae"] = r.client_sae;
  j["master_sae"] = r.master_sae;
  j["slave_sae"] = r.slave_sae;
  auto extra = nlohmann::ordered_json::array();
  for (const auto& s : r.additional_slave_saes) extra.push_back(s);
  j["additional_slave_saes"] = std::move(extra);
  j["size_bits"] = r.size_bits;
  j["route_type"] = r.route_type;
  j["peer_kme"] = r.peer_kme;
  j["status"] = r.status;
  const auto line = dump(j);
  logger_->info(spdlog::string_view_t(line.data(), line.size()));
}

}  // namespace cvqkd::metrics
