// Structural invariants of a PacketMeta returned with kOk, shared by the
// fuzz target (which traps on a violation) and the unit tests. Stages after
// the parser index the frame with these offsets without re-checking them, so
// each line here is a promise the parser keeps for every input.
#pragma once

#include <algorithm>
#include <cstdint>

#include "packet/packet_meta.h"

namespace tripod {

// Returns nullptr if `m` is consistent for a frame of `len` captured bytes,
// else a short description of the first broken invariant.
inline const char* meta_problem(const PacketMeta& m, uint32_t len) {
  len = std::min<uint32_t>(len, 0xFFFF);
  if (len < 14) return "kOk on a frame shorter than Ethernet";
  const uint32_t l2 = m.has(kMetaVlan) ? 18 : 14;
  if (m.l3_off != l2) return "l3_off is not the end of L2";
  if (!(m.l3_off <= m.l4_off && m.l4_off <= m.payload_off && m.payload_off <= m.l3_end &&
        m.l3_end <= len)) {
    return "offsets out of order or past len";
  }
  if (m.has(kMetaNotIp)) {
    if (m.family != Family::kNone || (m.flags & ~(kMetaNotIp | kMetaVlan)) != 0) {
      return "non-IP frame with IP state";
    }
    return nullptr;
  }
  if (m.family != Family::kIpv4 && m.family != Family::kIpv6) return "IP frame without family";
  const uint32_t min_l3 = m.family == Family::kIpv4 ? 20 : 40;
  if (m.l4_off < m.l3_off + min_l3) return "L4 inside the minimal IP header";
  if (m.src_off < m.l3_off || m.src_off + m.addr_len() > m.l3_off + min_l3 ||
      m.dst_off < m.l3_off || m.dst_off + m.addr_len() > m.l3_off + min_l3) {
    return "address outside the IP header";
  }
  if (m.has(kMetaFirstFrag) && (!m.has(kMetaFragment) || m.frag_offset != 0)) {
    return "first fragment flags";
  }
  if (m.has(kMetaFragment) && !m.has(kMetaFirstFrag) && (m.has(kMetaHasL4) || m.frag_offset == 0)) {
    return "non-first fragment with L4";
  }
  if (!m.has(kMetaHasL4)) {
    if (m.payload_off != m.l3_end) return "payload_off != l3_end without L4";
    if (m.has(kMetaIcmpError)) return "ICMP error without L4";
    return nullptr;
  }
  uint32_t hdr = 8;
  if (m.proto == kProtoTcp) {
    hdr = m.tcp_hdr_len;
    if (hdr < 20 || hdr > 60 || hdr % 4 != 0) return "bad tcp_hdr_len";
  } else if (m.proto != kProtoUdp && m.proto != kProtoIcmp && m.proto != kProtoIcmpv6) {
    return "kMetaHasL4 on an unknown protocol";
  }
  if (m.payload_off != m.l4_off + hdr) return "payload_off is not the end of the L4 header";
  if (!m.has(kMetaIcmpError)) return nullptr;

  const QuotedPacket& q = m.inner;
  if (m.proto != (m.family == Family::kIpv4 ? kProtoIcmp : kProtoIcmpv6)) {
    return "ICMP error flag on a non-ICMP packet";
  }
  if (q.family != m.family) return "quote of another family";
  if (q.l3_off != m.payload_off || q.l3_off + min_l3 > m.l3_end) return "quote IP header";
  if (q.src_off < q.l3_off || q.dst_off < q.l3_off || q.src_off + m.addr_len() > m.l3_end ||
      q.dst_off + m.addr_len() > m.l3_end) {
    return "quote addresses";
  }
  if (q.l4_off != 0) {
    if (q.l4_off < q.l3_off + min_l3 || q.l4_off >= m.l3_end) return "quote L4 offset";
    if (q.l4_quoted != std::min<uint32_t>(255, m.l3_end - q.l4_off)) return "quote l4_quoted";
    if ((q.proto == kProtoTcp || q.proto == kProtoUdp) && q.l4_off + 8u > m.l3_end) {
      return "quoted TCP/UDP shorter than 8 bytes";
    }
  } else if (q.l4_quoted != 0 || q.sport != 0 || q.dport != 0) {
    return "quote ports without quoted L4";
  }
  return nullptr;
}

}  // namespace tripod
