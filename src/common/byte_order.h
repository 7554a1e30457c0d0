// Explicit byte order for wire data. Every read or write of a multi-byte wire
// field goes through these helpers (Seastar's read_be/write_be habit): never
// cast a buffer to a host struct, so alignment and endianness are always
// spelled out at the call site.
#pragma once

#include <bit>
#include <cstdint>
#include <cstring>

namespace tripod {

static_assert(std::endian::native == std::endian::little ||
              std::endian::native == std::endian::big);

template <typename T>
inline T bswap(T v) {
  if constexpr (sizeof(T) == 1) {
    return v;
  } else if constexpr (sizeof(T) == 2) {
    return static_cast<T>(__builtin_bswap16(static_cast<uint16_t>(v)));
  } else if constexpr (sizeof(T) == 4) {
    return static_cast<T>(__builtin_bswap32(static_cast<uint32_t>(v)));
  } else {
    static_assert(sizeof(T) == 8);
    return static_cast<T>(__builtin_bswap64(static_cast<uint64_t>(v)));
  }
}

// Converts between host order and big-endian (network) order.
template <typename T>
inline T byteswap_if_le(T v) {
  if constexpr (std::endian::native == std::endian::little) return bswap(v);
  return v;
}

// Reads a big-endian (network order) value from unaligned memory.
template <typename T>
inline T load_be(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return byteswap_if_le(v);
}

// Writes a value in big-endian (network order) to unaligned memory.
template <typename T>
inline void store_be(uint8_t* p, T v) {
  v = byteswap_if_le(v);
  std::memcpy(p, &v, sizeof(T));
}

// Reads a little-endian value (SipHash's word order) from unaligned memory.
template <typename T>
inline T load_le(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  if constexpr (std::endian::native == std::endian::big) v = bswap(v);
  return v;
}

// Host-order loads, for hashing and checksumming where byte order is irrelevant.
template <typename T>
inline T load_host(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

inline uint16_t load_be16(const uint8_t* p) {
  return load_be<uint16_t>(p);
}
inline uint32_t load_be32(const uint8_t* p) {
  return load_be<uint32_t>(p);
}
inline void store_be16(uint8_t* p, uint16_t v) {
  store_be<uint16_t>(p, v);
}
inline void store_be32(uint8_t* p, uint32_t v) {
  store_be<uint32_t>(p, v);
}

}  // namespace tripod
