#include "packet/builder.h"

#include <gtest/gtest.h>

#include <utility>

#include "common/byte_order.h"
#include "packet/checksum.h"
#include "packet/parser.h"

namespace tripod {
namespace {

Bytes slice(const Bytes& b, size_t off, size_t n) {
  return Bytes(b.begin() + static_cast<long>(off), b.begin() + static_cast<long>(off + n));
}

PacketMeta parse_ok(const Bytes& f) {
  PacketMeta m;
  EXPECT_EQ(parse_packet(f.data(), static_cast<uint32_t>(f.size()), &m), ParseError::kOk);
  return m;
}

TEST(Builder, DocExampleBytes) {
  const Bytes f = PacketBuilder()
                      .eth("02:00:00:00:00:01", "02:00:00:00:00:02")
                      .ipv4("10.0.0.1", "192.0.2.10")
                      .tcp(40000, 80)
                      .syn()
                      .mss(1460)
                      .wscale(7)
                      .sack_permitted()
                      .timestamps(1, 0)
                      .build();
  ASSERT_EQ(f.size(), 74u);
  EXPECT_EQ(slice(f, 0, 14), (Bytes{2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00}));
  // IPv4: version/IHL, TOS, total 60, id 0, no flags, TTL 64, TCP.
  EXPECT_EQ(slice(f, 14, 10), (Bytes{0x45, 0, 0, 60, 0, 0, 0, 0, 64, 6}));
  EXPECT_EQ(load_be16(f.data() + 24), ipv4_header_checksum(f.data() + 14, 20));
  EXPECT_EQ(slice(f, 26, 8), (Bytes{10, 0, 0, 1, 192, 0, 2, 10}));
  // TCP: ports, seq 0, ack 0, data offset 10, SYN, window 65535.
  EXPECT_EQ(slice(f, 34, 16),
            (Bytes{0x9C, 0x40, 0, 80, 0, 0, 0, 0, 0, 0, 0, 0, 0xA0, 0x02, 0xFF, 0xFF}));
  // Options in the order added, NOP-padded to a multiple of 4.
  EXPECT_EQ(slice(f, 54, 20),
            (Bytes{2, 4, 0x05, 0xB4, 3, 3, 7, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1}));
  const PacketMeta m = parse_ok(f);
  EXPECT_TRUE(l4_checksum_ok(f.data(), m));
}

TEST(Builder, BuildL3IsBuildWithoutEthernet) {
  PacketBuilder b;
  b.ipv6("2001:db8::1", "2001:db8::2").ipv6_ext(60).udp(1, 2).payload("xyz");
  const Bytes f = b.build(), l3 = b.build_l3();
  EXPECT_EQ(l3, slice(f, 14, f.size() - 14));
}

TEST(Builder, VlanTag) {
  const Bytes f = PacketBuilder().vlan(0x123, 6).ipv4("10.0.0.1", "10.0.0.2").udp(1, 2).build();
  EXPECT_EQ(slice(f, 12, 6), (Bytes{0x81, 0x00, 0xC1, 0x23, 0x08, 0x00}));
}

TEST(Builder, Ipv6ExtensionChainEncoding) {
  const uint8_t ah[10] = {};
  const Bytes f = PacketBuilder()
                      .ipv6("::1", "::2")
                      .ipv6_ext(0)
                      .ipv6_ext(43, Bytes(14, 0))
                      .ipv6_ext(51, ah)
                      .fragment(0, true, 0xAABBCCDD)
                      .ipv6_ext(60)
                      .udp(1, 2)
                      .build();
  // Fixed header: payload length 8 + 16 + 16 + 8 + 8 + 8 (UDP) = 64.
  EXPECT_EQ(load_be16(f.data() + 18), 64);
  EXPECT_EQ(f[20], 0);                         // -> Hop-by-Hop
  EXPECT_EQ(slice(f, 54, 2), (Bytes{43, 0}));  // -> Routing, 8 bytes
  EXPECT_EQ(slice(f, 62, 2), (Bytes{51, 1}));  // -> AH, 16 bytes
  EXPECT_EQ(slice(f, 78, 2), (Bytes{44, 2}));  // AH length: 16/4 - 2
  EXPECT_EQ(slice(f, 94, 8), (Bytes{60, 0, 0x00, 0x01, 0xAA, 0xBB, 0xCC, 0xDD}));
  EXPECT_EQ(slice(f, 102, 2), (Bytes{17, 0}));  // Dest opts -> UDP
  const PacketMeta m = parse_ok(f);
  EXPECT_EQ(m.l4_off, 110);
  EXPECT_TRUE(m.has(kMetaFragment) && m.has(kMetaFirstFrag));
}

TEST(Builder, MalformationKnobs) {
  const Bytes a = PacketBuilder()
                      .ipv4("10.0.0.1", "10.0.0.2")
                      .ip_checksum(0xBEEF)
                      .udp(1, 2)
                      .l4_checksum(0x1234)
                      .build();
  EXPECT_EQ(load_be16(a.data() + 24), 0xBEEF);
  EXPECT_EQ(load_be16(a.data() + 40), 0x1234);
  const Bytes b =
      PacketBuilder().ipv4("10.0.0.1", "10.0.0.2").ip_total_length(999).tcp(1, 2).build();
  EXPECT_EQ(load_be16(b.data() + 16), 999);
  EXPECT_EQ(load_be16(b.data() + 24), ipv4_header_checksum(b.data() + 14, 20));  // still valid
  const Bytes c = PacketBuilder().ipv6("::1", "::2").ip_total_length(3).udp(1, 2).build();
  EXPECT_EQ(load_be16(c.data() + 18), 3);
  EXPECT_EQ(c.size(), 62u);  // the layout does not change
}

TEST(Builder, IcmpErrorLayout) {
  const Bytes inner = PacketBuilder().ipv4("10.0.0.1", "10.0.0.2").tcp(1, 2).build_l3();
  const Bytes f =
      PacketBuilder().ipv4("10.0.0.9", "10.0.0.1").icmp_error(3, 4, inner, 1400).build();
  EXPECT_EQ(slice(f, 34, 2), (Bytes{3, 4}));
  EXPECT_EQ(slice(f, 38, 4), (Bytes{0, 0, 0x05, 0x78}));
  EXPECT_EQ(slice(f, 42, inner.size()), inner);
  EXPECT_TRUE(l4_checksum_ok(f.data(), parse_ok(f)));
  const Bytes e6 = PacketBuilder().ipv6("::1", "::2").icmp_echo(true, 5, 6).build();
  EXPECT_EQ(slice(e6, 54, 8), (Bytes{128, 0, e6[56], e6[57], 0, 5, 0, 6}));
  EXPECT_TRUE(l4_checksum_ok(e6.data(), parse_ok(e6)));
}

TEST(Builder, ParseAndFormatIp) {
  Family f;
  uint8_t a[16];
  ASSERT_TRUE(parse_ip("192.0.2.1", &f, a));
  EXPECT_EQ(f, Family::kIpv4);
  EXPECT_EQ(format_ip(f, a), "192.0.2.1");
  ASSERT_TRUE(parse_ip("2001:DB8::A", &f, a));
  EXPECT_EQ(f, Family::kIpv6);
  EXPECT_EQ(format_ip(f, a), "2001:db8::a");
  EXPECT_FALSE(parse_ip("300.1.1.1", &f, a));
  EXPECT_FALSE(parse_ip("10.0.0", &f, a));
  EXPECT_FALSE(parse_ip("", &f, a));
}

TEST(Builder, NonIpFrame) {
  const Bytes f = PacketBuilder().ethertype(0x88CC).payload("lldp").build();
  EXPECT_EQ(f.size(), 18u);
  EXPECT_EQ(load_be16(f.data() + 12), 0x88CC);
  EXPECT_TRUE(parse_ok(f).has(kMetaNotIp));
}

}  // namespace
}  // namespace tripod
