// Internet checksum (RFC 1071) and incremental update (RFC 1624).
//
// Convention: 16-bit checksum and field values are passed as read by
// load_be16 (host-order integers of the big-endian wire fields). The ones'
// complement sum is byte-order independent as long as every word uses the
// same order, so this is exact.
#pragma once

#include <cstddef>
#include <cstdint>

#include "packet/packet_meta.h"

namespace tripod {

// Adds `len` bytes to a running ones' complement sum (not yet folded).
uint64_t csum_add_bytes(uint64_t sum, const uint8_t* data, size_t len);
// Folds a running sum to 16 bits and complements it: the value to store.
uint16_t csum_finish(uint64_t sum);

// Full IPv4 header checksum over `hdr_len` bytes, with the checksum field
// taken as zero.
uint16_t ipv4_header_checksum(const uint8_t* ip, size_t hdr_len);

// Full L4 checksum (TCP, UDP, ICMP, ICMPv6) of the packet described by meta,
// including the IPv4/IPv6 pseudo-header where the protocol has one, with the
// checksum field taken as zero. Requires kMetaHasL4 and an unfragmented packet.
uint16_t l4_checksum(const uint8_t* frame, const PacketMeta& meta);
// True if the stored L4 checksum is right (an IPv4 UDP checksum of 0 means
// "none" and is accepted).
bool l4_checksum_ok(const uint8_t* frame, const PacketMeta& meta);
// Recomputes and stores the IPv4 header and L4 checksums (builder, tests).
void fix_checksums(uint8_t* frame, const PacketMeta& meta);

// RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m'). One 16-bit field changed.
inline uint16_t csum_update16(uint16_t hc, uint16_t old_v, uint16_t new_v) {
  uint32_t s =
      static_cast<uint16_t>(~hc) + static_cast<uint32_t>(static_cast<uint16_t>(~old_v)) + new_v;
  s = (s & 0xffff) + (s >> 16);
  s = (s & 0xffff) + (s >> 16);
  return static_cast<uint16_t>(~s);
}
// One 32-bit field (an IPv4 address, a sequence number) changed.
inline uint16_t csum_update32(uint16_t hc, uint32_t old_v, uint32_t new_v) {
  hc = csum_update16(hc, static_cast<uint16_t>(old_v >> 16), static_cast<uint16_t>(new_v >> 16));
  return csum_update16(hc, static_cast<uint16_t>(old_v), static_cast<uint16_t>(new_v));
}
// `len` bytes (even) changed from old_b to new_b, e.g. an IPv6 address.
uint16_t csum_update_bytes(uint16_t hc, const uint8_t* old_b, const uint8_t* new_b, size_t len);

// UDP over IPv4: a stored checksum of 0 means "not computed" and must stay 0;
// a computed result of 0 is sent as 0xFFFF (RFC 768).
inline uint16_t udp4_csum_update16(uint16_t hc, uint16_t old_v, uint16_t new_v) {
  if (hc == 0) return 0;
  const uint16_t r = csum_update16(hc, old_v, new_v);
  return r == 0 ? 0xFFFF : r;
}

}  // namespace tripod
