// Packet parser: Ethernet (+ one 802.1Q tag) -> IPv4 / IPv6 (extension chain)
// -> TCP / UDP / ICMP / ICMPv6, including the packet quoted in ICMP errors.
//
// Contract: every read is bounded by `len` (the captured length). A malformed
// packet returns a typed ParseError, which the caller counts as a drop; the
// parser never reads past the buffer, never allocates, never throws.
// Checksums of L4 are not verified here (see checksum.h); the IPv4 header
// checksum is, because it is 20 bytes and a bad one is a certain drop.
#pragma once

#include <cstdint>

#include "common/counters.h"
#include "packet/packet_meta.h"

namespace tripod {

#define TRIPOD_PARSE_ERRORS(X)                            \
  X(kOk, "ok")                                            \
  X(kTruncatedEthernet, "truncated_ethernet")             \
  X(kTruncatedVlan, "truncated_vlan")                     \
  X(kStackedVlan, "stacked_vlan")                         \
  X(kTruncatedIpv4, "truncated_ipv4")                     \
  X(kBadIpv4Version, "bad_ipv4_version")                  \
  X(kBadIpv4HeaderLength, "bad_ipv4_header_length")       \
  X(kBadIpv4TotalLength, "bad_ipv4_total_length")         \
  X(kBadIpv4Checksum, "bad_ipv4_checksum")                \
  X(kBadIpv4Options, "bad_ipv4_options")                  \
  X(kTruncatedIpv6, "truncated_ipv6")                     \
  X(kBadIpv6Version, "bad_ipv6_version")                  \
  X(kBadIpv6PayloadLength, "bad_ipv6_payload_length")     \
  X(kTruncatedIpv6ExtHeader, "truncated_ipv6_ext_header") \
  X(kIpv6ExtChainTooLong, "ipv6_ext_chain_too_long")      \
  X(kIpv6HopByHopNotFirst, "ipv6_hop_by_hop_not_first")   \
  X(kBadFragment, "bad_fragment")                         \
  X(kTruncatedTcp, "truncated_tcp")                       \
  X(kBadTcpHeaderLength, "bad_tcp_header_length")         \
  X(kTruncatedUdp, "truncated_udp")                       \
  X(kBadUdpLength, "bad_udp_length")                      \
  X(kTruncatedIcmp, "truncated_icmp")                     \
  X(kTruncatedIcmpQuote, "truncated_icmp_quote")          \
  X(kBadIcmpQuote, "bad_icmp_quote")                      \
  X(kBadTcpOptions, "bad_tcp_options")

TRIPOD_DECLARE_REASONS(ParseError, TRIPOD_PARSE_ERRORS)
using ParseCounters = CounterSet<ParseError, static_cast<size_t>(ParseError::kCount)>;

// Parses one Ethernet frame of `len` captured bytes. On kOk, `meta` is
// complete; on error, `meta` holds whatever was parsed before the error.
// Non-IP frames (ARP, ...) return kOk with kMetaNotIp set.
// Unknown L4 protocols return kOk without kMetaHasL4.
// An outer 0x8100 or 0x88a8 tag counts as the one VLAN tag. Frames longer
// than 65535 bytes are parsed as their first 65535 (offsets are 16-bit).
// Besides the malformations named by the errors, kBadFragment also covers
// reassembly past 64 KiB, an IPv4 TCP fragment at offset 8 (RFC 1858), a
// non-last IPv6 fragment whose length is not a multiple of 8, and a second
// IPv6 Fragment header. An ICMP error's quote must be of the same family and
// hold 8 bytes of L4 for TCP, UDP and ICMP (RFC 792 guarantees them).
ParseError parse_packet(const uint8_t* data, uint32_t len, PacketMeta* meta);

struct SackBlock {
  uint32_t left = 0;
  uint32_t right = 0;
};

// TCP options, parsed on demand (SYN handling, window tracking): most packets
// of an established flow never need them.
struct TcpOptions {
  uint16_t mss = 0;
  uint8_t wscale = 0;
  uint8_t num_sack = 0;
  bool has_mss = false;
  bool has_wscale = false;
  bool sack_permitted = false;
  bool has_timestamps = false;
  uint32_t ts_val = 0;
  uint32_t ts_ecr = 0;
  SackBlock sack[4] = {};
  uint16_t ts_off = 0;    // offset of the timestamp option's TSval in the frame (0 if none)
  uint16_t sack_off = 0;  // offset of the first SACK block in the frame (0 if none)
};

// Parses the options of the TCP header at meta.l4_off. Returns kBadTcpOptions
// for an option whose length byte is < 2 or runs past the header, or for a
// known option with the wrong length; unknown options are skipped. Also
// kBadTcpOptions if `meta` does not describe a parsed TCP header.
ParseError parse_tcp_options(const uint8_t* data, const PacketMeta& meta, TcpOptions* out);

}  // namespace tripod
