// Writes the TCP control frames the data plane originates (the SYN proxy's
// SYN-ACK, backend SYN and ACKs; the resets of a killed backend) into a
// caller's buffer, and the checksum helper in-place rewrites share.
#pragma once

#include <cstdint>

#include "common/byte_order.h"
#include "packet/checksum.h"
#include "packet/packet_meta.h"

namespace tripod {

// TCP options, assembled in place (at most 40 bytes; the proxy's longest
// set is 20).
class TcpOptWriter {
 public:
  void mss(uint16_t v) { put4(2, 4, static_cast<uint8_t>(v >> 8), static_cast<uint8_t>(v)); }
  // SACK-permitted + timestamps in 12 bytes, or NOP NOP + timestamps.
  void timestamps(bool sack_permitted, uint32_t val, uint32_t ecr) {
    if (sack_permitted) {
      put4(4, 2, 8, 10);
    } else {
      put4(1, 1, 8, 10);
    }
    put32(val);
    put32(ecr);
  }
  void sack_permitted() { put4(1, 1, 4, 2); }
  // What a SYN or SYN-ACK offers of the two: both in 12 bytes, or either.
  void sack_timestamps(bool sack, bool with_timestamps, uint32_t val, uint32_t ecr) {
    if (with_timestamps) {
      timestamps(sack, val, ecr);
    } else if (sack) {
      sack_permitted();
    }
  }
  void wscale(uint8_t shift) { put4(1, 3, 3, shift); }

  const uint8_t* data() const { return b_; }
  uint8_t size() const { return n_; }

 private:
  void put4(uint8_t a, uint8_t b, uint8_t c, uint8_t d) {
    b_[n_] = a;
    b_[n_ + 1] = b;
    b_[n_ + 2] = c;
    b_[n_ + 3] = d;
    n_ = static_cast<uint8_t>(n_ + 4);
  }
  void put32(uint32_t v) {
    store_be32(b_ + n_, v);
    n_ = static_cast<uint8_t>(n_ + 4);
  }
  uint8_t b_[40] = {};
  uint8_t n_ = 0;
};

struct TcpFrameSpec {
  const uint8_t* l2 = nullptr;  // Ethernet header to copy (14 bytes, or 18 with a VLAN tag)
  uint16_t l2_len = 0;
  bool swap_macs = false;  // a reply: back to the router the input came from
  Family family = Family::kNone;
  const uint8_t* src = nullptr;  // network order, family's length
  const uint8_t* dst = nullptr;
  uint8_t ttl = 64;
  uint8_t dscp_tos = 0;     // IPv4 TOS / IPv6 traffic class; the ECN bits are cleared
  uint32_t flow_label = 0;  // IPv6 only
  uint16_t sport = 0;
  uint16_t dport = 0;
  uint32_t seq = 0;
  uint32_t ack = 0;
  uint8_t flags = 0;
  uint16_t window = 0;
  const TcpOptWriter* opts = nullptr;
};

// A frame in the direction of `frame` (its L2 header, addresses, ports).
TcpFrameSpec tcp_frame_forward(const uint8_t* frame, const PacketMeta& m);
// A reply to `frame`: MACs, addresses and ports swapped.
TcpFrameSpec tcp_frame_reply(const uint8_t* frame, const PacketMeta& m);

// Ethernet [+ VLAN] + IPv4 (20 bytes, DF, id 0) or IPv6 (no extension
// headers) + TCP with options, checksums computed. Returns the frame length,
// or 0 if `cap` is too small.
uint32_t write_tcp_frame(const TcpFrameSpec& s, uint8_t* out, uint32_t cap);

// True if meta describes an unfragmented TCP segment with its header.
inline bool is_tcp_segment(const PacketMeta& m) {
  return m.has(kMetaHasL4) && m.proto == kProtoTcp && !m.has(kMetaFragment) &&
         (m.family == Family::kIpv4 || m.family == Family::kIpv6) && m.tcp_hdr_len >= 20;
}

// Stores a new 32-bit value at `p`, which sits `rel` bytes after the start of
// the TCP header, and returns the checksum updated for it (RFC 1624). A field
// at an odd offset straddles the checksum's 16-bit words; the ones'
// complement sum commutes with byte swapping (RFC 1071 2(B)), so it is
// updated in the byte-swapped domain.
inline uint16_t rewrite32(uint8_t* p, uint32_t rel, uint32_t new_v, uint16_t csum) {
  const uint32_t old_v = load_be32(p);
  store_be32(p, new_v);
  if ((rel & 1) == 0) return csum_update32(csum, old_v, new_v);
  return bswap(csum_update32(bswap(csum), old_v, new_v));
}

// A RST|ACK for the connection of TCP segment `frame` (meta `m`), written
// into `out` (not overlapping the input), checksums computed; returns its
// length, or 0 if `cap` is too small or `m` is not a TCP segment.
// - to_sender: back to the segment's sender (MACs, addresses and ports
//   swapped), seq = the segment's ack, which is exactly what the sender
//   expects next (RFC 5961 accepts it at once); ack = the segment's end.
// - otherwise: on to the segment's receiver, seq = the segment's seq.
uint32_t write_tcp_reset(const uint8_t* frame, const PacketMeta& m, bool to_sender, uint8_t* out,
                         uint32_t cap);

}  // namespace tripod
