// Ethernet -> IPv4/IPv6 -> L4 parser. Every length check compares against the
// remaining bytes (end - off), never adds to an offset first, so no check can
// overflow; `len` is clamped to 64 KiB so every offset fits the uint16_t
// fields of PacketMeta. The common case (untagged IPv4/TCP) is tested first
// at each branch; the IPv6 chain and ICMP quote live in out-of-line helpers.
#include "packet/parser.h"

#include <algorithm>

#include "common/byte_order.h"
#include "common/compiler.h"

namespace tripod {
namespace {

constexpr uint16_t kEtherTypeQinQ = 0x88A8;
constexpr uint32_t kEthHdrLen = 14;
constexpr uint32_t kVlanTagLen = 4;
constexpr uint32_t kIpv4MinHdr = 20;
constexpr uint32_t kIpv6HdrLen = 40;
constexpr uint32_t kTcpMinHdr = 20;
constexpr uint32_t kUdpHdrLen = 8;
constexpr uint32_t kIcmpHdrLen = 8;
constexpr uint32_t kMaxIpv6ExtHeaders = 8;
constexpr uint32_t kMaxDatagram = 65535;

constexpr uint8_t kIpv6HopByHop = 0;
constexpr uint8_t kIpv6Routing = 43;
constexpr uint8_t kIpv6Fragment = 44;
constexpr uint8_t kIpv6Ah = 51;
constexpr uint8_t kIpv6DestOpts = 60;
constexpr uint8_t kIpv6Mobility = 135;
constexpr uint8_t kIpv6Hip = 139;
constexpr uint8_t kIpv6Shim6 = 140;

// Offsets are bounded by the clamped len (<= 0xFFFF), so narrowing is exact.
TRIPOD_ALWAYS_INLINE uint16_t u16(uint32_t v) {
  return static_cast<uint16_t>(v);
}

bool is_vlan_tpid(uint16_t t) {
  return t == kEtherTypeVlan || t == kEtherTypeQinQ;
}

// An intact IPv4 header sums (checksum included) to 0xFFFF. Summing 32-bit
// words into 64 bits and folding is the same ones' complement sum.
TRIPOD_ALWAYS_INLINE bool ipv4_header_sum_ok(const uint8_t* ip, uint32_t hdr_len) {
  uint64_t s = uint64_t{load_host<uint32_t>(ip)} + load_host<uint32_t>(ip + 4) +
               load_host<uint32_t>(ip + 8) + load_host<uint32_t>(ip + 12) +
               load_host<uint32_t>(ip + 16);
  for (uint32_t i = 20; i < hdr_len; i += 4)
    s += load_host<uint32_t>(ip + i);  // options
  s = (s & 0xFFFFFFFF) + (s >> 32);
  s = (s & 0xFFFF) + (s >> 16);
  s = (s & 0xFFFF) + (s >> 16);
  s = (s & 0xFFFF) + (s >> 16);
  return s == 0xFFFF;
}

// RFC 791 options: EOL and NOP are one byte, all others are TLVs whose length
// counts the type and length bytes and stays within the header.
bool ipv4_options_ok(const uint8_t* opt, uint32_t n) {
  uint32_t i = 0;
  while (i < n) {
    const uint8_t type = opt[i];
    if (type == 0) break;  // EOL: the rest is padding
    if (type == 1) {
      ++i;
      continue;
    }
    if (n - i < 2) return false;
    const uint32_t olen = opt[i + 1];
    if (olen < 2 || olen > n - i) return false;
    i += olen;
  }
  return true;
}

// Result of walking an IPv6 extension-header chain.
struct Ipv6Chain {
  uint32_t end = 0;       // offset of the header after the chain (L4) or of fragment data
  uint32_t frag_hdr = 0;  // offset of the Fragment header, if seen
  uint32_t frag_id = 0;
  uint16_t frag_offset = 0;  // bytes
  uint8_t proto = 0;         // next header after the chain
  uint8_t count = 0;         // extension headers seen
  bool frag_seen = false;
  bool more = false;  // M flag
  bool fragment() const { return frag_offset != 0 || more; }
};

// Walks the chain from `off` (first next-header `nh`) up to `end`. Stops at
// the first non-extension header (L4, ESP, No Next Header, unknown), or after
// the Fragment header of a non-first fragment, whose data is not parseable.
ParseError walk_ipv6_chain(const uint8_t* d, uint32_t off, uint32_t end, uint8_t nh, Ipv6Chain* c) {
  for (;;) {
    uint32_t unit, extra;
    switch (nh) {
      case kIpv6HopByHop:
        // RFC 8200 4.1: only directly after the IPv6 header.
        if (c->count != 0) return ParseError::kIpv6HopByHopNotFirst;
        [[fallthrough]];
      case kIpv6Routing:
      case kIpv6DestOpts:
      case kIpv6Mobility:
      case kIpv6Hip:
      case kIpv6Shim6:
        unit = 8, extra = 1;  // length in 8-octet units, not counting the first 8
        break;
      case kIpv6Ah:
        unit = 4, extra = 2;  // RFC 4302: length in 4-octet units, minus 2
        break;
      case kIpv6Fragment:
        unit = 0, extra = 0;  // fixed 8 bytes
        break;
      default:
        c->end = off;
        c->proto = nh;
        return ParseError::kOk;
    }
    // Bounds the work an attacker can make us do per packet.
    if (c->count == kMaxIpv6ExtHeaders) return ParseError::kIpv6ExtChainTooLong;
    ++c->count;
    if (end - off < 8) return ParseError::kTruncatedIpv6ExtHeader;
    const uint8_t* h = d + off;
    const uint32_t hlen = unit == 0 ? 8 : (h[1] + extra) * unit;
    if (hlen > end - off) return ParseError::kTruncatedIpv6ExtHeader;
    if (nh == kIpv6Fragment) {
      // A second Fragment header only serves overlap/evasion tricks.
      if (c->frag_seen) return ParseError::kBadFragment;
      const uint16_t fo = load_be16(h + 2);
      c->frag_seen = true;
      c->frag_hdr = off;
      c->frag_offset = fo & 0xFFF8;
      c->more = (fo & 1) != 0;
      c->frag_id = load_be32(h + 4);
      if (c->frag_offset != 0) {
        c->end = off + hlen;
        c->proto = h[0];
        return ParseError::kOk;
      }
    }
    nh = h[0];
    off += hlen;
  }
}

bool is_icmp4_error(uint8_t type) {
  return type == 3 || type == 4 || type == 5 || type == 11 || type == 12;
}
bool is_icmp_echo(Family f, uint8_t type) {
  return f == Family::kIpv4 ? (type == 8 || type == 0) : (type == 128 || type == 129);
}

// Parses the IP packet quoted in an ICMP error at [off, end). The quote may
// stop anywhere after the first 8 bytes of L4 (RFC 792; RFC 4443 quotes as
// much as fits), so inner lengths are not checked against what is present.
// Never descends into a quoted ICMP error's own quote.
ParseError parse_quote(const uint8_t* d, uint32_t off, uint32_t end, Family family,
                       QuotedPacket* q) {
  if (off >= end) return ParseError::kTruncatedIcmpQuote;
  const uint8_t* ip = d + off;
  const uint32_t avail = end - off;
  uint32_t l4;
  bool fragment, non_first;
  if (family == Family::kIpv4) {
    if ((ip[0] >> 4) != 4) return ParseError::kBadIcmpQuote;
    if (avail < kIpv4MinHdr) return ParseError::kTruncatedIcmpQuote;
    const uint32_t ihl = (ip[0] & 0xFu) * 4;
    if (ihl < kIpv4MinHdr) return ParseError::kBadIcmpQuote;
    if (avail < ihl) return ParseError::kTruncatedIcmpQuote;
    if (load_be16(ip + 2) < ihl) return ParseError::kBadIcmpQuote;
    const uint16_t fo = load_be16(ip + 6);
    fragment = (fo & 0x3FFF) != 0;
    non_first = (fo & 0x1FFF) != 0;
    q->proto = ip[9];
    q->src_off = u16(off + 12);
    q->dst_off = u16(off + 16);
    l4 = off + ihl;
  } else {
    if ((ip[0] >> 4) != 6) return ParseError::kBadIcmpQuote;
    if (avail < kIpv6HdrLen) return ParseError::kTruncatedIcmpQuote;
    Ipv6Chain c;
    const ParseError e = walk_ipv6_chain(d, off + kIpv6HdrLen, end, ip[6], &c);
    if (e == ParseError::kTruncatedIpv6ExtHeader) return ParseError::kTruncatedIcmpQuote;
    if (e != ParseError::kOk) return ParseError::kBadIcmpQuote;
    fragment = c.fragment();
    non_first = c.frag_offset != 0;
    q->proto = c.proto;
    q->src_off = u16(off + 8);
    q->dst_off = u16(off + 24);
    l4 = c.end;
  }
  q->l3_off = u16(off);
  q->family = family;
  if (non_first) return ParseError::kOk;  // no L4 header in the quote

  const uint32_t present = end - l4;
  const uint8_t icmp_proto = family == Family::kIpv4 ? kProtoIcmp : kProtoIcmpv6;
  if (q->proto == kProtoTcp || q->proto == kProtoUdp) {
    if (present < 8) return ParseError::kTruncatedIcmpQuote;
    // Fragments are keyed without ports (see flow_key.h), so the quote is too.
    if (!fragment) {
      q->sport = load_be16(d + l4);
      q->dport = load_be16(d + l4 + 2);
    }
  } else if (q->proto == icmp_proto) {
    if (present < 8) return ParseError::kTruncatedIcmpQuote;
    if (!fragment && is_icmp_echo(family, d[l4])) {
      q->sport = q->dport = load_be16(d + l4 + 4);
    }
  } else if (present == 0) {
    return ParseError::kOk;
  }
  q->l4_off = u16(l4);
  q->l4_quoted = static_cast<uint8_t>(std::min<uint32_t>(present, 255));
  return ParseError::kOk;
}

ParseError parse_icmp(const uint8_t* d, uint32_t off, uint32_t end, PacketMeta* m) {
  if (end - off < kIcmpHdrLen) return ParseError::kTruncatedIcmp;
  const uint8_t type = d[off];
  m->icmp_type = type;
  m->icmp_code = d[off + 1];
  m->payload_off = u16(off + kIcmpHdrLen);
  m->flags |= kMetaHasL4;
  if (is_icmp_echo(m->family, type)) {
    m->sport = m->dport = load_be16(d + off + 4);
    return ParseError::kOk;
  }
  const bool error = m->family == Family::kIpv4 ? is_icmp4_error(type) : (type >= 1 && type <= 4);
  if (!error) return ParseError::kOk;
  m->flags |= kMetaIcmpError;
  return parse_quote(d, off + kIcmpHdrLen, end, m->family, &m->inner);
}

// L4 at `off`, bounded by the datagram end. For a first fragment the UDP
// length describes the whole datagram, so only its lower bound is checked.
TRIPOD_ALWAYS_INLINE ParseError parse_l4(const uint8_t* d, uint32_t off, uint32_t end,
                                         PacketMeta* m) {
  m->l4_off = u16(off);
  if (TRIPOD_LIKELY(m->proto == kProtoTcp)) {
    if (end - off < kTcpMinHdr) return ParseError::kTruncatedTcp;
    const uint8_t* t = d + off;
    const uint32_t hl = (t[12] >> 4) * 4u;
    if (hl < kTcpMinHdr || hl > end - off) return ParseError::kBadTcpHeaderLength;
    m->sport = load_be16(t);
    m->dport = load_be16(t + 2);
    m->tcp_seq = load_be32(t + 4);
    m->tcp_ack = load_be32(t + 8);
    m->tcp_flags = t[13];
    m->tcp_window = load_be16(t + 14);
    m->tcp_hdr_len = static_cast<uint8_t>(hl);
    m->payload_off = u16(off + hl);
    m->flags |= kMetaHasL4;
    return ParseError::kOk;
  }
  if (m->proto == kProtoUdp) {
    if (end - off < kUdpHdrLen) return ParseError::kTruncatedUdp;
    const uint32_t ulen = load_be16(d + off + 4);
    if (ulen < kUdpHdrLen || (ulen > end - off && !m->has(kMetaFragment))) {
      return ParseError::kBadUdpLength;
    }
    m->sport = load_be16(d + off);
    m->dport = load_be16(d + off + 2);
    m->payload_off = u16(off + kUdpHdrLen);
    m->flags |= kMetaHasL4;
    return ParseError::kOk;
  }
  const uint8_t icmp = m->family == Family::kIpv4 ? kProtoIcmp : kProtoIcmpv6;
  if (m->proto == icmp) return parse_icmp(d, off, end, m);
  return ParseError::kOk;  // unknown L4: nothing more to check
}

TRIPOD_ALWAYS_INLINE ParseError parse_ipv4(const uint8_t* d, uint32_t off, uint32_t len,
                                           PacketMeta* m) {
  m->l3_off = u16(off);
  if (len - off < kIpv4MinHdr) return ParseError::kTruncatedIpv4;
  const uint8_t* ip = d + off;
  if (TRIPOD_UNLIKELY((ip[0] >> 4) != 4)) return ParseError::kBadIpv4Version;
  const uint32_t ihl = (ip[0] & 0xFu) * 4;
  if (TRIPOD_UNLIKELY(ihl < kIpv4MinHdr)) return ParseError::kBadIpv4HeaderLength;
  if (ihl > len - off) return ParseError::kTruncatedIpv4;
  if (TRIPOD_UNLIKELY(!ipv4_header_sum_ok(ip, ihl))) return ParseError::kBadIpv4Checksum;
  const uint32_t total = load_be16(ip + 2);
  if (TRIPOD_UNLIKELY(total < ihl || total > len - off)) return ParseError::kBadIpv4TotalLength;

  m->family = Family::kIpv4;
  m->l3_end = u16(off + total);  // bytes after it are Ethernet padding
  m->src_off = u16(off + 12);
  m->dst_off = u16(off + 16);
  m->ttl = ip[8];
  m->proto = ip[9];
  m->ip_frag_id_lo = load_be16(ip + 4);
  m->l4_off = u16(off + ihl);
  m->payload_off = m->l3_end;
  if (TRIPOD_UNLIKELY(ihl > kIpv4MinHdr)) {
    m->flags |= kMetaIpOptions;
    if (!ipv4_options_ok(ip + kIpv4MinHdr, ihl - kIpv4MinHdr)) return ParseError::kBadIpv4Options;
  }
  const uint16_t fo = load_be16(ip + 6);
  if (fo & 0x4000) m->flags |= kMetaDontFragment;
  if (TRIPOD_UNLIKELY(fo & 0x3FFF)) {  // MF or a fragment offset
    m->flags |= kMetaFragment;
    m->frag_offset = u16((fo & 0x1FFFu) * 8);
    // Reassembly past 64 KiB ("ping of death").
    if (m->frag_offset + (total - ihl) > kMaxDatagram) return ParseError::kBadFragment;
    // RFC 1858: offset 1 with TCP can only overwrite the flags of fragment 0.
    if (m->frag_offset == 8 && m->proto == kProtoTcp) return ParseError::kBadFragment;
    if (m->frag_offset != 0) return ParseError::kOk;
    m->flags |= kMetaFirstFrag;
  }
  return parse_l4(d, off + ihl, off + total, m);
}

ParseError parse_ipv6(const uint8_t* d, uint32_t off, uint32_t len, PacketMeta* m) {
  m->l3_off = u16(off);
  if (len - off < kIpv6HdrLen) return ParseError::kTruncatedIpv6;
  const uint8_t* ip = d + off;
  if ((ip[0] >> 4) != 6) return ParseError::kBadIpv6Version;
  const uint32_t plen = load_be16(ip + 4);
  if (plen > len - off - kIpv6HdrLen) return ParseError::kBadIpv6PayloadLength;

  m->family = Family::kIpv6;
  const uint32_t end = off + kIpv6HdrLen + plen;
  m->l3_end = u16(end);
  m->src_off = u16(off + 8);
  m->dst_off = u16(off + 24);
  m->ttl = ip[7];
  m->l4_off = u16(off + kIpv6HdrLen);
  m->payload_off = u16(end);
  Ipv6Chain c;
  const ParseError e = walk_ipv6_chain(d, off + kIpv6HdrLen, end, ip[6], &c);
  if (c.count != 0) m->flags |= kMetaIpOptions;
  if (e != ParseError::kOk) return e;
  m->proto = c.proto;
  m->l4_off = u16(c.end);
  if (c.frag_seen) {
    m->ip_frag_id_lo = static_cast<uint16_t>(c.frag_id);
    // RFC 6946: an atomic fragment (offset 0, M clear) is a whole packet.
    if (c.fragment()) {
      m->flags |= kMetaFragment;
      m->frag_offset = c.frag_offset;
      const uint32_t data_len = end - (c.frag_hdr + 8);
      // RFC 8200 4.5: non-last fragments carry a multiple of 8 bytes.
      if ((c.more && (data_len & 7) != 0) || c.frag_offset + data_len > kMaxDatagram) {
        return ParseError::kBadFragment;
      }
      if (c.frag_offset != 0) return ParseError::kOk;
      m->flags |= kMetaFirstFrag;
    }
  }
  return parse_l4(d, c.end, end, m);
}

}  // namespace

ParseError parse_packet(const uint8_t* data, uint32_t len, PacketMeta* meta) {
  PacketMeta& m = *meta;
  m = PacketMeta{};
  // Offsets are 16-bit; nothing this gateway receives is longer.
  len = std::min<uint32_t>(len, 0xFFFF);
  if (TRIPOD_UNLIKELY(len < kEthHdrLen)) return ParseError::kTruncatedEthernet;
  uint32_t off = kEthHdrLen;
  uint16_t type = load_be16(data + 12);
  if (TRIPOD_UNLIKELY(is_vlan_tpid(type))) {
    if (len - off < kVlanTagLen) return ParseError::kTruncatedVlan;
    m.flags |= kMetaVlan;
    m.vlan_tci = load_be16(data + off);
    type = load_be16(data + off + 2);
    off += kVlanTagLen;
    if (is_vlan_tpid(type)) return ParseError::kStackedVlan;
  }
  m.ethertype = type;
  if (TRIPOD_LIKELY(type == kEtherTypeIpv4)) return parse_ipv4(data, off, len, &m);
  if (type == kEtherTypeIpv6) return parse_ipv6(data, off, len, &m);
  m.flags |= kMetaNotIp;
  m.l3_off = u16(off);
  m.l4_off = m.payload_off = m.l3_end = u16(len);
  return ParseError::kOk;
}

}  // namespace tripod
