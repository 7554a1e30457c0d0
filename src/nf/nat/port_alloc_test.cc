#include "nf/nat/port_alloc.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <vector>

#include "common/random.h"
#include "packet/builder.h"

namespace tripod {
namespace {

SnatAddress v4(const char* text) {
  SnatAddress a;
  Family f;
  EXPECT_TRUE(parse_ip(text, &f, a.addr));
  a.family = f;
  return a;
}

SnatPoolConfig pool(uint32_t partitions, uint16_t lo = 1024, uint16_t hi = 65535) {
  SnatPoolConfig c;
  c.addresses = {v4("192.0.2.1"), v4("192.0.2.2")};
  c.port_lo = lo;
  c.port_hi = hi;
  c.partitions = partitions;
  return c;
}

// A port taken by shard s always maps back to shard s: the reply tuple names
// the owner.
TEST(SnatPorts, ReplyPortNamesTheOwningPartition) {
  SnatPortAllocator a(pool(7));
  for (uint32_t s = 0; s < 7; ++s) {
    for (int i = 0; i < 1000; ++i) {
      SnatLease l;
      ASSERT_TRUE(a.alloc(s, static_cast<uint32_t>(i), &l));
      ASSERT_EQ(a.partition_of(l.port), s);
      ASSERT_TRUE(a.in_range(l.port));
    }
  }
}

// Every port of a partition is handed out exactly once; then the partition is
// exhausted (other partitions unaffected); a freed port comes back.
TEST(SnatPorts, NeverHandsOutALivePortAndExhaustsCleanly) {
  SnatPortAllocator a(pool(4, 2000, 2099));  // 100 ports x 2 addresses, 25 per partition each
  std::set<std::pair<uint32_t, uint16_t>> live;
  SnatLease l;
  while (a.alloc(1, 0, &l))
    ASSERT_TRUE(live.insert({l.address, l.port}).second);
  EXPECT_EQ(live.size(), 50u);
  EXPECT_EQ(a.free_ports(1), 0u);
  EXPECT_EQ(a.free_ports(0), 50u);
  const SnatLease back{1, 2005};  // (2005 - 2000) % 4 == 1
  ASSERT_TRUE(live.count({1, 2005}));
  a.free(back);
  ASSERT_TRUE(a.alloc(1, 0, &l));
  EXPECT_EQ(l.address, 1u);
  EXPECT_EQ(l.port, 2005);
}

TEST(SnatPorts, DoubleAndForeignFreesAreCountedNotHonoured) {
  SnatPortAllocator a(pool(1, 3000, 3001));
  SnatLease l1, l2, l3;
  ASSERT_TRUE(a.alloc(0, 0, &l1));
  a.free(l1);
  a.free(l1);                  // double free
  a.free(SnatLease{0, 80});    // outside the range
  a.free(SnatLease{9, 3000});  // no such address
  EXPECT_EQ(a.bad_frees(), 3u);
  // Only the 4 real ports exist: the double free did not create a fifth.
  int n = 0;
  while (a.alloc(0, 0, &l2))
    ++n;
  EXPECT_EQ(n, 4);
  (void)l3;
}

// Random churn: the set of leased ports never contains a duplicate.
TEST(SnatPorts, ChurnKeepsLeasesUnique) {
  SnatPortAllocator a(pool(3, 10000, 10999));
  SplitMix64 rng(5);
  std::vector<SnatLease> held;
  std::set<std::pair<uint32_t, uint16_t>> live;
  for (int step = 0; step < 200000; ++step) {
    if (held.empty() || rng.below(3) != 0) {
      SnatLease l;
      const auto part = static_cast<uint32_t>(rng.below(3));
      if (a.alloc(part, static_cast<uint32_t>(rng.next()), &l)) {
        ASSERT_TRUE(live.insert({l.address, l.port}).second) << "port handed out twice";
        held.push_back(l);
      } else {
        ASSERT_EQ(a.free_ports(part), 0u);
      }
    } else {
      const size_t i = rng.below(held.size());
      live.erase({held[i].address, held[i].port});
      a.free(held[i]);
      held[i] = held.back();
      held.pop_back();
    }
  }
  EXPECT_EQ(a.bad_frees(), 0u);
}

// A freed port goes to the back of its queue: every other free port is
// handed out before it comes round again (backends' TIME_WAIT, PAWS).
TEST(SnatPorts, ReusesTheLeastRecentlyFreedPort) {
  SnatPoolConfig c = pool(1, 3000, 3009);
  c.addresses.resize(1);
  SnatPortAllocator a(c);
  SnatLease first;
  ASSERT_TRUE(a.alloc(0, 0, &first));
  EXPECT_EQ(first.port, 3000);  // unshuffled: ascending
  a.free(first);
  std::vector<uint16_t> order;
  SnatLease l;
  while (a.alloc(0, 0, &l))
    order.push_back(l.port);
  ASSERT_EQ(order.size(), 10u);
  EXPECT_EQ(order.front(), 3001);
  EXPECT_EQ(order.back(), 3000);  // the one freed, last
  // Wrap-around: free in some order, get them back in that order.
  const uint16_t freed[] = {3007, 3002, 3009, 3000};
  for (uint16_t p : freed)
    a.free(SnatLease{0, p});
  for (uint16_t p : freed) {
    ASSERT_TRUE(a.alloc(0, 0, &l));
    EXPECT_EQ(l.port, p);
  }
  EXPECT_FALSE(a.alloc(0, 0, &l));
}

// A shuffle seed permutes each queue: every port still comes out exactly once
// and in its partition, the order depends on the seed, and the same seed
// gives the same order.
TEST(SnatPorts, ShuffledStartIsAPermutationPerSeed) {
  auto drain = [](uint64_t seed) {
    SnatPoolConfig c = pool(3, 1024, 2047);
    c.shuffle_seed = seed;
    SnatPortAllocator a(c);
    std::vector<uint16_t> out;
    SnatLease l;
    while (a.alloc(2, 0, &l)) {
      EXPECT_EQ(a.partition_of(l.port), 2u);
      if (l.address == 0) out.push_back(l.port);
    }
    return out;
  };
  const auto a = drain(1), b = drain(2), a2 = drain(1), plain = drain(0);
  EXPECT_EQ(a, a2);
  EXPECT_NE(a, b);
  EXPECT_NE(a, plain);
  EXPECT_EQ(std::set<uint16_t>(a.begin(), a.end()), std::set<uint16_t>(plain.begin(), plain.end()));
  EXPECT_EQ(a.size(), plain.size());
  EXPECT_TRUE(std::is_sorted(plain.begin(), plain.end()));
}

// A reserved port (a flow this node's address carries on another node) is
// stepped over until released; it is never handed out twice and never lost.
TEST(SnatPorts, ReservedPortsAreSteppedOverUntilFreed) {
  SnatPoolConfig c = pool(1, 4000, 4003);
  c.addresses.resize(1);
  SnatPortAllocator a(c);
  EXPECT_TRUE(a.reserve(SnatLease{0, 4001}));
  EXPECT_FALSE(a.reserve(SnatLease{0, 4001}));  // in use
  EXPECT_FALSE(a.reserve(SnatLease{0, 5000}));  // out of range
  std::vector<uint16_t> got;
  SnatLease l;
  while (a.alloc(0, 0, &l))
    got.push_back(l.port);
  EXPECT_EQ(got, (std::vector<uint16_t>{4000, 4002, 4003}));
  a.free(SnatLease{0, 4001});  // the reservation ends: the port comes out next
  ASSERT_TRUE(a.alloc(0, 0, &l));
  EXPECT_EQ(l.port, 4001);
  EXPECT_FALSE(a.alloc(0, 0, &l));
  for (const uint16_t p : std::vector<uint16_t>{4000, 4001, 4002, 4003})
    a.free(SnatLease{0, p});
  EXPECT_EQ(a.free_ports(0), 4u);
  EXPECT_EQ(a.bad_frees(), 0u);
}

TEST(SnatPorts, RejectsBadConfig) {
  SnatPoolConfig c = pool(1);
  c.addresses.clear();
  EXPECT_THROW(SnatPortAllocator{c}, std::invalid_argument);
  c = pool(1, 5000, 4000);
  EXPECT_THROW(SnatPortAllocator{c}, std::invalid_argument);
  c = pool(0);
  EXPECT_THROW(SnatPortAllocator{c}, std::invalid_argument);
  c = pool(1);
  SnatAddress six;
  six.family = Family::kIpv6;
  c.addresses.push_back(six);
  EXPECT_THROW(SnatPortAllocator{c}, std::invalid_argument);
}

}  // namespace
}  // namespace tripod
