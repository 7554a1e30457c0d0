// Cost of the SYN proxy per packet: a SYN answered with a cookie SYN-ACK
// (options parsed, SipHash-2-4, frame written), a cookie ACK validated, and
// an established segment translated in place (ack, TSecr and two SACK blocks
// client -> backend; seq and TSval backend -> client), next to the same
// rewrite followed by a full checksum recompute instead of RFC 1624 updates.
// Prints figure synproxy.cookie_ns / validate_ns / translate_ns.
#include <benchmark/benchmark.h>

#include <cstdio>
#include <string>
#include <vector>

#include "common/random.h"
#include "figures.h"
#include "nf/synproxy/handshake.h"
#include "nf/synproxy/translate.h"
#include "packet/builder.h"
#include "packet/checksum.h"

namespace tripod {
namespace {

constexpr uint64_t kNow = 1'000'000'000'000;
constexpr size_t kN = 1024;  // distinct packets, cycled

struct Frame {
  Bytes bytes;
  PacketMeta meta;
};

Frame make(Bytes b) {
  Frame f{std::move(b), {}};
  parse_packet(f.bytes.data(), static_cast<uint32_t>(f.bytes.size()), &f.meta);
  return f;
}

std::string ip4(uint64_t r) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "10.%u.%u.%u", unsigned(r & 0xFF), unsigned(r >> 8 & 0xFF),
                unsigned(1 + (r >> 16 & 0xFD)));
  return buf;
}

// Linux-like client SYNs from distinct sources.
std::vector<Frame> syns() {
  SplitMix64 rng(1);
  std::vector<Frame> v;
  for (size_t i = 0; i < kN; ++i) {
    const uint64_t r = rng.next();
    v.push_back(make(PacketBuilder()
                         .ipv4(ip4(r), "192.0.2.10")
                         .tcp(static_cast<uint16_t>(1024 + (r >> 32) % 60000), 443)
                         .seq(static_cast<uint32_t>(r >> 7))
                         .syn()
                         .mss(1460)
                         .sack_permitted()
                         .timestamps(static_cast<uint32_t>(r), 0)
                         .tcp_raw_options(Bytes{1})
                         .wscale(7)
                         .build()));
  }
  return v;
}

// The ACKs those clients send back.
std::vector<Frame> acks(const SynProxy& p, const std::vector<Frame>& s) {
  std::vector<Frame> v;
  uint8_t out[256];
  for (const Frame& f : s) {
    uint32_t len = 0;
    p.answer_syn(f.bytes.data(), f.meta, SynProxyVip{}, kNow, out, sizeof out, &len);
    PacketMeta sm;
    parse_packet(out, len, &sm);
    TcpOptions o;
    parse_tcp_options(out, sm, &o);
    char src[32];
    const uint8_t* d = out + sm.dst_off;
    std::snprintf(src, sizeof src, "%u.%u.%u.%u", d[0], d[1], d[2], d[3]);
    v.push_back(make(PacketBuilder()
                         .ipv4(src, "192.0.2.10")
                         .tcp(sm.dport, 443)
                         .seq(sm.tcp_ack)
                         .ack_seq(sm.tcp_seq + 1)
                         .tcp_raw_options(Bytes{1, 1})
                         .timestamps(o.ts_ecr + 1, o.ts_val)
                         .build()));
  }
  return v;
}

