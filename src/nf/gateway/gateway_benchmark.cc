// The gateway pipeline on one core: parse + firewall + LB + FullNAT over
// established connections (1M live), next to a no-op stage (parse + forward)
// in the same run; and the new-connection rate with and without SYN proxy.
// Frames are pre-built and replayed from memory; each is copied into a
// scratch buffer first (both variants) so that rewrites do not accumulate.
#include <benchmark/benchmark.h>

#include <cstring>
#include <map>
#include <memory>
#include <random>
#include <vector>

#include "figures.h"
#include "nf/gateway/gateway_stage.h"
#include "nf/nat/rewrite.h"
#include "packet/builder.h"
#include "packet/checksum.h"
#include "packet/parser.h"
#include "pipeline/parse_stage.h"

namespace tripod {
namespace {

constexpr uint64_t kNow = 1'000'000'000'000;  // 1000 s
constexpr uint16_t kClientPorts = 50000;

struct Frame {
  Bytes bytes;
  PacketMeta meta;
};

Frame frame_of(Bytes b) {
  Frame f;
  f.bytes = std::move(b);
  parse_packet(f.bytes.data(), static_cast<uint32_t>(f.bytes.size()), &f.meta);
  return f;
}

void ipv4(uint32_t host, uint8_t out[4]) {
  out[0] = uint8_t(host >> 24);
  out[1] = uint8_t(host >> 16);
  out[2] = uint8_t(host >> 8);
  out[3] = uint8_t(host);
}
// Client i: 100.64.0.0 + i / kClientPorts, port 10000 + i % kClientPorts.
void client_of(uint32_t i, uint8_t addr[4], uint16_t* port) {
  ipv4(0x64400000u + i / kClientPorts, addr);
  *port = static_cast<uint16_t>(10000 + i % kClientPorts);
}

// A template frame with its source and/or destination rewritten
// (checksums updated incrementally).
Frame patched(const Frame& t, const uint8_t* src, uint16_t sport, const uint8_t* dst,
              uint16_t dport) {
  Frame f = t;
  if (src != nullptr) nat_rewrite(f.bytes.data(), f.meta, NatSide::kSource, src, sport);
  if (dst != nullptr) nat_rewrite(f.bytes.data(), f.meta, NatSide::kDestination, dst, dport);
  return f;
}

GatewayConfig bench_config(uint32_t conns, bool synproxy) {
  GatewayConfig c;
  c.firewall.acl = parse_rules("default allow");
  GatewayVipConfig v;
  v.key = VipKey{IpAddress::parse("192.0.2.10"), kProtoTcp, 80};
  for (uint32_t b = 0; b < 16; ++b) {
    Backend be;
    ipv4(0x0A010000u + b + 1, be.addr.bytes);
    be.addr.family = Family::kIpv4;
    be.port = 8080;
    v.pool.backends.push_back(be);
  }
  v.synproxy = synproxy;
  v.synproxy_options.timestamps = false;
  c.vips.push_back(v);
  const uint32_t naddr = conns / 60000 + 2;
  for (uint32_t a = 0; a < naddr; ++a) {
    SnatAddress s;
    s.family = Family::kIpv4;
    ipv4(0x0A000000u + 100 + a, s.addr);
    c.snat.addresses.push_back(s);
  }
  c.max_connections = conns + 1024;
  c.huge_pages = true;
  return c;
}

// Runs frames through parse + gateway in bursts; `out` gets the forwarded
// frames (optional).
class Runner {
 public:
  Runner() : buf_(std::make_unique<uint8_t[]>(size_t{kBurstSize} * kFrameSize)) {}
  Burst& load(const Frame* frames, uint32_t n, uint64_t now_ns) {
    b_.n = n;
    b_.now_ns = now_ns;
    for (uint32_t i = 0; i < n; ++i) {
      b_.pkts[i].data = buf_.get() + size_t{i} * kFrameSize;
      std::memcpy(b_.pkts[i].data, frames[i].bytes.data(), frames[i].bytes.size());
      b_.pkts[i].len = static_cast<uint32_t>(frames[i].bytes.size());
      b_.verdict[i] = Verdict::kForward;
    }
    return b_;
  }
  void run(Stage& gw) {
    parse_.process(b_);
    gw.process(b_);
  }
  Frame out(uint32_t i) const {
    Frame f;
    f.bytes.assign(b_.pkts[i].data, b_.pkts[i].data + b_.pkts[i].len);
    f.meta = b_.meta[i];
    return f;
  }
  Burst& burst() { return b_; }
  uint8_t* slot(uint32_t i) { return buf_.get() + size_t{i} * kFrameSize; }

