// Parser tests, L4: TCP / UDP / ICMP / ICMPv6 cases (including the quoted
// packet of ICMP errors) and the TCP options table.
#include <gtest/gtest.h>

#include "packet/parser_test_util.h"

namespace tripod::testing {
namespace {

template <class... T>
constexpr uint16_t F(T... f) {
  return static_cast<uint16_t>((0u | ... | f));
}

constexpr uint16_t kIcmpErr = kMetaHasL4 | kMetaIcmpError;

Bytes first(const Bytes& b, size_t n) {
  return Bytes(b.begin(), b.begin() + static_cast<long>(n));
}

// An ICMP error from a router back to 10.0.0.1 / 2001:db8::1.
Bytes icmp4_err(uint8_t type, uint8_t code, const Bytes& quote, uint32_t info = 0) {
  return PacketBuilder().ipv4("192.0.2.1", "10.0.0.1").icmp_error(type, code, quote, info).build();
}
Bytes icmp6_err(uint8_t type, uint8_t code, const Bytes& quote, uint32_t info = 0) {
  return PacketBuilder()
      .ipv6("2001:db8:1::1", "2001:db8::1")
      .icmp_error(type, code, quote, info)
      .build();
}

void expect_mtu(const Bytes& b, const PacketMeta& m, uint32_t mtu) {
  EXPECT_EQ(load_be32(b.data() + m.l4_off + 4), mtu);
}

}  // namespace

std::vector<ParseCase> l4_cases() {
  using E = ParseError;
  const Bytes v4tcp = v4().tcp(1000, 2000).build();  // TCP header at 34
  const Bytes v4udp = v4().udp(53, 5353).build();    // UDP header at 34
  const Bytes v6udp = v6().udp(53, 5353).build();    // UDP header at 54
  const Bytes in_tcp = v4().tcp(40000, 443).payload(bytes(100)).build_l3();
  const Bytes in_udp = v4().udp(5353, 53).payload(bytes(20)).build_l3();
  const Bytes in_echo = v4().icmp_echo(true, 0x4242, 1).payload(bytes(8)).build_l3();
  const Bytes in_err = icmp4_err(3, 1, first(in_tcp, 28));
  const Bytes in_err_l3(in_err.begin() + 14, in_err.end());
  const Bytes in6_tcp = v6().tcp(40000, 443).payload(bytes(1200)).build_l3();
  const Bytes in6_udp_ext = v6().ipv6_ext(60).udp(5000, 53).payload(bytes(4)).build_l3();
  Bytes in6_nine_ext_b;
  {
    PacketBuilder b = v6();
    for (int i = 0; i < 9; ++i)
      b.ipv6_ext(60);
    in6_nine_ext_b = b.udp(1, 2).build_l3();
  }
  return {
      // --- TCP ---
      {"tcp_ack_psh_payload",
       v4().tcp(443, 50000)
           .seq(0x01020304)
           .ack_seq(0xA0B0C0D0)
           .psh()
           .window(512)
           .payload("hello")
           .build(),
       E::kOk,
       {.flags = kMetaHasL4,
        .proto = kProtoTcp,
        .l4_off = 34,
        .payload_off = 54,
        .l3_end = 59,
        .sport = 443,
        .dport = 50000,
        .tcp_seq = 0x01020304,
        .tcp_ack = 0xA0B0C0D0,
        .tcp_flags = kTcpAck | kTcpPsh,
        .tcp_hdr_len = 20,
        .tcp_window = 512}},
      {"tcp_all_flags", v4().tcp(1, 2).flags(0xFF).build(), E::kOk, {.tcp_flags = 0xFF}},
      {"tcp_truncated_by_total_length", v4().ip_total_length(39).tcp(1, 2).build(),
       E::kTruncatedTcp},
      {"tcp_data_offset_4", poke(v4tcp, 46, 0x40), E::kBadTcpHeaderLength},
      {"tcp_data_offset_past_datagram", poke(v4tcp, 46, 0xF0), E::kBadTcpHeaderLength},
      // Captured bytes past the datagram are padding, not TCP options.
      {"tcp_data_offset_into_padding", pad_to(poke(v4tcp, 46, 0x60), 80), E::kBadTcpHeaderLength},
      {"tcp_ipv6",
       v6().tcp(22, 60000).seq(5).ack_seq(6).build(),
       E::kOk,
       {.flags = kMetaHasL4,
        .family = Family::kIpv6,
        .proto = kProtoTcp,
        .l4_off = 54,
        .payload_off = 74,
        .sport = 22,
        .dport = 60000,
        .tcp_seq = 5,
        .tcp_ack = 6}},
      {"tcp_ipv6_truncated", v6().ip_total_length(19).tcp(1, 2).build(), E::kTruncatedTcp},

      // --- UDP ---
      {"udp_ipv4",
       v4().udp(53, 5353).payload("abc").build(),
       E::kOk,
       {.flags = kMetaHasL4,
        .proto = kProtoUdp,
        .l4_off = 34,
        .payload_off = 42,
        .l3_end = 45,
        .sport = 53,
        .dport = 5353}},
      {"udp_truncated", v4().ip_total_length(27).udp(1, 2).build(), E::kTruncatedUdp},
      {"udp_length_7", poke16(v4udp, 38, 7), E::kBadUdpLength},
      {"udp_length_past_datagram", poke16(v4udp, 38, 9), E::kBadUdpLength},
      {"udp_length_shorter_than_datagram",
       poke16(v4().udp(1, 2).payload(bytes(8)).build(), 38, 8),
       E::kOk,
       {.flags = kMetaHasL4, .payload_off = 42, .l3_end = 50}},
      {"udp_ipv6_length_past_datagram", poke16(v6udp, 58, 100), E::kBadUdpLength},

      // --- ICMP / ICMPv6 informational ---
      {"icmp_echo_request",
       v4().icmp_echo(true, 0x4242, 7).payload(bytes(56)).build(),
       E::kOk,
       {.flags = kMetaHasL4,
        .proto = kProtoIcmp,
        .l4_off = 34,
        .payload_off = 42,
        .l3_end = 98,
        .sport = 0x4242,
        .dport = 0x4242,
        .icmp_type = 8,
        .icmp_code = 0}},
      {"icmp_echo_reply",
       v4().icmp_echo(false, 9, 7).build(),
       E::kOk,
       {.flags = kMetaHasL4, .sport = 9, .dport = 9, .icmp_type = 0}},
      {"icmp_timestamp_request",
       v4().icmp_error(13, 0, bytes(12, 0)).build(),
       E::kOk,
       {.flags = kMetaHasL4, .sport = 0, .icmp_type = 13}},
      {"icmp_truncated", v4().ip_total_length(27).icmp_echo(true, 1, 1).build(), E::kTruncatedIcmp},
      {"icmpv6_echo_request",
       v6().icmp_echo(true, 0x99, 1).build(),
       E::kOk,
       {.flags = kMetaHasL4,
        .proto = kProtoIcmpv6,
        .l4_off = 54,
        .payload_off = 62,
        .sport = 0x99,
        .dport = 0x99,
        .icmp_type = 128}},
      {"icmpv6_echo_reply", v6().icmp_echo(false, 0x99, 1).build(), E::kOk, {.icmp_type = 129}},
      {"icmpv6_neighbor_solicitation",
       v6().icmp_error(135, 0, bytes(16)).build(),
       E::kOk,
       {.flags = kMetaHasL4, .payload_off = 62, .icmp_type = 135}},
      {"icmpv6_truncated", v6().ip_total_length(7).icmp_echo(true, 1, 1).build(),
       E::kTruncatedIcmp},
      {"icmpv4_in_ipv6_is_unknown",
       v6().ip_proto(kProtoIcmp).payload(bytes(8)).build(),
       E::kOk,
       {.flags = 0, .proto = kProtoIcmp}},

      // --- ICMPv4 errors ---
      {"icmp4_frag_needed_quoting_tcp",
       icmp4_err(3, 4, first(in_tcp, 28), 1400),
       E::kOk,
       {.flags = kIcmpErr,
        .proto = kProtoIcmp,
        .payload_off = 42,
        .l3_end = 70,
        .src = "192.0.2.1",
        .dst = "10.0.0.1",
        .sport = 0,
        .dport = 0,
        .icmp_type = 3,
        .icmp_code = 4,
        .in_l3_off = 42,
        .in_l4_off = 62,
        .in_proto = kProtoTcp,
        .in_src = "10.0.0.1",
        .in_dst = "192.0.2.10",
        .in_sport = 40000,
        .in_dport = 443,
        .in_l4_quoted = 8},
       [](const Bytes& b, const PacketMeta& m) { expect_mtu(b, m, 1400); }},
      {"icmp4_frag_needed_quoting_udp_whole",
       icmp4_err(3, 4, in_udp, 576),
       E::kOk,
       {.flags = kIcmpErr,
        .l3_end = 90,
        .icmp_code = 4,
        .in_l4_off = 62,
        .in_proto = kProtoUdp,
        .in_sport = 5353,
        .in_dport = 53,
        .in_l4_quoted = 28},
       [](const Bytes& b, const PacketMeta& m) { expect_mtu(b, m, 576); }},
      {"icmp4_port_unreachable_udp",
       icmp4_err(3, 3, first(in_udp, 28)),
       E::kOk,
       {.flags = kIcmpErr, .icmp_code = 3, .in_sport = 5353}},
      {"icmp4_source_quench",
       icmp4_err(4, 0, first(in_tcp, 28)),
       E::kOk,
       {.flags = kIcmpErr, .icmp_type = 4, .in_sport = 40000}},
      {"icmp4_redirect",
       icmp4_err(5, 1, first(in_tcp, 28), 0xC0000201),
       E::kOk,
       {.flags = kIcmpErr, .icmp_type = 5, .in_dport = 443}},
      {"icmp4_time_exceeded_quoting_echo",
       icmp4_err(11, 0, first(in_echo, 28)),
       E::kOk,
       {.flags = kIcmpErr,
        .icmp_type = 11,
        .in_l4_off = 62,
        .in_proto = kProtoIcmp,
        .in_sport = 0x4242,
        .in_dport = 0x4242,
        .in_l4_quoted = 8}},
      {"icmp4_parameter_problem",
       icmp4_err(12, 0, first(in_tcp, 40), 0x0C000000),
       E::kOk,
       {.flags = kIcmpErr, .icmp_type = 12, .in_l4_quoted = 20}},
      // One level only: the quoted error is described, its own quote is not.
      {"icmp4_error_quoting_error",
       icmp4_err(11, 0, in_err_l3),
       E::kOk,
       {.flags = kIcmpErr,
        .l3_end = 98,
        .in_l4_off = 62,
        .in_proto = kProtoIcmp,
        .in_src = "192.0.2.1",
        .in_dst = "10.0.0.1",
        .in_sport = 0,
        .in_dport = 0,
        .in_l4_quoted = 36}},
      {"icmp4_quote_tcp_with_ip_options",
       icmp4_err(
           3, 4,
           first(v4().ipv4_options(std::vector<uint8_t>{1, 1, 1, 1}).tcp(5, 6).build_l3(), 32)),
       E::kOk,
       {.flags = kIcmpErr, .in_l4_off = 66, .in_sport = 5, .in_l4_quoted = 8}},
      {"icmp4_quote_first_fragment_has_no_ports",
       icmp4_err(3, 4, v4().fragment(0, true).udp(7, 8).payload(bytes(8)).build_l3()),
       E::kOk,
       {.flags = kIcmpErr, .in_l4_off = 62, .in_sport = 0, .in_dport = 0, .in_l4_quoted = 16}},
      {"icmp4_quote_non_first_fragment",
       icmp4_err(11, 1, v4().fragment(1480, false).udp(7, 8).payload(bytes(8)).build_l3()),
       E::kOk,
       {.flags = kIcmpErr,
        .in_l4_off = 0,
        .in_proto = kProtoUdp,
        .in_sport = 0,
        .in_l4_quoted = 0}},
      {"icmp4_quote_unknown_protocol",
       icmp4_err(3, 2, v4().ip_proto(50).payload(bytes(8)).build_l3()),
       E::kOk,
       {.flags = kIcmpErr, .in_l4_off = 62, .in_proto = 50, .in_sport = 0, .in_l4_quoted = 8}},
      {"icmp4_quote_unknown_protocol_header_only",
       icmp4_err(3, 2, first(v4().ip_proto(50).payload(bytes(8)).build_l3(), 20)),
       E::kOk,
       {.flags = kIcmpErr, .in_l4_off = 0, .in_proto = 50, .in_l4_quoted = 0}},
      {"icmp4_quote_tcp_4_bytes",
       icmp4_err(3, 4, first(in_tcp, 24)),
       E::kTruncatedIcmpQuote,
       {.flags = kIcmpErr}},
      {"icmp4_quote_ip_header_cut", icmp4_err(3, 4, first(in_tcp, 10)), E::kTruncatedIcmpQuote},
      {"icmp4_quote_missing", icmp4_err(3, 4, {}), E::kTruncatedIcmpQuote},
      {"icmp4_quote_is_ipv6", icmp4_err(3, 4, first(in6_tcp, 48)), E::kBadIcmpQuote},
      {"icmp4_quote_ihl_4", icmp4_err(3, 4, poke(first(in_tcp, 28), 0, 0x44)), E::kBadIcmpQuote},
      {"icmp4_quote_total_length_below_ihl", icmp4_err(3, 4, poke16(first(in_tcp, 28), 2, 12)),
       E::kBadIcmpQuote},

      // --- ICMPv6 errors ---
      // RFC 4443: the quote fills the packet up to the minimum MTU of 1280.
      {"icmpv6_packet_too_big_quoting_tcp",
       icmp6_err(2, 0, first(in6_tcp, 1232), 1280),
       E::kOk,
       {.flags = kIcmpErr,
        .proto = kProtoIcmpv6,
        .payload_off = 62,
        .l3_end = 1294,
        .icmp_type = 2,
        .icmp_code = 0,
        .in_l3_off = 62,
        .in_l4_off = 102,
        .in_proto = kProtoTcp,
        .in_src = "2001:db8::1",
        .in_dst = "2001:db8:ffff::10",
        .in_sport = 40000,
        .in_dport = 443,
        .in_l4_quoted = 255},
       [](const Bytes& b, const PacketMeta& m) { expect_mtu(b, m, 1280); }},
      {"icmpv6_dest_unreachable_quoting_udp_after_ext",
       icmp6_err(1, 4, in6_udp_ext),
       E::kOk,
       {.flags = kIcmpErr,
        .icmp_type = 1,
        .icmp_code = 4,
        .in_l4_off = 110,
        .in_proto = kProtoUdp,
        .in_sport = 5000,
        .in_dport = 53,
        .in_l4_quoted = 12}},
      {"icmpv6_time_exceeded_quoting_echo",
       icmp6_err(3, 0, v6().icmp_echo(true, 77, 1).build_l3()),
       E::kOk,
       {.flags = kIcmpErr,
        .icmp_type = 3,
        .in_proto = kProtoIcmpv6,
        .in_sport = 77,
        .in_dport = 77}},
      {"icmpv6_parameter_problem",
       icmp6_err(4, 1, first(in6_tcp, 60), 40),
       E::kOk,
       {.flags = kIcmpErr, .icmp_type = 4, .in_l4_quoted = 20}},
      {"icmpv6_quote_non_first_fragment",
       icmp6_err(3, 1, v6().fragment(1232, false).udp(1, 2).build_l3()),
       E::kOk,
       {.flags = kIcmpErr, .in_l4_off = 0, .in_proto = kProtoUdp, .in_sport = 0}},
      {"icmpv6_quote_ext_header_cut", icmp6_err(1, 0, first(in6_udp_ext, 44)),
       E::kTruncatedIcmpQuote},
      // A whole frame, Ethernet header first, is not an IP packet.
      {"icmpv6_quote_starting_with_ethernet", icmp6_err(1, 0, first(v6udp, 58)), E::kBadIcmpQuote},
      {"icmpv6_quote_udp_only_4_bytes", icmp6_err(1, 0, first(in6_udp_ext, 52)),
       E::kTruncatedIcmpQuote},
      {"icmpv6_quote_ip_header_cut", icmp6_err(2, 0, first(in6_tcp, 39), 1280),
       E::kTruncatedIcmpQuote},
      {"icmpv6_quote_is_ipv4", icmp6_err(1, 0, in_udp), E::kBadIcmpQuote},
      {"icmpv6_quote_chain_too_long", icmp6_err(1, 0, in6_nine_ext_b), E::kBadIcmpQuote},
      {"icmpv6_quote_hbh_not_first",
       icmp6_err(1, 0, v6().ipv6_ext(60).ipv6_ext(0).udp(1, 2).build_l3()), E::kBadIcmpQuote},
  };
}

// --- TCP options ---

namespace {

struct OptCase {
  std::string name;
  Bytes pkt;
  ParseError err;
  TcpOptions expect = {};
};
void PrintTo(const OptCase& c, std::ostream* os) {
  *os << c.name;
}

std::vector<OptCase> option_cases() {
  using E = ParseError;
  const auto raw = [](std::vector<uint8_t> o) { return v4().tcp(1, 2).tcp_raw_options(o).build(); };
  const uint8_t nop2[] = {1, 1};
  const SackBlock blocks[4] = {{1, 2}, {0x10000000, 0x20000000}, {5, 6}, {0xFFFFFFF0, 8}};
  const auto sack_n = [&](size_t n) {
    return v4().tcp(1, 2).ack_seq(1).tcp_raw_options(nop2).sack(std::span(blocks, n)).build();
  };
  TcpOptions sack4{.num_sack = 4, .sack_off = 58};
  std::copy(blocks, blocks + 4, sack4.sack);
  TcpOptions sack1{.num_sack = 1, .sack_off = 58};
  sack1.sack[0] = blocks[0];
  return {
      {"no_options", v4().tcp(1, 2).build(), E::kOk, {}},
      {"syn_builder_example",
       v4().tcp(40000, 80).syn().mss(1460).wscale(7).sack_permitted().timestamps(1, 0).build(),
       E::kOk,
       {.mss = 1460,
        .wscale = 7,
        .has_mss = true,
        .has_wscale = true,
        .sack_permitted = true,
        .has_timestamps = true,
        .ts_val = 1,
        .ts_ecr = 0,
        .ts_off = 65}},
      {"syn_linux_order",
       v4().tcp(1, 2)
           .syn()
           .mss(1400)
           .sack_permitted()
           .timestamps(100, 0)
           .tcp_raw_options(std::vector<uint8_t>{1})
           .wscale(9)
           .build(),
       E::kOk,
       {.mss = 1400,
        .wscale = 9,
        .has_mss = true,
        .has_wscale = true,
        .sack_permitted = true,
        .has_timestamps = true,
        .ts_val = 100,
        .ts_off = 62}},
      {"nop_nop_timestamps",
       v4().tcp(1, 2).tcp_raw_options(nop2).timestamps(0xDEADBEEF, 0x01020304).build(),
       E::kOk,
       {.has_timestamps = true, .ts_val = 0xDEADBEEF, .ts_ecr = 0x01020304, .ts_off = 58}},
      {"timestamps_ipv6",
       v6().tcp(1, 2).tcp_raw_options(nop2).timestamps(7, 8).build(),
       E::kOk,
       {.has_timestamps = true, .ts_val = 7, .ts_ecr = 8, .ts_off = 78}},
      {"sack_one_block", sack_n(1), E::kOk, sack1},
      {"sack_four_blocks", sack_n(4), E::kOk, sack4},
      {"wscale_14", v4().tcp(1, 2).wscale(14).build(), E::kOk, {.wscale = 14, .has_wscale = true}},
      {"wscale_15_clamped_to_14",
       v4().tcp(1, 2).wscale(15).build(),
       E::kOk,
       {.wscale = 14, .has_wscale = true}},
      {"wscale_255_clamped_to_14",
       v4().tcp(1, 2).wscale(255).build(),
       E::kOk,
       {.wscale = 14, .has_wscale = true}},
      {"eol_ends_the_list", raw({0, 2, 4, 5, 0xB4, 3, 3, 7}), E::kOk, {}},
      {"unknown_option_skipped",
       v4().tcp(1, 2).tcp_raw_options(std::vector<uint8_t>{30, 4, 9, 9}).mss(536).build(),
       E::kOk,
       {.mss = 536, .has_mss = true}},
      {"unknown_option_len_2", raw({254, 2, 3, 3, 2}), E::kOk, {.wscale = 2, .has_wscale = true}},
      {"mss_len_3", raw({2, 3, 5}), E::kBadTcpOptions},
      {"wscale_len_4", raw({3, 4, 7, 0}), E::kBadTcpOptions},
      {"sack_permitted_len_3", raw({4, 3, 0}), E::kBadTcpOptions},
      {"sack_len_not_2_plus_8n", raw({5, 11, 0, 0, 0, 0, 0, 0, 0, 0, 0}), E::kBadTcpOptions},
      {"sack_without_blocks", raw({5, 2}), E::kBadTcpOptions},
      {"timestamps_len_8", raw({8, 8, 0, 0, 0, 0, 0, 0}), E::kBadTcpOptions},
      {"option_len_1", raw({30, 1}), E::kBadTcpOptions},
      {"option_len_0", raw({30, 0}), E::kBadTcpOptions},
      {"option_past_header", raw({30, 10, 0, 0}), E::kBadTcpOptions},
      {"kind_in_last_byte", raw({1, 1, 1, 2}), E::kBadTcpOptions},
      {"not_tcp", v4().udp(1, 2).build(), E::kBadTcpOptions},
  };
}

class TcpOptionsTable : public ::testing::TestWithParam<OptCase> {};

TEST_P(TcpOptionsTable, Case) {
  const OptCase& c = GetParam();
  PacketMeta m;
  ASSERT_EQ(parse_packet(c.pkt.data(), static_cast<uint32_t>(c.pkt.size()), &m), ParseError::kOk);
  TcpOptions o;
  ASSERT_EQ(to_string(parse_tcp_options(c.pkt.data(), m, &o)), to_string(c.err));
  if (c.err != ParseError::kOk) return;
  const TcpOptions& e = c.expect;
  EXPECT_EQ(o.mss, e.mss);
  EXPECT_EQ(o.wscale, e.wscale);
  EXPECT_EQ(o.num_sack, e.num_sack);
  EXPECT_EQ(o.has_mss, e.has_mss);
  EXPECT_EQ(o.has_wscale, e.has_wscale);
  EXPECT_EQ(o.sack_permitted, e.sack_permitted);
  EXPECT_EQ(o.has_timestamps, e.has_timestamps);
  EXPECT_EQ(o.ts_val, e.ts_val);
  EXPECT_EQ(o.ts_ecr, e.ts_ecr);
  EXPECT_EQ(o.ts_off, e.ts_off);
  EXPECT_EQ(o.sack_off, e.sack_off);
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(o.sack[i].left, e.sack[i].left) << i;
    EXPECT_EQ(o.sack[i].right, e.sack[i].right) << i;
  }
  // The recorded offsets point at the values, for in-place rewriting.
  if (o.has_timestamps) {
    EXPECT_EQ(load_be32(c.pkt.data() + o.ts_off), o.ts_val);
    EXPECT_EQ(load_be32(c.pkt.data() + o.ts_off + 4), o.ts_ecr);
  }
  if (o.num_sack != 0) {
    EXPECT_EQ(load_be32(c.pkt.data() + o.sack_off), o.sack[0].left);
  }
}

std::string opt_name(const ::testing::TestParamInfo<OptCase>& info) {
  return info.param.name;
}
INSTANTIATE_TEST_SUITE_P(Options, TcpOptionsTable, ::testing::ValuesIn(option_cases()), opt_name);

}  // namespace
}  // namespace tripod::testing
