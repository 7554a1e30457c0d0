// Two and three gateway stages as cluster nodes, records passed between them
// as the wire bytes (flow_sync.h): a flow exported by its processor continues
// on another node byte for byte, goes to its processor while that one lives,
// and reaches a holder from a node that has never seen it.
#include <gtest/gtest.h>

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
constexpr const char* kSnat[4] = {"", "10.0.0.101", "10.0.0.102", "10.0.0.103"};  // by node
constexpr const char* kDip = "10.1.0.1";
constexpr uint16_t kBport = 8080;
constexpr uint64_t kSec = 1'000'000'000;
// Not PacketBuilder's default source MAC (02:00:00:00:00:01): a frame from a client
// must not look like one a peer handed over.
const uint8_t kMac[4][6] = {{}, {2, 0, 0, 0, 0xa, 1}, {2, 0, 0, 0, 0xa, 2}, {2, 0, 0, 0, 0xa, 3}};

struct Seg {
  const char* src;
  const char* dst;
  uint16_t sport, dport;
  uint8_t flags;
  uint32_t seq = 0, ack = 0;
  std::string payload = {};
};

Bytes seg(const Seg& s) {
  PacketBuilder b;
  b.ipv4(s.src, s.dst).dont_fragment().tcp(s.sport, s.dport).flags(s.flags).seq(s.seq);
  if (s.flags & kTcpAck) b.ack_seq(s.ack);
  b.window(65535);
  if (!s.payload.empty()) b.payload(s.payload);
  return b.build();
}

SnatAddress snat(const char* ip) {
  SnatAddress a;
  a.family = Family::kIpv4;
  std::memcpy(a.addr, IpAddress::parse(ip).bytes, 4);
  return a;
}

GatewayConfig node_config(uint16_t node) {
  GatewayConfig c;
  c.firewall.acl = parse_rules("default allow");
  Backend be;
  be.addr = IpAddress::parse(kDip);
  be.port = kBport;
  GatewayVipConfig v;
  v.key = VipKey{IpAddress::parse(kVip), kProtoTcp, 80};
  v.pool.backends = {be};
  c.vips.push_back(v);
  GatewayVipConfig p = v;
  p.key = VipKey{IpAddress::parse(kProxyVip), kProtoTcp, 443};
  p.synproxy = true;
  p.synproxy_options.timestamps = false;
  c.vips.push_back(p);
  c.snat.addresses = {snat(kSnat[node])};
  c.snat.port_lo = 5000;
  c.snat.port_hi = 9999;
  c.max_connections = 256;
  c.huge_pages = false;
  c.synproxy_master = SipKey{5, 6};  // cluster-wide: a cookie from any node opens anywhere
  c.cluster.node_id = node;
  c.cluster.snat_addresses = {snat(kSnat[1]), snat(kSnat[2]), snat(kSnat[3])};
  return c;
}

class Node {
 public:
  explicit Node(uint16_t id, ManualClock* clock) : Node(node_config(id), clock) {}
  Node(const GatewayConfig& cfg, ManualClock* clock) : clock_(clock) {
    p_.add(std::make_unique<ParseStage>());
    auto gw = std::make_unique<GatewayStage>(cfg, clock->now_ns());
    gw_ = gw.get();
    p_.add(std::move(gw));
  }
  std::vector<Bytes> send(std::vector<Bytes> in) {
    MemoryPort port(std::move(in));
    p_.run_to_end(port, clock_);
    return port.output();
  }
  Bytes one(const Bytes& in) {
    auto out = send({in});
    return out.empty() ? Bytes{} : out[0];
  }
  uint64_t counter(const std::string& name) const {
    uint64_t v = 0;
    gw_->export_counters([&](std::string_view n, uint64_t x) {
      if (n == name) v = x;
    });
    return v;
  }
  // Everything this node would send its holders, through the wire format.
  std::vector<std::pair<uint8_t, std::vector<uint8_t>>> export_wire() {
    FlowSync out[64];
    const uint32_t n = gw_->export_sync(out, 64, clock_->now_ns());
    std::vector<std::pair<uint8_t, std::vector<uint8_t>>> recs;
    for (uint32_t i = 0; i < n; ++i) {
      std::vector<uint8_t> bytes(record_size(out[i].op));
      encode_flow_sync(out[i], bytes.data());
      recs.emplace_back(record_type(out[i].op), std::move(bytes));
    }
    return recs;
  }
  void import_wire(const std::vector<std::pair<uint8_t, std::vector<uint8_t>>>& recs) {
    for (const auto& [type, bytes] : recs) {
      FlowSync s;
      ASSERT_EQ(decode_flow_sync(type, bytes.data(), bytes.size(), &s), FlowSyncError::kOk);
      gw_->import_sync(s, clock_->now_ns());
    }
  }
  GatewayStage& gw() { return *gw_; }

 private:
  ManualClock* clock_;
  Pipeline p_;
  GatewayStage* gw_;
};

struct Ends {
  std::string dst;
  uint16_t sport = 0;
};
Ends ends_of(const Bytes& f) {
  PacketMeta m;
  EXPECT_EQ(parse_packet(f.data(), static_cast<uint32_t>(f.size()), &m), ParseError::kOk);
  return {IpAddress::from_bytes(m.family, f.data() + m.dst_off).to_string(), m.sport};
}

// A FullNAT connection opened through `n`: returns its SNAT port.
uint16_t open_conn(Node& n, uint16_t node_id, uint16_t cport) {
  const Bytes syn_out = n.one(seg({kClient, kVip, cport, 80, kTcpSyn, 1000}));
  EXPECT_FALSE(syn_out.empty());
  const uint16_t port = ends_of(syn_out).sport;
  EXPECT_FALSE(
      n.one(seg({kDip, kSnat[node_id], kBport, port, kTcpSyn | kTcpAck, 5000, 1001})).empty());
  EXPECT_FALSE(n.one(seg({kClient, kVip, cport, 80, kTcpAck, 1001, 5001})).empty());
  return port;
}

// A SYN to the SYN-proxied VIP through `n`: the cookie (our ISN) of its SYN-ACK.
uint32_t cookie_from(Node& n, uint16_t cport) {
  const Bytes synack = n.one(seg({kClient, kProxyVip, cport, 443, kTcpSyn, 1000}));
  PacketMeta m;
  EXPECT_EQ(parse_packet(synack.data(), static_cast<uint32_t>(synack.size()), &m), ParseError::kOk);
  return m.tcp_seq;
}

// Egress SNAT on every node: inside hosts 10.2/16, each node its own
// egress address, and every node knows the others'.
constexpr const char* kInside = "10.2.0.5";
constexpr const char* kOutside = "192.0.2.99";
constexpr const char* kEgress[4] = {"", "203.0.113.1", "203.0.113.2", "203.0.113.3"};
GatewayConfig egress_config(uint16_t node) {
  GatewayConfig c = node_config(node);
  c.egress.sources = {"10.2.0.0/16"};
  c.egress.snat.addresses = {snat(kEgress[node])};
  c.egress.snat.port_lo = 20000;
  c.egress.snat.port_hi = 29999;
  c.cluster.egress_addresses = {snat(kEgress[1]), snat(kEgress[2]), snat(kEgress[3])};
  return c;
}
// An egress TCP connection opened through `n`: returns its egress port.
uint16_t open_egress(Node& n, uint16_t node_id, uint16_t cport) {
  const Bytes syn_out = n.one(seg({kInside, kOutside, cport, 443, kTcpSyn, 1000}));
  EXPECT_FALSE(syn_out.empty());
  EXPECT_EQ(IpAddress::from_bytes(Family::kIpv4, syn_out.data() + 26).to_string(),
            kEgress[node_id]);
  const uint16_t port = ends_of(syn_out).sport;
  EXPECT_FALSE(
      n.one(seg({kOutside, kEgress[node_id], 443, port, kTcpSyn | kTcpAck, 7000, 1001})).empty());
  EXPECT_FALSE(n.one(seg({kInside, kOutside, cport, 443, kTcpAck, 1001, 7001})).empty());
  return port;
}

class Cluster : public ::testing::Test {
 protected:
  ManualClock clock_{1000 * kSec};
  Node a_{1, &clock_};
  Node b_{2, &clock_};
};

// The processor's record, replayed on a holder whose processor is gone: the
// holder continues the flow with the same translation, both directions.
TEST_F(Cluster, FlowContinuesOnTheHolderByteForByte) {
  const uint16_t port = open_conn(a_, 1, 40000);
  // The SNAT port names the flow's slot.
  const FlowKey orig = make_flow_key(Family::kIpv4, kProtoTcp, IpAddress::parse(kClient).bytes,
                                     IpAddress::parse(kVip).bytes, 40000, 80, false);
  EXPECT_EQ(a_.gw().snat()->partition_of(port), a_.gw().slot_of(orig));

  const auto recs = a_.export_wire();
  ASSERT_EQ(recs.size(), 1u);  // created and established in one interval: one full record
  EXPECT_EQ(recs[0].first, kRecordFlowFull);
  EXPECT_TRUE(a_.export_wire().empty());  // nothing changed since
  b_.import_wire(recs);
  EXPECT_EQ(b_.counter("sync_imported"), 1u);
  EXPECT_EQ(b_.gw().standby_connections(), 1u);
  EXPECT_EQ(b_.counter("conns_live"), 0u);

  // No view: node 1 is not known to be alive, so node 2 takes the flow.
  const Bytes data = seg({kClient, kVip, 40000, 80, kTcpAck | kTcpPsh, 1001, 5001, "hello"});
  const Bytes reply = seg({kDip, kSnat[1], kBport, port, kTcpAck | kTcpPsh, 5001, 1006, "world"});
  const Bytes on_a = a_.one(data);
  const Bytes on_b = b_.one(data);
  ASSERT_FALSE(on_b.empty());
  EXPECT_EQ(on_b, on_a);
  EXPECT_EQ(b_.counter("sync_promoted"), 1u);
  EXPECT_EQ(b_.gw().standby_connections(), 0u);
  EXPECT_EQ(b_.counter("conns_live"), 1u);
  const Bytes back_b = b_.one(reply);
  ASSERT_FALSE(back_b.empty());
  EXPECT_EQ(back_b, a_.one(reply));
  EXPECT_EQ(ends_of(back_b).dst, kClient);
  EXPECT_EQ(b_.counter("drop_firewall"), 0u);

  // Now node 2 processes it: its holders get the record in full, naming it.
  const auto again = b_.export_wire();
  ASSERT_EQ(again.size(), 1u);
  FlowSync s;
  ASSERT_EQ(decode_flow_sync(again[0].first, again[0].second.data(), again[0].second.size(), &s),
            FlowSyncError::kOk);
  EXPECT_EQ(s.op, FlowSyncOp::kFull);
  EXPECT_EQ(s.processor, 2);
  EXPECT_EQ(IpAddress::from_bytes(Family::kIpv4, s.snat_addr).to_string(), kSnat[1]);
  EXPECT_EQ(s.snat_port, port);
}

