#pragma once
// The store's view of time and of the file system, behind small interfaces so that tests can
// inject a manual clock (TTL expiry) and a fake file system (KEK permission policy) —
// the RocksDB idea of an `Env` (../shared/reference/style.md), kept to what storage/ needs.
// RocksDB's own file I/O stays on rocksdb::Env::Default().

#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>

#include "core/error.hpp"
#include "core/secure_buffer.hpp"

namespace cvqkd::storage {

/// Wall-clock time in milliseconds since the Unix epoch (UTC). Key creation and expiry times
/// are stored in this unit.
class clock {
public:
  virtual ~clock() = default;
  virtual std::int64_t now_unix_ms() const = 0;
};

/// std::chrono::system_clock.
class system_clock final : public clock {
public:
  std::int64_t now_unix_ms() const override;
};

/// A clock that moves only when told to (tests of expiry). Thread-safe.
class manual_clock final : public clock {
public:
  explicit manual_clock(std::int64_t start_unix_ms = 1'700'000'000'000) : now_(start_unix_ms) {}
  std::int64_t now_unix_ms() const override { return now_.load(); }
  void advance(std::chrono::milliseconds d) { now_ += d.count(); }

private:
  std::atomic<std::int64_t> now_;
};

/// Contents and permission bits of a file.
struct private_file {
  secure_buffer content;
  unsigned mode = 0;  // st_mode & 07777
};

/// The few file-system operations the store makes outside RocksDB.
class file_system {
public:
  virtual ~file_system() = default;
  /// Reads a whole (small) file together with its permission bits. Errors: io_error when the
  /// file cannot be stat'ed or read.
  virtual expected<private_file> read_file_with_mode(const std::filesystem::path& path) = 0;
  /// Creates `dir` (and parents) with mode 0700 if it does not exist. Errors: io_error.
  virtual expected<void> create_private_directory(const std::filesystem::path& dir) = 0;
};

/// POSIX implementation (stat, open/read, mkdir).
class posix_file_system final : public file_system {
public:
  expected<private_file> read_file_with_mode(const std::filesystem::path& path) override;
  expected<void> create_private_directory(const std::filesystem::path& dir) override;
};

/// Writes a fresh random 256-bit key-encryption key to `path` as 64 hex digits and a newline,
/// created with O_EXCL and mode 0600 (for set-up scripts and tests). Errors: io_error if the file
/// exists or cannot be written.
expected<void> create_kek_file(const std::filesystem::path& path);

}  // namespace cvqkd::storage
