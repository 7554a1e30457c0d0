// The daemon's parts that run without root: the L2 stage over a hand-built
// next-hop table, the worker's control calls over a memory port, the JSON
// log escaping and the status summary. (The whole daemon runs in the lab
// tests: lab/test.sh tripod_*.)
#include "daemon/daemon.h"

#include <gtest/gtest.h>
#include <linux/neighbour.h>
#include <linux/rtnetlink.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <thread>

#include "daemon/l2_stage.h"
#include "daemon/logging.h"
#include "daemon/status_client.h"
#include "daemon/worker.h"
#include "packet/builder.h"
#include "packet/parser.h"
#include "pipeline/parse_stage.h"

namespace tripod {
namespace {

using route::Addr;
using route::Mac;

constexpr Mac kOurMac = {2, 0, 0, 0, 0xaa, 1};
constexpr Mac kRouterMac = {2, 0, 0, 0, 0xbb, 1};
constexpr Mac kBackendMac = {2, 0, 0, 0, 0xcc, 1};

std::unique_ptr<const route::NextHopTable> table() {
  route::TableInput in;
  route::LinkInfo l;
  l.ifindex = 2;
  l.mac = kOurMac;
  l.has_mac = l.up = l.lower_up = true;
  l.mtu = 1500;
  in.links = {l};
  auto neigh = [](const char* a, const Mac& m) {
    route::NeighInfo n;
    n.ifindex = 2;
    n.addr = *Addr::parse(a);
    n.mac = m;
    n.has_mac = true;
    n.state = NUD_REACHABLE;
    return n;
  };
  in.neighbours = {neigh("10.0.0.1", kRouterMac), neigh("10.0.0.101", kBackendMac)};
  auto route = [](const char* dst, uint8_t len, const char* gw) {
    route::RouteInfo r;
    r.dst = *Addr::parse(dst);
    r.dst_len = len;
    r.type = RTN_UNICAST;
    route::NextHopInfo nh;
    nh.ifindex = 2;
    if (gw != nullptr) nh.gateway = *Addr::parse(gw);
    r.nexthops = {nh};
    return r;
  };
  in.routes = {route("10.0.0.0", 24, nullptr), route("0.0.0.0", 0, "10.0.0.1")};
  return route::NextHopTable::build(in);
}

Mac dst_mac(const Burst& b, uint32_t i) {
  Mac m;
  std::memcpy(m.data(), b.pkts[i].data, 6);
  return m;
}
Mac src_mac(const Burst& b, uint32_t i) {
  Mac m;
  std::memcpy(m.data(), b.pkts[i].data + 6, 6);
  return m;
}

TEST(L2Stage, WritesTheNextHopsMacsAsTheKernelWould) {
  route::SnapshotDomain<route::NextHopTable> domain(4, table());
  route::KernelSlowPath slow;  // without root its sends are counted failures
  L2Stage l2(domain.register_reader(), 2, &slow);
  ParseStage parse;
  std::vector<Bytes> frames = {
      PacketBuilder().ipv4("10.0.0.21", "10.0.0.101").tcp(1024, 80).syn().build(),     // on-link
      PacketBuilder().ipv4("192.0.2.10", "198.51.100.7").tcp(80, 4000).syn().build(),  // default
      PacketBuilder().ipv4("192.0.2.10", "10.0.0.101").tcp(80, 4000).syn().build(),    // DSR
      PacketBuilder().ipv4("192.0.2.10", "10.0.0.55").tcp(80, 4000).syn().build(),  // no neighbour
      PacketBuilder().ipv6("2001:db8::1", "2001:db8::2").tcp(80, 4000).syn().build(),  // no route
  };
  Burst b;
  b.n = static_cast<uint32_t>(frames.size());
  for (uint32_t i = 0; i < b.n; ++i) {
    b.pkts[i].data = frames[i].data();
    b.pkts[i].len = static_cast<uint32_t>(frames[i].size());
    b.verdict[i] = Verdict::kForward;
    b.l2[i] = L2Action::kRoute;
    b.hash[i] = 0;
    b.held[i] = false;
  }
  b.l2[2] = L2Action::kKeepDst;
  parse.process(b);
  l2.process(b);
  EXPECT_EQ(b.verdict[0], Verdict::kForward);
  EXPECT_EQ(dst_mac(b, 0), kBackendMac);
  EXPECT_EQ(src_mac(b, 0), kOurMac);
  EXPECT_EQ(dst_mac(b, 1), kRouterMac);
  EXPECT_EQ(src_mac(b, 1), kOurMac);
  EXPECT_EQ(dst_mac(b, 2), (Mac{2, 0, 0, 0, 0, 2}));  // the builder's: DSR chose it
  EXPECT_EQ(src_mac(b, 2), kOurMac);
  EXPECT_EQ(b.verdict[3], Verdict::kDrop);  // handed to the kernel instead
  EXPECT_EQ(b.verdict[4], Verdict::kDrop);
  std::map<std::string, uint64_t> c;
  l2.export_counters([&](std::string_view n, uint64_t v) { c[std::string(n)] = v; });
  EXPECT_EQ(c["routed"], 2u);
  EXPECT_EQ(c["source_mac_only"], 1u);
  EXPECT_EQ(c["slow_path_no_neighbor"], 1u);
  EXPECT_EQ(c["drop_no_route"], 1u);
}

GatewayConfig gateway_config() {
  GatewayConfig c;
  c.firewall.acl = parse_rules("default allow");
  GatewayVipConfig v;
  v.key = VipKey{IpAddress::parse("192.0.2.10"), kProtoTcp, 80};
  Backend be;
  be.addr = IpAddress::parse("10.0.0.101");
  v.pool.backends = {be};
  c.vips = {v};
  SnatAddress s;
  s.family = Family::kIpv4;
  std::memcpy(s.addr, IpAddress::parse("10.0.0.21").bytes, 4);
  c.snat.addresses = {s};
  c.max_connections = 64;
  c.huge_pages = false;
  return c;
}

TEST(Worker, CallsRunOnTheWorkerThreadAndReportErrors) {
  auto port = std::make_unique<MemoryPort>(std::vector<Bytes>{});
  Worker w("test", std::move(port), std::make_unique<GatewayStage>(gateway_config(), 0), nullptr);
  w.start();
  std::thread::id ran_on;
  ASSERT_TRUE(w.call([&](GatewayStage&) { ran_on = std::this_thread::get_id(); }));
  EXPECT_NE(ran_on, std::this_thread::get_id());
  // The stage's own validation comes back as the exception.
  GatewayVipConfig dup = gateway_config().vips[0];
  EXPECT_THROW(w.call([&](GatewayStage& g) { g.add_vip(dup); }), std::invalid_argument);
  std::map<std::string, uint64_t> c;
  ASSERT_TRUE(w.export_counters([&](std::string_view n, uint64_t v) { c[std::string(n)] = v; }));
  EXPECT_EQ(c.count("gateway.conns_live"), 1u);
  EXPECT_EQ(c.count("worker.rx"), 1u);
  w.stop();
  // Stopped: calls run on the caller's thread.
  ASSERT_TRUE(w.call([&](GatewayStage&) { ran_on = std::this_thread::get_id(); }));
  EXPECT_EQ(ran_on, std::this_thread::get_id());
}

// Two workers over memory ports, splitting the flows by slot: a FullNAT
// flow's SYN and its backend's reply both arrive at the worker that does
// not own the flow, and both are handed to the one that does, which
// translates them as a single worker would.
TEST(Worker, BothDirectionsOfAFlowMeetAtTheWorkerThatOwnsIt) {
  GatewayConfig cfg = gateway_config();
  cfg.shards = 2;
  const SlotLayout layout = GatewayStage::slot_layout(cfg);
  const IpAddress client = IpAddress::parse("198.51.100.7");
  const IpAddress vip = IpAddress::parse("192.0.2.10");
  auto owner = [&](uint16_t sport) {
    const FlowKey k =
        make_flow_key(Family::kIpv4, kProtoTcp, client.bytes, vip.bytes, sport, 80, true);
    return layout.slot(k, Family::kIpv4, vip.bytes, 80) % 2;
  };
  uint16_t theirs = 40000;  // a flow of worker 1
  while (owner(theirs) != 1)
    ++theirs;
  uint16_t ours = 40000;  // and one of worker 0
  while (owner(ours) != 0)
    ++ours;

  HandoffMesh mesh(2, 64);
  std::unique_ptr<Worker> w[2];
  MemoryPort* port[2];
  for (uint32_t k = 0; k < 2; ++k) {
    auto p = std::make_unique<MemoryPort>(std::vector<Bytes>{});
    port[k] = p.get();
    w[k] = std::make_unique<Worker>("w" + std::to_string(k), std::move(p),
                                    std::make_unique<GatewayStage>(cfg, 0), nullptr, &mesh, k);
    w[k]->start();
  }
  auto feed = [&](uint32_t k, Bytes f) {
    ASSERT_TRUE(w[k]->call([&](GatewayStage&) { port[k]->feed({f}); }));
  };
  // Waits (at most 5 s) until worker k has sent n frames; returns them.
  auto sent = [&](uint32_t k, size_t n) {
    std::vector<Bytes> out;
    for (int tries = 0; tries < 500; ++tries) {
      EXPECT_TRUE(w[k]->call([&](GatewayStage&) { out = port[k]->output(); }));
      if (out.size() >= n) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return out;
  };
  auto meta_of = [](const Bytes& f) {
    PacketMeta m;
    EXPECT_EQ(parse_packet(f.data(), static_cast<uint32_t>(f.size()), &m), ParseError::kOk);
    return m;
  };

  feed(0, PacketBuilder().ipv4("198.51.100.7", "192.0.2.10").tcp(theirs, 80).syn().build());
  auto out1 = sent(1, 1);
  ASSERT_EQ(out1.size(), 1u);
  const PacketMeta syn = meta_of(out1[0]);
  EXPECT_EQ(IpAddress::from_bytes(Family::kIpv4, out1[0].data() + syn.dst_off).to_string(),
            "10.0.0.101");
  const uint16_t snat_port = syn.sport;
  EXPECT_EQ((snat_port - cfg.snat.port_lo) % kSlots % 2, 1);  // the port names worker 1

  // The backend's SYN-ACK to the SNAT port, at worker 0 again.
  feed(0, PacketBuilder()
              .ipv4("10.0.0.101", "10.0.0.21")
              .tcp(80, snat_port)
              .flags(kTcpSyn | kTcpAck)
              .ack_seq(1)
              .build());
  out1 = sent(1, 2);
  ASSERT_EQ(out1.size(), 2u);
  const PacketMeta synack = meta_of(out1[1]);
  EXPECT_EQ(IpAddress::from_bytes(Family::kIpv4, out1[1].data() + synack.src_off).to_string(),
            "192.0.2.10");
  EXPECT_EQ(synack.sport, 80);
  EXPECT_EQ(synack.dport, theirs);

  // A flow of worker 0 stays there.
  feed(0, PacketBuilder().ipv4("198.51.100.7", "192.0.2.10").tcp(ours, 80).syn().build());
  const auto out0 = sent(0, 1);
  EXPECT_EQ(out0.size(), 1u);

  std::map<std::string, uint64_t> c0, c1;
  ASSERT_TRUE(
      w[0]->export_counters([&](std::string_view n, uint64_t v) { c0[std::string(n)] = v; }));
  ASSERT_TRUE(
      w[1]->export_counters([&](std::string_view n, uint64_t v) { c1[std::string(n)] = v; }));
  EXPECT_EQ(c0["worker.handed_off"], 2u);
  EXPECT_EQ(c0["steer.kept"], 1u);
  EXPECT_EQ(c1["worker.handed_in"], 2u);
  EXPECT_EQ(c1["gateway.conns_live"], 1u);
  EXPECT_EQ(c0["gateway.conns_live"], 1u);
  EXPECT_EQ(c0["worker.dropped"], 0u);  // handed off is not dropped
  for (auto& x : w)
    x->stop();
}

// A full ring drops the packet, counted, and the sender goes on.
TEST(Handoff, AFullRingDropsAndCounts) {
  HandoffMesh mesh(2, 2);
  FramePool pool(8);
  Bytes f = PacketBuilder().ipv4("198.51.100.7", "192.0.2.10").tcp(1, 80).syn().build();
  Packet p;
  p.data = f.data();
  p.len = static_cast<uint32_t>(f.size());
  PacketMeta meta;
  ASSERT_EQ(parse_packet(p.data, p.len, &meta), ParseError::kOk);
  bool rev = false;
  const FlowKey key = flow_key_of(p.data, meta, true, &rev);
  EXPECT_TRUE(mesh.ring(0, 1).push(p, meta, key, rev));
  EXPECT_TRUE(mesh.ring(0, 1).push(p, meta, key, rev));
  EXPECT_FALSE(mesh.ring(0, 1).push(p, meta, key, rev));
  EXPECT_TRUE(mesh.pending(1));
  EXPECT_FALSE(mesh.pending(0));
  EXPECT_FALSE(mesh.may_sleep(1));  // packets wait: no sleep
  EXPECT_TRUE(mesh.may_sleep(0));
  struct Frames {
    FramePool* pool;
    bool alloc_frame(Packet* q) { return pool->alloc(q); }
  } frames{&pool};
  Packet in[4];
  PacketMeta in_meta[4];
  FlowKey in_key[4];
  bool in_rev[4] = {};
  ASSERT_EQ(mesh.receive(1, in, in_meta, in_key, in_rev, 4, frames), 2u);
  EXPECT_EQ(Bytes(in[0].data, in[0].data + in[0].len), f);
  // Its parse came along (the receiver does not parse it again).
  EXPECT_EQ(in_meta[1].l4_off, meta.l4_off);
  EXPECT_EQ(in_meta[1].flags, meta.flags);
  EXPECT_EQ(in_meta[1].dport, 80);
  EXPECT_EQ(in_meta[1].tcp_flags, meta.tcp_flags);
  EXPECT_TRUE(in_key[1] == key);
  EXPECT_EQ(in_rev[1], rev);
  EXPECT_FALSE(mesh.pending(1));
}

TEST(Daemon, RefusesWhatItCannotServeYet) {
  TripodConfig minimal = load_config(TRIPOD_CONFIG_DIR "/minimal.yaml");
  EXPECT_NO_THROW(Daemon::check_supported(minimal));
  // Several queues of one interface: a worker each.
  minimal.interfaces[0].queues = {0, 1, 2};
  EXPECT_NO_THROW(Daemon::check_supported(minimal));
  minimal.workers = 2;  // not one per queue
  EXPECT_THROW(Daemon::check_supported(minimal), std::runtime_error);
  // Egress SNAT, in a cluster too (its flows are replicated).
  minimal.workers = 0;
  minimal.gateway.egress.sources = {"10.0.0.0/8"};
  EXPECT_NO_THROW(Daemon::check_supported(minimal));
  minimal.cluster.enabled = true;
  EXPECT_NO_THROW(Daemon::check_supported(minimal));
  // Two interfaces.
  EXPECT_THROW(Daemon::check_supported(load_config(TRIPOD_CONFIG_DIR "/tripod.example.yaml")),
               std::runtime_error);
}

TEST(Logging, JsonEscapeKeepsALineValidJson) {
  const std::string raw = "path \"/etc/x\" \\ tab\t nl\n bell\x07";
  const std::string line = "{\"msg\":\"" + json_escape(raw) + "\"}";
  const auto j = nlohmann::json::parse(line);
  EXPECT_EQ(j["msg"].get<std::string>(), raw);
}

TEST(Status, SummaryOfADocumentAndOfAPartialOne) {
  const std::string doc = R"({"uptime_s": 12, "config": "t.yaml",
    "vips": [{"name": "web", "mode": "fullnat", "connections": 3, "synproxy": false,
              "backends": [{"address": "10.0.0.101", "port": 80, "weight": 1,
                            "health": "down", "in_pool": false, "last_error": "timeout"}]}],
    "workers": [{"name": "eth0/0", "counters": {"worker.rx": 10, "worker.tx": 9,
                 "gateway.conns_live": 3, "gateway.drop_firewall": 1, "gateway.hits": 7}}]})";
  const std::string s = format_status(doc);
  EXPECT_NE(s.find("VIP web  fullnat  3 connection(s)"), std::string::npos) << s;
  EXPECT_NE(s.find("last error: timeout"), std::string::npos) << s;
  EXPECT_NE(s.find("gateway.drop_firewall 1"), std::string::npos) << s;
  EXPECT_EQ(s.find("gateway.hits"), std::string::npos) << s;  // not a drop
  // Another version's document, fields missing: a summary, no crash.
  EXPECT_NO_THROW(format_status(R"({"workers": [{"name": "x"}]})"));
  EXPECT_THROW(format_status("not json"), std::exception);
}

}  // namespace
}  // namespace tripod
