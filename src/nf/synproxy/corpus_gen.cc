// Writes the seed corpus of synproxy_ack_fuzz (fuzz/corpus/synproxy_ack):
// the checked-in files are this program's output.
//   build/dev/src/nf/synproxy/synproxy_corpus_gen fuzz/corpus/synproxy_ack
// Each seed is [mode:1][SynProxyState:16][frame], see synproxy_ack_fuzz.cc.
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <utility>

#include "nf/synproxy/state.h"
#include "packet/builder.h"

namespace tripod {
namespace {

Bytes seed(uint8_t mode, const SynProxyState& st, const Bytes& frame) {
  Bytes out(1 + sizeof st + frame.size());
  out[0] = mode;
  std::memcpy(out.data() + 1, &st, sizeof st);
  if (!frame.empty()) std::memcpy(out.data() + 1 + sizeof st, frame.data(), frame.size());
  return out;
}

SynProxyState pending(uint32_t client_isn) {
  SynProxyState s;
  s.seq_delta = 0xC0FFEE00;
  s.ts_delta = 123456;
  s.client_isn = client_isn;
  s.client_window = 502;
  s.flags = kSpTimestamps | kSpSack;
  s.wscales = kNoWscale << 4 | 7;
  return s;
}

SynProxyState open(uint8_t adv, uint8_t backend) {
  SynProxyState s = pending(1);
  s.flags |= kSpOpen;
  s.wscales = static_cast<uint8_t>(backend << 4 | adv);
  if (adv != backend) s.flags |= kSpRescaleWindow;
  return s;
}

int write_corpus(const char* dir) {
  const auto c4 = [] { return PacketBuilder().ipv4("198.51.100.7", "192.0.2.10").tcp(40000, 443); };
  const auto b4 = [] { return PacketBuilder().ipv4("192.0.2.10", "198.51.100.7").tcp(443, 40000); };
  const auto c6 = [] {
    return PacketBuilder().ipv6("2001:db8:c::7", "2001:db8:f::10").tcp(40000, 443);
  };
  const auto b6 = [] {
    return PacketBuilder().ipv6("2001:db8:f::10", "2001:db8:c::7").tcp(443, 40000);
  };
  const SackBlock sack[2] = {{1000, 2000}, {3000, 4000}};
  const SynProxyState none;
  // mode: bit 0 forge a valid cookie; bits 1-2 MSS index; 3-6 wscale; 7 SACK;
  // bit 6 also picks the keyring without options when there are no timestamps.
  const uint8_t forge_ws7_sack = 1 | 3 << 1 | 7 << 3 | 0x80;
  const uint8_t forge_plain = 1 | 15 << 3;
  const std::pair<const char*, Bytes> seeds[] = {
      {"v4_cookie_ack_ts",
       seed(forge_ws7_sack, none,
            c4().seq(101).ack_seq(1).tcp_raw_options(Bytes{1, 1}).timestamps(7, 8).build())},
      {"v6_cookie_ack_no_ts", seed(forge_ws7_sack, none, c6().seq(101).ack_seq(1).build())},
      {"v4_cookie_ack_with_data",
       seed(forge_plain, none, c4().seq(5).ack_seq(1).psh().payload("GET / HTTP/1.1\r\n").build())},
      {"v4_vlan_cookie_ack", seed(forge_plain, none,
                                  PacketBuilder()
                                      .vlan(7)
                                      .ipv4("10.0.0.1", "10.0.0.2")
                                      .tcp(1, 2)
                                      .ack_seq(9)
                                      .timestamps(1, 2)
                                      .build())},
      {"v4_cookie_ack_linux_style", seed(1 | 0x40 | 7 << 3, none, c4().seq(3).ack_seq(1).build())},
      {"v4_garbage_ack", seed(0, none, c4().seq(1).ack_seq(0xDEADBEEF).build())},
      {"v6_garbage_ack_ts",
       seed(0, none,
            c6().seq(1).ack_seq(77).tcp_raw_options(Bytes{1, 1}).timestamps(1, 2).build())},
      {"v4_ack_truncated_option",
       seed(1, none, c4().ack_seq(5).tcp_raw_options(Bytes{8, 10, 0, 0}).build())},
      {"v4_syn_options",
       seed(0, none,
            c4().seq(1)
                .syn()
                .mss(1460)
                .sack_permitted()
                .timestamps(1, 0)
                .tcp_raw_options(Bytes{1})
                .wscale(7)
                .build())},
      {"v6_syn_ecn",
       seed(0, none, c6().flags(kTcpSyn | kTcpEce | kTcpCwr).mss(1440).timestamps(3, 0).build())},
      {"v4_backend_synack", seed(0, pending(0x1000),
                                 b4().seq(0x77)
                                     .ack_seq(0x1001)
                                     .syn()
                                     .window(65160)
                                     .mss(1400)
                                     .sack_permitted()
                                     .timestamps(5000, 9)
                                     .tcp_raw_options(Bytes{1})
                                     .wscale(9)
                                     .build())},
      {"v6_backend_synack_no_ts",
       seed(0, pending(0x1000), b6().seq(0x77).ack_seq(0x1001).syn().mss(1220).build())},
      {"v4_backend_rst_pending", seed(0, pending(1), b4().seq(0).ack_seq(2).rst().build())},
      {"v4_established_client_ts_sack", seed(0, open(7, 7),
                                             c4().seq(1)
                                                 .ack_seq(2)
                                                 .tcp_raw_options(Bytes{1, 1})
                                                 .timestamps(5, 6)
                                                 .tcp_raw_options(Bytes{1, 1})
                                                 .sack(sack)
                                                 .build())},
      {"v6_established_backend_data", seed(0, open(7, 9),
                                           b6().seq(1)
                                               .ack_seq(2)
                                               .psh()
                                               .window(300)
                                               .tcp_raw_options(Bytes{1, 1})
                                               .timestamps(5, 6)
                                               .payload(Bytes(200, 'd'))
                                               .build())},
      {"v4_established_odd_options", seed(0, open(7, 5),
                                          c4().ack_seq(3)
                                              .tcp_raw_options(Bytes{1})
                                              .timestamps(1, 2)
                                              .tcp_raw_options(Bytes{1})
                                              .sack(sack)
                                              .build())},
  };
  std::filesystem::create_directories(dir);
  for (const auto& [name, bytes] : seeds) {
    const auto path = std::filesystem::path(dir) / name;
    std::ofstream out(path, std::ios::binary);
    out.write(reinterpret_cast<const char*>(bytes.data()),
              static_cast<std::streamsize>(bytes.size()));
    if (!out) {
      std::fprintf(stderr, "cannot write %s\n", path.c_str());
      return 1;
    }
  }
  std::printf("wrote %zu seeds to %s\n", std::size(seeds), dir);
  return 0;
}

}  // namespace
}  // namespace tripod

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s DIR\n", argv[0]);
    return 2;
  }
  return tripod::write_corpus(argv[1]);
}
