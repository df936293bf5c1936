// The plain libraries must stay free of CAF (../shared/reference/style.md): only actors/, node/ and
// tests/ may include it.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

namespace fs = std::filesystem;

TEST(layout, plain_libraries_do_not_include_caf) {
  const fs::path root{CVQKD_SOURCE_DIR};
  std::size_t scanned = 0;
  for (const char* dir : {"core", "config", "hw", "reconciliation", "links", "relay", "storage"}) {
    if (!fs::exists(root / dir)) continue;
    for (const auto& entry : fs::recursive_directory_iterator(root / dir)) {
      if (!entry.is_regular_file()) continue;
      const auto ext = entry.path().extension();
      if (ext != ".hpp" && ext != ".cpp" && ext != ".h" && ext != ".in") continue;
      ++scanned;
      std::ifstream in(entry.path());
      std::string line;
      for (int n = 1; std::getline(in, line); ++n)
        EXPECT_TRUE(line.find("#include <caf/") == std::string::npos && line.find("#include \"caf/") == std::string::npos)
          << entry.path() << ":" << n << " includes CAF; move this code to actors/ or node/";
    }
  }
  EXPECT_GT(scanned, 10u) << "the scan found almost no sources under " << root;
}