// While the processor lives, a holder hands the flow's packets to it: the
// frame leaves unchanged but for its destination MAC.
TEST_F(Cluster, HolderRedirectsToALiveProcessor) {
  const uint16_t port = open_conn(a_, 1, 40001);
  b_.import_wire(a_.export_wire());
  ClusterView view;
  view.live = 0b11;
  std::memcpy(view.mac[1], kMac[1], 6);
  std::memcpy(view.mac[2], kMac[2], 6);
  b_.gw().set_cluster_view(&view);
  const Bytes data = seg({kClient, kVip, 40001, 80, kTcpAck, 1001, 5001});
  const Bytes out = b_.one(data);
  ASSERT_EQ(out.size(), data.size());
  EXPECT_EQ(0, std::memcmp(out.data(), kMac[1], 6));
  EXPECT_EQ(0, std::memcmp(out.data() + 6, data.data() + 6, out.size() - 6));
  EXPECT_EQ(b_.counter("sync_redirected"), 1u);
  EXPECT_EQ(b_.gw().standby_connections(), 1u);

  // Node 1 was only thought dead (a stall) and is back with its flows: the
  // copy still follows it.
  b_.gw().peer_down(1);
  EXPECT_EQ(0, std::memcmp(b_.one(data).data(), kMac[1], 6));
  EXPECT_EQ(b_.counter("sync_redirected"), 2u);

  // Node 1 restarts empty: the copy loses its processor, and the next
  // packet promotes it even though node 1 is back.
  b_.gw().peer_restarted(1);
  const Bytes out2 = b_.one(seg({kDip, kSnat[1], kBport, port, kTcpAck, 5001, 1001}));
  ASSERT_FALSE(out2.empty());
  EXPECT_EQ(ends_of(out2).dst, kClient);
  EXPECT_EQ(b_.counter("sync_promoted"), 1u);
}

// A node that has never seen a flow hands its packets to the slot's first
// live holder; a SYN still opens a new flow locally.
TEST_F(Cluster, MissGoesToTheSlotsHolder) {
  Node c{3, &clock_};
  ClusterView view;
  view.live = 0b111;
  for (int n = 1; n <= 3; ++n)
    std::memcpy(view.mac[n], kMac[n], 6);
  for (uint32_t s = 0; s < kSlots; ++s) {
    view.holders[s][0] = 1;
    view.holders[s][1] = 2;
  }
  c.gw().set_cluster_view(&view);
  const Bytes ack = seg({kClient, kVip, 40002, 80, kTcpAck, 1001, 5001});
  const Bytes out = c.one(ack);
  ASSERT_FALSE(out.empty());
  EXPECT_EQ(0, std::memcmp(out.data(), kMac[1], 6));
  EXPECT_EQ(c.counter("sync_miss_redirected"), 1u);
  // A reply to node 1's SNAT address: its slot from the port, to a holder.
  const Bytes reply = seg({kDip, kSnat[1], kBport, 5003, kTcpAck, 5001, 1001});
  const Bytes out2 = c.one(reply);
  ASSERT_FALSE(out2.empty());
  EXPECT_EQ(0, std::memcmp(out2.data(), kMac[1], 6));
  EXPECT_EQ(c.counter("sync_miss_redirected"), 2u);
  // A packet a peer already handed over is not passed on again (no loops):
  // here, with no record, the firewall decides (a stray ACK).
  Bytes handed = ack;
  std::memcpy(handed.data() + 6, kMac[2], 6);
  EXPECT_TRUE(c.one(handed).empty());
  EXPECT_EQ(c.counter("sync_miss_redirected"), 2u);
  // A SYN opens here.
  const Bytes syn = c.one(seg({kClient, kVip, 40003, 80, kTcpSyn, 1000}));
  ASSERT_FALSE(syn.empty());
  EXPECT_EQ(IpAddress::from_bytes(Family::kIpv4, syn.data() + 26).to_string(), kSnat[3]);
  EXPECT_EQ(c.counter("conns_created"), 1u);

  // A holder without the flow does not pass it on: the firewall decides (a
  // stray ACK); a reply to another node's address without a flow is dropped.
  a_.gw().set_cluster_view(&view);
  EXPECT_TRUE(a_.one(ack).empty());
  EXPECT_EQ(a_.counter("sync_miss_redirected"), 0u);
  EXPECT_TRUE(a_.one(seg({kDip, kSnat[2], kBport, 5003, kTcpAck, 5001, 1001})).empty());
  EXPECT_EQ(a_.counter("drop_sync_no_state"), 1u);
}

// State changes travel as updates (a close under way only once it lasted
// a second); closing travels as a delete, and the holder's copy goes with
// it.
TEST_F(Cluster, UpdatesAndDeletesFollowTheFlow) {
  const uint16_t port = open_conn(a_, 1, 40004);
  b_.import_wire(a_.export_wire());
  EXPECT_TRUE(a_.one(seg({kClient, kVip, 40004, 80, kTcpAck | kTcpFin, 1001, 5001})).size());
  EXPECT_TRUE(a_.export_wire().empty());  // FIN_WAIT: not yet
  clock_.advance_ns(kSec / 2);
  EXPECT_TRUE(a_.export_wire().empty());
  clock_.advance_ns(kSec / 2 + kSec / 10);
  auto recs = a_.export_wire();
  ASSERT_EQ(recs.size(), 1u);
  EXPECT_EQ(a_.counter("sync_lazy_due"), 1u);
  EXPECT_EQ(recs[0].first, kRecordFlowUpdate);
  b_.import_wire(recs);
  EXPECT_EQ(b_.counter("sync_updated"), 1u);
  EXPECT_TRUE(a_.one(seg({kDip, kSnat[1], kBport, port, kTcpAck | kTcpFin, 5001, 1002})).size());
  EXPECT_TRUE(a_.one(seg({kClient, kVip, 40004, 80, kTcpAck, 1002, 5002})).size());
  // TIME_WAIT: nothing a holder could continue, so the copy goes now rather
  // than when the flow expires (churn must not fill the holders' tables).
  recs = a_.export_wire();
  ASSERT_EQ(recs.size(), 1u);
  EXPECT_EQ(recs[0].first, kRecordFlowDelete);
  b_.import_wire(recs);
  EXPECT_EQ(b_.counter("sync_deleted"), 1u);
  EXPECT_EQ(b_.gw().standby_connections(), 0u);
  EXPECT_EQ(b_.gw().table().size(), 0u);
  // TIME_WAIT passes on node 1: nothing more to send.
  clock_.advance_ns(200 * kSec);
  a_.gw().advance_to(clock_.now_ns());
  EXPECT_EQ(a_.counter("conns_live"), 0u);
  EXPECT_TRUE(a_.export_wire().empty());
}

// A short close: the FINs' state changes never travel, only the delete (a
// new connection per request sends its full record and its delete). The
// copy in between is ESTABLISHED; promoted, it follows the FINs itself.
TEST_F(Cluster, AShortCloseSendsOnlyTheDelete) {
  const uint16_t port = open_conn(a_, 1, 40005);
  b_.import_wire(a_.export_wire());
  EXPECT_TRUE(a_.one(seg({kDip, kSnat[1], kBport, port, kTcpAck | kTcpFin, 5001, 1001})).size());
  EXPECT_TRUE(a_.one(seg({kClient, kVip, 40005, 80, kTcpAck, 1001, 5002})).size());
  EXPECT_TRUE(a_.export_wire().empty());  // CLOSE_WAIT
  EXPECT_TRUE(a_.one(seg({kClient, kVip, 40005, 80, kTcpAck | kTcpFin, 1001, 5002})).size());
  EXPECT_TRUE(a_.export_wire().empty());  // LAST_ACK
  EXPECT_TRUE(a_.one(seg({kDip, kSnat[1], kBport, port, kTcpAck, 5002, 1002})).size());
  auto recs = a_.export_wire();
  ASSERT_EQ(recs.size(), 1u);
  EXPECT_EQ(recs[0].first, kRecordFlowDelete);
  b_.import_wire(recs);
  EXPECT_EQ(b_.counter("sync_updated"), 0u);
  EXPECT_EQ(b_.counter("sync_deleted"), 1u);
  EXPECT_EQ(b_.gw().standby_connections(), 0u);
  // Its close-queue entry comes due after the delete's export cleared the
  // flag: nothing goes.
  clock_.advance_ns(2 * kSec);
  EXPECT_TRUE(a_.export_wire().empty());
  EXPECT_EQ(a_.counter("sync_lazy_due"), 0u);
}

// A VIP with replication off: its flows never travel (not when opened, not
// in a resync, not when closed); another VIP's on the same node do.
TEST_F(Cluster, AVipWithReplicationOffKeepsItsFlowsHome) {
  GatewayConfig cfg = node_config(1);
  cfg.vips[0].replicated = false;
  Node a(cfg, &clock_);
  const uint16_t port = open_conn(a, 1, 40010);
  EXPECT_TRUE(a.export_wire().empty());
  a.gw().resync();
  EXPECT_TRUE(a.export_wire().empty());
  EXPECT_TRUE(a.one(seg({kDip, kSnat[1], kBport, port, kTcpAck | kTcpFin, 5001, 1001})).size());
  EXPECT_TRUE(a.one(seg({kClient, kVip, 40010, 80, kTcpAck | kTcpFin, 1001, 5002})).size());
  EXPECT_TRUE(a.one(seg({kDip, kSnat[1], kBport, port, kTcpAck, 5002, 1002})).size());
  clock_.advance_ns(2 * kSec);
  EXPECT_TRUE(a.export_wire().empty());
  // The SYN-proxied VIP (replicated) on the same node: its flow goes.
  const uint32_t cookie = cookie_from(a, 40011);
  EXPECT_FALSE(a.one(seg({kClient, kProxyVip, 40011, 443, kTcpAck, 1001, cookie + 1})).empty());
  const auto recs = a.export_wire();
  ASSERT_EQ(recs.size(), 1u);
  EXPECT_EQ(recs[0].first, kRecordFlowFull);
}

// An egress flow (an inside host to the outside, its source translated to
// the node's egress address) travels like a FullNAT one: the holder takes
// it over byte for byte, replies to the first node's egress address
// included, and a restarted first node keeps the flow's port out of its pool.
TEST_F(Cluster, EgressFlowContinuesOnTheHolder) {
  Node a(egress_config(1), &clock_);
  Node b(egress_config(2), &clock_);
  const uint16_t port = open_egress(a, 1, 40020);
  const FlowKey orig = make_flow_key(Family::kIpv4, kProtoTcp, IpAddress::parse(kInside).bytes,
                                     IpAddress::parse(kOutside).bytes, 40020, 443, false);
  // Node 2's layout names the flow's slot from a reply to node 1's egress
  // port (the reply's own key hashes elsewhere).
  const FlowKey rkey = make_flow_key(Family::kIpv4, kProtoTcp, IpAddress::parse(kOutside).bytes,
                                     IpAddress::parse(kEgress[1]).bytes, 443, port, false);
  EXPECT_EQ(GatewayStage::slot_layout(egress_config(2))
                .slot(canonical_key(rkey), Family::kIpv4, IpAddress::parse(kEgress[1]).bytes, port),
            b.gw().slot_of(orig));
  const auto recs = a.export_wire();
  ASSERT_EQ(recs.size(), 1u);
  EXPECT_EQ(recs[0].first, kRecordFlowFull);
  FlowSync s;
  ASSERT_EQ(decode_flow_sync(recs[0].first, recs[0].second.data(), recs[0].second.size(), &s),
            FlowSyncError::kOk);
  EXPECT_EQ(s.kind, kSyncNat | kSyncEgress);
  b.import_wire(recs);
  EXPECT_EQ(b.counter("sync_imported"), 1u);
  EXPECT_EQ(b.gw().standby_connections(), 1u);

  // No view: node 1 is not known to be alive, so node 2 takes the flow.
  const Bytes reply = seg({kOutside, kEgress[1], 443, port, kTcpAck | kTcpPsh, 7001, 1001, "hi"});
  const Bytes data = seg({kInside, kOutside, 40020, 443, kTcpAck | kTcpPsh, 1001, 7003, "yo"});
  const Bytes back_b = b.one(reply);
  ASSERT_FALSE(back_b.empty());
  EXPECT_EQ(back_b, a.one(reply));
  EXPECT_EQ(ends_of(back_b).dst, kInside);
  EXPECT_EQ(b.counter("sync_promoted"), 1u);
  const Bytes out_b = b.one(data);
  ASSERT_FALSE(out_b.empty());
  EXPECT_EQ(out_b, a.one(data));
  EXPECT_EQ(IpAddress::from_bytes(Family::kIpv4, out_b.data() + 26).to_string(), kEgress[1]);
  EXPECT_EQ(b.counter("drop_firewall"), 0u);

  // Node 2 processes it now; node 1, restarted, holds its copy and keeps
  // its own address's port out of its pool while the flow lives.
  const auto again = b.export_wire();
  ASSERT_EQ(again.size(), 1u);
  Node a2(egress_config(1), &clock_);
  const SnatLease lease{0, port};
  EXPECT_FALSE(a2.gw().egress_snat()->in_use(lease));
  a2.import_wire(again);
  EXPECT_EQ(a2.counter("sync_imported"), 1u);
  EXPECT_TRUE(a2.gw().egress_snat()->in_use(lease));
  // The close travels as a delete: the copy goes, and the port is free again.
  EXPECT_FALSE(b.one(seg({kInside, kOutside, 40020, 443, kTcpAck | kTcpRst, 1003, 0})).empty());
  a2.import_wire(b.export_wire());
  EXPECT_EQ(a2.counter("sync_deleted"), 1u);
  EXPECT_FALSE(a2.gw().egress_snat()->in_use(lease));
  EXPECT_EQ(a2.counter("egress_snat_bad_frees_ipv4"), 0u);
}

