// Table-driven gateway cases that also live as pcap files
// (tests/pcap/gateway/<case>/{in,expected}.pcap): what goes in, and what
// must come out, built by PacketBuilder from the description alone (never
// by running the gateway), so a pcap case is an independent expectation.
// The config has one backend per VIP and one SNAT port per pool: every
// translation is determined by the description.
#pragma once

#include <cstring>
#include <string>
#include <vector>

#include "nf/gateway/gateway_fuzz_config.h"
#include "packet/builder.h"

namespace tripod::pcapcases {

inline constexpr const char* kClient = "198.51.100.7";
inline constexpr const char* kDenied = "203.0.113.9";  // the ACL denies 203.0.113.0/24 in
inline constexpr const char* kOutside = "198.18.0.1";
inline constexpr uint16_t kSnatPort = 5000;
inline constexpr uint16_t kEgressPort = 20000;

inline GatewayConfig config() {
  GatewayConfig c = fuzzcfg::config();
  for (auto& v : c.vips)
    v.pool.backends.resize(1);
  c.snat.port_hi = c.snat.port_lo = kSnatPort;
  c.egress.snat.port_hi = c.egress.snat.port_lo = kEgressPort;
  return c;
}

struct Case {
  std::string name;
  std::string description;
  std::vector<Bytes> in;
  std::vector<Bytes> expected;  // in order; empty: everything dropped
};

inline Bytes tcp(const char* src, const char* dst, uint16_t sp, uint16_t dp, uint8_t flags,
                 uint32_t seq, uint32_t ack = 0, const std::string& payload = "") {
  PacketBuilder b;
  if (std::string(src).find(':') != std::string::npos) {
    b.ipv6(src, dst);
  } else {
    b.ipv4(src, dst).dont_fragment();
  }
  b.tcp(sp, dp).flags(flags).seq(seq).window(65535);
  if (flags & kTcpAck) b.ack_seq(ack);
  if (!payload.empty()) b.payload(payload);
  return b.build();
}

inline std::vector<Case> cases() {
  using namespace fuzzcfg;
  std::vector<Case> out;
  {
    Case c{"fullnat_v4", "FullNAT handshake, data both ways and FIN; MSS clamped to 1400", {}, {}};
    const Bytes syn = PacketBuilder()
                          .ipv4(kClient, kVip)
                          .dont_fragment()
                          .tcp(40000, 80)
                          .syn()
                          .seq(1000)
                          .window(65535)
                          .mss(1460)
                          .build();
    const Bytes syn_out = PacketBuilder()
                              .ipv4(kSnat, kDip1)
                              .dont_fragment()
                              .tcp(kSnatPort, 8080)
                              .syn()
                              .seq(1000)
                              .window(65535)
                              .mss(1400)
                              .build();
    c.in = {syn,
            tcp(kDip1, kSnat, 8080, kSnatPort, kTcpSyn | kTcpAck, 5000, 1001),
            tcp(kClient, kVip, 40000, 80, kTcpAck, 1001, 5001),
            tcp(kClient, kVip, 40000, 80, kTcpAck | kTcpPsh, 1001, 5001, "GET / HTTP/1.0\r\n\r\n"),
            tcp(kDip1, kSnat, 8080, kSnatPort, kTcpAck | kTcpPsh, 5001, 1019, "HTTP/1.0 200 OK"),
            tcp(kClient, kVip, 40000, 80, kTcpFin | kTcpAck, 1019, 5016)};
    c.expected = {
        syn_out,
        tcp(kVip, kClient, 80, 40000, kTcpSyn | kTcpAck, 5000, 1001),
        tcp(kSnat, kDip1, kSnatPort, 8080, kTcpAck, 1001, 5001),
        tcp(kSnat, kDip1, kSnatPort, 8080, kTcpAck | kTcpPsh, 1001, 5001, "GET / HTTP/1.0\r\n\r\n"),
        tcp(kVip, kClient, 80, 40000, kTcpAck | kTcpPsh, 5001, 1019, "HTTP/1.0 200 OK"),
        tcp(kSnat, kDip1, kSnatPort, 8080, kTcpFin | kTcpAck, 1019, 5016)};
    out.push_back(c);
  }
  {
    Case c{"fullnat_v6", "IPv6 FullNAT handshake", {}, {}};
    c.in = {tcp("2001:db8:c::7", kVip6, 40000, 80, kTcpSyn, 1),
            tcp(kDip6, kSnat6, 8080, kSnatPort, kTcpSyn | kTcpAck, 9, 2)};
    c.expected = {tcp(kSnat6, kDip6, kSnatPort, 8080, kTcpSyn, 1),
                  tcp(kVip6, "2001:db8:c::7", 80, 40000, kTcpSyn | kTcpAck, 9, 2)};
    out.push_back(c);
  }
  {
    Case c{
        "firewall_drops",
        "denied source, stray ACK, SYN-ACK to nothing, reply port without a mapping: all dropped",
        {},
        {}};
    c.in = {tcp(kDenied, kVip, 40000, 80, kTcpSyn, 1), tcp(kClient, kVip, 40001, 80, kTcpAck, 1, 1),
            tcp(kClient, "10.1.0.9", 40002, 22, kTcpSyn | kTcpAck, 1, 1),
            tcp(kDip1, kSnat, 8080, kSnatPort, kTcpAck, 1, 1)};
    out.push_back(c);
  }
  {
    Case c{
        "snat_exhausted", "one SNAT port: the second connection has none and is dropped", {}, {}};
    c.in = {tcp(kClient, kVip, 40000, 80, kTcpSyn, 1), tcp(kClient, kVip, 40001, 80, kTcpSyn, 1)};
    c.expected = {tcp(kSnat, kDip1, kSnatPort, 8080, kTcpSyn, 1)};
    out.push_back(c);
  }
  {
    Case c{
        "egress", "egress SNAT: the inside host leaves from the public address and back", {}, {}};
    c.in = {tcp(kInside, kOutside, 33000, 443, kTcpSyn, 100),
            tcp(kOutside, kPublic, 443, kEgressPort, kTcpSyn | kTcpAck, 900, 101)};
    c.expected = {tcp(kPublic, kOutside, kEgressPort, 443, kTcpSyn, 100),
                  tcp(kOutside, kInside, 443, 33000, kTcpSyn | kTcpAck, 900, 101)};
    out.push_back(c);
  }
  {
    Case c{"dsr", "DSR: only the destination MAC becomes the backend's", {}, {}};
    c.in = {tcp(kClient, kDsrVip, 40000, 80, kTcpSyn, 1),
            tcp(kClient, kDsrVip, 40000, 80, kTcpAck | kTcpPsh, 2, 1, "x")};
    for (const Bytes& f : c.in) {
      Bytes e = f;
      const uint8_t mac[6] = {2, 0, 0, 0, 0x10, 1};
      std::memcpy(e.data(), mac, 6);
      c.expected.push_back(e);
    }
    out.push_back(c);
  }
  return out;
}

}  // namespace tripod::pcapcases
