// Packet-level tests of the gateway stage: ParseStage + GatewayStage over the
// memory port, frames in, exact frames (or counted drops) out.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <string>

#include "common/clock.h"
#include "nf/gateway/flow_sync.h"
#include "nf/gateway/gateway_stage.h"
#include "packet/builder.h"
#include "packet/checksum.h"
#include "packet/parser.h"
#include "pipeline/parse_stage.h"
#include "pipeline/pipeline.h"

namespace tripod {
namespace {

constexpr const char* kClient = "198.51.100.7";
constexpr const char* kVip = "192.0.2.10";
constexpr const char* kProxyVip = "192.0.2.20";
constexpr const char* kSnat = "10.0.0.100";
constexpr const char* kDip1 = "10.1.0.1";
constexpr const char* kDip2 = "10.1.0.2";
constexpr const char* kDip3 = "10.1.0.3";
constexpr uint16_t kCport = 40000;
constexpr uint16_t kBport = 8080;
constexpr uint64_t kSec = 1'000'000'000;

struct Seg {
  const char* src;
  const char* dst;
  uint16_t sport, dport;
  uint8_t flags;
  uint32_t seq = 0, ack = 0;
  std::string payload = {};
};

PacketBuilder seg_builder(const Seg& s) {
  PacketBuilder b;
  if (std::string(s.src).find(':') != std::string::npos) {
    b.ipv6(s.src, s.dst).tcp(s.sport, s.dport).flags(s.flags).seq(s.seq);
  } else {
    b.ipv4(s.src, s.dst).dont_fragment().tcp(s.sport, s.dport).flags(s.flags).seq(s.seq);
  }
  if (s.flags & kTcpAck) b.ack_seq(s.ack);
  b.window(65535);
  if (!s.payload.empty()) b.payload(s.payload);
  return b;
}
Bytes seg(const Seg& s) {
  return seg_builder(s).build();
}

Backend backend(const char* ip, uint16_t port = kBport) {
  Backend b;
  b.addr = IpAddress::parse(ip);
  b.port = port;
  return b;
}

VipKey vip_key(const char* ip, uint16_t port) {
  return VipKey{IpAddress::parse(ip), kProtoTcp, port};
}

GatewayConfig test_config() {
  GatewayConfig c;
  c.firewall.acl = parse_rules("deny in tcp from 203.0.113.0/24\ndefault allow");
  GatewayVipConfig v;
  v.key = vip_key(kVip, 80);
  v.pool.backends = {backend(kDip1), backend(kDip2)};
  v.mss_clamp = 1400;
  c.vips.push_back(v);
  GatewayVipConfig p;
  p.key = vip_key(kProxyVip, 443);
  p.pool.backends = {backend(kDip1, 8443)};
  p.synproxy = true;
  p.synproxy_options.timestamps = false;
  c.vips.push_back(p);
  SnatAddress a;
  a.family = Family::kIpv4;
  const IpAddress s = IpAddress::parse(kSnat);
  std::memcpy(a.addr, s.bytes, 4);
  c.snat.addresses = {a};
  c.snat.port_lo = 5000;
  c.snat.port_hi = 5099;
  c.max_connections = 256;
  c.huge_pages = false;
  return c;
}

class Harness {
 public:
  explicit Harness(const GatewayConfig& cfg = test_config(), uint64_t start_ns = 1000 * kSec)
      : clock_(start_ns) {
    p_.add(std::make_unique<ParseStage>());
    auto gw = std::make_unique<GatewayStage>(cfg, clock_.now_ns());
    gw_ = gw.get();
    p_.add(std::move(gw));
  }
  std::vector<Bytes> send(std::vector<Bytes> in) {
    MemoryPort port(std::move(in));
    p_.run_to_end(port, &clock_);
    return port.output();
  }
  // One packet; the frame it became, or an empty frame if dropped.
  Bytes one(const Bytes& in) {
    auto out = send({in});
    return out.empty() ? Bytes{} : out[0];
  }
  std::map<std::string, uint64_t> counters() const {
    std::map<std::string, uint64_t> m;
    gw_->export_counters([&](std::string_view n, uint64_t v) { m[std::string(n)] = v; });
    return m;
  }
  GatewayStage& gw() { return *gw_; }
  ManualClock& clock() { return clock_; }