 private:
  std::unique_ptr<uint8_t[]> buf_;
  Burst b_;
  ParseStage parse_;
};

class NoopStage final : public Stage {
 public:
  const char* name() const override { return "noop"; }
  void process(Burst& b) override { benchmark::DoNotOptimize(b.verdict[0]); }
  void export_counters(const CounterFn&) const override {}
};

const Frame& syn_template() {
  static const Frame f = frame_of(PacketBuilder()
                                      .ipv4("100.64.0.1", "192.0.2.10")
                                      .dont_fragment()
                                      .tcp(10000, 80)
                                      .syn()
                                      .seq(1000)
                                      .window(65535)
                                      .build());
  return f;
}
const Frame& synack_template() {
  static const Frame f = frame_of(PacketBuilder()
                                      .ipv4("10.1.0.1", "10.0.0.100")
                                      .dont_fragment()
                                      .tcp(8080, 1024)
                                      .flags(kTcpSyn)
                                      .seq(5000)
                                      .ack_seq(1001)
                                      .window(65535)
                                      .build());
  return f;
}
const Frame& ack_template(const char* payload = "") {
  static std::map<std::string, Frame> cache;
  auto it = cache.find(payload);
  if (it != cache.end()) return it->second;
  PacketBuilder b;
  b.ipv4("100.64.0.1", "192.0.2.10")
      .dont_fragment()
      .tcp(10000, 80)
      .flags(kTcpAck)
      .seq(1001)
      .ack_seq(5001)
      .window(65535);
  if (*payload) b.payload(payload);
  return cache.emplace(payload, frame_of(b.build())).first->second;
}

// Frames of fixed-size slots in one allocation (no per-frame heap blocks).
class FrameArena {
 public:
  static constexpr size_t kSlot = 128;
  void reserve(size_t n) {
    data_.reserve(n * kSlot);
    len_.reserve(n);
  }
  void push(const Frame& f) {
    data_.resize(data_.size() + kSlot);
    std::memcpy(data_.data() + data_.size() - kSlot, f.bytes.data(), f.bytes.size());
    len_.push_back(static_cast<uint16_t>(f.bytes.size()));
  }
  const uint8_t* data(size_t i) const { return data_.data() + i * kSlot; }
  uint32_t len(size_t i) const { return len_[i]; }