// This node's egress connection is over (TIME_WAIT) and the router sent the
// same tuple, reopened, to another node: that node's copy replaces it.
TEST_F(Cluster, AClosedEgressFlowGivesWayToItsTuplesNewCopy) {
  Node a(egress_config(1), &clock_);
  Node b(egress_config(2), &clock_);
  const uint16_t port = open_egress(a, 1, 40030);
  EXPECT_FALSE(a.one(seg({kInside, kOutside, 40030, 443, kTcpAck | kTcpFin, 1001, 7001})).empty());
  EXPECT_FALSE(
      a.one(seg({kOutside, kEgress[1], 443, port, kTcpAck | kTcpFin, 7001, 1002})).empty());
  EXPECT_FALSE(a.one(seg({kInside, kOutside, 40030, 443, kTcpAck, 1002, 7002})).empty());
  open_egress(b, 2, 40030);
  a.import_wire(b.export_wire());
  EXPECT_EQ(a.counter("sync_superseded"), 1u);
  EXPECT_EQ(a.gw().standby_connections(), 1u);
}

// A copy imported where its VIP's replication is off (a reload on its way
// through the cluster) is not exported again once promoted.
TEST_F(Cluster, APromotedCopyFollowsTheLocalReplicationSetting) {
  open_conn(a_, 1, 40031);
  GatewayConfig cfg = node_config(2);
  cfg.vips[0].replicated = false;
  Node b(cfg, &clock_);
  b.import_wire(a_.export_wire());
  EXPECT_EQ(b.counter("sync_imported"), 1u);
  EXPECT_FALSE(b.one(seg({kClient, kVip, 40031, 80, kTcpAck, 1001, 5001})).empty());
  EXPECT_EQ(b.counter("sync_promoted"), 1u);
  EXPECT_TRUE(b.export_wire().empty());
}

// A reply to another node's egress address that this node has no flow for
// goes to the holder of the slot its port names (not of its key's hash).
TEST_F(Cluster, EgressReplyToAPeersAddressGoesToItsSlotsHolder) {
  Node c(egress_config(3), &clock_);
  const uint16_t port = 20000 + 5;  // partition 5 of node 1's egress pool
  ClusterView view;
  view.live = 0b111;
  for (int n = 1; n <= 3; ++n)
    std::memcpy(view.mac[n], kMac[n], 6);
  for (uint32_t s = 0; s < kSlots; ++s)
    view.holders[s][0] = s == 5 ? 1 : 2;
  c.gw().set_cluster_view(&view);
  const Bytes reply = seg({kOutside, kEgress[1], 443, port, kTcpAck, 7001, 1001});
  const Bytes out = c.one(reply);
  ASSERT_FALSE(out.empty());
  EXPECT_EQ(0, std::memcmp(out.data(), kMac[1], 6));
  EXPECT_EQ(c.counter("sync_miss_redirected"), 1u);
  // A SYN alone to a peer's egress (or SNAT) address is no reply (a scan):
  // dropped, no one asked.
  EXPECT_TRUE(c.one(seg({kOutside, kEgress[1], 443, port, kTcpSyn, 9000})).empty());
  EXPECT_TRUE(c.one(seg({kDip, kSnat[1], kBport, 5005, kTcpSyn, 9000})).empty());
  EXPECT_EQ(c.counter("drop_sync_no_state"), 2u);
  EXPECT_EQ(c.counter("sync_miss_redirected"), 1u);
  // A copy for an address no node has as its egress address: refused.
  Node a(egress_config(1), &clock_);
  open_egress(a, 1, 40021);
  auto recs = a.export_wire();
  ASSERT_EQ(recs.size(), 1u);
  GatewayConfig other = egress_config(2);
  other.cluster.egress_addresses = {snat(kEgress[2])};
  Node d(other, &clock_);
  d.import_wire(recs);
  EXPECT_EQ(d.counter("sync_unknown_snat"), 1u);
  EXPECT_EQ(d.gw().standby_connections(), 0u);
}

// A VIP with a checkpoint interval of its own (50 ms): a flow's changes
// travel that long after they happen, coalesced; a flow over before its
// first checkpoint never travels. Another VIP's flows go at once.
TEST_F(Cluster, AVipsCheckpointIntervalDelaysAndCoalescesItsFlows) {
  constexpr uint64_t kMs = 1'000'000;
  GatewayConfig cfg = node_config(1);
  cfg.vips[0].checkpoint_ns = 50 * kMs;
  Node a(cfg, &clock_);
  open_conn(a, 1, 40040);
  EXPECT_TRUE(a.export_wire().empty());
  clock_.advance_ns(30 * kMs);
  EXPECT_TRUE(a.one(seg({kClient, kVip, 40040, 80, kTcpAck | kTcpPsh, 1001, 5001, "x"})).size());
  EXPECT_TRUE(a.export_wire().empty());
  clock_.advance_ns(21 * kMs);  // 51 ms after the SYN: one full record
  auto recs = a.export_wire();
  ASSERT_EQ(recs.size(), 1u);
  EXPECT_EQ(recs[0].first, kRecordFlowFull);
  Node b(2, &clock_);
  b.import_wire(recs);
  EXPECT_EQ(b.gw().standby_connections(), 1u);
  // A resync (new holders) sends it at once, interval or not.
  open_conn(a, 1, 40043);
  a.gw().resync();
  EXPECT_EQ(a.export_wire().size(), 2u);
  // A short connection: open and closed within the interval, never sent.
  open_conn(a, 1, 40041);
  EXPECT_TRUE(a.one(seg({kClient, kVip, 40041, 80, kTcpAck | kTcpRst, 1001, 0})).size());
  clock_.advance_ns(100 * kMs);
  EXPECT_TRUE(a.export_wire().empty());
  EXPECT_GE(a.counter("sync_delayed"), 2u);
  // The SYN-proxied VIP has no interval of its own: its flow goes at once.
  const uint32_t cookie = cookie_from(a, 40042);
  EXPECT_FALSE(a.one(seg({kClient, kProxyVip, 40042, 443, kTcpAck, 1001, cookie + 1})).empty());
  recs = a.export_wire();
  ASSERT_EQ(recs.size(), 1u);
}

// A standby copy that hears nothing expires on its own, grace included.
TEST_F(Cluster, StandbyExpiresWithoutItsProcessor) {
  open_conn(a_, 1, 40005);
  b_.import_wire(a_.export_wire());
  EXPECT_EQ(b_.gw().standby_connections(), 1u);
  clock_.advance_ns(6 * 86400 * kSec);  // past ESTABLISHED's 5 days
  b_.gw().advance_to(clock_.now_ns());
  EXPECT_EQ(b_.gw().standby_connections(), 0u);
  EXPECT_EQ(b_.gw().table().size(), 0u);
}

// A SYN-proxied flow carries its sequence translation: the holder goes on
// translating where the processor stopped.
TEST_F(Cluster, SynProxyFlowKeepsItsTranslation) {
  const uint32_t cookie = cookie_from(a_, 40006);
  const Bytes bsyn = a_.one(seg({kClient, kProxyVip, 40006, 443, kTcpAck, 1001, cookie + 1}));
  ASSERT_FALSE(bsyn.empty());
  const uint16_t port = ends_of(bsyn).sport;
  ASSERT_EQ(a_.send({seg({kDip, kSnat[1], kBport, port, kTcpSyn | kTcpAck, 7000, 1001})}).size(),
            2u);
  b_.import_wire(a_.export_wire());
  ASSERT_EQ(b_.gw().standby_connections(), 1u);
  const Bytes data =
      seg({kClient, kProxyVip, 40006, 443, kTcpAck | kTcpPsh, 1001, cookie + 1, "x"});
  const Bytes reply = seg({kDip, kSnat[1], kBport, port, kTcpAck | kTcpPsh, 7001, 1002, "yz"});
  const Bytes on_b = b_.one(data);
  ASSERT_FALSE(on_b.empty());
  EXPECT_EQ(on_b, a_.one(data));
  const Bytes back = b_.one(reply);
  ASSERT_FALSE(back.empty());
  EXPECT_EQ(back, a_.one(reply));
  PacketMeta m;
  ASSERT_EQ(parse_packet(back.data(), static_cast<uint32_t>(back.size()), &m), ParseError::kOk);
  EXPECT_EQ(m.tcp_seq, cookie + 1);  // the backend's 7001 in the client's space
}

// The node that sent a SYN-proxied flow's backend SYN dies before the
// backend answered: the node that takes the flow over sends the SYN again
// when the client speaks (its zero-window probe), and the handshake ends
// there. (Before, the client's probes were dropped until it gave up.)
TEST_F(Cluster, TakenOverSynProxyHandshakeSendsTheBackendSynAgain) {
  const uint32_t cookie = cookie_from(a_, 40017);
  const Bytes bsyn = a_.one(seg({kClient, kProxyVip, 40017, 443, kTcpAck, 1001, cookie + 1}));
  ASSERT_FALSE(bsyn.empty());
  b_.import_wire(a_.export_wire());  // the copy, the backend's SYN-ACK not yet seen
  ASSERT_EQ(b_.gw().standby_connections(), 1u);
  // No view: node 1 is not known to live. The client's zero-window probe
  // (seq = its ISN) reaches node 2.
  const Bytes again = b_.one(seg({kClient, kProxyVip, 40017, 443, kTcpAck, 1000, cookie + 1}));
  ASSERT_FALSE(again.empty());
  PacketMeta am;
  ASSERT_EQ(parse_packet(again.data(), static_cast<uint32_t>(again.size()), &am), ParseError::kOk);
  PacketMeta bm;
  ASSERT_EQ(parse_packet(bsyn.data(), static_cast<uint32_t>(bsyn.size()), &bm), ParseError::kOk);
  EXPECT_EQ(am.tcp_flags & (kTcpSyn | kTcpAck), kTcpSyn);
  EXPECT_EQ(am.tcp_seq, bm.tcp_seq);  // the same SYN: the client's ISN
  EXPECT_EQ(ends_of(again).dst, kDip);
  EXPECT_EQ(ends_of(again).sport, ends_of(bsyn).sport);
  EXPECT_EQ(b_.counter("synproxy_backend_syn_again"), 1u);
  EXPECT_EQ(b_.counter("sync_promoted"), 1u);
  // The backend answers node 2: the client's window opens, the backend gets its ACK.
  EXPECT_EQ(
      b_.send({seg({kDip, kSnat[1], kBport, ends_of(bsyn).sport, kTcpSyn | kTcpAck, 7000, 1001})})
          .size(),
      2u);
}

