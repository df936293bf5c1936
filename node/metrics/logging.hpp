#pragma once
// Structured logging for the node (spdlog): human-readable lines by default, JSON lines on request
// (one object per line: ts, level, logger, msg, then the event's fields), and an audit log of key
// deliveries for a SIEM. Key material is never logged: the audit record has no field that could
// hold key bytes, and log_event drops the value of any field whose name says it is key material.

#include <cstdint>
#include <filesystem>
#include <initializer_list>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <spdlog/common.h>

#include "core/error.hpp"

namespace spdlog {
class logger;
}

namespace cvqkd::metrics {

/// Parses "trace" | "debug" | "info" | "warn" | "error" | "critical" | "off".
/// Errors: invalid_argument naming the accepted values.
expected<spdlog::level::level_enum> parse_log_level(std::string_view text);

/// Makes a formatter: JSON lines (`{"ts":"2026-01-02T03:04:05.678Z","level":"info","logger":"link",
/// "msg":"...", <fields>}`, UTC, invalid UTF-8 replaced) or the plain text pattern
/// `[ts] [level] [logger] msg key=value ...`. Both render log_event's fields.
std::unique_ptr<spdlog::formatter> make_formatter(bool json_lines);

/// Replaces spdlog's default logger (name "cvqkd") with one writing to `sinks` (default: stderr) at
/// `level`, as JSON lines when `json_lines`. Call once at start-up, before other threads log.
/// Errors: io_error when spdlog cannot create a sink.
expected<void> configure_logging(spdlog::level::level_enum level, bool json_lines,
                                 std::vector<spdlog::sink_ptr> sinks = {});

/// A logger named `name` (e.g. "link", "api", "relay") sharing the default logger's sinks, format
/// and level; not registered globally (keep the pointer).
std::shared_ptr<spdlog::logger> component_logger(std::string_view name);

/// One structured field of a log event.
struct log_field {
  std::string_view key;
  std::variant<std::string_view, std::int64_t, std::uint64_t, double, bool> value;
};

/// Field names whose values are never logged (replaced by "[redacted]"): key, keys, key_bytes,
/// key_material, secret, secret_key, pad (case-insensitive).
bool is_key_material_field(std::string_view key) noexcept;

/// Logs `msg` with structured fields: top-level JSON members in JSON mode, `key=value` pairs in
/// text mode. Example: log_event(*lg, spdlog::level::warn, "round aborted", {{"link", id}, {"round", n}}).
void log_event(spdlog::logger& logger, spdlog::level::level_enum level, std::string_view msg,
               std::initializer_list<log_field> fields);

/// One key delivery (or storage) event for the audit log. IDs and sizes only: there is no field for
/// key bytes, by design.
struct key_delivery_record {
  std::string_view event;         // "enc_keys" (to the master SAE), "dec_keys" (to a slave SAE), "stored"
  std::string_view key_id;        // UUID
  std::string_view client_sae;    // the SAE authenticated by its certificate
  std::string_view master_sae;
  std::string_view slave_sae;
  std::span<const std::string> additional_slave_saes{};  // ETSI multicast
  std::uint64_t size_bits = 0;
  std::string_view route_type;    // "direct", "relay", "multipath"
  std::string_view peer_kme;      // the other KME of the pair
  int status = 200;               // HTTP status answered
};

/// Append-only JSON-lines audit log (one object per line: ts, event, key_id, client_sae, master_sae,
/// slave_sae, additional_slave_saes, size_bits, route_type, peer_kme, status), flushed after every
/// line (not fsynced: the OS may lose the last lines on power failure).
class audit_log {
public:
  /// Opens (creates, appends to) `file`. Errors: io_error naming the file when it cannot be opened
  /// (check the directory exists and is writable by the node's user).
  static expected<std::unique_ptr<audit_log>> open(const std::filesystem::path& file);
  ~audit_log();
  void key_delivered(const key_delivery_record& r);

private:
  audit_log() = default;
  std::shared_ptr<spdlog::logger> logger_;
};

}  // namespace cvqkd::metrics
