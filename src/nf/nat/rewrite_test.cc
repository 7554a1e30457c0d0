// NAT rewrites are checked byte for byte against the packet the builder
// makes from scratch with the translated endpoints (the builder computes
// every checksum in full), so an incremental update that is off by one bit
// anywhere fails.
#include "nf/nat/rewrite.h"

#include <gtest/gtest.h>

#include <string>

#include "common/random.h"
#include "packet/builder.h"
#include "packet/checksum.h"

namespace tripod {
namespace {

struct Addr {
  Family family;
  uint8_t b[16];
};
Addr ip(const std::string& text) {
  Addr a{};
  EXPECT_TRUE(parse_ip(text, &a.family, a.b));
  return a;
}

PacketMeta parse(const Bytes& f) {
  PacketMeta m;
  EXPECT_EQ(parse_packet(f.data(), static_cast<uint32_t>(f.size()), &m), ParseError::kOk);
  return m;
}

PacketBuilder l3(const std::string& src, const std::string& dst) {
  PacketBuilder b;
  if (src.find(':') != std::string::npos) {
    b.ipv6(src, dst);
  } else {
    b.ipv4(src, dst);
  }
  return b;
}

Bytes tcp(const std::string& s, const std::string& d, uint16_t sp, uint16_t dp) {
  return l3(s, d).tcp(sp, dp).seq(1000).ack_seq(2000).psh().payload("hello, backend").build();
}

void full_nat(Bytes& f, const std::string& src, uint16_t sp, const std::string& dst, uint16_t dp) {
  PacketMeta m = parse(f);
  ASSERT_EQ(nat_rewrite(f.data(), m, NatSide::kSource, ip(src).b, sp), NatResult::kOk);
  ASSERT_EQ(nat_rewrite(f.data(), m, NatSide::kDestination, ip(dst).b, dp), NatResult::kOk);
  EXPECT_EQ(m.sport, sp);
  EXPECT_EQ(m.dport, dp);
}

TEST(NatRewrite, FullNatBothDirectionsV4AndV6) {
  // client -> VIP becomes SNAT -> DIP; the reply DIP -> SNAT becomes VIP -> client.
  for (const auto& [client, vip, snat, dip] :
       {std::tuple{"198.51.100.7", "203.0.113.10", "10.1.0.1", "10.2.0.5"},
        std::tuple{"2001:db8:c::7", "2001:db8:f::10", "fd00:1::1", "fd00:2::5"}}) {
    Bytes fwd = tcp(client, vip, 40000, 80);
    full_nat(fwd, snat, 5001, dip, 8080);
    EXPECT_EQ(fwd, tcp(snat, dip, 5001, 8080));
    Bytes rev = tcp(dip, snat, 8080, 5001);
    full_nat(rev, vip, 80, client, 40000);
    EXPECT_EQ(rev, tcp(vip, client, 80, 40000));
  }
}

// Thousands of random rewrites of TCP and UDP, both families, byte-exact.
TEST(NatRewrite, RandomRewritesMatchFullRecompute) {
  SplitMix64 rng(77);
  auto rand_ip = [&](bool six) {
    if (!six) {
      return std::to_string(rng.below(224)) + "." + std::to_string(rng.below(256)) + "." +
             std::to_string(rng.below(256)) + "." + std::to_string(rng.below(256));
    }
    char buf[64];
    std::snprintf(buf, sizeof buf, "2001:db8:%x:%x::%x:%x", static_cast<unsigned>(rng.below(65536)),
                  static_cast<unsigned>(rng.below(65536)), static_cast<unsigned>(rng.below(65536)),
                  static_cast<unsigned>(rng.below(65536)));
    return std::string(buf);
  };
  for (int i = 0; i < 3000; ++i) {
    const bool six = rng.below(2) == 0, udp = rng.below(2) == 0;
    const std::string s = rand_ip(six), d = rand_ip(six), s2 = rand_ip(six), d2 = rand_ip(six);
    const auto sp = static_cast<uint16_t>(rng.next()), dp = static_cast<uint16_t>(rng.next());
    const auto sp2 = static_cast<uint16_t>(rng.next()), dp2 = static_cast<uint16_t>(rng.next());
    const std::string payload(rng.below(300), static_cast<char>('a' + rng.below(26)));
    auto make = [&](const std::string& a, const std::string& b, uint16_t pa, uint16_t pb) {
      PacketBuilder pkt = l3(a, b);
      if (udp) {
        pkt.udp(pa, pb);
      } else {
        pkt.tcp(pa, pb).seq(static_cast<uint32_t>(i)).ack_seq(7);
      }
      return pkt.payload(payload).build();
    };
    Bytes f = make(s, d, sp, dp);
    Bytes g = f;
    full_nat(f, s2, sp2, d2, dp2);
    const Bytes want = make(s2, d2, sp2, dp2);
    ASSERT_EQ(f, want) << "case " << i;
    ASSERT_TRUE(l4_checksum_ok(f.data(), parse(f)));
    // The fused rewrite (FullNAT's per-packet path) gives the same bytes.
    PacketMeta mg = parse(g);
    ASSERT_EQ(nat_rewrite_both(g.data(), mg, ip(s2).b, sp2, ip(d2).b, dp2), NatResult::kOk);
    ASSERT_EQ(g, want) << "fused, case " << i;
    EXPECT_EQ(mg.sport, sp2);
    EXPECT_EQ(mg.dport, dp2);
  }
}

TEST(NatRewrite, UdpOverIpv4WithoutChecksumKeepsNone) {
  auto make = [](const char* s, const char* d, uint16_t sp) {
    return PacketBuilder().ipv4(s, d).udp(sp, 53).l4_checksum(0).payload("q").build();
  };
  Bytes f = make("10.0.0.1", "10.0.0.2", 1000);
  Bytes g = f;
  full_nat(f, "192.0.2.1", 2000, "10.0.0.2", 53);
  EXPECT_EQ(f, make("192.0.2.1", "10.0.0.2", 2000));
  PacketMeta m = parse(g);
  ASSERT_EQ(nat_rewrite_both(g.data(), m, ip("192.0.2.1").b, 2000, ip("10.0.0.2").b, 53),
            NatResult::kOk);
  EXPECT_EQ(g, make("192.0.2.1", "10.0.0.2", 2000));
}

TEST(NatRewrite, IcmpEchoIdentifierIsTheRequestersPort) {
  for (const auto& [client, vip, snat, dip] :
       {std::tuple{"198.51.100.7", "203.0.113.10", "10.1.0.1", "10.2.0.5"},
        std::tuple{"2001:db8:c::7", "2001:db8:f::10", "fd00:1::1", "fd00:2::5"}}) {
    Bytes req = l3(client, vip).icmp_echo(true, 77, 1).payload("ping").build();
    full_nat(req, snat, 5001, dip, 5001);
    EXPECT_EQ(req, l3(snat, dip).icmp_echo(true, 5001, 1).payload("ping").build());
    Bytes rep = l3(dip, snat).icmp_echo(false, 5001, 1).payload("ping").build();
    full_nat(rep, vip, 77, client, 77);
    EXPECT_EQ(rep, l3(vip, client).icmp_echo(false, 77, 1).payload("ping").build());
  }
}

// A router between the gateway and the backend reports that a translated
// packet (SNAT -> DIP) was too big. The error must reach the client, quoting
// the packet the client sent (client -> VIP), or path-MTU discovery breaks.
TEST(NatRewrite, IcmpErrorQuotingATranslatedFlowIsTranslated) {
  struct Case {
    const char *client, *vip, *snat, *dip, *router;
    uint8_t type, code;
    size_t quote;
    bool udp;
  };
  for (const Case& c :
       {Case{"198.51.100.7", "203.0.113.10", "10.1.0.1", "10.2.0.5", "10.9.9.9", 3, 4, 60, false},
        Case{"198.51.100.7", "203.0.113.10", "10.1.0.1", "10.2.0.5", "10.9.9.9", 3, 4, 28, true},
        Case{"2001:db8:c::7", "2001:db8:f::10", "fd00:1::1", "fd00:2::5", "fd00:9::9", 2, 0, 120,
             false},
        Case{"2001:db8:c::7", "2001:db8:f::10", "fd00:1::1", "fd00:2::5", "fd00:9::9", 2, 0, 48,
             true}}) {
    auto inner = [&](const char* s, const char* d, uint16_t sp, uint16_t dp) {
      PacketBuilder b = l3(s, d);
      if (c.udp) {
        b.udp(sp, dp);
      } else {
        b.tcp(sp, dp).seq(1234).ack_seq(99);
      }
      const Bytes full = b.payload(std::string(1400, 'y')).build_l3();
      return Bytes(full.begin(), full.begin() + static_cast<long>(c.quote));
    };
    auto error = [&](const char* to, const Bytes& quote) {
      return l3(c.router, to).icmp_error(c.type, c.code, quote, 1280).build();
    };
    Bytes f = error(c.snat, inner(c.snat, c.dip, 5001, 8080));
    PacketMeta m = parse(f);
    ASSERT_TRUE(m.has(kMetaIcmpError));
    ASSERT_EQ(nat_rewrite(f.data(), m, NatSide::kDestination, ip(c.client).b, 0), NatResult::kOk);
    ASSERT_EQ(nat_rewrite_quote(f.data(), m, NatSide::kSource, ip(c.client).b, 40000),
              NatResult::kOk);
    ASSERT_EQ(nat_rewrite_quote(f.data(), m, NatSide::kDestination, ip(c.vip).b, 80),
              NatResult::kOk);
    EXPECT_EQ(f, error(c.client, inner(c.client, c.vip, 40000, 80)))
        << c.client << " quote " << c.quote;
  }
}

TEST(NatRewrite, FragmentsAndUnknownProtocolsAreUnsupported) {
  Bytes frag = PacketBuilder().ipv4("10.0.0.1", "10.0.0.2").fragment(8, false).payload("x").build();
  PacketMeta m = parse(frag);
  EXPECT_EQ(nat_rewrite(frag.data(), m, NatSide::kSource, ip("10.0.0.3").b, 1),
            NatResult::kUnsupported);
  Bytes gre = PacketBuilder().ipv4("10.0.0.1", "10.0.0.2").ip_proto(47).payload("gre").build();
  m = parse(gre);
  EXPECT_EQ(nat_rewrite(gre.data(), m, NatSide::kSource, ip("10.0.0.3").b, 1),
            NatResult::kUnsupported);
}

TEST(NatRewrite, MssClampEvenAndOddOffsets) {
  auto syn = [](uint16_t mss, bool nop_first) {
    PacketBuilder b;
    b.ipv4("10.0.0.1", "10.0.0.2").tcp(1000, 80).syn();
    if (nop_first) b.tcp_raw_options(Bytes{1});
    return b.mss(mss).wscale(7).sack_permitted().build();
  };
  for (bool odd : {false, true}) {
    Bytes f = syn(1460, odd);
    PacketMeta m = parse(f);
    EXPECT_TRUE(clamp_mss(f.data(), m, 1400));
    EXPECT_EQ(f, syn(1400, odd)) << "odd offset: " << odd;
    EXPECT_FALSE(clamp_mss(f.data(), m, 1400)) << "already at the clamp";
  }
  Bytes ack = PacketBuilder().ipv4("10.0.0.1", "10.0.0.2").tcp(1000, 80).ack_seq(1).build();
  EXPECT_FALSE(clamp_mss(ack.data(), parse(ack), 1400));
}

TEST(NatRewrite, DsrChangesOnlyTheDestinationMac) {
  Bytes f = tcp("198.51.100.7", "203.0.113.10", 40000, 80);
  const Bytes before = f;
  const uint8_t mac[6] = {2, 0, 0, 0, 0, 0x42};
  set_dst_mac(f.data(), mac);
  EXPECT_TRUE(std::equal(mac, mac + 6, f.begin()));
  EXPECT_TRUE(std::equal(before.begin() + 6, before.end(), f.begin() + 6));
}

}  // namespace
}  // namespace tripod
