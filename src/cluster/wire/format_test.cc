#include "cluster/wire/format.h"

#include <gtest/gtest.h>

#include <functional>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "cluster/wire/test_util.h"
#include "common/random.h"

namespace tripod::cluster::wire {
namespace {

using namespace testing;

std::vector<uint8_t> body_of(uint16_t n, uint8_t seed) {
  std::vector<uint8_t> b(n);
  for (size_t i = 0; i < n; ++i)
    b[i] = static_cast<uint8_t>(seed + i);
  return b;
}

// Two flow records and a small one: a typical DATA datagram from node 2 to 1.
std::vector<uint8_t> valid_data(const Codec& sealer, std::vector<uint8_t>* payload_out = nullptr) {
  std::vector<uint8_t> payload;
  append_record(&payload, kFlowRecord, body_of(kFlowRecordSize, 1));
  append_record(&payload, kSmallRecord, body_of(kSmallRecordSize, 2));
  append_record(&payload, kFlowRecord, body_of(kFlowRecordSize, 3));
  if (payload_out) *payload_out = payload;
  return build(sealer, data_header(2, 1, 7, 3), payload);
}

TEST(WireFormat, HeaderRoundTripInNetworkOrder) {
  SplitMix64 rng(1);
  for (int i = 0; i < 1000; ++i) {
    Header h;
    h.type = static_cast<MsgType>(rng.next());
    h.flags = static_cast<uint8_t>(rng.next());
    h.count = static_cast<uint8_t>(rng.next());
    h.cluster_id = static_cast<uint32_t>(rng.next());
    h.sender = static_cast<uint16_t>(rng.next());
    h.receiver = static_cast<uint16_t>(rng.next());
    h.sender_inc = rng.next();
    h.receiver_inc = rng.next();
    h.epoch = static_cast<uint32_t>(rng.next());
    h.seq = rng.next();
    h.ack = rng.next();
    h.sack = rng.next();
    uint8_t buf[kHeaderSize];
    write_header(h, buf);
    const Header r = read_header(buf);
    EXPECT_EQ(r.type, h.type);
    EXPECT_EQ(r.flags, h.flags);
    EXPECT_EQ(r.count, h.count);
    EXPECT_EQ(r.cluster_id, h.cluster_id);
    EXPECT_EQ(r.sender, h.sender);
    EXPECT_EQ(r.receiver, h.receiver);
    EXPECT_EQ(r.sender_inc, h.sender_inc);
    EXPECT_EQ(r.receiver_inc, h.receiver_inc);
    EXPECT_EQ(r.epoch, h.epoch);
    EXPECT_EQ(r.seq, h.seq);
    EXPECT_EQ(r.ack, h.ack);
    EXPECT_EQ(r.sack, h.sack);
  }
  Header h;
  h.cluster_id = 0x01020304;
  h.seq = 0x1122334455667788ULL;
  uint8_t buf[kHeaderSize];
  write_header(h, buf);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(buf), 4), "TPR1");
  EXPECT_EQ(buf[off::kVersion], kVersion);
  EXPECT_EQ(buf[off::kClusterId], 0x01);
  EXPECT_EQ(buf[off::kClusterId + 3], 0x04);
  EXPECT_EQ(buf[off::kSeq], 0x11);
  EXPECT_EQ(buf[off::kSeq + 7], 0x88);
}

TEST(WireFormat, HeartbeatRoundTrip) {
  Heartbeat hb{42, 0x8000000000000005ULL, kStateReady | kStateDraining, 1000};
  uint8_t buf[kHeartbeatSize];
  write_heartbeat(hb, buf);
  const Heartbeat r = read_heartbeat(buf);
  EXPECT_EQ(r.hb_seq, 42u);
  EXPECT_EQ(r.members, hb.members);
  EXPECT_EQ(r.state, hb.state);
  EXPECT_EQ(r.interval_us, 1000u);
  EXPECT_EQ(buf[7], 42);  // big-endian
}

TEST(WireFormat, RecordTableRejectsBadConfig) {
  EXPECT_THROW(RecordTable({{1, 0}}), std::invalid_argument);
  EXPECT_THROW(RecordTable({{1, kMaxPayload}}), std::invalid_argument);
  EXPECT_THROW(RecordTable({{1, 8}, {1, 8}}), std::invalid_argument);
  const RecordTable t({{9, kMaxPayload - kRecordHeaderSize}});
  EXPECT_EQ(t.size_of(9), kMaxPayload - kRecordHeaderSize);
  EXPECT_EQ(t.size_of(8), 0);
}

