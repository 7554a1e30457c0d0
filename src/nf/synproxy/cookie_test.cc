#include "nf/synproxy/cookie.h"

#include <gtest/gtest.h>

#include <cstring>

#include "common/clock.h"
#include "common/random.h"

namespace tripod {
namespace {

constexpr uint64_t kSlot = 64ull * 1'000'000'000;

SipKey master(uint64_t seed = 1) {
  return SipKey{0x1111 * seed, 0x2222 * seed + 7};
}

// A tuple with its own storage.
struct Tuple {
  Family family = Family::kIpv4;
  uint8_t src[16] = {};
  uint8_t dst[16] = {};
  uint16_t sport = 0;
  uint16_t dport = 0;
  CookieTuple view() const { return CookieTuple{family, src, dst, sport, dport}; }
};

Tuple random_tuple(SplitMix64& rng, Family f) {
  Tuple t;
  t.family = f;
  for (auto& b : t.src)
    b = static_cast<uint8_t>(rng.next());
  for (auto& b : t.dst)
    b = static_cast<uint8_t>(rng.next());
  t.sport = static_cast<uint16_t>(rng.next());
  t.dport = static_cast<uint16_t>(rng.next());
  return t;
}

CookieOptions random_options(SplitMix64& rng, uint8_t mss_index, bool ts) {
  CookieOptions o;
  o.mss_index = mss_index;
  const uint64_t r = rng.next();
  o.wscale = (r & 0xF) == 15 ? kNoWscale : static_cast<uint8_t>((r & 0xF) % 15);
  o.sack_permitted = (r & 0x10) != 0;
  o.timestamps = ts;
  o.ecn = ts && (r & 0x20) != 0;
  return o;
}

// What the client's ACK gives verify(): ISN + has_ts + TSecr.
CookieStatus check(const CookieKeyring& ring, const Tuple& t, uint32_t client_isn, const Cookie& c,
                   bool ts, uint64_t now, CookieOptions* out) {
  return ring.verify(t.view(), client_isn, c.isn, ts, c.tsval, now, out);
}

TEST(CookieTest, RoundTripEveryMssIndexBothFamiliesWithAndWithoutTimestamps) {
  const uint64_t now = 1000 * kSlot + 12345;
  CookieKeyring ring(master(), CookieConfig{}, now);
  SplitMix64 rng(42);
  int checked = 0;
  for (Family f : {Family::kIpv4, Family::kIpv6}) {
    for (int i = 0; i < 2000; ++i) {
      const Tuple t = random_tuple(rng, f);
      const uint32_t isn = static_cast<uint32_t>(rng.next());
      for (uint8_t mss = 0; mss < 4; ++mss) {
        for (bool ts : {false, true}) {
          const CookieOptions o = random_options(rng, mss, ts);
          const Cookie c = ring.mint(t.view(), isn, o, now);
          CookieOptions got;
          ASSERT_EQ(check(ring, t, isn, c, ts, now, &got), CookieStatus::kValid)
              << "family " << int(f) << " tuple " << i << " mss " << int(mss) << " ts " << ts;
          EXPECT_EQ(got, o);
          EXPECT_EQ(c.isn & 3, mss);
          if (ts) {
            // Linux's TSval option layout: wscale:4 | sack:1 | ecn:1.
            EXPECT_EQ(c.tsval & 0xF, o.wscale);
            EXPECT_EQ((c.tsval >> 4) & 1, o.sack_permitted ? 1u : 0u);
            EXPECT_EQ((c.tsval >> 5) & 1, o.ecn ? 1u : 0u);
          } else {
            EXPECT_EQ((c.isn >> 6) & 0xF, o.wscale);
            EXPECT_EQ((c.isn >> 5) & 1, o.sack_permitted ? 1u : 0u);
          }
          ++checked;
        }
      }
    }
  }
  EXPECT_EQ(checked, 2 * 2000 * 4 * 2);
}

TEST(CookieTest, EcnIsNotCarriedWithoutTimestamps) {
  CookieKeyring ring(master(), CookieConfig{}, 0);
  SplitMix64 rng(3);
  const Tuple t = random_tuple(rng, Family::kIpv4);
  CookieOptions o;
  o.ecn = true;
  o.wscale = 7;
  const Cookie c = ring.mint(t.view(), 99, o, 0);
  CookieOptions got;
  ASSERT_EQ(check(ring, t, 99, c, false, 0, &got), CookieStatus::kValid);
  EXPECT_FALSE(got.ecn);
  EXPECT_EQ(got.wscale, 7);
}

// Every field of the tuple and the client ISN is under the MAC.
TEST(CookieTest, WrongTupleOrClientIsnIsRejected) {
  const uint64_t now = 5 * kSlot;
  CookieKeyring ring(master(), CookieConfig{}, now);
  SplitMix64 rng(7);
  for (Family f : {Family::kIpv4, Family::kIpv6}) {
    for (bool ts : {false, true}) {
      const Tuple t = random_tuple(rng, f);
      const uint32_t isn = 0xDEADBEEF;
      const CookieOptions o = random_options(rng, 2, ts);
      const Cookie c = ring.mint(t.view(), isn, o, now);
      CookieOptions got;
      ASSERT_EQ(check(ring, t, isn, c, ts, now, &got), CookieStatus::kValid);
      const size_t alen = f == Family::kIpv6 ? 16 : 4;
      for (size_t i = 0; i < alen; ++i) {
        Tuple u = t;
        u.src[i] ^= 1;
        EXPECT_NE(check(ring, u, isn, c, ts, now, &got), CookieStatus::kValid) << "src " << i;
        u = t;
        u.dst[i] ^= 0x80;
        EXPECT_NE(check(ring, u, isn, c, ts, now, &got), CookieStatus::kValid) << "dst " << i;
      }
      Tuple u = t;
      u.sport ^= 1;
      EXPECT_EQ(check(ring, u, isn, c, ts, now, &got), CookieStatus::kBad);
      u = t;
      u.dport ^= 0x100;
      EXPECT_EQ(check(ring, u, isn, c, ts, now, &got), CookieStatus::kBad);
      // Same bytes, other family: the family is under the MAC.
      u = t;
      u.family = f == Family::kIpv4 ? Family::kIpv6 : Family::kIpv4;
      EXPECT_EQ(check(ring, u, isn, c, ts, now, &got), CookieStatus::kBad);
      EXPECT_EQ(check(ring, t, isn + 1, c, ts, now, &got), CookieStatus::kBad);
      // The ACK's timestamp presence must match the SYN's (RFC 7323 3.2).
      EXPECT_EQ(check(ring, t, isn, c, !ts, now, &got), CookieStatus::kBad);
    }
  }
}

TEST(CookieTest, EveryFlippedBitOfIsnOrTsecrIsRejected) {
  const uint64_t now = 77 * kSlot + 5;
  CookieKeyring ring(master(), CookieConfig{}, now);
  SplitMix64 rng(11);
  for (Family f : {Family::kIpv4, Family::kIpv6}) {
    for (bool ts : {false, true}) {
      const Tuple t = random_tuple(rng, f);
      const CookieOptions o = random_options(rng, 1, ts);
      const Cookie c = ring.mint(t.view(), 1234, o, now);
      CookieOptions got;
      ASSERT_EQ(check(ring, t, 1234, c, ts, now, &got), CookieStatus::kValid);
      for (int bit = 0; bit < 32; ++bit) {
        Cookie d = c;
        d.isn ^= 1u << bit;
        EXPECT_NE(check(ring, t, 1234, d, ts, now, &got), CookieStatus::kValid)
            << "isn bit " << bit << " ts " << ts;
        if (ts) {
          d = c;
          d.tsval ^= 1u << bit;
          EXPECT_NE(check(ring, t, 1234, d, ts, now, &got), CookieStatus::kValid)
              << "tsecr bit " << bit;
        }
      }
    }
  }
}

// options_without_timestamps off: Linux's choice, a 27-bit MAC and no
// window scale or SACK without timestamps; with timestamps nothing changes.
TEST(CookieTest, WithoutTimestampsOptionsCanBeDroppedForA27BitMac) {
  const uint64_t now = 9 * kSlot;
  CookieKeyring ring(master(), CookieConfig{.options_without_timestamps = false}, now);
  SplitMix64 rng(21);
  for (int i = 0; i < 500; ++i) {
    const Tuple t = random_tuple(rng, i % 2 ? Family::kIpv6 : Family::kIpv4);
    const bool ts = i % 3 == 0;
    CookieOptions o = random_options(rng, static_cast<uint8_t>(i & 3), ts);
    o.wscale = 7;
    o.sack_permitted = true;
    const Cookie c = ring.mint(t.view(), 77, o, now);
    CookieOptions got;
    ASSERT_EQ(check(ring, t, 77, c, ts, now, &got), CookieStatus::kValid) << i;
    EXPECT_EQ(got, ring.carried(o));
    EXPECT_EQ(got.wscale, ts ? 7 : kNoWscale);
    EXPECT_EQ(got.sack_permitted, ts);
    EXPECT_EQ(got.mss_index, i & 3);
    for (int bit = 0; bit < 32; ++bit) {
      Cookie d = c;
      d.isn ^= 1u << bit;
      EXPECT_NE(check(ring, t, 77, d, ts, now, &got), CookieStatus::kValid) << i << " bit " << bit;
    }
  }
}

TEST(CookieTest, OtherKeyIsRejected) {
  CookieKeyring a(master(1), CookieConfig{}, 0);
  CookieKeyring b(master(2), CookieConfig{}, 0);
  SplitMix64 rng(5);
  for (int i = 0; i < 1000; ++i) {
    const Tuple t = random_tuple(rng, i % 2 ? Family::kIpv6 : Family::kIpv4);
    const bool ts = i % 3 == 0;
    const Cookie c = a.mint(t.view(), 1, random_options(rng, 0, ts), 0);
    CookieOptions got;
    EXPECT_EQ(check(b, t, 1, c, ts, 0, &got), CookieStatus::kBad) << i;
  }
}

TEST(CookieTest, PreviousKeyAcceptedAfterOneRotationNotAfterTwo) {
  const uint64_t now = 3 * kSlot;
  CookieKeyring ring(master(), CookieConfig{.rotate_every_slots = 0}, now);
  SplitMix64 rng(9);
  for (bool ts : {false, true}) {
    const Tuple t = random_tuple(rng, Family::kIpv4);
    const CookieOptions o = random_options(rng, 3, ts);
    const Cookie before = ring.mint(t.view(), 42, o, now);
    CookieOptions got;
    ring.rotate();
    EXPECT_EQ(check(ring, t, 42, before, ts, now, &got), CookieStatus::kValid);
    EXPECT_EQ(got, o);
    const Cookie middle = ring.mint(t.view(), 42, o, now);
    EXPECT_NE(middle.isn, before.isn);
    ring.rotate();
    EXPECT_EQ(check(ring, t, 42, before, ts, now, &got), CookieStatus::kBad);
    EXPECT_EQ(check(ring, t, 42, middle, ts, now, &got), CookieStatus::kValid);
    // A new master: the last key derived from the old one is still accepted.
    const Cookie last = ring.mint(t.view(), 42, o, now);
    ring.rotate(master(99));
    EXPECT_EQ(check(ring, t, 42, last, ts, now, &got), CookieStatus::kValid);
    EXPECT_EQ(check(ring, t, 42, middle, ts, now, &got), CookieStatus::kBad);
    ring.rotate();
    EXPECT_EQ(check(ring, t, 42, last, ts, now, &got), CookieStatus::kBad);
  }
}

TEST(CookieTest, AgeLimitOnTheInjectedClock) {
  ManualClock clock(10 * kSlot + kSlot / 2);
  CookieKeyring ring(master(), CookieConfig{}, clock.now_ns());
  SplitMix64 rng(13);
  for (bool ts : {false, true}) {
    clock.set_ns(10 * kSlot + kSlot / 2);
    const Tuple t = random_tuple(rng, Family::kIpv6);
    const Cookie c = ring.mint(t.view(), 7, random_options(rng, 0, ts), clock.now_ns());
    CookieOptions got;
    // (offset from minting, expected): valid through slot +2, kExpired at
    // +3, and past that the 2 slot bits wrap so the MAC fails: kBad.
    const struct {
      int64_t delta_ns;
      CookieStatus want;
    } cases[] = {
        {0, CookieStatus::kValid},
        {static_cast<int64_t>(kSlot / 2) - 1, CookieStatus::kValid},  // last ns of the slot
        {static_cast<int64_t>(kSlot / 2), CookieStatus::kValid},      // slot +1
        {static_cast<int64_t>(2 * kSlot), CookieStatus::kValid},      // slot +2
        {static_cast<int64_t>(2 * kSlot + kSlot / 2) - 1, CookieStatus::kValid},
        {static_cast<int64_t>(2 * kSlot + kSlot / 2), CookieStatus::kExpired},  // slot +3
        {static_cast<int64_t>(4 * kSlot), CookieStatus::kBad},                  // wrapped
        {static_cast<int64_t>(100 * kSlot), CookieStatus::kBad},
    };
    for (const auto& k : cases) {
      clock.set_ns(10 * kSlot + kSlot / 2 + static_cast<uint64_t>(k.delta_ns));
      EXPECT_EQ(check(ring, t, 7, c, ts, clock.now_ns(), &got), k.want)
          << "delta " << k.delta_ns << " ts " << ts;
    }
  }
}

TEST(CookieTest, TimeBasedRotationKeepsYoungCookiesValid) {
  ManualClock clock(0);
  CookieKeyring ring(master(), CookieConfig{}, clock.now_ns());  // rotate every 2 slots
  SplitMix64 rng(17);
  const Tuple t = random_tuple(rng, Family::kIpv4);
  const CookieOptions o = random_options(rng, 1, true);
  clock.set_ns(kSlot + 1);  // slot 1, epoch 0
  EXPECT_EQ(ring.advance(clock.now_ns()), 0u);
  const Cookie c = ring.mint(t.view(), 5, o, clock.now_ns());
  clock.set_ns(2 * kSlot);  // slot 2: epoch 1, one rotation
  EXPECT_EQ(ring.advance(clock.now_ns()), 1u);
  EXPECT_EQ(ring.generation(), 1u);
  CookieOptions got;
  EXPECT_EQ(check(ring, t, 5, c, true, clock.now_ns(), &got), CookieStatus::kValid);
  clock.set_ns(3 * kSlot);  // slot 3, age 2, same epoch
  EXPECT_EQ(ring.advance(clock.now_ns()), 0u);
  EXPECT_EQ(check(ring, t, 5, c, true, clock.now_ns(), &got), CookieStatus::kValid);
  clock.set_ns(4 * kSlot);  // slot 4, epoch 2: the minting key is gone (and age 3)
  EXPECT_EQ(ring.advance(clock.now_ns()), 1u);
  EXPECT_NE(check(ring, t, 5, c, true, clock.now_ns(), &got), CookieStatus::kValid);
  // After a long idle gap both keys are replaced, not one per missed epoch.
  clock.set_ns(1000 * kSlot);
  EXPECT_EQ(ring.advance(clock.now_ns()), 2u);
  EXPECT_EQ(ring.generation(), 500u);  // the epoch itself
}

// Two cluster nodes (same master, same clock) started at different times
// hold the same keys: one's cookie opens on the other, whichever rotated
// more often. (Generations counted per process made a restarted node
// refuse its peers' cookies.)
TEST(CookieTest, NodesStartedAtDifferentTimesShareKeys) {
  SplitMix64 rng(23);
  const Tuple t = random_tuple(rng, Family::kIpv4);
  const CookieOptions o = random_options(rng, 1, true);
  CookieKeyring old_node(master(), CookieConfig{}, 7 * kSlot);
  for (uint64_t s = 8; s <= 101; ++s)
    old_node.advance(s * kSlot);
  const uint64_t now = 101 * kSlot + 5;
  CookieKeyring new_node(master(), CookieConfig{}, now);
  EXPECT_EQ(old_node.generation(), new_node.generation());
  CookieOptions got;
  const Cookie a = old_node.mint(t.view(), 9, o, now);
  EXPECT_EQ(check(new_node, t, 9, a, true, now, &got), CookieStatus::kValid);
  const Cookie b = new_node.mint(t.view(), 9, o, now);
  EXPECT_EQ(check(old_node, t, 9, b, true, now, &got), CookieStatus::kValid);
  // A cookie of the previous epoch (slot 99), minted by a node then, opens
  // on the node started now (its previous key).
  const CookieKeyring then(master(), CookieConfig{}, 99 * kSlot);
  const Cookie c = then.mint(t.view(), 11, o, 99 * kSlot);
  EXPECT_EQ(check(new_node, t, 11, c, true, now, &got), CookieStatus::kValid);
}

TEST(CookieTest, MssTable) {
  const struct {
    Family f;
    uint16_t mss;
    uint8_t index;
    uint16_t carried;
  } cases[] = {
      {Family::kIpv4, 0, 0, 536},     {Family::kIpv4, 535, 0, 536},
      {Family::kIpv4, 536, 0, 536},   {Family::kIpv4, 1299, 0, 536},
      {Family::kIpv4, 1300, 1, 1300}, {Family::kIpv4, 1439, 1, 1300},
      {Family::kIpv4, 1440, 2, 1440}, {Family::kIpv4, 1460, 3, 1460},
      {Family::kIpv4, 8960, 3, 1460}, {Family::kIpv6, 1220, 0, 1220},
      {Family::kIpv6, 1419, 0, 1220}, {Family::kIpv6, 1420, 1, 1420},
      {Family::kIpv6, 1440, 2, 1440}, {Family::kIpv6, 8939, 2, 1440},
      {Family::kIpv6, 8940, 3, 8940}, {Family::kIpv6, 65535, 3, 8940},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(cookie_mss_index(c.f, c.mss), c.index) << c.mss;
    EXPECT_EQ(cookie_mss(c.f, c.index), c.carried) << c.mss;
  }
}

}  // namespace
}  // namespace tripod
