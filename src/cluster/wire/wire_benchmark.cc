// Cost of the replication wire: sealing (keyed BLAKE2b-128) a full datagram,
// next to the MACs considered (libsodium's HMAC-SHA-512/256 crypto_auth and
// SipHash-1-3, whose 64-bit tag is too short for a MAC a forger can try
// offline); seal + open of one datagram; and records through a pair of
// channels (push, seal, open, deliver, ack). Prints figures cluster.wire.*.
#include <benchmark/benchmark.h>
#include <sodium.h>

#include <vector>

#include "cluster/wire/channel.h"
#include "cluster/wire/test_util.h"
#include "common/siphash.h"
#include "figures.h"

namespace tripod::cluster::wire {
namespace {

using namespace testing;

constexpr size_t kSealed = kMaxDatagram - kMacSize;  // bytes under the MAC
constexpr size_t kFlowsPerDatagram = kMaxPayload / (kRecordHeaderSize + kFlowRecordSize);

void per_iter(benchmark::State& state, const char* name, double scale = 1.0) {
  state.counters[name] =
      benchmark::Counter(static_cast<double>(state.iterations()) * 1e-9 * scale,
                         benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

// A full DATA datagram of flow records, sealed by node 2 for node 1.
std::vector<uint8_t> full_datagram(const Codec& sealer) {
  std::vector<uint8_t> p;
  for (size_t i = 0; i < kFlowsPerDatagram; ++i)
    append_record(&p, kFlowRecord, std::vector<uint8_t>(kFlowRecordSize, static_cast<uint8_t>(i)));
  return build(sealer, data_header(2, 1, 1, static_cast<uint8_t>(kFlowsPerDatagram)), p);
}

void BM_WireSeal(benchmark::State& state) {
  const Codec c(codec_config(2), test_records());
  std::vector<uint8_t> d(kMaxDatagram, 0x5a);
  for (auto _ : state) {
    c.seal(d.data(), kSealed);
    benchmark::DoNotOptimize(d.data());
  }
  per_iter(state, "ns");
}
BENCHMARK(BM_WireSeal);

void BM_MacHmacSha512256(benchmark::State& state) {
  if (sodium_init() < 0) state.SkipWithError("sodium_init failed");
  unsigned char key[crypto_auth_KEYBYTES] = {1};
  std::vector<uint8_t> d(kMaxDatagram + crypto_auth_BYTES, 0x5a);
  for (auto _ : state) {
    crypto_auth(d.data() + kSealed, d.data(), kSealed, key);
    benchmark::DoNotOptimize(d.data());
  }
  per_iter(state, "ns");
}
BENCHMARK(BM_MacHmacSha512256);

void BM_MacSipHash13(benchmark::State& state) {
  const SipKey key{1, 2};
  std::vector<uint8_t> d(kMaxDatagram, 0x5a);
  for (auto _ : state) {
    const uint64_t tag = siphash13(key, d.data(), kSealed);
    store_be<uint64_t>(d.data() + kSealed, tag);
    benchmark::DoNotOptimize(d.data());
  }
  per_iter(state, "ns");
}
BENCHMARK(BM_MacSipHash13);

// Seal one full datagram, then open it (cheap checks, MAC, record walk).
void BM_WireSealOpen(benchmark::State& state) {
  const Codec tx(codec_config(2), test_records());
  Codec rx(codec_config(1), test_records());
  std::vector<uint8_t> d = full_datagram(tx);
  Datagram out;
  for (auto _ : state) {
    tx.seal(d.data(), d.size() - kMacSize);
    if (rx.open(d.data(), d.size(), &out) != WireDrop::kOk) state.SkipWithError("open failed");
    benchmark::DoNotOptimize(out.payload.data());
  }
  per_iter(state, "ns");
  per_iter(state, "ns_per_record", static_cast<double>(kFlowsPerDatagram));
}
BENCHMARK(BM_WireSealOpen);

// Two channels wired back to back: a datagram leaving one is opened and
// received by the other at once. Each iteration pushes one flow record;
// the receiver acks every 8 datagrams, so the window never fills.
struct Direct : ChannelSink {
  void transmit(std::span<const uint8_t> d) override {
    Datagram dg;
    if (codec->open(d.data(), d.size(), &dg) == WireDrop::kOk) to->receive(dg, 0);
  }
  void deliver(uint64_t, const Record& r) override { sum += r.body[0]; }
  Codec* codec = nullptr;
  Channel* to = nullptr;
  uint64_t sum = 0;
};

void BM_WireRecords(benchmark::State& state) {
  Codec ca(codec_config(1), test_records()), cb(codec_config(2), test_records());
  Direct sa, sb;
  ChannelConfig cfg;
  cfg.ack_delay_ns = 0;
  cfg.peer = 2;
  cfg.incarnation = 1;
  Channel a(ca, cfg, &sa);
  cfg.peer = 1;
  Channel b(cb, cfg, &sb);
  sa.codec = &cb;
  sa.to = &b;
  sb.codec = &ca;
  sb.to = &a;
  a.send_heartbeat({}, 0);
  b.send_heartbeat({}, 0);
  const std::vector<uint8_t> body(kFlowRecordSize, 7);
  uint64_t last_acked = 0;
  for (auto _ : state) {
    if (a.push(kFlowRecord, body, 0).status != PushStatus::kOk) {
      state.SkipWithError("backpressure");
      break;
    }
    if (a.last_seq() >= last_acked + 8) {
      b.poll(0);  // the standalone ack
      last_acked = a.acked_through();
    }
  }
  benchmark::DoNotOptimize(sb.sum);
  per_iter(state, "ns_per_record");
  state.counters["records_per_s"] =
      benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_WireRecords);

}  // namespace
}  // namespace tripod::cluster::wire

TRIPOD_FIGURE({"cluster.wire.seal_ns.1400B",
               "ns",
               1,
               {{"", "BM_WireSeal", "ns"},
                {"hmac_sha512256", "BM_MacHmacSha512256", "ns"},
                {"siphash13_64bit", "BM_MacSipHash13", "ns"}}});
TRIPOD_FIGURE({"cluster.wire.seal_open_ns.1400B", "ns", 1, {{"", "BM_WireSealOpen", "ns"}}});
TRIPOD_FIGURE({"cluster.wire.record_ns.48B",
               "ns",
               1,
               {{"", "BM_WireRecords", "ns_per_record"},
                {"seal_open_share", "BM_WireSealOpen", "ns_per_record"}}});
