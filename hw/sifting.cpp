#include "hw/sifting.hpp"

#include <fmt/format.h>

namespace cvqkd::hw {

expected<sifted_frame> sift(const alice_frame& alice, const bob_frame& bob) {
  const std::size_t n = alice.size();
  if (alice.first_symbol != bob.first_symbol || alice.p.size() != n || bob.size() != n || bob.valid.size() != n)
    return fail(errc::invalid_argument,
                fmt::format("frames out of step: Alice has symbols {}+{}, Bob {}+{}; resynchronise the link "
                            "(both sides must process the same symbol range)",
                            alice.first_symbol, n, bob.first_symbol, bob.size()));
  const bool hom = bob.det == detection::homodyne;
  if ((hom && bob.basis.size() != n) || (!hom && bob.y_p.size() != n))
    return fail(errc::invalid_argument, "Bob's frame lacks its basis choices (homodyne) or p quadrature (heterodyne)");
  sifted_frame out;
  out.det = bob.det;
  const std::size_t per = hom ? 1 : 2;
  out.x.reserve(per * (n - bob.lost_symbols));
  out.y.reserve(per * (n - bob.lost_symbols));
  out.symbol.reserve(per * (n - bob.lost_symbols));
  for (std::size_t i = 0; i < n; ++i) {
    if (bob.valid[i] == 0) continue;
    const std::uint64_t sym = alice.first_symbol + i;
    if (hom) {
      out.x.push_back(bob.basis[i] == 0 ? alice.q[i] : alice.p[i]);
      out.y.push_back(bob.y_q[i]);
      out.symbol.push_back(sym);
    } else {
      out.x.push_back(alice.q[i]);
      out.y.push_back(bob.y_q[i]);
      out.x.push_back(alice.p[i]);
      out.y.push_back(bob.y_p[i]);
      out.symbol.push_back(sym);
      out.symbol.push_back(sym);
    }
  }
  return out;
}

}  // namespace cvqkd::hw
