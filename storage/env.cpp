#include "storage/env.hpp"

#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <string>
#include <system_error>

namespace cvqkd::storage {

std::int64_t system_clock::now_unix_ms() const {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
    .count();
}

namespace {

std::string errno_text(int e) { return std::error_code(e, std::generic_category()).message(); }

}  // namespace

expected<private_file> posix_file_system::read_file_with_mode(const std::filesystem::path& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) {
    const int e = errno;
    return fail(errc::io_error, "cannot open " + path.string() + ": " + errno_text(e) +
                                  "; check the path (a symbolic link is refused) and the permissions");
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return fail(errc::io_error, path.string() + " is not a regular file; point the option at the key file itself");
  }
  constexpr off_t max_size = 4096;  // a KEK file is tiny; refuse to slurp anything large
  if (st.st_size > max_size) {
    ::close(fd);
    return fail(errc::io_error, path.string() + " is " + std::to_string(st.st_size) +
                                  " bytes; a key file holds 32 raw bytes or 64 hex digits");
  }
  private_file out{secure_buffer(static_cast<std::size_t>(st.st_size)), static_cast<unsigned>(st.st_mode & 07777)};
  std::size_t got = 0;
  while (got < out.content.size()) {
    const ssize_t n = ::read(fd, out.content.data() + got, out.content.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int e = errno;
      ::close(fd);
      return fail(errc::io_error, "cannot read " + path.string() + ": " + errno_text(e));
    }
    got += static_cast<std::size_t>(n);
  }
  ::close(fd);
  return out;
}

expected<void> posix_file_system::create_private_directory(const std::filesystem::path& dir) {
  std::error_code ec;
  if (std::filesystem::is_directory(dir, ec)) return {};
  std::filesystem::create_directories(dir, ec);
  if (ec) return fail(errc::io_error, "cannot create " + dir.string() + ": " + ec.message() + "; check the parent's permissions");
  std::filesystem::permissions(dir, std::filesystem::perms::owner_all, std::filesystem::perm_options::replace, ec);
  if (ec) return fail(errc::io_error, "cannot set mode 0700 on " + dir.string() + ": " + ec.message());
  return {};
}

expected<void> create_kek_file(const std::filesystem::path& path) {
  std::array<unsigned char, 32> key{};
  if (RAND_priv_bytes(key.data(), static_cast<int>(key.size())) != 1)
    return fail(errc::io_error, "OpenSSL's random generator failed; check the system entropy source");
  static constexpr char hex[] = "0123456789abcdef";
  std::array<char, 65> text{};
  for (std::size_t i = 0; i < key.size(); ++i) {
    text[2 * i] = hex[key[i] >> 4];
    text[2 * i + 1] = hex[key[i] & 15];
  }
  text[64] = '\n';
  OPENSSL_cleanse(key.data(), key.size());
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) {
    const int e = errno;
    OPENSSL_cleanse(text.data(), text.size());
    return fail(errc::io_error, "cannot create " + path.string() + ": " + errno_text(e) +
                                  "; a KEK file is never overwritten — remove it first if you really mean to replace it");
  }
  const ssize_t n = ::write(fd, text.data(), text.size());
  OPENSSL_cleanse(text.data(), text.size());
  const bool ok = n == static_cast<ssize_t>(text.size()) && ::fsync(fd) == 0;
  ::close(fd);
  if (!ok) return fail(errc::io_error, "cannot write " + path.string() + "; check free space");
  return {};
}

}  // namespace cvqkd::storage
