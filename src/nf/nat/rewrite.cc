#include "nf/nat/rewrite.h"

#include <cstring>

#include "common/byte_order.h"
#include "packet/checksum.h"

namespace tripod {
namespace {

constexpr uint8_t kIcmpEchoRequest = 8, kIcmpEchoReply = 0;
constexpr uint8_t kIcmp6EchoRequest = 128, kIcmp6EchoReply = 129;

// Offset of the L4 checksum within its header, 0 if the protocol has none
// we maintain.
uint32_t l4_csum_offset(uint8_t proto) {
  switch (proto) {
    case kProtoTcp:
      return 16;
    case kProtoUdp:
      return 6;
    case kProtoIcmp:
    case kProtoIcmpv6:
      return 2;
    default:
      return 0;
  }
}
bool has_pseudo_header(uint8_t proto) {
  return proto == kProtoTcp || proto == kProtoUdp || proto == kProtoIcmpv6;
}

// Replaces `len` bytes at frame+off and folds the change into the checksum
// stored at frame+csum_off (if csum_off != 0). `off` must be at an even
// distance from the start of the checksummed region, which holds for every
// address, port and checksum field NAT touches.
// UDP: a computed 0 is sent as 0xFFFF (0 means "no checksum", which IPv6
// forbids, RFC 8200 8.1); over IPv4 a 0 received stays 0 (`udp4`).
void patch(uint8_t* frame, uint32_t off, const uint8_t* bytes, uint32_t len, uint32_t csum_off,
           bool udp4, bool udp = false) {
  if (csum_off != 0) {
    const uint16_t hc = load_be16(frame + csum_off);
    if (!(udp4 && hc == 0)) {
      uint16_t n = csum_update_bytes(hc, frame + off, bytes, len);
      if ((udp4 || udp) && n == 0) n = 0xFFFF;
      store_be16(frame + csum_off, n);
    }
  }
  std::memmove(frame + off, bytes, len);
}

bool is_echo(const PacketMeta& m, bool* request) {
  if (m.proto == kProtoIcmp) {
    *request = m.icmp_type == kIcmpEchoRequest;
    return m.icmp_type == kIcmpEchoRequest || m.icmp_type == kIcmpEchoReply;
  }
  if (m.proto == kProtoIcmpv6) {
    *request = m.icmp_type == kIcmp6EchoRequest;
    return m.icmp_type == kIcmp6EchoRequest || m.icmp_type == kIcmp6EchoReply;
  }
  return false;
}

}  // namespace

NatResult nat_rewrite(uint8_t* frame, PacketMeta& m, NatSide side, const uint8_t* addr,
                      uint16_t port) {
  if (m.family == Family::kNone || m.has(kMetaFragment) || !m.has(kMetaHasL4)) {
    return NatResult::kUnsupported;
  }
  bool request = false;
  const bool echo = is_echo(m, &request);
  const bool icmp_error = m.has(kMetaIcmpError);  // outer address only; see nat_rewrite_quote
  if (m.proto != kProtoTcp && m.proto != kProtoUdp && !echo && !icmp_error) {
    return NatResult::kUnsupported;
  }

  const bool v4 = m.family == Family::kIpv4;
  const uint32_t l4_csum = m.l4_off + l4_csum_offset(m.proto);
  const bool udp4 = v4 && m.proto == kProtoUdp;
  const uint32_t addr_off = side == NatSide::kSource ? m.src_off : m.dst_off;
  // The address: in the IPv4 header checksum, and in the L4 pseudo-header.
  if (std::memcmp(frame + addr_off, addr, m.addr_len()) != 0) {
    if (v4) {
      const uint16_t hc = load_be16(frame + m.l3_off + 10);
      store_be16(frame + m.l3_off + 10, csum_update_bytes(hc, frame + addr_off, addr, 4));
    }
    patch(frame, addr_off, addr, m.addr_len(), has_pseudo_header(m.proto) ? l4_csum : 0, udp4,
          m.proto == kProtoUdp);
  }
  if (icmp_error) return NatResult::kOk;
  // The port (or the echo identifier, for the requester's side).
  uint8_t p[2];
  store_be16(p, port);
  if (echo) {
    if ((side == NatSide::kSource) == request) {
      patch(frame, m.l4_off + 4, p, 2, l4_csum, false);
      m.sport = m.dport = port;
    }
  } else {
    patch(frame, m.l4_off + (side == NatSide::kSource ? 0 : 2), p, 2, l4_csum, udp4,
          m.proto == kProtoUdp);
    (side == NatSide::kSource ? m.sport : m.dport) = port;
  }
  return NatResult::kOk;
}

namespace {
// RFC 1624 eqn. 3's sum(~m) + sum(m') over `len` (even) bytes.
uint64_t delta_words(const uint8_t* old_b, const uint8_t* new_b, uint32_t len) {
  uint64_t s = 0;
  for (uint32_t i = 0; i < len; i += 2)
    s += static_cast<uint16_t>(~load_be16(old_b + i)) + uint32_t{load_be16(new_b + i)};
  return s;
}
uint16_t fold16(uint64_t s) {
  while (s >> 16)
    s = (s & 0xFFFF) + (s >> 16);
  return static_cast<uint16_t>(s);
}
uint16_t apply_delta(uint16_t hc, uint64_t delta) {
  return static_cast<uint16_t>(~fold16(uint64_t{static_cast<uint16_t>(~hc)} + delta));
}
}  // namespace

NatResult nat_rewrite_both(uint8_t* frame, PacketMeta& m, const uint8_t* src, uint16_t sport,
                           const uint8_t* dst, uint16_t dport) {
  if ((m.proto != kProtoTcp && m.proto != kProtoUdp) || m.has(kMetaFragment) ||
      !m.has(kMetaHasL4) || m.has(kMetaIcmpError) ||
      (m.family != Family::kIpv4 && m.family != Family::kIpv6)) {
    const NatResult a = nat_rewrite(frame, m, NatSide::kSource, src, sport);
    if (a != NatResult::kOk) return a;
    return nat_rewrite(frame, m, NatSide::kDestination, dst, dport);
  }
  const uint32_t alen = m.addr_len();
  const uint64_t addr_delta =
      delta_words(frame + m.src_off, src, alen) + delta_words(frame + m.dst_off, dst, alen);
  uint8_t ports[4];
  store_be16(ports, sport);
  store_be16(ports + 2, dport);
  const uint64_t l4_delta = addr_delta + delta_words(frame + m.l4_off, ports, 4);
  const bool v4 = m.family == Family::kIpv4;
  if (v4) {
    uint8_t* ip_csum = frame + m.l3_off + 10;
    store_be16(ip_csum, apply_delta(load_be16(ip_csum), addr_delta));
  }
  uint8_t* l4_csum = frame + m.l4_off + l4_csum_offset(m.proto);
  const uint16_t hc = load_be16(l4_csum);
  const bool udp4 = v4 && m.proto == kProtoUdp;
  if (!(udp4 && hc == 0)) {  // UDP over IPv4 without a checksum keeps none
    uint16_t n = apply_delta(hc, l4_delta);
    if (m.proto == kProtoUdp && n == 0) n = 0xFFFF;  // 0 is "none" (IPv6 forbids it)
    store_be16(l4_csum, n);
  }
  std::memcpy(frame + m.src_off, src, alen);
  std::memcpy(frame + m.dst_off, dst, alen);
  std::memcpy(frame + m.l4_off, ports, 4);
  m.sport = sport;
  m.dport = dport;
  return NatResult::kOk;
}

NatResult nat_rewrite_quote(uint8_t* frame, PacketMeta& m, NatSide side, const uint8_t* addr,
                            uint16_t port) {
  QuotedPacket& q = m.inner;
  if (!m.has(kMetaIcmpError) || q.family != m.family) return NatResult::kUnsupported;
  const uint32_t icmp_csum = m.l4_off + 2;  // every quoted byte is under it
  const bool v4 = q.family == Family::kIpv4;
  const uint32_t addr_off = side == NatSide::kSource ? q.src_off : q.dst_off;
  const uint8_t alen = v4 ? 4 : 16;
  // Where the quoted L4 checksum is, if the quote reaches it.
  const uint32_t csum_rel = l4_csum_offset(q.proto);
  const bool ports = (q.proto == kProtoTcp || q.proto == kProtoUdp) && q.l4_off != 0;
  const bool inner_csum = ports && csum_rel != 0 && q.l4_quoted >= csum_rel + 2;
  const uint32_t inner_l4_csum = inner_csum ? q.l4_off + csum_rel : 0;
  const bool inner_udp4 = v4 && q.proto == kProtoUdp;

  // Each inner change is made field by field, every one folded into the
  // outer ICMP checksum, including the changes of the inner checksums.
  auto patch_field = [&](uint32_t off, const uint8_t* bytes, uint32_t len) {
    patch(frame, off, bytes, len, icmp_csum, false);
  };
  auto update_inner_csum = [&](uint32_t csum_off, const uint8_t* old_b, const uint8_t* new_b,
                               uint32_t len, bool udp4) {
    const uint16_t hc = load_be16(frame + csum_off);
    if (udp4 && hc == 0) return;
    uint16_t n = csum_update_bytes(hc, old_b, new_b, len);
    if (udp4 && n == 0) n = 0xFFFF;
    uint8_t nb[2];
    store_be16(nb, n);
    patch_field(csum_off, nb, 2);
  };

  uint8_t old_addr[16];
  std::memcpy(old_addr, frame + addr_off, alen);
  if (std::memcmp(old_addr, addr, alen) != 0) {
    if (v4) update_inner_csum(q.l3_off + 10, old_addr, addr, 4, false);
    if (inner_l4_csum != 0 && q.proto != kProtoIcmp) {
      update_inner_csum(inner_l4_csum, old_addr, addr, alen, inner_udp4);
    }
    patch_field(addr_off, addr, alen);
  }
  if (ports) {
    const uint32_t port_off = q.l4_off + (side == NatSide::kSource ? 0 : 2);
    uint8_t old_p[2], new_p[2];
    std::memcpy(old_p, frame + port_off, 2);
    store_be16(new_p, port);
    if (inner_l4_csum != 0) update_inner_csum(inner_l4_csum, old_p, new_p, 2, inner_udp4);
    patch_field(port_off, new_p, 2);
    (side == NatSide::kSource ? q.sport : q.dport) = port;
  }
  return NatResult::kOk;
}

bool clamp_mss(uint8_t* frame, const PacketMeta& m, uint16_t max_mss) {
  if (m.proto != kProtoTcp || !m.has(kMetaHasL4) || (m.tcp_flags & kTcpSyn) == 0) return false;
  const uint32_t end = m.l4_off + m.tcp_hdr_len;
  uint32_t i = m.l4_off + 20;
  while (i < end) {
    const uint8_t kind = frame[i];
    if (kind == 0) break;  // end of options
    if (kind == 1) {
      ++i;
      continue;
    }
    if (end - i < 2 || frame[i + 1] < 2 || frame[i + 1] > end - i) return false;
    if (kind == 2 && frame[i + 1] == 4) {
      if (load_be16(frame + i + 2) <= max_mss) return false;
      uint8_t v[2];
      store_be16(v, max_mss);
      // The MSS value can sit at an odd offset from the TCP header (after a
      // single NOP): fold the change in as the aligned word pair it spans.
      const uint32_t off = i + 2;
      if (((off - m.l4_off) & 1) == 0) {
        patch(frame, off, v, 2, m.l4_off + 16, false);
      } else {
        uint8_t w[4];
        std::memcpy(w, frame + off - 1, 4);
        w[1] = v[0];
        w[2] = v[1];
        patch(frame, off - 1, w, 4, m.l4_off + 16, false);
      }
      return true;
    }
    i += frame[i + 1];
  }
  return false;
}

}  // namespace tripod
