// Randomness comes in through here so tests can fix it. Per-process secrets
// (hash keys, cookie keys) come from the kernel's CSPRNG.
#pragma once

#include <cstddef>
#include <cstdint>

namespace tripod {

// Fills `out` from getrandom(2). Aborts with a message if the kernel refuses:
// a gateway must not run with predictable hash keys.
void secure_random_bytes(void* out, size_t n);

// Small, fast, seedable generator (SplitMix64) for tests and benchmark data.
class SplitMix64 {
 public:
  explicit SplitMix64(uint64_t seed) : s_(seed) {}
  uint64_t next() {
    uint64_t z = (s_ += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
  }
  // Uniform in [0, n) (Lemire's multiply-shift; bias is negligible for tests).
  uint64_t below(uint64_t n) {
    __extension__ using u128 = unsigned __int128;
    return static_cast<uint64_t>((static_cast<u128>(next()) * n) >> 64);
  }

 private:
  uint64_t s_;
};

}  // namespace tripod
