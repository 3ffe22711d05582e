// Philox-4x32-10 and the generator built on it.
#include "lmlab/core/rng.h"

#include <cmath>

namespace lmlab {

std::array<uint32_t, 4> philox4x32(uint64_t counter_lo, uint64_t counter_hi, uint64_t key) {
  constexpr uint32_t M0 = 0xD2511F53u, M1 = 0xCD9E8D57u, W0 = 0x9E3779B9u, W1 = 0xBB67AE85u;
  uint32_t c0 = uint32_t(counter_lo), c1 = uint32_t(counter_lo >> 32);
  uint32_t c2 = uint32_t(counter_hi), c3 = uint32_t(counter_hi >> 32);
  uint32_t k0 = uint32_t(key), k1 = uint32_t(key >> 32);
  for (int r = 0; r < 10; ++r) {
    uint64_t p0 = uint64_t(M0) * c0, p1 = uint64_t(M1) * c2;
    uint32_t n0 = uint32_t(p1 >> 32) ^ c1 ^ k0;
    uint32_t n1 = uint32_t(p1);
    uint32_t n2 = uint32_t(p0 >> 32) ^ c3 ^ k1;
    uint32_t n3 = uint32_t(p0);
    c0 = n0; c1 = n1; c2 = n2; c3 = n3;
    k0 += W0; k1 += W1;
  }
  return {c0, c1, c2, c3};
}

float philox_uniform_f(uint64_t key, uint64_t ctr, uint64_t stream) {
  auto r = philox4x32(ctr, stream, key);
  return float(r[0] >> 8) * (1.0f / 16777216.0f);
}

double philox_normal(uint64_t key, uint64_t ctr, uint64_t stream) {
  auto r = philox4x32(ctr, stream, key);
  uint64_t b0 = (uint64_t(r[0]) << 32 | r[1]) >> 11, b1 = (uint64_t(r[2]) << 32 | r[3]) >> 11;
  double u1 = (double(b0) + 1.0) * (1.0 / 9007199254740993.0);  // (0, 1]
  double u2 = double(b1) * (1.0 / 9007199254740992.0);
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2);
}

double Generator::uniform() { return philox_uniform(seed_, reserve(1)); }
double Generator::normal() { return philox_normal(seed_, reserve(1)); }
uint64_t Generator::next_u64() {
  auto r = philox4x32(reserve(1), 0, seed_);
  return uint64_t(r[0]) << 32 | r[1];
}
int64_t Generator::randint(int64_t lo, int64_t hi) {
  uint64_t span = uint64_t(hi - lo);
  return lo + int64_t(next_u64() % (span ? span : 1));
}

Generator& default_generator() {
  static Generator g(0x5eed);
  return g;
}
void manual_seed(uint64_t seed) { default_generator().set_state(seed, 0); }

}  // namespace lmlab
