#include "hw/replay.hpp"

#include <algorithm>
#include <array>
#include <bit>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>
#include <string>
#include <system_error>
#include <vector>

namespace cvqkd::hw {

namespace fs = std::filesystem;

static_assert(std::numeric_limits<double>::is_iec559, "raw recordings are IEEE-754 float64");
static_assert(std::endian::native == std::endian::little || std::endian::native == std::endian::big,
              "mixed-endian hosts would need their own float64 conversion");

namespace {

constexpr std::size_t pair_bytes = 2 * sizeof(double);
constexpr std::size_t chunk_pairs = 4096;  // 64 KiB of raw I/O per read/write call

std::size_t pairs_per_symbol(detection det) { return det == detection::heterodyne ? 2 : 1; }

std::string num(double v) {
  std::array<char, 32> buf{};
  const auto r = std::to_chars(buf.data(), buf.data() + buf.size(), v);
  return {buf.data(), r.ptr};
}

// The OS reason for the last failed stream operation. iostreams do not report errors themselves,
// but libstdc++ leaves the errno of the failed system call in place.
std::string os_reason(int e) { return e != 0 ? std::generic_category().message(e) : "unknown error"; }

double decode_f64(const char* p) {
  std::uint64_t bits;
  std::memcpy(&bits, p, sizeof bits);
  if constexpr (std::endian::native == std::endian::big) bits = std::byteswap(bits);
  return std::bit_cast<double>(bits);
}

void encode_f64(double v, char* p) {
  auto bits = std::bit_cast<std::uint64_t>(v);
  if constexpr (std::endian::native == std::endian::big) bits = std::byteswap(bits);
  std::memcpy(p, &bits, sizeof bits);
}

std::string_view trim(std::string_view s) {
  constexpr std::string_view space = " \t\r";
  const auto first = s.find_first_not_of(space);
  if (first == std::string_view::npos) return {};
  return s.substr(first, s.find_last_not_of(space) - first + 1);
}

// A decimal number as spreadsheets write it; NaN and infinities are rejected because they would
// poison every statistic downstream.
std::optional<double> parse_value(std::string_view s) {
  s = trim(s);
  if (s.starts_with('+') && !s.substr(1).starts_with('-')) s.remove_prefix(1);  // from_chars rejects '+'
  double v = 0.0;
  const auto r = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || r.ec != std::errc{} || r.ptr != s.data() + s.size() || !std::isfinite(v)) return std::nullopt;
  return v;
}

// Shortens a field quoted in an error message (the "field" may be a whole binary line).
std::string excerpt(std::string_view s) {
  constexpr std::size_t max = 40;
  return s.size() <= max ? std::string(s) : std::string(s.substr(0, max)) + "...";
}

}  // namespace

std::optional<replay_format> parse_replay_format(std::string_view s) noexcept {
  if (s == "auto") return replay_format::auto_detect;
  if (s == "raw_f64") return replay_format::raw_f64;
  if (s == "csv") return replay_format::csv;
  return std::nullopt;
}

expected<replay_format> replay_config::resolved_format() const {
  if (format != replay_format::auto_detect) return format;
  const auto ext = path.extension();
  if (ext == ".f64" || ext == ".bin") return replay_format::raw_f64;
  if (ext == ".csv") return replay_format::csv;
  return fail(errc::config_error, "cannot tell the format of recording '" + path.string() +
                                      "' from its extension; name it .f64/.bin (raw float64) or .csv, "
                                      "or set the format to raw_f64 or csv");
}

expected<void> replay_config::validate() const {
  if (!(n0_raw > 0.0) || !std::isfinite(n0_raw))
    return fail(errc::config_error, "replay n0_raw = " + num(n0_raw) +
                                        " must be positive and finite; set it to the shot-noise variance of "
                                        "Bob's values in the recording's units (1 if they are already in SNU)");
  if (!(v_el >= 0.0) || !std::isfinite(v_el))
    return fail(errc::config_error, "replay v_el = " + num(v_el) +
                                        " must be finite and >= 0; set it to the electronic noise (SNU) "
                                        "calibrated with the recording");
  if (auto f = resolved_format(); !f) return std::unexpected(f.error());
  std::error_code ec;
  const auto st = fs::status(path, ec);
  if (st.type() == fs::file_type::not_found)
    return fail(errc::io_error, "recording '" + path.string() + "' does not exist; check the replay path");
  if (ec)
    return fail(errc::io_error, "cannot access recording '" + path.string() + "': " + ec.message() +
                                    "; check the path and its permissions");
  if (!fs::is_regular_file(st))
    return fail(errc::io_error, "recording '" + path.string() + "' is not a regular file; point the replay "
                                                                 "path at a .f64/.bin or .csv file");
  return {};
}

