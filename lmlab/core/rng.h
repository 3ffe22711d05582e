// Counter-based RNG: Philox-4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11).
// Element i of a fill draws from counter (offset + i), so results are the same for any thread count
// and any split of the work; the generator's offset then advances past the elements drawn.
#pragma once
#include <array>
#include <cstdint>

namespace lmlab {

std::array<uint32_t, 4> philox4x32(uint64_t counter_lo, uint64_t counter_hi, uint64_t key);

class Generator {
 public:
  explicit Generator(uint64_t seed = 0x5eed) : seed_(seed) {}
  uint64_t seed() const { return seed_; }
  uint64_t offset() const { return offset_; }
  void set_state(uint64_t seed, uint64_t offset) { seed_ = seed; offset_ = offset; }
  // Reserves n counters and returns the first; fills use counters [first, first + n).
  uint64_t reserve(uint64_t n) { uint64_t o = offset_; offset_ += n; return o; }
  // Scalar draws (each consumes one counter).
  double uniform();          // [0, 1)
  double normal();           // N(0, 1)
  uint64_t next_u64();
  int64_t randint(int64_t lo, int64_t hi);  // [lo, hi)

 private:
  uint64_t seed_;
  uint64_t offset_ = 0;
};

// Stateless helpers at a counter (stream-independent of threading).
inline double philox_uniform(uint64_t key, uint64_t ctr, uint64_t stream = 0) {
  auto r = philox4x32(ctr, stream, key);
  uint64_t bits = (uint64_t(r[0]) << 32 | r[1]) >> 11;  // 53 bits
  return double(bits) * (1.0 / 9007199254740992.0);
}
float philox_uniform_f(uint64_t key, uint64_t ctr, uint64_t stream = 0);
double philox_normal(uint64_t key, uint64_t ctr, uint64_t stream = 0);

Generator& default_generator();
void manual_seed(uint64_t seed);

}  // namespace lmlab
