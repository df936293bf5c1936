#include "links/protocol.hpp"

#include <fmt/format.h>
#include <openssl/crypto.h>

#include <algorithm>
#include <bit>
#include <chrono>
#include <cmath>
#include <cstring>

#include "reconciliation/estimation/estimator.hpp"
#include "reconciliation/ldpc/codes.hpp"
#include "reconciliation/ldpc/decoder.hpp"
#include "reconciliation/ldpc/operating_point.hpp"
#include "reconciliation/mdr/mdr.hpp"
#include "reconciliation/privacy/output_length.hpp"
#include "reconciliation/privacy/toeplitz.hpp"
#include "reconciliation/verification/hash.hpp"
#include "links/codec.hpp"

namespace cvqkd::links {
namespace {

namespace ldpc = reconciliation::ldpc;
namespace mdr = reconciliation::mdr;
namespace privacy = reconciliation::privacy;
namespace verification = reconciliation::verification;
using clock = std::chrono::steady_clock;
using codec::reader;
using codec::writer;

constexpr unsigned mdr_dimension = 8;

// Reconciled bits, packed, in zeroizing storage that grows by doubling.
class bit_accumulator {
public:
  void append(std::span<const std::uint8_t> bits) {
    reserve(size_ + bits.size());
    auto* w = reinterpret_cast<std::uint64_t*>(store_.data());
    for (std::uint8_t b : bits) {
      if (b & 1u) w[size_ / 64] |= std::uint64_t{1} << (size_ % 64);
      ++size_;
    }
  }
  std::size_t size() const noexcept { return size_; }
  privacy::bit_vector to_bit_vector() const {
    privacy::bit_vector v(size_);
    if (size_ > 0) std::memcpy(v.words().data(), store_.data(), v.word_count() * 8);
    return v;
  }

private:
  void reserve(std::size_t bits) {
    const std::size_t words = (bits + 63) / 64;
    if (words * 8 <= store_.size()) return;
    secure_buffer next(std::max<std::size_t>(words * 8, 2 * store_.size()));
    if (!store_.empty()) std::memcpy(next.data(), store_.data(), store_.size());
    store_ = std::move(next);
  }
  secure_buffer store_;
  std::size_t size_ = 0;
};

// Checkpoint c of an end uses pad 2c (Alice) or 2c + 1 (Bob).
std::uint64_t pad_index(role from, std::uint64_t checkpoint) { return 2 * checkpoint + (from == role::bob ? 1 : 0); }

// Messages that carry a tag over the sender's whole transcript: each is sent only after every
// message whose contents the key depends on, so the key is never computed from unverified data.
bool is_checkpoint(msg_type t) {
  return t == msg_type::pa_params || t == msg_type::pa_seed || t == msg_type::confirm ||
         t == msg_type::confirm_ack || t == msg_type::abort;
}

}  // namespace

std::vector<std::byte> envelope::signed_bytes() const {
  writer w;
  w.u8(static_cast<std::uint8_t>(from));
  w.u64(round);
  w.u64(seq);
  w.u8(static_cast<std::uint8_t>(type));
  w.bytes(body);
  return w.take();
}

struct link_end::impl {
  role me;
  round_parameters params;
  auth_key_stream& keys;
  transport& out;
  key_sink& sink;
  random_source& rng;
  std::optional<authenticator> auth;
  round_report rep;

  // Reliable, in-order delivery per direction.
  std::uint64_t next_seq = 0, next_expected = 0, peer_ack = 0;
  gf128 sent_hash, received_hash;  // transcript hashes, in sequence order
  std::uint64_t sent_checkpoints = 0, received_checkpoints = 0;
  std::vector<envelope> sent;
  std::map<std::uint64_t, envelope> held;

  // Estimation (Alice) and sifting (both).
  estimation::pe_selector selector;
  estimation::pe_accumulator pe;
  double v_el_bob = 0.0;
  std::uint64_t clipped = 0, samples_seen = 0;
  std::uint64_t symbols_seen = 0, symbols_lost = 0;  // Alice: from Bob's sift messages (valid flags)
  std::uint64_t sift_frames = 0;
  std::map<std::uint64_t, hw::alice_frame> alice_frames;  // Alice: awaiting Bob's sift