namespace detail {

enum class column { alice, bob };

// One column of a recording, read sequentially in whole symbols. Alice's and Bob's drivers each own
// one, as their nodes would each hold their own copy of the recording.
class recording_reader {
public:
  struct symbols {
    std::vector<double> q, p;  // p stays empty for homodyne
  };

  static expected<std::unique_ptr<recording_reader>> open(const replay_config& config, column col) {
    if (auto ok = config.validate(); !ok) return std::unexpected(ok.error());
    auto r = std::unique_ptr<recording_reader>(new recording_reader(config, col));
    errno = 0;
    r->in_.open(config.path, std::ios::binary);
    if (!r->in_)
      return fail(errc::io_error, "cannot open recording '" + r->name_ + "': " + os_reason(errno) +
                                      "; check the path and its permissions");
    if (auto ok = r->format_ == replay_format::csv ? r->read_csv_header() : r->check_raw_size(); !ok)
      return std::unexpected(ok.error());
    return r;
  }

  // The next n whole symbols. On error the position is restored, so nothing is consumed and a
  // caller that got insufficient_data can still drain the rest with a smaller request.
  expected<symbols> read(std::size_t n) {
    if (n == 0) return fail(errc::invalid_argument, "a replay frame needs n >= 1 symbols; request at least one");
    // A last CSV line without '\n' leaves eofbit set, which would make tellg() fail.
    if (in_.eof()) in_.clear();
    const auto offset = in_.tellg();
    const auto line = line_;
    const auto pairs = pairs_read_;
    auto result = format_ == replay_format::csv ? read_csv(n) : read_raw(n);
    if (!result) {
      in_.clear();
      in_.seekg(offset);
      line_ = line;
      pairs_read_ = pairs;
    }
    return result;
  }

private:
  recording_reader(const replay_config& config, column col)
      : name_(config.path.string()),
        format_(*config.resolved_format()),
        col_(col),
        per_symbol_(pairs_per_symbol(config.det)),
        det_name_(to_string(config.det)) {}

  // Pair k of this read goes to q for homodyne, alternately to q and p for heterodyne.
  void put(symbols& s, std::uint64_t k, double v) const {
    (per_symbol_ == 2 && k % 2 == 1 ? s.p : s.q).push_back(v);
  }

  error not_enough(std::uint64_t left, std::size_t n) const {
    return {errc::insufficient_data, "recording '" + name_ + "' holds " + std::to_string(left) +
                                         " more symbols but " + std::to_string(n) +
                                         " were requested; request at most " + std::to_string(left) +
                                         " or replay a longer recording"};
  }

  expected<void> check_raw_size() {
    std::error_code ec;
    const auto size = fs::file_size(name_, ec);
    if (ec) return fail(errc::io_error, "cannot read the size of recording '" + name_ + "': " + ec.message());
    const auto record = pair_bytes * per_symbol_;
    if (size % record != 0)
      return fail(errc::parse_error,
                  "raw recording '" + name_ + "' holds " + std::to_string(size) + " bytes, not a multiple of the " +
                      std::to_string(record) + "-byte " + det_name_ + " symbol (" +
                      (per_symbol_ == 2 ? "a q and a p" : "one") +
                      " alice,bob float64 pair); it is truncated or not a raw float64 recording of this detection: "
                      "re-export it, check the detection setting, or name it .csv if it is text");
    total_pairs_ = size / pair_bytes;
    return {};
  }

