// Parser tests, L2 and L3: the case table, the runner for both tables, the
// every-error-is-covered check, and truncation / corruption sweeps.
#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <set>

#include "common/random.h"
#include "packet/parser_test_util.h"

namespace tripod::testing {
namespace {

template <class... T>
constexpr uint16_t F(T... f) {
  return static_cast<uint16_t>((0u | ... | f));
}

const uint8_t kRecordRoute[] = {1, 7, 7, 4, 0, 0, 0, 0};  // NOP, RR with one slot

Bytes n_dest_opts(int n) {
  PacketBuilder b = v6();
  for (int i = 0; i < n; ++i)
    b.ipv6_ext(60);
  return b.udp(1, 2).build();
}

}  // namespace

std::vector<ParseCase> l2l3_cases() {
  using E = ParseError;
  const Bytes syn =
      v4().tcp(40000, 80).syn().mss(1460).wscale(7).sack_permitted().timestamps(1, 0).build();
  const Bytes v4tcp = v4().tcp(1000, 2000).build();            // 54 bytes
  const Bytes v4udp = v4().udp(53, 5353).build();              // 42 bytes
  const Bytes v6udp = v6().ttl(9).udp(5000, 53).build();       // 62 bytes
  const uint8_t ah_body[10] = {0, 0, 0, 0, 0, 0, 0, 1, 0, 0};  // reserved, SPI, seq...
  return {
      // --- Ethernet / VLAN ---
      {"empty_frame", {}, E::kTruncatedEthernet},
      {"eth_13_bytes", bytes(13), E::kTruncatedEthernet},
      {"arp_is_not_ip",
       PacketBuilder().ethertype(kEtherTypeArp).payload(bytes(28)).build(),
       E::kOk,
       {.flags = kMetaNotIp,
        .family = Family::kNone,
        .l3_off = 14,
        .l4_off = 42,
        .payload_off = 42,
        .l3_end = 42,
        .ethertype = kEtherTypeArp}},
      {"vlan_tag_truncated", cut(PacketBuilder().vlan(10).ethertype(0x0800).build(), 17),
       E::kTruncatedVlan},
      {"vlan_stacked_8100",
       PacketBuilder().vlan(10).ethertype(0x8100).payload(bytes(40)).build(),
       E::kStackedVlan,
       {.flags = kMetaVlan, .vlan_tci = 10}},
      {"vlan_stacked_88a8", PacketBuilder().vlan(10).ethertype(0x88A8).payload(bytes(40)).build(),
       E::kStackedVlan},
      {"vlan_ipv4_tcp",
       v4().vlan(100, 5).tcp(1000, 2000).build(),
       E::kOk,
       {.flags = F(kMetaVlan, kMetaHasL4),
        .family = Family::kIpv4,
        .proto = kProtoTcp,
        .l3_off = 18,
        .l4_off = 38,
        .payload_off = 58,
        .l3_end = 58,
        .sport = 1000,
        .dport = 2000,
        .vlan_tci = 0xA064,
        .ethertype = kEtherTypeIpv4}},
      {"single_88a8_tag_ipv4",
       poke16(v4().vlan(7).udp(1, 2).build(), 12, 0x88A8),
       E::kOk,
       {.flags = F(kMetaVlan, kMetaHasL4), .l3_off = 18, .l4_off = 38, .vlan_tci = 7}},
      {"vlan_arp",
       PacketBuilder().vlan(3).ethertype(kEtherTypeArp).payload(bytes(28)).build(),
       E::kOk,
       {.flags = F(kMetaVlan, kMetaNotIp), .l3_off = 18, .l3_end = 46}},

      // --- IPv4 ---
      {"ipv4_tcp_syn_with_options",
       syn,
       E::kOk,
       {.flags = kMetaHasL4,
        .family = Family::kIpv4,
        .proto = kProtoTcp,
        .l3_off = 14,
        .l4_off = 34,
        .payload_off = 74,
        .l3_end = 74,
        .src = "10.0.0.1",
        .dst = "192.0.2.10",
        .sport = 40000,
        .dport = 80,
        .ethertype = kEtherTypeIpv4,
        .ttl = 64,
        .tcp_seq = 0,
        .tcp_ack = 0,
        .tcp_flags = kTcpSyn,
        .tcp_hdr_len = 40,
        .tcp_window = 65535}},
      {"ipv4_header_truncated", cut(v4tcp, 14 + 19), E::kTruncatedIpv4},
      {"ipv4_version_6_in_ipv4_ethertype", v6().ethertype(kEtherTypeIpv4).udp(1, 2).build(),
       E::kBadIpv4Version},
      {"ipv4_ihl_4", poke(v4tcp, 14, 0x44), E::kBadIpv4HeaderLength},
      {"ipv4_ihl_beyond_capture", poke(v4udp, 14, 0x4F), E::kTruncatedIpv4},
      {"ipv4_total_length_past_capture", v4().ip_total_length(41).tcp(1, 2).build(),
       E::kBadIpv4TotalLength},
      {"ipv4_total_length_below_ihl", v4().ip_total_length(19).tcp(1, 2).build(),
       E::kBadIpv4TotalLength},
      {"ipv4_bad_header_checksum", poke(v4tcp, 24, static_cast<uint8_t>(v4tcp[24] ^ 1)),
       E::kBadIpv4Checksum},
      {"ipv4_forced_checksum_zero", v4().ip_checksum(0).udp(1, 2).build(), E::kBadIpv4Checksum},
      {"ipv4_options_nop_rr",
       v4().ipv4_options(kRecordRoute).tcp(1, 2).build(),
       E::kOk,
       {.flags = F(kMetaIpOptions, kMetaHasL4), .l4_off = 42, .payload_off = 62, .l3_end = 62}},
      {"ipv4_options_eol_then_garbage",
       v4().ipv4_options(std::vector<uint8_t>{0, 0xFF, 0x01, 0x44}).udp(1, 2).build(),
       E::kOk,
       {.flags = F(kMetaIpOptions, kMetaHasL4), .l4_off = 38}},
      {"ipv4_option_length_1",
       v4().ipv4_options(std::vector<uint8_t>{0x44, 1, 0, 0}).udp(1, 2).build(),
       E::kBadIpv4Options,
       {.flags = kMetaIpOptions}},
      {"ipv4_option_past_header",
       v4().ipv4_options(std::vector<uint8_t>{0x44, 8, 5, 0}).udp(1, 2).build(),
       E::kBadIpv4Options},
      {"ipv4_option_without_length_byte",
       v4().ipv4_options(std::vector<uint8_t>{1, 1, 1, 0x44}).udp(1, 2).build(),
       E::kBadIpv4Options},
      {"ipv4_ethernet_padding",
       pad_to(v4udp, 60),
       E::kOk,
       {.flags = kMetaHasL4, .l4_off = 34, .payload_off = 42, .l3_end = 42}},
      {"ipv4_dont_fragment",
       v4().dont_fragment().udp(1, 2).build(),
       E::kOk,
       {.flags = F(kMetaDontFragment, kMetaHasL4)}},
      {"ipv4_first_fragment_udp",
       v4().fragment(0, true, 0x1234).udp(7, 8).payload(bytes(32)).build(),
       E::kOk,
       {.flags = F(kMetaFragment, kMetaFirstFrag, kMetaHasL4),
        .l4_off = 34,
        .payload_off = 42,
        .l3_end = 74,
        .sport = 7,
        .dport = 8,
        .frag_offset = 0,
        .ip_frag_id_lo = 0x1234}},
      // The UDP length of a first fragment describes the whole datagram.
      {"ipv4_first_fragment_udp_length_of_datagram",
       poke16(v4().fragment(0, true).udp(7, 8).payload(bytes(32)).build(), 38, 1480),
       E::kOk,
       {.flags = F(kMetaFragment, kMetaFirstFrag, kMetaHasL4), .sport = 7}},
      {"ipv4_non_first_fragment",
       v4().fragment(1480, false, 0x1234).udp(7, 8).payload(bytes(32)).build(),
       E::kOk,
       {.flags = kMetaFragment,
        .proto = kProtoUdp,
        .l4_off = 34,
        .payload_off = 74,
        .l3_end = 74,
        .sport = 0,
        .dport = 0,
        .frag_offset = 1480,
        .ip_frag_id_lo = 0x1234}},
      {"ipv4_middle_fragment_df_clear",
       v4().fragment(8 * 100, true).tcp(1, 2).build(),
       E::kOk,
       {.flags = kMetaFragment, .frag_offset = 800}},
      {"ipv4_tcp_fragment_offset_8_rfc1858",
       v4().fragment(8, true).tcp(1, 2).build(),
       E::kBadFragment,
       {.flags = kMetaFragment}},
      {"ipv4_fragment_past_64k", v4().fragment(65528, false).udp(1, 2).payload(bytes(8)).build(),
       E::kBadFragment},
      {"ipv4_unknown_protocol_gre",
       v4().ip_proto(47).payload(bytes(24)).build(),
       E::kOk,
       {.flags = 0, .proto = 47, .l4_off = 34, .payload_off = 58, .l3_end = 58}},

      // --- IPv6 ---
      {"ipv6_udp",
       v6udp,
       E::kOk,
       {.flags = kMetaHasL4,
        .family = Family::kIpv6,
        .proto = kProtoUdp,
        .l3_off = 14,
        .l4_off = 54,
        .payload_off = 62,
        .l3_end = 62,
        .src = "2001:db8::1",
        .dst = "2001:db8:ffff::10",
        .sport = 5000,
        .dport = 53,
        .ethertype = kEtherTypeIpv6,
        .ttl = 9}},
      {"ipv6_header_truncated", cut(v6udp, 14 + 39), E::kTruncatedIpv6},
      {"ipv6_version_4_in_ipv6_ethertype",
       v4().ethertype(kEtherTypeIpv6).tcp(1, 2).payload(bytes(8)).build(), E::kBadIpv6Version},
      {"ipv6_payload_length_past_capture", v6().ip_total_length(9).udp(1, 2).build(),
       E::kBadIpv6PayloadLength},
      {"ipv6_trailing_bytes_after_payload",
       pad_to(v6udp, 80),
       E::kOk,
       {.flags = kMetaHasL4, .payload_off = 62, .l3_end = 62}},
      {"ipv6_hbh_dstopts_tcp",
       v6().ipv6_ext(0, std::vector<uint8_t>{1, 4, 0, 0, 0, 0}).ipv6_ext(60).tcp(1, 2).build(),
       E::kOk,
       {.flags = F(kMetaIpOptions, kMetaHasL4),
        .proto = kProtoTcp,
        .l4_off = 70,
        .payload_off = 90,
        .l3_end = 90}},
      {"ipv6_routing_ah_udp",
       v6().ipv6_ext(43, std::vector<uint8_t>{0, 0, 0, 0, 0, 0})
           .ipv6_ext(51, ah_body)
           .udp(1, 2)
           .build(),
       E::kOk,
       {.flags = F(kMetaIpOptions, kMetaHasL4), .proto = kProtoUdp, .l4_off = 78}},
      {"ipv6_mobility_hip_shim6",
       v6().ipv6_ext(135).ipv6_ext(139).ipv6_ext(140).udp(1, 2).build(),
       E::kOk,
       {.flags = F(kMetaIpOptions, kMetaHasL4), .l4_off = 78}},
      {"ipv6_esp_ends_chain",
       v6().ip_proto(50).payload(bytes(24)).build(),
       E::kOk,
       {.flags = 0, .proto = 50, .l4_off = 54, .payload_off = 78, .l3_end = 78}},
      {"ipv6_no_next_header",
       v6().ipv6_ext(60).ip_proto(59).build(),
       E::kOk,
       {.flags = kMetaIpOptions, .proto = 59, .l4_off = 62, .payload_off = 62}},
      {"ipv6_eight_ext_headers",
       n_dest_opts(8),
       E::kOk,
       {.flags = F(kMetaIpOptions, kMetaHasL4), .l4_off = 54 + 64}},
      {"ipv6_nine_ext_headers", n_dest_opts(9), E::kIpv6ExtChainTooLong},
      {"ipv6_hbh_not_first", v6().ipv6_ext(60).ipv6_ext(0).udp(1, 2).build(),
       E::kIpv6HopByHopNotFirst},
      // The ext header is complete in the frame but not within payload length.
      {"ipv6_ext_past_payload_length",
       v6().ipv6_ext(60, bytes(14, 0)).ip_total_length(8).udp(1, 2).build(),
       E::kTruncatedIpv6ExtHeader},
      {"ipv6_ext_length_byte_too_big",
       poke(v6().ipv6_ext(60).udp(1, 2).build(), 55, 10),
       E::kTruncatedIpv6ExtHeader,
       {.flags = kMetaIpOptions}},
      {"ipv6_ext_first_bytes_only",
       v6().ip_proto(60).payload(std::vector<uint8_t>{17, 0, 0, 0}).build(),
       E::kTruncatedIpv6ExtHeader},
      {"ipv6_first_fragment_udp",
       v6().fragment(0, true, 0xABCD1234).udp(7, 8).payload(bytes(16)).build(),
       E::kOk,
       {.flags = F(kMetaIpOptions, kMetaFragment, kMetaFirstFrag, kMetaHasL4),
        .proto = kProtoUdp,
        .l4_off = 62,
        .payload_off = 70,
        .sport = 7,
        .dport = 8,
        .frag_offset = 0,
        .ip_frag_id_lo = 0x1234}},
      {"ipv6_non_first_fragment",
       v6().fragment(1232, false, 7).udp(7, 8).payload(bytes(20)).build(),
       E::kOk,
       {.flags = F(kMetaIpOptions, kMetaFragment),
        .proto = kProtoUdp,
        .l4_off = 62,
        .payload_off = 90,
        .l3_end = 90,
        .sport = 0,
        .frag_offset = 1232,
        .ip_frag_id_lo = 7}},
      {"ipv6_fragment_then_dstopts",
       v6().fragment(0, true).ipv6_ext(60).udp(7, 8).payload(bytes(8)).build(),
       E::kOk,
       {.flags = F(kMetaIpOptions, kMetaFragment, kMetaFirstFrag, kMetaHasL4), .l4_off = 70}},
      {"ipv6_atomic_fragment_is_whole",
       v6().fragment(0, false, 99).udp(7, 8).build(),
       E::kOk,
       {.flags = F(kMetaIpOptions, kMetaHasL4), .sport = 7, .ip_frag_id_lo = 99}},
      {"ipv6_fragment_not_multiple_of_8",
       v6().fragment(0, true).udp(7, 8).payload(bytes(5)).build(), E::kBadFragment},
      {"ipv6_two_fragment_headers", v6().fragment(0, true).fragment(0, true).udp(7, 8).build(),
       E::kBadFragment},
      {"ipv6_fragment_past_64k", v6().fragment(65528, false).udp(7, 8).payload(bytes(8)).build(),
       E::kBadFragment},
      {"ipv6_fragment_header_truncated",
       v6().ip_proto(44).payload(std::vector<uint8_t>{17, 0, 0, 1}).build(),
       E::kTruncatedIpv6ExtHeader},
  };
}

namespace {

class ParseTable : public ::testing::TestWithParam<ParseCase> {};
TEST_P(ParseTable, Case) {
  check_case(GetParam());
}

std::string case_name(const ::testing::TestParamInfo<ParseCase>& info) {
  return info.param.name;
}
INSTANTIATE_TEST_SUITE_P(L2L3, ParseTable, ::testing::ValuesIn(l2l3_cases()), case_name);
INSTANTIATE_TEST_SUITE_P(L4, ParseTable, ::testing::ValuesIn(l4_cases()), case_name);

// Every ParseError value is produced by at least one case (kBadTcpOptions by
// the TCP options table in parser_l4_test.cc).
TEST(ParseTableCoverage, EveryErrorHasACase) {
  std::set<ParseError> seen = {ParseError::kBadTcpOptions};
  for (const auto& c : l2l3_cases())
    seen.insert(c.err);
  for (const auto& c : l4_cases())
    seen.insert(c.err);
  for (size_t i = 0; i < static_cast<size_t>(ParseError::kCount); ++i) {
    EXPECT_TRUE(seen.count(static_cast<ParseError>(i)))
        << "no case for " << to_string(static_cast<ParseError>(i));
  }
}

TEST(ParseTableCoverage, NamesAreUnique) {
  std::set<std::string> names;
  for (const auto& c : l2l3_cases())
    EXPECT_TRUE(names.insert(c.name).second) << c.name;
  for (const auto& c : l4_cases())
    EXPECT_TRUE(names.insert(c.name).second) << c.name;
}

// Parses a copy in a buffer of exactly `n` bytes, so ASan flags any read past.
ParseError parse_exact(const Bytes& pkt, size_t n, PacketMeta* m) {
  std::unique_ptr<uint8_t[]> buf(new uint8_t[n == 0 ? 1 : n]);
  if (n != 0) std::memcpy(buf.get(), pkt.data(), n);
  const uint8_t* data = n == 0 ? nullptr : buf.get();
  return parse_packet(data, static_cast<uint32_t>(n), m);
}

std::vector<Bytes> sample_packets() {
  const Bytes inner_tcp = v4().tcp(40000, 443).payload(bytes(100)).build_l3();
  const Bytes inner_v6 = v6().ipv6_ext(60).udp(5000, 53).payload(bytes(40)).build_l3();
  return {
      v4().tcp(40000, 80).syn().mss(1460).wscale(7).sack_permitted().timestamps(1, 0).build(),
      v4().vlan(42).ipv4_options(kRecordRoute).udp(1, 2).payload("hello").build(),
      v6().ipv6_ext(0).ipv6_ext(43).ipv6_ext(60).tcp(1, 2).payload(bytes(10)).build(),
      v6().fragment(0, true).udp(7, 8).payload(bytes(16)).build(),
      v4().fragment(0, true).udp(7, 8).payload(bytes(16)).build(),
      PacketBuilder()
          .ipv4("192.0.2.1", "10.0.0.1")
          .icmp_error(3, 4, std::span(inner_tcp).first(28), 1400)
          .build(),
      PacketBuilder().ipv6("2001:db8:1::1", "2001:db8::1").icmp_error(2, 0, inner_v6, 1280).build(),
      v6().icmp_echo(true, 77, 1).payload(bytes(24)).build(),
      pad_to(v4().udp(1, 2).build(), 60),
      PacketBuilder().ethertype(kEtherTypeArp).payload(bytes(28)).build(),
  };
}

// Every prefix of a valid frame: an error, or a consistent meta. A prefix that
// still holds the whole datagram (only L2 padding cut) parses exactly like the
// full frame; a shorter one never parses as IP.
TEST(ParseTruncation, EveryPrefix) {
  for (const Bytes& pkt : sample_packets()) {
    PacketMeta full;
    ASSERT_EQ(parse_exact(pkt, pkt.size(), &full), ParseError::kOk);
    for (size_t n = 0; n < pkt.size(); ++n) {
      SCOPED_TRACE(n);
      PacketMeta m;
      const ParseError err = parse_exact(pkt, n, &m);
      if (full.has(kMetaNotIp)) {
        EXPECT_EQ(err, n < 14 ? ParseError::kTruncatedEthernet : ParseError::kOk);
        continue;
      }
      if (n >= full.l3_end) {
        ASSERT_EQ(err, ParseError::kOk);
        EXPECT_EQ(std::memcmp(&m, &full, sizeof m), 0);
      } else {
        EXPECT_NE(err, ParseError::kOk);
      }
    }
  }
}

// Random byte damage: whatever parses must satisfy the meta invariants.
TEST(ParseCorruption, RandomBytesKeepInvariants) {
  SplitMix64 rng(1234);
  size_t ok = 0, total = 0;
  for (const Bytes& pkt : sample_packets()) {
    for (int round = 0; round < 2000; ++round) {
      Bytes b = pkt;
      const int flips = 1 + static_cast<int>(rng.below(4));
      for (int i = 0; i < flips; ++i)
        b[rng.below(b.size())] = static_cast<uint8_t>(rng.next());
      PacketMeta m;
      if (parse_exact(b, b.size(), &m) == ParseError::kOk) {
        ++ok;
        const char* why = meta_problem(m, static_cast<uint32_t>(b.size()));
        ASSERT_EQ(why, nullptr) << why;
      }
      ++total;
    }
  }
  // Damage to payload, ports or checksums of L4 still parses.
  EXPECT_GT(ok, total / 10);
}

}  // namespace
}  // namespace tripod::testing