 private:
  ManualClock clock_;
  Pipeline p_;
  GatewayStage* gw_;
};

struct Endpoints {
  std::string dst;
  uint16_t sport = 0;
};
// Destination address and source port of a translated frame.
Endpoints endpoints_of(const Bytes& f) {
  PacketMeta m;
  EXPECT_EQ(parse_packet(f.data(), static_cast<uint32_t>(f.size()), &m), ParseError::kOk);
  return {IpAddress::from_bytes(m.family, f.data() + m.dst_off).to_string(), m.sport};
}

// Opens a FullNAT connection from kClient:cport; returns (DIP, SNAT port).
Endpoints open_conn(Harness& h, uint16_t cport) {
  const Bytes syn_out = h.one(seg({kClient, kVip, cport, 80, kTcpSyn, 1000}));
  EXPECT_FALSE(syn_out.empty());
  if (syn_out.empty()) return {};
  const Endpoints e = endpoints_of(syn_out);
  EXPECT_EQ(syn_out, seg({kSnat, e.dst.c_str(), e.sport, kBport, kTcpSyn, 1000}));
  const Bytes synack = seg({e.dst.c_str(), kSnat, kBport, e.sport, kTcpSyn | kTcpAck, 5000, 1001});
  EXPECT_EQ(h.one(synack), seg({kVip, kClient, 80, cport, kTcpSyn | kTcpAck, 5000, 1001}));
  EXPECT_EQ(h.one(seg({kClient, kVip, cport, 80, kTcpAck, 1001, 5001})),
            seg({kSnat, e.dst.c_str(), e.sport, kBport, kTcpAck, 1001, 5001}));
  return e;
}

// Closes a connection open_conn(h, kCport) opened: the backend first, as
// servers do with "Connection: close", then the client; TIME_WAIT.
void close_conn(Harness& h, const Endpoints& e) {
  const char* dip = e.dst.c_str();
  for (const Bytes& f : {seg({dip, kSnat, kBport, e.sport, kTcpFin | kTcpAck, 5001, 1001}),
                         seg({kClient, kVip, kCport, 80, kTcpFin | kTcpAck, 1001, 5002}),
                         seg({dip, kSnat, kBport, e.sport, kTcpAck, 5002, 1002})})
    ASSERT_FALSE(h.one(f).empty());
}

TEST(Gateway, FullNatHandshakeAndDataBothWays) {
  Harness h;
  const Endpoints e = open_conn(h, kCport);
  EXPECT_TRUE(e.dst == kDip1 || e.dst == kDip2) << e.dst;
  EXPECT_GE(e.sport, 5000);
  EXPECT_LE(e.sport, 5099);
  const char* dip = e.dst.c_str();
  // Data both ways, table-driven: input -> expected output.
  const struct {
    Seg in, out;
  } cases[] = {
      {{kClient, kVip, kCport, 80, kTcpAck | kTcpPsh, 1001, 5001, "hello"},
       {kSnat, dip, e.sport, kBport, kTcpAck | kTcpPsh, 1001, 5001, "hello"}},
      {{dip, kSnat, kBport, e.sport, kTcpAck | kTcpPsh, 5001, 1006, "world!"},
       {kVip, kClient, 80, kCport, kTcpAck | kTcpPsh, 5001, 1006, "world!"}},
      {{kClient, kVip, kCport, 80, kTcpAck, 1006, 5007},
       {kSnat, dip, e.sport, kBport, kTcpAck, 1006, 5007}},
  };
  for (const auto& c : cases)
    EXPECT_EQ(h.one(seg(c.in)), seg(c.out));
  auto c = h.counters();
  EXPECT_EQ(c["conns_created"], 1u);
  EXPECT_EQ(c["conns_created_nat"], 1u);
  EXPECT_EQ(c["conns_live"], 1u);
  EXPECT_EQ(c["hits"], 5u);
  EXPECT_EQ(c["lb_connections_live"], 1u);
  EXPECT_EQ(h.gw().table().size(), 2u);
  EXPECT_EQ(h.gw().snat()->free_ports(0), 99u);
}

// The same FullNAT connection over IPv6: an IPv6 VIP, backend and SNAT pool.
// IPv6 FullNAT on a dual-stack node: one SNAT allocator per family.
constexpr const char* kClient6 = "2001:db8:c::7";
constexpr const char* kVip6 = "2001:db8:f::10";
constexpr const char* kSnat6 = "fd00:1::1";
constexpr const char* kDip6 = "fd00:2::5";

// test_config() with an IPv6 VIP (kVip6:80 -> kDip6, no MSS clamp) and an
// IPv6 SNAT address.
GatewayConfig ipv6_config() {
  GatewayConfig c = test_config();
  GatewayVipConfig v;
  v.key = vip_key(kVip6, 80);
  v.pool.backends = {backend(kDip6)};
  c.vips.push_back(v);
  SnatAddress a;
  a.family = Family::kIpv6;
  std::memcpy(a.addr, IpAddress::parse(kSnat6).bytes, 16);
  c.snat.addresses.push_back(a);
  return c;
}

TEST(Gateway, FullNatOverIpv6) {
  Harness h(ipv6_config());
  ASSERT_NE(h.gw().snat(Family::kIpv6), nullptr);

  const Bytes syn_out = h.one(seg({kClient6, kVip6, kCport, 80, kTcpSyn, 1000}));
  ASSERT_FALSE(syn_out.empty());
  const Endpoints e = endpoints_of(syn_out);
  EXPECT_EQ(e.dst, kDip6);
  EXPECT_GE(e.sport, 5000);
  EXPECT_LE(e.sport, 5099);
  const struct {
    Seg in, out;
  } cases[] = {
      {{kDip6, kSnat6, kBport, e.sport, kTcpSyn | kTcpAck, 5000, 1001},
       {kVip6, kClient6, 80, kCport, kTcpSyn | kTcpAck, 5000, 1001}},
      {{kClient6, kVip6, kCport, 80, kTcpAck, 1001, 5001},
       {kSnat6, kDip6, e.sport, kBport, kTcpAck, 1001, 5001}},
      {{kClient6, kVip6, kCport, 80, kTcpAck | kTcpPsh, 1001, 5001, "hello"},
       {kSnat6, kDip6, e.sport, kBport, kTcpAck | kTcpPsh, 1001, 5001, "hello"}},
      {{kDip6, kSnat6, kBport, e.sport, kTcpAck | kTcpPsh, 5001, 1006, "world!"},
       {kVip6, kClient6, 80, kCport, kTcpAck | kTcpPsh, 5001, 1006, "world!"}},
  };
  EXPECT_EQ(syn_out, seg({kSnat6, kDip6, e.sport, kBport, kTcpSyn, 1000}));
  for (const auto& tc : cases)
    EXPECT_EQ(h.one(seg(tc.in)), seg(tc.out));
  EXPECT_EQ(h.gw().snat(Family::kIpv6)->free_ports(0), 99u);
  EXPECT_EQ(h.gw().snat(Family::kIpv4)->free_ports(0), 100u);
  // The IPv4 VIP beside it takes its port from the IPv4 pool.
  open_conn(h, kCport);
  EXPECT_EQ(h.gw().snat(Family::kIpv4)->free_ports(0), 99u);
  auto ctr = h.counters();
  EXPECT_EQ(ctr["conns_created_nat"], 2u);
  EXPECT_EQ(ctr["conns_live"], 2u);
  EXPECT_EQ(h.gw().table().size(), 4u);
}

TEST(Gateway, ClampsTheMssOfSynsToTheVip) {
  Harness h;
  const Bytes out =
      h.one(seg_builder({kClient, kVip, kCport, 80, kTcpSyn, 1000}).mss(1460).build());
  ASSERT_FALSE(out.empty());
  const Endpoints e = endpoints_of(out);
  EXPECT_EQ(out,
            seg_builder({kSnat, e.dst.c_str(), e.sport, kBport, kTcpSyn, 1000}).mss(1400).build());
  EXPECT_EQ(h.counters()["mss_clamped"], 1u);
}

TEST(Gateway, DropsAreCounted) {
  Harness h;
  const struct {
    Bytes in;
    const char* counter;
  } cases[] = {
      {seg({"203.0.113.9", kVip, 1234, 80, kTcpSyn, 1}), "fw_deny_rule"},
      {seg({kClient, kVip, 4321, 80, kTcpAck, 1, 1}), "fw_drop_stray_ack"},
      {seg({kClient, "192.0.2.99", 4321, 80, kTcpAck, 1, 1}), "fw_drop_stray_ack"},
  };
  for (const auto& c : cases) {
    const auto before = h.counters();
    EXPECT_TRUE(h.one(c.in).empty()) << c.counter;
    auto after = h.counters();
    EXPECT_EQ(after[c.counter], before.at(c.counter) + 1) << c.counter;
    EXPECT_EQ(after["drop_firewall"], before.at("drop_firewall") + 1) << c.counter;
  }
  auto c = h.counters();
  EXPECT_EQ(c["conns_live"], 0u);
  EXPECT_EQ(h.gw().table().size(), 0u);
  EXPECT_EQ(h.gw().snat()->free_ports(0), 100u);
}

TEST(Gateway, PoolChangeKeepsConnectionsOnTheirBackend) {
  Harness h;
  const Endpoints e = open_conn(h, kCport);
  const VipId vip = h.gw().vip_id(vip_key(kVip, 80));
  PoolSpec next;
  next.backends = {backend(kDip3)};
  h.gw().lb().commit(vip, h.gw().lb().prepare(vip, next));
  // The old connection stays on its DIP.
  EXPECT_EQ(h.one(seg({kClient, kVip, kCport, 80, kTcpAck | kTcpPsh, 1001, 5001, "x"})),
            seg({kSnat, e.dst.c_str(), e.sport, kBport, kTcpAck | kTcpPsh, 1001, 5001, "x"}));
  // New ones use the new pool.
  for (uint16_t p = 41000; p < 41005; ++p) {
    const Bytes out = h.one(seg({kClient, kVip, p, 80, kTcpSyn, 7}));
    ASSERT_FALSE(out.empty());
    EXPECT_EQ(endpoints_of(out).dst, kDip3);
  }
  EXPECT_EQ(h.counters()["conns_live"], 6u);
}

// Expected control frames (RST, window update) as write_tcp_frame builds them.
Bytes ctrl(const Seg& s, uint16_t window, bool swapped_macs) {
  PacketBuilder b = seg_builder(s);
  b.window(window);
  if (swapped_macs) b.eth("02:00:00:00:00:02", "02:00:00:00:00:01");
  if (std::string(s.src).find(':') == std::string::npos) b.dont_fragment();
  return b.build();
}

TEST(Gateway, KilledBackendResetsItsConnectionsBothWays) {
  Harness h;
  const Endpoints e = open_conn(h, kCport);
  const char* dip = e.dst.c_str();
  const VipId vip = h.gw().vip_id(vip_key(kVip, 80));
  PoolSpec next;  // the backend leaves the pool first, then is killed
  next.backends = {backend(e.dst == kDip1 ? kDip2 : kDip1)};
  h.gw().lb().commit(vip, h.gw().lb().prepare(vip, next));
  EXPECT_EQ(h.gw().lb().kill_backend(vip, IpAddress::parse(e.dst), kBport), 1u);

  // Client data: the packet goes on as the backend's RST (in the backend's
  // address space), and a RST comes back to the client.
  auto out = h.send({seg({kClient, kVip, kCport, 80, kTcpAck | kTcpPsh, 1001, 5001, "hi"})});
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0], ctrl({kSnat, dip, e.sport, kBport, kTcpRst | kTcpAck, 1001, 5001}, 0, false));
  EXPECT_EQ(out[1], ctrl({kVip, kClient, 80, kCport, kTcpRst | kTcpAck, 5001, 1003}, 0, true));
  // The backend's next packet is answered the same way, from its side.
  out = h.send({seg({dip, kSnat, kBport, e.sport, kTcpAck | kTcpPsh, 5001, 1003, "late"})});
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0], ctrl({kVip, kClient, 80, kCport, kTcpRst | kTcpAck, 5001, 1003}, 0, false));
  EXPECT_EQ(out[1], ctrl({kSnat, dip, e.sport, kBport, kTcpRst | kTcpAck, 1003, 5005}, 0, true));
  auto c = h.counters();
  EXPECT_EQ(c["backend_killed_resets"], 2u);
  EXPECT_EQ(c["created_no_frame"], 0u);
  // A RST itself is not answered: dropped and counted.
  EXPECT_TRUE(h.send({seg({kClient, kVip, kCport, 80, kTcpRst, 1003})}).empty());
  EXPECT_EQ(h.counters()["drop_backend_killed"], 1u);
  // The connection ends on the close timeout (10 s).
  h.clock().advance_ns(11 * kSec);
  h.gw().advance_to(h.clock().now_ns());
  c = h.counters();
  EXPECT_EQ(c["conns_live"], 0u);
  EXPECT_EQ(c["lb_connections_live"], 0u);
  EXPECT_EQ(h.gw().table().size(), 0u);
}

