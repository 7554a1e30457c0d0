#include "packet/flow_key.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>

#include "packet/builder.h"
#include "packet/parser.h"

namespace tripod {
namespace {

PacketMeta parse(const Bytes& f) {
  PacketMeta m;
  EXPECT_EQ(parse_packet(f.data(), static_cast<uint32_t>(f.size()), &m), ParseError::kOk);
  return m;
}

FlowKey key_of(const Bytes& f, bool canonical = true, bool* rev = nullptr) {
  return flow_key_of(f.data(), parse(f), canonical, rev);
}

const uint8_t* raw(const FlowKey& k) {
  return reinterpret_cast<const uint8_t*>(&k);
}

TEST(FlowKey, Ipv4BothDirectionsShareTheCanonicalKey) {
  const Bytes ab = PacketBuilder().ipv4("10.0.0.1", "192.0.2.10").tcp(40000, 80).build();
  const Bytes ba = PacketBuilder().ipv4("192.0.2.10", "10.0.0.1").tcp(80, 40000).build();
  bool rev_ab = true, rev_ba = false;
  const FlowKey k1 = key_of(ab, true, &rev_ab);
  const FlowKey k2 = key_of(ba, true, &rev_ba);
  EXPECT_EQ(k1, k2);
  EXPECT_FALSE(rev_ab);
  EXPECT_TRUE(rev_ba);
  // Exact layout: ports host order, then proto, family, zone, addresses.
  EXPECT_EQ(k1.port_a, 40000);
  EXPECT_EQ(k1.port_b, 80);
  EXPECT_EQ(k1.proto, kProtoTcp);
  EXPECT_EQ(k1.family, Family::kIpv4);
  EXPECT_EQ(k1.zone, 0);
  const uint8_t want_addr[8] = {10, 0, 0, 1, 192, 0, 2, 10};
  EXPECT_EQ(std::memcmp(raw(k1) + 8, want_addr, 8), 0);
  EXPECT_EQ(raw(k1)[4], kProtoTcp);
  EXPECT_EQ(raw(k1)[5], 4);
  for (size_t i = 16; i < 40; ++i)
    EXPECT_EQ(raw(k1)[i], 0) << i;
  EXPECT_EQ(k1.hashed_len(), 16u);
  EXPECT_EQ(format_ip(Family::kIpv4, k1.addr_b()), "192.0.2.10");
}

TEST(FlowKey, Ipv6BothDirectionsShareTheCanonicalKey) {
  const Bytes ab = PacketBuilder().ipv6("2001:db8::2", "2001:db8::1").udp(5000, 53).build();
  const Bytes ba = PacketBuilder().ipv6("2001:db8::1", "2001:db8::2").udp(53, 5000).build();
  bool rev_ab = false, rev_ba = true;
  const FlowKey k1 = key_of(ab, true, &rev_ab);
  const FlowKey k2 = key_of(ba, true, &rev_ba);
  EXPECT_EQ(k1, k2);
  EXPECT_TRUE(rev_ab);  // 2001:db8::2 > 2001:db8::1
  EXPECT_FALSE(rev_ba);
  EXPECT_EQ(k1.port_a, 53);
  EXPECT_EQ(k1.port_b, 5000);
  EXPECT_EQ(format_ip(Family::kIpv6, raw(k1) + 8), "2001:db8::1");
  EXPECT_EQ(format_ip(Family::kIpv6, raw(k1) + 24), "2001:db8::2");
  EXPECT_EQ(k1.hashed_len(), 40u);
}

TEST(FlowKey, DirectionalKeyKeepsTheOrder) {
  const Bytes ba = PacketBuilder().ipv4("192.0.2.10", "10.0.0.1").tcp(80, 40000).build();
  bool rev = true;
  const FlowKey k = key_of(ba, false, &rev);
  EXPECT_FALSE(rev);
  EXPECT_EQ(k.port_a, 80);
  EXPECT_EQ(format_ip(Family::kIpv4, k.addr_a()), "192.0.2.10");
  EXPECT_NE(k, key_of(ba, true));
}

TEST(FlowKey, SameAddressOrdersByPort) {
  const Bytes ab = PacketBuilder().ipv4("127.0.0.1", "127.0.0.1").udp(9000, 53).build();
  const Bytes ba = PacketBuilder().ipv4("127.0.0.1", "127.0.0.1").udp(53, 9000).build();
  bool r1, r2;
  EXPECT_EQ(key_of(ab, true, &r1), key_of(ba, true, &r2));
  EXPECT_TRUE(r1);
  EXPECT_FALSE(r2);
  EXPECT_EQ(key_of(ab).port_a, 53);
}

TEST(FlowKey, IcmpEchoRequestAndReplyShareAKey) {
  const Bytes req = PacketBuilder().ipv4("10.0.0.1", "10.0.0.2").icmp_echo(true, 77, 1).build();
  const Bytes rep = PacketBuilder().ipv4("10.0.0.2", "10.0.0.1").icmp_echo(false, 77, 1).build();
  const FlowKey k = key_of(req);
  EXPECT_EQ(k, key_of(rep));
  EXPECT_EQ(k.port_a, 77);
  EXPECT_EQ(k.port_b, 77);
  EXPECT_NE(k, key_of(PacketBuilder().ipv4("10.0.0.1", "10.0.0.2").icmp_echo(true, 78, 1).build()));
}

TEST(FlowKey, IcmpErrorItselfHasNoPorts) {
  const Bytes inner = PacketBuilder().ipv4("10.0.0.1", "192.0.2.10").tcp(1, 2).build_l3();
  const Bytes err = PacketBuilder().ipv4("192.0.2.1", "10.0.0.1").icmp_error(3, 1, inner).build();
  const FlowKey k = key_of(err);
  EXPECT_EQ(k.proto, kProtoIcmp);
  EXPECT_EQ(k.port_a, 0);
  EXPECT_EQ(k.port_b, 0);
}

// The key of the flow quoted in an ICMP error is the key of that flow.
TEST(FlowKey, IcmpErrorQuoteKeyEqualsQuotedFlowKey) {
  struct Case {
    const char* name;
    PacketBuilder flow;
    PacketBuilder error;  // without icmp_error yet
    uint8_t type, code;
    uint32_t info;
    size_t quote_len;
  };
  const Case cases[] = {
      {"v4_frag_needed_tcp", PacketBuilder().ipv4("10.0.0.1", "192.0.2.10").tcp(40000, 443),
       PacketBuilder().ipv4("198.51.100.1", "10.0.0.1"), 3, 4, 1400, 28},
      {"v4_port_unreachable_udp", PacketBuilder().ipv4("10.0.0.1", "192.0.2.10").udp(5353, 53),
       PacketBuilder().ipv4("192.0.2.10", "10.0.0.1"), 3, 3, 0, 28},
      {"v4_time_exceeded_echo",
       PacketBuilder().ipv4("10.0.0.1", "192.0.2.10").icmp_echo(true, 99, 1),
       PacketBuilder().ipv4("198.51.100.1", "10.0.0.1"), 11, 0, 0, 28},
      {"v6_packet_too_big_tcp",
       PacketBuilder()
           .ipv6("2001:db8::1", "2001:db8:ffff::10")
           .tcp(40000, 443)
           .payload(Bytes(1400, 0)),
       PacketBuilder().ipv6("2001:db8:1::1", "2001:db8::1"), 2, 0, 1280, 1232},
      {"v6_port_unreachable_udp_ext",
       PacketBuilder().ipv6("2001:db8::1", "2001:db8:ffff::10").ipv6_ext(60).udp(5000, 53),
       PacketBuilder().ipv6("2001:db8:ffff::10", "2001:db8::1"), 1, 4, 0, 9999},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    const Bytes flow_l3 = c.flow.build_l3();
    const Bytes quote(flow_l3.begin(),
                      flow_l3.begin() + static_cast<long>(std::min(c.quote_len, flow_l3.size())));
    PacketBuilder eb = c.error;
    const Bytes err = eb.icmp_error(c.type, c.code, quote, c.info).build();
    const Bytes flow = c.flow.build();
    const PacketMeta em = parse(err);
    ASSERT_TRUE(em.has(kMetaIcmpError));
    bool rq = true, rf = true;
    EXPECT_EQ(flow_key_of_quote(err.data(), em, true, &rq), key_of(flow, true, &rf));
    EXPECT_EQ(rq, rf);
    EXPECT_EQ(flow_key_of_quote(err.data(), em, false), key_of(flow, false));
  }
}

TEST(FlowKey, FragmentsUsePortsZero) {
  const auto frag = [](uint16_t off, bool more) {
    return PacketBuilder()
        .ipv4("10.0.0.1", "10.0.0.2")
        .fragment(off, more, 5)
        .udp(1000, 2000)
        .payload(Bytes(16, 0))
        .build();
  };
  const FlowKey first = key_of(frag(0, true));
  const FlowKey last = key_of(frag(1480, false));
  EXPECT_EQ(first, last);
  EXPECT_EQ(first.port_a, 0);
  EXPECT_EQ(first.port_b, 0);
  EXPECT_EQ(first.proto, kProtoUdp);
  const FlowKey whole =
      key_of(PacketBuilder().ipv4("10.0.0.1", "10.0.0.2").udp(1000, 2000).build());
  EXPECT_EQ(whole.port_a, 1000);

  const auto frag6 = [](uint16_t off, bool more) {
    return PacketBuilder()
        .ipv6("::1", "::2")
        .fragment(off, more, 5)
        .udp(1000, 2000)
        .payload(Bytes(16, 0))
        .build();
  };
  EXPECT_EQ(key_of(frag6(0, true)), key_of(frag6(1232, false)));
  EXPECT_EQ(key_of(frag6(0, true)).port_a, 0);
}

TEST(FlowKey, NonIpGivesTheZeroKey) {
  const Bytes arp = PacketBuilder().ethertype(kEtherTypeArp).payload(Bytes(28, 1)).build();
  bool rev = true;
  EXPECT_EQ(key_of(arp, true, &rev), FlowKey{});
  EXPECT_FALSE(rev);
}

TEST(FlowKey, HashCoversExactlyTheHashedBytes) {
  const SipKey sk{0x0706050403020100ULL, 0x0F0E0D0C0B0A0908ULL};
  const FlowKey a = key_of(PacketBuilder().ipv4("10.0.0.1", "10.0.0.2").tcp(1, 2).build());
  const FlowKey b = key_of(PacketBuilder().ipv4("10.0.0.2", "10.0.0.1").tcp(2, 1).build());
  EXPECT_EQ(hash_flow_key(a, sk), hash_flow_key(b, sk));
  EXPECT_EQ(hash_flow_key(a, sk), siphash13(sk, raw(a), 16));
  EXPECT_NE(hash_flow_key(a, sk), hash_flow_key(a, SipKey{1, 2}));
  const FlowKey c = key_of(PacketBuilder().ipv4("10.0.0.1", "10.0.0.2").tcp(1, 3).build());
  EXPECT_NE(hash_flow_key(a, sk), hash_flow_key(c, sk));
  const FlowKey v6 = key_of(PacketBuilder().ipv6("::1", "::2").tcp(1, 2).build());
  EXPECT_EQ(hash_flow_key(v6, sk), siphash13(sk, raw(v6), 40));
}

TEST(FlowKey, MakeFlowKeyMatchesFlowKeyOf) {
  const uint8_t s[4] = {192, 0, 2, 1}, d[4] = {10, 1, 2, 3};
  bool rev = false;
  const FlowKey k = make_flow_key(Family::kIpv4, kProtoTcp, s, d, 443, 1234, true, &rev);
  EXPECT_TRUE(rev);
  EXPECT_EQ(k, key_of(PacketBuilder().ipv4("10.1.2.3", "192.0.2.1").tcp(1234, 443).build()));
}

}  // namespace
}  // namespace tripod
