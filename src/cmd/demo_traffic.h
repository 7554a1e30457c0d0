// Synthetic traffic for the demo: a realistic mix (IPv4/IPv6 TCP sessions
// with handshakes and teardown, UDP request/response, ICMP echo and errors,
// fragments, VLAN tags, ARP) plus a sprinkle of malformed frames, over a
// stretch of simulated time.
#pragma once

#include <cstdint>
#include <string>

namespace tripod {

struct DemoTrafficOptions {
  uint32_t tcp_flows = 2000;
  uint32_t udp_flows = 1000;
  uint32_t seconds = 60;  // span of the timestamps
  uint64_t seed = 1;
};

struct DemoTrafficSummary {
  uint64_t packets = 0;
  uint64_t malformed = 0;
};

// Writes the capture; throws std::runtime_error if the file can't be written.
DemoTrafficSummary write_demo_pcap(const std::string& path, const DemoTrafficOptions& opt);

}  // namespace tripod