TEST(Gateway, ExpiryFreesSnatPortAndBothKeys) {
  Harness h;
  ASSERT_FALSE(h.one(seg({kClient, kVip, kCport, 80, kTcpSyn, 1000})).empty());
  EXPECT_EQ(h.gw().snat()->free_ports(0), 99u);
  EXPECT_EQ(h.gw().table().size(), 2u);
  // A retransmitted SYN extends the record's deadline only; both keys are
  // re-armed from the record when their own (first) deadline comes.
  h.clock().advance_ns(100 * kSec);
  ASSERT_FALSE(h.one(seg({kClient, kVip, kCport, 80, kTcpSyn, 1000})).empty());
  h.clock().advance_ns(50 * kSec);  // 150 s: past the keys' first deadline
  h.gw().advance_to(h.clock().now_ns());
  auto c = h.counters();
  EXPECT_EQ(c["keys_rearmed"], 2u);
  EXPECT_EQ(c["conns_live"], 1u);
  EXPECT_EQ(h.gw().table().size(), 2u);
  h.clock().advance_ns(71 * kSec);  // 221 s: 120 s after the last SYN
  h.gw().advance_to(h.clock().now_ns());
  c = h.counters();
  EXPECT_EQ(c["conns_freed"], 1u);
  EXPECT_EQ(c["conns_live"], 0u);
  EXPECT_EQ(c["lb_connections_live"], 0u);
  EXPECT_EQ(c["snat_bad_frees"], 0u);
  EXPECT_EQ(h.gw().table().size(), 0u);
  EXPECT_EQ(h.gw().snat()->free_ports(0), 100u);
}

TEST(Gateway, ResetShortensTheConnectionsLife) {
  Harness h;
  const Endpoints e = open_conn(h, kCport);
  h.clock().advance_ns(1000 * kSec);  // established: far from expiry
  h.gw().advance_to(h.clock().now_ns());
  EXPECT_EQ(h.counters()["conns_live"], 1u);
  EXPECT_EQ(h.one(seg({e.dst.c_str(), kSnat, kBport, e.sport, kTcpRst, 5001})),
            seg({kVip, kClient, 80, kCport, kTcpRst, 5001}));
  h.clock().advance_ns(11 * kSec);  // tcp_close: 10 s
  h.gw().advance_to(h.clock().now_ns());
  auto c = h.counters();
  EXPECT_EQ(c["conns_live"], 0u);
  EXPECT_EQ(c["conns_freed"], 1u);
  EXPECT_EQ(h.gw().table().size(), 0u);
  EXPECT_EQ(h.gw().snat()->free_ports(0), 100u);
}

// The slot a frame names (GatewayStage::packet_slot() after parsing).
uint32_t packet_slot_of(const GatewayStage& gw, Bytes f) {
  Burst b;
  b.n = 1;
  b.pkts[0].data = f.data();
  b.pkts[0].len = static_cast<uint32_t>(f.size());
  ParseStage().process(b);
  EXPECT_EQ(b.verdict[0], Verdict::kForward);
  return gw.packet_slot(b, 0);
}

// Split between workers (shards), the SNAT port comes from the flow's slot,
// and every packet of the flow names that slot from its bytes: both
// directions, before and after translation, and ICMP errors about either.
TEST(Gateway, EveryPacketOfAFlowNamesItsSlot) {
  EXPECT_EQ(Harness().gw().snat()->partitions(), 1u);  // one worker: no layout
  GatewayConfig cfg = test_config();
  cfg.snat.port_hi = 9999;  // at least a port per slot
  cfg.shards = 2;
  Harness h(cfg);
  const Endpoints e = open_conn(h, kCport);
  const char* dip = e.dst.c_str();
  const FlowKey orig = make_flow_key(Family::kIpv4, kProtoTcp, IpAddress::parse(kClient).bytes,
                                     IpAddress::parse(kVip).bytes, kCport, 80, false);
  const uint32_t slot = h.gw().slot_of(orig);
  EXPECT_EQ(h.gw().snat()->partitions(), kSlots);
  EXPECT_EQ(h.gw().snat()->partition_of(e.sport), slot);
  auto packet_slot = [&](Bytes f) { return packet_slot_of(h.gw(), f); };
  const Seg fwd{kClient, kVip, kCport, 80, kTcpAck, 1001, 5001};
  const Seg fwd_out{kSnat, dip, e.sport, kBport, kTcpAck, 1001, 5001};
  const Seg rep{dip, kSnat, kBport, e.sport, kTcpAck, 5001, 1001};
  const Seg rep_out{kVip, kClient, 80, kCport, kTcpAck, 5001, 1001};
  // (fwd_out is never received: it leaves towards the backend.)
  for (const Seg& x : {fwd, rep, rep_out})
    EXPECT_EQ(packet_slot(seg(x)), slot) << x.src << " -> " << x.dst;
  // Errors travel against what they quote: from the backend about what we
  // sent it, from the client side about what we sent the client.
  EXPECT_EQ(packet_slot(PacketBuilder()
                            .ipv4(dip, kSnat)
                            .icmp_error(3, 4, seg_builder(fwd_out).build_l3(), 1400)
                            .build()),
            slot);
  EXPECT_EQ(packet_slot(PacketBuilder()
                            .ipv4("198.51.100.1", kVip)
                            .icmp_error(3, 4, seg_builder(rep_out).build_l3(), 1280)
                            .build()),
            slot);
  // A peer's record names it too (the agent routes it to the worker by
  // it): by the client key, or, for a pull about a reply, by the port.
  const SlotLayout layout = GatewayStage::slot_layout(cfg);
  FlowSync rec;
  rec.family = Family::kIpv4;
  rec.proto = kProtoTcp;
  std::memcpy(rec.src_addr, IpAddress::parse(kClient).bytes, 4);
  std::memcpy(rec.dst_addr, IpAddress::parse(kVip).bytes, 4);
  rec.src_port = kCport;
  rec.dst_port = 80;
  EXPECT_EQ(record_slot(rec, layout), slot);
  FlowSync pull = rec;
  pull.op = FlowSyncOp::kPull;
  std::memcpy(pull.src_addr, IpAddress::parse(dip).bytes, 4);
  std::memcpy(pull.dst_addr, IpAddress::parse(kSnat).bytes, 4);
  pull.src_port = kBport;
  pull.dst_port = e.sport;
  EXPECT_EQ(record_slot(pull, layout), slot);
  // A VIP whose port a translated flow could have: refused.
  GatewayVipConfig on_snat = test_config().vips[0];
  on_snat.key = vip_key(kSnat, 6000);
  EXPECT_THROW(h.gw().add_vip(on_snat), std::invalid_argument);
  on_snat.key = vip_key(kSnat, 443);  // outside the range: fine
  EXPECT_NO_THROW(h.gw().add_vip(on_snat));
  // Another client's flow: most likely another slot (1 in 256 not).
  uint32_t differ = 0;
  for (uint16_t p = 1; p <= 8; ++p)
    differ +=
        packet_slot(seg({kClient, kVip, static_cast<uint16_t>(kCport + p), 80, kTcpSyn})) != slot;
  EXPECT_GE(differ, 6u);
}