  // Reconciliation.
  std::optional<ldpc::rate_choice> choice;
  std::optional<ldpc::qc_matrix> h;
  std::optional<ldpc::sparse_matrix> hs;  // Bob: syndromes
  std::optional<ldpc::decoder> dec;       // Alice: decoding
  std::vector<double> dims;               // key dimensions not yet in a code frame (Alice x, Bob y)
  std::size_t dims_head = 0;
  std::uint64_t recon_sent = 0, verdicts = 0, frames_announced = 0;
  bool block_ended = false;
  struct pending_frame {
    std::vector<std::uint8_t> bits;
    gf128 verify_key;
  };
  std::map<std::uint64_t, pending_frame> pending;
  bit_accumulator reconciled;

  // Privacy amplification.
  std::uint64_t n_out = 0;
  std::optional<privacy::bit_vector> key;
  gf128 confirm_key, confirm_tag;

  impl(role r, const round_parameters& p, auth_key_stream& k, transport& t, key_sink& s, random_source& g)
    : me(r), params(p), keys(k), out(t), sink(s), rng(g), selector(p.n_symbols, p.n_pe, p.public_seed) {}

  // Authentication key of a completed round: the hash key and four tags (Alice's pa_params and
  // confirm_ack, Bob's pa_seed and confirm).
  static constexpr std::uint64_t round_auth_bytes = hash_key_bytes + 4 * tag_bytes;

  std::size_t dims_per_symbol() const { return params.profile.detection == detection::homodyne ? 1 : 2; }
  bool running() const { return rep.status == round_report::state::running; }

  void send(msg_type type, std::vector<std::byte> body) {
    if (auto ok = post(type, std::move(body)); !ok) fail_round(ok.error().message, false);
  }

  expected<void> post(msg_type type, std::vector<std::byte> body) {
    envelope e{.from = me, .round = params.round, .seq = next_seq++, .ack = next_expected, .type = type,
               .body = std::move(body), .tag = {}};
    sent_hash = poly_hash_update(auth->hash_key(), sent_hash, e.signed_bytes());
    if (is_checkpoint(type)) {
      auto t = auth->tag(sent_hash, pad_index(me, sent_checkpoints++));
      if (!t) return std::unexpected(t.error());
      e.tag = *t;
    }
    sent.push_back(e);
    out.send(e);
    return {};
  }

  void fail_round(const std::string& reason, bool tell_peer) {
    if (!running()) return;
    rep.status = round_report::state::aborted;
    rep.abort_reason = reason;
    // Discard every piece of this round's material; consumed authentication key stays consumed.
    dims.clear();
    pending.clear();
    reconciled = bit_accumulator{};
    key.reset();
    alice_frames.clear();
    if (tell_peer && auth) {
      writer w;
      w.text(reason);
      (void)post(msg_type::abort, w.take());  // best effort: the peer times out otherwise
    }
  }

  void receive(const envelope& e) {
    if (e.round != params.round || e.from == me) return;
    if (e.ack > peer_ack) {
      peer_ack = e.ack;
      std::erase_if(sent, [&](const envelope& s) { return s.seq < peer_ack; });
    }
    if (e.seq < next_expected || held.contains(e.seq)) return;  // duplicate
    held.emplace(e.seq, e);
    while (!held.empty() && held.begin()->first == next_expected) {
      envelope m = std::move(held.begin()->second);
      held.erase(held.begin());
      ++next_expected;
      received_hash = poly_hash_update(auth->hash_key(), received_hash, m.signed_bytes());
      if (!running() && m.type != msg_type::abort) continue;
      if (is_checkpoint(m.type)) {
        if (auto ok = auth->verify(received_hash, pad_index(m.from, received_checkpoints++), m.tag); !ok) {
          fail_round(ok.error().message, m.type != msg_type::abort);
          return;
        }
      }
      if (auto ok = dispatch(m); !ok) fail_round(ok.error().message, m.type != msg_type::abort);
    }
  }

  expected<void> malformed(msg_type t) {
    return fail(errc::parse_error, fmt::format("malformed message of type {} from the peer: the round is aborted; "
                                               "check that both ends run the same cvqkd version",
                                               static_cast<int>(t)));
  }

