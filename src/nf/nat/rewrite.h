// NAT packet rewriting in place, with incremental checksum updates
// (RFC 1624): the primitives FullNAT, egress SNAT and DSR are built from.
//
// - nat_rewrite: a packet's source or destination (address, port). Ports are
//   TCP/UDP ports; for ICMP echo the identifier plays the port of the host
//   that sent the request (the source side of a request, the destination side
//   of a reply). IPv4 header, TCP/UDP/ICMPv6 pseudo-header and L4 checksums
//   are updated; a UDP-over-IPv4 checksum of 0 ("none") stays 0.
// - nat_rewrite_quote: the packet quoted inside an ICMP error, so that a
//   "fragmentation needed" / "packet too big" about a translated flow reaches
//   the right host describing the packet *it* sent, and path-MTU discovery
//   survives NAT (RFC 5508 §4.2, RFC 3022 §4.3). The quoted IPv4 header
//   checksum, the quoted L4 checksum when it is inside the quote, and the
//   outer ICMP checksum are all kept right.
// - clamp_mss: lowers the MSS option of a SYN / SYN-ACK.
// - set_dst_mac: DSR (L2): only the destination MAC changes.
//
// Fragments are not translated (kUnsupported, a counted drop upstream):
// translating them needs reassembly or fragment tracking, which is not here.
// Address families never change (no NAT64).
#pragma once

#include <cstdint>

#include "packet/packet_meta.h"

namespace tripod {

enum class NatSide : uint8_t { kSource, kDestination };
enum class NatResult : uint8_t { kOk, kUnsupported };

// `addr` has the packet's address length; meta's ports are updated too. For
// an ICMP error only the (outer) address changes; `port` is ignored.
NatResult nat_rewrite(uint8_t* frame, PacketMeta& meta, NatSide side, const uint8_t* addr,
                      uint16_t port);

// Both endpoints at once (FullNAT's two rewrites), the same result as two
// nat_rewrite calls. For unfragmented TCP/UDP, the changes are summed once
// and folded into each checksum once (the per-packet path); anything else
// falls back to nat_rewrite.
NatResult nat_rewrite_both(uint8_t* frame, PacketMeta& meta, const uint8_t* src, uint16_t sport,
                           const uint8_t* dst, uint16_t dport);

// Rewrites one endpoint of the packet quoted in an ICMP error (meta must
// have kMetaIcmpError). `side` is relative to the quoted packet.
NatResult nat_rewrite_quote(uint8_t* frame, PacketMeta& meta, NatSide side, const uint8_t* addr,
                            uint16_t port);

// True if the MSS option of a TCP SYN was lowered to `max_mss`.
bool clamp_mss(uint8_t* frame, const PacketMeta& meta, uint16_t max_mss);

inline void set_dst_mac(uint8_t* frame, const uint8_t mac[6]) {
  for (int i = 0; i < 6; ++i)
    frame[i] = mac[i];
}

}  // namespace tripod
