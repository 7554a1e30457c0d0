#include "packet/checksum.h"

#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "common/byte_order.h"
#include "common/random.h"
#include "packet/builder.h"
#include "packet/parser.h"

namespace tripod {
namespace {

// RFC 1071 written the obvious way: big-endian 16-bit words, 32-bit sum.
uint16_t ref_checksum(const std::vector<uint8_t>& v) {
  uint32_t s = 0;
  for (size_t i = 0; i + 1 < v.size(); i += 2)
    s += static_cast<uint32_t>(v[i] << 8 | v[i + 1]);
  if (v.size() % 2 != 0) s += static_cast<uint32_t>(v.back() << 8);
  while (s >> 16)
    s = (s & 0xFFFF) + (s >> 16);
  return static_cast<uint16_t>(~s);
}

uint16_t fast_checksum(const uint8_t* p, size_t n) {
  return csum_finish(csum_add_bytes(0, p, n));
}

TEST(Checksum, Rfc1071Example) {
  // RFC 1071 1.3: these words sum to 0xDDF2, so the checksum is 0x220D.
  const uint8_t d[] = {0x00, 0x01, 0xF2, 0x03, 0xF4, 0xF5, 0xF6, 0xF7};
  EXPECT_EQ(fast_checksum(d, sizeof d), 0x220D);
  EXPECT_EQ(csum_finish(csum_add_bytes(csum_add_bytes(0, d, 2), d + 2, 6)), 0x220D);
}

TEST(Checksum, KnownIpv4Header) {
  // A captured UDP header with checksum 0xB861 (the usual textbook example).
  uint8_t h[] = {0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11,
                 0xB8, 0x61, 0xC0, 0xA8, 0x00, 0x01, 0xC0, 0xA8, 0x00, 0xC7};
  EXPECT_EQ(ipv4_header_checksum(h, sizeof h), 0xB861);
  h[10] = h[11] = 0;  // the field is ignored
  EXPECT_EQ(ipv4_header_checksum(h, sizeof h), 0xB861);
}

TEST(Checksum, Rfc1624Example) {
  // RFC 1624 4: eqn. 3 yields 0x0000 where RFC 1141's eqn. 2 gave 0xFFFF.
  EXPECT_EQ(csum_update16(0xDD2F, 0x5555, 0x3285), 0x0000);
  const uint8_t old_b[] = {0x55, 0x55}, new_b[] = {0x32, 0x85};
  EXPECT_EQ(csum_update_bytes(0xDD2F, old_b, new_b, 2), 0x0000);
}

TEST(Checksum, Udp4ZeroRule) {
  EXPECT_EQ(udp4_csum_update16(0, 0x1234, 0x4321), 0);            // "no checksum" stays
  EXPECT_EQ(udp4_csum_update16(0xDD2F, 0x5555, 0x3285), 0xFFFF);  // computed 0 is sent as ~0
}

// The 64-bit word loop against the reference on every length and alignment.
TEST(Checksum, FastSumMatchesReference) {
  SplitMix64 rng(99);
  std::vector<uint8_t> buf(600);
  for (size_t len = 0; len <= 300; ++len) {
    for (size_t align = 0; align < 8; ++align) {
      for (size_t i = 0; i < len + align; ++i)
        buf[i] = static_cast<uint8_t>(rng.next());
      const std::vector<uint8_t> v(buf.begin() + static_cast<long>(align),
                                   buf.begin() + static_cast<long>(align + len));
      ASSERT_EQ(fast_checksum(buf.data() + align, len), ref_checksum(v))
          << "len=" << len << " align=" << align;
      const size_t split = len / 2 & ~size_t{1};  // any even split point
      const uint64_t s = csum_add_bytes(0, buf.data() + align, split);
      ASSERT_EQ(csum_finish(csum_add_bytes(s, buf.data() + align + split, len - split)),
                ref_checksum(v));
    }
  }
}

TEST(Checksum, CarryHeavyInput) {
  const std::vector<uint8_t> ones(65536, 0xFF);
  EXPECT_EQ(fast_checksum(ones.data(), ones.size()), ref_checksum(ones));
  const std::vector<uint8_t> zeros(1500, 0);
  EXPECT_EQ(fast_checksum(zeros.data(), zeros.size()), 0xFFFF);
}

// l4_checksum against a pseudo-header assembled by hand and the reference sum.
TEST(Checksum, L4MatchesHandBuiltPseudoHeader) {
  SplitMix64 rng(5);
  for (int i = 0; i < 200; ++i) {
    const bool six = i % 2 == 1;
    const int kind = i / 2 % 3;  // TCP, UDP, ICMP
    PacketBuilder b;
    if (six) {
      b.ipv6("2001:db8::7", "fe80::1").ipv6_ext(60);
    } else {
      b.ipv4("198.51.100.7", "203.0.113.9");
    }
    if (kind == 0) b.tcp(1234, 443).seq(static_cast<uint32_t>(rng.next()));
    if (kind == 1) b.udp(53, 9999);
    if (kind == 2) b.icmp_echo(true, 7, 9);
    std::vector<uint8_t> payload(rng.below(100));
    for (auto& x : payload)
      x = static_cast<uint8_t>(rng.next());
    const Bytes f = b.payload(payload).build();
    PacketMeta m;
    ASSERT_EQ(parse_packet(f.data(), static_cast<uint32_t>(f.size()), &m), ParseError::kOk);
    const size_t cs = kind == 0 ? 16 : kind == 1 ? 6 : 2;
    std::vector<uint8_t> v;
    const uint32_t l4len = m.l3_end - m.l4_off;
    if (six || kind != 2) {
      v.insert(v.end(), f.begin() + m.src_off, f.begin() + m.src_off + m.addr_len());
      v.insert(v.end(), f.begin() + m.dst_off, f.begin() + m.dst_off + m.addr_len());
      const auto hi = static_cast<uint8_t>(l4len >> 8), lo = static_cast<uint8_t>(l4len);
      if (six) {
        v.insert(v.end(), {0, 0, hi, lo, 0, 0, 0, m.proto});
      } else {
        v.insert(v.end(), {0, m.proto, hi, lo});
      }
    }
    const size_t start = v.size();
    v.insert(v.end(), f.begin() + m.l4_off, f.begin() + m.l3_end);
    v[start + cs] = v[start + cs + 1] = 0;
    uint16_t want = ref_checksum(v);
    if (kind == 1 && want == 0) want = 0xFFFF;
    EXPECT_EQ(load_be16(f.data() + m.l4_off + cs), want) << i;
    EXPECT_TRUE(l4_checksum_ok(f.data(), m)) << i;
  }
}

TEST(Checksum, VerifyRejectsDamageAndKnowsUdpZero) {
  Bytes f = PacketBuilder().ipv4("10.0.0.1", "10.0.0.2").tcp(1, 2).payload("abcd").build();
  PacketMeta m;
  ASSERT_EQ(parse_packet(f.data(), static_cast<uint32_t>(f.size()), &m), ParseError::kOk);
  EXPECT_TRUE(l4_checksum_ok(f.data(), m));
  f.back() ^= 0x40;
  EXPECT_FALSE(l4_checksum_ok(f.data(), m));
  fix_checksums(f.data(), m);
  EXPECT_TRUE(l4_checksum_ok(f.data(), m));

  const Bytes u4 = PacketBuilder().ipv4("10.0.0.1", "10.0.0.2").udp(1, 2).l4_checksum(0).build();
  ASSERT_EQ(parse_packet(u4.data(), static_cast<uint32_t>(u4.size()), &m), ParseError::kOk);
  EXPECT_TRUE(l4_checksum_ok(u4.data(), m));  // IPv4: 0 = not computed
  const Bytes u6 = PacketBuilder().ipv6("::1", "::2").udp(1, 2).l4_checksum(0).build();
  ASSERT_EQ(parse_packet(u6.data(), static_cast<uint32_t>(u6.size()), &m), ParseError::kOk);
  EXPECT_FALSE(l4_checksum_ok(u6.data(), m));  // IPv6: mandatory

  // Fragments are not checksummable here (the checksum covers the datagram).
  const Bytes fr = PacketBuilder()
                       .ipv4("10.0.0.1", "10.0.0.2")
                       .fragment(0, true)
                       .udp(1, 2)
                       .payload(Bytes(16, 1))
                       .build();
  ASSERT_EQ(parse_packet(fr.data(), static_cast<uint32_t>(fr.size()), &m), ParseError::kOk);
  EXPECT_FALSE(l4_checksum_ok(fr.data(), m));
}

// RFC 1624 updates, as NAT and the SYN proxy apply them, must land exactly on
// what a full recompute gives, over thousands of random packets and rewrites.
TEST(Checksum, IncrementalUpdateMatchesFullRecompute) {
  SplitMix64 rng(20240601);
  int zero_udp = 0;
  for (int iter = 0; iter < 5000; ++iter) {
    const bool six = rng.below(2) == 1;
    const bool tcp = rng.below(2) == 1;
    const bool udp_nocsum = !six && !tcp && rng.below(8) == 0;
    uint8_t a[16], z[16];
    for (auto& x : a)
      x = static_cast<uint8_t>(rng.next());
    for (auto& x : z)
      x = static_cast<uint8_t>(rng.next());
    const Family fam = six ? Family::kIpv6 : Family::kIpv4;
    PacketBuilder b;
    if (six) {
      b.ipv6(format_ip(fam, a), format_ip(fam, z));
    } else {
      b.ipv4(format_ip(fam, a), format_ip(fam, z));
    }
    const auto sp = static_cast<uint16_t>(rng.next()), dp = static_cast<uint16_t>(rng.next());
    if (tcp) {
      b.tcp(sp, dp)
          .seq(static_cast<uint32_t>(rng.next()))
          .ack_seq(static_cast<uint32_t>(rng.next()));
    } else {
      b.udp(sp, dp);
    }
    if (udp_nocsum) b.l4_checksum(0);
    std::vector<uint8_t> payload(rng.below(300));
    for (auto& x : payload)
      x = static_cast<uint8_t>(rng.next());
    Bytes f = b.payload(payload).build();
    PacketMeta m;
    ASSERT_EQ(parse_packet(f.data(), static_cast<uint32_t>(f.size()), &m), ParseError::kOk);

    uint8_t* l3 = f.data() + m.l3_off;
    uint8_t* l4 = f.data() + m.l4_off;
    const size_t cs = tcp ? 16 : 6;
    uint16_t hc = load_be16(l4 + cs);
    uint16_t ip_hc = six ? 0 : load_be16(l3 + 10);
    // One 16-bit L4 field changed, with the UDP rules for zero.
    const auto upd16 = [&](uint16_t o, uint16_t n) {
      if (!tcp && !six) {
        hc = udp4_csum_update16(hc, o, n);
      } else {
        hc = csum_update16(hc, o, n);
        if (!tcp && hc == 0) hc = 0xFFFF;
      }
    };
    const int rewrites = 1 + static_cast<int>(rng.below(6));
    for (int r = 0; r < rewrites; ++r) {
      switch (rng.below(5)) {
        case 0:
        case 1: {  // source or destination address (NAT)
          uint8_t* addr = f.data() + (rng.below(2) == 0 ? m.src_off : m.dst_off);
          uint8_t n[16];
          for (auto& x : n)
            x = static_cast<uint8_t>(rng.next());
          if (six) {
            hc = csum_update_bytes(hc, addr, n, 16);
            if (!tcp && hc == 0) hc = 0xFFFF;
            std::memcpy(addr, n, 16);
          } else {
            const uint32_t o32 = load_be32(addr), n32 = load_be32(n);
            ip_hc = csum_update32(ip_hc, o32, n32);
            upd16(static_cast<uint16_t>(o32 >> 16), static_cast<uint16_t>(n32 >> 16));
            upd16(static_cast<uint16_t>(o32), static_cast<uint16_t>(n32));
            std::memcpy(addr, n, 4);
          }
          break;
        }
        case 2: {  // a port
          uint8_t* p = l4 + 2 * rng.below(2);
          const auto n = static_cast<uint16_t>(rng.next());
          upd16(load_be16(p), n);
          store_be16(p, n);
          break;
        }
        case 3: {  // TCP sequence number (SYN proxy), else TTL (v4) / nothing
          if (tcp) {
            const auto n = static_cast<uint32_t>(rng.next());
            hc = csum_update32(hc, load_be32(l4 + 4), n);
            store_be32(l4 + 4, n);
          } else if (!six) {
            const uint16_t o = load_be16(l3 + 8);
            l3[8] = static_cast<uint8_t>(l3[8] - 1);
            ip_hc = csum_update16(ip_hc, o, load_be16(l3 + 8));
          }
          break;
        }
        default: {  // payload bytes (e.g. a rewritten option), even-aligned pair
          if (m.l3_end - m.payload_off < 2) break;
          const size_t off = m.payload_off + (rng.below(m.l3_end - m.payload_off - 1) & ~1ull);
          const auto n = static_cast<uint16_t>(rng.next());
          if ((off - m.l4_off) % 2 != 0) break;
          upd16(load_be16(f.data() + off), n);
          store_be16(f.data() + off, n);
        }
      }
    }
    store_be16(l4 + cs, hc);
    if (!six) store_be16(l3 + 10, ip_hc);

    if (!six) {
      ASSERT_EQ(ip_hc, ipv4_header_checksum(l3, 20)) << iter;
    }
    if (udp_nocsum) {
      ASSERT_EQ(hc, 0) << iter;
      ++zero_udp;
    } else {
      Bytes full = f;
      fix_checksums(full.data(), m);
      ASSERT_EQ(hc, load_be16(full.data() + m.l4_off + cs)) << iter;
    }
    ASSERT_TRUE(l4_checksum_ok(f.data(), m)) << iter;
    ASSERT_EQ(parse_packet(f.data(), static_cast<uint32_t>(f.size()), &m), ParseError::kOk);
  }
  EXPECT_GT(zero_udp, 100);
}

}  // namespace
}  // namespace tripod
