// Three agents on loopback, each with a gateway stage that the test thread
// drives as a worker would: membership converges, a flow opened on one node
// reaches its holder, and when that node's agent stops, the survivors see it
// die and the holder continues the flow.
#include "cluster/agent/agent.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <thread>

#include "common/clock.h"
#include "packet/builder.h"
#include "packet/parser.h"
#include "pipeline/parse_stage.h"
#include "pipeline/pipeline.h"

namespace tripod::cluster {
namespace {

constexpr const char* kClient = "198.51.100.7";
constexpr const char* kVip = "192.0.2.10";
constexpr const char* kDip = "10.1.0.1";
constexpr const char* kSnat[4] = {"", "10.0.0.101", "10.0.0.102", "10.0.0.103"};

SnatAddress snat(const char* ip) {
  SnatAddress a;
  a.family = Family::kIpv4;
  std::memcpy(a.addr, IpAddress::parse(ip).bytes, 4);
  return a;
}

sockaddr_storage loopback(uint16_t port, socklen_t* len) {
  sockaddr_storage ss{};
  auto* sin = reinterpret_cast<sockaddr_in*>(&ss);
  sin->sin_family = AF_INET;
  sin->sin_port = htons(port);
  sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  *len = sizeof(sockaddr_in);
  return ss;
}

// A port base per test process, so parallel ctest runs do not collide.
uint16_t port_base() {
  return static_cast<uint16_t>(20000 + (::getpid() % 2000) * 8);
}

Bytes seg(const char* src, const char* dst, uint16_t sp, uint16_t dp, uint8_t flags, uint32_t seq,
          uint32_t ack) {
  PacketBuilder b;
  b.ipv4(src, dst).dont_fragment().tcp(sp, dp).flags(flags).seq(seq);
  if (flags & kTcpAck) b.ack_seq(ack);
  b.window(65535);
  return b.build();
}

struct Node {
  uint16_t id;
  ManualClock clock{1000ull * 1'000'000'000};
  Pipeline pipeline;
  GatewayStage* gw = nullptr;
  FlowLink link;
  std::unique_ptr<Agent> agent;
  ClusterView view;  // the worker's, copied after each round (for the checks)

  explicit Node(uint16_t node_id) : id(node_id) {
    GatewayConfig c;
    c.firewall.acl = parse_rules("default allow");
    Backend be;
    be.addr = IpAddress::parse(kDip);
    be.port = 8080;
    GatewayVipConfig v;
    v.key = VipKey{IpAddress::parse(kVip), kProtoTcp, 80};
    v.pool.backends = {be};
    c.vips.push_back(v);
    c.snat.addresses = {snat(kSnat[id])};
    c.snat.port_lo = 5000;
    c.max_connections = 256;
    c.huge_pages = false;
    c.cluster.node_id = id;
    c.cluster.slot_key = SipKey{11, 12};
    c.cluster.snat_addresses = {snat(kSnat[1]), snat(kSnat[2]), snat(kSnat[3])};
    pipeline.add(std::make_unique<ParseStage>());
    auto g = std::make_unique<GatewayStage>(c, clock.now_ns());
    gw = g.get();
    pipeline.add(std::move(g));

    AgentConfig ac;
    ac.self = id;
    ac.cluster_id = 7;
    ac.key.fill(0x42);
    ac.bind = loopback(static_cast<uint16_t>(port_base() + id), &ac.bind_len);
    for (uint16_t p = 1; p <= 3; ++p) {
      if (p == id) continue;
      AgentPeer peer;
      peer.id = p;
      peer.addr = loopback(static_cast<uint16_t>(port_base() + p), &peer.addr_len);
      ac.peers.push_back(peer);
    }
    ac.heartbeat_interval_ns = 5'000'000;
    ac.dead_after_ns = 50'000'000;
    ac.slot_key = SipKey{11, 12};
    ac.ring_key = SipKey{13, 14};
    const uint8_t mac[6] = {2, 0, 0, 0, 0xa, static_cast<uint8_t>(id)};  // not the builder's
    std::memcpy(ac.data_mac, mac, 6);
    agent = std::make_unique<Agent>(ac, std::vector<FlowLink*>{&link}, nullptr);
  }

  // One round of the worker's between-bursts work (views, records).
  void work() {
    clock.advance_ns(2'000'000);
    link.worker_poll(*gw, clock.now_ns());
    view = link.view();
  }
  std::vector<Bytes> send(std::vector<Bytes> in) {
    MemoryPort port(std::move(in));
    pipeline.run_to_end(port, &clock);
    return port.output();
  }
};

// Runs every node's worker work until `done` or 10 s (a generous bound: the
// test asserts what happens, not how fast).
template <typename Fn>
bool until(std::vector<Node*> nodes, Fn done) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (std::chrono::steady_clock::now() < end) {
    for (Node* n : nodes)
      n->work();
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return false;
}

TEST(ClusterAgent, ReplicatesAndFailsOver) {
  Node n1(1), n2(2), n3(3);
  std::vector<Node*> all{&n1, &n2, &n3};
  for (Node* n : all)
    n->agent->start();
  ASSERT_TRUE(until(all, [&] {
    for (Node* n : all)
      if (n->agent->live_set() != 0b111 || n->view.live != 0b111 || n->view.mac[1][5] != 1 ||
          n->view.mac[2][5] != 2 || n->view.mac[3][5] != 3)
        return false;
    return true;
  })) << "membership did not converge";

  // A connection through node 1.
  const auto syn = n1.send({seg(kClient, kVip, 40000, 80, kTcpSyn, 1000, 0)});
  ASSERT_EQ(syn.size(), 1u);
  PacketMeta m;
  ASSERT_EQ(parse_packet(syn[0].data(), static_cast<uint32_t>(syn[0].size()), &m), ParseError::kOk);
  const uint16_t port = m.sport;
  ASSERT_EQ(n1.send({seg(kDip, kSnat[1], 8080, port, kTcpSyn | kTcpAck, 5000, 1001)}).size(), 1u);
  ASSERT_EQ(n1.send({seg(kClient, kVip, 40000, 80, kTcpAck, 1001, 5001)}).size(), 1u);

  // Its copy reaches exactly one other node (replicas: 1), the slot's holder.
  ASSERT_TRUE(until(all, [&] {
    return n2.gw->standby_connections() + n3.gw->standby_connections() == 1;
  })) << "the flow was not replicated";
  Node& holder = n2.gw->standby_connections() == 1 ? n2 : n3;
  Node& other = &holder == &n2 ? n3 : n2;
  EXPECT_EQ(n1.gw->standby_connections(), 0u);

  // While node 1 lives, the holder hands the flow's packets to it.
  const Bytes data = seg(kClient, kVip, 40000, 80, kTcpAck, 1001, 5001);
  auto out = holder.send({data});
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(0, std::memcmp(out[0].data(), n1.view.mac[1], 6));  // destination MAC: node 1's

  // Node 1 dies: both survivors see it, the holder promotes the flow.
  const auto t0 = std::chrono::steady_clock::now();
  n1.agent->stop();
  ASSERT_TRUE(until({&n2, &n3}, [&] { return n2.view.live == 0b110 && n3.view.live == 0b110; }))
      << "node 1's death was not detected";
  const auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0)
          .count();
  std::printf("detected node 1's death after %lld ms (dead_after 50 ms)\n",
              static_cast<long long>(ms));
  out = holder.send({data});
  ASSERT_EQ(out.size(), 1u);
  ASSERT_EQ(parse_packet(out[0].data(), static_cast<uint32_t>(out[0].size()), &m), ParseError::kOk);
  EXPECT_EQ(IpAddress::from_bytes(Family::kIpv4, out[0].data() + m.dst_off).to_string(), kDip);
  EXPECT_EQ(m.sport, port);  // node 1's SNAT port, kept
  uint64_t promoted = 0;
  holder.gw->export_counters([&](std::string_view n, uint64_t v) {
    if (n == "sync_promoted") promoted = v;
  });
  EXPECT_EQ(promoted, 1u);
  // The reply, to node 1's SNAT address, at the other survivor: to the
  // holder now processing the flow (a holder of its slot in the new ring)
  // or, if that one is the other survivor itself, processed there.
  const auto back = other.send({seg(kDip, kSnat[1], 8080, port, kTcpAck, 5001, 1001)});
  ASSERT_EQ(back.size(), 1u);
  n2.agent->stop();
  n3.agent->stop();
}

}  // namespace
}  // namespace tripod::cluster
