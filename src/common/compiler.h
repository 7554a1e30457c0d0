// Small compiler helpers shared by the data plane.
#pragma once

#define TRIPOD_LIKELY(x) __builtin_expect(!!(x), 1)
#define TRIPOD_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define TRIPOD_ALWAYS_INLINE inline __attribute__((always_inline))

namespace tripod {

inline constexpr unsigned kCacheLine = 64;

// Read prefetch into all cache levels; used a burst ahead of the access.
TRIPOD_ALWAYS_INLINE void prefetch(const void* p) {
  __builtin_prefetch(p, 0, 3);
}
TRIPOD_ALWAYS_INLINE void prefetch_write(const void* p) {
  __builtin_prefetch(p, 1, 3);
}

}  // namespace tripod