// A cookie ACK opens its flow on the node that receives it, clustered or not
// (the SYN-proxy key is the cluster's): it is not handed to a holder.
TEST_F(Cluster, CookieAckOpensLocally) {
  const uint32_t cookie = cookie_from(a_, 40007);
  ClusterView view;
  view.live = 0b11;
  std::memcpy(view.mac[1], kMac[1], 6);
  for (uint32_t s = 0; s < kSlots; ++s)
    view.holders[s][0] = 1;
  b_.gw().set_cluster_view(&view);
  const Bytes bsyn = b_.one(seg({kClient, kProxyVip, 40007, 443, kTcpAck, 1001, cookie + 1}));
  ASSERT_FALSE(bsyn.empty());
  EXPECT_EQ(ends_of(bsyn).dst, kDip);
  EXPECT_EQ(b_.counter("sync_miss_redirected"), 0u);
  // Not a cookie: handed to the holder.
  const Bytes other = b_.one(seg({kClient, kProxyVip, 40008, 443, kTcpAck, 1001, 77}));
  ASSERT_FALSE(other.empty());
  EXPECT_EQ(0, std::memcmp(other.data(), kMac[1], 6));
}

// Records about flows this node processes, from nodes that think otherwise,
// change nothing here.
TEST_F(Cluster, RecordsAboutOwnFlowsAreIgnored) {
  open_conn(a_, 1, 40009);
  open_conn(b_, 2, 40009);  // same client tuple, processed by node 2 as well
  b_.import_wire(a_.export_wire());
  EXPECT_EQ(b_.counter("sync_ignored_live"), 1u);
  EXPECT_EQ(b_.gw().standby_connections(), 0u);
}

// A firewall-only flow (not to a VIP) has one canonical key: its copy is
// made, and removed by the processor's delete, by that key.
TEST_F(Cluster, FirewallOnlyFlowCopyComesAndGoes) {
  EXPECT_FALSE(a_.one(seg({kClient, "203.0.113.9", 40010, 22, kTcpSyn, 1000})).empty());
  b_.import_wire(a_.export_wire());
  EXPECT_EQ(b_.gw().standby_connections(), 1u);
  EXPECT_EQ(b_.gw().table().size(), 1u);
  clock_.advance_ns(200 * kSec);  // past SYN_SENT's 120 s
  a_.gw().advance_to(clock_.now_ns());
  const auto recs = a_.export_wire();
  ASSERT_EQ(recs.size(), 1u);
  EXPECT_EQ(recs[0].first, kRecordFlowDelete);
  b_.import_wire(recs);
  EXPECT_EQ(b_.counter("sync_deleted"), 1u);
  EXPECT_EQ(b_.gw().standby_connections(), 0u);
  EXPECT_EQ(b_.gw().table().size(), 0u);
}

// A full record about a new connection on a tuple whose copy is still here
// (the old one's delete was lost) replaces the copy: the backend and SNAT
// port are the new connection's.
TEST_F(Cluster, FullRecordOfAnotherConnectionReplacesTheCopy) {
  open_conn(a_, 1, 40011);
  auto recs = a_.export_wire();
  ASSERT_EQ(recs.size(), 1u);
  b_.import_wire(recs);
  FlowSync s;
  ASSERT_EQ(decode_flow_sync(recs[0].first, recs[0].second.data(), recs[0].second.size(), &s),
            FlowSyncError::kOk);
  s.snat_port = static_cast<uint16_t>(s.snat_port + kSlots);  // same slot, another port
  b_.gw().import_sync(s, clock_.now_ns());
  EXPECT_EQ(b_.gw().standby_connections(), 1u);
  EXPECT_EQ(b_.gw().table().size(), 2u);
  // The promoted copy translates with the new port.
  const Bytes out = b_.one(seg({kClient, kVip, 40011, 80, kTcpAck, 1001, 5001}));
  ASSERT_FALSE(out.empty());
  EXPECT_EQ(ends_of(out).sport, s.snat_port);
}

// Closes a connection opened by open_conn() through `n`: both FINs, the last
// ACK (TIME_WAIT).
void close_conn(Node& n, uint16_t node_id, uint16_t cport, uint16_t port) {
  EXPECT_FALSE(n.one(seg({kClient, kVip, cport, 80, kTcpAck | kTcpFin, 1001, 5001})).empty());
  EXPECT_FALSE(
      n.one(seg({kDip, kSnat[node_id], kBport, port, kTcpAck | kTcpFin, 5001, 1002})).empty());
  EXPECT_FALSE(n.one(seg({kClient, kVip, cport, 80, kTcpAck, 1002, 5002})).empty());
}

ClusterView two_live() {
  ClusterView view;
  view.live = 0b11;
  std::memcpy(view.mac[1], kMac[1], 6);
  std::memcpy(view.mac[2], kMac[2], 6);
  return view;
}

// A SYN that reopens the tuple of a closed copy is a new connection: it
// opens where the router sent it, not at the old connection's processor
// (which would then get every later connection on the tuple, each packet
// handed over: the lab saw a third of all packets cross between nodes).
TEST_F(Cluster, SynOnAClosedCopyOpensHere) {
  open_conn(a_, 1, 40012);
  const auto recs = a_.export_wire();
  ASSERT_EQ(recs.size(), 1u);
  b_.import_wire(recs);
  // The copy learns TIME_WAIT (a closed flow's delete was lost, or a peer
  // that still sends closed flows' updates).
  FlowSync s;
  ASSERT_EQ(decode_flow_sync(recs[0].first, recs[0].second.data(), recs[0].second.size(), &s),
            FlowSyncError::kOk);
  s.op = FlowSyncOp::kUpdate;
  s.fw.state = static_cast<uint8_t>(TcpState::kTimeWait);
  EXPECT_EQ(b_.gw().import_sync(s, clock_.now_ns()), GatewayCounter::kSyncUpdated);
  ASSERT_EQ(b_.gw().standby_connections(), 1u);
  const ClusterView view = two_live();
  b_.gw().set_cluster_view(&view);
  const Bytes out = b_.one(seg({kClient, kVip, 40012, 80, kTcpSyn, 9000}));
  ASSERT_FALSE(out.empty());
  EXPECT_EQ(ends_of(out).dst, kDip);
  EXPECT_NE(0, std::memcmp(out.data(), kMac[1], 6));
  PacketMeta m;
  ASSERT_EQ(parse_packet(out.data(), static_cast<uint32_t>(out.size()), &m), ParseError::kOk);
  EXPECT_EQ(IpAddress::from_bytes(Family::kIpv4, out.data() + m.src_off).to_string(), kSnat[2]);
  EXPECT_EQ(b_.counter("sync_redirected"), 0u);
  EXPECT_EQ(b_.counter("conns_reused"), 1u);
  EXPECT_EQ(b_.gw().standby_connections(), 0u);
  EXPECT_EQ(b_.counter("conns_live"), 1u);
  // A segment of a copy that is not closed still goes to its processor.
  open_conn(a_, 1, 40013);
  b_.import_wire(a_.export_wire());
  const Bytes syn = b_.one(seg({kClient, kVip, 40013, 80, kTcpSyn, 9000}));
  ASSERT_FALSE(syn.empty());
  EXPECT_EQ(0, std::memcmp(syn.data(), kMac[1], 6));
  EXPECT_EQ(b_.counter("sync_redirected"), 1u);
}

// Node 2 opens a new connection on a tuple whose connection node 1 closed:
// node 1's record gives way to the new copy, and node 1's delete of its old
// connection does not remove the new one's copy elsewhere.
TEST_F(Cluster, NewConnectionElsewhereSupersedesAClosedOne) {
  Node c{3, &clock_};
  const uint16_t port = open_conn(a_, 1, 40014);
  c.import_wire(a_.export_wire());
  close_conn(a_, 1, 40014, port);
  open_conn(b_, 2, 40014);
  const auto full = b_.export_wire();
  a_.import_wire(full);
  EXPECT_EQ(a_.counter("sync_superseded"), 1u);
  EXPECT_EQ(a_.gw().standby_connections(), 1u);
  EXPECT_EQ(a_.counter("conns_live"), 0u);
  c.import_wire(full);  // replaces node 1's copy (another processor, another backend port)
  ASSERT_EQ(c.gw().standby_connections(), 1u);
  // Node 1's record about its old connection (the delete).
  const auto old = a_.export_wire();
  ASSERT_FALSE(old.empty());
  c.import_wire(old);
  b_.import_wire(old);
  EXPECT_GE(c.counter("sync_stale"), 1u);
  EXPECT_EQ(c.gw().standby_connections(), 1u);
  EXPECT_EQ(b_.counter("conns_live"), 1u);
}

// The processor is dead and this node's copy is not the slot's first live
// holder's (an older copy, sent before a ring change): the packet goes to
// that holder, which takes the flow over alone, rather than both nodes
// promoting a copy and splitting the flow's directions. A packet a peer
// handed over is taken here.
TEST_F(Cluster, OlderCopyHandsTheFlowToTheSlotsHolder) {
  open_conn(a_, 1, 40015);
  b_.import_wire(a_.export_wire());
  const FlowKey orig = make_flow_key(Family::kIpv4, kProtoTcp, IpAddress::parse(kClient).bytes,
                                     IpAddress::parse(kVip).bytes, 40015, 80, false);
  ClusterView view;
  view.live = 0b110;  // node 1 is dead
  std::memcpy(view.mac[2], kMac[2], 6);
  std::memcpy(view.mac[3], kMac[3], 6);
  view.holders[b_.gw().slot_of(orig)][0] = 3;
  view.holders[b_.gw().slot_of(orig)][1] = 2;
  b_.gw().set_cluster_view(&view);
  const Bytes data = seg({kClient, kVip, 40015, 80, kTcpAck, 1001, 5001});
  const Bytes out = b_.one(data);
  ASSERT_EQ(out.size(), data.size());
  EXPECT_EQ(0, std::memcmp(out.data(), kMac[3], 6));
  EXPECT_EQ(b_.counter("sync_handed_to_holder"), 1u);
  EXPECT_EQ(b_.counter("sync_promoted"), 0u);
  // Node 3 hands it back (it had no copy): taken over here.
  Bytes back = data;
  std::memcpy(back.data() + 6, kMac[3], 6);
  const Bytes taken = b_.one(back);
  ASSERT_FALSE(taken.empty());
  EXPECT_EQ(ends_of(taken).dst, kDip);
  EXPECT_EQ(b_.counter("sync_promoted"), 1u);
}

// A copy whose processor was declared down (a false death: it lives on)
// still follows that processor's updates and delete.
TEST_F(Cluster, CopyOfADownProcessorStillFollowsIt) {
  const uint16_t port = open_conn(a_, 1, 40016);
  b_.import_wire(a_.export_wire());
  b_.gw().peer_down(1);
  EXPECT_TRUE(a_.one(seg({kClient, kVip, 40016, 80, kTcpAck | kTcpFin, 1001, 5001})).size());
  clock_.advance_ns(2 * kSec);  // a close that lasts
  b_.import_wire(a_.export_wire());
  EXPECT_EQ(b_.counter("sync_updated"), 1u);
  EXPECT_EQ(b_.counter("sync_stale"), 0u);
  close_conn(a_, 1, 40016, port);
  b_.import_wire(a_.export_wire());
  EXPECT_EQ(b_.counter("sync_deleted"), 1u);
  EXPECT_EQ(b_.gw().standby_connections(), 0u);
}