  expected<void> dispatch(const envelope& m) {
    reader r(m.body);
    switch (m.type) {
      case msg_type::abort: {
        const auto reason = r.text();
        if (running()) {
          rep.status = round_report::state::aborted;
          rep.abort_reason = "peer aborted: " + reason;
        }
        return {};
      }
      case msg_type::sift: return me == role::alice ? alice_on_sift(r) : unexpected_type(m.type);
      case msg_type::rate: return me == role::bob ? bob_on_rate(r) : unexpected_type(m.type);
      case msg_type::recon: return me == role::alice ? alice_on_recon(r) : unexpected_type(m.type);
      case msg_type::verify: return me == role::bob ? bob_on_verify(r) : unexpected_type(m.type);
      case msg_type::verdict: return me == role::alice ? alice_on_verdict(r) : unexpected_type(m.type);
      case msg_type::block_end: return me == role::alice ? alice_on_block_end(r) : unexpected_type(m.type);
      case msg_type::pa_params: return me == role::bob ? bob_on_pa_params(r) : unexpected_type(m.type);
      case msg_type::pa_seed: return me == role::alice ? alice_on_pa_seed(r) : unexpected_type(m.type);
      case msg_type::confirm: return me == role::alice ? alice_on_confirm(r) : unexpected_type(m.type);
      case msg_type::confirm_ack: return me == role::bob ? bob_on_confirm_ack(r) : unexpected_type(m.type);
    }
    return unexpected_type(m.type);
  }

  expected<void> unexpected_type(msg_type t) {
    return fail(errc::parse_error, fmt::format("unexpected message type {} for this role: the round is aborted",
                                               static_cast<int>(t)));
  }

  // ---- code set-up (both ends, from the rate message's contents) ----
  expected<void> set_code(const std::string& family, std::uint64_t extension_checks, double snr) {
    auto fam = ldpc::find_family(family);
    if (!fam) return std::unexpected(fam.error());
    ldpc::rate_choice c;
    c.family = *fam;
    c.lifting = params.short_codes ? (*fam)->lifting_short : (*fam)->lifting_long;
    c.extension_checks = extension_checks;
    auto m = ldpc::build(c);
    if (!m) return std::unexpected(m.error());
    c.rate = m->rate();
    c.beta = c.rate / ldpc::capacity(snr);
    if (m->cols() % mdr_dimension != 0)
      return fail(errc::invalid_argument, "the chosen code's length is not a multiple of the MDR dimension");
    choice = c;
    h = std::move(*m);
    rep.code_rate = c.rate;
    rep.code_length = h->cols();
    rep.snr_estimate = snr;
    if (me == role::bob) {
      hs = h->expand();
    } else {
      ldpc::decoder_options o;
      o.max_iterations = params.max_iterations;
      o.cancel = params.cancel;
      auto d = ldpc::decoder::create(*h, o);
      if (!d) return std::unexpected(d.error());
      dec.emplace(std::move(*d));
    }
    return {};
  }

  // ---- Bob ----
  expected<void> bob_frame(const hw::bob_frame& f, const hw::shot_noise_calibration& cal) {
    if (!running()) return {};
    const bool hom = f.det == detection::homodyne;
    v_el_bob = cal.v_el;
    writer w;
    w.u64(sift_frames++);
    w.u64(f.first_symbol);
    w.f64(cal.v_el);
    w.u64(f.clipped_samples);
    w.bits(f.valid);
    if (hom) w.bits(f.basis);
    std::vector<double> disclosed;
    for (std::size_t i = 0; i < f.size(); ++i) {
      const bool pe_symbol = selector.next();
      if (!f.valid[i]) continue;
      if (pe_symbol) {
        disclosed.push_back(f.y_q[i]);
        if (!hom) disclosed.push_back(f.y_p[i]);
      } else {
        dims.push_back(f.y_q[i]);
        if (!hom) dims.push_back(f.y_p[i]);
      }
    }
    w.f64s(disclosed);
    send(msg_type::sift, w.take());
    return bob_send_recon();
  }

  expected<void> bob_send_recon() {
    if (!h || !running()) return {};
    const std::size_t n = h->cols();
    while (dims.size() - dims_head >= n) {
      std::vector<std::uint8_t> bits(n);
      std::vector<std::byte> raw((n + 7) / 8);
      rng.fill(raw);
      for (std::size_t i = 0; i < n; ++i) bits[i] = (std::to_integer<unsigned>(raw[i / 8]) >> (i % 8)) & 1u;
      OPENSSL_cleanse(raw.data(), raw.size());
      std::vector<std::uint8_t> syndrome(hs->rows());
      hs->syndrome(bits, syndrome);
      auto msg = mdr::bob_map(std::span(dims).subspan(dims_head, n), bits, mdr_dimension);
      if (!msg) return std::unexpected(msg.error());
      dims_head += n;
      const gf128 vkey = verification::draw_key(rng);
      writer w;
      w.u64(recon_sent);
      w.g128(vkey);
      w.f32s(msg->norms);
      w.f32s(msg->mapping);
      w.bits(syndrome);
      pending.emplace(recon_sent, pending_frame{std::move(bits), vkey});
      ++recon_sent;
      send(msg_type::recon, w.take());
    }
    compact_dims();
    return {};
  }

