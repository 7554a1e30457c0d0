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

TEST(Daemon, RefusesWhatItCannotServeYet) {
  EXPECT_NO_THROW(Daemon::check_supported(load_config(TRIPOD_CONFIG_DIR "/minimal.yaml")));
  // Two interfaces (two sockets) and egress SNAT.
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
