// Flow keys: one fixed 40-byte layout for IPv4 and IPv6, so one connection
// table type serves both families.
//
// Layout (host-order ports, network-order addresses):
//   [0..1] port_a  [2..3] port_b  [4] proto  [5] family  [6..7] zone
//   IPv4:  [8..11] addr_a  [12..15] addr_b  [16..39] zero
//   IPv6:  [8..23] addr_a  [24..39] addr_b
// IPv4 keys are therefore fully described by their first 16 bytes, and the
// hash reads only those (FlowKey::hashed_len): a v4 hash costs about half a
// v6 one. Unused bytes are always zero so that keys compare with memcmp.
//
// Canonical form: (addr_a, port_a) is the smaller endpoint, so both directions
// of a flow share one key; `reversed` tells a packet's direction relative to
// it. Directional keys (no swap) serve NAT, whose two directions differ.
#pragma once

#include <cstdint>
#include <cstring>
#include <type_traits>

#include "common/siphash.h"
#include "packet/packet_meta.h"

namespace tripod {

struct FlowKey {
  uint16_t port_a = 0;
  uint16_t port_b = 0;
  uint8_t proto = 0;
  Family family = Family::kNone;
  uint16_t zone = 0;  // reserved for tenant / VRF; 0 today
  uint8_t addr[32] = {};

  size_t hashed_len() const { return family == Family::kIpv6 ? 40 : 16; }
  const uint8_t* addr_a() const { return addr; }
  const uint8_t* addr_b() const { return family == Family::kIpv6 ? addr + 16 : addr + 4; }

  friend bool operator==(const FlowKey& x, const FlowKey& y) {
    return std::memcmp(&x, &y, sizeof(FlowKey)) == 0;
  }
};
static_assert(sizeof(FlowKey) == 40);
static_assert(std::is_trivially_copyable_v<FlowKey>);
static_assert(std::has_unique_object_representations_v<FlowKey>);

// Builds a key from explicit endpoints (addresses of addr_len(family) bytes,
// network order). `canonical` orders the endpoints; `*reversed` (optional)
// reports whether they were swapped.
FlowKey make_flow_key(Family family, uint8_t proto, const uint8_t* src, const uint8_t* dst,
                      uint16_t sport, uint16_t dport, bool canonical, bool* reversed = nullptr);

// The canonical form of a key (endpoints ordered): the same for both
// directions of a flow.
inline FlowKey canonical_key(const FlowKey& k) {
  return make_flow_key(k.family, k.proto, k.addr_a(), k.addr_b(), k.port_a, k.port_b, true);
}

// Key of a parsed packet. Packets without ports (ICMP other than echo) get
// ports 0, and so do all fragments, the first included: every piece of a
// datagram must map to the same key, and only the first carries the ports.
// For ICMP errors this is the key of the error packet itself; use
// flow_key_of_quote for the flow the error is about. Non-IP: the zero key.
FlowKey flow_key_of(const uint8_t* frame, const PacketMeta& meta, bool canonical,
                    bool* reversed = nullptr);

// Key of the flow quoted in an ICMP error (meta must have kMetaIcmpError,
// else the zero key). Equal to flow_key_of() of the quoted packet.
FlowKey flow_key_of_quote(const uint8_t* frame, const PacketMeta& meta, bool canonical,
                          bool* reversed = nullptr);

// Keyed hash of a flow key; see siphash.h for why SipHash-1-3.
inline uint64_t hash_flow_key(const FlowKey& k, const SipKey& key) {
  return siphash13(key, reinterpret_cast<const uint8_t*>(&k), k.hashed_len());
}

}  // namespace tripod