  // Keeps the dimension buffer bounded by about one code frame: drops what is already in frames.
  void compact_dims() {
    if (dims_head <= (1u << 20)) return;
    dims.erase(dims.begin(), dims.begin() + static_cast<std::ptrdiff_t>(dims_head));
    dims_head = 0;
  }

  expected<void> bob_on_rate(reader& r) {
    const double snr = r.f64();
    const std::string family = r.text();
    const std::uint64_t ext = r.u64();
    if (!r.ok()) return malformed(msg_type::rate);
    if (auto ok = set_code(family, ext, snr); !ok) return ok;
    return bob_send_recon();
  }

  expected<void> bob_end_of_block() {
    if (!running()) return {};
    block_ended = true;
    dims.clear();  // a partial code frame is not reconciled: its symbols give no key
    dims_head = 0;
    writer w;
    w.u64(recon_sent);
    send(msg_type::block_end, w.take());
    return {};
  }

  expected<void> bob_on_verify(reader& r) {
    const std::uint64_t frame = r.u64();
    const bool decoded = r.u8() != 0;
    const gf128 tag = r.g128();
    if (!r.ok()) return malformed(msg_type::verify);
    auto it = pending.find(frame);
    if (it == pending.end()) return fail(errc::parse_error, fmt::format("verify for unknown frame {}", frame));
    const bool keep = decoded && verification::tag(it->second.verify_key, it->second.bits) == tag;
    if (keep) reconciled.append(it->second.bits);
    else ++rep.frames_failed;
    ++rep.frames;
    OPENSSL_cleanse(it->second.bits.data(), it->second.bits.size());
    pending.erase(it);
    writer w;
    w.u64(frame);
    w.u8(keep ? 1 : 0);
    send(msg_type::verdict, w.take());
    return {};
  }

  // Detection, model, V_A, eta and Bob's calibrated v_el: what the finite-size bound takes besides the estimates.
  security::channel_parameters bound_parameters() const {
    security::channel_parameters p;
    p.det = params.profile.detection;
    p.model = params.model;
    p.v_a = params.profile.v_a;
    p.eta = params.profile.eta;
    p.v_el = v_el_bob;
    return p;
  }

  // Both ends derive n_out from the same inputs; Bob recomputes Alice's figure as a cross-check.
  expected<std::uint64_t> key_length(const security::pe_statistics& s, std::uint64_t frames, std::uint64_t failed,
                                     std::uint64_t auth_bits) {
    if (!choice || frames == 0) return fail(errc::no_secret_key, "no code frame was reconciled in this block");
    const auto p = bound_parameters();
    const std::uint64_t key_symbols = frames * h->cols() / dims_per_symbol();
    const double snr_final = s.t_hat * s.t_hat * params.profile.v_a / s.sigma2_hat;
    rep.beta = choice->rate / ldpc::capacity(snr_final);
    rep.fer = static_cast<double>(failed) / static_cast<double>(frames);
    if (failed == frames) {
      // Say first when the channel itself rules key out (an eavesdropper, a fault): no code could help then.
      auto ideal = security::key_rate_finite(security::finite_size_model::lgg2010, p, s, params.n_pe + key_symbols,
                                             params.n_pe, rep.beta, 0.0, params.eps);
      if (ideal && ideal->key_rate <= 0.0)
        return fail(errc::no_secret_key,
                    fmt::format("no key even had every frame decoded: beta I_AB = {:.4f} < chi_BE(T_min, xi_max) + "
                                "Delta(n) = {:.4f} + {:.4f} (xi_hat = {:.3g}, xi_max = {:.3g} SNU); inspect the fibre "
                                "for faults or an eavesdropper (all {} reconciliation frames also failed)",
                                rep.beta * ideal->i_ab, ideal->chi_be_worst, ideal->delta_n, ideal->bounds.xi_hat,
                                ideal->bounds.xi_max, frames));
      return fail(errc::no_secret_key,
                  fmt::format("every reconciliation frame failed ({} of {}): the code rate {:.4f} is too high for the "
                              "channel's SNR; lower the reconciliation efficiency target (beta) or improve the code",
                              failed, frames, choice->rate));
    }
    auto bound = security::key_rate_finite(security::finite_size_model::lgg2010, p, s, params.n_pe + key_symbols,
                                           params.n_pe, rep.beta, rep.fer, params.eps);
    if (!bound) return std::unexpected(bound.error());
    rep.bound = *bound;
    privacy::output_length_inputs in;
    in.key_symbols = key_symbols;
    in.beta = rep.beta;
    in.fer = rep.fer;
    in.bound = *bound;
    in.verification_bits = verification::tag_bits * frames;
    in.auth_bits = auth_bits;
    rep.verification_bits = in.verification_bits;
    auto n = privacy::secret_key_length(in);
    if (!n) return std::unexpected(n.error());
    return std::min<std::uint64_t>(*n, reconciled.size()) / 8 * 8;  // whole bytes
  }