void per_op(benchmark::State& state) {
  state.counters["ns_per_op"] =
      benchmark::Counter(static_cast<double>(state.iterations()) * 1e-9,
                         benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

void BM_SynProxyCookie(benchmark::State& state) {
  const SynProxy p(SipKey{1, 2}, CookieConfig{}, kNow);
  const auto s = syns();
  uint8_t out[256];
  size_t i = 0;
  uint64_t acc = 0;
  for (auto _ : state) {
    const Frame& f = s[i++ & (kN - 1)];
    uint32_t len = 0;
    p.answer_syn(f.bytes.data(), f.meta, SynProxyVip{}, kNow, out, sizeof out, &len);
    acc += out[38] + len;
    benchmark::ClobberMemory();
  }
  benchmark::DoNotOptimize(acc);
  per_op(state);
}

void BM_SynProxyValidate(benchmark::State& state) {
  const SynProxy p(SipKey{1, 2}, CookieConfig{}, kNow);
  const auto a = acks(p, syns());
  size_t i = 0;
  uint64_t valid = 0;
  for (auto _ : state) {
    const Frame& f = a[i++ & (kN - 1)];
    CookieAck out;
    valid += p.check_ack(f.bytes.data(), f.meta, kNow, &out) == SynProxyCounter::kCookieValid;
    benchmark::DoNotOptimize(out);
  }
  if (valid != static_cast<uint64_t>(state.iterations()))
    state.SkipWithError("a cookie ACK did not validate");
  per_op(state);
}

SynProxyState established() {
  SynProxyState st;
  st.seq_delta = 0x12345678;
  st.ts_delta = 0x00ABCDEF;
  st.flags = kSpOpen | kSpTimestamps | kSpSack;
  st.wscales = 7 << 4 | 7;
  return st;
}

// Client -> backend ACK with timestamps and two SACK blocks (the general
// option walk) and backend -> client data with NOP NOP TS (the fast path),
// alternately: 1448-byte data segments.
std::vector<Frame> established_packets() {
  const SackBlock sack[2] = {{1000, 2000}, {3000, 4000}};
  const Bytes data(1448, 'd');
  std::vector<Frame> v;
  v.push_back(make(PacketBuilder()
                       .ipv4("198.51.100.7", "192.0.2.10")
                       .tcp(40000, 443)
                       .seq(1)
                       .ack_seq(2)
                       .tcp_raw_options(Bytes{1, 1})
                       .timestamps(5, 6)
                       .tcp_raw_options(Bytes{1, 1})
                       .sack(sack)
                       .build()));
  v.push_back(make(PacketBuilder()
                       .ipv4("192.0.2.10", "198.51.100.7")
                       .tcp(443, 40000)
                       .seq(1)
                       .ack_seq(2)
                       .tcp_raw_options(Bytes{1, 1})
                       .timestamps(5, 6)
                       .payload(data)
                       .build()));
  return v;
}

void BM_SynProxyTranslate(benchmark::State& state) {
  const SynProxyState st = established();
  auto v = established_packets();
  size_t i = 0;
  for (auto _ : state) {
    Frame& f = v[i++ & 1];
    if (i & 1) {
      synproxy_to_backend(st, f.bytes.data(), f.meta);
    } else {
      synproxy_to_client(st, f.bytes.data(), f.meta);
    }
    benchmark::ClobberMemory();
  }
  per_op(state);
}

// The same rewrites, then the TCP checksum recomputed over the segment.
void BM_SynProxyTranslateFullChecksum(benchmark::State& state) {
  const SynProxyState st = established();
  auto v = established_packets();
  size_t i = 0;
  for (auto _ : state) {
    Frame& f = v[i++ & 1];
    if (i & 1) {
      synproxy_to_backend(st, f.bytes.data(), f.meta);
    } else {
      synproxy_to_client(st, f.bytes.data(), f.meta);
    }
    fix_checksums(f.bytes.data(), f.meta);
    benchmark::ClobberMemory();
  }
  per_op(state);
}

BENCHMARK(BM_SynProxyCookie);
BENCHMARK(BM_SynProxyValidate);
BENCHMARK(BM_SynProxyTranslate);
BENCHMARK(BM_SynProxyTranslateFullChecksum);

TRIPOD_FIGURE({"synproxy.cookie_ns", "ns", 1, {{"", "BM_SynProxyCookie", "ns_per_op"}}});
TRIPOD_FIGURE({"synproxy.validate_ns", "ns", 1, {{"", "BM_SynProxyValidate", "ns_per_op"}}});
TRIPOD_FIGURE({"synproxy.translate_ns",
               "ns",
               1,
               {{"", "BM_SynProxyTranslate", "ns_per_op"},
                {"full_checksum", "BM_SynProxyTranslateFullChecksum", "ns_per_op"}}});

}  // namespace
}  // namespace tripod
