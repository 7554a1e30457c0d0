// The flood test: 100k spoofed SYNs each get a SYN-ACK and create
// nothing; then a real client's handshake completes through the proxy to a
// backend and data flows both ways, translated byte for byte.
#include <gtest/gtest.h>

#include <cstdio>
#include <string>

#include "common/random.h"
#include "nf/synproxy/test_util.h"

namespace tripod {
namespace {

using namespace sptest;

constexpr uint64_t kStart = 1'000'000'000'000;  // 1000 s
constexpr int kFlood = 100'000;

std::string random_ip(SplitMix64& rng, Family f) {
  char buf[64];
  const uint64_t r = rng.next();
  if (f == Family::kIpv4) {
    std::snprintf(buf, sizeof buf, "%u.%u.%u.%u", unsigned(1 + (r & 0x7F)), unsigned(r >> 8 & 0xFF),
                  unsigned(r >> 16 & 0xFF), unsigned(1 + (r >> 24 & 0xFD)));
  } else {
    std::snprintf(buf, sizeof buf, "2001:db8:%x:%x::%x", unsigned(r & 0xFFFF),
                  unsigned(r >> 16 & 0xFFFF), unsigned(1 + (r >> 32 & 0xFFFE)));
  }
  return buf;
}

PacketBuilder spoofed(SplitMix64& rng, Family f) {
  const std::string src = random_ip(rng, f);
  PacketBuilder b = PacketBuilder().eth(kClientMac, kGatewayMac);
  if (f == Family::kIpv4) {
    b.ipv4(src, vip_ip(f));
  } else {
    b.ipv6(src, vip_ip(f));
  }
  return b.tcp(static_cast<uint16_t>(1024 + rng.below(60000)), kVipPort);
}

// Every counter but the ones named stayed at zero.
void expect_only(const SynProxy& p,
                 std::initializer_list<std::pair<SynProxyCounter, uint64_t>> want) {
  for (size_t i = 0; i < SynProxyCounters::size(); ++i) {
    uint64_t expected = 0;
    for (const auto& [c, v] : want)
      if (static_cast<size_t>(c) == i) expected = v;
    EXPECT_EQ(p.counters().get(i), expected) << kSynProxyCounterNames[i];
  }
}

// One real connection, v4 or v6, through a Gateway that may already have
// seen a flood: handshake with window scale 7 + SACK + timestamps on the
// client, a backend with its own ISN, TSval, MSS and window scale 9, then
// data, SACK and FIN both ways. Every packet out is compared byte for byte
// with one built independently, and its checksum recomputed in full.
void legitimate_connection(Gateway& gw, Family f) {
  const uint32_t C = 0xFFFFFF00;  // client ISN: its sequence space wraps
  const uint32_t B = 0x00000010;  // backend ISN
  const uint32_t kBackendTs = 777000;
  const uint32_t created_before = gw.created();
  const uint16_t mss = f == Family::kIpv6 ? 1440 : 1460;  // client's 1460, as the cookie carries it

  // 1. SYN -> SYN-ACK with the cookie; still no state.
  Gateway::Out o1;
  ASSERT_EQ(gw.client_packet(from_client(f)
                                 .seq(C)
                                 .syn()
                                 .window(64240)
                                 .mss(1460)
                                 .sack_permitted()
                                 .timestamps(1000, 0)
                                 .tcp_raw_options(Bytes{1})
                                 .wscale(7)
                                 .build(),
                             &o1),
            SynProxyCounter::kSynCookieSent);
  ASSERT_EQ(o1.to_client.size(), 1u);
  ASSERT_EQ(o1.created, 0u);
  const Bytes& synack = o1.to_client[0];
  const PacketMeta sm = parse_ok(synack);
  ASSERT_TRUE(l4_checksum_ok(synack.data(), sm));
  const uint32_t K = sm.tcp_seq;
  const uint32_t Tk = options_of(synack).ts_val;
  EXPECT_EQ(synack, to_client(f)
                        .seq(K)
                        .ack_seq(C + 1)
                        .flags(kTcpSyn | kTcpAck)
                        .window(0)
                        .mss(1460)
                        .sack_permitted()
                        .timestamps(Tk, 1000)
                        .tcp_raw_options(Bytes{1})
                        .wscale(7)
                        .build());

  // 2. ACK with the cookie -> state + SYN to the backend with the client's options.
  Gateway::Out o2;
  ASSERT_EQ(gw.client_packet(from_client(f)
                                 .seq(C + 1)
                                 .ack_seq(K + 1)
                                 .window(502)
                                 .tcp_raw_options(Bytes{1, 1})
                                 .timestamps(1001, Tk)
                                 .build(),
                             &o2),
            SynProxyCounter::kBackendSynBuilt);
  ASSERT_EQ(o2.created, 1u);
  ASSERT_EQ(gw.created(), created_before + 1);
  ASSERT_EQ(o2.to_backend.size(), 1u);
  EXPECT_EQ(o2.to_backend[0], from_client(f)
                                  .seq(C)
                                  .syn()
                                  .window(502 << 7)
                                  .mss(mss)
                                  .sack_permitted()
                                  .timestamps(1001, 0)
                                  .tcp_raw_options(Bytes{1})
                                  .wscale(7)
                                  .build());

  // 3. Backend SYN-ACK -> deltas; our ACK to the backend; the window opens
  // toward the client.
  const Bytes bsynack = from_backend(f)
                            .seq(B)
                            .ack_seq(C + 1)
                            .syn()
                            .window(65160)
                            .mss(1400)
                            .sack_permitted()
                            .timestamps(kBackendTs, 1001)
                            .tcp_raw_options(Bytes{1})
                            .wscale(9)
                            .build();
  Gateway::Out o3;
  ASSERT_EQ(gw.backend_packet(bsynack, &o3), SynProxyCounter::kBackendOpen);
  const SynProxyState* st = gw.state_of(bsynack);
  ASSERT_NE(st, nullptr);
  EXPECT_EQ(st->seq_delta, K - B);
  EXPECT_EQ(st->ts_delta, Tk - kBackendTs);
  EXPECT_EQ(st->flags, kSpOpen | kSpTimestamps | kSpSack | kSpRescaleWindow);
  EXPECT_EQ(st->client_wscale(), 7);
  EXPECT_EQ(st->backend_wscale(), 9);
  ASSERT_EQ(o3.to_backend.size(), 1u);
  const Bytes final_ack = to_backend(f)
                              .seq(C + 1)
                              .ack_seq(B + 1)
                              .window(502)
                              .tcp_raw_options(Bytes{1, 1})
                              .timestamps(1001, kBackendTs)
                              .build();
  EXPECT_EQ(o3.to_backend[0], final_ack);
  ASSERT_EQ(o3.to_client.size(), 1u);
  // 65160 >> 9 = 127 in the backend's scale = 508 in the advertised one.
  EXPECT_EQ(o3.to_client[0], from_backend(f)
                                 .seq(K + 1)
                                 .ack_seq(C + 1)
                                 .window(508)
                                 .tcp_raw_options(Bytes{1, 1})
                                 .timestamps(Tk, 1001)
                                 .build());

  // A retransmitted SYN-ACK (our ACK was lost) gets the same ACK again.
  Gateway::Out o3b;
  ASSERT_EQ(gw.backend_packet(bsynack, &o3b), SynProxyCounter::kBackendSynAckRetransmit);
  ASSERT_EQ(o3b.to_backend.size(), 1u);
  EXPECT_EQ(o3b.to_backend[0], final_ack);
  EXPECT_TRUE(o3b.to_client.empty());

  // 4. Client data -> backend: ack and TSecr in the backend's numbers.
  const std::string req = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
  Gateway::Out o4;
  ASSERT_EQ(gw.client_packet(from_client(f)
                                 .seq(C + 1)
                                 .ack_seq(K + 1)
                                 .psh()
                                 .window(502)
                                 .tcp_raw_options(Bytes{1, 1})
                                 .timestamps(1002, Tk)
                                 .payload(req)
                                 .build(),
                             &o4),
            SynProxyCounter::kTranslatedToBackend);
  ASSERT_EQ(o4.to_backend.size(), 1u);
  EXPECT_EQ(o4.to_backend[0], from_client(f)
                                  .seq(C + 1)
                                  .ack_seq(B + 1)
                                  .psh()
                                  .window(502)
                                  .tcp_raw_options(Bytes{1, 1})
                                  .timestamps(1002, kBackendTs)
                                  .payload(req)
                                  .build());
  const uint32_t cnext = C + 1 + static_cast<uint32_t>(req.size());

  // 5. Backend data -> client: seq and TSval in the client's numbers.
  const Bytes body(1000, 'r');
  Gateway::Out o5;
  ASSERT_EQ(gw.backend_packet(from_backend(f)
                                  .seq(B + 1)
                                  .ack_seq(cnext)
                                  .psh()
                                  .window(100)
                                  .tcp_raw_options(Bytes{1, 1})
                                  .timestamps(kBackendTs + 10, 1002)
                                  .payload(body)
                                  .build(),
                              &o5),
            SynProxyCounter::kTranslatedToClient);
  ASSERT_EQ(o5.to_client.size(), 1u);
  EXPECT_EQ(o5.to_client[0], from_backend(f)
                                 .seq(K + 1)
                                 .ack_seq(cnext)
                                 .psh()
                                 .window(400)
                                 .tcp_raw_options(Bytes{1, 1})
                                 .timestamps(Tk + 10, 1002)
                                 .payload(body)
                                 .build());

  // 6. The client SACKs the backend's second segment (first one lost).
  const SackBlock client_view[] = {{K + 1001, K + 2001}};
  const SackBlock backend_view[] = {{B + 1001, B + 2001}};
  Gateway::Out o6;
  ASSERT_EQ(gw.client_packet(from_client(f)
                                 .seq(cnext)
                                 .ack_seq(K + 1)
                                 .window(502)
                                 .tcp_raw_options(Bytes{1, 1})
                                 .timestamps(1003, Tk + 10)
                                 .tcp_raw_options(Bytes{1, 1})
                                 .sack(client_view)
                                 .build(),
                             &o6),
            SynProxyCounter::kTranslatedToBackend);
  ASSERT_EQ(o6.to_backend.size(), 1u);
  EXPECT_EQ(o6.to_backend[0], from_client(f)
                                  .seq(cnext)
                                  .ack_seq(B + 1)
                                  .window(502)
                                  .tcp_raw_options(Bytes{1, 1})
                                  .timestamps(1003, kBackendTs + 10)
                                  .tcp_raw_options(Bytes{1, 1})
                                  .sack(backend_view)
                                  .build());

  // 7. FIN both ways.
  Gateway::Out o7;
  ASSERT_EQ(gw.backend_packet(from_backend(f)
                                  .seq(B + 2001)
                                  .ack_seq(cnext)
                                  .fin()
                                  .tcp_raw_options(Bytes{1, 1})
                                  .timestamps(kBackendTs + 20, 1003)
                                  .build(),
                              &o7),
            SynProxyCounter::kTranslatedToClient);
  EXPECT_EQ(o7.to_client.at(0), from_backend(f)
                                    .seq(K + 2001)
                                    .ack_seq(cnext)
                                    .fin()
                                    .tcp_raw_options(Bytes{1, 1})
                                    .timestamps(Tk + 20, 1003)
                                    .build());
  Gateway::Out o8;
  ASSERT_EQ(gw.client_packet(from_client(f)
                                 .seq(cnext)
                                 .ack_seq(K + 2002)
                                 .fin()
                                 .tcp_raw_options(Bytes{1, 1})
                                 .timestamps(1004, Tk + 20)
                                 .build(),
                             &o8),
            SynProxyCounter::kTranslatedToBackend);
  EXPECT_EQ(o8.to_backend.at(0), from_client(f)
                                     .seq(cnext)
                                     .ack_seq(B + 2002)
                                     .fin()
                                     .tcp_raw_options(Bytes{1, 1})
                                     .timestamps(1004, kBackendTs + 20)
                                     .build());

  // Everything that left the gateway has a right checksum (full recompute).
  for (const Gateway::Out* o : {&o1, &o2, &o3, &o3b, &o4, &o5, &o6, &o7, &o8}) {
    for (const auto* v : {&o->to_client, &o->to_backend}) {
      for (const Bytes& b : *v) {
        const PacketMeta m = parse_ok(b);
        EXPECT_TRUE(l4_checksum_ok(b.data(), m));
      }
    }
  }
}

TEST(SynFloodTest, SpoofedSynsGetCookiesAndCreateNothingThenARealClientConnects) {
  ManualClock clock(kStart);
  Gateway gw(&clock);
  const size_t table_bytes = gw.table().memory_bytes();
  SplitMix64 rng(2024);
  int bad_synack = 0;
  for (int i = 0; i < kFlood; ++i) {
    const Family f = i % 4 == 3 ? Family::kIpv6 : Family::kIpv4;
    const uint32_t isn = static_cast<uint32_t>(rng.next());
    PacketBuilder b = spoofed(rng, f).seq(isn).syn();
    if (i % 2) b.mss(1460).sack_permitted().timestamps(static_cast<uint32_t>(rng.next()), 0);
    if (i % 3) b.tcp_raw_options(Bytes{1}).wscale(static_cast<uint8_t>(rng.below(15)));
    const Bytes syn = b.build();
    const PacketMeta m = parse_ok(syn);
    Gateway::Out out;
    if (gw.client_packet(syn, &out) != SynProxyCounter::kSynCookieSent || out.created != 0 ||
        out.to_client.size() != 1 || !out.to_backend.empty()) {
      ++bad_synack;
      continue;
    }
    // A SYN-ACK back to the spoofed source, acknowledging its ISN.
    const Bytes& sa = out.to_client[0];
    PacketMeta sm;
    const bool ok =
        parse_packet(sa.data(), static_cast<uint32_t>(sa.size()), &sm) == ParseError::kOk &&
        l4_checksum_ok(sa.data(), sm) && sm.tcp_flags == (kTcpSyn | kTcpAck) &&
        sm.tcp_ack == isn + 1 && sm.dport == m.sport && sm.sport == kVipPort &&
        std::memcmp(sa.data() + sm.dst_off, syn.data() + m.src_off, m.addr_len()) == 0;
    if (!ok) ++bad_synack;
    if (i % 1000 == 0) clock.advance_ns(1'000'000'000);  // the flood lasts 100 s: slots turn
    gw.proxy().advance(clock.now_ns());
  }
  EXPECT_EQ(bad_synack, 0);
  // No state anywhere: the table is empty and untouched, nothing was created.
  EXPECT_EQ(gw.table().size(), 0u);
  EXPECT_EQ(gw.table().counters().get(ConnTableCounter::kInserted), 0u);
  EXPECT_EQ(gw.table().memory_bytes(), table_bytes);
  EXPECT_EQ(gw.created(), 0u);
  expect_only(gw.proxy(),
              {{SynProxyCounter::kSynCookieSent, kFlood}, {SynProxyCounter::kKeyRotation, 1}});

  // Spoofed ACKs guessing cookies: all dropped, still nothing created.
  for (int i = 0; i < kFlood; ++i) {
    const Family f = i % 4 == 3 ? Family::kIpv6 : Family::kIpv4;
    PacketBuilder b = spoofed(rng, f)
                          .seq(static_cast<uint32_t>(rng.next()))
                          .ack_seq(static_cast<uint32_t>(rng.next()));
    if (i % 2) b.tcp_raw_options(Bytes{1, 1}).timestamps(1, static_cast<uint32_t>(rng.next()));
    Gateway::Out out;
    const SynProxyCounter r = gw.client_packet(b.build(), &out);
    if (r != SynProxyCounter::kDropBadCookie || out.created != 0 || !out.to_backend.empty()) {
      ADD_FAILURE() << "spoofed ACK " << i << ": " << to_string(r);
      break;
    }
  }
  EXPECT_EQ(gw.table().size(), 0u);
  EXPECT_EQ(gw.created(), 0u);
  expect_only(gw.proxy(), {{SynProxyCounter::kSynCookieSent, kFlood},
                           {SynProxyCounter::kKeyRotation, 1},
                           {SynProxyCounter::kDropBadCookie, kFlood}});

  // And a real client still gets through.
  legitimate_connection(gw, Family::kIpv4);
  EXPECT_EQ(gw.table().size(), 1u);
  EXPECT_EQ(gw.proxy().counters().get(SynProxyCounter::kCookieValid), 1u);
  EXPECT_EQ(gw.proxy().counters().get(SynProxyCounter::kBackendOpen), 1u);
}

class Connection : public ::testing::TestWithParam<Family> {};

TEST_P(Connection, HandshakeAndDataBothWays) {
  ManualClock clock(kStart);
  Gateway gw(&clock);
  legitimate_connection(gw, GetParam());
  expect_only(gw.proxy(), {{SynProxyCounter::kSynCookieSent, 1},
                           {SynProxyCounter::kCookieValid, 1},
                           {SynProxyCounter::kBackendSynBuilt, 1},
                           {SynProxyCounter::kBackendOpen, 1},
                           {SynProxyCounter::kBackendSynAckRetransmit, 1},
                           {SynProxyCounter::kBackendAckBuilt, 2},
                           {SynProxyCounter::kClientWindowUpdateBuilt, 1},
                           {SynProxyCounter::kTranslatedToBackend, 3},
                           {SynProxyCounter::kTranslatedToClient, 2}});
}

INSTANTIATE_TEST_SUITE_P(Families, Connection, ::testing::Values(Family::kIpv4, Family::kIpv6),
                         [](const auto& p) {
                           return p.param == Family::kIpv4 ? std::string("v4") : std::string("v6");
                         });

// The client's ACK may come from a later slot than its SYN-ACK (it waited),
// up to the age limit (2 slots); one slot later it is counted as expired,
// and later still (both keys rotated since) as a bad cookie.
TEST(SynFloodTest, SlowClientConnectsWithinTheAgeLimitOnly) {
  const struct {
    uint64_t wait_s;
    SynProxyCounter want;
  } cases[] = {
      {100, SynProxyCounter::kBackendSynBuilt},    // slot 14 -> 15
      {180, SynProxyCounter::kBackendSynBuilt},    // slot 14 -> 16
      {200, SynProxyCounter::kDropCookieExpired},  // slot 14 -> 17
      {300, SynProxyCounter::kDropBadCookie},      // slot 14 -> 18, two rotations
  };
  for (const auto& c : cases) {
    ManualClock clock(900'000'000'000);  // 900 s: slot 14 (896-960 s), key epoch 7
    Gateway gw(&clock);
    Gateway::Out o1;
    ASSERT_EQ(gw.client_packet(from_client(Family::kIpv4).seq(5).syn().build(), &o1),
              SynProxyCounter::kSynCookieSent);
    const uint32_t k = parse_ok(o1.to_client.at(0)).tcp_seq;
    clock.advance_ns(c.wait_s * 1'000'000'000);
    gw.proxy().advance(clock.now_ns());
    Gateway::Out o2;
    EXPECT_EQ(gw.client_packet(from_client(Family::kIpv4).seq(6).ack_seq(k + 1).build(), &o2),
              c.want)
        << c.wait_s;
    EXPECT_EQ(gw.table().size(), c.want == SynProxyCounter::kBackendSynBuilt ? 1u : 0u);
  }
}

}  // namespace
}  // namespace tripod