  expected<void> bob_on_pa_params(reader& r) {
    const bool go = r.u8() != 0;
    if (!go) {
      const std::string reason = r.text();
      if (!r.ok()) return malformed(msg_type::pa_params);
      rep.status = round_report::state::aborted;
      rep.abort_reason = reason;
      return {};
    }
    security::pe_statistics s;
    s.t_hat = r.f64();
    s.sigma2_hat = r.f64();
    s.v_a = r.f64();
    s.samples = r.u64();
    const std::uint64_t frames = r.u64(), failed = r.u64(), auth_bits = r.u64(), alice_n_out = r.u64();
    if (!r.ok()) return malformed(msg_type::pa_params);
    if (frames != rep.frames || failed != rep.frames_failed)
      return fail(errc::parse_error, fmt::format("the ends disagree on the block ({} frames, {} failed at Alice; "
                                                 "{} and {} at Bob): round aborted",
                                                 frames, failed, rep.frames, rep.frames_failed));
    rep.pe_samples = s.samples;
    auto n = key_length(s, frames, failed, auth_bits);
    if (!n) return std::unexpected(n.error());
    if (*n != alice_n_out)
      return fail(errc::parse_error, fmt::format("key length mismatch (Alice {}, Bob {}): round aborted", alice_n_out, *n));
    n_out = *n;
    rep.n_out = n_out;
    rep.reconciled_bits = reconciled.size();
    // Toeplitz seed: n_in + n_out - 1 bits, fresh from Bob's randomness, public once sent.
    const std::size_t n_in = reconciled.size();
    privacy::bit_vector seed(n_in + n_out - 1);
    rng.fill(std::as_writable_bytes(seed.words()));
    seed.clear_padding();
    writer w;
    w.u64(seed.size());
    w.bytes(std::as_bytes(seed.words()));
    send(msg_type::pa_seed, w.take());
    if (auto ok = amplify(seed); !ok) return ok;
    confirm_key = verification::draw_key(rng);
    writer c;
    c.g128(confirm_key);
    c.g128(poly_hash(confirm_key, std::as_bytes(key->words())));
    send(msg_type::confirm, c.take());
    return {};
  }

  expected<void> bob_on_confirm_ack(reader& r) {
    const bool ok = r.u8() != 0;
    if (!r.ok()) return malformed(msg_type::confirm_ack);
    if (!ok) return fail(errc::no_secret_key, "key confirmation failed: the two ends' keys differ; block discarded");
    return finish();
  }

  // ---- Alice ----
  expected<void> alice_frame(const hw::alice_frame& f) {
    if (!running()) return {};
    alice_frames.emplace(f.first_symbol, f);
    return {};
  }

