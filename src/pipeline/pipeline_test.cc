// Packet-level tests of the pipeline over the memory port: table-driven
// expectations of verdicts and counters.
#include "pipeline/pipeline.h"

#include <gtest/gtest.h>

#include <map>
#include <string>

#include "packet/builder.h"
#include "pipeline/flow_stage.h"
#include "pipeline/parse_stage.h"

namespace tripod {
namespace {

std::map<std::string, uint64_t> counters_of(const Pipeline& p) {
  std::map<std::string, uint64_t> m;
  for (const auto& s : p.stages()) {
    s->export_counters([&](std::string_view n, uint64_t v) {
      m[std::string(s->name()) + "." + std::string(n)] = v;
    });
  }
  return m;
}

Pipeline make_pipeline(uint32_t capacity = 1024) {
  Pipeline p;
  p.add(std::make_unique<ParseStage>());
  ConnTableConfig c;
  c.capacity = capacity;
  c.huge_pages = false;
  p.add(std::make_unique<FlowStage>(c, FlowTimeouts{}, SipKey{1, 2}));
  return p;
}

Bytes tcp(const char* src, const char* dst, uint16_t sp, uint16_t dp, uint8_t flags) {
  return PacketBuilder().ipv4(src, dst).tcp(sp, dp).flags(flags).build();
}

TEST(Pipeline, TracksBothDirectionsAsOneFlowAndDropsMalformed) {
  std::vector<Bytes> in = {
      tcp("10.0.0.1", "10.0.1.1", 40000, 80, kTcpSyn),
      tcp("10.0.1.1", "10.0.0.1", 80, 40000, kTcpSyn | kTcpAck),
      tcp("10.0.0.1", "10.0.1.1", 40000, 80, kTcpAck),
      PacketBuilder().ipv6("2001:db8::1", "2001:db8::2").udp(5000, 53).payload("q").build(),
      PacketBuilder().ipv4("10.0.0.1", "10.0.1.1").ip_checksum(0x1234).udp(1, 2).build(),
      PacketBuilder().ethertype(kEtherTypeArp).payload(std::string(28, '\0')).build(),
  };
  Bytes truncated =
      PacketBuilder().ipv4("10.0.0.9", "10.0.1.1").ip_total_length(30).tcp(1, 2).syn().build();
  truncated.resize(14 + 30);
  in.push_back(truncated);

  Pipeline p = make_pipeline();
  MemoryPort port(in);
  const RunStats st = p.run_to_end(port, nullptr);
  EXPECT_EQ(st.rx, 7u);
  EXPECT_EQ(st.tx, 5u);  // 3 TCP + UDP + ARP
  EXPECT_EQ(st.dropped, 2u);
  EXPECT_EQ(port.output().size(), 5u);
  EXPECT_EQ(port.output()[0], in[0]) << "forwarded packets are unchanged";
  auto c = counters_of(p);
  EXPECT_EQ(c["parse.drop_bad_ipv4_checksum"], 1u);
  EXPECT_EQ(c["parse.drop_truncated_tcp"], 1u);
  EXPECT_EQ(c["parse.not_ip"], 1u);
  EXPECT_EQ(c["flow.flows_created"], 2u);  // the TCP flow (both ways) and the UDP flow
  EXPECT_EQ(c["flow.flows_live"], 2u);
  EXPECT_EQ(c["flow.packets"], 4u);
}

TEST(Pipeline, FlowsExpireOnTheInjectedClock) {
  Pipeline p = make_pipeline();
  auto* flow = static_cast<FlowStage*>(p.stages()[1].get());
  ManualClock clock(1'000'000'000);
  RunStats st;
  MemoryPort udp({PacketBuilder().ipv4("10.0.0.1", "10.0.1.1").udp(1000, 53).build()});
  p.run_once(udp, &clock, &st);
  MemoryPort tcp_port({tcp("10.0.0.1", "10.0.1.1", 40000, 80, kTcpSyn),
                       tcp("10.0.1.1", "10.0.0.1", 80, 40000, kTcpSyn | kTcpAck)});
  p.run_once(tcp_port, &clock, &st);
  EXPECT_EQ(flow->table().size(), 2u);
  clock.advance_ns(31'000'000'000);  // UDP one-way: 30 s
  flow->advance_to(clock.now_ns());
  EXPECT_EQ(flow->table().size(), 1u);
  clock.advance_ns(4ULL * 86400 * 1'000'000'000);  // established TCP: 5 days
  flow->advance_to(clock.now_ns());
  EXPECT_EQ(flow->table().size(), 1u);
  clock.advance_ns(1ULL * 86400 * 1'000'000'000);
  flow->advance_to(clock.now_ns());
  EXPECT_EQ(flow->table().size(), 0u);
  EXPECT_EQ(counters_of(p)["flow.flows_expired"], 2u);
}

TEST(Pipeline, FullTableDropsNewFlowsAndKeepsOldOnes) {
  Pipeline p = make_pipeline(4);
  std::vector<Bytes> in;
  for (uint16_t i = 0; i < 6; ++i)
    in.push_back(tcp("10.0.0.1", "10.0.1.1", 1000 + i, 80, kTcpSyn));
  for (uint16_t i = 0; i < 4; ++i)
    in.push_back(tcp("10.0.1.1", "10.0.0.1", 80, 1000 + i, kTcpAck));
  MemoryPort port(in);
  const RunStats st = p.run_to_end(port, nullptr);
  EXPECT_EQ(st.dropped, 2u);
  EXPECT_EQ(st.tx, 8u);
  auto c = counters_of(p);
  EXPECT_EQ(c["flow.drop_table_full"], 2u);
  EXPECT_EQ(c["flow.flows_live"], 4u);
}

// The hold queue (output commit): what waits stays in arrival order, what
// no longer waits leaves in arrival order, at most kMaxRelease per call, and
// the backstop lets go (counted) what waited too long.
TEST(HoldQueue, ReleasesInOrderCappedAndByTheBackstop) {
  std::vector<Bytes> in;
  for (uint8_t i = 0; i < 40; ++i)
    in.push_back(Bytes(64, i));
  MemoryPort port(std::move(in));
  HoldQueue q(64);
  Packet pk[40];
  ASSERT_EQ(port.rx_burst(pk, 32), 32u);
  ASSERT_EQ(port.rx_burst(pk + 32, 8), 8u);
  // Odd packets wait for batch 2, even ones for batch 1 (committed: 0).
  for (uint32_t i = 0; i < 40; ++i)
    ASSERT_TRUE(q.push(pk[i], static_cast<uint16_t>(i % 2 ? 2 : 1), 1000));
  uint64_t expired = 0;
  CommitPoint c{3, 0};
  EXPECT_EQ(q.release(c, 2000, 1'000'000, port, &expired), 0u);
  c.committed = 1;
  EXPECT_EQ(q.release(c, 2000, 1'000'000, port, &expired), 20u);
  ASSERT_EQ(port.output().size(), 20u);
  for (uint32_t i = 0; i < 20; ++i)
    EXPECT_EQ(port.output()[i][0], 2 * i);
  // The backstop: batch 2 never acknowledged.
  EXPECT_EQ(q.release(c, 1'002'000, 1'000'000, port, &expired), 20u);
  EXPECT_EQ(expired, 20u);
  ASSERT_EQ(port.output().size(), 40u);
  for (uint32_t i = 20; i < 40; ++i)
    EXPECT_EQ(port.output()[i][0], 2 * (i - 20) + 1);
  EXPECT_TRUE(q.empty());
}

// A port that only records what it transmits (the first byte of each).
class RecordingPort final : public Port {
 public:
  uint32_t rx_burst(Packet*, uint32_t) override { return 0; }
  void tx_burst(const Packet* pkts, uint32_t n) override {
    for (uint32_t i = 0; i < n; ++i)
      sent.push_back(pkts[i].data[0]);
  }
  void release(const Packet*, uint32_t) override {}
  std::vector<uint32_t> sent;
};

TEST(HoldQueue, ReleaseIsCappedAndResumesInOrder) {
  // More than kMaxRelease packets, all let go by one commit: the first call
  // sends kMaxRelease, the next the rest, in order; a later packet that
  // still waits stays.
  const uint32_t total = HoldQueue::kMaxRelease + 10;
  std::vector<uint8_t> bytes(total + 1);
  HoldQueue q(total + 1);
  for (uint32_t i = 0; i <= total; ++i) {
    bytes[i] = static_cast<uint8_t>(i);
    Packet p;
    p.data = &bytes[i];
    p.len = 1;
    ASSERT_TRUE(q.push(p, static_cast<uint16_t>(i < total ? 1 : 2), 1000));
  }
  RecordingPort port;
  uint64_t expired = 0;
  const CommitPoint c{3, 1};
  EXPECT_EQ(q.release(c, 2000, 1'000'000, port, &expired), HoldQueue::kMaxRelease);
  EXPECT_EQ(q.release(c, 2000, 1'000'000, port, &expired), 10u);
  EXPECT_EQ(q.release(c, 2000, 1'000'000, port, &expired), 0u);
  ASSERT_EQ(port.sent.size(), total);
  for (uint32_t i = 0; i < total; ++i)
    EXPECT_EQ(port.sent[i], i & 0xFF);
  EXPECT_EQ(q.size(), 1u);
  EXPECT_EQ(expired, 0u);
}

}  // namespace
}  // namespace tripod

namespace tripod {
namespace {

// Parked packets wait in order; those let go run again in their order,
// after those let go before; the rest keep waiting.
TEST(ParkQueue, LetsGoInOrderWhatIsReady) {
  ParkQueue q(4);
  Packet p[5];
  for (uint32_t i = 0; i < 5; ++i)
    p[i].len = i;
  EXPECT_TRUE(q.push(p[0], 1));
  EXPECT_TRUE(q.push(p[1], 2));
  EXPECT_TRUE(q.push(p[2], 1));
  EXPECT_TRUE(q.push(p[3], 2));
  EXPECT_FALSE(q.push(p[4], 1));  // full
  q.unpark([](uint16_t t) { return t == 1; });
  EXPECT_EQ(q.to_run(), 2u);
  EXPECT_EQ(q.size(), 4u);
  Packet out[4];
  ASSERT_EQ(q.take(out, 1), 1u);
  EXPECT_EQ(out[0].len, 0u);
  q.unpark([](uint16_t t) { return t == 2; });
  ASSERT_EQ(q.take(out, 4), 3u);
  EXPECT_EQ(out[0].len, 2u);  // let go earlier: first
  EXPECT_EQ(out[1].len, 1u);
  EXPECT_EQ(out[2].len, 3u);
  EXPECT_EQ(q.size(), 0u);
  EXPECT_TRUE(q.push(p[4], 1));
}

}  // namespace
}  // namespace tripod
