// The gateway the fuzz target drives (and its corpus generator builds seeds
// for): every kind of VIP, both SNAT families, egress, and small pools so
// that exhaustion, collisions and replies to a guessable port are reachable.
#pragma once

#include <cstring>

#include "nf/gateway/gateway_stage.h"

namespace tripod::fuzzcfg {

inline constexpr const char* kVip = "192.0.2.10";       // FullNAT :80
inline constexpr const char* kProxyVip = "192.0.2.20";  // SYN proxy :443
inline constexpr const char* kDsrVip = "192.0.2.30";    // DSR :80
inline constexpr const char* kVip6 = "2001:db8:f::10";  // FullNAT :80
inline constexpr const char* kSnat = "10.0.0.100";      // ports 5000-5015
inline constexpr const char* kSnat6 = "fd00:1::1";
inline constexpr const char* kDip1 = "10.1.0.1";
inline constexpr const char* kDip2 = "10.1.0.2";
inline constexpr const char* kDip6 = "fd00:2::5";
inline constexpr const char* kInside = "10.9.0.5";      // egress source 10.9.0.0/16
inline constexpr const char* kPublic = "203.0.113.50";  // egress ports 20000-20007

inline SnatAddress snat_address(const char* text) {
  const IpAddress a = IpAddress::parse(text);
  SnatAddress s;
  s.family = a.family;
  std::memcpy(s.addr, a.bytes, 16);
  return s;
}

inline Backend backend(const char* ip, uint16_t port, uint8_t mac_last = 0) {
  Backend b;
  b.addr = IpAddress::parse(ip);
  b.port = port;
  if (mac_last != 0) {
    const uint8_t mac[6] = {2, 0, 0, 0, 0x10, mac_last};
    std::memcpy(b.mac, mac, 6);
  }
  return b;
}

inline GatewayConfig config() {
  GatewayConfig c;
  c.firewall.acl = parse_rules("deny in tcp from 203.0.113.0/24\ndefault allow");
  GatewayVipConfig v;
  v.key = VipKey{IpAddress::parse(kVip), kProtoTcp, 80};
  v.pool.backends = {backend(kDip1, 8080), backend(kDip2, 8080)};
  v.mss_clamp = 1400;
  c.vips.push_back(v);
  GatewayVipConfig p;
  p.key = VipKey{IpAddress::parse(kProxyVip), kProtoTcp, 443};
  p.pool.backends = {backend(kDip1, 8443)};
  p.synproxy = true;
  c.vips.push_back(p);
  GatewayVipConfig d;
  d.key = VipKey{IpAddress::parse(kDsrVip), kProtoTcp, 80};
  d.mode = VipMode::kDsr;
  d.pool.backends = {backend(kDip1, 0, 1), backend(kDip2, 80, 2)};
  c.vips.push_back(d);
  GatewayVipConfig six;
  six.key = VipKey{IpAddress::parse(kVip6), kProtoTcp, 80};
  six.pool.backends = {backend(kDip6, 8080)};
  c.vips.push_back(six);
  c.snat.addresses = {snat_address(kSnat), snat_address(kSnat6)};
  c.snat.port_lo = 5000;
  c.snat.port_hi = 5015;
  c.egress.sources = {"10.9.0.0/16"};
  c.egress.snat.addresses = {snat_address(kPublic)};
  c.egress.snat.port_lo = 20000;
  c.egress.snat.port_hi = 20007;
  c.max_connections = 64;
  c.huge_pages = false;
  return c;
}

}  // namespace tripod::fuzzcfg