  expected<void> alice_on_sift(reader& r) {
    r.u64();  // frame counter (informational)
    const std::uint64_t first = r.u64();
    v_el_bob = r.f64();
    clipped += r.u64();
    const auto valid = r.bits();
    const bool hom = params.profile.detection == detection::homodyne;
    const auto basis = hom ? r.bits() : std::vector<std::uint8_t>{};
    const auto disclosed = r.f64s();
    if (!r.ok()) return malformed(msg_type::sift);
    auto it = alice_frames.find(first);
    if (it == alice_frames.end())
      return fail(errc::parse_error, fmt::format("Bob sifted symbols from {} that Alice never sent", first));
    const auto& a = it->second;
    if (valid.size() != a.size() || (hom && basis.size() != a.size()))
      return fail(errc::parse_error, "sifting message does not match the frame's length");
    std::size_t k = 0;
    for (std::size_t i = 0; i < a.size(); ++i) {
      const bool pe_symbol = selector.next();
      if (!valid[i]) continue;
      if (pe_symbol) {
        if (k + (hom ? 1 : 2) > disclosed.size()) return fail(errc::parse_error, "too few disclosed values");
        if (hom) {
          pe.add(basis[i] ? a.p[i] : a.q[i], disclosed[k++]);
        } else {
          pe.add(a.q[i], disclosed[k++]);
          pe.add(a.p[i], disclosed[k++]);
        }
      } else if (hom) {
        dims.push_back(basis[i] ? a.p[i] : a.q[i]);
      } else {
        dims.push_back(a.q[i]);
        dims.push_back(a.p[i]);
      }
    }
    samples_seen += a.size() * (hom ? 1 : 2);
    symbols_seen += a.size();
    symbols_lost += static_cast<std::uint64_t>(std::count(valid.begin(), valid.end(), std::uint8_t{0}));
    alice_frames.erase(it);
    if (!choice) {
      // A saturated receiver is not in shot-noise units: say so now, not after a rate choice on nonsense
      // estimates (a 10x optical power gives T_hat ~7, whose "rate" no code offers).
      if (const double clipped_fraction = samples_seen ? double(clipped) / double(samples_seen) : 0.0;
          clipped_fraction > 1e-4)
        return fail(errc::no_secret_key,
                    fmt::format("detector saturation: {:.2e} of the first frame's ADC samples clipped; no key from this "
                                "block: restore the optical attenuation at Bob's input",
                                clipped_fraction));
      const auto s = pe.statistics(params.profile.v_a);
      if (s.samples < 1000 || !(s.sigma2_hat > 0) || !(s.t_hat > 0))
        return fail(errc::no_secret_key, "too few disclosed samples in the first frame to choose a code rate: use "
                                         "larger frames or disclose more symbols");
      const double snr = s.t_hat * s.t_hat * params.profile.v_a / s.sigma2_hat;
      // The long codes' measured FER lets Alice ask the beta that maximises the expected key; the short
      // (CI) members have no table and take the target as it is.
      rep.beta_target = params.beta_target;
      rep.beta_asked = params.beta_target;
      if (!params.short_codes) {
        auto op = ldpc::choose_operating_point(snr, params.beta_target, bound_parameters(), s, params.n_symbols,
                                               params.n_pe, params.n_pe * dims_per_symbol(), params.eps);
        if (!op) return std::unexpected(op.error());
        rep.beta_asked = op->beta;
      }
      auto c = ldpc::select_rate(snr, rep.beta_asked, params.short_codes);
      if (!c) return std::unexpected(c.error());
      if (auto ok = set_code(std::string(c->family->name), c->extension_checks, snr); !ok) return ok;
      writer w;
      w.f64(snr);
      w.text(c->family->name);
      w.u64(c->extension_checks);
      send(msg_type::rate, w.take());
    }
    return {};
  }

  expected<void> alice_on_recon(reader& r) {
    const std::uint64_t frame = r.u64();
    const gf128 vkey = r.g128();
    mdr::mapping_message msg;
    msg.dimension = mdr_dimension;
    msg.norms = r.f32s();
    msg.mapping = r.f32s();
    const auto syndrome = r.bits();
    if (!r.ok() || !h) return malformed(msg_type::recon);
    const std::size_t n = h->cols();
    if (msg.mapping.size() != n || syndrome.size() != h->rows() || dims.size() - dims_head < n)
      return fail(errc::parse_error, "reconciliation frame does not match the code or the sifted data");
    // y = t x + z: decode against t_hat x with noise variance sigma_hat^2 (current estimates).
    const auto s = pe.statistics(params.profile.v_a);
    std::vector<double> x(dims.begin() + static_cast<std::ptrdiff_t>(dims_head),
                          dims.begin() + static_cast<std::ptrdiff_t>(dims_head + n));
    dims_head += n;
    for (double& v : x) v *= s.t_hat;
    std::vector<float> llr(n);
    if (auto ok = mdr::alice_llr(x, msg, s.sigma2_hat, llr); !ok) return ok;
    std::vector<std::uint8_t> bits(n);
    const auto t0 = clock::now();
    const auto res = dec->decode(llr, syndrome, bits);
    rep.seconds_decoding += std::chrono::duration<double>(clock::now() - t0).count();
    if (res.cancelled) {
      OPENSSL_cleanse(bits.data(), bits.size());
      return fail(errc::cancelled, "this node is stopping: the round is aborted and a new one starts when it is back");
    }
    writer w;
    w.u64(frame);
    w.u8(res.success ? 1 : 0);
    w.g128(verification::tag(vkey, bits));
    pending.emplace(frame, pending_frame{std::move(bits), vkey});
    send(msg_type::verify, w.take());
    compact_dims();
    return {};
  }

