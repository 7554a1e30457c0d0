#include "nf/synproxy/handshake.h"

#include <gtest/gtest.h>

#include <optional>
#include <string>

#include "nf/synproxy/test_util.h"

namespace tripod {
namespace {

using namespace sptest;

constexpr uint64_t kNow = 1'000'000'000'000;  // 1000 s
constexpr uint32_t kClientIsn = 0x12345678;
constexpr uint32_t kClientTs = 500000;

struct ClientSyn {
  std::optional<uint16_t> mss;
  std::optional<uint8_t> wscale;
  bool sack = false;
  bool ts = false;
  bool ecn_setup = false;  // ECE|CWR
};

// What must come out: the SYN-ACK's options and what the ACK decodes to.
struct Expect {
  uint16_t carried_mss;
  std::optional<uint8_t> client_wscale;  // carried to the backend
  bool sack;
  bool ts;
  bool ecn;
};

struct OptionCase {
  std::string name;
  Family family;
  ClientSyn syn;
  SynProxyVip vip;
  Expect want;
};

SynProxyVip vip_with(void (*f)(SynProxyVip&)) {
  SynProxyVip v;
  f(v);
  return v;
}

std::vector<OptionCase> option_cases() {
  const ClientSyn linux_syn{1460, 7, true, true, false};
  const ClientSyn windows_syn{1460, 8, true, false, false};
  return {
      {"linux_v4", Family::kIpv4, linux_syn, {}, {1460, 7, true, true, false}},
      {"linux_v6", Family::kIpv6, {1440, 7, true, true, false}, {}, {1440, 7, true, true, false}},
      // No timestamps: window scale and SACK ride in the ISN (README).
      {"windows_no_ts_v4", Family::kIpv4, windows_syn, {}, {1460, 8, true, false, false}},
      {"windows_no_ts_v6", Family::kIpv6, windows_syn, {}, {1440, 8, true, false, false}},
      {"bare_syn_v4", Family::kIpv4, {}, {}, {536, std::nullopt, false, false, false}},
      {"bare_syn_v6", Family::kIpv6, {}, {}, {1220, std::nullopt, false, false, false}},
      {"mss_rounded_down",
       Family::kIpv4,
       {1400, 2, false, true, false},
       {},
       {1300, 2, false, true, false}},
      {"jumbo_v6", Family::kIpv6, {9000, 14, true, true, false}, {}, {8940, 14, true, true, false}},
      {"wscale_0_kept",
       Family::kIpv4,
       {1460, 0, false, false, false},
       {},
       {1460, 0, false, false, false}},
      {"vip_without_sack_or_wscale",
       Family::kIpv4,
       linux_syn,
       vip_with([](SynProxyVip& v) { v.sack = false, v.window_scaling = false; }),
       {1460, std::nullopt, false, true, false}},
      {"vip_without_timestamps",
       Family::kIpv4,
       linux_syn,
       vip_with([](SynProxyVip& v) { v.timestamps = false; }),
       {1460, 7, true, false, false}},
      {"ecn_agreed",
       Family::kIpv4,
       {1460, 7, true, true, true},
       vip_with([](SynProxyVip& v) { v.ecn = true; }),
       {1460, 7, true, true, true}},
      {"ecn_not_offered_by_vip",
       Family::kIpv4,
       {1460, 7, true, true, true},
       {},
       {1460, 7, true, true, false}},
      {"ecn_needs_timestamps",
       Family::kIpv6,
       {1460, 7, true, false, true},
       vip_with([](SynProxyVip& v) { v.ecn = true; }),
       {1440, 7, true, false, false}},
      {"vip_wscale_9_mss_1400",
       Family::kIpv4,
       linux_syn,
       vip_with([](SynProxyVip& v) { v.wscale = 9, v.mss = 1400, v.ttl = 55; }),
       {1460, 7, true, true, false}},
  };
}

void PrintTo(const OptionCase& c, std::ostream* os) {
  *os << c.name;
}

class OptionSurvival : public ::testing::TestWithParam<OptionCase> {};

// SYN -> SYN-ACK (byte-exact, cookie in ISN/TSval) -> ACK echo -> decode ->
// backend SYN (byte-exact) carrying the client's options.
TEST_P(OptionSurvival, SynToSynAckToAckToBackendSyn) {
  const OptionCase& c = GetParam();
  const Family f = c.family;
  SynProxy proxy(test_master(), CookieConfig{}, kNow);

  PacketBuilder sb = from_client(f).seq(kClientIsn).syn().window(64240);
  if (c.syn.mss) sb.mss(*c.syn.mss);
  if (c.syn.sack) sb.sack_permitted();
  if (c.syn.ts) sb.timestamps(kClientTs, 0);
  if (c.syn.wscale) sb.tcp_raw_options(Bytes{1}).wscale(*c.syn.wscale);
  if (c.syn.ecn_setup) sb.flags(kTcpSyn | kTcpEce | kTcpCwr);
  const Bytes syn = sb.build();
  const PacketMeta sm = parse_ok(syn);

  uint8_t buf[256];
  uint32_t len = 0;
  ASSERT_EQ(proxy.answer_syn(syn.data(), sm, c.vip, kNow, buf, sizeof buf, &len),
            SynProxyCounter::kSynCookieSent);
  const Bytes synack(buf, buf + len);
  const PacketMeta am = parse_ok(synack);
  ASSERT_TRUE(l4_checksum_ok(synack.data(), am));
  const TcpOptions ao = options_of(synack);
  const uint32_t cookie = am.tcp_seq;
  EXPECT_EQ(ao.has_timestamps, c.want.ts);
  if (c.want.ts) {
    EXPECT_EQ(ao.ts_ecr, kClientTs);
  }

  // The whole SYN-ACK, byte for byte, in the layout Linux uses.
  PacketBuilder eb = to_client(f)
                         .ttl(c.vip.ttl)
                         .seq(cookie)
                         .ack_seq(kClientIsn + 1)
                         .flags(kTcpSyn | kTcpAck | (c.want.ecn ? kTcpEce : 0))
                         .window(0)
                         .mss(c.vip.mss);
  if (c.want.ts) {
    if (c.want.sack) {
      eb.sack_permitted();
    } else {
      eb.tcp_raw_options(Bytes{1, 1});
    }
    eb.timestamps(ao.ts_val, kClientTs);
  } else if (c.want.sack) {
    eb.tcp_raw_options(Bytes{1, 1}).sack_permitted();
  }
  if (c.want.client_wscale) eb.tcp_raw_options(Bytes{1}).wscale(c.vip.wscale);
  EXPECT_EQ(synack, eb.build());

  // The client's ACK: echoes the TSval if timestamps were agreed.
  PacketBuilder ab = from_client(f).seq(kClientIsn + 1).ack_seq(cookie + 1).window(502);
  if (c.want.ts) ab.tcp_raw_options(Bytes{1, 1}).timestamps(kClientTs + 7, ao.ts_val);
  const Bytes ack = ab.build();
  const PacketMeta km = parse_ok(ack);
  CookieAck got;
  ASSERT_EQ(proxy.check_ack(ack.data(), km, kNow + 3'000'000'000, &got),
            SynProxyCounter::kCookieValid);
  EXPECT_EQ(got.client_isn, kClientIsn);
  EXPECT_EQ(got.cookie_isn, cookie);
  EXPECT_EQ(got.mss, c.want.carried_mss);
  EXPECT_EQ(got.opts.wscale, c.want.client_wscale.value_or(kNoWscale));
  EXPECT_EQ(got.opts.sack_permitted, c.want.sack);
  EXPECT_EQ(got.opts.timestamps, c.want.ts);
  EXPECT_EQ(got.opts.ecn, c.want.ecn);
  EXPECT_EQ(got.client_window, 502);
  EXPECT_EQ(got.payload_len, 0);
  if (c.want.ts) {
    EXPECT_EQ(got.client_tsval, kClientTs + 7);
    EXPECT_EQ(got.synack_tsval, ao.ts_val);
  }

  // The SYN to the backend, byte for byte.
  BuiltFrame bf;
  ASSERT_EQ(build_backend_syn(ack.data(), km, got, buf, sizeof buf, &bf),
            SynProxyCounter::kBackendSynBuilt);
  const Bytes bsyn(buf, buf + bf.len);
  const uint8_t shift = c.want.client_wscale.value_or(0);
  PacketBuilder wb = from_client(f)
                         .seq(kClientIsn)
                         .flags(kTcpSyn | (c.want.ecn ? kTcpEce | kTcpCwr : 0))
                         .window(static_cast<uint16_t>(std::min(502u << shift, 65535u)))
                         .mss(c.want.carried_mss);
  if (c.want.ts) {
    if (c.want.sack) {
      wb.sack_permitted();
    } else {
      wb.tcp_raw_options(Bytes{1, 1});
    }
    wb.timestamps(kClientTs + 7, 0);
  } else if (c.want.sack) {
    wb.tcp_raw_options(Bytes{1, 1}).sack_permitted();
  }
  if (c.want.client_wscale) wb.tcp_raw_options(Bytes{1}).wscale(*c.want.client_wscale);
  EXPECT_EQ(bsyn, wb.build());
  const PacketMeta bm = parse_ok(bsyn);
  EXPECT_EQ(std::memcmp(&bm, &bf.meta, sizeof bm), 0) << "built meta differs from the parser's";
}

INSTANTIATE_TEST_SUITE_P(Cases, OptionSurvival, ::testing::ValuesIn(option_cases()),
                         [](const auto& p) { return p.param.name; });

// --- malformed input: counted drops, nothing written ---

struct DropCase {
  std::string name;
  Bytes pkt;
  bool as_syn;  // answer_syn, else check_ack
  SynProxyCounter want;
};

std::vector<DropCase> drop_cases() {
  const Family f = Family::kIpv4;
  Bytes truncated_opt = from_client(f).seq(1).syn().tcp_raw_options(Bytes{2, 6, 5, 0}).build();
  Bytes mss_len_past_header =
      from_client(f).seq(1).syn().tcp_raw_options(Bytes{1, 1, 8, 40}).build();
  Bytes ack_bad_opt =
      from_client(f).seq(2).ack_seq(1000).tcp_raw_options(Bytes{8, 10, 0, 0}).build();
  Bytes ack_len_1 = from_client(f).seq(2).ack_seq(1000).tcp_raw_options(Bytes{3, 1, 0, 0}).build();
  return {
      {"syn_mss_wrong_length", truncated_opt, true, SynProxyCounter::kDropSynBadOptions},
      {"syn_option_past_header", mss_len_past_header, true, SynProxyCounter::kDropSynBadOptions},
      {"syn_ack_is_not_a_syn", from_client(f).syn().ack_seq(1).build(), true,
       SynProxyCounter::kDropSynBadFlags},
      {"syn_fin", from_client(f).syn().fin().build(), true, SynProxyCounter::kDropSynBadFlags},
      {"syn_rst", from_client(f).syn().rst().build(), true, SynProxyCounter::kDropSynBadFlags},
      {"plain_ack_as_syn", from_client(f).ack_seq(1).build(), true,
       SynProxyCounter::kDropSynBadFlags},
      {"udp_as_syn", PacketBuilder().ipv4("198.51.100.7", "192.0.2.10").udp(1, 443).build(), true,
       SynProxyCounter::kDropSynBadFlags},
      {"syn_first_fragment",
       PacketBuilder()
           .ipv4("198.51.100.7", "192.0.2.10")
           .fragment(0, true, 9)
           .tcp(1, 443)
           .syn()
           .payload(Bytes(16, 0))
           .build(),
       true, SynProxyCounter::kDropSynBadFlags},
      {"ack_garbage_cookie", from_client(f).seq(2).ack_seq(0xCAFEBABE).build(), false,
       SynProxyCounter::kDropBadCookie},
      {"ack_garbage_cookie_with_ts",
       from_client(f).seq(2).ack_seq(0xCAFEBABE).timestamps(1, 0xFFFFFFFF).build(), false,
       SynProxyCounter::kDropBadCookie},
      {"ack_zero", from_client(f).ack_seq(0).build(), false, SynProxyCounter::kDropBadCookie},
      {"ack_truncated_timestamp", ack_bad_opt, false, SynProxyCounter::kDropAckBadOptions},
      {"ack_option_length_1", ack_len_1, false, SynProxyCounter::kDropAckBadOptions},
      {"rst_ack", from_client(f).ack_seq(5).rst().build(), false,
       SynProxyCounter::kDropAckBadFlags},
      {"syn_ack_from_client", from_client(f).ack_seq(5).syn().build(), false,
       SynProxyCounter::kDropAckBadFlags},
      {"no_ack_flag", from_client(f).seq(5).psh().payload("x").build(), false,
       SynProxyCounter::kDropAckBadFlags},
      {"udp_as_ack", PacketBuilder().ipv6("2001:db8::1", "2001:db8::2").udp(1, 2).build(), false,
       SynProxyCounter::kDropAckBadFlags},
  };
}

void PrintTo(const DropCase& c, std::ostream* os) {
  *os << c.name;
}

class Malformed : public ::testing::TestWithParam<DropCase> {};

TEST_P(Malformed, IsACountedDrop) {
  const DropCase& c = GetParam();
  SynProxy proxy(test_master(), CookieConfig{}, kNow);
  PacketMeta m;
  ASSERT_EQ(parse_packet(c.pkt.data(), static_cast<uint32_t>(c.pkt.size()), &m), ParseError::kOk);
  uint8_t buf[256];
  std::memset(buf, 0xAA, sizeof buf);
  if (c.as_syn) {
    uint32_t len = 77;
    EXPECT_EQ(proxy.answer_syn(c.pkt.data(), m, {}, kNow, buf, sizeof buf, &len), c.want);
    EXPECT_EQ(len, 0u);
  } else {
    CookieAck a;
    a.mss = 9;
    EXPECT_EQ(proxy.check_ack(c.pkt.data(), m, kNow, &a), c.want);
    EXPECT_EQ(a.mss, 9) << "output written on a drop";
  }
  EXPECT_TRUE(is_drop(c.want));
  for (uint8_t b : buf)
    ASSERT_EQ(b, 0xAA);
}

INSTANTIATE_TEST_SUITE_P(Cases, Malformed, ::testing::ValuesIn(drop_cases()),
                         [](const auto& p) { return p.param.name; });

TEST(HandshakeTest, OutputBufferTooSmallIsCounted) {
  SynProxy proxy(test_master(), CookieConfig{}, kNow);
  const Bytes syn = from_client(Family::kIpv6).seq(1).syn().mss(1460).timestamps(1, 0).build();
  const PacketMeta m = parse_ok(syn);
  uint8_t buf[256];
  uint32_t len = 0;
  // 14 + 40 + 20 + 4 (MSS) + 12 (NOP NOP TS) = 90 bytes.
  EXPECT_EQ(proxy.answer_syn(syn.data(), m, {}, kNow, buf, 89, &len), SynProxyCounter::kDropNoRoom);
  EXPECT_EQ(len, 0u);
  EXPECT_EQ(proxy.answer_syn(syn.data(), m, {}, kNow, buf, 90, &len),
            SynProxyCounter::kSynCookieSent);
  EXPECT_EQ(len, 90u);
}

TEST(HandshakeTest, VlanTagAndIpv4OptionsOfTheSyn) {
  SynProxy proxy(test_master(), CookieConfig{}, kNow);
  const uint8_t rr[] = {1, 7, 7, 4, 0, 0, 0, 0};
  const Bytes syn = PacketBuilder()
                        .eth(kClientMac, kGatewayMac)
                        .vlan(42, 3)
                        .ipv4(client_ip(Family::kIpv4), vip_ip(Family::kIpv4))
                        .ipv4_options(rr)
                        .tcp(kClientPort, kVipPort)
                        .seq(9)
                        .syn()
                        .build();
  const PacketMeta m = parse_ok(syn);
  uint8_t buf[256];
  uint32_t len = 0;
  ASSERT_EQ(proxy.answer_syn(syn.data(), m, {}, kNow, buf, sizeof buf, &len),
            SynProxyCounter::kSynCookieSent);
  const Bytes synack(buf, buf + len);
  const PacketMeta am = parse_ok(synack);
  // Same tag, back to the sender; the IP options are not echoed.
  const Bytes want = PacketBuilder()
                         .eth(kGatewayMac, kClientMac)
                         .vlan(42, 3)
                         .ipv4(vip_ip(Family::kIpv4), client_ip(Family::kIpv4))
                         .dont_fragment()
                         .tcp(kVipPort, kClientPort)
                         .seq(am.tcp_seq)
                         .ack_seq(10)
                         .flags(kTcpSyn | kTcpAck)
                         .window(0)
                         .mss(1460)
                         .build();
  EXPECT_EQ(synack, want);
}

// RFC 7323 3.2: once timestamps are agreed the client must send them; an
// ACK without them is not ours (Linux would accept it and drop the options;
// here the MAC covers the timestamp flag, so it fails).
TEST(HandshakeTest, AckWithoutTheAgreedTimestampsIsRejected) {
  SynProxy proxy(test_master(), CookieConfig{}, kNow);
  const Bytes syn = from_client(Family::kIpv4).seq(1).syn().mss(1460).timestamps(5, 0).build();
  uint8_t buf[256];
  uint32_t len = 0;
  ASSERT_EQ(proxy.answer_syn(syn.data(), parse_ok(syn), {}, kNow, buf, sizeof buf, &len),
            SynProxyCounter::kSynCookieSent);
  const PacketMeta am = parse_ok(Bytes(buf, buf + len));
  const Bytes ack = from_client(Family::kIpv4).seq(2).ack_seq(am.tcp_seq + 1).build();
  CookieAck a;
  EXPECT_EQ(proxy.check_ack(ack.data(), parse_ok(ack), kNow, &a), SynProxyCounter::kDropBadCookie);
}

TEST(HandshakeTest, AckWithDataIsValidAndReportsThePayload) {
  SynProxy proxy(test_master(), CookieConfig{}, kNow);
  const Bytes syn = from_client(Family::kIpv4).seq(100).syn().build();
  uint8_t buf[256];
  uint32_t len = 0;
  ASSERT_EQ(proxy.answer_syn(syn.data(), parse_ok(syn), {}, kNow, buf, sizeof buf, &len),
            SynProxyCounter::kSynCookieSent);
  const PacketMeta am = parse_ok(Bytes(buf, buf + len));
  const Bytes ack =
      from_client(Family::kIpv4).seq(101).ack_seq(am.tcp_seq + 1).psh().payload("GET /").build();
  CookieAck a;
  ASSERT_EQ(proxy.check_ack(ack.data(), parse_ok(ack), kNow, &a), SynProxyCounter::kCookieValid);
  EXPECT_EQ(a.payload_len, 5);
}

// The handshake ACK was lost: the client, held by our zero window, sends a
// zero-window probe with seq = its ISN (SND.UNA - 1); it still opens the
// connection, with the right ISN toward the backend.
TEST(HandshakeTest, ZeroWindowProbeAfterALostAckIsAccepted) {
  for (Family f : {Family::kIpv4, Family::kIpv6}) {
    SynProxy proxy(test_master(), CookieConfig{}, kNow);
    const Bytes syn = from_client(f)
                          .seq(kClientIsn)
                          .syn()
                          .mss(1460)
                          .timestamps(10, 0)
                          .tcp_raw_options(Bytes{1})
                          .wscale(6)
                          .build();
    uint8_t buf[256];
    uint32_t len = 0;
    ASSERT_EQ(proxy.answer_syn(syn.data(), parse_ok(syn), {}, kNow, buf, sizeof buf, &len),
              SynProxyCounter::kSynCookieSent);
    const Bytes synack(buf, buf + len);
    const PacketMeta am = parse_ok(synack);
    const uint32_t tsval = options_of(synack).ts_val;
    const Bytes probe = from_client(f)
                            .seq(kClientIsn)
                            .ack_seq(am.tcp_seq + 1)
                            .tcp_raw_options(Bytes{1, 1})
                            .timestamps(300, tsval)
                            .build();
    const PacketMeta pm = parse_ok(probe);
    CookieAck a;
    ASSERT_EQ(proxy.check_ack(probe.data(), pm, kNow, &a), SynProxyCounter::kCookieValid);
    EXPECT_EQ(a.client_isn, kClientIsn);
    EXPECT_EQ(a.opts.wscale, 6);
    BuiltFrame bf;
    ASSERT_EQ(build_backend_syn(probe.data(), pm, a, buf, sizeof buf, &bf),
              SynProxyCounter::kBackendSynBuilt);
    EXPECT_EQ(bf.meta.tcp_seq, kClientIsn);
    // Not for segments with data or FIN: those always carry ISN + 1 or more.
    const Bytes with_data = from_client(f)
                                .seq(kClientIsn)
                                .ack_seq(am.tcp_seq + 1)
                                .tcp_raw_options(Bytes{1, 1})
                                .timestamps(300, tsval)
                                .payload("x")
                                .build();
    EXPECT_EQ(proxy.check_ack(with_data.data(), parse_ok(with_data), kNow, &a),
              SynProxyCounter::kDropBadCookie);
    const Bytes fin = from_client(f)
                          .seq(kClientIsn)
                          .ack_seq(am.tcp_seq + 1)
                          .fin()
                          .tcp_raw_options(Bytes{1, 1})
                          .timestamps(300, tsval)
                          .build();
    EXPECT_EQ(proxy.check_ack(fin.data(), parse_ok(fin), kNow, &a),
              SynProxyCounter::kDropBadCookie);
  }
}

// The backend turned our SYN away (its bare ACK): the client is asked for its
// ACK again with a segment one below its RCV.NXT, our SYN-ACK's TSval (so
// PAWS passes) and a zero window; its duplicate ACK is a valid cookie ACK.
TEST(HandshakeTest, ClientAckRequestIsOutOfTheClientsWindow) {
  for (Family f : {Family::kIpv4, Family::kIpv6}) {
    SynProxy proxy(test_master(), CookieConfig{}, kNow);
    const Bytes syn = from_client(f).seq(kClientIsn).syn().mss(1460).timestamps(10, 0).build();
    uint8_t buf[256];
    uint32_t len = 0;
    ASSERT_EQ(proxy.answer_syn(syn.data(), parse_ok(syn), {}, kNow, buf, sizeof buf, &len),
              SynProxyCounter::kSynCookieSent);
    const Bytes synack(buf, buf + len);
    const PacketMeta am = parse_ok(synack);
    const uint32_t tsval = options_of(synack).ts_val;
    const Bytes ack =
        from_client(f).seq(kClientIsn + 1).ack_seq(am.tcp_seq + 1).timestamps(300, tsval).build();
    CookieAck a;
    ASSERT_EQ(proxy.check_ack(ack.data(), parse_ok(ack), kNow, &a), SynProxyCounter::kCookieValid);
    const SynProxyState st = synproxy_begin(a, SynProxyVip{});
    const Bytes bare = from_backend(f).seq(777).ack_seq(5555).build();
    BuiltFrame bf;
    ASSERT_EQ(build_client_ack_request(st, bare.data(), parse_ok(bare), buf, sizeof buf, &bf),
              SynProxyCounter::kClientAckRequestBuilt);
    const Bytes req(buf, buf + bf.len);
    EXPECT_EQ(bf.meta.tcp_flags, kTcpAck);
    EXPECT_EQ(bf.meta.tcp_seq, am.tcp_seq);  // our ISN: the client expects ISN + 1
    EXPECT_EQ(bf.meta.tcp_ack, kClientIsn + 1);
    EXPECT_EQ(bf.meta.tcp_window, 0);
    EXPECT_TRUE(l4_checksum_ok(req.data(), bf.meta));
    const TcpOptions o = options_of(req);
    EXPECT_TRUE(o.has_timestamps);
    EXPECT_EQ(o.ts_val, tsval);
    // The client's answer, built from the request as its stack would (seq =
    // the request's ack, ack = RCV.NXT = the request's seq + 1, TSecr = the
    // TSval it holds, the request's), is a valid cookie ACK.
    const Bytes dup = from_client(f)
                          .seq(bf.meta.tcp_ack)
                          .ack_seq(bf.meta.tcp_seq + 1)
                          .timestamps(301, o.ts_val)
                          .build();
    ASSERT_EQ(proxy.check_ack(dup.data(), parse_ok(dup), kNow, &a), SynProxyCounter::kCookieValid);
    EXPECT_EQ(a.client_isn, kClientIsn);
    // Open, there is nothing to ask.
    SynProxyState open = st;
    open.flags |= kSpOpen;
    EXPECT_TRUE(
        is_drop(build_client_ack_request(open, bare.data(), parse_ok(bare), buf, sizeof buf, &bf)));
  }
}

// With options_without_timestamps off, a client without timestamps gets
// Linux's syncookie treatment: MSS only, on both legs.
TEST(HandshakeTest, LinuxStyleCookiesDropOptionsWithoutTimestamps) {
  SynProxy proxy(test_master(), CookieConfig{.options_without_timestamps = false}, kNow);
  const Bytes syn = from_client(Family::kIpv4)
                        .seq(kClientIsn)
                        .syn()
                        .mss(1460)
                        .sack_permitted()
                        .tcp_raw_options(Bytes{1})
                        .wscale(8)
                        .build();
  uint8_t buf[256];
  uint32_t len = 0;
  ASSERT_EQ(proxy.answer_syn(syn.data(), parse_ok(syn), {}, kNow, buf, sizeof buf, &len),
            SynProxyCounter::kSynCookieSent);
  const Bytes synack(buf, buf + len);
  const uint32_t k = parse_ok(synack).tcp_seq;
  EXPECT_EQ(synack, to_client(Family::kIpv4)
                        .seq(k)
                        .ack_seq(kClientIsn + 1)
                        .flags(kTcpSyn | kTcpAck)
                        .window(0)
                        .mss(1460)
                        .build());
  const Bytes ack = from_client(Family::kIpv4).seq(kClientIsn + 1).ack_seq(k + 1).build();
  const PacketMeta km = parse_ok(ack);
  CookieAck a;
  ASSERT_EQ(proxy.check_ack(ack.data(), km, kNow, &a), SynProxyCounter::kCookieValid);
  EXPECT_EQ(a.opts.wscale, kNoWscale);
  EXPECT_FALSE(a.opts.sack_permitted);
  BuiltFrame bf;
  ASSERT_EQ(build_backend_syn(ack.data(), km, a, buf, sizeof buf, &bf),
            SynProxyCounter::kBackendSynBuilt);
  EXPECT_EQ(Bytes(buf, buf + bf.len),
            from_client(Family::kIpv4).seq(kClientIsn).syn().window(65535).mss(1460).build());
}

TEST(HandshakeTest, KeyRotationsAreCounted) {
  SynProxy proxy(test_master(), CookieConfig{}, 0);
  const uint64_t slot = CookieConfig{}.slot_ns;
  proxy.advance(slot);  // epoch 0
  EXPECT_EQ(proxy.counters().get(SynProxyCounter::kKeyRotation), 0u);
  proxy.advance(2 * slot);
  EXPECT_EQ(proxy.counters().get(SynProxyCounter::kKeyRotation), 1u);
  proxy.rotate_keys();
  proxy.rotate_keys(test_master(5));
  EXPECT_EQ(proxy.counters().get(SynProxyCounter::kKeyRotation), 3u);
  EXPECT_EQ(proxy.keys().generation(), 3u);
}

TEST(HandshakeTest, CounterNames) {
  EXPECT_EQ(to_string(SynProxyCounter::kSynCookieSent), "syn_cookies_sent");
  EXPECT_EQ(to_string(SynProxyCounter::kCookieValid), "cookie_valid");
  EXPECT_EQ(to_string(SynProxyCounter::kDropBadCookie), "drop_bad_cookie");
  EXPECT_EQ(to_string(SynProxyCounter::kDropCookieExpired), "drop_cookie_expired");
  EXPECT_FALSE(is_drop(SynProxyCounter::kKeyRotation));
  EXPECT_TRUE(is_drop(SynProxyCounter::kDropNoRoom));
}

}  // namespace
}  // namespace tripod
