#include "cmd/demo_traffic.h"

#include <algorithm>
#include <cstdio>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "common/random.h"
#include "packet/builder.h"
#include "packet/pcap_io.h"

namespace tripod {
namespace {

struct Event {
  uint64_t ts_ns;
  Bytes frame;
};

std::string v4(uint32_t net, uint32_t host) {
  return "10." + std::to_string(net) + "." + std::to_string((host >> 8) & 255) + "." +
         std::to_string(host & 255);
}
std::string v6(uint32_t net, uint32_t host) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "2001:db8:%x::%x:%x", net, host >> 16, host & 0xffff);
  return buf;
}

class Gen {
 public:
  Gen(const DemoTrafficOptions& o) : opt_(o), rng_(o.seed) {}

  void tcp_session(uint32_t i) {
    const bool six = rng_.below(5) == 0;
    const std::string c = six ? v6(1, i + 1) : v4(1, i + 1);
    const std::string s = six ? v6(2, 1 + i % 4) : v4(2, 1 + i % 4);
    const auto cport = static_cast<uint16_t>(32768 + rng_.below(28000));
    const uint16_t sport = rng_.below(3) == 0 ? 443 : 80;
    const std::optional<uint16_t> vlan =
        rng_.below(10) == 0 ? std::optional<uint16_t>(100) : std::nullopt;
    uint64_t t = start();
    auto pkt = [&](bool from_client) {
      PacketBuilder b;
      if (vlan) b.vlan(*vlan);
      if (six) {
        b.ipv6(from_client ? c : s, from_client ? s : c);
      } else {
        b.ipv4(from_client ? c : s, from_client ? s : c);
      }
      b.tcp(from_client ? cport : sport, from_client ? sport : cport);
      return b;
    };
    uint32_t cseq = static_cast<uint32_t>(rng_.next()), sseq = static_cast<uint32_t>(rng_.next());
    add(t, pkt(true).seq(cseq).syn().mss(1460).wscale(7).sack_permitted().timestamps(1, 0).build());
    add(t += rtt(), pkt(false).seq(sseq).ack_seq(cseq + 1).syn().mss(1460).wscale(7).build());
    ++cseq;
    ++sseq;
    add(t += rtt(), pkt(true).seq(cseq).ack_seq(sseq).build());
    const uint32_t rounds = 1 + static_cast<uint32_t>(rng_.below(4));
    for (uint32_t r = 0; r < rounds; ++r) {
      const std::string req = "GET /" + std::to_string(r) + " HTTP/1.1\r\nHost: demo\r\n\r\n";
      add(t += rtt(), pkt(true).seq(cseq).ack_seq(sseq).psh().payload(req).build());
      cseq += static_cast<uint32_t>(req.size());
      const std::string body(200 + rng_.below(1200), 'x');
      add(t += rtt(), pkt(false).seq(sseq).ack_seq(cseq).psh().payload(body).build());
      sseq += static_cast<uint32_t>(body.size());
    }
    if (rng_.below(4) != 0) {  // most close; the rest stay open and time out later
      add(t += rtt(), pkt(true).seq(cseq).ack_seq(sseq).fin().build());
      add(t += rtt(), pkt(false).seq(sseq).ack_seq(cseq + 1).fin().build());
      add(t += rtt(), pkt(true).seq(cseq + 1).ack_seq(sseq + 1).build());
    }
    if (rng_.below(50) == 0) {  // a router on the path reports a smaller MTU
      const Bytes quoted = pkt(false).seq(sseq).payload(std::string(1400, 'y')).build_l3();
      PacketBuilder e;
      if (six) {
        e.ipv6("2001:db8:ff::1", s).icmp_error(2, 0, std::span(quoted).first(120), 1280);
      } else {
        e.ipv4("10.255.0.1", s).icmp_error(3, 4, std::span(quoted).first(60), 1280);
      }
      add(t += rtt(), e.build());
    }
  }

  void udp_exchange(uint32_t i) {
    const std::string c = v4(3, i + 1), s = v4(2, 53);
    const auto cport = static_cast<uint16_t>(1024 + rng_.below(60000));
    uint64_t t = start();
    add(t, PacketBuilder().ipv4(c, s).udp(cport, 53).payload(std::string(40, 'q')).build());
    if (rng_.below(10) != 0) {
      add(t + rtt(),
          PacketBuilder().ipv4(s, c).udp(53, cport).payload(std::string(120, 'a')).build());
    }
  }