  expected<void> alice_on_verdict(reader& r) {
    const std::uint64_t frame = r.u64();
    const bool keep = r.u8() != 0;
    if (!r.ok()) return malformed(msg_type::verdict);
    auto it = pending.find(frame);
    if (it == pending.end()) return fail(errc::parse_error, fmt::format("verdict for unknown frame {}", frame));
    if (keep) reconciled.append(it->second.bits);
    else ++rep.frames_failed;
    ++rep.frames;
    OPENSSL_cleanse(it->second.bits.data(), it->second.bits.size());
    pending.erase(it);
    ++verdicts;
    return alice_maybe_finish_block();
  }

  expected<void> alice_on_block_end(reader& r) {
    frames_announced = r.u64();
    if (!r.ok()) return malformed(msg_type::block_end);
    block_ended = true;
    return alice_maybe_finish_block();
  }

  expected<void> alice_maybe_finish_block() {
    if (!block_ended || verdicts < frames_announced) return {};
    const auto s = pe.statistics(params.profile.v_a);
    rep.pe_samples = s.samples;
    rep.reconciled_bits = reconciled.size();
    const auto go_no = [&](const std::string& reason) {
      writer w;
      w.u8(0);
      w.text(reason);
      send(msg_type::pa_params, w.take());
      rep.status = round_report::state::aborted;
      rep.abort_reason = reason;
      return expected<void>{};
    };
    // Alarms that veto the block (links/simulation.hpp): a saturated receiver is not in SNU.
    const double clipped_fraction = samples_seen ? static_cast<double>(clipped) / static_cast<double>(samples_seen) : 0;
    if (clipped_fraction > 1e-4)
      return go_no(fmt::format("detector saturation: {:.2e} of the ADC samples clipped; no key from this block",
                               clipped_fraction));
    const double lost_fraction =
      symbols_seen ? static_cast<double>(symbols_lost) / static_cast<double>(symbols_seen) : 0.0;
    if (lost_fraction > max_lost_fraction)
      return go_no(fmt::format("sample loss: the digitizer lost {} of {} symbols ({:.2e}, above {:.0e}); no key from "
                               "this block: roll the receiver firmware back and re-test the digitizer",
                               symbols_lost, symbols_seen, lost_fraction, max_lost_fraction));
    const std::uint64_t auth_bits = 8 * round_auth_bytes;
    auto n = key_length(s, rep.frames, rep.frames_failed, auth_bits);
    if (!n) return go_no(n.error().message);
    if (*n == 0) return go_no("the key length rounds to zero bytes: use a larger block");
    n_out = *n;
    rep.n_out = n_out;
    writer w;
    w.u8(1);
    w.f64(s.t_hat);
    w.f64(s.sigma2_hat);
    w.f64(s.v_a);
    w.u64(s.samples);
    w.u64(rep.frames);
    w.u64(rep.frames_failed);
    w.u64(auth_bits);
    w.u64(n_out);
    send(msg_type::pa_params, w.take());
    return {};
  }

  expected<void> alice_on_pa_seed(reader& r) {
    const std::uint64_t bits = r.u64();
    const auto raw = r.bytes();
    if (!r.ok() || bits != reconciled.size() + n_out - 1 || raw.size() != (bits + 63) / 64 * 8)
      return malformed(msg_type::pa_seed);
    privacy::bit_vector seed(bits);
    std::memcpy(seed.words().data(), raw.data(), raw.size());
    seed.clear_padding();
    return amplify(seed);
  }