 private:
  std::vector<uint8_t> data_;
  std::vector<uint16_t> len_;
};

// A gateway with `n` established connections and, per connection, the two
// frames of its data (client -> VIP and backend -> SNAT), for replay.
struct Established {
  std::unique_ptr<GatewayStage> gw;
  FrameArena up, down;  // by connection
};

void put32(uint8_t* p, uint32_t v) {
  p[0] = uint8_t(v >> 24);
  p[1] = uint8_t(v >> 16);
  p[2] = uint8_t(v >> 8);
  p[3] = uint8_t(v);
}

Established& established(uint32_t n) {
  static std::map<uint32_t, std::unique_ptr<Established>> cache;
  if (auto it = cache.find(n); it != cache.end()) return *it->second;
  cache.clear();  // one population at a time
  auto& e = cache[n];
  e = std::make_unique<Established>();
  e->gw = std::make_unique<GatewayStage>(bench_config(n, false), kNow);
  e->up.reserve(n);
  e->down.reserve(n);
  Runner r;
  Frame in[kBurstSize];
  const Frame& data_up = ack_template("GET / HTTP/1.1\r\n");
  const Frame& data_down = ack_template("HTTP/1.1 200 OK\r\n");
  for (uint32_t base = 0; base < n; base += kBurstSize) {
    const uint32_t m = std::min<uint32_t>(kBurstSize, n - base);
    uint8_t addr[4];
    uint16_t port;
    for (uint32_t j = 0; j < m; ++j) {
      client_of(base + j, addr, &port);
      in[j] = patched(syn_template(), addr, port, nullptr, 0);
    }
    r.load(in, m, kNow);
    r.run(*e->gw);
    Frame synacks[kBurstSize];
    for (uint32_t j = 0; j < m; ++j) {
      const Frame o = r.out(j);  // SNAT:port -> DIP:8080
      const uint8_t* snat = o.bytes.data() + o.meta.src_off;
      const uint8_t* dip = o.bytes.data() + o.meta.dst_off;
      synacks[j] = patched(synack_template(), dip, 8080, snat, o.meta.sport);
      // The reply: seq 5001 ack 1001 (acking none of the request, which may
      // not have been replayed yet).
      Frame d = patched(data_down, dip, 8080, snat, o.meta.sport);
      uint8_t* tcp = d.bytes.data() + d.meta.l4_off;
      put32(tcp + 4, 5001);
      put32(tcp + 8, 1001);
      d.meta.tcp_seq = 5001;
      d.meta.tcp_ack = 1001;
      fix_checksums(d.bytes.data(), d.meta);
      e->down.push(d);
    }
    r.load(synacks, m, kNow);
    r.run(*e->gw);
    for (uint32_t j = 0; j < m; ++j) {
      client_of(base + j, addr, &port);
      in[j] = patched(ack_template(), addr, port, nullptr, 0);
      e->up.push(patched(data_up, addr, port, nullptr, 0));
    }
    r.load(in, m, kNow);
    r.run(*e->gw);
  }
  return *e;
}

void per_pkt(benchmark::State& state, uint64_t pkts) {
  state.counters["ns_per_pkt"] = benchmark::Counter(
      static_cast<double>(pkts) * 1e-9, benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

// Replays data of random connections (a fresh one per packet, alternating
// directions) through parse + `stage`.
void replay(benchmark::State& state, Stage& stage, const Established& e, uint32_t n) {
  Runner r;
  Burst& b = r.burst();
  uint64_t pkts = 0, forwarded = 0;
  uint64_t x = 0x9E3779B97F4A7C15ULL;  // xorshift64
  for (auto _ : state) {
    b.n = kBurstSize;
    b.now_ns = kNow;
    for (uint32_t i = 0; i < kBurstSize; ++i) {
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
      const auto c = static_cast<uint32_t>(((x >> 32) * n) >> 32);
      const FrameArena& a = (i & 1) ? e.down : e.up;
      b.pkts[i].data = r.slot(i);
      std::memcpy(b.pkts[i].data, a.data(c), FrameArena::kSlot);
      b.pkts[i].len = a.len(c);
      b.verdict[i] = Verdict::kForward;
    }
    r.run(stage);
    for (uint32_t i = 0; i < kBurstSize; ++i)
      forwarded += b.verdict[i] == Verdict::kForward;
    pkts += kBurstSize;
  }
  if (forwarded != pkts) state.SkipWithError("packets dropped");
  per_pkt(state, pkts);
}

void BM_PipelineEstablished(benchmark::State& state) {
  const auto n = static_cast<uint32_t>(state.range(0));
  Established& e = established(n);
  replay(state, *e.gw, e, n);
  state.counters["conns_live"] = e.gw->live_connections();
}

void BM_PipelineNoop(benchmark::State& state) {
  const auto n = static_cast<uint32_t>(state.range(0));
  Established& e = established(n);
  NoopStage noop;
  replay(state, noop, e, n);
}

// New connections: bursts of client SYNs (and, with the SYN proxy, the
// cookie ACKs), a second of time per burst so that unanswered connections
// expire at the rate they are created (steady state, expiry included).
void new_conn(benchmark::State& state, bool synproxy) {
  GatewayConfig cfg = bench_config(1 << 16, synproxy);
  cfg.firewall.timeouts.tcp_syn_sent = 10;
  GatewayStage gw(cfg, kNow);
  constexpr uint32_t kClients = 1 << 20;
  std::vector<Frame> syns(kClients / 16);
  for (uint32_t i = 0; i < syns.size(); ++i) {
    uint8_t addr[4];
    uint16_t port;
    client_of(i * 16 + 1, addr, &port);
    syns[i] = patched(syn_template(), addr, port, nullptr, 0);
  }
  Runner r;
  Frame acks[kBurstSize];
  uint64_t now = kNow, conns = 0, i = 0;
  for (auto _ : state) {
    now += 1'000'000'000;
    Frame* in = &syns[(i * kBurstSize) % syns.size()];
    i++;
    r.load(in, kBurstSize, now);
    r.run(gw);
    if (synproxy) {
      // The clients' ACKs to our cookie SYN-ACKs.
      Burst& b = r.burst();
      for (uint32_t j = 0; j < kBurstSize; ++j) {
        const uint8_t* f = b.pkts[j].data;
        const PacketMeta& m = b.meta[j];
        acks[j] = patched(ack_template(), f + m.dst_off, m.dport, nullptr, 0);
        uint8_t* tcp = acks[j].bytes.data() + acks[j].meta.l4_off;
        const uint32_t ack = m.tcp_seq + 1;
        uint16_t csum = static_cast<uint16_t>((tcp[16] << 8) | tcp[17]);
        csum = csum_update32(csum, acks[j].meta.tcp_ack, ack);
        tcp[8] = uint8_t(ack >> 24);
        tcp[9] = uint8_t(ack >> 16);
        tcp[10] = uint8_t(ack >> 8);
        tcp[11] = uint8_t(ack);
        tcp[16] = uint8_t(csum >> 8);
        tcp[17] = uint8_t(csum);
        acks[j].meta.tcp_ack = ack;
      }
      r.load(acks, kBurstSize, now);
      r.run(gw);
    }
    conns += kBurstSize;
  }
  const uint64_t created = gw.count(GatewayCounter::kConnsCreated);
  if (created != conns) state.SkipWithError("connections not created");
  state.counters["Kconn_per_s"] =
      benchmark::Counter(static_cast<double>(conns) * 1e-3, benchmark::Counter::kIsRate);
}

void BM_PipelineNewConn(benchmark::State& state) {
  new_conn(state, false);
}
void BM_PipelineNewConnSynProxy(benchmark::State& state) {
  new_conn(state, true);
}

// Established and no-op back to back per population (built once, cached).
BENCHMARK(BM_PipelineEstablished)->Arg(1'000'000);
BENCHMARK(BM_PipelineNoop)->Arg(1'000'000);
BENCHMARK(BM_PipelineEstablished)->Arg(10'000'000);
BENCHMARK(BM_PipelineNoop)->Arg(10'000'000);
BENCHMARK(BM_PipelineNewConn);
BENCHMARK(BM_PipelineNewConnSynProxy);

TRIPOD_FIGURE({"pipeline.established.1M",
               "ns",
               1,
               {{"", "BM_PipelineEstablished/1000000", "ns_per_pkt"},
                {"noop", "BM_PipelineNoop/1000000", "ns_per_pkt"}}});
TRIPOD_FIGURE({"pipeline.established.10M",
               "ns",
               1,
               {{"", "BM_PipelineEstablished/10000000", "ns_per_pkt"},
                {"noop", "BM_PipelineNoop/10000000", "ns_per_pkt"}}});
TRIPOD_FIGURE({"pipeline.new_conn",
               "Kconn/s",
               1,
               {{"", "BM_PipelineNewConn", "Kconn_per_s"},
                {"synproxy", "BM_PipelineNewConnSynProxy", "Kconn_per_s"}}});

}  // namespace
}  // namespace tripod
