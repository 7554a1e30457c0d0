// What the parser learned about one packet: offsets into the frame plus the
// few header fields every stage needs. Fixed size, trivially copyable, no
// pointers (a burst keeps its metas in an array beside the frames).
//
// Byte order: offsets and the decoded fields below are host order. Addresses
// are NOT copied: they stay in the frame, in network order, at src_off/dst_off.
#pragma once

#include <cstdint>
#include <type_traits>

namespace tripod {

inline constexpr uint16_t kEtherTypeIpv4 = 0x0800;
inline constexpr uint16_t kEtherTypeIpv6 = 0x86DD;
inline constexpr uint16_t kEtherTypeArp = 0x0806;
inline constexpr uint16_t kEtherTypeVlan = 0x8100;

inline constexpr uint8_t kProtoIcmp = 1;
inline constexpr uint8_t kProtoTcp = 6;
inline constexpr uint8_t kProtoUdp = 17;
inline constexpr uint8_t kProtoIcmpv6 = 58;

inline constexpr uint8_t kTcpFin = 0x01;
inline constexpr uint8_t kTcpSyn = 0x02;
inline constexpr uint8_t kTcpRst = 0x04;
inline constexpr uint8_t kTcpPsh = 0x08;
inline constexpr uint8_t kTcpAck = 0x10;
inline constexpr uint8_t kTcpUrg = 0x20;
inline constexpr uint8_t kTcpEce = 0x40;
inline constexpr uint8_t kTcpCwr = 0x80;

enum class Family : uint8_t { kNone = 0, kIpv4 = 4, kIpv6 = 6 };

// Flags in PacketMeta::flags.
inline constexpr uint16_t kMetaVlan = 1u << 0;       // one 802.1Q tag was present
inline constexpr uint16_t kMetaIpOptions = 1u << 1;  // IPv4 options / IPv6 extension headers
inline constexpr uint16_t kMetaFragment = 1u << 2;   // part of a fragmented datagram
inline constexpr uint16_t kMetaFirstFrag = 1u << 3;  // ... and the first part (L4 header present)
inline constexpr uint16_t kMetaDontFragment = 1u << 4;  // IPv4 DF
inline constexpr uint16_t kMetaHasL4 = 1u << 5;         // l4_off points at a complete L4 header
inline constexpr uint16_t kMetaIcmpError = 1u << 6;     // ICMP error; `inner` describes the quote
inline constexpr uint16_t kMetaNotIp = 1u << 7;         // ARP, LLDP, ...: nothing past L2 parsed

// The IP + L4 header quoted inside an ICMP/ICMPv6 error (RFC 792, RFC 4443).
// The quote may be truncated: only the first 8 bytes of L4 are guaranteed.
struct QuotedPacket {
  uint16_t l3_off = 0;   // offset of the quoted IP header in the frame
  uint16_t l4_off = 0;   // offset of the quoted L4 header (0 if not reached)
  uint16_t src_off = 0;  // quoted source address
  uint16_t dst_off = 0;  // quoted destination address
  uint16_t sport = 0;    // quoted ports (TCP/UDP), or ICMP echo id in both; 0 if the
                         // quoted packet is a fragment (keyed without ports, flow_key.h)
  uint16_t dport = 0;
  uint8_t proto = 0;  // quoted L4 protocol
  Family family = Family::kNone;
  uint8_t l4_quoted = 0;  // bytes of the quoted L4 header present (capped at 255)
  uint8_t pad = 0;
};
static_assert(sizeof(QuotedPacket) == 16);

struct PacketMeta {
  uint16_t l3_off = 0;       // start of the IP header
  uint16_t l4_off = 0;       // start of the L4 header, valid if kMetaHasL4; for other IP
                             // packets, the end of the IP headers (fragment data, ESP, ...)
  uint16_t payload_off = 0;  // start of the L4 payload (== l3_end when no L4)
  uint16_t l3_end = 0;       // end of the IP datagram; bytes after it are L2 padding
  uint16_t src_off = 0;      // source address (4 or 16 bytes, network order)
  uint16_t dst_off = 0;      // destination address
  uint16_t flags = 0;        // kMeta*
  uint16_t vlan_tci = 0;     // valid if kMetaVlan
  uint16_t ethertype = 0;    // after the VLAN tag, if any
  uint16_t sport = 0;        // TCP/UDP ports; ICMP echo: the id in both
  uint16_t dport = 0;
  uint16_t tcp_window = 0;
  uint32_t tcp_seq = 0;
  uint32_t tcp_ack = 0;
  uint16_t frag_offset = 0;    // in bytes (valid if kMetaFragment)
  uint16_t ip_frag_id_lo = 0;  // IPv4 id / low 16 bits of the IPv6 fragment id
  Family family = Family::kNone;
  uint8_t proto = 0;  // L4 protocol after the IPv6 extension chain
  uint8_t ttl = 0;    // TTL / hop limit
  uint8_t tcp_flags = 0;
  uint8_t tcp_hdr_len = 0;  // data offset * 4
  uint8_t icmp_type = 0;
  uint8_t icmp_code = 0;
  uint8_t pad = 0;
  QuotedPacket inner;  // valid if kMetaIcmpError

  bool has(uint16_t f) const { return (flags & f) != 0; }
  uint8_t addr_len() const { return family == Family::kIpv6 ? 16 : 4; }
};
static_assert(std::is_trivially_copyable_v<PacketMeta>);
static_assert(sizeof(PacketMeta) == 60);

}  // namespace tripod
