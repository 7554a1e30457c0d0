// Writes the gateway fuzz target's seed corpus (fuzz/corpus/gateway): the
// checked-in files are this program's output.
//   build/dev/src/nf/gateway/gateway_corpus_gen fuzz/corpus/gateway
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include "nf/gateway/gateway_fuzz_config.h"
#include "nf/gateway/pcap_cases.h"
#include "packet/builder.h"

namespace tripod {
namespace {

using namespace fuzzcfg;

// One input of the target: records [ctl][len:2][frame].
class Input {
 public:
  Input& add(const Bytes& f, uint8_t ctl = 0) {
    bytes_.push_back(ctl);
    bytes_.push_back(static_cast<uint8_t>(f.size() >> 8));
    bytes_.push_back(static_cast<uint8_t>(f.size()));
    bytes_.insert(bytes_.end(), f.begin(), f.end());
    return *this;
  }
  const Bytes& bytes() const { return bytes_; }

 private:
  Bytes bytes_;
};

constexpr uint8_t kEndBurst = 0x10, kKill = 0x20;

using pcapcases::tcp;

int write_corpus(const char* dir) {
  const char* client = "198.51.100.7";
  // Replies go to SNAT port 5000 + k: the allocator's first ports.
  Input fullnat;
  fullnat.add(tcp(client, kVip, 40000, 80, kTcpSyn, 1000), kEndBurst)
      .add(tcp(kDip1, kSnat, 8080, 5000, kTcpSyn | kTcpAck, 5000, 1001), kEndBurst)
      .add(tcp(kDip2, kSnat, 8080, 5000, kTcpSyn | kTcpAck, 5000, 1001), kEndBurst)
      .add(tcp(client, kVip, 40000, 80, kTcpAck | kTcpPsh, 1001, 5001, "GET /"), kEndBurst)
      .add(tcp(client, kVip, 40000, 80, kTcpFin | kTcpAck, 1006, 5001), 0x01);
  Input killed = fullnat;
  killed.add(tcp(client, kVip, 40000, 80, kTcpAck, 1007, 5002), kKill | kEndBurst);
  Input proxy;
  proxy
      .add(PacketBuilder()
               .ipv4(client, kProxyVip)
               .tcp(40001, 443)
               .syn()
               .seq(77)
               .mss(1460)
               .wscale(7)
               .sack_permitted()
               .timestamps(1, 0)
               .build(),
           kEndBurst)
      .add(tcp(client, kProxyVip, 40001, 443, kTcpAck, 78, 12345), kEndBurst);
  Input dsr;
  dsr.add(tcp(client, kDsrVip, 40002, 80, kTcpSyn, 9), kEndBurst)
      .add(tcp(client, kDsrVip, 40002, 80, kTcpAck | kTcpPsh, 10, 1, "x"))
      .add(tcp(client, kDsrVip, 40002, 80, kTcpRst, 11), kEndBurst);
  Input egress;
  egress.add(tcp(kInside, "198.18.0.1", 33000, 443, kTcpSyn, 100), kEndBurst)
      .add(tcp("198.18.0.1", kPublic, 443, 20000, kTcpSyn | kTcpAck, 900, 101), kEndBurst)
      .add(PacketBuilder().ipv4(kInside, "198.18.0.1").icmp_echo(true, 77, 1).build())
      .add(PacketBuilder().ipv4("198.18.0.1", kPublic).icmp_echo(false, 20001, 1).build());
  const Bytes sent = tcp(kSnat, kDip1, 5000, 8080, kTcpAck | kTcpPsh, 1001, 5001, "data");
  Input icmp = fullnat;
  icmp.add(PacketBuilder()
               .ipv4("10.1.0.254", kSnat)
               .icmp_error(3, 4, Bytes(sent.begin() + 14, sent.begin() + 14 + 28), 1400)
               .build());
  Input six;
  six.add(tcp("2001:db8:c::7", kVip6, 40003, 80, kTcpSyn, 1), kEndBurst)
      .add(tcp(kDip6, kSnat6, 8080, 5000, kTcpSyn | kTcpAck, 1, 2), kEndBurst);
  const std::pair<const char*, const Input*> seeds[] = {
      {"fullnat", &fullnat}, {"killed", &killed}, {"synproxy", &proxy}, {"dsr", &dsr},
      {"egress", &egress},   {"icmp", &icmp},     {"ipv6", &six},
  };
  std::filesystem::create_directories(dir);
  for (const auto& [name, in] : seeds) {
    std::ofstream out(std::filesystem::path(dir) / name, std::ios::binary);
    out.write(reinterpret_cast<const char*>(in->bytes().data()),
              static_cast<std::streamsize>(in->bytes().size()));
    if (!out) {
      std::fprintf(stderr, "cannot write %s/%s\n", dir, name);
      return 1;
    }
  }
  return 0;
}

}  // namespace
}  // namespace tripod

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s <corpus dir>\n", argv[0]);
    return 2;
  }
  return tripod::write_corpus(argv[1]);
}