TEST(WireFormat, SealOpenRoundTrip) {
  Codec a(codec_config(2), test_records());
  Codec b(codec_config(1), test_records());
  std::vector<uint8_t> payload;
  const auto d = valid_data(a, &payload);
  Datagram out;
  ASSERT_EQ(b.open(d.data(), d.size(), &out), WireDrop::kOk);
  EXPECT_EQ(out.header.seq, 7u);
  EXPECT_EQ(out.header.sender, 2);
  ASSERT_EQ(out.payload.size(), payload.size());
  std::vector<Record> recs;
  b.for_each_record(out, [&](const Record& r) { recs.push_back(r); });
  ASSERT_EQ(recs.size(), 3u);
  EXPECT_EQ(recs[0].type, kFlowRecord);
  EXPECT_EQ(recs[1].type, kSmallRecord);
  EXPECT_EQ(std::vector<uint8_t>(recs[1].body.begin(), recs[1].body.end()),
            body_of(kSmallRecordSize, 2));
  EXPECT_EQ(std::vector<uint8_t>(recs[2].body.begin(), recs[2].body.end()),
            body_of(kFlowRecordSize, 3));
  EXPECT_EQ(b.counters().get(WireDrop::kOk), 1u);

  // The largest datagram: one record filling the payload.
  const RecordTable big({{5, kMaxPayload - kRecordHeaderSize}});
  Codec c(codec_config(1), big);
  std::vector<uint8_t> p2;
  append_record(&p2, 5, body_of(kMaxPayload - kRecordHeaderSize, 9));
  const auto full = build(a, data_header(2, 1, 1, 1), p2);
  ASSERT_EQ(full.size(), kMaxDatagram);
  EXPECT_EQ(c.open(full.data(), full.size(), &out), WireDrop::kOk);
}

// Each case turns a valid datagram into one dropped for exactly `want`.
struct DropCase {
  const char* name;
  WireDrop want;
  std::function<std::vector<uint8_t>(const Codec& sealer)> make;
};

std::vector<uint8_t> with_header(const Codec& s, const std::function<void(Header&)>& edit,
                                 std::vector<uint8_t> payload) {
  Header h = data_header(2, 1, 7, 1);
  edit(h);
  return build(s, h, payload);
}

std::vector<uint8_t> one_flow() {
  std::vector<uint8_t> p;
  append_record(&p, kFlowRecord, body_of(kFlowRecordSize, 0));
  return p;
}

std::vector<DropCase> drop_cases() {
  auto hb_payload = std::vector<uint8_t>(kHeartbeatSize, 0);
  return {
      {"short", WireDrop::kTruncated,
       [](const Codec& s) {
         auto d = valid_data(s);
         d.resize(kHeaderSize + kMacSize - 1);
         return d;
       }},
      {"empty", WireDrop::kTruncated, [](const Codec&) { return std::vector<uint8_t>{}; }},
      {"too_long", WireDrop::kTooLong,
       [](const Codec& s) {
         auto d = valid_data(s);
         d.resize(kMaxDatagram + 1);
         return d;
       }},
      {"magic", WireDrop::kBadMagic,
       [](const Codec& s) {
         auto d = valid_data(s);
         d[0] = 'X';
         return d;
       }},
      {"version", WireDrop::kBadVersion,
       [](const Codec& s) {
         auto d = valid_data(s);
         d[off::kVersion] = kVersion + 1;
         s.seal(d.data(), d.size() - kMacSize);
         return d;
       }},
      {"cluster", WireDrop::kWrongCluster,
       [](const Codec& s) {
         return with_header(
             s, [](Header& h) { h.cluster_id++; }, one_flow());
       }},
      {"receiver", WireDrop::kWrongReceiver,
       [](const Codec& s) {
         return with_header(
             s, [](Header& h) { h.receiver = 3; }, one_flow());
       }},
      {"from_self", WireDrop::kWrongReceiver,
       [](const Codec& s) {
         return with_header(
             s, [](Header& h) { h.sender = 1; }, one_flow());
       }},
      {"mac", WireDrop::kBadMac,
       [](const Codec& s) {
         auto d = valid_data(s);
         d.back() ^= 1;
         return d;
       }},
      {"unsealed", WireDrop::kBadMac,
       [](const Codec& s) { return build(s, data_header(2, 1, 1, 1), one_flow(), false); }},
      {"type", WireDrop::kBadType,
       [](const Codec& s) {
         return with_header(
             s, [](Header& h) { h.type = static_cast<MsgType>(9); }, one_flow());
       }},
      {"flags", WireDrop::kBadFlags,
       [](const Codec& s) {
         return with_header(
             s, [](Header& h) { h.flags = 1; }, one_flow());
       }},
      {"reserved", WireDrop::kBadFlags,
       [](const Codec& s) {
         auto d = build(s, data_header(2, 1, 7, 1), one_flow(), false);
         d[off::kReserved + 3] = 1;
         s.seal(d.data(), d.size() - kMacSize);
         return d;
       }},
      {"record_reserved", WireDrop::kBadFlags,
       [](const Codec& s) {
         std::vector<uint8_t> p;
         append_record(&p, kFlowRecord, body_of(kFlowRecordSize, 0), 1);
         return with_header(
             s, [](Header&) {}, p);
       }},
      {"data_seq_0", WireDrop::kBadSeq,
       [](const Codec& s) {
         return with_header(
             s, [](Header& h) { h.seq = 0; }, one_flow());
       }},
      {"heartbeat_seq", WireDrop::kBadSeq,
       [hb_payload](const Codec& s) {
         return with_header(
             s,
             [](Header& h) {
               h.type = MsgType::kHeartbeat;
               h.count = 0;
             },
             hb_payload);
       }},
      {"ack_seq", WireDrop::kBadSeq,
       [](const Codec& s) {
         return with_header(s,
                            [](Header& h) {
                              h.type = MsgType::kAck;
                              h.count = 0;
                            },
                            {});
       }},
      {"heartbeat_size", WireDrop::kBadBody,
       [](const Codec& s) {
         return with_header(
             s,
             [](Header& h) {
               h.type = MsgType::kHeartbeat;
               h.count = 0;
               h.seq = 0;
             },
             std::vector<uint8_t>(kHeartbeatSize - 1));
       }},
      {"heartbeat_count", WireDrop::kBadBody,
       [hb_payload](const Codec& s) {
         return with_header(
             s,
             [](Header& h) {
               h.type = MsgType::kHeartbeat;
               h.seq = 0;
             },
             hb_payload);
       }},
      {"ack_body", WireDrop::kBadBody,
       [](const Codec& s) {
         return with_header(
             s,
             [](Header& h) {
               h.type = MsgType::kAck;
               h.count = 0;
               h.seq = 0;
             },
             std::vector<uint8_t>(1));
       }},
      {"record_type", WireDrop::kUnknownRecordType,
       [](const Codec& s) {
         std::vector<uint8_t> p;
         append_record(&p, 77, body_of(kFlowRecordSize, 0));
         return with_header(
             s, [](Header&) {}, p);
       }},
      {"record_length", WireDrop::kBadRecordLength,
       [](const Codec& s) {
         std::vector<uint8_t> p;
         append_record(&p, kFlowRecord, body_of(kFlowRecordSize - 1, 0));
         return with_header(
             s, [](Header&) {}, p);
       }},
      {"record_body_cut", WireDrop::kTruncatedRecord,
       [](const Codec& s) {
         auto p = one_flow();
         p.resize(p.size() - 1);
         return with_header(
             s, [](Header&) {}, p);
       }},
      {"record_header_cut", WireDrop::kTruncatedRecord,
       [](const Codec& s) {
         auto p = one_flow();
         p.push_back(kFlowRecord);  // half a second record header
         p.push_back(0);
         return with_header(
             s, [](Header& h) { h.count = 2; }, p);
       }},
      {"count_zero", WireDrop::kBadRecordCount,
       [](const Codec& s) { return with_header(s, [](Header& h) { h.count = 0; }, {}); }},
      {"trailing", WireDrop::kBadRecordCount,
       [](const Codec& s) {
         auto p = one_flow();
         p.push_back(0);
         return with_header(
             s, [](Header&) {}, p);
       }},
  };
}