TEST(Gateway, IcmpFragNeededIsTranslatedBothWays) {
  Harness h;
  const Endpoints e = open_conn(h, kCport);
  const char* dip = e.dst.c_str();
  const Seg sent{kSnat, dip, e.sport, kBport, kTcpAck | kTcpPsh, 1001, 5001, "hello"};
  const Seg orig{kClient, kVip, kCport, 80, kTcpAck | kTcpPsh, 1001, 5001, "hello"};
  const Bytes quoted = seg_builder(sent).build_l3();
  const Bytes expect_quoted = seg_builder(orig).build_l3();
  const Bytes icmp = PacketBuilder().ipv4(dip, kSnat).icmp_error(3, 4, quoted, 1400).build();
  const Bytes want =
      PacketBuilder().ipv4(dip, kClient).icmp_error(3, 4, expect_quoted, 1400).build();
  EXPECT_EQ(h.one(icmp), want);
  EXPECT_EQ(h.counters()["icmp_translated"], 1u);
  // And from the client side, about a reply: reaches the backend as an
  // error about the packet it sent.
  const Seg reply_out{kVip, kClient, 80, kCport, kTcpAck, 5001, 1006};
  const Seg reply_in{dip, kSnat, kBport, e.sport, kTcpAck, 5001, 1006};
  const Bytes icmp2 = PacketBuilder()
                          .ipv4("198.51.100.1", kVip)
                          .icmp_error(3, 4, seg_builder(reply_out).build_l3(), 1280)
                          .build();
  EXPECT_EQ(h.one(icmp2), PacketBuilder()
                              .ipv4("198.51.100.1", dip)
                              .icmp_error(3, 4, seg_builder(reply_in).build_l3(), 1280)
                              .build());
  EXPECT_EQ(h.counters()["icmp_translated"], 2u);
  // An error about no connection is dropped.
  const Bytes stray =
      PacketBuilder()
          .ipv4(dip, kSnat)
          .icmp_error(3, 4, seg_builder({kSnat, dip, 5555, kBport, kTcpAck, 1, 1}).build_l3(), 1400)
          .build();
  EXPECT_TRUE(h.one(stray).empty());
  EXPECT_EQ(h.counters()["drop_icmp_no_conn"], 1u);
}

TEST(Gateway, NonVipTrafficPassesTheFirewallUntranslated) {
  Harness h;
  const Bytes q = PacketBuilder().ipv4("10.2.0.5", "8.8.8.8").udp(5353, 53).payload("q").build();
  const Bytes r = PacketBuilder().ipv4("8.8.8.8", "10.2.0.5").udp(53, 5353).payload("r").build();
  EXPECT_EQ(h.send({q, r, q}), (std::vector<Bytes>{q, r, q}));
  auto c = h.counters();
  EXPECT_EQ(c["conns_created"], 1u);
  EXPECT_EQ(c["conns_created_nat"], 0u);
  EXPECT_EQ(c["hits"], 2u);
  EXPECT_EQ(c["fw_created"], 1u);
  EXPECT_EQ(h.gw().table().size(), 1u);
  EXPECT_EQ(h.gw().snat()->free_ports(0), 100u);
}

TEST(Gateway, SynProxyAnswersWithCookieAndOpensTheBackend) {
  Harness h;
  const Bytes syn = seg_builder({kClient, kProxyVip, kCport, 443, kTcpSyn, 1000}).mss(1460).build();
  const Bytes synack = h.one(syn);
  ASSERT_FALSE(synack.empty());
  PacketMeta m;
  ASSERT_EQ(parse_packet(synack.data(), static_cast<uint32_t>(synack.size()), &m), ParseError::kOk);
  EXPECT_EQ(m.tcp_flags, kTcpSyn | kTcpAck);
  EXPECT_EQ(m.tcp_ack, 1001u);
  EXPECT_EQ(IpAddress::from_bytes(m.family, synack.data() + m.dst_off).to_string(), kClient);
  EXPECT_EQ(m.sport, 443);
  auto c = h.counters();
  EXPECT_EQ(c["synproxy_syn_cookies_sent"], 1u);
  EXPECT_EQ(c["conns_live"], 0u);
  EXPECT_EQ(h.gw().table().size(), 0u);
  const uint32_t cookie = m.tcp_seq;

  // A forged ACK is dropped; the right one opens the backend.
  EXPECT_TRUE(h.one(seg({kClient, kProxyVip, kCport, 443, kTcpAck, 1001, cookie + 7})).empty());
  EXPECT_EQ(h.counters()["drop_synproxy"], 1u);
  const Bytes bsyn = h.one(seg({kClient, kProxyVip, kCport, 443, kTcpAck, 1001, cookie + 1}));
  ASSERT_FALSE(bsyn.empty());
  ASSERT_EQ(parse_packet(bsyn.data(), static_cast<uint32_t>(bsyn.size()), &m), ParseError::kOk);
  EXPECT_EQ(m.tcp_flags, kTcpSyn);
  EXPECT_EQ(m.tcp_seq, 1000u);
  EXPECT_EQ(m.dport, 8443);
  EXPECT_EQ(IpAddress::from_bytes(m.family, bsyn.data() + m.dst_off).to_string(), kDip1);
  EXPECT_EQ(IpAddress::from_bytes(m.family, bsyn.data() + m.src_off).to_string(), kSnat);
  const uint16_t sport = m.sport;
  c = h.counters();
  EXPECT_EQ(c["conns_live"], 1u);
  EXPECT_EQ(h.gw().table().size(), 2u);

  // The backend's SYN-ACK becomes our ACK to it, and the client's window
  // opens (our cookie SYN-ACK offered zero) with the backend's window.
  const auto two = h.send({seg({kDip1, kSnat, 8443, sport, kTcpSyn | kTcpAck, 7000, 1001})});
  ASSERT_EQ(two.size(), 2u);
  const Bytes& back = two[0];
  EXPECT_EQ(two[1],
            ctrl({kProxyVip, kClient, 443, kCport, kTcpAck, cookie + 1, 1001}, 65535, false));
  EXPECT_EQ(h.counters()["synproxy_window_update"], 1u);
  ASSERT_EQ(parse_packet(back.data(), static_cast<uint32_t>(back.size()), &m), ParseError::kOk);
  EXPECT_EQ(m.tcp_flags, kTcpAck);
  EXPECT_EQ(m.tcp_seq, 1001u);
  EXPECT_EQ(m.tcp_ack, 7001u);
  EXPECT_EQ(IpAddress::from_bytes(m.family, back.data() + m.dst_off).to_string(), kDip1);
  EXPECT_EQ(m.dport, 8443);
  EXPECT_EQ(m.sport, sport);

  // Data both ways, sequence numbers translated.
  const Bytes up =
      h.one(seg({kClient, kProxyVip, kCport, 443, kTcpAck | kTcpPsh, 1001, cookie + 1, "GET"}));
  ASSERT_FALSE(up.empty());
  ASSERT_EQ(parse_packet(up.data(), static_cast<uint32_t>(up.size()), &m), ParseError::kOk);
  EXPECT_EQ(m.tcp_ack, 7001u);
  EXPECT_EQ(m.dport, 8443);
  const Bytes down = h.one(seg({kDip1, kSnat, 8443, sport, kTcpAck | kTcpPsh, 7001, 1004, "200"}));
  ASSERT_FALSE(down.empty());
  ASSERT_EQ(parse_packet(down.data(), static_cast<uint32_t>(down.size()), &m), ParseError::kOk);
  EXPECT_EQ(m.tcp_seq, cookie + 1);
  EXPECT_EQ(m.sport, 443);
  EXPECT_EQ(IpAddress::from_bytes(m.family, down.data() + m.dst_off).to_string(), kClient);
  EXPECT_EQ(h.counters()["drop_synproxy"], 1u);
}

// DSR: only the destination MAC changes; one key, the client's half.
constexpr const char* kDsrVip = "192.0.2.30";
constexpr uint8_t kMac1[6] = {2, 0, 0, 0, 0x10, 1};
constexpr uint8_t kMac2[6] = {2, 0, 0, 0, 0x10, 2};

GatewayConfig dsr_config() {
  GatewayConfig c = test_config();
  GatewayVipConfig v;
  v.key = vip_key(kDsrVip, 80);
  v.mode = VipMode::kDsr;
  Backend b1 = backend(kDip1, 0), b2 = backend(kDip2, 80);
  std::memcpy(b1.mac, kMac1, 6);
  std::memcpy(b2.mac, kMac2, 6);
  v.pool.backends = {b1, b2};
  c.vips.push_back(v);
  return c;
}

