// Workers on their threads, as the daemon runs them (Worker: parse, steer,
// gateway), over ports that replay established FullNAT connections' data,
// both directions, from memory as fast as the workers take it:
//   - one worker;
//   - two workers whose ports each see every flow, as a NIC's RSS spreads
//     them: about half of each port's packets belong to the other worker
//     and are handed over (pipeline/handoff.h);
//   - two workers whose ports see only their own flows: the same work
//     without handoffs, so the difference is what steering costs.
// Packets per second, summed over the workers, 300 ms each; the three take
// turns three times and each reports its median.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "daemon/worker.h"
#include "figures.h"
#include "io/frame_pool.h"
#include "nf/gateway/gateway_stage.h"
#include "packet/builder.h"
#include "packet/parser.h"
#include "pipeline/parse_stage.h"

namespace tripod {
namespace {

constexpr uint32_t kConns = 1 << 16;
constexpr auto kRunTime = std::chrono::milliseconds(300);

GatewayConfig bench_config(uint32_t shards) {
  GatewayConfig c;
  c.firewall.acl = parse_rules("default allow");
  GatewayVipConfig v;
  v.key = VipKey{IpAddress::parse("192.0.2.10"), kProtoTcp, 80};
  for (int b = 1; b <= 4; ++b) {
    Backend be;
    be.addr = IpAddress::parse("10.1.0." + std::to_string(b));
    be.port = 8080;
    v.pool.backends.push_back(be);
  }
  c.vips.push_back(v);
  for (const char* a : {"10.0.0.100", "10.0.0.101"}) {
    SnatAddress s;
    s.family = Family::kIpv4;
    std::memcpy(s.addr, IpAddress::parse(a).bytes, 4);
    c.snat.addresses.push_back(s);
  }
  c.max_connections = kConns + 1024;
  c.huge_pages = false;
  c.shards = shards;
  return c;
}

struct Conn {
  Bytes up, down;  // client -> VIP, backend -> SNAT: data each way
  uint32_t owner = 0;
};

// Runs one frame through parse + gateway on the setup thread; the frame
// it became (empty if dropped).
Bytes through(GatewayStage& gw, const Bytes& in, uint64_t now_ns) {
  static thread_local Burst b;
  static thread_local uint8_t buf[kFrameSize];
  std::memcpy(buf, in.data(), in.size());
  b.n = 1;
  b.first_rx = 0;
  b.now_ns = now_ns;
  b.pkts[0].data = buf;
  b.pkts[0].len = static_cast<uint32_t>(in.size());
  b.verdict[0] = Verdict::kForward;
  ParseStage parse;
  parse.process(b);
  gw.process(b);
  if (b.verdict[0] != Verdict::kForward) return {};
  return Bytes(buf, buf + b.pkts[0].len);
}

// Opens kConns connections, each in the gateway of the worker that owns it.
std::vector<Conn> establish(std::vector<std::unique_ptr<GatewayStage>>& gws, uint32_t shards,
                            uint64_t now_ns) {
  const SlotLayout layout = GatewayStage::slot_layout(bench_config(shards));
  const IpAddress vip = IpAddress::parse("192.0.2.10");
  std::vector<Conn> conns(kConns);
  for (uint32_t i = 0; i < kConns; ++i) {
    const std::string client =
        "100.64." + std::to_string(i / 250 / 250) + "." + std::to_string(i / 250 % 250 + 1);
    const auto cport = static_cast<uint16_t>(10000 + i % 250);
    const IpAddress ca = IpAddress::parse(client);
    const FlowKey k = make_flow_key(Family::kIpv4, kProtoTcp, ca.bytes, vip.bytes, cport, 80, true);
    Conn& c = conns[i];
    c.owner = layout.slot(k, Family::kIpv4, vip.bytes, 80) % shards;
    GatewayStage& gw = *gws[c.owner];
    const Bytes syn = through(
        gw, PacketBuilder().ipv4(client, "192.0.2.10").tcp(cport, 80).syn().seq(1000).build(),
        now_ns);
    PacketMeta m;
    if (syn.empty() ||
        parse_packet(syn.data(), static_cast<uint32_t>(syn.size()), &m) != ParseError::kOk)
      return {};
    const std::string snat =
        IpAddress::from_bytes(Family::kIpv4, syn.data() + m.src_off).to_string();
    const std::string dip =
        IpAddress::from_bytes(Family::kIpv4, syn.data() + m.dst_off).to_string();
    auto tcp = [](const std::string& s, const std::string& d, uint16_t sp, uint16_t dp) {
      PacketBuilder b;
      b.ipv4(s, d).dont_fragment().tcp(sp, dp).window(65535);
      return b;
    };
    through(gw,
            tcp(dip, snat, 8080, m.sport).flags(kTcpSyn | kTcpAck).seq(5000).ack_seq(1001).build(),
            now_ns);
    through(gw, tcp(client, "192.0.2.10", cport, 80).flags(kTcpAck).seq(1001).ack_seq(5001).build(),
            now_ns);
    c.up = tcp(client, "192.0.2.10", cport, 80)
               .flags(kTcpAck | kTcpPsh)
               .seq(1001)
               .ack_seq(5001)
               .payload("GET / HTTP/1.1\r\n")
               .build();
    // Acking none of the request: any order of replay stays in window.
    c.down = tcp(dip, snat, 8080, m.sport)
                 .flags(kTcpAck | kTcpPsh)
                 .seq(5001)
                 .ack_seq(1001)
                 .payload("HTTP/1.1 200 OK\r\n")
                 .build();
  }
  return conns;
}

// Endless input: data of random connections among `which`, alternating
// directions; what leaves is counted and its frame reused.
class ReplayPort final : public Port {
 public:
  ReplayPort(const std::vector<Conn>* conns, std::vector<uint32_t> which, uint64_t seed)
      : pool_(4096), conns_(conns), which_(std::move(which)), x_(seed | 1) {}
  uint32_t rx_burst(Packet* pkts, uint32_t max) override {
    uint32_t n = 0;
    for (; n < max && pool_.alloc(&pkts[n]); ++n) {
      x_ ^= x_ << 13;
      x_ ^= x_ >> 7;
      x_ ^= x_ << 17;
      const Conn& c = (*conns_)[which_[((x_ >> 32) * which_.size()) >> 32]];
      const Bytes& f = (n & 1) ? c.down : c.up;
      std::memcpy(pkts[n].data, f.data(), f.size());
      pkts[n].len = static_cast<uint32_t>(f.size());
    }
    return n;
  }
  void tx_burst(const Packet* pkts, uint32_t n) override {
    tx_.fetch_add(n, std::memory_order_relaxed);
    release(pkts, n);
  }
  void release(const Packet* pkts, uint32_t n) override {
    for (uint32_t i = 0; i < n; ++i)
      pool_.release(pkts[i]);
  }
  bool alloc_frame(Packet* p) override { return pool_.alloc(p); }
  uint64_t tx() const { return tx_.load(std::memory_order_relaxed); }

