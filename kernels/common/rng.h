// The project's one seeded generator: xoshiro256**, seeded through splitmix64. Small, fast, and
// identical on every machine (the standard library's distributions are not), so a seed names
// the same weights, prompts and samples everywhere. Used by every layer that draws numbers.
#pragma once

#include <cstdint>

#include "kernels/common/random_hash.h"

namespace qwen3moe {

class Rng {
 public:
  explicit Rng(uint64_t seed) {
    // splitmix64 over the sequence seed + i * golden gamma, as its author seeds xoshiro.
    for (auto& s : s_) {
      s = splitmix64(seed);
      seed += 0x9e3779b97f4a7c15ull;
    }
  }

  uint64_t next() {
    const uint64_t result = rotl(s_[1] * 5, 7) * 9;
    const uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return result;
  }

  double uniform() { return double(next() >> 11) * 0x1.0p-53; }  // [0, 1), 53 random bits

 private:
  static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

  uint64_t s_[4];  // the xoshiro256 state
};

}  // namespace qwen3moe