// A processor declared dead only just now may be a node that stalled and
// comes back with its flows: its copy does not take the flow over until the
// death has lasted (the view's suspect set), the packet is dropped (TCP
// resends it), and then the copy is promoted.
TEST_F(Cluster, ACopyWaitsOutItsProcessorsSuspectedDeath) {
  open_conn(a_, 1, 40022);
  b_.import_wire(a_.export_wire());
  ClusterView view;
  view.live = 0b10;
  view.suspect = 0b01;
  std::memcpy(view.mac[2], kMac[2], 6);
  b_.gw().set_cluster_view(&view);
  b_.gw().peer_down(1);
  const Bytes data = seg({kClient, kVip, 40022, 80, kTcpAck, 1001, 5001});
  EXPECT_TRUE(b_.one(data).empty());
  EXPECT_EQ(b_.counter("sync_takeover_wait"), 1u);
  EXPECT_EQ(b_.gw().standby_connections(), 1u);
  view.suspect = 0;
  const Bytes out = b_.one(data);
  ASSERT_FALSE(out.empty());
  EXPECT_EQ(ends_of(out).dst, kDip);
  EXPECT_EQ(b_.counter("sync_promoted"), 1u);
}

// The slot's first live holder is still joining (a restart taking in its
// copies), so the previous epoch's first live holder takes over; here that
// is this node, which promotes its copy. Once that node is ready, the flow
// is handed to it: a ready node has its copies.
TEST_F(Cluster, AHolderStillJoiningIsPassedOver) {
  for (const bool joining : {false, true}) {
    SCOPED_TRACE(joining ? "joining" : "ready");
    Node a{1, &clock_}, b{2, &clock_};
    open_conn(a, 1, 40018);
    b.import_wire(a.export_wire());
    const FlowKey orig = make_flow_key(Family::kIpv4, kProtoTcp, IpAddress::parse(kClient).bytes,
                                       IpAddress::parse(kVip).bytes, 40018, 80, false);
    ClusterView view;
    view.live = 0b110;  // node 1 is dead, node 3 has come back
    view.joining = joining ? 0b100 : 0;
    std::memcpy(view.mac[2], kMac[2], 6);
    std::memcpy(view.mac[3], kMac[3], 6);
    const uint32_t slot = b.gw().slot_of(orig);
    view.holders[slot][0] = 3;
    view.holders[slot][1] = 2;
    view.prev_holders[slot][0] = 1;
    view.prev_holders[slot][1] = 2;
    b.gw().set_cluster_view(&view);
    const Bytes out = b.one(seg({kClient, kVip, 40018, 80, kTcpAck, 1001, 5001}));
    ASSERT_FALSE(out.empty());
    EXPECT_EQ(ends_of(out).dst, joining ? kDip : kVip);  // (handed over: unchanged)
    EXPECT_EQ(b.counter("sync_handed_to_holder"), joining ? 0u : 1u);
    EXPECT_EQ(b.counter("sync_promoted"), joining ? 1u : 0u);
  }
}

// A copy whose processor died, of a slot this node held first and another
// node holds first now (one that joined): the resync takes it over and
// sends it there in full, since misses go there and only this node had it.
// A copy of a slot this node still holds first stays a copy (its first
// packet promotes it), and so does one this node kept from an older ring
// (the slot's first holder before the change has the current copy).
TEST_F(Cluster, AResyncHandsOnCopiesWithNoProcessor) {
  enum Case { kMoved, kStays, kKeptFromBefore, kSuspect };
  for (const Case c : {kMoved, kStays, kKeptFromBefore, kSuspect}) {
    SCOPED_TRACE(c == kMoved     ? "slot moved"
                 : c == kStays   ? "slot stays"
                 : c == kSuspect ? "slot moved, processor suspect"
                                 : "an older copy");
    Node a{1, &clock_}, b{2, &clock_};
    open_conn(a, 1, 40021);
    b.import_wire(a.export_wire());
    ASSERT_EQ(b.gw().standby_connections(), 1u);
    b.gw().peer_down(1);
    const FlowKey orig = make_flow_key(Family::kIpv4, kProtoTcp, IpAddress::parse(kClient).bytes,
                                       IpAddress::parse(kVip).bytes, 40021, 80, false);
    ClusterView view;
    view.live = 0b1110;
    view.suspect = c == kSuspect ? 0b0001 : 0;
    for (int n = 2; n <= 3; ++n)
      std::memcpy(view.mac[n], kMac[n], 6);
    view.mac[4][5] = 4;
    const uint32_t slot = b.gw().slot_of(orig);
    view.holders[slot][0] = c == kStays ? 2 : 3;
    view.holders[slot][1] = c == kStays ? 3 : 2;
    view.prev_holders[slot][0] = c == kKeptFromBefore ? 4 : 2;
    view.prev_holders[slot][1] = c == kKeptFromBefore ? 2 : 4;
    b.gw().set_cluster_view(&view);
    b.gw().resync();
    if (c == kSuspect) {  // not while node 1 may only have stalled; once its death is believed
      EXPECT_EQ(b.counter("sync_orphan_taken"), 0u);
      view.suspect = 0;
      b.gw().take_orphans();
    }
    const bool taken = c == kMoved || c == kSuspect;
    EXPECT_EQ(b.counter("sync_orphan_taken"), taken ? 1u : 0u);
    EXPECT_EQ(b.gw().standby_connections(), taken ? 0u : 1u);
    const auto recs = b.export_wire();
    ASSERT_EQ(recs.size(), taken ? 1u : 0u);
    if (!taken) continue;
    FlowSync s;
    ASSERT_EQ(decode_flow_sync(recs[0].first, recs[0].second.data(), recs[0].second.size(), &s),
              FlowSyncError::kOk);
    EXPECT_EQ(s.op, FlowSyncOp::kFull);
    EXPECT_EQ(s.processor, 2);
    EXPECT_EQ(s.src_port, 40021);
  }
}

// The backend answers our SYN with a bare ACK: it holds that 4-tuple (an
// earlier connection on the SNAT port, e.g. of this node's previous life).
// The flow moves to another port of the same partition, the client's SYN
// goes again from there, and the holders get a full record with the new port.
TEST_F(Cluster, BackendHoldingTheTupleMovesTheFlowToAnotherPort) {
  const Bytes syn = seg({kClient, kVip, 40019, 80, kTcpSyn, 1000});
  const Bytes first = a_.one(syn);
  ASSERT_FALSE(first.empty());
  const uint16_t port = ends_of(first).sport;
  a_.export_wire();  // the holders have it
  const Bytes again = a_.one(seg({kDip, kSnat[1], kBport, port, kTcpAck, 777, 5555}));
  ASSERT_FALSE(again.empty());
  EXPECT_EQ(a_.counter("snat_rekeyed"), 1u);
  EXPECT_EQ(a_.counter("client_syn_again"), 1u);
  const uint16_t port2 = ends_of(again).sport;
  EXPECT_EQ(ends_of(again).dst, kDip);
  EXPECT_NE(port2, port);
  EXPECT_EQ(a_.gw().snat()->partition_of(port2), a_.gw().snat()->partition_of(port));
  // The client's own retransmission follows the flow to its new port.
  EXPECT_EQ(ends_of(a_.one(syn)).sport, port2);
  // The backend answers the new port; the old one is no longer this flow's.
  const Bytes synack = a_.one(seg({kDip, kSnat[1], kBport, port2, kTcpSyn | kTcpAck, 5000, 1001}));
  ASSERT_FALSE(synack.empty());
  EXPECT_EQ(ends_of(synack).dst, kClient);
  const auto recs = a_.export_wire();
  ASSERT_FALSE(recs.empty());
  FlowSync s;
  ASSERT_EQ(decode_flow_sync(recs[0].first, recs[0].second.data(), recs[0].second.size(), &s),
            FlowSyncError::kOk);
  EXPECT_EQ(s.op, FlowSyncOp::kFull);
  EXPECT_EQ(s.snat_port, port2);
}

// The same with the SYN proxy: the client is asked for its ACK at once (an
// ACK one below what it expects makes it answer with a duplicate ACK), and
// that ACK, or its zero-window probe, sends the backend SYN again from the
// new port.
TEST_F(Cluster, SynProxyFlowMovesToAnotherPortToo) {
  const uint32_t cookie = cookie_from(a_, 40020);
  const Bytes bsyn = a_.one(seg({kClient, kProxyVip, 40020, 443, kTcpAck, 1001, cookie + 1}));
  ASSERT_FALSE(bsyn.empty());
  const uint16_t port = ends_of(bsyn).sport;
  const Bytes ask = a_.one(seg({kDip, kSnat[1], kBport, port, kTcpAck, 777, 5555}));
  ASSERT_FALSE(ask.empty());
  EXPECT_EQ(a_.counter("snat_rekeyed"), 1u);
  EXPECT_EQ(a_.counter("synproxy_client_ack_requested"), 1u);
  PacketMeta m;
  ASSERT_EQ(parse_packet(ask.data(), static_cast<uint32_t>(ask.size()), &m), ParseError::kOk);
  EXPECT_EQ(ends_of(ask).dst, kClient);
  EXPECT_EQ(m.sport, 443);
  EXPECT_EQ(m.dport, 40020);
  EXPECT_EQ(m.tcp_flags, kTcpAck);
  EXPECT_EQ(m.tcp_seq, cookie);  // one below the client's RCV.NXT: out of its window
  EXPECT_EQ(m.tcp_ack, 1001u);
  EXPECT_EQ(m.tcp_window, 0);
  EXPECT_TRUE(l4_checksum_ok(ask.data(), m));
  const Bytes dup = a_.one(seg({kClient, kProxyVip, 40020, 443, kTcpAck, 1001, cookie + 1}));
  ASSERT_FALSE(dup.empty());
  EXPECT_NE(ends_of(dup).sport, port);
  EXPECT_EQ(ends_of(dup).dst, kDip);
  EXPECT_EQ(a_.counter("synproxy_backend_syn_again"), 1u);
  const Bytes again = a_.one(seg({kClient, kProxyVip, 40020, 443, kTcpAck, 1000, cookie + 1}));
  ASSERT_FALSE(again.empty());
  EXPECT_NE(ends_of(again).sport, port);
  EXPECT_EQ(ends_of(again).dst, kDip);
}

// The export queue never overflows into lost changes: when it is full, the
// next export sends every live flow again.
TEST(ClusterQueue, OverflowResendsEverything) {
  ManualClock clock{1000 * kSec};
  GatewayConfig c = node_config(1);
  c.max_connections = 4;  // a queue of 8 entries
  Node n{c, &clock};
  auto churn = [&](uint16_t base) {
    for (uint16_t i = 0; i < 4; ++i)
      EXPECT_FALSE(
          n.one(seg({kClient, kVip, static_cast<uint16_t>(base + i), 80, kTcpSyn, 1000})).empty());
    clock.advance_ns(200 * kSec);  // past SYN_SENT: freed, never exported
    n.gw().advance_to(clock.now_ns());
  };
  churn(41000);
  churn(42000);
  EXPECT_FALSE(n.one(seg({kClient, kVip, 43000, 80, kTcpSyn, 1000})).empty());
  EXPECT_GE(n.counter("sync_queue_overflow"), 1u);
  const auto recs = n.export_wire();
  ASSERT_EQ(recs.size(), 1u);  // the one live flow, in full
  EXPECT_EQ(recs[0].first, kRecordFlowFull);
  EXPECT_TRUE(n.export_wire().empty());
}

// ---- pulling ----

