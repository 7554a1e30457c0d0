#include "cluster/wire/channel.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <initializer_list>
#include <map>
#include <memory>
#include <new>
#include <stdexcept>
#include <vector>

#include "cluster/wire/test_util.h"
#include "common/random.h"

// Counts heap allocations while enabled: the channel must not allocate after
// construction.
namespace {
std::atomic<bool> g_count_allocs{false};
std::atomic<size_t> g_allocs{0};
}  // namespace

// GCC pairs the inlined malloc with a free it cannot see through
// (mismatched-new-delete); the pair here is malloc/free on both sides.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif
void* operator new(size_t n) {
  if (g_count_allocs.load(std::memory_order_relaxed)) g_allocs.fetch_add(1);
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept {
  std::free(p);
}
void operator delete(void* p, size_t) noexcept {
  std::free(p);
}

namespace tripod::cluster::wire {
namespace {

using namespace testing;
using Bytes = std::vector<uint8_t>;

Bytes flow_body(uint64_t id) {
  Bytes b(kFlowRecordSize, 0xAB);
  store_be<uint64_t>(b.data(), id);
  return b;
}

class RecordingSink : public ChannelSink {
 public:
  void transmit(std::span<const uint8_t> d) override { sent.emplace_back(d.begin(), d.end()); }
  void deliver(uint64_t seq, const Record& r) override {
    Bytes b(r.body.begin(), r.body.end());
    b.insert(b.begin(), r.type);
    delivered.push_back({seq, std::move(b)});
    if (echo != nullptr) {  // answers each record from inside deliver()
      echo_results.push_back(echo->push(kFlowRecord, flow_body(1000 + seq), 0));
      echo->flush(0);
    }
  }
  void heartbeat(const Header& h, const Heartbeat& hb) override {
    (void)h;
    heartbeats.push_back(hb);
  }
  void peer_restarted(uint32_t old_session) override { restarts.push_back(old_session); }

  std::vector<Bytes> sent;
  std::vector<std::pair<uint64_t, Bytes>> delivered;
  std::vector<Heartbeat> heartbeats;
  std::vector<uint32_t> restarts;
  Channel* echo = nullptr;
  std::vector<PushResult> echo_results;
};

ChannelConfig config(uint16_t peer, uint64_t inc = 1) {
  ChannelConfig c;
  c.peer = peer;
  c.incarnation = inc;
  return c;
}

// One end: node `self` with a channel to `peer`.
struct Node {
  Node(uint16_t self, uint16_t peer, uint64_t inc = 1, ChannelConfig cfg = {})
      : codec(codec_config(self), test_records()) {
    cfg.peer = peer;
    cfg.incarnation = inc;
    ch = std::make_unique<Channel>(codec, cfg, &sink);
  }
  // Offers every datagram `from` sent to this node; returns how many opened.
  int take(Node& from, uint64_t now) {
    int ok = 0;
    for (const Bytes& d : from.sink.sent) {
      Datagram dg;
      if (codec.open(d.data(), d.size(), &dg) == WireDrop::kOk) {
        ch->receive(dg, now);
        ++ok;
      }
    }
    from.sink.sent.clear();
    return ok;
  }
  uint64_t count(ChannelCounter c) const { return ch->counters().get(c); }
  // One flow record in a datagram of its own, sealed and sent.
  void send_record(uint64_t id, uint64_t now) {
    ch->push(kFlowRecord, flow_body(id), now);
    ch->flush(now);
  }

  Codec codec;
  RecordingSink sink;
  std::unique_ptr<Channel> ch;
};

// Heartbeats both ways so that each side knows the other's incarnation.
void introduce(Node& a, Node& b, uint64_t now) {
  a.ch->send_heartbeat({}, now);
  b.take(a, now);
  b.ch->send_heartbeat({}, now);
  a.take(b, now);
}

TEST(WireChannel, RejectsBadConfig) {
  Codec c(codec_config(1), test_records());
  RecordingSink s;
  auto make = [&](ChannelConfig cfg) { Channel ch(c, cfg, &s); };
  ChannelConfig ok = config(2);
  EXPECT_NO_THROW(make(ok));
  auto bad = ok;
  bad.window = 0;
  EXPECT_THROW(make(bad), std::invalid_argument);
  bad.window = 65;
  EXPECT_THROW(make(bad), std::invalid_argument);
  bad = ok;
  bad.incarnation = 0;
  EXPECT_THROW(make(bad), std::invalid_argument);
  bad = ok;
  bad.rto_max_ns = bad.rto_ns - 1;
  EXPECT_THROW(make(bad), std::invalid_argument);
  bad = ok;
  bad.peer = 1;
  EXPECT_THROW(make(bad), std::invalid_argument);
  EXPECT_THROW(Channel(c, ok, nullptr), std::invalid_argument);
}

TEST(WireChannel, DeliversAndAcks) {
  Node a(1, 2), b(2, 1);
  uint64_t now = 1'000'000;
  introduce(a, b, now);
  EXPECT_EQ(a.ch->peer_incarnation(), 1u);
  EXPECT_EQ(b.sink.heartbeats.size(), 1u);
  EXPECT_EQ(b.sink.heartbeats[0].hb_seq, 1u);

  const PushResult r1 = a.ch->push(kFlowRecord, flow_body(1), now);
  const PushResult r2 = a.ch->push(kSmallRecord, Bytes(kSmallRecordSize, 2), now);
  ASSERT_EQ(r1.status, PushStatus::kOk);
  EXPECT_EQ(r1.seq, 1u);
  EXPECT_EQ(r2.seq, 1u);             // batched into the same datagram
  EXPECT_TRUE(a.sink.sent.empty());  // waits for flush()
  a.ch->flush(now);
  ASSERT_EQ(a.sink.sent.size(), 1u);
  EXPECT_EQ(a.ch->acked_through(), 0u);
  EXPECT_EQ(b.take(a, now), 1);
  ASSERT_EQ(b.sink.delivered.size(), 2u);
  EXPECT_EQ(b.sink.delivered[0].first, 1u);
  EXPECT_EQ(b.sink.delivered[0].second[0], kFlowRecord);
  EXPECT_EQ(b.sink.delivered[1].second.size(), 1u + kSmallRecordSize);

  // No traffic back: a standalone ACK after the ack delay.
  EXPECT_EQ(b.ch->next_deadline(), now + b.ch->config().ack_delay_ns);
  b.ch->poll(now + 1);
  EXPECT_TRUE(b.sink.sent.empty());
  now += b.ch->config().ack_delay_ns;
  b.ch->poll(now);
  ASSERT_EQ(b.sink.sent.size(), 1u);
  EXPECT_EQ(b.count(ChannelCounter::kAcksSent), 1u);
  a.take(b, now);
  EXPECT_EQ(a.ch->acked_through(), 1u);
  EXPECT_EQ(a.ch->next_deadline(), UINT64_MAX);
}

TEST(WireChannel, AcksRideOnOutgoingData) {
  Node a(1, 2), b(2, 1);
  uint64_t now = 0;
  introduce(a, b, now);
  a.send_record(1, now);
  b.take(a, now);
  b.ch->push(kFlowRecord, flow_body(2), now);
  b.ch->flush(now);  // carries the ack of a's seq 1
  b.ch->poll(now + 10 * b.ch->config().ack_delay_ns);
  EXPECT_EQ(b.count(ChannelCounter::kAcksSent), 0u);
  a.take(b, now);
  EXPECT_EQ(a.ch->acked_through(), 1u);
  EXPECT_EQ(a.sink.delivered.size(), 1u);
}

TEST(WireChannel, FullDatagramGoesAtOnceAndRecordsKnowTheirSeq) {
  Node a(1, 2), b(2, 1);
  introduce(a, b, 0);
  // (1320 / 52) = 25 flow records per datagram.
  const size_t per = kMaxPayload / (kRecordHeaderSize + kFlowRecordSize);
  std::vector<uint64_t> seqs;
  for (uint64_t i = 0; i < 3 * per + 1; ++i) {
    const PushResult r = a.ch->push(kFlowRecord, flow_body(i), 0);
    ASSERT_EQ(r.status, PushStatus::kOk);
    seqs.push_back(r.seq);
  }
  EXPECT_EQ(a.sink.sent.size(), 3u);
  EXPECT_EQ(seqs[per - 1], 1u);
  EXPECT_EQ(seqs[per], 2u);
  EXPECT_EQ(seqs.back(), 4u);
  a.ch->flush(0);
  b.take(a, 0);
  ASSERT_EQ(b.sink.delivered.size(), seqs.size());
  for (size_t i = 0; i < seqs.size(); ++i) {
    EXPECT_EQ(b.sink.delivered[i].first, seqs[i]);
    EXPECT_EQ(load_be<uint64_t>(b.sink.delivered[i].second.data() + 1), i);
  }
}

// Small records leave room a bigger one does not fit: it opens the next
// datagram instead of overrunning this one.
TEST(WireChannel, MixedRecordSizesNeverOverrunADatagram) {
  Node a(1, 2), b(2, 1);
  introduce(a, b, 0);
  SplitMix64 rng(3);
  const uint8_t types[] = {kSmallRecord, kFlowRecord, kBigRecord};
  size_t pushed = 0;
  for (int i = 0; i < 2000; ++i) {
    const uint8_t t = types[rng.below(3)];
    if (a.ch->push(t, Bytes(test_records().size_of(t), 1), 0).status == PushStatus::kOk) ++pushed;
    for (const Bytes& d : a.sink.sent)
      ASSERT_LE(d.size(), kMaxDatagram);
    b.take(a, 0);
    b.ch->poll(b.ch->next_deadline());
    a.take(b, 0);
  }
  a.ch->flush(0);
  b.take(a, 0);
  EXPECT_EQ(b.sink.delivered.size(), pushed);
  EXPECT_EQ(pushed, 2000u);
}

TEST(WireChannel, BadRecordIsRefused) {
  Node a(1, 2);
  EXPECT_EQ(a.ch->push(99, Bytes(8), 0).status, PushStatus::kBadRecord);
  EXPECT_EQ(a.ch->push(kFlowRecord, Bytes(kFlowRecordSize - 1), 0).status, PushStatus::kBadRecord);
  EXPECT_EQ(a.count(ChannelCounter::kBadRecord), 2u);
  EXPECT_EQ(a.ch->last_seq(), 0u);
}

TEST(WireChannel, DataWaitsForThePeersIncarnation) {
  Node a(1, 2), b(2, 1);
  a.send_record(1, 0);
  EXPECT_TRUE(a.sink.sent.empty());
  b.ch->send_heartbeat({}, 5);
  a.take(b, 5);  // first contact: the queued datagram goes
  ASSERT_EQ(a.sink.sent.size(), 1u);
  b.take(a, 5);
  EXPECT_EQ(b.sink.delivered.size(), 1u);
}

TEST(WireChannel, BackpressureWhenTheWindowIsFull) {
  ChannelConfig cfg;
  cfg.window = 4;
  Node a(1, 2, 1, cfg), b(2, 1);
  introduce(a, b, 0);
  int pushed = 0;
  for (;; ++pushed) {
    const PushResult r = a.ch->push(kBigRecord, Bytes(kBigRecordSize, 1), 0);
    if (r.status == PushStatus::kBackpressure) break;
    ASSERT_EQ(r.status, PushStatus::kOk);
    ASSERT_LT(pushed, 1000);
  }
  // 6 records of 204 bytes fit a datagram: 4 full datagrams in flight.
  EXPECT_EQ(pushed, 24);
  EXPECT_EQ(a.ch->in_flight(), 4u);
  EXPECT_EQ(a.count(ChannelCounter::kBackpressure), 1u);
  EXPECT_EQ(a.sink.sent.size(), 4u);
  // Acks open the window again.
  b.take(a, 0);
  b.ch->poll(b.ch->next_deadline());
  a.take(b, 0);
  EXPECT_EQ(a.ch->acked_through(), 4u);
  EXPECT_EQ(a.ch->push(kBigRecord, Bytes(kBigRecordSize, 1), 0).status, PushStatus::kOk);
}

TEST(WireChannel, RetransmitsWithCappedExponentialBackoff) {
  ChannelConfig cfg;
  cfg.rto_ns = 5'000'000;
  cfg.rto_max_ns = 40'000'000;
  Node a(1, 2, 1, cfg), b(2, 1);
  introduce(a, b, 0);
  a.send_record(1, 0);
  a.sink.sent.clear();  // lost
  std::vector<uint64_t> times;
  for (uint64_t t = 0; t <= 200'000'000; t += 1'000'000) {
    a.ch->poll(t);
    if (!a.sink.sent.empty()) times.push_back(t);
    a.sink.sent.clear();
  }
  ASSERT_GE(times.size(), 6u);
  EXPECT_EQ(times[0], 5'000'000u);
  EXPECT_EQ(times[1] - times[0], 10'000'000u);
  EXPECT_EQ(times[2] - times[1], 20'000'000u);
  EXPECT_EQ(times[3] - times[2], 40'000'000u);
  EXPECT_EQ(times[4] - times[3], 40'000'000u);  // capped
  // A retransmission that arrives is delivered once and acked.
  a.ch->poll(1'000'000'000);
  b.take(a, 1'000'000'000);
  EXPECT_EQ(b.sink.delivered.size(), 1u);
  b.ch->poll(2'000'000'000);
  a.take(b, 2'000'000'000);
  EXPECT_EQ(a.ch->acked_through(), 1u);
  EXPECT_EQ(a.ch->next_deadline(), UINT64_MAX);
}

TEST(WireChannel, DuplicatesAreAckedButNotRedelivered) {
  Node a(1, 2), b(2, 1);
  introduce(a, b, 0);
  a.send_record(1, 0);
  const Bytes d = a.sink.sent.at(0);
  a.sink.sent.clear();
  for (int i = 0; i < 3; ++i) {
    a.sink.sent.push_back(d);
    b.take(a, 0);
  }
  EXPECT_EQ(b.sink.delivered.size(), 1u);
  EXPECT_EQ(b.count(ChannelCounter::kDuplicates), 2u);
  EXPECT_EQ(b.count(ChannelCounter::kDataReceived), 1u);
  b.ch->poll(1'000'000);
  EXPECT_EQ(b.sink.sent.size(), 1u);  // one ack for all
  // Again after the ack: still not delivered, acked again.
  a.sink.sent.push_back(d);
  b.take(a, 2'000'000);
  EXPECT_EQ(b.sink.delivered.size(), 1u);
  // A duplicate says our ack was lost: the next one is due at once.
  EXPECT_EQ(b.ch->next_deadline(), 2'000'000u);
}

// In-order data waits ack_delay for a datagram to ride on, but not beyond
// kAckEvery datagrams: the sender's window must not fill up meanwhile.
TEST(WireChannel, AckIsDelayedButNotForMoreThanEightDatagrams) {
  Node a(1, 2), b(2, 1);
  introduce(a, b, 0);
  b.sink.sent.clear();
  for (uint64_t i = 1; i <= 7; ++i) {
    a.send_record(i, 0);
    b.take(a, 1000);
  }
  EXPECT_EQ(b.ch->next_deadline(), 1000 + b.ch->config().ack_delay_ns);
  b.ch->poll(2000);
  EXPECT_TRUE(b.sink.sent.empty());
  a.send_record(8, 0);
  b.take(a, 3000);
  EXPECT_EQ(b.ch->next_deadline(), 3000u);
  b.ch->poll(3000);
  ASSERT_EQ(b.sink.sent.size(), 1u);
  Datagram ack;
  ASSERT_EQ(a.codec.open(b.sink.sent[0].data(), b.sink.sent[0].size(), &ack), WireDrop::kOk);
  EXPECT_EQ(ack.header.ack, 8u);
}

// The id of each delivered flow record, in delivery order.
std::vector<uint64_t> ids(const RecordingSink& s) {
  std::vector<uint64_t> out;
  for (const auto& [seq, b] : s.delivered)
    out.push_back(load_be<uint64_t>(b.data() + 1));
  return out;
}
std::vector<uint64_t> seqs(const RecordingSink& s) {
  std::vector<uint64_t> out;
  for (const auto& [seq, b] : s.delivered)
    out.push_back(seq);
  return out;
}

// A DATA datagram from node 1 (incarnation `inc`) to node 2 carrying one flow
// record per id.
Bytes data(const Codec& sealer, uint64_t seq, std::initializer_list<uint64_t> flow_ids,
           uint64_t inc = 1) {
  Bytes p;
  for (uint64_t id : flow_ids)
    append_record(&p, kFlowRecord, flow_body(id));
  Header h = data_header(1, 2, seq, static_cast<uint8_t>(flow_ids.size()));
  h.sender_inc = inc;
  return build(sealer, h, p);
}

void offer(Node& to, const Bytes& d, uint64_t now) {
  Datagram dg;
  ASSERT_EQ(to.codec.open(d.data(), d.size(), &dg), WireDrop::kOk);
  to.ch->receive(dg, now);
}

TEST(WireChannel, OutOfOrderWithinTheWindowIsHeldSackedAndDeliveredInOrder) {
  Node a(1, 2), b(2, 1);
  introduce(a, b, 0);
  for (uint64_t i = 1; i <= 5; ++i) {
    a.send_record(i, 0);
  }
  std::vector<Bytes> dg = a.sink.sent;
  a.sink.sent = {dg[4], dg[2]};  // seqs 5 and 3 first
  b.take(a, 0);
  EXPECT_TRUE(b.sink.delivered.empty());  // held behind the gap at seq 1
  EXPECT_EQ(b.count(ChannelCounter::kReordered), 2u);
  EXPECT_EQ(b.count(ChannelCounter::kDataReceived), 2u);
  EXPECT_EQ(b.ch->received_through(), 0u);
  b.ch->poll(1'000'000);
  a.take(b, 1'000'000);
  EXPECT_EQ(a.ch->acked_through(), 0u);  // cumulative: seq 1 missing
  // The sacked ones are not retransmitted.
  a.ch->poll(a.ch->config().rto_ns);
  EXPECT_EQ(a.sink.sent.size(), 3u);
  a.sink.sent = {dg[0]};
  b.take(a, 2'000'000);
  EXPECT_EQ(ids(b.sink), (std::vector<uint64_t>{1}));  // 2 is still missing
  a.sink.sent = {dg[3], dg[1]};
  b.take(a, 2'000'000);
  EXPECT_EQ(ids(b.sink), (std::vector<uint64_t>{1, 2, 3, 4, 5}));
  EXPECT_EQ(seqs(b.sink), (std::vector<uint64_t>{1, 2, 3, 4, 5}));
  EXPECT_EQ(b.count(ChannelCounter::kReordered), 3u);  // 4 waited for 2 too
  EXPECT_EQ(b.ch->received_through(), 5u);
  b.ch->poll(3'000'000);
  a.take(b, 3'000'000);
  EXPECT_EQ(a.ch->acked_through(), 5u);
}

// A record that arrives before one it may depend on waits for it: a gap holds
// back every datagram behind it, then they go in seq order, records in their
// order within each.
TEST(WireChannel, GapThenFillDeliversInOrder) {
  Node a(1, 2), b(2, 1);
  offer(b, data(a.codec, 1, {10}), 0);
  offer(b, data(a.codec, 3, {30, 31, 32}), 0);
  offer(b, data(a.codec, 4, {40}), 0);
  offer(b, data(a.codec, 6, {60}), 0);
  EXPECT_EQ(ids(b.sink), (std::vector<uint64_t>{10}));
  EXPECT_EQ(b.ch->received_through(), 1u);
  EXPECT_EQ(b.count(ChannelCounter::kRecordsDelivered), 1u);
  offer(b, data(a.codec, 2, {20, 21}), 0);
  EXPECT_EQ(ids(b.sink), (std::vector<uint64_t>{10, 20, 21, 30, 31, 32, 40}));
  EXPECT_EQ(seqs(b.sink), (std::vector<uint64_t>{1, 2, 2, 3, 3, 3, 4}));
  EXPECT_EQ(b.ch->received_through(), 4u);  // 5 missing, 6 still held
  offer(b, data(a.codec, 5, {50}), 0);
  EXPECT_EQ(ids(b.sink), (std::vector<uint64_t>{10, 20, 21, 30, 31, 32, 40, 50, 60}));
  EXPECT_EQ(b.ch->received_through(), 6u);
  EXPECT_EQ(b.count(ChannelCounter::kReordered), 3u);
  EXPECT_EQ(b.count(ChannelCounter::kDataReceived), 6u);
  EXPECT_EQ(b.count(ChannelCounter::kRecordsDelivered), 9u);
}

// A lost datagram holds back every later one (in-order delivery): the sack
// of the ones beyond it, sent at once, gets it resent at the next poll, not
// after its RTO. Once: a second sack does not resend it again.
TEST(WireChannel, HoleBelowASackIsResentAtOnce) {
  Node a(1, 2), b(2, 1);
  introduce(a, b, 0);
  b.sink.sent.clear();
  for (uint64_t i = 1; i <= 3; ++i) {
    a.send_record(i, 0);
  }
  ASSERT_EQ(a.sink.sent.size(), 3u);
  a.sink.sent.erase(a.sink.sent.begin());  // datagram 1 is lost
  b.take(a, 100);
  EXPECT_TRUE(b.sink.delivered.empty());
  b.ch->poll(100);  // beyond a gap: acked at once (ack 0, sack 2 and 3)
  ASSERT_EQ(b.sink.sent.size(), 1u);
  const Bytes sack = b.sink.sent[0];
  a.take(b, 200);
  a.ch->poll(300);  // far before the RTO (5 ms)
  ASSERT_EQ(a.sink.sent.size(), 1u);
  EXPECT_EQ(a.count(ChannelCounter::kFastRetransmits), 1u);
  EXPECT_EQ(a.count(ChannelCounter::kRetransmits), 1u);
  const Bytes resent = a.sink.sent[0];
  a.sink.sent.clear();
  // The same sack again (a late copy): nothing is resent a second time.
  b.sink.sent = {sack};
  a.take(b, 350);
  a.ch->poll(400);
  EXPECT_TRUE(a.sink.sent.empty());
  EXPECT_EQ(a.count(ChannelCounter::kFastRetransmits), 1u);
  a.sink.sent = {resent};
  b.take(a, 400);
  EXPECT_EQ(ids(b.sink), (std::vector<uint64_t>{1, 2, 3}));
  b.ch->poll(400 + b.ch->config().ack_delay_ns);
  a.take(b, 500);
  EXPECT_EQ(a.ch->acked_through(), 3u);
}

TEST(WireChannel, DuplicatesOfHeldDatagramsAreNotDeliveredTwice) {
  Node a(1, 2), b(2, 1);
  const Bytes two = data(a.codec, 2, {2});
  for (int i = 0; i < 3; ++i)
    offer(b, two, 0);
  EXPECT_TRUE(b.sink.delivered.empty());
  EXPECT_EQ(b.count(ChannelCounter::kReordered), 1u);
  EXPECT_EQ(b.count(ChannelCounter::kDuplicates), 2u);
  // Acked at first contact (beyond a gap: at once), and again for the
  // duplicates: ack 0, sack seq 2.
  b.ch->poll(1'000'000);
  ASSERT_EQ(b.sink.sent.size(), 2u);
  Datagram ack;
  ASSERT_EQ(a.codec.open(b.sink.sent[1].data(), b.sink.sent[1].size(), &ack), WireDrop::kOk);
  EXPECT_EQ(ack.header.ack, 0u);
  EXPECT_EQ(ack.header.sack, 0b10u);
  offer(b, data(a.codec, 1, {1}), 2'000'000);
  offer(b, two, 2'000'000);
  EXPECT_EQ(ids(b.sink), (std::vector<uint64_t>{1, 2}));
  EXPECT_EQ(b.count(ChannelCounter::kDuplicates), 3u);
  EXPECT_EQ(b.count(ChannelCounter::kDataReceived), 2u);
}

// The whole reach of the sack, reversed: 63 datagrams held, then the first
// one lets all 64 through in order. The held ones are not resent.
TEST(WireChannel, AFullWindowInReverseIsDeliveredInOrder) {
  Node a(1, 2), b(2, 1);
  introduce(a, b, 0);
  for (uint64_t i = 1; i <= Channel::kMaxWindow; ++i) {
    ASSERT_EQ(a.ch->push(kFlowRecord, flow_body(i), 0).seq, i);
    a.ch->flush(0);
  }
  std::vector<Bytes> dg = a.sink.sent;
  ASSERT_EQ(dg.size(), Channel::kMaxWindow);
  a.sink.sent.assign(dg.rbegin(), dg.rend() - 1);  // 64 down to 2; 1 lost
  b.take(a, 0);
  EXPECT_TRUE(b.sink.delivered.empty());
  EXPECT_EQ(b.count(ChannelCounter::kReordered), Channel::kMaxWindow - 1);
  EXPECT_EQ(b.count(ChannelCounter::kOutOfWindow), 0u);
  b.ch->poll(1'000'000);
  a.take(b, 1'000'000);
  EXPECT_EQ(a.count(ChannelCounter::kBadAck), 0u);
  EXPECT_EQ(a.ch->acked_through(), 0u);
  a.ch->poll(a.ch->config().rto_ns);
  ASSERT_EQ(a.sink.sent.size(), 1u);  // seq 1 only
  a.sink.sent.push_back(dg[0]);       // and a late duplicate of it
  b.take(a, 6'000'000);
  std::vector<uint64_t> want;
  for (uint64_t i = 1; i <= Channel::kMaxWindow; ++i)
    want.push_back(i);
  EXPECT_EQ(ids(b.sink), want);
  EXPECT_EQ(seqs(b.sink), want);
  EXPECT_EQ(b.ch->received_through(), Channel::kMaxWindow);
  EXPECT_EQ(b.count(ChannelCounter::kDuplicates), 1u);
  b.ch->poll(7'000'000);
  a.take(b, 7'000'000);
  EXPECT_EQ(a.ch->acked_through(), Channel::kMaxWindow);
  // The buffer is reused past the first lap of the seq space.
  offer(b, data(a.codec, 66, {66}), 8'000'000);
  offer(b, data(a.codec, 65, {65}), 8'000'000);
  EXPECT_EQ(ids(b.sink).back(), 66u);
  EXPECT_EQ(b.sink.delivered.size(), Channel::kMaxWindow + 2);
}

// What the restarted peer sends is a new seq space: datagrams held for the
// old one must not be delivered in place of the new ones.
TEST(WireChannel, PeerRestartDiscardsTheReorderBuffer) {
  Node a(1, 2), b(2, 1);
  offer(b, data(a.codec, 2, {2}), 0);
  offer(b, data(a.codec, 3, {3}), 0);
  EXPECT_TRUE(b.sink.delivered.empty());
  offer(b, data(a.codec, 1, {101}, /*inc=*/2), 1);
  EXPECT_EQ(b.count(ChannelCounter::kPeerRestarts), 1u);
  EXPECT_EQ(ids(b.sink), (std::vector<uint64_t>{101}));
  EXPECT_EQ(b.ch->received_through(), 1u);
  offer(b, data(a.codec, 3, {103}, 2), 1);
  EXPECT_EQ(ids(b.sink), (std::vector<uint64_t>{101}));
  offer(b, data(a.codec, 2, {102}, 2), 1);
  EXPECT_EQ(ids(b.sink), (std::vector<uint64_t>{101, 102, 103}));
  EXPECT_EQ(b.count(ChannelCounter::kDuplicates), 0u);
  // The old life's held datagrams, replayed, are refused too.
  offer(b, data(a.codec, 4, {4}), 2);
  EXPECT_EQ(b.count(ChannelCounter::kStaleIncarnation), 1u);
  EXPECT_EQ(b.sink.delivered.size(), 3u);
}

// deliver() may push() and flush() on the same channel while held datagrams
// are being drained: what it sends already acks all of them, and the rest of
// the drain is unaffected.
TEST(WireChannel, PushFromDeliverWhileDrainingHeldDatagrams) {
  Node a(1, 2), b(2, 1);
  introduce(a, b, 0);
  b.sink.echo = b.ch.get();
  for (uint64_t i = 1; i <= 3; ++i) {
    a.send_record(i, 0);
  }
  std::vector<Bytes> dg = a.sink.sent;
  a.sink.sent = {dg[2], dg[1], dg[0]};
  b.take(a, 0);
  EXPECT_EQ(ids(b.sink), (std::vector<uint64_t>{1, 2, 3}));
  ASSERT_EQ(b.sink.echo_results.size(), 3u);
  for (uint64_t i = 0; i < 3; ++i) {
    EXPECT_EQ(b.sink.echo_results[i].status, PushStatus::kOk);
    EXPECT_EQ(b.sink.echo_results[i].seq, i + 1);
  }
  ASSERT_EQ(b.sink.sent.size(), 3u);
  Datagram first;
  ASSERT_EQ(a.codec.open(b.sink.sent[0].data(), b.sink.sent[0].size(), &first), WireDrop::kOk);
  EXPECT_EQ(first.header.ack, 3u);  // state final before the first record ran
  EXPECT_EQ(first.header.sack, 0u);
  a.take(b, 0);
  EXPECT_EQ(ids(a.sink), (std::vector<uint64_t>{1001, 1002, 1003}));
  EXPECT_EQ(a.ch->acked_through(), 3u);
  EXPECT_EQ(b.ch->received_through(), 3u);
  EXPECT_EQ(b.count(ChannelCounter::kRecordsDelivered), 3u);
}

TEST(WireChannel, SeqOutsideTheWindowIsDropped) {
  Node a(1, 2), b(2, 1);
  introduce(a, b, 0);
  Bytes p;
  append_record(&p, kFlowRecord, flow_body(1));
  const Bytes far = build(a.codec, data_header(1, 2, 65, 1), p);
  a.sink.sent = {far};
  b.take(a, 0);
  EXPECT_EQ(b.count(ChannelCounter::kOutOfWindow), 1u);
  EXPECT_EQ(b.count(ChannelCounter::kReordered), 0u);
  a.sink.sent = {build(a.codec, data_header(1, 2, 64, 1), p)};  // the edge is inside
  b.take(a, 0);
  EXPECT_EQ(b.count(ChannelCounter::kOutOfWindow), 1u);
  EXPECT_EQ(b.count(ChannelCounter::kReordered), 1u);  // held: 1..63 missing
  EXPECT_TRUE(b.sink.delivered.empty());
}

TEST(WireChannel, AckOfUnsentDataIsIgnored) {
  Node a(1, 2), b(2, 1);
  introduce(a, b, 0);
  a.send_record(1, 0);
  a.ch->push(kFlowRecord, flow_body(2), 0);  // seq 2: open, not sent
  Header h;
  h.type = MsgType::kAck;
  h.cluster_id = kClusterId;
  h.sender = 2;
  h.receiver = 1;
  h.sender_inc = 1;
  h.receiver_inc = 1;
  h.ack = 2;
  b.sink.sent = {build(b.codec, h, {})};
  a.take(b, 0);
  EXPECT_EQ(a.count(ChannelCounter::kBadAck), 1u);
  EXPECT_EQ(a.ch->acked_through(), 0u);
  h.ack = 0;
  h.sack = 2;  // seq 2
  b.sink.sent = {build(b.codec, h, {})};
  a.take(b, 0);
  EXPECT_EQ(a.count(ChannelCounter::kBadAck), 2u);
  h.sack = 1;  // seq 1: fine
  b.sink.sent = {build(b.codec, h, {})};
  a.take(b, 0);
  EXPECT_EQ(a.ch->acked_through(), 1u);
}

TEST(WireChannel, HeartbeatReplayAndWrongSender) {
  Node a(1, 2), b(2, 1);
  introduce(a, b, 0);
  a.ch->send_heartbeat({0, 0b110, kStateReady, 1000}, 0);
  const Bytes hb = a.sink.sent.at(0);
  b.take(a, 0);
  ASSERT_EQ(b.sink.heartbeats.size(), 2u);
  EXPECT_EQ(b.sink.heartbeats[1].members, 0b110u);
  EXPECT_EQ(b.sink.heartbeats[1].state, kStateReady);
  a.sink.sent = {hb};
  b.take(a, 0);
  EXPECT_EQ(b.count(ChannelCounter::kHeartbeatReplay), 1u);
  EXPECT_EQ(b.sink.heartbeats.size(), 2u);

  // A datagram from node 3 handed to the channel for node 2.
  Node c(3, 2);
  c.ch->send_heartbeat({}, 0);
  Datagram dg;
  ASSERT_EQ(b.codec.open(c.sink.sent[0].data(), c.sink.sent[0].size(), &dg), WireDrop::kOk);
  b.ch->receive(dg, 0);
  EXPECT_EQ(b.count(ChannelCounter::kWrongSender), 1u);
}

TEST(WireChannel, PeerRestartResetsTheSessionAndOldLivesAreRejected) {
  Node a(1, 2), b(2, 1);
  introduce(a, b, 0);
  // Traffic both ways; b keeps one datagram unacked.
  a.send_record(1, 0);
  const Bytes old_data = a.sink.sent.at(0);
  b.take(a, 0);
  b.send_record(100, 0);
  b.sink.sent.clear();  // lost
  EXPECT_EQ(b.ch->in_flight(), 1u);

  // a restarts with a higher incarnation. b's heartbeat, addressed to the
  // old a, is not taken; a's first heartbeat tells b of the restart, b's
  // answer tells a of b.
  Node a2(1, 2, /*inc=*/2);
  b.ch->send_heartbeat({}, 1);
  a2.take(b, 1);
  EXPECT_EQ(a2.count(ChannelCounter::kStaleReceiverIncarnation), 1u);
  EXPECT_EQ(a2.ch->peer_incarnation(), 0u);
  a2.send_record(2, 1);
  EXPECT_TRUE(a2.sink.sent.empty());  // b's incarnation is unknown
  a2.ch->send_heartbeat({}, 1);
  b.take(a2, 1);
  b.ch->send_heartbeat({}, 1);
  a2.take(b, 1);
  EXPECT_EQ(a2.ch->peer_incarnation(), 1u);
  ASSERT_EQ(a2.sink.sent.size(), 1u);  // the queued data, at first contact
  b.take(a2, 1);
  EXPECT_EQ(b.count(ChannelCounter::kPeerRestarts), 1u);
  ASSERT_EQ(b.sink.restarts.size(), 1u);
  EXPECT_EQ(b.sink.restarts[0], 1u);
  EXPECT_EQ(b.ch->session(), 2u);
  EXPECT_EQ(b.ch->in_flight(), 0u);  // discarded: the new a has no use for it
  EXPECT_EQ(b.ch->peer_incarnation(), 2u);
  ASSERT_EQ(b.sink.delivered.size(), 2u);
  EXPECT_EQ(b.sink.delivered[1].first, 1u);  // seq 1 again, new session

  // Replays of the old life.
  a.sink.sent = {old_data};
  b.take(a, 2);
  a.ch->send_heartbeat({}, 2);
  b.take(a, 2);
  EXPECT_EQ(b.count(ChannelCounter::kStaleIncarnation), 2u);
  EXPECT_EQ(b.sink.delivered.size(), 2u);

  // And b's send side restarts at seq 1 for the new a.
  EXPECT_EQ(b.ch->push(kFlowRecord, flow_body(3), 3).seq, 1u);
  b.ch->flush(3);
  a2.take(b, 3);
  ASSERT_EQ(a2.sink.delivered.size(), 1u);
  EXPECT_EQ(load_be<uint64_t>(a2.sink.delivered[0].second.data() + 1), 3u);
}

// A datagram to an earlier life of the receiver is not delivered to the new
// one, even though the new one has no receive state for the sender yet.
TEST(WireChannel, ReplayAcrossOurOwnRestartIsRejected) {
  Node a(1, 2), b(2, 1);
  introduce(a, b, 0);
  a.send_record(1, 0);
  const Bytes to_old_b = a.sink.sent.at(0);
  a.ch->send_heartbeat({}, 0);
  const Bytes hb_to_old_b = a.sink.sent.at(1);
  Node b2(2, 1, /*inc=*/2);
  a.sink.sent = {to_old_b, hb_to_old_b};
  b2.take(a, 0);
  EXPECT_EQ(b2.count(ChannelCounter::kStaleReceiverIncarnation), 2u);
  EXPECT_TRUE(b2.sink.delivered.empty());
  EXPECT_EQ(b2.ch->peer_incarnation(), 0u);
}

// The lossy, reordering, duplicating link of the brief, both ways, with
// heartbeats for first contact; every record is delivered exactly once, in
// order.
TEST(WireChannel, LossyLinkDeliversEveryRecordExactlyOnce) {
  ChannelConfig cfg;
  cfg.window = 16;
  Node n[2] = {Node(1, 2, 7, cfg), Node(2, 1, 9, cfg)};
  SplitMix64 rng(2024);
  struct InFlight {
    uint64_t at;
    int to;
    Bytes bytes;
  };
  std::vector<InFlight> link;
  constexpr uint64_t kRecords = 20'000;
  uint64_t next_id[2] = {0, 0};
  uint64_t now = 0;
  constexpr uint64_t kStep = 100'000;  // 100 us
  for (int side = 0; side < 2; ++side)
    n[side].ch->send_heartbeat({}, now);
  for (; now < 120'000'000'000ULL; now += kStep) {
    for (int side = 0; side < 2; ++side) {
      Channel& ch = *n[side].ch;
      if (now % 1'000'000 == 0) ch.send_heartbeat({}, now);
      // Up to 64 records per step, stopping at backpressure.
      for (int k = 0; k < 64 && next_id[side] < kRecords; ++k) {
        const uint64_t id = next_id[side];
        const bool small = id % 3 == 0;
        Bytes body = small ? Bytes(kSmallRecordSize) : flow_body(id);
        store_be<uint64_t>(body.data(), id);
        const PushResult r = ch.push(small ? kSmallRecord : kFlowRecord, body, now);
        if (r.status == PushStatus::kBackpressure) break;
        ASSERT_EQ(r.status, PushStatus::kOk);
        ++next_id[side];
      }
      ch.flush(now);
      ch.poll(now);
      for (Bytes& d : n[side].sink.sent) {
        const uint64_t roll = rng.below(100);
        if (roll < 20) continue;  // lost
        link.push_back({now + 50'000 + rng.below(3'000'000), 1 - side, d});
        if (roll < 30) link.push_back({now + rng.below(5'000'000), 1 - side, d});  // duplicated
      }
      n[side].sink.sent.clear();
    }
    // Arrivals due by now, in link order (the random delays reorder them).
    for (size_t i = 0; i < link.size();) {
      if (link[i].at > now) {
        ++i;
        continue;
      }
      Node& to = n[link[i].to];
      Datagram dg;
      ASSERT_EQ(to.codec.open(link[i].bytes.data(), link[i].bytes.size(), &dg), WireDrop::kOk)
          << link[i].bytes.size();
      to.ch->receive(dg, now);
      link[i] = std::move(link.back());
      link.pop_back();
    }
    const bool done = next_id[0] == kRecords && next_id[1] == kRecords &&
                      n[0].ch->acked_through() == n[0].ch->last_seq() &&
                      n[1].ch->acked_through() == n[1].ch->last_seq();
    if (done) break;
  }
  for (int side = 0; side < 2; ++side) {
    const Node& rx = n[1 - side];
    EXPECT_EQ(n[side].ch->acked_through(), n[side].ch->last_seq()) << side;
    EXPECT_EQ(next_id[side], kRecords);
    // Each record once, in the order pushed.
    ASSERT_EQ(rx.sink.delivered.size(), kRecords) << side;
    uint64_t prev_seq = 0;
    for (uint64_t i = 0; i < kRecords; ++i) {
      const auto& [seq, b] = rx.sink.delivered[i];
      ASSERT_EQ(load_be<uint64_t>(b.data() + 1), i) << "side " << side;
      ASSERT_TRUE(seq == prev_seq || seq == prev_seq + 1) << "side " << side << " seq " << seq;
      prev_seq = seq;
    }
    EXPECT_GT(n[side].count(ChannelCounter::kRetransmits), 0u);
    EXPECT_GT(rx.count(ChannelCounter::kDuplicates), 0u);
    EXPECT_GT(rx.count(ChannelCounter::kReordered), 0u);
    EXPECT_GT(n[side].count(ChannelCounter::kBackpressure), 0u);
    EXPECT_EQ(n[side].ch->session(), 1u);
  }
  EXPECT_LT(now, 120'000'000'000ULL);
}

// A loopback sink with fixed buffers (no allocation of its own).
struct Loop : ChannelSink {
  void transmit(std::span<const uint8_t> d) override {
    if (n < kSlots) {
      std::copy(d.begin(), d.end(), buf[n].begin());
      len[n++] = d.size();
    }
  }
  void deliver(uint64_t, const Record&) override { ++delivered; }
  static constexpr size_t kSlots = 256;
  std::array<std::array<uint8_t, kMaxDatagram>, kSlots> buf;
  std::array<size_t, kSlots> len;
  size_t n = 0;
  uint64_t delivered = 0;
};

// After construction, sending, receiving, acking and retransmitting touch no
// heap: the window's buffers are all there is.
TEST(WireChannel, NoAllocationAfterConstruction) {
  auto la = std::make_unique<Loop>(), lb = std::make_unique<Loop>();
  Codec ca(codec_config(1), test_records()), cb(codec_config(2), test_records());
  Channel a(ca, config(2), la.get()), b(cb, config(1), lb.get());
  auto pump = [](Loop& from, Codec& c, Channel& to, uint64_t now, bool drop_odd) {
    for (size_t i = 0; i < from.n; ++i) {
      if (drop_odd && i % 2 == 1) continue;
      Datagram dg;
      if (c.open(from.buf[i].data(), from.len[i], &dg) == WireDrop::kOk) to.receive(dg, now);
    }
    from.n = 0;
  };
  const Bytes body = flow_body(1);
  g_allocs = 0;
  g_count_allocs = true;
  uint64_t now = 0;
  a.send_heartbeat({}, now);
  b.send_heartbeat({}, now);
  for (int round = 0; round < 200; ++round, now += 1'000'000) {
    for (int k = 0; k < 100; ++k) {
      a.push(kFlowRecord, body, now);
      b.push(kFlowRecord, body, now);
    }
    a.flush(now);
    b.flush(now);
    a.poll(now);
    b.poll(now);
    pump(*la, cb, b, now, round % 3 == 0);
    pump(*lb, ca, a, now, round % 5 == 0);
  }
  g_count_allocs = false;
  EXPECT_EQ(g_allocs.load(), 0u);
  EXPECT_GT(lb->delivered, 10'000u);
  EXPECT_GT(b.counters().get(ChannelCounter::kReordered), 0u);  // held ones too
  EXPECT_GT(a.acked_through(), 100u);
}

}  // namespace
}  // namespace tripod::cluster::wire
