// Synthetic backends for LB tests and benchmarks: backend n is
// 10.(n>>16).(n>>8).n port 8080.
#pragma once

#include <cstdint>
#include <vector>

#include "nf/lb/vip.h"

namespace tripod::lb_testing {

inline Backend be(uint32_t n, uint32_t weight = 1) {
  Backend b;
  b.addr.family = Family::kIpv4;
  b.addr.bytes[0] = 10;
  b.addr.bytes[1] = static_cast<uint8_t>(n >> 16);
  b.addr.bytes[2] = static_cast<uint8_t>(n >> 8);
  b.addr.bytes[3] = static_cast<uint8_t>(n);
  b.port = 8080;
  b.weight = weight;
  return b;
}

// Backends 1..n, weight 1.
inline std::vector<Backend> pool_of(uint32_t n) {
  std::vector<Backend> v;
  for (uint32_t i = 1; i <= n; ++i)
    v.push_back(be(i));
  return v;
}

}  // namespace tripod::lb_testing