// A node whose parked packets outlive one send(): one port for its life
// (parked frames are the port's).
class PullNode {
 public:
  PullNode(uint16_t id, ManualClock* clock) : clock_(clock), port_({}) {
    GatewayConfig cfg = node_config(id);
    cfg.cluster.pull_timeout_ms = 20;
    p_.add(std::make_unique<ParseStage>());
    auto gw = std::make_unique<GatewayStage>(cfg, clock->now_ns());
    gw_ = gw.get();
    p_.add(std::move(gw));
    p_.enable_park(128);
  }
  // What left for these packets (and for parked ones let go before).
  std::vector<Bytes> send(std::vector<Bytes> in) {
    port_.feed(std::move(in));
    p_.run_to_end(port_, clock_);
    std::vector<Bytes> out(port_.output().begin() + static_cast<long>(seen_), port_.output().end());
    seen_ = port_.output().size();
    return out;
  }
  // Parked packets whose pull is settled run again (the worker's loop).
  std::vector<Bytes> replay() {
    p_.unpark([this](uint16_t tag) { return gw_->pull_ready(tag); });
    return send({});
  }
  uint32_t parked() const { return p_.parked(); }
  uint64_t counter(const std::string& name) const {
    uint64_t v = 0;
    gw_->export_counters([&](std::string_view n, uint64_t x) {
      if (n == name) v = x;
    });
    return v;
  }
  std::vector<FlowSync> export_sync() {
    FlowSync out[64];
    const uint32_t n = gw_->export_sync(out, 64, clock_->now_ns());
    return std::vector<FlowSync>(out, out + n);
  }
  GatewayStage& gw() { return *gw_; }

 private:
  ManualClock* clock_;
  MemoryPort port_;
  Pipeline p_;
  GatewayStage* gw_;
  size_t seen_ = 0;
};

// Through the wire format, as the agent would carry it.
FlowSync over_wire(const FlowSync& s) {
  uint8_t buf[kFlowMaxSize];
  encode_flow_sync(s, buf);
  FlowSync d;
  EXPECT_EQ(decode_flow_sync(record_type(s.op), buf, record_size(s.op), &d), FlowSyncError::kOk);
  return d;
}

// Node 1 processed a flow whose copy node 2 holds; the router now sends it
// to node 3, which has never seen it (node 1 died, or the paths changed).
class ClusterPull : public ::testing::Test {
 protected:
  ClusterPull() {
    for (int n = 1; n <= 3; ++n)
      std::memcpy(view_.mac[n], kMac[n], 6);
    for (uint32_t s = 0; s < kSlots; ++s) {
      view_.holders[s][0] = 2;
      view_.holders[s][1] = 1;
    }
    view_.live = 0b111;
    port_ = open_conn(a_, 1, 40100);
    b_.gw().import_sync(
        over_wire(a_.gw().export_sync(out_, 64, clock_.now_ns()) == 1 ? out_[0] : FlowSync{}),
        clock_.now_ns());
    EXPECT_EQ(b_.gw().standby_connections(), 1u);
    b_.gw().set_cluster_view(&view_);
    c_.gw().set_cluster_view(&view_);
  }
  void kill_a() {
    view_.live = 0b110;
    b_.gw().peer_down(1);
    c_.gw().peer_down(1);
  }
  // One record of `from`'s export, which must be a pull or an answer to `to`.
  FlowSync one_message(PullNode& from, uint16_t to) {
    const auto recs = from.export_sync();
    EXPECT_EQ(recs.size(), 1u);
    if (recs.empty()) return FlowSync{};
    EXPECT_TRUE(is_pull_op(recs[0].op));
    EXPECT_EQ(recs[0].peer, to);
    return over_wire(recs[0]);
  }
  Bytes data(const char* payload = "hello") const {
    return seg({kClient, kVip, 40100, 80, kTcpAck | kTcpPsh, 1001, 5001, payload});
  }
  Bytes reply() const {
    return seg({kDip, kSnat[1], kBport, port_, kTcpAck | kTcpPsh, 5001, 1006, "world"});
  }

  ManualClock clock_{1000 * kSec};
  Node a_{1, &clock_};
  PullNode b_{2, &clock_};
  PullNode c_{3, &clock_};
  ClusterView view_;
  FlowSync out_[64];
  uint16_t port_ = 0;
};

// The processor is gone: the holder grants its copy to the node that asks,
// which processes the flow from then on, byte for byte as before; the
// holder's copy names the new processor and hands it what comes its way.
TEST_F(ClusterPull, TheHolderGrantsItsCopy) {
  kill_a();
  EXPECT_TRUE(c_.send({data()}).empty());  // parked while node 2 is asked
  EXPECT_EQ(c_.parked(), 1u);
  EXPECT_EQ(c_.counter("sync_pull_sent"), 1u);
  const FlowSync pull = one_message(c_, 2);
  EXPECT_EQ(pull.op, FlowSyncOp::kPull);
  EXPECT_EQ(pull.processor, 3);
  EXPECT_TRUE(c_.replay().empty());  // no answer yet: still parked

  EXPECT_EQ(b_.gw().import_sync(pull, clock_.now_ns()), GatewayCounter::kSyncPullGiven);
  const FlowSync grant = one_message(b_, 3);
  EXPECT_EQ(grant.op, FlowSyncOp::kGrant);
  EXPECT_EQ(b_.gw().standby_connections(), 1u);  // the holder keeps its copy

  EXPECT_EQ(c_.gw().import_sync(grant, clock_.now_ns()), GatewayCounter::kSyncPullGranted);
  EXPECT_EQ(c_.counter("conns_live"), 1u);
  EXPECT_EQ(c_.gw().standby_connections(), 0u);
  const auto out = c_.replay();
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0], a_.one(data()));  // what the old processor would have sent
  EXPECT_EQ(c_.parked(), 0u);
  const auto back = c_.send({reply()});
  ASSERT_EQ(back.size(), 1u);
  EXPECT_EQ(back[0], a_.one(reply()));
  EXPECT_EQ(c_.counter("sync_miss_redirected"), 0u);

  // Node 3 sends its holders the flow in full; node 2's copy follows node
  // 3, and hands it the packets the router sends node 2.
  const auto recs = c_.export_sync();
  ASSERT_EQ(recs.size(), 1u);
  EXPECT_EQ(recs[0].op, FlowSyncOp::kFull);
  EXPECT_EQ(recs[0].processor, 3);
  b_.gw().import_sync(over_wire(recs[0]), clock_.now_ns());
  const auto at_b = b_.send({reply()});
  ASSERT_EQ(at_b.size(), 1u);
  EXPECT_EQ(0, std::memcmp(at_b[0].data(), kMac[3], 6));
  EXPECT_EQ(b_.counter("sync_redirected"), 1u);
}

// While the processor lives, the asker is referred to it, and the flow's
// packets go there (without asking again).
TEST_F(ClusterPull, ALiveProcessorIsWhereThePacketsGo) {
  EXPECT_TRUE(c_.send({data()}).empty());
  const FlowSync pull = one_message(c_, 2);
  b_.gw().import_sync(pull, clock_.now_ns());
  const FlowSync refer = one_message(b_, 3);
  EXPECT_EQ(refer.op, FlowSyncOp::kRefer);
  EXPECT_EQ(refer.node, 1);
  c_.gw().import_sync(refer, clock_.now_ns());
  auto out = c_.replay();
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(0, std::memcmp(out[0].data(), kMac[1], 6));
  EXPECT_EQ(0, std::memcmp(out[0].data() + 6, data().data() + 6, out[0].size() - 6));
  out = c_.send({data("again")});
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(0, std::memcmp(out[0].data(), kMac[1], 6));
  EXPECT_EQ(c_.counter("sync_pull_sent"), 1u);
  EXPECT_EQ(c_.counter("sync_pull_referred"), 2u);
  EXPECT_EQ(c_.counter("conns_live"), 0u);
}

// Two nodes ask for the two directions of one flow: the first gets it, the
// second is referred to the first. The holder decides alone, so a flow's
// directions never split between two processors.
TEST_F(ClusterPull, TheSecondAskerIsReferredToTheFirst) {
  kill_a();
  c_.send({data()});
  b_.gw().import_sync(one_message(c_, 2), clock_.now_ns());
  c_.gw().import_sync(one_message(b_, 3), clock_.now_ns());
  ASSERT_EQ(c_.replay().size(), 1u);

  // Node 1 is back (restarted, empty), and the reply comes to it.
  view_.live = 0b111;
  PullNode a2{1, &clock_};
  a2.gw().set_cluster_view(&view_);
  EXPECT_TRUE(a2.send({reply()}).empty());
  b_.gw().import_sync(one_message(a2, 2), clock_.now_ns());
  const FlowSync refer = one_message(b_, 1);
  EXPECT_EQ(refer.op, FlowSyncOp::kRefer);
  EXPECT_EQ(refer.node, 3);
  a2.gw().import_sync(refer, clock_.now_ns());
  const auto out = a2.replay();
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(0, std::memcmp(out[0].data(), kMac[3], 6));
  EXPECT_EQ(b_.counter("sync_pull_given"), 1u);
  EXPECT_EQ(b_.counter("sync_pull_answered"), 2u);
}

// A copy whose processor is gone is the slot's first live holder's to give:
// another node's copy (an older one) refers the asker there. (A restarted
// node's previous epoch is not the survivors', so it may ask elsewhere.)
TEST_F(ClusterPull, OnlyTheSlotsHolderGivesAFlowAway) {
  kill_a();
  const uint8_t mac4[6] = {2, 0, 0, 0, 0xa, 4};
  ClusterView at_b = view_;  // node 2's view: node 4 comes first for every slot
  at_b.live |= 1u << 3;
  std::memcpy(at_b.mac[4], mac4, 6);
  for (uint32_t s = 0; s < kSlots; ++s) {
    at_b.holders[s][0] = 4;
    at_b.holders[s][1] = 2;
    at_b.prev_holders[s][0] = 4;
  }
  b_.gw().set_cluster_view(&at_b);
  c_.send({data()});
  b_.gw().import_sync(one_message(c_, 2), clock_.now_ns());
  const FlowSync refer = one_message(b_, 3);
  EXPECT_EQ(refer.op, FlowSyncOp::kRefer);
  EXPECT_EQ(refer.node, 4);
  EXPECT_EQ(b_.counter("sync_pull_given"), 0u);
  view_.live |= 1u << 3;
  std::memcpy(view_.mac[4], mac4, 6);
  c_.gw().import_sync(refer, clock_.now_ns());
  const auto out = c_.replay();
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(0, std::memcmp(out[0].data(), mac4, 6));
}

// No one has the flow: the firewall decides, as for any unknown flow (a
// stray ACK is dropped); a reply to another node's address is dropped.
TEST_F(ClusterPull, NoOneHasItTheFirewallDecides) {
  kill_a();
  const Bytes stray = seg({kClient, kVip, 40199, 80, kTcpAck, 1001, 5001});
  const Bytes stray_reply = seg({kDip, kSnat[1], kBport, 5999, kTcpAck, 5001, 1001});
  EXPECT_TRUE(c_.send({stray, stray_reply}).empty());
  const auto pulls = c_.export_sync();
  ASSERT_EQ(pulls.size(), 2u);
  for (const FlowSync& p : pulls)
    b_.gw().import_sync(over_wire(p), clock_.now_ns());
  const auto answers = b_.export_sync();
  ASSERT_EQ(answers.size(), 2u);
  for (const FlowSync& a : answers) {
    EXPECT_EQ(a.op, FlowSyncOp::kRefer);
    EXPECT_EQ(a.node, 0);
    c_.gw().import_sync(over_wire(a), clock_.now_ns());
  }
  EXPECT_TRUE(c_.replay().empty());
  EXPECT_EQ(c_.counter("sync_pull_none"), 2u);
  EXPECT_EQ(c_.counter("drop_sync_no_state"), 1u);
  EXPECT_EQ(c_.counter("drop_firewall"), 1u);
  EXPECT_EQ(c_.parked(), 0u);
}

