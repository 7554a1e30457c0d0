#include "nf/lb/vip.h"

#include <arpa/inet.h>

#include <stdexcept>

namespace tripod {

IpAddress IpAddress::parse(std::string_view text) {
  const std::string s(text);
  IpAddress a;
  if (inet_pton(AF_INET, s.c_str(), a.bytes) == 1) {
    a.family = Family::kIpv4;
  } else if (inet_pton(AF_INET6, s.c_str(), a.bytes) == 1) {
    a.family = Family::kIpv6;
  } else {
    throw std::invalid_argument("not an IPv4 or IPv6 address: '" + s + "'");
  }
  return a;
}

std::string IpAddress::to_string() const {
  char buf[INET6_ADDRSTRLEN] = {};
  if (family == Family::kNone) return "<none>";
  inet_ntop(family == Family::kIpv6 ? AF_INET6 : AF_INET, bytes, buf, sizeof buf);
  return buf;
}

bool IpAddress::empty() const {
  if (family != Family::kIpv4 && family != Family::kIpv6) return true;
  for (uint8_t b : bytes)
    if (b != 0) return false;
  return true;
}

}  // namespace tripod