  expected<void> alice_on_confirm(reader& r) {
    const gf128 k = r.g128();
    const gf128 t = r.g128();
    if (!r.ok() || !key) return malformed(msg_type::confirm);
    const bool same = poly_hash(k, std::as_bytes(key->words())) == t;
    writer w;
    w.u8(same ? 1 : 0);
    send(msg_type::confirm_ack, w.take());
    if (!same) return fail(errc::no_secret_key, "key confirmation failed: the two ends' keys differ; block discarded");
    return finish();
  }

  // ---- both ----
  expected<void> amplify(const privacy::bit_vector& seed) {
    const auto t0 = clock::now();
    auto hasher = privacy::toeplitz_hasher::create();
    if (!hasher) return std::unexpected(hasher.error());
    auto x = reconciled.to_bit_vector();
    auto k = hasher->hash(x, seed, n_out);
    if (!k) return std::unexpected(k.error());
    key.emplace(std::move(*k));
    rep.seconds_privacy += std::chrono::duration<double>(clock::now() - t0).count();
    return {};
  }

  expected<void> finish() {
    // The first bytes of the new key authenticate the next round (as many as this one used, plus
    // margin); the rest is released. Both ends count the same messages.
    secure_buffer bytes = std::move(*key).to_key_bytes();
    key.reset();
    // Enough for the next round and for several aborted attempts before it.
    const std::size_t reserve = std::min<std::size_t>(bytes.size(), 4 * round_auth_bytes);
    keys.replenish(secure_buffer(bytes.bytes().first(reserve)));
    secure_buffer released(bytes.bytes().subspan(reserve));
    rep.auth_reserve_bits = 8 * reserve;
    rep.secret_bits = 8 * released.size();
    rep.auth_consumed_bits = auth->consumed_bits();
    if (!released.empty())
      if (auto ok = sink.deliver(key_block{params.round, std::move(released)}); !ok) return ok;
    rep.status = round_report::state::done;
    return {};
  }
};

expected<std::unique_ptr<link_end>> link_end::create(role r, const round_parameters& params, auth_key_stream& keys,
                                                    transport& out, key_sink& sink, random_source& rng) {
  if (params.n_symbols == 0 || params.n_pe == 0 || params.n_pe >= params.n_symbols)
    return fail(errc::invalid_argument,
                fmt::format("round needs 0 < n_pe < N (got n_pe = {}, N = {})", params.n_pe, params.n_symbols));
  auto p = std::make_unique<impl>(r, params, keys, out, sink, rng);
  auto a = authenticator::begin_round(keys);
  if (!a) return std::unexpected(a.error());
  p->auth.emplace(std::move(*a));
  return std::unique_ptr<link_end>(new link_end(std::move(p)));
}

link_end::link_end(std::unique_ptr<impl> p) : impl_(std::move(p)) {}
link_end::~link_end() = default;

expected<void> link_end::on_alice_frame(const hw::alice_frame& f) {
  if (impl_->me != role::alice) return fail(errc::invalid_argument, "on_alice_frame called on Bob's end");
  return impl_->alice_frame(f);
}

expected<void> link_end::on_bob_frame(const hw::bob_frame& f, const hw::shot_noise_calibration& cal) {
  if (impl_->me != role::bob) return fail(errc::invalid_argument, "on_bob_frame called on Alice's end");
  auto ok = impl_->bob_frame(f, cal);
  if (!ok) impl_->fail_round(ok.error().message, true);
  return ok;
}

expected<void> link_end::end_of_block() {
  if (impl_->me != role::bob) return fail(errc::invalid_argument, "end_of_block is Bob's call");
  return impl_->bob_end_of_block();
}

void link_end::receive(const envelope& e) { impl_->receive(e); }

void link_end::retransmit(std::size_t max_messages) {
  std::size_t sent = 0;
  for (auto e : impl_->sent) {
    if (sent == max_messages) break;
    if (e.seq < impl_->peer_ack) continue;
    e.ack = impl_->next_expected;
    impl_->out.send(e);
    ++sent;
  }
}

void link_end::abort(const std::string& reason) { impl_->fail_round(reason, true); }
const round_report& link_end::report() const noexcept { return impl_->rep; }
bool link_end::finished() const noexcept { return !impl_->running(); }
std::size_t link_end::unacknowledged() const noexcept { return impl_->sent.size(); }

}  // namespace cvqkd::links