// No answer within the timeout: the packets are handed to the holder, as
// without pulling; a late answer changes nothing.
TEST_F(ClusterPull, AnUnansweredPullHandsThePacketsOver) {
  kill_a();
  c_.send({data()});
  const FlowSync pull = one_message(c_, 2);
  clock_.advance_ns(19'000'000);
  c_.gw().advance_to(clock_.now_ns());
  EXPECT_TRUE(c_.replay().empty());
  clock_.advance_ns(2'000'000);
  c_.gw().advance_to(clock_.now_ns());
  const auto out = c_.replay();
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(0, std::memcmp(out[0].data(), kMac[2], 6));
  EXPECT_EQ(c_.counter("sync_pull_timeout"), 1u);
  EXPECT_EQ(c_.counter("sync_miss_redirected"), 1u);
  // The pull arrives late; the holder grants (its copy names node 3), and
  // then gets node 3's packet: node 3 lost the flow, the holder takes it.
  b_.gw().import_sync(pull, clock_.now_ns());
  const FlowSync grant = one_message(b_, 3);
  Bytes handed = out[0];
  std::memcpy(handed.data() + 6, kMac[3], 6);  // node 3's L2 stage sets its source MAC
  const auto at_b = b_.send({handed});
  ASSERT_EQ(at_b.size(), 1u);
  EXPECT_EQ(ends_of(at_b[0]).dst, kDip);
  EXPECT_EQ(b_.counter("sync_promoted"), 1u);
  // The grant is too late for node 3: ignored, or two nodes would process
  // the flow. Its packets go to the holder, which processes it.
  EXPECT_EQ(c_.gw().import_sync(grant, clock_.now_ns()), GatewayCounter::kSyncPullLate);
  EXPECT_EQ(c_.counter("conns_live"), 0u);
  const auto more = c_.send({data("x")});
  ASSERT_EQ(more.size(), 1u);
  EXPECT_EQ(0, std::memcmp(more[0].data(), kMac[2], 6));
}

// A grant that comes when its pull has ended, for a flow not processed
// here, goes back: the granter's copy names this node, which would leave
// the flow with no processor at all.
TEST_F(ClusterPull, AGrantNotTakenIsGivenBack) {
  kill_a();
  c_.send({data()});
  const FlowSync pull = one_message(c_, 2);
  clock_.advance_ns(21'000'000);
  c_.gw().advance_to(clock_.now_ns());
  ASSERT_EQ(c_.replay().size(), 1u);  // handed to node 2 (lost on the way, say)
  b_.gw().import_sync(pull, clock_.now_ns());
  const FlowSync grant = one_message(b_, 3);
  EXPECT_EQ(c_.gw().import_sync(grant, clock_.now_ns()), GatewayCounter::kSyncPullLate);
  const FlowSync back = one_message(c_, 2);
  EXPECT_EQ(back.op, FlowSyncOp::kRefer);
  EXPECT_EQ(back.node, 0);
  EXPECT_EQ(b_.gw().import_sync(back, clock_.now_ns()), GatewayCounter::kSyncPullReturned);
  // The copy has no processor again: node 2 takes the flow on its next packet.
  const auto out = b_.send({reply()});
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(ends_of(out[0]).dst, kClient);
  EXPECT_EQ(b_.counter("sync_promoted"), 1u);
}

// A pull parks at most 64 packets; more are dropped (TCP sends them again),
// not handed over: the holder may have granted the flow already.
TEST_F(ClusterPull, APullParksSoManyPacketsAndDropsMore) {
  kill_a();
  std::vector<Bytes> burst;
  for (int n = 0; n < 65; ++n)
    burst.push_back(data());
  EXPECT_TRUE(c_.send(burst).empty());
  EXPECT_EQ(c_.parked(), 64u);
  EXPECT_EQ(c_.counter("sync_pull_overflow"), 1u);
  EXPECT_EQ(c_.counter("sync_miss_redirected"), 0u);
  b_.gw().import_sync(one_message(c_, 2), clock_.now_ns());
  c_.gw().import_sync(one_message(b_, 3), clock_.now_ns());
  EXPECT_EQ(c_.replay().size(), 64u);
}

// The node asked dies: the parked packets ask the slot's next holder.
TEST_F(ClusterPull, AHolderThatDiesIsAskedNoMore) {
  c_.send({data()});
  one_message(c_, 2);
  view_.live = 0b101;
  c_.gw().peer_down(2);
  EXPECT_TRUE(c_.replay().empty());
  EXPECT_EQ(c_.counter("sync_pull_sent"), 2u);
  EXPECT_EQ(one_message(c_, 1).op, FlowSyncOp::kPull);
}

// ---- the codec ----

FlowSync sample(FlowSyncOp op) {
  FlowSync s;
  s.op = op;
  s.family = Family::kIpv6;
  s.proto = kProtoTcp;
  s.kind = kSyncNat | kSyncSynProxy;
  s.processor = 3;
  s.seen = kSeenFin;
  for (int i = 0; i < 16; ++i) {
    s.src_addr[i] = static_cast<uint8_t>(i + 1);
    s.dst_addr[i] = static_cast<uint8_t>(0x20 + i);
  }
  s.src_port = 40000;
  s.dst_port = 443;
  if (op == FlowSyncOp::kRefer) s.node = 64;
  if (op == FlowSyncOp::kDelete || op == FlowSyncOp::kPull || op == FlowSyncOp::kRefer) return s;
  s.remaining_ms = 123456;
  s.fw.kind = FwKind::kTcp;
  s.fw.state = static_cast<uint8_t>(TcpState::kEstablished);
  s.fw.scale[0] = 7;
  s.fw.scale[1] = 14;
  s.fw.peer_flags[0] = kPeerSackPerm;
  s.fw.last_end = 0xdeadbeef;
  s.fw.last_win = 512;
  s.fw.flags = kConnOrigInbound;
  s.sp = SynProxyState{0x11223344, 0x55667788, 0x99aabbcc, 1000, kSpOpen, 0x27};
  if (op == FlowSyncOp::kUpdate) return s;
  for (int i = 0; i < 16; ++i) {
    s.dip_addr[i] = static_cast<uint8_t>(0x40 + i);
    s.snat_addr[i] = static_cast<uint8_t>(0x60 + i);
  }
  s.dip_port = 8443;
  s.snat_port = 5123;
  return s;
}

TEST(FlowSyncCodec, RoundTripsEveryOp) {
  for (FlowSyncOp op : {FlowSyncOp::kFull, FlowSyncOp::kUpdate, FlowSyncOp::kDelete,
                        FlowSyncOp::kPull, FlowSyncOp::kGrant, FlowSyncOp::kRefer}) {
    const FlowSync s = sample(op);
    uint8_t buf[kFlowMaxSize];
    encode_flow_sync(s, buf);
    FlowSync d;
    ASSERT_EQ(decode_flow_sync(record_type(op), buf, record_size(op), &d), FlowSyncError::kOk);
    EXPECT_EQ(d.op, op);
    EXPECT_EQ(d.processor, 3);
    EXPECT_EQ(0, std::memcmp(d.src_addr, s.src_addr, 16));
    EXPECT_EQ(0, std::memcmp(d.dst_addr, s.dst_addr, 16));
    EXPECT_EQ(d.src_port, 40000);
    EXPECT_EQ(d.dst_port, 443);
    EXPECT_EQ(d.remaining_ms, s.remaining_ms);
    EXPECT_EQ(0, std::memcmp(&d.fw, &s.fw, sizeof s.fw));
    EXPECT_EQ(0, std::memcmp(&d.sp, &s.sp, sizeof s.sp));
    EXPECT_EQ(0, std::memcmp(d.dip_addr, s.dip_addr, 16));
    EXPECT_EQ(0, std::memcmp(d.snat_addr, s.snat_addr, 16));
    EXPECT_EQ(d.snat_port, s.snat_port);
    EXPECT_EQ(d.node, s.node);
  }
}

TEST(FlowSyncCodec, RejectsEveryBadField) {
  uint8_t buf[kFlowMaxSize];
  FlowSync d;
  auto bad = [&](auto mutate, FlowSyncError want) {
    FlowSync s = sample(FlowSyncOp::kFull);
    encode_flow_sync(s, buf);
    mutate(buf);
    EXPECT_EQ(decode_flow_sync(kRecordFlowFull, buf, kFlowFullSize, &d), want);
  };
  bad([](uint8_t* b) { b[0] = 2; }, FlowSyncError::kBadOp);
  bad([](uint8_t* b) { b[1] = 5; }, FlowSyncError::kBadFamily);
  bad([](uint8_t* b) { b[3] = kSyncNat | kSyncDsr; }, FlowSyncError::kBadKind);
  bad([](uint8_t* b) { b[3] = kSyncSynProxy; }, FlowSyncError::kBadKind);
  bad([](uint8_t* b) { b[3] = 0x80; }, FlowSyncError::kBadKind);
  bad([](uint8_t* b) { b[3] = kSyncEgress; }, FlowSyncError::kBadKind);
  bad([](uint8_t* b) { b[3] = kSyncNat | kSyncEgress | kSyncSynProxy; }, FlowSyncError::kBadKind);
  bad([](uint8_t* b) { b[48 + 6] = 9; }, FlowSyncError::kBadFwState);   // fw kind
  bad([](uint8_t* b) { b[48 + 7] = 77; }, FlowSyncError::kBadFwState);  // TCP state
  bad([](uint8_t* b) { b[48 + 8] = 15; }, FlowSyncError::kBadFwState);  // scale
  bad([](uint8_t* b) { b[64 + 14] = 0x80; }, FlowSyncError::kBadSynProxy);
  bad(
      [](uint8_t* b) {
        b[1] = 4;
        b[8 + 5] = 1;  // IPv4 with a byte past the 4th
      },
      FlowSyncError::kBadAddress);
  encode_flow_sync(sample(FlowSyncOp::kFull), buf);
  EXPECT_EQ(decode_flow_sync(kRecordFlowFull, buf, kFlowFullSize - 1, &d), FlowSyncError::kBadSize);
  EXPECT_EQ(decode_flow_sync(kRecordFlowUpdate, buf, kFlowFullSize, &d), FlowSyncError::kBadSize);
  EXPECT_EQ(decode_flow_sync(9, buf, kFlowFullSize, &d), FlowSyncError::kBadOp);
  EXPECT_EQ(decode_flow_sync(kRecordFlowGrant, buf, kFlowGrantSize, &d), FlowSyncError::kBadOp);
  // A refer names a node that can exist, and its reserved bytes are zero.
  FlowSync r = sample(FlowSyncOp::kRefer);
  r.node = kMaxClusterNodes + 1;
  encode_flow_sync(r, buf);
  EXPECT_EQ(decode_flow_sync(kRecordFlowRefer, buf, kFlowReferSize, &d), FlowSyncError::kBadNode);
  r.node = 1;
  encode_flow_sync(r, buf);
  buf[47] = 1;
  EXPECT_EQ(decode_flow_sync(kRecordFlowRefer, buf, kFlowReferSize, &d), FlowSyncError::kBadNode);
  buf[47] = 0;
  EXPECT_EQ(decode_flow_sync(kRecordFlowRefer, buf, kFlowReferSize, &d), FlowSyncError::kOk);
  EXPECT_EQ(d.node, 1);
}

// cookie_from() through a pipeline that may hold packets.
template <typename Run>
uint32_t cookie_from_run(Run& run, const MemoryPort& port, uint16_t cport) {
  EXPECT_EQ(run({seg({kClient, kProxyVip, cport, 443, kTcpSyn, 1000})}), 1u);
  PacketMeta m;
  const Bytes& synack = port.output().back();
  EXPECT_EQ(parse_packet(synack.data(), static_cast<uint32_t>(synack.size()), &m), ParseError::kOk);
  return m.tcp_seq;
}