std::string mac_of(const Bytes& f) {
  char buf[18];
  std::snprintf(buf, sizeof buf, "%02x:%02x:%02x:%02x:%02x:%02x", f[0], f[1], f[2], f[3], f[4],
                f[5]);
  return buf;
}

TEST(Gateway, DsrRewritesOnlyTheDestinationMac) {
  Harness h(dsr_config());
  const Bytes syn = seg({kClient, kDsrVip, kCport, 80, kTcpSyn, 1000});
  const Bytes out = h.one(syn);
  ASSERT_EQ(out.size(), syn.size());
  const std::string mac = mac_of(out);
  ASSERT_TRUE(mac == "02:00:00:00:10:01" || mac == "02:00:00:00:10:02") << mac;
  EXPECT_TRUE(std::equal(out.begin() + 6, out.end(), syn.begin() + 6));  // the rest unchanged
  // Later packets of the connection go to the same backend.
  for (uint32_t k = 0; k < 5; ++k) {
    const Bytes d = seg({kClient, kDsrVip, kCport, 80, kTcpAck | kTcpPsh, 1001 + k, 9000, "x"});
    const Bytes o = h.one(d);
    ASSERT_EQ(o.size(), d.size());
    EXPECT_EQ(mac_of(o), mac);
  }
  auto c = h.counters();
  EXPECT_EQ(c["conns_created_dsr"], 1u);
  EXPECT_EQ(c["conns_live"], 1u);
  EXPECT_EQ(h.gw().table().size(), 1u);  // no reply key: replies bypass us
  // A pool change keeps the connection on its backend.
  const VipId vip = h.gw().vip_id(vip_key(kDsrVip, 80));
  PoolSpec only_other;
  Backend other = backend(mac == "02:00:00:00:10:01" ? kDip2 : kDip1, 80);
  std::memcpy(other.mac, mac == "02:00:00:00:10:01" ? kMac2 : kMac1, 6);
  only_other.backends = {other};
  h.gw().lb().commit(vip, h.gw().lb().prepare(vip, only_other));
  EXPECT_EQ(mac_of(h.one(seg({kClient, kDsrVip, kCport, 80, kTcpAck, 1010, 9000}))), mac);
  // A FIN shortens its life to time_wait (120 s), and the client's last
  // ACK does not bring the established timeout back.
  ASSERT_FALSE(h.one(seg({kClient, kDsrVip, kCport, 80, kTcpFin | kTcpAck, 1010, 9000})).empty());
  ASSERT_FALSE(h.one(seg({kClient, kDsrVip, kCport, 80, kTcpAck, 1011, 9001})).empty());
  // The client reuses its port: a new connection, scheduled afresh.
  ASSERT_FALSE(h.one(seg({kClient, kDsrVip, kCport, 80, kTcpSyn, 50000})).empty());
  EXPECT_EQ(h.counters()["conns_reused"], 1u);
  EXPECT_EQ(h.counters()["conns_live"], 1u);
  h.clock().advance_ns(121 * kSec);
  h.gw().advance_to(h.clock().now_ns());
  c = h.counters();
  EXPECT_EQ(c["conns_live"], 0u);
  EXPECT_EQ(c["lb_connections_live"], 0u);
}

TEST(Gateway, DsrKilledBackendResetsBothWays) {
  Harness h(dsr_config());
  const Bytes first = h.one(seg({kClient, kDsrVip, kCport, 80, kTcpSyn, 1000}));
  ASSERT_FALSE(first.empty());
  const bool on1 = mac_of(first) == "02:00:00:00:10:01";
  const VipId vip = h.gw().vip_id(vip_key(kDsrVip, 80));
  PoolSpec next;  // out of the pool first, then killed
  next.backends = {dsr_config().vips.back().pool.backends[on1 ? 1 : 0]};
  h.gw().lb().commit(vip, h.gw().lb().prepare(vip, next));
  EXPECT_EQ(h.gw().lb().kill_backend(vip, IpAddress::parse(on1 ? kDip1 : kDip2), on1 ? 0 : 80), 1u);
  const auto out =
      h.send({seg({kClient, kDsrVip, kCport, 80, kTcpAck | kTcpPsh, 1001, 7001, "a"})});
  ASSERT_EQ(out.size(), 2u);
  Bytes to_backend = ctrl({kClient, kDsrVip, kCport, 80, kTcpRst | kTcpAck, 1001, 7001}, 0, false);
  std::memcpy(to_backend.data(), on1 ? kMac1 : kMac2, 6);
  EXPECT_EQ(out[0], to_backend);
  EXPECT_EQ(out[1], ctrl({kDsrVip, kClient, 80, kCport, kTcpRst | kTcpAck, 7001, 1002}, 0, true));
}

TEST(Gateway, DsrConfigurationIsChecked) {
  GatewayConfig c = dsr_config();
  std::memset(c.vips.back().pool.backends[0].mac, 0, 6);
  EXPECT_THROW(GatewayStage(c, 0), std::invalid_argument);
  c = dsr_config();
  c.vips.back().pool.backends[1].port = 8080;  // DSR cannot translate ports
  EXPECT_THROW(GatewayStage(c, 0), std::invalid_argument);
  c = dsr_config();
  c.vips.back().synproxy = true;  // the proxy needs both directions
  EXPECT_THROW(GatewayStage(c, 0), std::invalid_argument);
}

// Egress SNAT: internal hosts reach the outside from the public address.
constexpr const char* kInside = "10.9.0.5";
constexpr const char* kOutside = "198.18.0.1";
constexpr const char* kPublic = "203.0.113.50";

GatewayConfig egress_config() {
  GatewayConfig c = test_config();
  c.egress.sources = {"10.9.0.0/16"};
  SnatAddress a;
  a.family = Family::kIpv4;
  std::memcpy(a.addr, IpAddress::parse(kPublic).bytes, 4);
  c.egress.snat.addresses = {a};
  c.egress.snat.port_lo = 20000;
  c.egress.snat.port_hi = 20099;
  return c;
}

