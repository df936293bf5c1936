#pragma once
// Replay driver: feeds a recording of measured (or exported simulated) Alice/Bob data through the
// same transmitter/receiver interfaces as the simulator, so that lab data goes through the same
// post-processing chain.
//
// Recording format: a sequence of (alice, bob) pairs of float64 values.
//   raw_f64 (.f64, .bin): little-endian IEEE-754 float64, alice then bob, no header.
//   csv (.csv): a header line `alice,bob`, then one pair per line (CRLF and blank lines accepted).
// Homodyne: one pair per symbol; bob is the quadrature Bob measured (already basis-sifted) and
//   alice the matching displacement of Alice.
// Heterodyne: two consecutive pairs per symbol, the q pair then the p pair.
// Alice's values are in SNU; Bob's are in ADC units, converted as SNU = raw / sqrt(n0_raw).

#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string_view>

#include "hw/driver.hpp"

namespace cvqkd::hw {

enum class replay_format {
  auto_detect,  // from the extension: .f64/.bin -> raw_f64, .csv -> csv
  raw_f64,
  csv,
};

constexpr std::string_view to_string(replay_format f) noexcept {
  switch (f) {
    case replay_format::raw_f64: return "raw_f64";
    case replay_format::csv: return "csv";
    case replay_format::auto_detect: break;
  }
  return "auto";
}
/// Inverse of to_string: "auto", "raw_f64" or "csv".
std::optional<replay_format> parse_replay_format(std::string_view s) noexcept;

struct replay_config {
  std::filesystem::path path;
  replay_format format = replay_format::auto_detect;
  detection det = detection::heterodyne;
  double n0_raw = 1.0;  // shot-noise variance of Bob's values in the file's units (1: already SNU)
  double v_el = 0.0;    // electronic noise measured with the recording, SNU

  /// Errors: config_error for n0_raw not positive and finite, v_el negative or not finite, or a
  /// format that cannot be deduced from the extension; io_error when the file does not exist or
  /// is not a regular file.
  expected<void> validate() const;
  /// The format, deduced from the extension when `auto_detect`. Errors: config_error.
  expected<replay_format> resolved_format() const;
};

namespace detail {
class recording_reader;
}

/// Alice's side of a recording: the alice column, read frame by frame.
class replay_transmitter final : public transmitter {
public:
  ~replay_transmitter() override;
  /// The next n symbols (n >= 1) as Alice's displacements, SNU; homodyne frames have p == 0.
  /// Errors: invalid_argument for n == 0; insufficient_data when the recording holds fewer than n
  /// more symbols; parse_error for malformed data; io_error when reading fails. After an error
  /// nothing has been consumed, so a smaller request may still succeed.
  expected<alice_frame> emit(std::size_t n) override;

private:
  explicit replay_transmitter(std::unique_ptr<detail::recording_reader> reader);
  friend expected<std::unique_ptr<replay_transmitter>> open_replay_transmitter(const replay_config&);
  std::unique_ptr<detail::recording_reader> reader_;
  std::uint64_t next_symbol_ = 0;
};

/// Bob's side of a recording: the bob column, read frame by frame and converted to SNU.
class replay_receiver final : public receiver {
public:
  ~replay_receiver() override;
  detection detection_type() const noexcept override { return det_; }
  /// Returns the configured n0_raw and v_el (samples = 0): a recording carries its calibration.
  expected<shot_noise_calibration> calibrate() override;
  shot_noise_calibration calibration() const noexcept override { return calibration_; }
  /// The next n symbols (n >= 1), SNU. Homodyne: basis all 0 (the file is already sifted);
  /// heterodyne: y_q and y_p. All symbols valid, no clipping. Errors as for replay_transmitter.
  expected<bob_frame> measure(std::size_t n) override;

private:
  replay_receiver(std::unique_ptr<detail::recording_reader> reader, const replay_config& config);
  friend expected<std::unique_ptr<replay_receiver>> open_replay_receiver(const replay_config&);
  std::unique_ptr<detail::recording_reader> reader_;
  detection det_;
  shot_noise_calibration configured_;
  shot_noise_calibration calibration_{};
  std::uint64_t next_symbol_ = 0;
};

/// Opens the recording for Alice's column. Errors: those of replay_config::validate, parse_error
/// for a raw file whose size is not a whole number of symbols or a CSV file without the header,
/// io_error when the file cannot be opened.
expected<std::unique_ptr<replay_transmitter>> open_replay_transmitter(const replay_config& config);
/// Opens the recording for Bob's column; errors as for open_replay_transmitter.
expected<std::unique_ptr<replay_receiver>> open_replay_receiver(const replay_config& config);

/// Writes alice[i], bob[i] as pair i (for heterodyne the caller interleaves the q and p pairs),
/// replacing any existing file. Values are written exactly (CSV uses shortest round-trip text).
/// Errors: invalid_argument for unequal lengths or a NaN/infinite value; config_error when
/// `auto_detect` cannot deduce the format; io_error when the file cannot be written.
expected<void> write_recording(const std::filesystem::path& path, replay_format format,
                               std::span<const double> alice, std::span<const double> bob);

}  // namespace cvqkd::hw
