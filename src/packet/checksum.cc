// Internet checksum. The running sum holds host-order loads of wire bytes:
// the ones' complement sum commutes with byte swapping (RFC 1071 2(B)), so
// only csum_finish converts to the load_be16 convention. Summing 64-bit words
// with end-around carry equals 16-bit ones' complement addition because
// 2^16 == 1 (mod 0xFFFF).
#include "packet/checksum.h"

#include "common/byte_order.h"

namespace tripod {
namespace {

inline uint64_t add_carry(uint64_t s, uint64_t w) {
  s += w;
  return s + (s < w);
}

inline uint16_t fold(uint64_t s) {
  s = (s & 0xFFFFFFFF) + (s >> 32);
  s = (s & 0xFFFFFFFF) + (s >> 32);
  s = (s & 0xFFFF) + (s >> 16);
  s = (s & 0xFFFF) + (s >> 16);
  return static_cast<uint16_t>(s);
}

uint16_t l4_csum_field(const PacketMeta& m) {
  switch (m.proto) {
    case kProtoTcp:
      return 16;
    case kProtoUdp:
      return 6;
    case kProtoIcmp:
      return m.family == Family::kIpv4 ? 2 : 0;
    case kProtoIcmpv6:
      return m.family == Family::kIpv6 ? 2 : 0;
    default:
      return 0;
  }
}

// Bytes covered by the L4 checksum: the UDP length if it is sane (bytes after
// it are not part of the datagram), else everything up to the IP end.
uint32_t l4_csum_len(const uint8_t* frame, const PacketMeta& m) {
  const uint32_t n = m.l3_end - m.l4_off;
  if (m.proto == kProtoUdp && n >= 8) {
    const uint32_t ulen = load_be16(frame + m.l4_off + 4);
    if (ulen >= 8 && ulen <= n) return ulen;
  }
  return n;
}

// RFC 793 / RFC 8200 8.1 pseudo-header. ICMPv4 has none.
uint64_t pseudo_sum(const uint8_t* frame, const PacketMeta& m, uint32_t l4_len) {
  if (m.proto == kProtoIcmp) return 0;
  const size_t alen = m.addr_len();
  uint64_t s = csum_add_bytes(0, frame + m.src_off, alen);
  s = csum_add_bytes(s, frame + m.dst_off, alen);
  uint8_t tail[8] = {};
  if (m.family == Family::kIpv4) {
    tail[1] = m.proto;
    store_be16(tail + 2, static_cast<uint16_t>(l4_len));
    return csum_add_bytes(s, tail, 4);
  }
  store_be32(tail, l4_len);
  tail[7] = m.proto;
  return csum_add_bytes(s, tail, 8);
}

bool l4_checksummable(const PacketMeta& m) {
  return m.has(kMetaHasL4) && !m.has(kMetaFragment) && l4_csum_field(m) != 0 &&
         m.l3_end >= m.l4_off + 8;
}

}  // namespace

uint64_t csum_add_bytes(uint64_t sum, const uint8_t* p, size_t len) {
  uint64_t s = sum;
  // Four independent loads per step keep the adder busy; the carries are
  // folded back in immediately (add_carry), so nothing is lost.
  while (len >= 32) {
    s = add_carry(s, load_host<uint64_t>(p));
    s = add_carry(s, load_host<uint64_t>(p + 8));
    s = add_carry(s, load_host<uint64_t>(p + 16));
    s = add_carry(s, load_host<uint64_t>(p + 24));
    p += 32;
    len -= 32;
  }
  while (len >= 8) {
    s = add_carry(s, load_host<uint64_t>(p));
    p += 8;
    len -= 8;
  }
  if (len >= 4) {
    s = add_carry(s, load_host<uint32_t>(p));
    p += 4;
    len -= 4;
  }
  if (len >= 2) {
    s = add_carry(s, load_host<uint16_t>(p));
    p += 2;
    len -= 2;
  }
  if (len != 0) {
    // An odd last byte is the high byte of a zero-padded 16-bit word.
    const uint8_t last[2] = {p[0], 0};
    s = add_carry(s, load_host<uint16_t>(last));
  }
  return s;
}

uint16_t csum_finish(uint64_t sum) {
  return byteswap_if_le(static_cast<uint16_t>(~fold(sum)));
}

uint16_t ipv4_header_checksum(const uint8_t* ip, size_t hdr_len) {
  uint64_t s = csum_add_bytes(0, ip, 10);
  s = csum_add_bytes(s, ip + 12, hdr_len - 12);
  return csum_finish(s);
}

uint16_t l4_checksum(const uint8_t* frame, const PacketMeta& meta) {
  if (!l4_checksummable(meta)) return 0;
  const uint32_t cs = l4_csum_field(meta);
  const uint32_t n = l4_csum_len(frame, meta);
  const uint8_t* l4 = frame + meta.l4_off;
  uint64_t s = pseudo_sum(frame, meta, n);
  s = csum_add_bytes(s, l4, cs);
  s = csum_add_bytes(s, l4 + cs + 2, n - cs - 2);
  return csum_finish(s);
}

bool l4_checksum_ok(const uint8_t* frame, const PacketMeta& meta) {
  if (!l4_checksummable(meta)) return false;
  const uint32_t cs = l4_csum_field(meta);
  const uint8_t* l4 = frame + meta.l4_off;
  if (meta.proto == kProtoUdp && load_be16(l4 + cs) == 0) {
    // "No checksum" exists for UDP over IPv4 only (RFC 8200 8.1).
    return meta.family == Family::kIpv4;
  }
  const uint32_t n = l4_csum_len(frame, meta);
  // Summing over the stored checksum too gives 0xFFFF when it is right, in
  // either of its two representations of zero.
  return fold(csum_add_bytes(pseudo_sum(frame, meta, n), l4, n)) == 0xFFFF;
}

void fix_checksums(uint8_t* frame, const PacketMeta& meta) {
  if (meta.family == Family::kIpv4) {
    uint8_t* ip = frame + meta.l3_off;
    const size_t ihl = (ip[0] & 0xFu) * 4u;
    if (ihl >= 20) store_be16(ip + 10, ipv4_header_checksum(ip, ihl));
  }
  if (!l4_checksummable(meta)) return;
  uint16_t c = l4_checksum(frame, meta);
  if (meta.proto == kProtoUdp && c == 0) c = 0xFFFF;  // RFC 768: 0 means "none"
  store_be16(frame + meta.l4_off + l4_csum_field(meta), c);
}

uint16_t csum_update_bytes(uint16_t hc, const uint8_t* old_b, const uint8_t* new_b, size_t len) {
  // RFC 1624 eqn. 3 applied word by word: ~HC + sum(~m) + sum(m').
  uint64_t s = static_cast<uint16_t>(~hc);
  for (size_t i = 0; i + 1 < len; i += 2) {
    s += static_cast<uint16_t>(~load_be16(old_b + i));
    s += load_be16(new_b + i);
  }
  return static_cast<uint16_t>(~fold(s));
}

}  // namespace tripod
