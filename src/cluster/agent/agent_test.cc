// Three agents on loopback, each with a gateway stage that the test thread
// drives as a worker would: membership converges, a flow opened on one node
// reaches its holder, and when that node's agent stops, the survivors see it
// die and the holder continues the flow.
#include "cluster/agent/agent.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <memory>
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

  explicit Node(uint16_t node_id, uint64_t dead_after_ns = 50'000'000,
                uint32_t max_connections = 256, bool output_commit = false,
                uint32_t pull_timeout_ms = 0, uint32_t rise = 3)
      : id(node_id), link(1u << 16, 1'000'000, output_commit) {
    GatewayConfig c;
    c.firewall.acl = parse_rules("default allow");
    Backend be;
    be.addr = IpAddress::parse(kDip);
    be.port = 8080;
    GatewayVipConfig v;
    v.key = VipKey{IpAddress::parse(kVip), kProtoTcp, 80};
    v.pool.backends = {be};
    v.output_commit = output_commit;
    c.vips.push_back(v);
    c.snat.addresses = {snat(kSnat[id])};
    c.snat.port_lo = 5000;
    c.max_connections = max_connections;
    c.huge_pages = false;
    c.cluster.node_id = id;
    c.cluster.slot_key = SipKey{11, 12};
    c.cluster.snat_addresses = {snat(kSnat[1]), snat(kSnat[2]), snat(kSnat[3])};
    c.cluster.pull_timeout_ms = pull_timeout_ms;
    pipeline.add(std::make_unique<ParseStage>());
    auto g = std::make_unique<GatewayStage>(c, clock.now_ns());
    gw = g.get();
    pipeline.add(std::move(g));
    if (output_commit) pipeline.enable_hold(64, 60'000'000'000);
    if (pull_timeout_ms != 0) pipeline.enable_park(64);

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
    ac.dead_after_ns = dead_after_ns;
    ac.rise = rise;
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
    gw->advance_to(clock.now_ns());
    if (gw->pull_news() != pull_news) {  // as the worker's loop: parked packets run again
      pull_news = gw->pull_news();
      pipeline.unpark([this](uint16_t tag) { return gw->pull_ready(tag); });
      pipeline.run_to_end(held_port, &clock);
    }
  }
  uint64_t counter(std::string_view name) const {
    uint64_t v = 0;
    gw->export_counters([&](std::string_view n, uint64_t x) {
      if (n == name) v = x;
    });
    return v;
  }
  std::vector<Bytes> send(std::vector<Bytes> in) {
    MemoryPort port(std::move(in));
    pipeline.run_to_end(port, &clock);
    return port.output();
  }
  // Output commit: packets through a port that outlives the held ones;
  // returns what left at once.
  size_t send_held(std::vector<Bytes> in) {
    const size_t before = held_port.output().size();
    held_port.feed(std::move(in));
    pipeline.run_to_end(held_port, &clock);
    return held_port.output().size() - before;
  }
  // What the holders' acks let go since.
  size_t release() {
    const size_t before = held_port.output().size();
    pipeline.release_held(held_port, gw->commit_point(), clock.now_ns(), &stats);
    return held_port.output().size() - before;
  }
  MemoryPort held_port{{}};
  RunStats stats;
  uint64_t pull_news = 0;
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

// Starts the nodes' agents; true once each sees all three live, agent and
// worker alike.
bool start_all(const std::vector<Node*>& all) {
  for (Node* n : all)
    n->agent->start();
  return until(all, [&] {
    for (Node* n : all)
      if (n->agent->live_set() != 0b111 || n->view.live != 0b111) return false;
    return true;
  });
}

// A FullNAT connection opened through node 1 (SYN, SYN-ACK, ACK): its
// SNAT port, 0 if a step failed.
uint16_t open_on_node1(Node& n1) {
  const auto syn = n1.send({seg(kClient, kVip, 40000, 80, kTcpSyn, 1000, 0)});
  PacketMeta m;
  if (syn.size() != 1 ||
      parse_packet(syn[0].data(), static_cast<uint32_t>(syn[0].size()), &m) != ParseError::kOk)
    return 0;
  if (n1.send({seg(kDip, kSnat[1], 8080, m.sport, kTcpSyn | kTcpAck, 5000, 1001)}).size() != 1 ||
      n1.send({seg(kClient, kVip, 40000, 80, kTcpAck, 1001, 5001)}).size() != 1)
    return 0;
  return m.sport;
}

// Once node 1's flow has its one copy (replicas: 1) on node 2 or 3: the
// node that holds it (nullptr: it never came). `all` is nodes 1, 2, 3.
Node* holder_of_node1s_flow(const std::vector<Node*>& all) {
  Node& n2 = *all[1];
  Node& n3 = *all[2];
  if (!until(all, [&] { return n2.gw->standby_connections() + n3.gw->standby_connections() == 1; }))
    return nullptr;
  return n2.gw->standby_connections() == 1 ? &n2 : &n3;
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
  PacketMeta m;
  const uint16_t port = open_on_node1(n1);
  ASSERT_NE(port, 0);

  // Its copy reaches exactly one other node (replicas: 1), the slot's holder.
  Node* const holder_p = holder_of_node1s_flow(all);
  ASSERT_NE(holder_p, nullptr) << "the flow was not replicated";
  Node& holder = *holder_p;
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
  // Believed once it has lasted dead_after (until then copies wait).
  ASSERT_TRUE(until({&n2, &n3}, [&] { return n2.view.suspect == 0 && n3.view.suspect == 0; }));
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

// Pulling through real agents: node 1 dies, and the router sends its flow
// to the survivor that is not the flow's holder. That node parks the packet,
// asks the holder, gets the flow, and processes it from then on; the holder
// hands it what still comes its way.
TEST(ClusterAgent, AMissPullsTheFlowFromItsHolder) {
  Node n1(1, 50'000'000, 256, false, 1000), n2(2, 50'000'000, 256, false, 1000),
      n3(3, 50'000'000, 256, false, 1000);
  std::vector<Node*> all{&n1, &n2, &n3};
  ASSERT_TRUE(start_all(all)) << "membership did not converge";
  ASSERT_TRUE(until(all, [&] {
    return n1.view.mac[2][5] == 2 && n1.view.mac[3][5] == 3 && n2.view.mac[3][5] == 3 &&
           n3.view.mac[2][5] == 2;
  }));
  PacketMeta m;
  const uint16_t port = open_on_node1(n1);
  ASSERT_NE(port, 0);
  Node* const holder_p = holder_of_node1s_flow(all);
  ASSERT_NE(holder_p, nullptr) << "the flow was not replicated";
  Node& holder = *holder_p;
  Node& other = &holder == &n2 ? n3 : n2;

  n1.agent->stop();
  ASSERT_TRUE(until({&n2, &n3}, [&] { return n2.view.live == 0b110 && n3.view.live == 0b110; }))
      << "node 1's death was not detected";
  // Believed once it has lasted dead_after (until then copies wait).
  ASSERT_TRUE(until({&n2, &n3}, [&] { return n2.view.suspect == 0 && n3.view.suspect == 0; }));
  const Bytes data = seg(kClient, kVip, 40000, 80, kTcpAck, 1001, 5001);
  EXPECT_EQ(other.send_held({data}), 0u);  // parked
  ASSERT_TRUE(until({&n2, &n3}, [&] { return other.held_port.output().size() == 1; }))
      << "the parked packet never left";
  const Bytes& out = other.held_port.output()[0];
  ASSERT_EQ(parse_packet(out.data(), static_cast<uint32_t>(out.size()), &m), ParseError::kOk);
  EXPECT_EQ(IpAddress::from_bytes(Family::kIpv4, out.data() + m.dst_off).to_string(), kDip);
  EXPECT_EQ(m.sport, port);  // node 1's translation, kept
  EXPECT_EQ(other.counter("sync_pull_granted"), 1u);
  EXPECT_EQ(holder.counter("sync_pull_given"), 1u);
  EXPECT_EQ(other.counter("sync_miss_redirected"), 0u);
  EXPECT_EQ(other.counter("conns_live"), 1u);
  // The holder's copy follows the new processor.
  const auto at_holder = holder.send({seg(kDip, kSnat[1], 8080, port, kTcpAck, 5001, 1001)});
  ASSERT_EQ(at_holder.size(), 1u);
  EXPECT_EQ(0, std::memcmp(at_holder[0].data(), other.view.mac[other.id], 6));
  n2.agent->stop();
  n3.agent->stop();
}

uint64_t counter(const Agent& a, std::string_view name) {
  uint64_t v = 0;
  a.export_counters([&](std::string_view n, uint64_t x) {
    if (n == name) v = x;
  });
  return v;
}

// Output commit through real agents: node 1's packet leaves only once the
// flow's holder has acknowledged the record (the holder's agent had it by
// then); while the holder is silent, it waits, until the holder is declared
// dead (there is no one left to wait for).
TEST(ClusterAgent, SyncPacketsLeaveOnceTheHolderHasTheState) {
  constexpr uint64_t kDeadAfter = 1'500'000'000;  // a silence long enough to see the wait
  Node n1(1, kDeadAfter, 256, true), n2(2, kDeadAfter, 256, true), n3(3, kDeadAfter, 256, true);
  std::vector<Node*> all{&n1, &n2, &n3};
  ASSERT_TRUE(start_all(all)) << "membership did not converge";

  EXPECT_EQ(n1.send_held({seg(kClient, kVip, 40000, 80, kTcpSyn, 1000, 0)}), 0u);
  size_t out = 0;
  uint64_t holder_had_it = 0;
  ASSERT_TRUE(until(all, [&] {
    // (Read before the release: what the holders had when it left.)
    const uint64_t had =
        counter(*n2.agent, "records_received") + counter(*n3.agent, "records_received");
    out += n1.release();
    holder_had_it = had;
    return out > 0;
  })) << "the SYN never left";
  EXPECT_EQ(out, 1u);
  EXPECT_GT(holder_had_it, 0u) << "left before any holder had the record";
  EXPECT_EQ(n1.stats.hold_expired, 0u);

  // Silent holders: the next flow's SYN waits for them while they count as
  // live, and goes once they are declared dead.
  n2.agent->stop();
  n3.agent->stop();
  EXPECT_EQ(n1.send_held({seg(kClient, kVip, 40001, 80, kTcpSyn, 1000, 0)}), 0u);
  const auto t0 = std::chrono::steady_clock::now();
  out = 0;
  ASSERT_TRUE(until({&n1}, [&] {
    out += n1.release();
    return out > 0;
  })) << "the SYN was never released";
  // Its one holder (replicas: 1): the first of its slot's that is not node 1.
  RingConfig rc;
  rc.key = SipKey{13, 14};
  rc.members = 0b111;
  const FlowKey key = make_flow_key(Family::kIpv4, kProtoTcp, IpAddress::parse(kClient).bytes,
                                    IpAddress::parse(kVip).bytes, 40001, 80, false);
  NodeId holder = kNoNode;
  const SlotTable table = Ring(rc).build(0b111);  // (kept: holders() is a view into it)
  for (NodeId h : table.holders(n1.gw->slot_of(key)))
    if (h != 1 && holder == kNoNode) holder = h;
  if (contains(n1.agent->live_set(), holder)) {
    ADD_FAILURE() << "left while its holder (node " << holder << ") still counted as live, after "
                  << std::chrono::duration_cast<std::chrono::milliseconds>(
                         std::chrono::steady_clock::now() - t0)
                         .count()
                  << " ms";
  }
  EXPECT_EQ(n1.stats.hold_expired, 0u);  // released by the deaths, not the backstop
  n1.agent->stop();
}

// A holder stops acking (it hangs, then is declared dead) while its window is
// full: the records still waiting for it must not hold back everyone else's.
// Once it is dead they are dropped (records_dead_holder), and every flow
// reaches the surviving holder (the new epoch sends them all again there).
TEST(ClusterAgent, RecordsForADeadHolderDoNotHoldBackTheOthers) {
  constexpr uint64_t kDeadAfter = 1'000'000'000;  // time to fill the window first
  Node n1(1, kDeadAfter, 8192), n2(2, kDeadAfter, 8192), n3(3, kDeadAfter, 8192);
  std::vector<Node*> all{&n1, &n2, &n3};
  ASSERT_TRUE(start_all(all)) << "membership did not converge";
  n3.agent->stop();  // silent from now on: no acks, no heartbeats
  // Enough flows that node 3's share fills its window (64 datagrams).
  std::vector<Bytes> syns;
  for (uint32_t i = 0; i < 3000; ++i)
    syns.push_back(seg(kClient, kVip, static_cast<uint16_t>(20000 + i), 80, kTcpSyn, 1000, 0));
  ASSERT_EQ(n1.send(std::move(syns)).size(), 3000u);
  ASSERT_TRUE(until({&n1, &n2}, [&] {
    return counter(*n1.agent, "peer3_wire_peer_backpressure") > 0;
  })) << "node 3's window never filled";
  ASSERT_TRUE(until({&n1, &n2}, [&] { return n1.view.live == 0b011 && n2.view.live == 0b011; }))
      << "node 3's death was not detected";
  ASSERT_TRUE(until({&n1, &n2}, [&] { return n2.gw->standby_connections() == 3000; }))
      << "node 2 holds " << n2.gw->standby_connections() << " of 3000 flows";
  EXPECT_GT(counter(*n1.agent, "records_dead_holder"), 0u);
  n1.agent->stop();
  n2.agent->stop();
}

// A configured node that is down (its address answers nothing) gets a probe
// every probe_interval, not a heartbeat every interval: a dead peer's
// unresolved address holds what is sent to it in the kernel's neighbour
// queue, charged to the agent's one socket, and at full rate that starved
// the heartbeats to the live peers (a false death in the lab). When the node
// comes up, the cluster forms at once.
TEST(ClusterAgent, SilentPeerGetsProbesAndJoinsWhenItSpeaks) {
  auto n1 = std::make_unique<Node>(1);
  auto n2 = std::make_unique<Node>(2);
  // Node 3's address, held by the test: it counts what arrives.
  const int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
  ASSERT_GE(fd, 0);
  socklen_t len = 0;
  const sockaddr_storage a3 = loopback(static_cast<uint16_t>(port_base() + 3), &len);
  ASSERT_EQ(::bind(fd, reinterpret_cast<const sockaddr*>(&a3), len), 0);
  n1->agent->start();
  n2->agent->start();
  ASSERT_TRUE(until({n1.get(), n2.get()}, [&] {
    return n1->agent->live_set() == 0b011 && n2->agent->live_set() == 0b011;
  })) << "nodes 1 and 2 did not see each other";

  uint8_t buf[2048];
  while (::recv(fd, buf, sizeof buf, 0) > 0) {
    // What came before nodes 1 and 2 heard of each other.
  }
  int got = 0;
  const auto t0 = std::chrono::steady_clock::now();
  auto elapsed_ms = [&] {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                                 t0)
        .count();
  };
  while (elapsed_ms() < 500 || got < 2) {
    ASSERT_LT(elapsed_ms(), 10'000) << "no probe reached the silent node";
    while (::recv(fd, buf, sizeof buf, 0) > 0)
      ++got;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  const long long ms = elapsed_ms();
  // Two senders; at the 5 ms heartbeat interval this would be 2 * ms / 5.
  EXPECT_LE(got, 2 * (ms / 100 + 2)) << "in " << ms << " ms";
  uint64_t probes = 0;
  n1->agent->export_counters([&](std::string_view n, uint64_t v) {
    if (n == "heartbeat_probes") probes = v;
  });
  EXPECT_GT(probes, 0u);
  ::close(fd);

  // Node 3 starts: its heartbeats are answered at once, at full rate.
  auto n3 = std::make_unique<Node>(3);
  n3->agent->start();
  ASSERT_TRUE(until({n1.get(), n2.get(), n3.get()}, [&] {
    return n1->agent->live_set() == 0b111 && n2->agent->live_set() == 0b111 &&
           n3->agent->live_set() == 0b111;
  })) << "node 3 did not join";
  n1->agent->stop();
  n2->agent->stop();
  n3->agent->stop();
}

// A node that restarts takes in its copies before it says it is ready (and
// the router would send it traffic): when its agent first says so, every
// flow it holds is here, and until then the others saw it as joining (their
// misses went to the flows' previous holders). `quick`: it is back before
// the others declared it dead, and with rise 1 its old self goes down and
// its new self comes up within one heartbeat (the same set of nodes runs:
// the ring must still start over).
void restart_node3_under_flows(bool quick) {
  constexpr uint32_t kFlows = 1500;
  const uint64_t dead_after = quick ? 500'000'000 : 50'000'000;
  const uint32_t rise = quick ? 1 : 3;
  auto node = [&](uint16_t id) {
    return std::make_unique<Node>(id, dead_after, 4096, false, 0, rise);
  };
  auto n1 = node(1), n2 = node(2), n3 = node(3);
  ASSERT_TRUE(start_all({n1.get(), n2.get(), n3.get()})) << "membership did not converge";
  EXPECT_TRUE(n1->agent->ready());
  std::vector<Bytes> syns;
  for (uint32_t i = 0; i < kFlows; ++i)
    syns.push_back(seg(kClient, kVip, static_cast<uint16_t>(20000 + i), 80, kTcpSyn, 1000, 0));
  ASSERT_EQ(n1->send(std::move(syns)).size(), kFlows);
  ASSERT_TRUE(until({n1.get(), n2.get(), n3.get()}, [&] {
    return n2->gw->standby_connections() + n3->gw->standby_connections() == kFlows;
  }));

  n3.reset();    // its agent stops
  if (!quick) {  // node 3 dies, and node 2 holds every flow
    ASSERT_TRUE(until({n1.get(), n2.get()}, [&] {
      return n1->view.live == 0b011 && n2->view.live == 0b011 &&
             n2->gw->standby_connections() == kFlows;
    }));
  }
  n3 = node(3);  // a new incarnation, empty
  n3->agent->start();
  // Node 1's worker stands still for a while (its agent goes on): its flows
  // cannot reach node 3, which must not say it is ready meanwhile.
  const auto still =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(quick ? 800 : 300);
  while (std::chrono::steady_clock::now() < still) {
    n2->work();
    n3->work();
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  EXPECT_FALSE(n3->agent->ready()) << "ready without node 1's flows";
  EXPECT_EQ(n3->gw->standby_connections(), 0u);
  bool seen_joining = false;
  ASSERT_TRUE(until({n1.get(), n2.get(), n3.get()}, [&] {
    seen_joining |= n1->view.joining == 0b100 && n1->view.live == 0b111;
    return n3->agent->ready();
  })) << "node 3 never became ready";
  // What its agent had when it said so: into the worker.
  for (int i = 0; i < 8; ++i)
    n3->work();
  const uint32_t at_ready = n3->gw->standby_connections();
  ASSERT_TRUE(until({n1.get(), n2.get(), n3.get()}, [&] {
    for (Node* n : {n1.get(), n2.get(), n3.get()})
      if (n->view.live != 0b111 || n->view.joining != 0) return false;
    return true;
  }));
  for (int i = 0; i < 100; ++i) {  // anything still on its way
    for (Node* n : {n1.get(), n2.get(), n3.get()})
      n->work();
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  const uint32_t settled = n3->gw->standby_connections();
  EXPECT_GT(settled, 0u);
  EXPECT_EQ(at_ready, settled) << "node 3 said it was ready before its copies came";
  EXPECT_TRUE(seen_joining) << "node 1 never saw node 3 joining";
  EXPECT_GE(counter(*n3->agent, "synced_received"), 2u);
  EXPECT_EQ(counter(*n3->agent, "join_timeouts"), 0u);
  n1->agent->stop();
  n2->agent->stop();
  n3->agent->stop();
}

TEST(ClusterAgent, ARestartedNodeIsReadyOnlyOnceItHoldsItsCopies) {
  restart_node3_under_flows(false);
}

TEST(ClusterAgent, ANodeBackBeforeItsDeathWasSeenJoinsToo) {
  restart_node3_under_flows(true);
}

}  // namespace
}  // namespace tripod::cluster
