#include "cluster/membership/ring.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <stdexcept>
#include <vector>

#include "common/random.h"

namespace tripod::cluster {
namespace {

RingConfig config(NodeSet members, uint32_t vnodes = 64, SipKey key = {1, 2}) {
  RingConfig c;
  c.key = key;
  c.members = members;
  c.vnodes = vnodes;
  return c;
}

NodeSet first_n(uint32_t n) {
  return n >= 64 ? ~NodeSet{0} : (NodeSet{1} << n) - 1;
}

std::vector<NodeId> holders(const SlotTable& t, uint32_t s) {
  const auto h = t.holders(s);
  return {h.begin(), h.end()};
}

TEST(Ring, RejectsBadConfig) {
  EXPECT_THROW(Ring(config(0)), std::invalid_argument);
  EXPECT_THROW(Ring(config(first_n(3), 0)), std::invalid_argument);
  EXPECT_THROW(Ring(config(first_n(3), kMaxVnodes + 1)), std::invalid_argument);
  EXPECT_EQ(Ring(config(first_n(3), 7)).points(), 21u);
}

// Every node computes the same table from the same (key, members, vnodes,
// live set), whatever it built before.
TEST(Ring, SameInputsSameTableOnEveryNode) {
  const Ring a(config(first_n(16)));
  const Ring b(config(first_n(16)));
  SlotTable tb;
  b.build(node_set_of({2, 3}), 9, &tb);  // earlier contents must not matter
  b.build(first_n(16), 0, &tb);
  EXPECT_EQ(a.build(first_n(16)), tb);
  const Ring other_key(config(first_n(16), 64, {3, 4}));
  EXPECT_NE(other_key.build(first_n(16)), tb);
}

// Positions are a cluster-wide contract (ring.h): a node running another
// build must compute the same owners. Pinned for key {1, 2}, nodes 1..3.
constexpr NodeId kPinnedOwners[16] = {2, 2, 3, 3, 2, 1, 3, 1, 2, 3, 2, 3, 2, 2, 1, 3};
TEST(Ring, OwnersArePinned) {
  const Ring r(config(first_n(3)));
  const SlotTable t = r.build(first_n(3));
  std::vector<NodeId> owners;
  for (uint32_t s = 0; s < 16; ++s)
    owners.push_back(t.owner(s));
  EXPECT_THAT(owners, ::testing::ElementsAreArray(kPinnedOwners));
}

TEST(Ring, EdgeCases) {
  const Ring r(config(node_set_of({1, 2, 5})));
  const SlotTable none = r.build(0);
  EXPECT_EQ(none.holders_per_slot(), 0u);
  for (uint32_t s = 0; s < kSlots; ++s) {
    EXPECT_TRUE(none.holders(s).empty());
    EXPECT_EQ(none.owner(s), kNoNode);
  }
  // Live nodes outside the members are ignored.
  EXPECT_EQ(r.build(node_set_of({3, 4})), none);
  const SlotTable one = r.build(node_set_of({5, 7}));
  EXPECT_EQ(one.live_set(), node_set_of({5}));
  for (uint32_t s = 0; s < kSlots; ++s)
    EXPECT_EQ(holders(one, s), std::vector<NodeId>{5});
  EXPECT_EQ(one.slots_owned(5), kSlots);
  const SlotTable two = r.build(node_set_of({1, 5}));
  EXPECT_EQ(two.holders_per_slot(), 2u);
  EXPECT_EQ(two.slots_owned(1) + two.slots_owned(5), kSlots);
  // One vnode per member still works.
  const Ring sparse(config(first_n(64), 1));
  EXPECT_EQ(sparse.build(node_set_of({64})).owner(0), 64);
}

// Holders are distinct live nodes, min(live, kMaxHolders) of them, for
// random live sets.
TEST(Ring, HoldersAreDistinctLiveNodes) {
  const Ring r(config(first_n(64), 16));
  SplitMix64 rng(7);
  SlotTable t;
  for (int round = 0; round < 200; ++round) {
    const NodeSet live = rng.next() & rng.next();  // about 16 nodes
    r.build(live, 0, &t);
    ASSERT_EQ(t.holders_per_slot(), std::min(node_count(live), kMaxHolders));
    for (uint32_t s = 0; s < kSlots; ++s) {
      NodeSet seen = 0;
      for (NodeId n : t.holders(s)) {
        ASSERT_TRUE(contains(live, n));
        ASSERT_FALSE(contains(seen, n));
        seen |= node_bit(n);
      }
    }
  }
}

// Slots owned by the most / least loaded node over the mean.
double max_over_mean(const SlotTable& t, NodeSet live) {
  uint32_t mx = 0;
  for (NodeSet r = live; r != 0; r &= r - 1)
    mx = std::max(mx, t.slots_owned(lowest_node(r)));
  return mx / (static_cast<double>(kSlots) / node_count(live));
}
double min_over_mean(const SlotTable& t, NodeSet live) {
  uint32_t mn = kSlots;
  for (NodeSet r = live; r != 0; r &= r - 1)
    mn = std::min(mn, t.slots_owned(lowest_node(r)));
  return mn / (static_cast<double>(kSlots) / node_count(live));
}

TEST(Ring, BalanceWithThreeNodes) {
  const Ring r(config(first_n(3)));
  const SlotTable t = r.build(first_n(3));
  std::printf("3 nodes x 64 vnodes, key {1,2}: slots owned %u %u %u of %u\n", t.slots_owned(1),
              t.slots_owned(2), t.slots_owned(3), kSlots);
  EXPECT_LT(max_over_mean(t, first_n(3)), 1.3);
  EXPECT_GT(min_over_mean(t, first_n(3)), 0.6);
  // Over many cluster keys the most loaded node stays within 1.5x its fair
  // share and the least loaded above half of it (64 vnodes: arc shares vary
  // by about 1/sqrt(64) = 12.5 %, and 256 slots sample them with about 9 %).
  double worst_max = 0;
  double worst_min = 1;
  for (uint64_t k = 0; k < 100; ++k) {
    const Ring rk(config(first_n(3), 64, {k, k * 31 + 1}));
    const SlotTable tk = rk.build(first_n(3));
    worst_max = std::max(worst_max, max_over_mean(tk, first_n(3)));
    worst_min = std::min(worst_min, min_over_mean(tk, first_n(3)));
  }
  std::printf("3 nodes, over 100 keys: worst max/mean %.3f, worst min/mean %.3f\n", worst_max,
              worst_min);
  EXPECT_LT(worst_max, 1.5);
  EXPECT_GT(worst_min, 0.5);
}

// Removing one node: every slot's holder list loses that node and nothing
// else changes order; the removed node's slots go to their old first backup.
// Adding it back restores the table exactly.
TEST(Ring, RemovalMovesOnlyTheRemovedNodesSlots) {
  for (uint32_t n : {2u, 3u, 16u, 64u}) {
    const Ring r(config(first_n(n)));
    const SlotTable before = r.build(first_n(n));
    for (NodeId x = 1; x <= n; ++x) {
      const NodeSet live = first_n(n) & ~node_bit(x);
      const SlotTable after = r.build(live);
      uint32_t moved = 0;
      for (uint32_t s = 0; s < kSlots; ++s) {
        std::vector<NodeId> expect = holders(before, s);
        const bool owned = expect[0] == x;
        const NodeId backup = expect[1];
        std::erase(expect, x);
        const std::vector<NodeId> got = holders(after, s);
        ASSERT_GE(got.size(), expect.size());
        ASSERT_TRUE(std::equal(expect.begin(), expect.end(), got.begin()))
            << "n=" << n << " x=" << x << " slot " << s;
        if (owned) {
          ASSERT_EQ(after.owner(s), backup);
          ++moved;
        } else {
          ASSERT_EQ(after.owner(s), before.owner(s));
        }
      }
      EXPECT_EQ(moved, before.slots_owned(x));
      EXPECT_EQ(changed_slots(before, after, 1).count(), moved);
      EXPECT_EQ(r.build(live | node_bit(x)), before);
    }
  }
}

TEST(Ring, ChangedSlots) {
  const Ring r(config(first_n(4)));
  const SlotTable a = r.build(first_n(4));
  EXPECT_TRUE(changed_slots(a, a, kMaxHolders).none());
  const SlotTable b = r.build(node_set_of({1, 2, 3}));
  // With all holders compared, every slot changed: node 4 was in every list.
  EXPECT_EQ(changed_slots(a, b, kMaxHolders).count(), kSlots);
  EXPECT_EQ(changed_slots(a, b, 1).count(), a.slots_owned(4));
  EXPECT_LE(changed_slots(a, b, 1).count(), changed_slots(a, b, 2).count());
  EXPECT_EQ(changed_slots(a, r.build(0), 1).count(), kSlots);
}

TEST(RingView, KeepsThePreviousEpoch) {
  RingView v(config(first_n(3)));
  EXPECT_EQ(v.current().holders_per_slot(), 0u);
  EXPECT_EQ(v.previous(), nullptr);
  EXPECT_TRUE(v.update(first_n(3), 1));
  ASSERT_NE(v.previous(), nullptr);
  EXPECT_EQ(v.previous()->live_set(), 0u);
  EXPECT_TRUE(v.update(node_set_of({1, 3}), 2));
  EXPECT_EQ(v.current().epoch(), 2u);
  EXPECT_EQ(v.current().live_set(), node_set_of({1, 3}));
  ASSERT_NE(v.previous(), nullptr);
  EXPECT_EQ(*v.previous(), v.ring().build(first_n(3), 1));
  // Node 2's slots: current owner is the backup, previous owner node 2.
  for (uint32_t s = 0; s < kSlots; ++s) {
    if (v.previous()->owner(s) == 2) {
      EXPECT_EQ(v.current().owner(s), v.previous()->holders(s)[1]);
    }
  }
  // Same live set again: only the epoch label moves; the previous table stays.
  EXPECT_FALSE(v.update(node_set_of({1, 3}), 3));
  EXPECT_EQ(v.current().epoch(), 3u);
  EXPECT_EQ(v.previous()->live_set(), first_n(3));
  v.drop_previous();
  EXPECT_EQ(v.previous(), nullptr);
  EXPECT_TRUE(v.update(first_n(3), 4));
  EXPECT_EQ(v.previous()->live_set(), node_set_of({1, 3}));
}

}  // namespace
}  // namespace tripod::cluster