TEST(WireFormat, EveryDropReasonIsReachedAndCounted) {
  Codec sealer(codec_config(2), test_records());
  Codec rx(codec_config(1), test_records());
  std::map<WireDrop, uint64_t> want;
  for (const DropCase& c : drop_cases()) {
    const auto d = c.make(sealer);
    Datagram out;
    EXPECT_EQ(rx.open(d.data(), d.size(), &out), c.want) << c.name;
    ++want[c.want];
  }
  for (size_t i = 1; i < size_t(WireDrop::kCount); ++i) {
    const auto r = static_cast<WireDrop>(i);
    EXPECT_GT(rx.counters().get(r), 0u) << "unreached: " << to_string(r);
    EXPECT_EQ(rx.counters().get(r), want[r]) << to_string(r);
  }
  EXPECT_EQ(rx.counters().get(WireDrop::kOk), 0u);
  std::map<std::string, uint64_t> exported;
  rx.export_counters([&](std::string_view n, uint64_t v) { exported[std::string(n)] = v; });
  EXPECT_EQ(exported.size(), size_t(WireDrop::kCount));
  EXPECT_EQ(exported["wire_bad_mac"], want[WireDrop::kBadMac]);
}

// Any single-bit change anywhere (header, payload or MAC) is rejected.
TEST(WireFormat, TamperingAnyByteIsDetected) {
  Codec sealer(codec_config(2), test_records());
  Codec rx(codec_config(1), test_records());
  const auto good = valid_data(sealer);
  Datagram out;
  ASSERT_EQ(rx.open(good.data(), good.size(), &out), WireDrop::kOk);
  for (size_t i = 0; i < good.size(); ++i) {
    for (const uint8_t bit : {uint8_t{0x01}, uint8_t{0x80}}) {
      auto d = good;
      d[i] ^= bit;
      EXPECT_NE(rx.open(d.data(), d.size(), &out), WireDrop::kOk) << "byte " << i;
    }
  }
  // Every change that passes the cheap checks is caught by the MAC itself.
  EXPECT_GE(rx.counters().get(WireDrop::kBadMac), 2 * (good.size() - 16));
}

TEST(WireFormat, OtherKeyIsRejected) {
  Codec sealer(codec_config(2, /*key_seed=*/4), test_records());
  Codec rx(codec_config(1), test_records());
  const auto d = valid_data(sealer);
  Datagram out;
  EXPECT_EQ(rx.open(d.data(), d.size(), &out), WireDrop::kBadMac);
}

}  // namespace
}  // namespace tripod::cluster::wire
