// Writes the packet parser's seed corpus (fuzz/corpus/packet_parser): the
// checked-in files are this program's output.
//   build/dev/src/packet/packet_corpus_gen fuzz/corpus/packet_parser
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <utility>

#include "packet/builder.h"

namespace tripod {
namespace {

Bytes slice(const Bytes& b, size_t off, size_t n) {
  return Bytes(b.begin() + static_cast<long>(off), b.begin() + static_cast<long>(off + n));
}

int write_corpus(const char* dir) {
  const auto v4 = [] { return PacketBuilder().ipv4("10.0.0.1", "192.0.2.10"); };
  const auto v6 = [] { return PacketBuilder().ipv6("2001:db8::1", "2001:db8:ffff::10"); };
  const Bytes in_tcp = v4().tcp(40000, 443).payload(Bytes(64, 'a')).build_l3();
  const Bytes in_echo = v4().icmp_echo(true, 7, 1).payload(Bytes(32, 'p')).build_l3();
  const Bytes in_err = PacketBuilder()
                           .ipv4("192.0.2.10", "10.0.0.1")
                           .icmp_error(3, 3, slice(in_tcp, 0, 28))
                           .build_l3();
  const Bytes in6_tcp = v6().tcp(40000, 443).payload(Bytes(1300, 'b')).build_l3();
  const Bytes in6_udp = v6().ipv6_ext(60).udp(5000, 53).payload("q").build_l3();
  const SackBlock sack[2] = {{1000, 2000}, {3000, 4000}};
  const uint8_t rr[] = {1, 7, 7, 4, 0, 0, 0, 0};
  const uint8_t ah[10] = {0, 0, 0, 0, 1, 2, 3, 4, 0, 0};
  PacketBuilder nine = v6();
  for (int i = 0; i < 9; ++i)
    nine.ipv6_ext(60);
  Bytes trunc = v4().tcp(1, 2).payload("truncated").build();
  trunc.resize(40);
  Bytes padded = v4().udp(53, 53).build();
  padded.resize(60, 0);
  const std::pair<const char*, Bytes> seeds[] = {
      {"v4_tcp_syn_options",
       v4().tcp(40000, 80).syn().mss(1460).wscale(7).sack_permitted().timestamps(1, 0).build()},
      {"v4_tcp_ack_payload",
       v4().tcp(80, 40000).seq(1).ack_seq(2).psh().payload("HTTP/1.1 200").build()},
      {"v4_tcp_sack", v4().tcp(1, 2).ack_seq(9).tcp_raw_options(Bytes{1, 1}).sack(sack).build()},
      {"v4_udp_dns", v4().udp(5353, 53).payload(Bytes(30, 'd')).build()},
      {"v4_udp_padded", padded},
      {"v4_icmp_echo", v4().icmp_echo(true, 0x1234, 1).payload(Bytes(56, 'e')).build()},
      {"v4_options_rr", v4().ipv4_options(rr).udp(1, 2).build()},
      {"v4_frag_first", v4().fragment(0, true, 77).udp(1, 2).payload(Bytes(24, 'f')).build()},
      {"v4_frag_last", v4().fragment(1480, false, 77).udp(1, 2).payload(Bytes(24, 'f')).build()},
      {"v4_icmp_frag_needed", PacketBuilder()
                                  .ipv4("198.51.100.1", "10.0.0.1")
                                  .icmp_error(3, 4, slice(in_tcp, 0, 28), 1400)
                                  .build()},
      {"v4_icmp_time_exceeded_echo",
       PacketBuilder().ipv4("198.51.100.1", "10.0.0.1").icmp_error(11, 0, in_echo).build()},
      {"v4_icmp_error_of_error",
       PacketBuilder().ipv4("198.51.100.1", "192.0.2.10").icmp_error(11, 0, in_err).build()},
      {"v4_bad_checksum", v4().ip_checksum(0xDEAD).tcp(1, 2).build()},
      {"v4_truncated_tcp", trunc},
      {"vlan_v4_tcp", v4().vlan(100, 3).tcp(1, 2).build()},
      {"vlan_stacked", PacketBuilder().vlan(1).ethertype(0x8100).payload(Bytes(46, 0)).build()},
      {"arp", PacketBuilder().ethertype(kEtherTypeArp).payload(Bytes(28, 0)).build()},
      {"v6_tcp_syn", v6().tcp(40000, 443)
                         .syn()
                         .mss(1440)
                         .sack_permitted()
                         .timestamps(5, 0)
                         .tcp_raw_options(Bytes{1})
                         .wscale(7)
                         .build()},
      {"v6_udp", v6().udp(5000, 53).payload(Bytes(40, 'u')).build()},
      {"v6_ext_chain",
       v6().ipv6_ext(0).ipv6_ext(43, Bytes(6, 0)).ipv6_ext(51, ah).ipv6_ext(60).tcp(1, 2).build()},
      {"v6_frag_first", v6().fragment(0, true, 9).udp(1, 2).payload(Bytes(16, 'g')).build()},
      {"v6_frag_last", v6().fragment(1232, false, 9).udp(1, 2).payload(Bytes(16, 'g')).build()},
      {"v6_icmp_packet_too_big", PacketBuilder()
                                     .ipv6("2001:db8:1::1", "2001:db8::1")
                                     .icmp_error(2, 0, slice(in6_tcp, 0, 1232), 1280)
                                     .build()},
      {"v6_icmp_unreachable_ext",
       PacketBuilder().ipv6("2001:db8:ffff::10", "2001:db8::1").icmp_error(1, 4, in6_udp).build()},
      {"v6_echo", v6().icmp_echo(true, 3, 4).payload("ping").build()},
      {"v6_esp", v6().ip_proto(50).payload(Bytes(32, 'x')).build()},
      {"v6_nine_ext", nine.udp(1, 2).build()},
  };
  std::filesystem::create_directories(dir);
  for (const auto& [name, frame] : seeds) {
    if (frame.size() >= 2048) {
      std::fprintf(stderr, "%s: seed too large\n", name);
      return 1;
    }
    std::ofstream out(std::filesystem::path(dir) / name, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(frame.data()),
              static_cast<std::streamsize>(frame.size()));
    if (!out.good()) {
      std::fprintf(stderr, "%s: cannot write\n", name);
      return 1;
    }
  }
  return 0;
}

}  // namespace
}  // namespace tripod

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s OUTPUT_DIR\n", argv[0]);
    return 2;
  }
  return tripod::write_corpus(argv[1]);
}
