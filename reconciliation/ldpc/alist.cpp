#include "reconciliation/ldpc/alist.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <fstream>
#include <istream>
#include <ostream>
#include <sstream>

namespace cvqkd::reconciliation::ldpc {

void write_alist(std::ostream& out, const sparse_matrix& h) {
  std::uint32_t max_c = 0, max_r = 0;
  for (std::uint32_t c = 0; c < h.cols(); ++c) max_c = std::max<std::uint32_t>(max_c, h.col(c).size());
  for (std::uint32_t r = 0; r < h.rows(); ++r) max_r = std::max<std::uint32_t>(max_r, h.row(r).size());
  std::string buf;
  buf += fmt::format("{} {}\n{} {}\n", h.cols(), h.rows(), max_c, max_r);
  for (std::uint32_t c = 0; c < h.cols(); ++c) buf += fmt::format("{}{}", c ? " " : "", h.col(c).size());
  buf += '\n';
  for (std::uint32_t r = 0; r < h.rows(); ++r) buf += fmt::format("{}{}", r ? " " : "", h.row(r).size());
  buf += '\n';
  out << buf;
  buf.clear();
  auto put_list = [&](std::span<const std::uint32_t> v) {
    for (std::size_t i = 0; i < v.size(); ++i) buf += fmt::format("{}{}", i ? " " : "", v[i] + 1);
    buf += '\n';
    if (buf.size() > (1u << 16)) {
      out << buf;
      buf.clear();
    }
  };
  for (std::uint32_t c = 0; c < h.cols(); ++c) put_list(h.col(c));
  for (std::uint32_t r = 0; r < h.rows(); ++r) put_list(h.row(r));
  out << buf;
}

expected<sparse_matrix> read_alist(std::istream& in) {
  auto bad = [](std::string what) {
    return fail(errc::parse_error, "AList: " + what + "; check that the file is an AList parity-check matrix");
  };
  std::uint64_t n = 0, m = 0, max_c = 0, max_r = 0;
  if (!(in >> n >> m >> max_c >> max_r)) return bad("cannot read the header 'n m' / 'max_col max_row'");
  if (n == 0 || m == 0 || n > (1ull << 31) || m > (1ull << 31)) return bad(fmt::format("implausible size {} x {}", m, n));
  std::vector<std::uint32_t> col_deg(n), row_deg(m);
  for (auto& d : col_deg)
    if (!(in >> d) || d > max_c) return bad("column degree missing or above the stated maximum");
  for (auto& d : row_deg)
    if (!(in >> d) || d > max_r) return bad("row degree missing or above the stated maximum");
  std::vector<std::pair<std::uint32_t, std::uint32_t>> from_cols, from_rows;
  // Each list is read up to its line end, so that zero padding (a list of max degree with zeros) is skipped.
  std::string line;
  std::getline(in, line);  // rest of the row-degree line
  auto read_lists = [&](std::uint64_t count, const std::vector<std::uint32_t>& deg, std::uint64_t limit, bool cols,
                        std::vector<std::pair<std::uint32_t, std::uint32_t>>& out) -> expected<void> {
    for (std::uint64_t i = 0; i < count; ++i) {
      do {
        if (!std::getline(in, line)) return bad(fmt::format("{} list {} is missing", cols ? "column" : "row", i + 1));
      } while (line.find_first_not_of(" \t\r") == std::string::npos);
      std::istringstream ls(line);
      std::uint64_t v = 0;
      std::uint32_t got = 0;
      while (ls >> v) {
        if (v == 0) continue;  // zero padding
        if (v > limit) return bad(fmt::format("index {} in {} list {} exceeds {}", v, cols ? "column" : "row", i + 1, limit));
        const auto a = static_cast<std::uint32_t>(i), b = static_cast<std::uint32_t>(v - 1);
        out.emplace_back(cols ? b : a, cols ? a : b);
        ++got;
      }
      if (got != deg[i])
        return bad(fmt::format("{} list {} has {} entries but its degree is {}", cols ? "column" : "row", i + 1, got, deg[i]));
    }
    return {};
  };
  if (auto ok = read_lists(n, col_deg, m, true, from_cols); !ok) return std::unexpected(ok.error());
  if (auto ok = read_lists(m, row_deg, n, false, from_rows); !ok) return std::unexpected(ok.error());
  std::sort(from_cols.begin(), from_cols.end());
  std::sort(from_rows.begin(), from_rows.end());
  if (from_cols != from_rows) return bad("the column lists and the row lists describe different matrices");
  auto h = sparse_matrix::from_entries(static_cast<std::uint32_t>(m), static_cast<std::uint32_t>(n), std::move(from_rows));
  if (!h) return bad(h.error().message);
  return h;
}

expected<void> write_alist_file(const std::string& path, const sparse_matrix& h) {
  std::ofstream f(path);
  if (!f) return fail(errc::io_error, fmt::format("cannot open '{}' for writing; check the directory and permissions", path));
  write_alist(f, h);
  f.flush();
  if (!f) return fail(errc::io_error, fmt::format("writing '{}' failed; check free disk space", path));
  return {};
}

expected<sparse_matrix> read_alist_file(const std::string& path) {
  std::ifstream f(path);
  if (!f) return fail(errc::io_error, fmt::format("cannot open '{}'; check the path", path));
  return read_alist(f);
}

}  // namespace cvqkd::reconciliation::ldpc
