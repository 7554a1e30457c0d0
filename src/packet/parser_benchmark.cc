// Parser cost per packet against the cost of merely touching the same bytes.
// A ring of 1024 pre-built frames (IPv4/IPv6 x TCP/UDP, 64..1500 bytes) is
// walked in order, so the branch predictor sees a realistic mix rather than
// one packet shape.
#include <benchmark/benchmark.h>

#include <cstring>
#include <vector>

#include "common/random.h"
#include "figures.h"
#include "packet/builder.h"
#include "packet/flow_key.h"
#include "packet/parser.h"

namespace tripod {
namespace {

constexpr size_t kRing = 1024;
constexpr size_t kSlot = 2048;  // one frame per 2 KB slot, like an XDP UMEM chunk
constexpr size_t kBurst = 32;

struct Ring {
  std::vector<uint8_t> arena = std::vector<uint8_t>(kRing * kSlot);
  uint32_t len[kRing] = {};
  const uint8_t* frame(size_t i) const { return arena.data() + (i % kRing) * kSlot; }
};

const Ring& ring() {
  static const Ring r = [] {
    Ring out;
    SplitMix64 rng(7);
    // Frame sizes: the trimodal Internet mix (small ACKs, 576-ish, full MTU).
    const size_t sizes[] = {64, 64, 64, 128, 256, 576, 1024, 1500, 1500, 1500};
    for (size_t i = 0; i < kRing; ++i) {
      const bool six = rng.below(4) == 0;  // 25% IPv6
      const bool tcp = rng.below(5) != 0;  // 80% TCP
      const size_t size = sizes[rng.below(std::size(sizes))];
      PacketBuilder b;
      const auto host = static_cast<uint8_t>(rng.below(250) + 1);
      if (six) {
        b.ipv6("2001:db8::" + std::to_string(host), "2001:db8:ffff::10");
      } else {
        b.ipv4("10.0.0." + std::to_string(host), "192.0.2.10");
      }
      const auto sport = static_cast<uint16_t>(1024 + rng.below(60000));
      if (tcp) {
        b.tcp(sport, 443).seq(static_cast<uint32_t>(rng.next())).ack_seq(1).timestamps(1, 2);
      } else {
        b.udp(sport, 53);
      }
      const size_t hdr = b.build().size();
      b.payload(Bytes(size > hdr ? size - hdr : 0, 0x5A));
      const Bytes f = b.build();
      std::memcpy(out.arena.data() + i * kSlot, f.data(), f.size());
      out.len[i] = static_cast<uint32_t>(f.size());
    }
    return out;
  }();
  return r;
}

void set_ns_per_pkt(benchmark::State& state, size_t packets) {
  state.counters["ns_per_pkt"] =
      benchmark::Counter(static_cast<double>(packets) * 1e-9,
                         benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

void BM_ParseFlowKey(benchmark::State& state) {
  const Ring& r = ring();
  SipKey key;
  SplitMix64 rng(42);
  key.k0 = rng.next();
  key.k1 = rng.next();
  size_t i = 0, packets = 0;
  for (auto _ : state) {
    for (size_t b = 0; b < kBurst; ++b, ++i) {
      PacketMeta m;
      const ParseError err = parse_packet(r.frame(i), r.len[i % kRing], &m);
      const FlowKey k = flow_key_of(r.frame(i), m, true);
      const uint64_t h = hash_flow_key(k, key);
      benchmark::DoNotOptimize(err);
      benchmark::DoNotOptimize(h);
    }
    packets += kBurst;
  }
  set_ns_per_pkt(state, packets);
}
BENCHMARK(BM_ParseFlowKey);

void BM_CopyOnly(benchmark::State& state) {
  const Ring& r = ring();
  alignas(64) static uint8_t scratch[kSlot];
  size_t i = 0, packets = 0;
  for (auto _ : state) {
    for (size_t b = 0; b < kBurst; ++b, ++i) {
      std::memcpy(scratch, r.frame(i), r.len[i % kRing]);
      benchmark::DoNotOptimize(scratch);
      benchmark::ClobberMemory();
    }
    packets += kBurst;
  }
  set_ns_per_pkt(state, packets);
}
BENCHMARK(BM_CopyOnly);

}  // namespace
}  // namespace tripod

TRIPOD_FIGURE({"parse.ns_per_pkt",
               "ns",
               1,
               {{"", "BM_ParseFlowKey", "ns_per_pkt"}, {"copy", "BM_CopyOnly", "ns_per_pkt"}}});
