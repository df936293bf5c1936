#pragma once
// Helpers shared by the key-store tests: a temporary directory, a KEK file, deterministic
// "tagged" key bytes, and a scan of a directory for plaintext byte strings.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "storage/env.hpp"

namespace cvqkd::test_support {

/// A fresh directory under $TMPDIR, removed with everything in it on destruction.
class temp_dir {
public:
  temp_dir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "cvqkd-storage-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = pattern;
  }
  ~temp_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;
  const std::filesystem::path& path() const { return path_; }

private:
  std::filesystem::path path_;
};

/// splitmix64 (Steele, Lea, Flood, OOPSLA 2014): a cheap deterministic stream for tagged bytes.
inline std::uint64_t splitmix(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

/// The byte at global position `g` of a test stream keyed by `seed`.
inline std::byte stream_byte(std::uint64_t seed, std::uint64_t g) {
  return static_cast<std::byte>(splitmix(seed ^ (g >> 3) * 0x100000001b3ULL) >> (8 * (g & 7)));
}

/// FNV-1a 64 over a byte range (to compare byte strings through a pipe without sending them).
inline std::uint64_t fnv64(std::span<const std::byte> b) {
  std::uint64_t h = 0xcbf29ce484222325ULL;
  for (auto x : b) h = (h ^ static_cast<std::uint8_t>(x)) * 0x100000001b3ULL;
  return h;
}

/// Every regular file under `dir`, read whole.
inline std::vector<std::pair<std::filesystem::path, std::string>> read_tree(const std::filesystem::path& dir) {
  std::vector<std::pair<std::filesystem::path, std::string>> out;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir)) {
    if (!e.is_regular_file()) continue;
    std::ifstream in(e.path(), std::ios::binary);
    out.emplace_back(e.path(), std::string(std::istreambuf_iterator<char>(in), {}));
  }
  return out;
}

/// Which of `needles` (each >= 8 bytes) occur anywhere in the files under `dir`: one pass per
/// file, indexing the needles by their first 8 bytes. Returns the indices found, with the file.
inline std::vector<std::pair<std::size_t, std::filesystem::path>> scan_for(const std::filesystem::path& dir,
                                                                          const std::vector<std::string>& needles) {
  std::unordered_multimap<std::uint64_t, std::size_t> by_prefix;
  for (std::size_t i = 0; i < needles.size(); ++i) {
    std::uint64_t k;
    std::memcpy(&k, needles[i].data(), 8);
    by_prefix.emplace(k, i);
  }
  std::vector<std::pair<std::size_t, std::filesystem::path>> found;
  for (const auto& [path, data] : read_tree(dir)) {
    for (std::size_t pos = 0; pos + 8 <= data.size(); ++pos) {
      std::uint64_t k;
      std::memcpy(&k, data.data() + pos, 8);
      auto [lo, hi] = by_prefix.equal_range(k);
      for (auto it = lo; it != hi; ++it) {
        const auto& n = needles[it->second];
        if (data.compare(pos, n.size(), n) == 0) found.emplace_back(it->second, path);
      }
    }
  }
  return found;
}

}  // namespace cvqkd::test_support
