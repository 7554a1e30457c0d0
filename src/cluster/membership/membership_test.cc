#include "cluster/membership/membership.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <stdexcept>
#include <string>
#include <vector>

namespace tripod::cluster {
namespace {

using ::testing::HasSubstr;

constexpr uint64_t kMs = 1'000'000;

MembershipConfig config(uint32_t rise = 1) {
  MembershipConfig c;
  c.self = 1;
  c.members = node_set_of({1, 2, 3});
  c.rise = rise;
  return c;
}

// Events as comparable strings: "restarted 2", "2 up>dead", "epoch 3 live=0x5".
std::vector<std::string> str(std::span<const MemberEvent> es) {
  std::vector<std::string> out;
  for (const MemberEvent& e : es) {
    switch (e.kind) {
      case MemberEventKind::kStatus:
        out.push_back(std::to_string(e.node) + " " + to_string(e.from) + ">" + to_string(e.to));
        break;
      case MemberEventKind::kRestarted:
        out.push_back("restarted " + std::to_string(e.node));
        break;
      case MemberEventKind::kEpoch: {
        char buf[64];
        std::snprintf(buf, sizeof buf, "epoch %u live=0x%llx", e.epoch,
                      static_cast<unsigned long long>(e.live));
        out.emplace_back(buf);
        break;
      }
    }
  }
  return out;
}

std::string error_of(const MembershipConfig& c) {
  try {
    Membership m(c);
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "";
}

TEST(MembershipConfig, RejectsBadValuesWithTheFieldNamed) {
  auto c = config();
  c.dead_after_ns = c.heartbeat_interval_ns;
  EXPECT_THAT(error_of(c), HasSubstr("dead_after (10000000 ns) must be greater than "
                                     "heartbeat_interval (10000000 ns)"));
  c = config();
  c.heartbeat_interval_ns = 0;
  EXPECT_THAT(error_of(c), HasSubstr("heartbeat_interval must be positive"));
  c = config();
  c.self = 0;
  EXPECT_THAT(error_of(c), HasSubstr("self 0 is not a node id"));
  c = config();
  c.self = 65;
  EXPECT_THAT(error_of(c), HasSubstr("self 65 is not a node id"));
  c = config();
  c.self = 4;
  EXPECT_THAT(error_of(c), HasSubstr("members must include self"));
  c = config();
  c.rise = 0;
  EXPECT_THAT(error_of(c), HasSubstr("rise must be at least 1"));
  EXPECT_EQ(error_of(config()), "");

  EXPECT_THROW(node_set_of({1, 0}), std::invalid_argument);
  EXPECT_THROW(node_set_of({65}), std::invalid_argument);
  EXPECT_THROW(node_set_of({2, 2}), std::invalid_argument);
  EXPECT_EQ(node_set_of({1, 64}), (NodeSet{1} | NodeSet{1} << 63));
}

TEST(Membership, DeadExactlyAtDeadAfterNotBefore) {
  Membership m(config());
  m.set_self_ready(true);
  EXPECT_THAT(str(m.on_heartbeat(2, 7, true, 0)),
              ::testing::ElementsAre("2 dead>up", "epoch 2 live=0x3"));
  EXPECT_EQ(m.next_expiry_ns(), 50 * kMs);
  EXPECT_TRUE(m.tick(50 * kMs - 1).empty());
  EXPECT_EQ(m.status(2), PeerStatus::kUp);
  EXPECT_THAT(str(m.tick(50 * kMs)), ::testing::ElementsAre("2 up>dead", "epoch 3 live=0x1"));
  EXPECT_EQ(m.live_set(), node_set_of({1}));
  EXPECT_EQ(m.counters().get(MembershipCounter::kDeaths), 1u);
  EXPECT_EQ(m.next_expiry_ns(), UINT64_MAX);
}

// With tick() every heartbeat interval, whatever its phase, a peer whose
// last heartbeat was at t is dead by t + dead_after + one tick period.
TEST(Membership, DetectionWithinDeadAfterPlusOneTick) {
  for (uint64_t phase = 0; phase < 10 * kMs; phase += kMs) {
    Membership m(config());
    uint64_t last = 0;
    uint64_t dead_at = 0;
    for (uint64_t t = phase; t < 200 * kMs; t += 10 * kMs) {
      for (const MemberEvent& e : m.tick(t))
        if (e.kind == MemberEventKind::kStatus && e.to == PeerStatus::kDead) dead_at = t;
      if (t < 100 * kMs) {
        m.on_heartbeat(2, 1, true, t + 3 * kMs);  // heartbeats between ticks
        last = t + 3 * kMs;
      }
    }
    ASSERT_NE(dead_at, 0u);
    EXPECT_GE(dead_at, last + 50 * kMs);
    EXPECT_LE(dead_at, last + 60 * kMs);
  }
}

TEST(Membership, EpochChangesOnlyWhenTheLiveSetDoes) {
  Membership m(config());
  EXPECT_EQ(m.epoch(), 0u);
  EXPECT_EQ(m.live_set(), 0u);
  m.on_heartbeat(2, 1, true, 0);
  m.on_heartbeat(3, 1, true, 0);
  EXPECT_EQ(m.epoch(), 2u);
  // Steady heartbeats for a second: no event, no epoch.
  for (uint64_t t = 10 * kMs; t <= 1000 * kMs; t += 10 * kMs) {
    EXPECT_TRUE(m.on_heartbeat(2, 1, true, t).empty());
    EXPECT_TRUE(m.on_heartbeat(3, 1, true, t).empty());
    EXPECT_TRUE(m.tick(t).empty());
  }
  EXPECT_EQ(m.epoch(), 2u);
  EXPECT_TRUE(m.set_self_ready(false).empty());  // already not ready
  // Both die in the same tick: one epoch.
  EXPECT_THAT(str(m.tick(1050 * kMs)),
              ::testing::ElementsAre("2 up>dead", "3 up>dead", "epoch 3 live=0x0"));
  EXPECT_EQ(m.counters().get(MembershipCounter::kEpochs), 3u);
}

TEST(Membership, NewIncarnationIsDownThenUp) {
  Membership m(config());
  m.set_self_ready(true);
  m.on_heartbeat(2, 100, true, 0);
  ASSERT_EQ(m.epoch(), 2u);
  // Restarted and already ready (rise 1): two epochs in one heartbeat.
  EXPECT_THAT(str(m.on_heartbeat(2, 200, true, 10 * kMs)),
              ::testing::ElementsAre("restarted 2", "2 up>dead", "epoch 3 live=0x1", "2 dead>up",
                                     "epoch 4 live=0x3"));
  EXPECT_EQ(m.incarnation(2), 200u);
  EXPECT_EQ(m.counters().get(MembershipCounter::kRestarts), 1u);
}

TEST(Membership, RestartedPeerRejoinsAfterRiseAndReady) {
  Membership m(config(3));
  m.set_self_ready(true);
  for (uint64_t t = 0; t <= 20 * kMs; t += 10 * kMs)
    m.on_heartbeat(2, 100, true, t);
  ASSERT_EQ(m.status(2), PeerStatus::kUp);
  // It restarts and asks for its state: down at once, reachable after rise.
  EXPECT_THAT(str(m.on_heartbeat(2, 200, false, 30 * kMs)),
              ::testing::ElementsAre("restarted 2", "2 up>dead", "epoch 3 live=0x1"));
  EXPECT_TRUE(m.on_heartbeat(2, 200, false, 40 * kMs).empty());
  EXPECT_THAT(str(m.on_heartbeat(2, 200, false, 50 * kMs)),
              ::testing::ElementsAre("2 dead>joining"));
  EXPECT_EQ(m.reachable_set(), node_set_of({1, 2}));
  EXPECT_EQ(m.live_set(), node_set_of({1}));
  EXPECT_THAT(str(m.on_heartbeat(2, 200, true, 60 * kMs)),
              ::testing::ElementsAre("2 joining>up", "epoch 4 live=0x3"));
}

TEST(Membership, StaleIncarnationIgnoredWhileTheNewOneIsHeard) {
  Membership m(config());
  m.on_heartbeat(2, 200, true, 0);
  EXPECT_TRUE(m.on_heartbeat(2, 100, true, 5 * kMs).empty());  // delayed, from before
  EXPECT_EQ(m.incarnation(2), 200u);
  EXPECT_EQ(m.last_heard_ns(2), 0u);  // does not keep the peer alive
  EXPECT_EQ(m.counters().get(MembershipCounter::kStaleIncarnation), 1u);
  // Silent for dead_after: a lower incarnation is a restart (clock stepped back).
  EXPECT_THAT(str(m.on_heartbeat(2, 100, true, 50 * kMs)),
              ::testing::ElementsAre("restarted 2", "2 up>dead", "epoch 2 live=0x0", "2 dead>up",
                                     "epoch 3 live=0x2"));
}

TEST(Membership, UnknownAndSelfIdsIgnoredAndCounted) {
  Membership m(config());
  EXPECT_TRUE(m.on_heartbeat(4, 1, true, 0).empty());   // not configured
  EXPECT_TRUE(m.on_heartbeat(0, 1, true, 0).empty());   // not an id
  EXPECT_TRUE(m.on_heartbeat(65, 1, true, 0).empty());  // not an id
  EXPECT_TRUE(m.on_heartbeat(1, 1, true, 0).empty());   // self (a loop, or a clone)
  EXPECT_EQ(m.counters().get(MembershipCounter::kUnknownNode), 3u);
  EXPECT_EQ(m.counters().get(MembershipCounter::kFromSelf), 1u);
  EXPECT_EQ(m.counters().get(MembershipCounter::kHeartbeats), 0u);
  EXPECT_EQ(m.live_set(), 0u);
  EXPECT_EQ(m.epoch(), 0u);
  EXPECT_EQ(m.status(4), PeerStatus::kDead);
}

TEST(Membership, ReadyGatesTheLiveSet) {
  Membership m(config());
  EXPECT_THAT(str(m.on_heartbeat(2, 1, false, 0)), ::testing::ElementsAre("2 dead>joining"));
  EXPECT_EQ(m.live_set(), 0u);
  EXPECT_EQ(m.reachable_set(), node_set_of({1, 2}));
  EXPECT_EQ(m.epoch(), 0u);
  EXPECT_THAT(str(m.set_self_ready(true)), ::testing::ElementsAre("epoch 1 live=0x1"));
  EXPECT_EQ(m.status(1), PeerStatus::kUp);
  EXPECT_THAT(str(m.on_heartbeat(2, 1, true, 10 * kMs)),
              ::testing::ElementsAre("2 joining>up", "epoch 2 live=0x3"));
  // Clearing ready with the same incarnation is a drain: out of the live set,
  // still reachable.
  EXPECT_THAT(str(m.on_heartbeat(2, 1, false, 20 * kMs)),
              ::testing::ElementsAre("2 up>joining", "epoch 3 live=0x1"));
  EXPECT_EQ(m.reachable_set(), node_set_of({1, 2}));
  // A joining peer that goes silent dies without an epoch.
  EXPECT_THAT(str(m.tick(70 * kMs)), ::testing::ElementsAre("2 joining>dead"));
  EXPECT_EQ(m.epoch(), 3u);
}

TEST(Membership, RiseNeedsAnUnbrokenRunOfHeartbeats) {
  Membership m(config(3));
  EXPECT_TRUE(m.on_heartbeat(2, 1, true, 0).empty());
  EXPECT_TRUE(m.on_heartbeat(2, 1, true, 10 * kMs).empty());
  EXPECT_EQ(m.status(2), PeerStatus::kDead);
  // A gap of dead_after breaks the run: counting starts over.
  EXPECT_TRUE(m.on_heartbeat(2, 1, true, 60 * kMs).empty());
  EXPECT_TRUE(m.on_heartbeat(2, 1, true, 70 * kMs).empty());
  EXPECT_THAT(str(m.on_heartbeat(2, 1, true, 80 * kMs)),
              ::testing::ElementsAre("2 dead>up", "epoch 1 live=0x2"));
  // tick() breaks a run too.
  m.tick(130 * kMs);
  m.on_heartbeat(2, 1, true, 131 * kMs);
  m.on_heartbeat(2, 1, true, 140 * kMs);
  m.tick(200 * kMs);
  m.on_heartbeat(2, 1, true, 201 * kMs);
  EXPECT_EQ(m.status(2), PeerStatus::kDead);
}

// The result does not depend on whether tick() ran before a late heartbeat.
TEST(Membership, LateHeartbeatWithoutTickStillCountsTheDeath) {
  Membership m(config());
  m.on_heartbeat(2, 1, true, 0);
  EXPECT_THAT(
      str(m.on_heartbeat(2, 1, true, 55 * kMs)),
      ::testing::ElementsAre("2 up>dead", "epoch 2 live=0x0", "2 dead>up", "epoch 3 live=0x2"));
  EXPECT_EQ(m.counters().get(MembershipCounter::kRestarts), 0u);
}

TEST(Membership, OutOfOrderTimesDoNotUnderflow) {
  Membership m(config());
  m.on_heartbeat(2, 1, true, 100 * kMs);
  EXPECT_TRUE(m.tick(90 * kMs).empty());  // a stale `now` from another thread's read
  EXPECT_TRUE(m.on_heartbeat(2, 1, true, 95 * kMs).empty());
  EXPECT_EQ(m.last_heard_ns(2), 100 * kMs);
  EXPECT_FALSE(m.tick(150 * kMs).empty());
}

TEST(Membership, SixtyFourNodes) {
  MembershipConfig c;
  c.self = 64;
  c.members = ~NodeSet{0};
  c.rise = 1;
  Membership m(c);
  m.set_self_ready(true);
  for (NodeId n = 1; n < 64; ++n)
    m.on_heartbeat(n, 1, true, 0);
  EXPECT_EQ(m.live_set(), ~NodeSet{0});
  const auto es = m.tick(50 * kMs);
  EXPECT_EQ(es.size(), 64u);  // 63 deaths and one epoch
  EXPECT_EQ(m.live_set(), node_bit(64));
}

}  // namespace
}  // namespace tripod::cluster