  expected<symbols> read_raw(std::size_t n) {
    const std::uint64_t left = (total_pairs_ - pairs_read_) / per_symbol_;
    if (n > left) return std::unexpected(not_enough(left, n));
    symbols s;
    s.q.reserve(n);
    if (per_symbol_ == 2) s.p.reserve(n);
    buffer_.resize(chunk_pairs * pair_bytes);
    for (std::uint64_t done = 0, want = std::uint64_t{n} * per_symbol_; done < want;) {
      const auto count = std::min<std::uint64_t>(chunk_pairs, want - done);
      errno = 0;
      if (!in_.read(buffer_.data(), static_cast<std::streamsize>(count * pair_bytes)))
        return fail(errc::io_error, "reading recording '" + name_ + "' failed: " + os_reason(errno) +
                                        "; check that the file is readable and was not truncated while in use");
      for (std::uint64_t i = 0; i < count; ++i) {
        const char* rec = buffer_.data() + i * pair_bytes;
        const double a = decode_f64(rec), b = decode_f64(rec + sizeof(double));
        if (!std::isfinite(a) || !std::isfinite(b))
          return fail(errc::parse_error, "raw recording '" + name_ + "': pair " + std::to_string(pairs_read_ + i) +
                                             " (byte offset " + std::to_string((pairs_read_ + i) * pair_bytes) +
                                             ") holds NaN or infinity; repair or re-export the recording");
        put(s, done + i, col_ == column::alice ? a : b);
      }
      done += count;
      pairs_read_ += count;
    }
    return s;
  }

  expected<void> read_csv_header() {
    std::string line;
    std::string_view text;
    errno = 0;
    while (text.empty() && std::getline(in_, line)) {
      text = line;
      if (line_++ == 0 && text.starts_with("\xEF\xBB\xBF")) text.remove_prefix(3);  // spreadsheet BOM
      text = trim(text);
    }
    if (in_.bad()) return fail(errc::io_error, "reading recording '" + name_ + "' failed: " + os_reason(errno));
    const auto comma = text.find(',');
    if (comma == std::string_view::npos || trim(text.substr(0, comma)) != "alice" ||
        trim(text.substr(comma + 1)) != "bob")
      return fail(errc::parse_error, name_ + ":" + std::to_string(line_) + ": expected the header `alice,bob`, found " +
                                         (text.empty() ? "end of file" : "`" + excerpt(text) + "`") +
                                         "; add that header line before the data");
    return {};
  }

  expected<symbols> read_csv(std::size_t n) {
    symbols s;
    const std::uint64_t want = std::uint64_t{n} * per_symbol_;
    std::string line;
    std::uint64_t got = 0;
    while (got < want) {
      errno = 0;
      if (!std::getline(in_, line)) {
        if (in_.bad()) return fail(errc::io_error, "reading recording '" + name_ + "' failed: " + os_reason(errno));
        if (got % 2 == 1 && per_symbol_ == 2)
          return fail(errc::parse_error, name_ + ":" + std::to_string(line_) +
                                             ": the recording ends after the q pair of a heterodyne symbol; each "
                                             "symbol needs a q line then a p line: remove or complete the last one");
        return std::unexpected(not_enough(got / per_symbol_, n));
      }
      ++line_;
      const auto text = trim(line);
      if (text.empty()) continue;
      const auto where = name_ + ":" + std::to_string(line_) + ": ";
      const auto comma = text.find(',');
      if (comma == std::string_view::npos || text.find(',', comma + 1) != std::string_view::npos)
        return fail(errc::parse_error, where + "expected 2 columns (alice,bob), found " +
                                           std::to_string(std::ranges::count(text, ',') + 1) +
                                           "; fix or delete that line");
      const std::array fields{text.substr(0, comma), text.substr(comma + 1)};
      std::array<double, 2> values{};
      for (std::size_t c = 0; c < 2; ++c) {
        // Both columns are checked so that Alice's and Bob's drivers reject the same lines.
        const auto v = parse_value(fields[c]);
        if (!v)
          return fail(errc::parse_error, where + (c == 0 ? "alice" : "bob") + " value `" +
                                             excerpt(trim(fields[c])) +
                                             "` is not a finite decimal number; fix or delete that line");
        values[c] = *v;
      }
      put(s, got++, values[col_ == column::alice ? 0 : 1]);
    }
    pairs_read_ += got;
    return s;
  }

  std::string name_;
  replay_format format_;
  column col_;
  std::size_t per_symbol_;
  std::string det_name_;
  std::ifstream in_;
  std::vector<char> buffer_;      // raw I/O chunk, reused across reads
  std::uint64_t total_pairs_ = 0;  // raw only: pairs in the file
  std::uint64_t pairs_read_ = 0;
  std::uint64_t line_ = 0;  // csv only: number of the last line read
};

}  // namespace detail

replay_transmitter::replay_transmitter(std::unique_ptr<detail::recording_reader> reader) : reader_(std::move(reader)) {}
replay_transmitter::~replay_transmitter() = default;

