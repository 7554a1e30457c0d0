// SipHash (Aumasson & Bernstein, 2012), templated on its round counts.
//
// Why SipHash for flow keys: the connection table's buckets are chosen by this
// hash, and an attacker who can predict it can aim packets at two buckets and
// make inserts fail (hash flooding). SipHash is a PRF under a secret key, so
// with a per-process random key the bucket of a tuple is unpredictable. The
// Linux flow dissector (skb_get_hash) keys its flow hash the same way.
// SipHash-1-3 is the variant Rust's and Python's hash tables use: the same
// keyed construction with fewer rounds; it is inlined here for fixed-size
// keys. Cost per flow key (`make bench`, figure hash.flowkey_v4/_v6, 2-core
// VM, 2026-11-22): 8.2 ns for IPv4 (16 bytes hashed), 13.0 ns for IPv6 (40),
// against 14.3 / 23.7 ns for libsodium's SipHash-2-4, 3.3 / 4.8 ns for XXH3
// with a secret and 3.2 / 5.2 ns for absl::Hash. The 5-8 ns over the unkeyed
// hashes buy flood resistance, and ConnTable::hash_lookup_bulk overlaps the
// hashing with bucket fetches, so it costs little of the lookup rate.
#pragma once

#include <cstddef>
#include <cstdint>

#include "common/byte_order.h"
#include "common/compiler.h"

namespace tripod {

struct SipKey {
  uint64_t k0 = 0;
  uint64_t k1 = 0;
};

namespace internal {

TRIPOD_ALWAYS_INLINE uint64_t rotl(uint64_t x, int b) {
  return (x << b) | (x >> (64 - b));
}

struct SipState {
  uint64_t v0, v1, v2, v3;
  // clang-format off
  TRIPOD_ALWAYS_INLINE void round() {
    v0 += v1; v1 = rotl(v1, 13); v1 ^= v0; v0 = rotl(v0, 32);
    v2 += v3; v3 = rotl(v3, 16); v3 ^= v2;
    v0 += v3; v3 = rotl(v3, 21); v3 ^= v0;
    v2 += v1; v1 = rotl(v1, 17); v1 ^= v2; v2 = rotl(v2, 32);
  }
  // clang-format on
};

}  // namespace internal

// SipHash-c-d over `len` bytes. Little-endian word order, as the reference.
template <int C, int D>
TRIPOD_ALWAYS_INLINE uint64_t siphash(const SipKey& key, const uint8_t* data, size_t len) {
  internal::SipState s{key.k0 ^ 0x736f6d6570736575ULL, key.k1 ^ 0x646f72616e646f6dULL,
                       key.k0 ^ 0x6c7967656e657261ULL, key.k1 ^ 0x7465646279746573ULL};
  const size_t whole = len & ~size_t{7};
  for (size_t i = 0; i < whole; i += 8) {
    const uint64_t m = load_le<uint64_t>(data + i);
    s.v3 ^= m;
    for (int r = 0; r < C; ++r)
      s.round();
    s.v0 ^= m;
  }
  uint64_t b = static_cast<uint64_t>(len) << 56;
  for (size_t i = 0; i < (len & 7); ++i)
    b |= static_cast<uint64_t>(data[whole + i]) << (8 * i);
  s.v3 ^= b;
  for (int r = 0; r < C; ++r)
    s.round();
  s.v0 ^= b;
  s.v2 ^= 0xff;
  for (int r = 0; r < D; ++r)
    s.round();
  return s.v0 ^ s.v1 ^ s.v2 ^ s.v3;
}

TRIPOD_ALWAYS_INLINE uint64_t siphash13(const SipKey& key, const uint8_t* data, size_t len) {
  return siphash<1, 3>(key, data, len);
}

}  // namespace tripod