// Output commit (a `sync` VIP): a packet whose flow has state not yet
// acknowledged waits for the batch that carries it, with what the stage
// appended for it; once the batch is acknowledged, it goes, and later
// packets of the flow that change nothing go at once. A stateless cookie
// SYN-ACK never waits.
class ClusterOutputCommit : public ::testing::Test {
 protected:
  ClusterOutputCommit() {
    GatewayConfig cfg = node_config(1);
    for (GatewayVipConfig& v : cfg.vips)
      v.output_commit = true;
    p.add(std::make_unique<ParseStage>());
    auto stage = std::make_unique<GatewayStage>(cfg, clock.now_ns());
    gw = stage.get();
    p.add(std::move(stage));
    p.enable_hold(64, 10 * kSec);
  }
  // Packets in; how many left at once.
  size_t run(std::vector<Bytes> in) {
    port.feed(std::move(in));
    const size_t before = port.output().size();
    p.run_to_end(port, &clock);
    return port.output().size() - before;
  }
  size_t release() {
    const size_t before = port.output().size();
    p.release_held(port, gw->commit_point(), clock.now_ns(), &stats);
    return port.output().size() - before;
  }
  // What FlowLink does: export, then close the open batch once drained.
  uint32_t export_batch(uint32_t max = 64) {
    FlowSync out[64];
    const uint32_t n = gw->export_sync(out, max, clock.now_ns());
    last_export.assign(out, out + n);
    if (gw->export_drained()) {
      CommitPoint c = gw->commit_point();
      ++c.open;
      gw->set_commit_point(c);
    }
    return n;
  }
  void ack_all() {
    CommitPoint c = gw->commit_point();
    c.committed = static_cast<uint16_t>(c.open - 1);
    gw->set_commit_point(c);
  }
  // A packet that changes its flow: held, exported (`max` records, its own
  // among them), acknowledged, released.
  void step(const Bytes& pkt, uint32_t max = 64) {
    EXPECT_EQ(run({pkt}), 0u);
    EXPECT_EQ(export_batch(max), 1u);
    ack_all();
    EXPECT_EQ(release(), 1u);
  }
  // A plain FullNAT connection from client port `cport`, up to the
  // backend's SYN-ACK, each change acknowledged; its SNAT port.
  uint16_t open_to_synack(uint16_t cport) {
    step(seg({kClient, kVip, cport, 80, kTcpSyn, 1000}));
    const uint16_t sport = ends_of(port.output().back()).sport;
    step(seg({kDip, kSnat[1], kBport, sport, kTcpSyn | kTcpAck, 5000, 1001}));
    return sport;
  }

  ManualClock clock{1000 * kSec};
  Pipeline p;
  GatewayStage* gw = nullptr;
  MemoryPort port{{}};
  RunStats stats;
  std::vector<FlowSync> last_export;
};

TEST_F(ClusterOutputCommit, PacketsWaitForTheBatchCarryingTheirState) {
  // The cookie SYN-ACK holds no state: out at once.
  auto feed = [&](std::vector<Bytes> in) { return run(std::move(in)); };
  const uint32_t cookie = cookie_from_run(feed, port, 40030);
  EXPECT_EQ(p.held(), 0u);
  // The cookie's ACK creates the flow: its backend SYN waits for batch 1.
  EXPECT_EQ(run({seg({kClient, kProxyVip, 40030, 443, kTcpAck, 1001, cookie + 1})}), 0u);
  EXPECT_EQ(p.held(), 1u);
  EXPECT_TRUE(gw->export_due());
  EXPECT_EQ(release(), 0u);
  EXPECT_EQ(export_batch(), 1u);
  EXPECT_FALSE(gw->export_due());
  EXPECT_EQ(release(), 0u) << "left before its batch was acknowledged";
  ack_all();
  ASSERT_EQ(release(), 1u);
  const uint16_t sport = ends_of(port.output().back()).sport;

  // The backend's SYN-ACK opens the proxy: the backend ACK and the client's
  // window update (both appended) wait for the next batch.
  EXPECT_EQ(run({seg({kDip, kSnat[1], kBport, sport, kTcpSyn | kTcpAck, 7000, 1001})}), 0u);
  EXPECT_EQ(p.held(), 2u);
  EXPECT_EQ(export_batch(), 1u);
  // A packet that changes nothing, while its flow's state is exported but
  // not acknowledged: it waits for that batch too (and keeps its order).
  const Bytes data =
      seg({kClient, kProxyVip, 40030, 443, kTcpAck | kTcpPsh, 1001, cookie + 1, "x"});
  EXPECT_EQ(run({data}), 0u);
  EXPECT_EQ(p.held(), 3u);
  ack_all();
  EXPECT_EQ(release(), 3u);
  // Acknowledged: the flow's next packets that change nothing go at once.
  EXPECT_EQ(run({data}), 1u);
  EXPECT_EQ(p.held(), 0u);
  EXPECT_EQ(stats.hold_expired, 0u);

  // A holder that never answers: the wait ends after max_wait (counted).
  EXPECT_EQ(run({seg({kClient, kVip, 40031, 80, kTcpSyn, 1000})}), 0u);
  EXPECT_EQ(export_batch(), 1u);
  clock.advance_ns(11 * kSec);
  EXPECT_EQ(release(), 1u);
  EXPECT_EQ(stats.hold_expired, 1u);
}

// A record exported ahead of the queue (urgent) keeps its queue entry; a
// change before the queue reaches it reuses that entry. (Each change used to
// add one: with the queue never drained, 300 flows changing twice overflowed
// its 512 entries and forced a resync of everything.)
TEST_F(ClusterOutputCommit, UrgentExportsDoNotFillTheQueue) {
  // Each flow changes state three times (SYN, SYN-ACK, ACK), every change
  // waited for and exported ahead of the queue.
  // (export_batch(1): the urgent record only.)
  std::vector<uint16_t> sports;
  for (uint16_t i = 0; i < 200; ++i) {
    step(seg({kClient, kVip, static_cast<uint16_t>(42000 + i), 80, kTcpSyn, 1000}), 1);
    sports.push_back(ends_of(port.output().back()).sport);
  }
  for (uint16_t i = 0; i < 200; ++i)
    step(seg({kDip, kSnat[1], kBport, sports[i], kTcpSyn | kTcpAck, 5000, 1001}), 1);
  for (uint16_t i = 0; i < 200; ++i)
    step(seg({kClient, kVip, static_cast<uint16_t>(42000 + i), 80, kTcpAck, 1001, 5001}), 1);
  EXPECT_EQ(gw->count(GatewayCounter::kSyncQueueOverflow), 0u);
}

// A close's packets wait for no state: the FINs' changes do not travel and
// the delete need not be held anywhere first. They still keep their order
// behind the flow's packets that wait.
TEST_F(ClusterOutputCommit, ACloseDoesNotWaitForItsDelete) {
  const uint16_t sport = open_to_synack(43000);
  // ESTABLISHED, exported, not yet acknowledged: the client's FIN waits
  // behind its ACK.
  EXPECT_EQ(run({seg({kClient, kVip, 43000, 80, kTcpAck, 1001, 5001})}), 0u);
  EXPECT_EQ(export_batch(), 1u);
  EXPECT_EQ(run({seg({kClient, kVip, 43000, 80, kTcpAck | kTcpFin, 1001, 5001})}), 0u);
  EXPECT_EQ(p.held(), 2u);
  ack_all();
  EXPECT_EQ(release(), 2u);
  // The rest of the close leaves at once; then only the delete travels.
  EXPECT_EQ(run({seg({kDip, kSnat[1], kBport, sport, kTcpAck | kTcpFin, 5001, 1002})}), 1u);
  EXPECT_EQ(export_batch(), 0u);
  EXPECT_EQ(run({seg({kClient, kVip, 43000, 80, kTcpAck, 1002, 5002})}), 1u);  // TIME_WAIT
  EXPECT_EQ(p.held(), 0u);
  EXPECT_EQ(export_batch(), 1u);
  EXPECT_EQ(last_export[0].op, FlowSyncOp::kDelete);
  // A retransmitted last ACK does not wait for that delete either.
  EXPECT_EQ(run({seg({kClient, kVip, 43000, 80, kTcpAck, 1002, 5002})}), 1u);
}

// A packet that closes a flow does not overtake the flow's packets that
// wait for its open batch (review: the RST left before the ACK).
TEST_F(ClusterOutputCommit, AClosingPacketKeepsItsPlace) {
  open_to_synack(43001);
  EXPECT_EQ(run({seg({kClient, kVip, 43001, 80, kTcpAck, 1001, 5001})}), 0u);  // ESTABLISHED
  EXPECT_EQ(run({seg({kClient, kVip, 43001, 80, kTcpRst | kTcpAck, 1001, 5001})}), 0u);  // behind
  EXPECT_EQ(p.held(), 2u);
  EXPECT_EQ(export_batch(), 1u);
  ack_all();
  const size_t before = port.output().size();
  ASSERT_EQ(release(), 2u);
  PacketMeta m;
  const Bytes& first = port.output()[before];
  ASSERT_EQ(parse_packet(first.data(), static_cast<uint32_t>(first.size()), &m), ParseError::kOk);
  EXPECT_EQ(m.tcp_flags & kTcpRst, 0) << "the RST overtook the ACK";
  const Bytes& second = port.output()[before + 1];
  ASSERT_EQ(parse_packet(second.data(), static_cast<uint32_t>(second.size()), &m), ParseError::kOk);
  EXPECT_NE(m.tcp_flags & kTcpRst, 0);
}

// Tags are 16 bits: the wait is judged within the batches not yet
// acknowledged, across the wrap.
TEST(CommitPoint, WrapsAround) {
  CommitPoint c;
  c.committed = 65534;
  c.open = 1;  // 65535 and 0 are closed, not acknowledged; 1 is open
  EXPECT_FALSE(c.waits(65534));
  EXPECT_TRUE(c.waits(65535));
  EXPECT_TRUE(c.waits(0));
  EXPECT_TRUE(c.waits(1));
  EXPECT_FALSE(c.waits(2));      // a flow exported 65535 batches ago
  EXPECT_FALSE(c.waits(30000));  // or long before
}

// A resync (a new epoch) queues every flow again: a packet then waits for
// its own record, which goes ahead of the queue, not for the whole table.
TEST_F(ClusterOutputCommit, AfterAResyncAPacketWaitsForItsOwnRecordOnly) {
  std::vector<Bytes> syns;
  for (uint16_t i = 0; i < 20; ++i)
    syns.push_back(seg({kClient, kVip, static_cast<uint16_t>(41000 + i), 80, kTcpSyn, 1000}));
  EXPECT_EQ(run(std::move(syns)), 0u);
  EXPECT_EQ(export_batch(), 20u);
  ack_all();
  ASSERT_EQ(release(), 20u);
  // The backend's SYN-ACK of the 8th connection, after a resync.
  const uint16_t sport7 = ends_of(port.output()[7]).sport;
  gw->resync();
  EXPECT_EQ(run({seg({kDip, kSnat[1], kBport, sport7, kTcpSyn | kTcpAck, 5000, 1001})}), 0u);
  EXPECT_EQ(p.held(), 1u);
  // One record out: the waited-for one, and the batch may close.
  EXPECT_EQ(export_batch(1), 1u);
  ASSERT_EQ(last_export.size(), 1u);
  EXPECT_EQ(last_export[0].src_port, 41007);
  EXPECT_TRUE(gw->export_drained()) << "the batch waits for the whole table";
  ack_all();
  EXPECT_EQ(release(), 1u);
}

}  // namespace
}  // namespace tripod
