// Fluent packet builder for tests, fuzz seeds and the demo's generated pcap
// (Katran's PacketBuilder is the model). Not for the data plane: it allocates.
//
//   auto pkt = PacketBuilder()
//                  .eth("02:00:00:00:00:01", "02:00:00:00:00:02")
//                  .ipv4("10.0.0.1", "192.0.2.10")
//                  .tcp(40000, 80).syn().mss(1460).wscale(7).sack_permitted()
//                  .timestamps(1, 0)
//                  .build();
//
// build() fills in lengths and checksums unless a test overrides them to make
// a deliberately malformed packet (ip_checksum(), l4_checksum(), ...).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "packet/parser.h"

namespace tripod {

using Bytes = std::vector<uint8_t>;

class PacketBuilder {
 public:
  // L2. Addresses as "aa:bb:cc:dd:ee:ff". Defaults: 02:00:00:00:00:01 -> :02.
  PacketBuilder& eth(std::string_view src, std::string_view dst);
  PacketBuilder& vlan(uint16_t vid, uint8_t pcp = 0);
  PacketBuilder& ethertype(uint16_t type);  // raw L2 payload follows (non-IP frames)

  // L3. Text addresses; an unparsable one aborts (tests only).
  PacketBuilder& ipv4(std::string_view src, std::string_view dst);
  PacketBuilder& ipv6(std::string_view src, std::string_view dst);
  PacketBuilder& ttl(uint8_t ttl);  // TTL / hop limit
  PacketBuilder& tos(uint8_t tos);
  PacketBuilder& ip_id(uint16_t id);
  PacketBuilder& dont_fragment();
  PacketBuilder& ipv4_options(std::span<const uint8_t> opts);  // padded to 4 bytes
  // IPv4: offset in bytes (multiple of 8), MF, and `id` as the IP id. IPv6:
  // appends a Fragment header to the extension chain built so far (so call it
  // after ipv6() and any ipv6_ext() that precedes it).
  PacketBuilder& fragment(uint16_t offset_bytes, bool more_fragments, uint32_t id = 1);
  // IPv6 extension header (Hop-by-Hop 0, Routing 43, Destination Options 60,
  // Mobility 135, HIP 139, Shim6 140; AH 51 gets its 4-octet length; a raw
  // Fragment 44 takes 6 body bytes) with `body` bytes after the 2-byte
  // next-header/length prefix, zero-padded to 8.
  PacketBuilder& ipv6_ext(uint8_t type, std::span<const uint8_t> body = {});
  // IPv4 protocol / last IPv6 next header. Without an L4 call below, the
  // payload follows the IP headers raw (ESP, No Next Header, unknown
  // protocols); with one, it mislabels that L4 header.
  PacketBuilder& ip_proto(uint8_t proto);

  // L4.
  PacketBuilder& tcp(uint16_t sport, uint16_t dport);
  PacketBuilder& seq(uint32_t s);
  PacketBuilder& ack_seq(uint32_t a);  // also sets the ACK flag
  PacketBuilder& flags(uint8_t tcp_flags);
  PacketBuilder& syn();
  PacketBuilder& fin();
  PacketBuilder& rst();
  PacketBuilder& psh();
  PacketBuilder& window(uint16_t w);
  PacketBuilder& mss(uint16_t mss);
  PacketBuilder& wscale(uint8_t shift);
  PacketBuilder& sack_permitted();
  PacketBuilder& sack(std::span<const SackBlock> blocks);
  PacketBuilder& timestamps(uint32_t val, uint32_t ecr);
  PacketBuilder& tcp_raw_options(std::span<const uint8_t> opts);  // appended as-is, then padded

  PacketBuilder& udp(uint16_t sport, uint16_t dport);
  // ICMP echo (v4 or v6 by the L3 chosen).
  PacketBuilder& icmp_echo(bool request, uint16_t id, uint16_t seq);
  // ICMP / ICMPv6 error quoting `quoted` (an IP packet, no L2). `info` is the
  // 32-bit field after the checksum: next-hop MTU for "fragmentation needed"
  // (v4: low 16 bits) and "packet too big" (v6), the pointer for parameter
  // problem.
  PacketBuilder& icmp_error(uint8_t type, uint8_t code, std::span<const uint8_t> quoted,
                            uint32_t info = 0);

  PacketBuilder& payload(std::span<const uint8_t> data);
  PacketBuilder& payload(std::string_view text);

  // Malformation knobs.
  PacketBuilder& ip_checksum(uint16_t forced);
  PacketBuilder& l4_checksum(uint16_t forced);
  PacketBuilder& ip_total_length(uint16_t forced);  // IPv4 total length / IPv6 payload length

  Bytes build() const;
  // The IP packet only (no Ethernet header), e.g. to quote in an ICMP error.
  Bytes build_l3() const;

 private:
  enum class L4 : uint8_t { kNone, kTcp, kUdp, kIcmpEcho, kIcmpError };
  struct Ext {
    uint8_t type;
    Bytes body;
  };
  uint8_t eth_src_[6] = {2, 0, 0, 0, 0, 1};
  uint8_t eth_dst_[6] = {2, 0, 0, 0, 0, 2};
  std::optional<uint16_t> vlan_tci_;
  std::optional<uint16_t> raw_ethertype_;
  Family family_ = Family::kNone;
  uint8_t src_[16] = {};
  uint8_t dst_[16] = {};
  uint8_t ttl_ = 64;
  uint8_t tos_ = 0;
  uint16_t ip_id_ = 0;
  bool df_ = false;
  Bytes ip_opts_;
  std::optional<uint16_t> frag_offset_;
  bool frag_more_ = false;
  uint32_t frag_id_ = 0;
  std::vector<Ext> exts_;
  std::optional<uint8_t> raw_proto_;
  L4 l4_ = L4::kNone;
  uint16_t sport_ = 0, dport_ = 0;
  uint32_t seq_ = 0, ack_ = 0;
  uint8_t tcp_flags_ = 0;
  uint16_t window_ = 65535;
  Bytes tcp_opts_;
  bool echo_request_ = true;
  uint8_t icmp_type_ = 0, icmp_code_ = 0;
  uint32_t icmp_info_ = 0;
  Bytes quoted_;
  Bytes payload_;
  std::optional<uint16_t> forced_ip_csum_, forced_l4_csum_, forced_ip_len_;
};

// Parses "a.b.c.d" or an IPv6 text address into 4/16 network-order bytes.
bool parse_ip(std::string_view text, Family* family, uint8_t out[16]);
std::string format_ip(Family family, const uint8_t* addr);

}  // namespace tripod