 private:
  FramePool pool_;
  const std::vector<Conn>* conns_;
  std::vector<uint32_t> which_;
  uint64_t x_;
  std::atomic<uint64_t> tx_{0};
};

struct RunResult {
  double mpps = 0;
  double handed_pct = 0;
  uint64_t handoff_full = 0;
  bool ok = false;
};

// One run: `workers` workers for kRunTime; packets per second summed.
RunResult run_workers(uint32_t workers, bool rss) {
  MonotonicClock clock;
  const uint64_t now = clock.now_ns();
  std::vector<std::unique_ptr<GatewayStage>> gws;
  for (uint32_t w = 0; w < workers; ++w)
    gws.push_back(std::make_unique<GatewayStage>(bench_config(workers), now));
  const std::vector<Conn> conns = establish(gws, workers, now);
  if (conns.size() != kConns) return {};
  HandoffMesh mesh(workers, 1024);
  std::vector<std::unique_ptr<Worker>> ws;
  std::vector<ReplayPort*> ports;
  for (uint32_t w = 0; w < workers; ++w) {
    std::vector<uint32_t> which;
    for (uint32_t i = 0; i < kConns; ++i)
      if (rss || conns[i].owner == w) which.push_back(i);
    auto port = std::make_unique<ReplayPort>(&conns, std::move(which), 0x9E3779B97F4A7C15ULL + w);
    ports.push_back(port.get());
    ws.push_back(std::make_unique<Worker>("bench" + std::to_string(w), std::move(port),
                                          std::move(gws[w]), nullptr, &mesh, w));
  }
  const auto t0 = std::chrono::steady_clock::now();
  for (auto& w : ws)
    w->start();
  std::this_thread::sleep_for(kRunTime);
  for (auto& w : ws)
    w->stop();
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  uint64_t tx = 0, handed = 0;
  RunResult r;
  for (uint32_t w = 0; w < workers; ++w) {
    tx += ports[w]->tx();
    ws[w]->export_counters([&](std::string_view n, uint64_t v) {
      if (n == "worker.handed_off") handed += v;
      if (n == "worker.handoff_full") r.handoff_full += v;
    });
  }
  r.mpps = static_cast<double>(tx) / secs * 1e-6;
  r.handed_pct = tx > 0 ? 100.0 * static_cast<double>(handed) / static_cast<double>(tx) : 0;
  r.ok = true;
  return r;
}

// The three set-ups take turns (A B C A B C ...) and each reports its
// median: the machine is shared, and its noise then falls on all three.
void BM_Workers(benchmark::State& state) {
  constexpr int kRounds = 3;
  struct Setup {
    const char* name;
    uint32_t workers;
    bool rss;
    std::vector<double> mpps;
  } setups[] = {{"one", 1, false, {}}, {"two_rss", 2, true, {}}, {"two_own", 2, false, {}}};
  uint64_t full = 0;
  double handed = 0;
  for (auto _ : state) {
    for (int round = 0; round < kRounds; ++round) {
      for (Setup& s : setups) {
        const RunResult r = run_workers(s.workers, s.rss);
        if (!r.ok) {
          state.SkipWithError("connections not established");
          return;
        }
        s.mpps.push_back(r.mpps);
        if (s.rss) {
          full += r.handoff_full;
          handed = r.handed_pct;
        }
      }
    }
  }
  for (Setup& s : setups) {
    std::sort(s.mpps.begin(), s.mpps.end());
    state.counters[std::string(s.name) + "_Mpps"] = s.mpps[s.mpps.size() / 2];
  }
  state.counters["two_rss_handed_pct"] = handed;
  state.counters["two_rss_handoff_full"] = static_cast<double>(full);
}

BENCHMARK(BM_Workers)->Iterations(1)->Unit(benchmark::kSecond);

TRIPOD_FIGURE({"workers.2.established",
               "Mpps",
               2,
               {{"", "BM_Workers/iterations:1", "two_rss_Mpps"},
                {"1_worker", "BM_Workers/iterations:1", "one_Mpps"},
                {"2_workers_no_handoff", "BM_Workers/iterations:1", "two_own_Mpps"}}});

}  // namespace
}  // namespace tripod
