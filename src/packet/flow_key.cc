// Flow keys. Built field by field into a zeroed key, so padding and unused
// address bytes are always zero and keys compare and hash as raw bytes.
#include "packet/flow_key.h"

#include <utility>

#include "common/byte_order.h"

namespace tripod {
namespace {

size_t family_addr_len(Family f) {
  return f == Family::kIpv6 ? 16 : f == Family::kIpv4 ? 4 : 0;
}

}  // namespace

FlowKey make_flow_key(Family family, uint8_t proto, const uint8_t* src, const uint8_t* dst,
                      uint16_t sport, uint16_t dport, bool canonical, bool* reversed) {
  FlowKey k;
  k.proto = proto;
  k.family = family;
  const size_t alen = family_addr_len(family);
  bool swap = false;
  if (canonical) {
    // Lexicographic on the network-order bytes: any total order works as
    // long as both directions agree on it.
    int c = 0;
    if (alen == 4) {
      const uint32_t a = load_be32(src), b = load_be32(dst);
      c = (a > b) - (a < b);
    } else if (alen == 16) {
      c = std::memcmp(src, dst, 16);
    }
    swap = c > 0 || (c == 0 && sport > dport);
  }
  if (swap) {
    std::swap(src, dst);
    std::swap(sport, dport);
  }
  k.port_a = sport;
  k.port_b = dport;
  // Constant-size copies compile to plain loads and stores.
  if (alen == 4) {
    std::memcpy(k.addr, src, 4);
    std::memcpy(k.addr + 4, dst, 4);
  } else if (alen == 16) {
    std::memcpy(k.addr, src, 16);
    std::memcpy(k.addr + 16, dst, 16);
  }
  if (reversed != nullptr) *reversed = swap;
  return k;
}

FlowKey flow_key_of(const uint8_t* frame, const PacketMeta& meta, bool canonical, bool* reversed) {
  if (meta.family == Family::kNone) {
    if (reversed != nullptr) *reversed = false;
    return FlowKey{};
  }
  // All pieces of a fragmented datagram must share one key, and only the
  // first carries ports: so none of them uses ports.
  const bool ports = !meta.has(kMetaFragment);
  return make_flow_key(meta.family, meta.proto, frame + meta.src_off, frame + meta.dst_off,
                       ports ? meta.sport : 0, ports ? meta.dport : 0, canonical, reversed);
}

FlowKey flow_key_of_quote(const uint8_t* frame, const PacketMeta& meta, bool canonical,
                          bool* reversed) {
  const QuotedPacket& q = meta.inner;
  if (!meta.has(kMetaIcmpError) || q.family == Family::kNone) {
    if (reversed != nullptr) *reversed = false;
    return FlowKey{};
  }
  // The parser already left the ports 0 for quoted fragments.
  return make_flow_key(q.family, q.proto, frame + q.src_off, frame + q.dst_off, q.sport, q.dport,
                       canonical, reversed);
}

}  // namespace tripod