TEST(Gateway, EgressSnatTranslatesTheInsideHostOnly) {
  Harness h(egress_config());
  const Bytes syn_out = h.one(seg({kInside, kOutside, 33000, 443, kTcpSyn, 100}));
  ASSERT_FALSE(syn_out.empty());
  PacketMeta m;
  ASSERT_EQ(parse_packet(syn_out.data(), static_cast<uint32_t>(syn_out.size()), &m),
            ParseError::kOk);
  const uint16_t p = m.sport;
  EXPECT_GE(p, 20000);
  EXPECT_LE(p, 20099);
  EXPECT_EQ(syn_out, seg({kPublic, kOutside, p, 443, kTcpSyn, 100}));
  const struct {
    Seg in, out;
  } cases[] = {
      {{kOutside, kPublic, 443, p, kTcpSyn | kTcpAck, 900, 101},
       {kOutside, kInside, 443, 33000, kTcpSyn | kTcpAck, 900, 101}},
      {{kInside, kOutside, 33000, 443, kTcpAck | kTcpPsh, 101, 901, "GET /"},
       {kPublic, kOutside, p, 443, kTcpAck | kTcpPsh, 101, 901, "GET /"}},
      {{kOutside, kPublic, 443, p, kTcpAck | kTcpPsh, 901, 106, "200 OK"},
       {kOutside, kInside, 443, 33000, kTcpAck | kTcpPsh, 901, 106, "200 OK"}},
  };
  for (const auto& tc : cases)
    EXPECT_EQ(h.one(seg(tc.in)), seg(tc.out));
  // Inside to inside is not translated; outside to the public address with
  // no mapping is the firewall's (a stray SYN-ACK: dropped).
  EXPECT_EQ(h.one(seg({kInside, "10.9.1.1", 33001, 22, kTcpSyn, 1})),
            seg({kInside, "10.9.1.1", 33001, 22, kTcpSyn, 1}));
  EXPECT_TRUE(h.one(seg({kOutside, kPublic, 443, 20050, kTcpSyn | kTcpAck, 5, 6})).empty());
  // Outward but untranslatable (GRE: no ports): dropped, never sent out
  // with the internal source.
  EXPECT_TRUE(
      h.one(PacketBuilder().ipv4(kInside, kOutside).ip_proto(47).payload("gre").build()).empty());
  auto c = h.counters();
  EXPECT_EQ(c["drop_egress_untranslatable"], 1u);
  EXPECT_EQ(c["conns_created_egress"], 1u);
  EXPECT_EQ(c["egress_snat_free_ports_ipv4"], 99u);
  EXPECT_EQ(c["lb_connections_live"], 0u);
  // Expiry returns the port (SYN_SENT... established: advance past it).
  h.clock().advance_ns(432'001 * kSec);
  h.gw().advance_to(h.clock().now_ns());
  c = h.counters();
  EXPECT_EQ(c["egress_snat_free_ports_ipv4"], 100u);
  EXPECT_EQ(c["egress_snat_bad_frees_ipv4"], 0u);
}

TEST(Gateway, EgressSnatTranslatesPingIds) {
  Harness h(egress_config());
  const Bytes req = PacketBuilder().ipv4(kInside, kOutside).icmp_echo(true, 77, 1).build();
  const Bytes out = h.one(req);
  ASSERT_FALSE(out.empty());
  PacketMeta m;
  ASSERT_EQ(parse_packet(out.data(), static_cast<uint32_t>(out.size()), &m), ParseError::kOk);
  const uint16_t id = m.sport;
  EXPECT_GE(id, 20000);
  EXPECT_EQ(out, PacketBuilder().ipv4(kPublic, kOutside).icmp_echo(true, id, 1).build());
  const Bytes rep = PacketBuilder().ipv4(kOutside, kPublic).icmp_echo(false, id, 1).build();
  EXPECT_EQ(h.one(rep), PacketBuilder().ipv4(kOutside, kInside).icmp_echo(false, 77, 1).build());
}

// Split between workers, an egress flow's port comes from its slot too:
// the outside's replies (TCP, and a ping's reply by its translated id)
// name the slot of the inside host's packets.
TEST(Gateway, EgressRepliesNameTheirFlowsSlot) {
  GatewayConfig cfg = egress_config();
  cfg.snat.port_hi = 9999;  // at least a port per slot, both pools
  cfg.egress.snat.port_hi = 29999;
  cfg.shards = 2;
  Harness h(cfg);
  auto packet_slot = [&](Bytes f) { return packet_slot_of(h.gw(), f); };
  auto translated_port = [](const Bytes& f) {
    PacketMeta m;
    EXPECT_EQ(parse_packet(f.data(), static_cast<uint32_t>(f.size()), &m), ParseError::kOk);
    return m.sport;
  };
  for (uint16_t sport = 33000; sport < 33008; ++sport) {
    const Bytes syn = seg({kInside, kOutside, sport, 443, kTcpSyn, 100});
    const uint16_t p = translated_port(h.one(syn));
    EXPECT_EQ(packet_slot(seg({kOutside, kPublic, 443, p, kTcpSyn | kTcpAck, 900, 101})),
              packet_slot(syn))
        << sport;
  }
  const Bytes req = PacketBuilder().ipv4(kInside, kOutside).icmp_echo(true, 77, 1).build();
  const uint16_t id = translated_port(h.one(req));
  EXPECT_EQ(packet_slot(PacketBuilder().ipv4(kOutside, kPublic).icmp_echo(false, id, 1).build()),
            packet_slot(req));
}

TEST(Gateway, EgressConfigurationIsChecked) {
  GatewayConfig c = egress_config();
  c.egress.sources = {"10.9.0.0/33"};
  EXPECT_THROW(GatewayStage(c, 0), std::invalid_argument);
  c = egress_config();
  c.egress.snat.addresses.clear();
  EXPECT_THROW(GatewayStage(c, 0), std::invalid_argument);
}

TEST(Gateway, ControlPlaneChangesKeepExistingConnections) {
  Harness h;
  const Endpoints e = open_conn(h, kCport);
  // A new pool: new connections go to DIP 3; the old one keeps its backend.
  PoolSpec p3;
  p3.backends = {backend(kDip3)};
  h.gw().update_pool(vip_key(kVip, 80), p3);
  EXPECT_EQ(endpoints_of(h.one(seg({kClient, kVip, kCport + 1, 80, kTcpSyn, 1}))).dst, kDip3);
  EXPECT_EQ(endpoints_of(h.one(seg({kClient, kVip, kCport, 80, kTcpAck, 1001, 5001}))).dst, e.dst);
  // A VIP added at run time balances at once.
  GatewayVipConfig v;
  v.key = vip_key("192.0.2.40", 8000);
  v.pool.backends = {backend(kDip2)};
  h.gw().add_vip(v);
  EXPECT_EQ(endpoints_of(h.one(seg({kClient, "192.0.2.40", kCport, 8000, kTcpSyn, 1}))).dst, kDip2);
  EXPECT_THROW(h.gw().add_vip(v), std::invalid_argument);  // duplicate
  // New firewall rules apply to new connections only.
  FirewallConfig fw;
  fw.acl = parse_rules("deny in tcp from 198.51.100.0/24\ndefault allow");
  h.gw().set_firewall(fw, TrafficDir::kOut);
  EXPECT_TRUE(h.one(seg({kClient, kVip, kCport + 2, 80, kTcpSyn, 1})).empty());
  EXPECT_FALSE(h.one(seg({kClient, kVip, kCport, 80, kTcpAck, 1001, 5001})).empty());
  // A removed VIP balances nothing new; its connection drains.
  h.gw().remove_vip(vip_key(kVip, 80));
  EXPECT_EQ(h.gw().vip_config(h.gw().vip_id(vip_key(kVip, 80))), nullptr);
  EXPECT_EQ(endpoints_of(h.one(seg({kClient, kVip, kCport, 80, kTcpAck, 1001, 5001}))).dst, e.dst);
  EXPECT_THROW(h.gw().remove_vip(vip_key(kVip, 80)), std::invalid_argument);
  // A DSR pool without MACs is refused and changes nothing.
  GatewayVipConfig d = v;
  d.key = vip_key("192.0.2.41", 80);
  d.mode = VipMode::kDsr;
  EXPECT_THROW(h.gw().add_vip(d), std::invalid_argument);
  EXPECT_EQ(h.gw().vip_id(d.key), kNoVip);
}

TEST(Gateway, ReusedClientPortOfAFinishedConnectionIsScheduledAfresh) {
  Harness h;
  const Endpoints e = open_conn(h, kCport);
  // Both sides close: the connection is in TIME_WAIT (the client reuses its
  // port at once, as clients do when the server closed first).
  close_conn(h, e);
  // The pool now holds DIP 3 only (the old backend could be gone).
  PoolSpec p3;
  p3.backends = {backend(kDip3)};
  h.gw().update_pool(vip_key(kVip, 80), p3);
  const Bytes syn = h.one(seg({kClient, kVip, kCport, 80, kTcpSyn, 90000}));
  ASSERT_FALSE(syn.empty());
  EXPECT_EQ(endpoints_of(syn).dst, kDip3);
  // The same SNAT port: to a backend holding the old 4-tuple in TIME_WAIT
  // it is the same client reopening (newer ISN and timestamps), which is
  // accepted; another client's SYN on that port would not be.
  EXPECT_EQ(endpoints_of(syn).sport, e.sport);
  auto c = h.counters();
  EXPECT_EQ(c["conns_reused"], 1u);
  EXPECT_EQ(c["conns_live"], 1u);
  EXPECT_EQ(c["lb_connections_live"], 1u);
  EXPECT_EQ(h.gw().table().size(), 2u);
  EXPECT_EQ(h.gw().snat()->free_ports(0), 99u);
  // A SYN on a live connection is not a reuse (a retransmission).
  ASSERT_FALSE(h.one(seg({kClient, kVip, kCport, 80, kTcpSyn, 90000})).empty());
  EXPECT_EQ(h.counters()["conns_reused"], 1u);
}

// A client reopening the tuple of a closed SYN-proxy connection: the proxy
// answers the SYN with a cookie and no state, the closed connection stays,
// and the ACK with the cookie reopens it on the same SNAT port. To the
// backend that is the same client 4-tuple again (newer ISN and timestamps,
// which its TIME_WAIT accepts); a fresh port could meet another client's
// TIME_WAIT there and get a bare ACK instead.
TEST(Gateway, SynProxyReopenedTupleKeepsItsSnatPort) {
  Harness h;
  auto cookie_of = [&](uint32_t isn) {
    const Bytes sa =
        h.one(seg_builder({kClient, kProxyVip, kCport, 443, kTcpSyn, isn}).mss(1460).build());
    PacketMeta m;
    EXPECT_EQ(parse_packet(sa.data(), static_cast<uint32_t>(sa.size()), &m), ParseError::kOk);
    EXPECT_EQ(m.tcp_flags, kTcpSyn | kTcpAck);
    return m.tcp_seq;
  };
  const uint32_t cookie = cookie_of(1000);
  const Bytes bsyn = h.one(seg({kClient, kProxyVip, kCport, 443, kTcpAck, 1001, cookie + 1}));
  ASSERT_FALSE(bsyn.empty());
  const uint16_t port = endpoints_of(bsyn).sport;
  ASSERT_EQ(h.send({seg({kDip1, kSnat, 8443, port, kTcpSyn | kTcpAck, 7000, 1001})}).size(), 2u);
  // The backend closes first, then the client: TIME_WAIT.
  for (const Bytes& f :
       {seg({kDip1, kSnat, 8443, port, kTcpFin | kTcpAck, 7001, 1001}),
        seg({kClient, kProxyVip, kCport, 443, kTcpFin | kTcpAck, 1001, cookie + 2}),
        seg({kDip1, kSnat, 8443, port, kTcpAck, 7002, 1002})})
    ASSERT_FALSE(h.one(f).empty());
  // The client's last ACK again is the old connection's, not a reopening.
  h.one(seg({kClient, kProxyVip, kCport, 443, kTcpAck, 1002, cookie + 2}));
  EXPECT_EQ(h.counters()["conns_reused"], 0u);

  const uint32_t cookie2 = cookie_of(90000);
  EXPECT_EQ(h.gw().table().size(), 2u);  // the closed connection is still there
  EXPECT_EQ(h.counters()["conns_reused"], 0u);
  const Bytes bsyn2 = h.one(seg({kClient, kProxyVip, kCport, 443, kTcpAck, 90001, cookie2 + 1}));
  ASSERT_FALSE(bsyn2.empty());
  PacketMeta m;
  ASSERT_EQ(parse_packet(bsyn2.data(), static_cast<uint32_t>(bsyn2.size()), &m), ParseError::kOk);
  EXPECT_EQ(m.tcp_flags, kTcpSyn);
  EXPECT_EQ(m.tcp_seq, 90000u);
  EXPECT_EQ(m.sport, port);
  auto c = h.counters();
  EXPECT_EQ(c["conns_reused"], 1u);
  EXPECT_EQ(c["conns_live"], 1u);
  EXPECT_EQ(c["synproxy_backend_syn"], 2u);
  EXPECT_EQ(h.gw().table().size(), 2u);
  EXPECT_EQ(h.gw().snat()->free_ports(0), 99u);
  // The backend's SYN-ACK on that port opens the new connection.
  const auto two = h.send({seg({kDip1, kSnat, 8443, port, kTcpSyn | kTcpAck, 50000, 90001})});
  ASSERT_EQ(two.size(), 2u);
  EXPECT_EQ(endpoints_of(two[0]).dst, kDip1);
  EXPECT_EQ(endpoints_of(two[1]).dst, kClient);
}

// The backend answers our SYN with a bare ACK: it still holds the SNAT
// 4-tuple (TIME_WAIT of an unrelated connection, e.g. one from before a
// restart) and the client's timestamps failed its PAWS check. The flow moves
// to another SNAT port and the client's SYN, its ISN and options, goes from
// there at once instead of after the client's 1 s retransmission timer; the
// backend's SYN-ACK on the new port reaches the client as usual.
TEST(Gateway, BackendHoldingTheTupleGetsTheClientsSynAgainFromAnotherPort) {
  Harness h;
  const Bytes syn = seg_builder({kClient, kVip, kCport, 80, kTcpSyn, 1000})
                        .mss(1460)
                        .sack_permitted()
                        .timestamps(777, 0)
                        .wscale(7)
                        .window(64240)
                        .build();
  const Bytes first = h.one(syn);
  ASSERT_FALSE(first.empty());
  const Endpoints e = endpoints_of(first);
  const char* dip = e.dst.c_str();
  uint16_t port = e.sport;
  for (int n = 1; n <= 3; ++n) {
    const Bytes again = h.one(seg({dip, kSnat, kBport, port, kTcpAck, 9999, 4242}));
    ASSERT_FALSE(again.empty()) << n;
    PacketMeta m;
    ASSERT_EQ(parse_packet(again.data(), static_cast<uint32_t>(again.size()), &m), ParseError::kOk);
    EXPECT_TRUE(l4_checksum_ok(again.data(), m));
    EXPECT_EQ(endpoints_of(again).dst, e.dst);
    EXPECT_EQ(IpAddress::from_bytes(m.family, again.data() + m.src_off).to_string(), kSnat);
    EXPECT_NE(m.sport, port);
    EXPECT_EQ(m.dport, kBport);
    EXPECT_EQ(m.tcp_flags, kTcpSyn);
    EXPECT_EQ(m.tcp_seq, 1000u);
    EXPECT_EQ(m.tcp_window, 64240);
    TcpOptions o;
    ASSERT_EQ(parse_tcp_options(again.data(), m, &o), ParseError::kOk);
    EXPECT_EQ(o.mss, 1400);  // the VIP's clamp, as on the first SYN
    EXPECT_TRUE(o.sack_permitted);
    EXPECT_TRUE(o.has_timestamps);
    EXPECT_EQ(o.ts_val, 777u);
    EXPECT_EQ(o.ts_ecr, 0u);
    EXPECT_EQ(o.wscale, 7);
    port = m.sport;
    auto c = h.counters();
    EXPECT_EQ(c["snat_rekeyed"], static_cast<uint64_t>(n));
    EXPECT_EQ(c["client_syn_again"], static_cast<uint64_t>(n));
    EXPECT_EQ(c["drop_backend_tuple_busy"], 0u);
  }
  // The backend opens on the last port: the client sees its SYN-ACK from the
  // VIP, and the data flows on that port.
  EXPECT_EQ(h.one(seg({dip, kSnat, kBport, port, kTcpSyn | kTcpAck, 5000, 1001})),
            seg({kVip, kClient, 80, kCport, kTcpSyn | kTcpAck, 5000, 1001}));
  EXPECT_EQ(h.one(seg({kClient, kVip, kCport, 80, kTcpAck, 1001, 5001})),
            seg({kSnat, dip, port, kBport, kTcpAck, 1001, 5001}));
  auto c = h.counters();
  EXPECT_EQ(c["conns_live"], 1u);
  EXPECT_EQ(h.gw().table().size(), 2u);  // only the live port's reply key
  EXPECT_EQ(h.gw().snat()->free_ports(0), 99u);
}

TEST(Gateway, ClientSynAgainOverIpv6) {
  Harness h(ipv6_config());
  const Bytes first = h.one(
      seg_builder({kClient6, kVip6, kCport, 80, kTcpSyn, 1000}).mss(1440).timestamps(5, 0).build());
  ASSERT_FALSE(first.empty());
  const uint16_t port = endpoints_of(first).sport;
  const Bytes again = h.one(seg({kDip6, kSnat6, kBport, port, kTcpAck, 9999, 4242}));
  ASSERT_FALSE(again.empty());
  PacketMeta m;
  ASSERT_EQ(parse_packet(again.data(), static_cast<uint32_t>(again.size()), &m), ParseError::kOk);
  EXPECT_EQ(m.family, Family::kIpv6);
  EXPECT_TRUE(l4_checksum_ok(again.data(), m));
  EXPECT_EQ(IpAddress::from_bytes(m.family, again.data() + m.src_off).to_string(), kSnat6);
  EXPECT_EQ(endpoints_of(again).dst, kDip6);
  EXPECT_NE(m.sport, port);
  EXPECT_EQ(m.tcp_flags, kTcpSyn);
  EXPECT_EQ(m.tcp_seq, 1000u);
  TcpOptions o;
  ASSERT_EQ(parse_tcp_options(again.data(), m, &o), ParseError::kOk);
  EXPECT_EQ(o.mss, 1440);  // this VIP clamps nothing
  EXPECT_EQ(o.ts_val, 5u);
  EXPECT_FALSE(o.has_wscale);
  EXPECT_FALSE(o.sack_permitted);
}

// The move drops the reply key the packet came in on: the deadline must
// follow the new key, not the old entry (a write to a freed slot made a
// phantom entry, which freed another connection on expiry). The clock starts
// in the upper half of the 24-bit tick space, where a freed slot's deadline
// reads as far ahead.
TEST(Gateway, MovedFlowExpiresCleanly) {
  Harness h(test_config(), ((uint64_t{1} << 23) + 20000) * GatewayStage::kTickNs);
  const Bytes first = h.one(seg({kClient, kVip, kCport, 80, kTcpSyn, 1000}));
  ASSERT_FALSE(first.empty());
  const Endpoints e = endpoints_of(first);
  ASSERT_FALSE(h.one(seg({e.dst.c_str(), kSnat, kBport, e.sport, kTcpAck, 9999, 4242})).empty());
  EXPECT_EQ(h.gw().table().size(), 2u);
  h.clock().advance_ns(300 * kSec);
  h.gw().advance_to(h.clock().now_ns());
  auto c = h.counters();
  EXPECT_EQ(c["conns_live"], 0u);
  EXPECT_EQ(c["snat_bad_frees"], 0u);
  EXPECT_EQ(h.gw().table().size(), 0u);
  EXPECT_EQ(h.gw().snat()->free_ports(0), 100u);
  EXPECT_EQ(c["table_inserted"], c["table_erased"] + c["table_expired"]);
}

// With the SYN proxy the client is asked for its ACK (which rebuilds the
// backend SYN) at most three times per connection, so a backend that turns
// every port away cannot keep a client answering at round-trip speed.
TEST(Gateway, SynProxyAsksTheClientAtMostThreeTimes) {
  Harness h;
  const Bytes sa =
      h.one(seg_builder({kClient, kProxyVip, kCport, 443, kTcpSyn, 1000}).mss(1460).build());
  ASSERT_FALSE(sa.empty());
  PacketMeta m;
  ASSERT_EQ(parse_packet(sa.data(), static_cast<uint32_t>(sa.size()), &m), ParseError::kOk);
  const uint32_t cookie = m.tcp_seq;
  const Bytes ack = seg({kClient, kProxyVip, kCport, 443, kTcpAck, 1001, cookie + 1});
  uint16_t port = endpoints_of(h.one(ack)).sport;
  for (int n = 1; n <= 3; ++n) {
    const Bytes ask = h.one(seg({kDip1, kSnat, 8443, port, kTcpAck, 777, 5555}));
    ASSERT_FALSE(ask.empty()) << n;
    EXPECT_EQ(endpoints_of(ask).dst, kClient);
    const Bytes bsyn = h.one(ack);  // the client's duplicate ACK
    ASSERT_FALSE(bsyn.empty());
    EXPECT_NE(endpoints_of(bsyn).sport, port);
    port = endpoints_of(bsyn).sport;
  }
  EXPECT_TRUE(h.one(seg({kDip1, kSnat, 8443, port, kTcpAck, 777, 5555})).empty());
  auto c = h.counters();
  EXPECT_EQ(c["synproxy_client_ack_requested"], 3u);
  EXPECT_EQ(c["drop_backend_tuple_busy"], 1u);
  EXPECT_EQ(c["snat_rekeyed"], 4u);
  EXPECT_EQ(h.gw().snat()->free_ports(0), 99u);
}

// A VIP whose SYN proxy is turned on while connections of before are in
// TIME_WAIT: such a connection ends at the client's SYN as before (the
// cookie's ACK would not reopen it, and would meet the old connection).
TEST(Gateway, ProxyTurnedOnLaterDoesNotStrandAClosedTuple) {
  Harness h;
  const Endpoints e = open_conn(h, kCport);
  close_conn(h, e);
  GatewayVipConfig v = test_config().vips[0];
  v.synproxy = true;
  h.gw().update_vip_options(v);
  const Bytes sa =
      h.one(seg_builder({kClient, kVip, kCport, 80, kTcpSyn, 90000}).mss(1460).build());
  ASSERT_FALSE(sa.empty());
  PacketMeta m;
  ASSERT_EQ(parse_packet(sa.data(), static_cast<uint32_t>(sa.size()), &m), ParseError::kOk);
  EXPECT_EQ(m.tcp_flags, kTcpSyn | kTcpAck);
  const Bytes bsyn = h.one(seg({kClient, kVip, kCport, 80, kTcpAck, 90001, m.tcp_seq + 1}));
  ASSERT_FALSE(bsyn.empty());
  PacketMeta bm;
  ASSERT_EQ(parse_packet(bsyn.data(), static_cast<uint32_t>(bsyn.size()), &bm), ParseError::kOk);
  EXPECT_EQ(bm.tcp_flags, kTcpSyn);
  EXPECT_EQ(bm.tcp_seq, 90000u);
  EXPECT_EQ(h.counters()["conns_live"], 1u);
}

// Bounded: a backend that turns every port away gets three SYNs from the
// gateway, then only the client's own retransmissions (each moves the flow
// again), never a SYN per ACK.
TEST(Gateway, ClientSynIsSentAgainAtMostThreeTimes) {
  Harness h;
  const Bytes first = h.one(seg({kClient, kVip, kCport, 80, kTcpSyn, 1000}));
  ASSERT_FALSE(first.empty());
  const Endpoints e = endpoints_of(first);
  uint16_t port = e.sport;
  for (int n = 0; n < 3; ++n) {
    const Bytes again = h.one(seg({e.dst.c_str(), kSnat, kBport, port, kTcpAck, 9999, 4242}));
    ASSERT_FALSE(again.empty());
    port = endpoints_of(again).sport;
  }
  EXPECT_TRUE(h.one(seg({e.dst.c_str(), kSnat, kBport, port, kTcpAck, 9999, 4242})).empty());
  auto c = h.counters();
  EXPECT_EQ(c["client_syn_again"], 3u);
  EXPECT_EQ(c["snat_rekeyed"], 4u);
  EXPECT_EQ(c["drop_backend_tuple_busy"], 1u);
  // The client's retransmission goes out from the flow's newest port.
  const Bytes retx = h.one(seg({kClient, kVip, kCport, 80, kTcpSyn, 1000}));
  ASSERT_FALSE(retx.empty());
  EXPECT_NE(endpoints_of(retx).sport, port);
  EXPECT_EQ(h.gw().snat()->free_ports(0), 99u);
}

TEST(Gateway, SourceSchedulerKeepsAClientOnOneBackend) {
  GatewayConfig c = test_config();
  c.vips[0].hash = LbHash::kSource;
  c.vips[0].pool.backends = {backend(kDip1), backend(kDip2), backend(kDip3)};
  Harness h(c);
  std::map<std::string, int> per_client[2];
  const char* clients[2] = {"198.51.100.7", "198.51.100.99"};
  for (int k = 0; k < 2; ++k)
    for (uint16_t p = 0; p < 20; ++p)
      ++per_client[k]
                  [endpoints_of(h.one(seg({clients[k], kVip, uint16_t(30000 + p), 80, kTcpSyn, 1})))
                       .dst];
  EXPECT_EQ(per_client[0].size(), 1u);  // every connection of a client: one backend
  EXPECT_EQ(per_client[1].size(), 1u);
  // With the flow scheduler, 20 connections of one client spread.
  Harness f;
  std::map<std::string, int> spread;
  for (uint16_t p = 0; p < 20; ++p)
    ++spread[endpoints_of(f.one(seg({clients[0], kVip, uint16_t(30000 + p), 80, kTcpSyn, 1}))).dst];
  EXPECT_EQ(spread.size(), 2u);
}

TEST(Gateway, RejectsABadConfiguration) {
  GatewayConfig c = test_config();
  c.max_connections = 0;
  EXPECT_THROW(GatewayStage(c, 0), std::invalid_argument);
  c = test_config();
  c.snat.addresses.clear();
  EXPECT_THROW(GatewayStage(c, 0), std::invalid_argument);
}

TEST(Gateway, EveryDropHasACounter) {
  Harness h;
  std::map<std::string, uint64_t> c = h.counters();
  for (size_t i = 0; i < size_t(GatewayCounter::kCount); ++i)
    EXPECT_EQ(c.count(std::string(kGatewayCounterNames[i])), 1u);
}

}  // namespace
}  // namespace tripod