expected<alice_frame> replay_transmitter::emit(std::size_t n) {
  auto s = reader_->read(n);
  if (!s) return std::unexpected(std::move(s.error()));
  alice_frame frame{.first_symbol = next_symbol_, .q = std::move(s->q), .p = std::move(s->p)};
  frame.p.resize(frame.q.size(), 0.0);  // homodyne recordings carry only the sifted quadrature
  next_symbol_ += n;
  return frame;
}

expected<std::unique_ptr<replay_transmitter>> open_replay_transmitter(const replay_config& config) {
  auto reader = detail::recording_reader::open(config, detail::column::alice);
  if (!reader) return std::unexpected(std::move(reader.error()));
  return std::unique_ptr<replay_transmitter>(new replay_transmitter(std::move(*reader)));
}

replay_receiver::replay_receiver(std::unique_ptr<detail::recording_reader> reader, const replay_config& config)
    : reader_(std::move(reader)), det_(config.det), configured_{.n0_raw = config.n0_raw, .v_el = config.v_el} {}
replay_receiver::~replay_receiver() = default;

expected<shot_noise_calibration> replay_receiver::calibrate() {
  calibration_ = configured_;
  return calibration_;
}

expected<bob_frame> replay_receiver::measure(std::size_t n) {
  auto s = reader_->read(n);
  if (!s) return std::unexpected(std::move(s.error()));
  // Scaling uses the configured N0 whether or not calibrate() ran: the recording was taken under it.
  const double sqrt_n0 = std::sqrt(configured_.n0_raw);
  for (auto* v : {&s->q, &s->p})
    for (double& x : *v) x /= sqrt_n0;
  const std::size_t sifted = det_ == detection::homodyne ? n : 0;  // homodyne files are already sifted to q
  bob_frame frame{.first_symbol = next_symbol_,
                  .det = det_,
                  .y_q = std::move(s->q),
                  .y_p = std::move(s->p),
                  .basis = std::vector<std::uint8_t>(sifted, 0),
                  .valid = std::vector<std::uint8_t>(n, 1)};
  next_symbol_ += n;
  return frame;
}

expected<std::unique_ptr<replay_receiver>> open_replay_receiver(const replay_config& config) {
  auto reader = detail::recording_reader::open(config, detail::column::bob);
  if (!reader) return std::unexpected(std::move(reader.error()));
  return std::unique_ptr<replay_receiver>(new replay_receiver(std::move(*reader), config));
}

expected<void> write_recording(const fs::path& path, replay_format format, std::span<const double> alice,
                               std::span<const double> bob) {
  if (alice.size() != bob.size())
    return fail(errc::invalid_argument, "write_recording needs as many alice values as bob values, got " +
                                            std::to_string(alice.size()) + " and " + std::to_string(bob.size()));
  for (std::size_t i = 0; i < alice.size(); ++i)
    if (!std::isfinite(alice[i]) || !std::isfinite(bob[i]))
      return fail(errc::invalid_argument, "pair " + std::to_string(i) + " (" + num(alice[i]) + ", " + num(bob[i]) +
                                              ") is not finite, and a recording holds finite values only; "
                                              "drop or repair that symbol before exporting");
  const auto resolved = replay_config{.path = path, .format = format}.resolved_format();
  if (!resolved) return std::unexpected(resolved.error());

  errno = 0;  // also read after the writes below
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out)
    return fail(errc::io_error, "cannot create recording '" + path.string() + "': " + os_reason(errno) +
                                    "; check that the directory exists and is writable");
  std::string buf;
  const auto flush = [&] {
    out.write(buf.data(), static_cast<std::streamsize>(buf.size()));
    buf.clear();
  };
  if (*resolved == replay_format::csv) buf = "alice,bob\n";
  for (std::size_t i = 0; i < alice.size() && out; ++i) {
    if (*resolved == replay_format::raw_f64) {
      std::array<char, pair_bytes> rec;
      encode_f64(alice[i], rec.data());
      encode_f64(bob[i], rec.data() + sizeof(double));
      buf.append(rec.data(), rec.size());
    } else {
      buf += num(alice[i]);  // shortest text that parses back to the same double
      buf += ',';
      buf += num(bob[i]);
      buf += '\n';
    }
    if (buf.size() >= chunk_pairs * pair_bytes) flush();
  }
  flush();
  out.close();
  if (!out)
    return fail(errc::io_error, "writing recording '" + path.string() + "' failed: " + os_reason(errno) +
                                    "; the file is incomplete: free disk space or choose another path and retry");
  return {};
}

}  // namespace cvqkd::hw