  void extras() {
    for (uint32_t i = 0; i < 50; ++i) {
      uint64_t t = start();
      add(t, PacketBuilder()
                 .ipv4(v4(4, i), v4(2, 1))
                 .icmp_echo(true, static_cast<uint16_t>(i), 1)
                 .build());
      add(t + rtt(), PacketBuilder()
                         .ipv4(v4(2, 1), v4(4, i))
                         .icmp_echo(false, static_cast<uint16_t>(i), 1)
                         .build());
      add(t, PacketBuilder().ethertype(0x0806).payload(std::string(28, '\x01')).build());
      // A UDP datagram in two IPv4 fragments.
      add(t, PacketBuilder()
                 .ipv4(v4(5, i), v4(2, 2))
                 .ip_id(static_cast<uint16_t>(i))
                 .fragment(0, true)
                 .udp(4000, 4000)
                 .payload(std::string(1000, 'f'))
                 .build());
      add(t + 1000, PacketBuilder()
                        .ipv4(v4(5, i), v4(2, 2))
                        .ip_id(static_cast<uint16_t>(i))
                        .fragment(1008, false)
                        .payload(std::string(500, 'f'))
                        .build());
    }
  }

  void malformed(uint32_t n) {
    for (uint32_t i = 0; i < n; ++i) {
      Bytes f;
      switch (i % 6) {
        case 0:  // a datagram too short for its TCP header
          f = PacketBuilder().ipv4(v4(6, i), v4(2, 1)).ip_total_length(28).tcp(1, 80).syn().build();
          f.resize(14 + 28);
          break;
        case 1:
          f = PacketBuilder().ipv4(v4(6, i), v4(2, 1)).ip_checksum(0xbad).udp(1, 2).build();
          break;
        case 2:  // claims more bytes than the frame has
          f = PacketBuilder().ipv4(v4(6, i), v4(2, 1)).ip_total_length(1400).udp(1, 2).build();
          break;
        case 3: {  // two stacked 802.1Q tags (QinQ is not accepted)
          f = PacketBuilder().vlan(1).ipv4(v4(6, i), v4(2, 1)).udp(1, 2).build();
          const uint8_t tag[4] = {0x81, 0x00, 0x00, 0x02};
          f.insert(f.begin() + 12, tag, tag + 4);
          break;
        }
        case 4: {
          PacketBuilder b;
          b.ipv6(v6(6, i), v6(2, 1));
          for (int k = 0; k < 9; ++k)
            b.ipv6_ext(60);
          f = b.udp(1, 2).build();
          break;
        }
        default:
          f = PacketBuilder().ipv4(v4(6, i), v4(2, 1)).tcp(1, 80).build();
          f.resize(10);  // shorter than Ethernet
      }
      add(start(), std::move(f));
      ++summary_.malformed;
    }
  }

  DemoTrafficSummary write(const std::string& path) {
    std::stable_sort(events_.begin(), events_.end(),
                     [](const Event& a, const Event& b) { return a.ts_ns < b.ts_ns; });
    std::string err;
    auto w = PcapWriter::open(path, &err);
    if (!w) throw std::runtime_error(path + ": " + err);
    for (const auto& e : events_)
      w->write(e.frame, e.ts_ns);
    summary_.packets = events_.size();
    return summary_;
  }

 private:
  uint64_t start() { return 1'000'000'000 + rng_.below(uint64_t{opt_.seconds} * 1'000'000'000); }
  uint64_t rtt() { return 200'000 + rng_.below(2'000'000); }
  void add(uint64_t ts, Bytes f) { events_.push_back({ts, std::move(f)}); }

  DemoTrafficOptions opt_;
  SplitMix64 rng_;
  std::vector<Event> events_;
  DemoTrafficSummary summary_;
};

}  // namespace

DemoTrafficSummary write_demo_pcap(const std::string& path, const DemoTrafficOptions& opt) {
  Gen g(opt);
  for (uint32_t i = 0; i < opt.tcp_flows; ++i)
    g.tcp_session(i);
  for (uint32_t i = 0; i < opt.udp_flows; ++i)
    g.udp_exchange(i);
  g.extras();
  g.malformed(60);
  return g.write(path);
}

}  // namespace tripod
