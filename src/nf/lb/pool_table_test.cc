#include "nf/lb/pool_table.h"

#include <gtest/gtest.h>

#include <stdexcept>
#include <string>
#include <vector>

#include "common/random.h"

namespace tripod {
namespace {

Backend be(const char* addr, uint32_t weight = 1, uint16_t port = 8080) {
  Backend b;
  b.addr = IpAddress::parse(addr);
  b.port = port;
  b.weight = weight;
  return b;
}

std::shared_ptr<const BuiltPool> pool(std::vector<Backend> bs) {
  return build_pool(PoolSpec{std::move(bs)});
}

// The message of the std::invalid_argument `f` throws ("" if none).
template <typename F>
std::string invalid_message(F&& f) {
  try {
    f();
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "";
}

TEST(BuildPool, RejectsBadInputWithClearMessages) {
  EXPECT_EQ(invalid_message([] {
              Backend empty;
              empty.weight = 1;
              pool({be("10.0.0.1"), empty});
            }),
            "backend 1: empty address");
  EXPECT_EQ(invalid_message([] { pool({be("0.0.0.0")}); }), "backend 0: empty address");
  EXPECT_EQ(invalid_message([] { pool({be("10.0.0.1", kMaxWeight + 1)}); }),
            "backend 0 (10.0.0.1 port 8080): weight 65536 out of range 0..65535");
  EXPECT_EQ(invalid_message([] {
              pool({be("10.0.0.1"), be("10.0.0.2"), be("10.0.0.1")});
            }),
            "backend 2 duplicates backend 0 (10.0.0.1 port 8080)");
  EXPECT_EQ(invalid_message([] { pool(std::vector<Backend>(kMaxBackends + 1)); }),
            "pool of 4097 backends exceeds the limit of 4096");
  EXPECT_THROW(IpAddress::parse("10.0.0"), std::invalid_argument);
  // Same address, other port: a different backend. IPv6 and mixed pools build.
  const auto p = pool({be("10.0.0.1"), be("10.0.0.1", 1, 8081), be("2001:db8::1", kMaxWeight)});
  EXPECT_EQ(p->backends.size(), 3u);
  EXPECT_EQ(p->maglev.size(), maglev_table_size(3));
  EXPECT_THROW(build_pool(PoolSpec{}, MaglevConfig{1000}), std::invalid_argument);
}

struct TwoPools : ::testing::Test {
  PoolTable t;
  VipId vip = t.add_vip();
  std::shared_ptr<const BuiltPool> a = pool({be("10.0.0.1"), be("10.0.0.2"), be("10.0.0.3")});
  std::shared_ptr<const BuiltPool> b = pool({be("10.0.0.1"), be("10.0.0.4")});
};

TEST_F(TwoPools, NoActiveVersionSelectsNothing) {
  EXPECT_EQ(t.select(vip, 123).backend, nullptr);
  EXPECT_EQ(t.active_version(vip), kNoVersion);
}

TEST_F(TwoPools, PrepareDoesNotChangeSelectionCommitSwitches) {
  const uint32_t v1 = t.prepare(vip, a);
  EXPECT_EQ(t.select(vip, 1).backend, nullptr);  // prepared only
  t.commit(vip, v1);
  EXPECT_EQ(t.active_version(vip), v1);

  const uint32_t v2 = t.prepare(vip, b);
  EXPECT_NE(v2, v1);
  EXPECT_TRUE(t.is_live(vip, v2));
  SplitMix64 rng(1);
  for (int i = 0; i < 1000; ++i) {
    const Selection s = t.select(vip, rng.next());
    ASSERT_NE(s.backend, nullptr);
    EXPECT_EQ(s.version, v1);
    EXPECT_EQ(s.backend, &a->backends[s.index]);
  }
  t.commit(vip, v2);
  EXPECT_EQ(t.active_version(vip), v2);
  size_t to_new = 0;
  for (int i = 0; i < 1000; ++i) {
    const Selection s = t.select(vip, rng.next());
    ASSERT_NE(s.backend, nullptr);
    EXPECT_EQ(s.version, v2);
    EXPECT_EQ(s.backend, &b->backends[s.index]);
    to_new += s.backend->addr == IpAddress::parse("10.0.0.4");
  }
  EXPECT_GT(to_new, 400u);  // half the table
  EXPECT_LT(to_new, 600u);
  // The old version still resolves, and its Maglev choice is unchanged.
  EXPECT_EQ(t.backend(vip, v1, 2), &a->backends[2]);
}

TEST_F(TwoPools, AbortDropsPreparedVersion) {
  const uint32_t v1 = t.prepare(vip, a);
  t.commit(vip, v1);
  const uint32_t v2 = t.prepare(vip, b);
  EXPECT_EQ(t.versions_live(), 2u);
  t.abort(vip, v2);
  EXPECT_FALSE(t.is_live(vip, v2));
  EXPECT_EQ(t.backend(vip, v2, 0), nullptr);
  EXPECT_EQ(t.versions_live(), 1u);
  EXPECT_THROW(t.commit(vip, v2), std::invalid_argument);
  EXPECT_THROW(t.abort(vip, v2), std::invalid_argument);
  EXPECT_EQ(t.active_version(vip), v1);
  // Committed versions cannot be aborted or committed again.
  EXPECT_THROW(t.abort(vip, v1), std::invalid_argument);
  EXPECT_THROW(t.commit(vip, v1), std::invalid_argument);
}

TEST_F(TwoPools, BadIdsAreErrorsNotCrashes) {
  EXPECT_EQ(invalid_message([&] { t.prepare(99, a); }), "prepare: unknown VIP id 99");
  EXPECT_EQ(invalid_message([&] { t.commit(vip, 77); }),
            "commit: version 77 of VIP 0 is not prepared");
  EXPECT_THROW(t.commit(99, 1), std::invalid_argument);
  EXPECT_THROW(t.abort(vip, 1), std::invalid_argument);
  EXPECT_THROW(t.prepare(vip, nullptr), std::invalid_argument);
  EXPECT_THROW(t.kill_backend(99, IpAddress::parse("10.0.0.1"), 8080), std::invalid_argument);
  EXPECT_THROW(t.remove_vip(99), std::invalid_argument);
  // Data plane: answers "nothing", never crashes.
  const uint32_t v1 = t.prepare(vip, a);
  t.commit(vip, v1);
  EXPECT_EQ(t.select(99, 1).backend, nullptr);
  EXPECT_EQ(t.select(kNoVip, 1).backend, nullptr);
  EXPECT_EQ(t.backend(99, v1, 0), nullptr);
  EXPECT_EQ(t.backend(vip, v1 + 1, 0), nullptr);
  EXPECT_EQ(t.backend(vip, v1 + kMaxVersionsPerVip, 0), nullptr);  // same slot, other version
  EXPECT_EQ(t.backend(vip, v1, 3), nullptr);                       // index past the pool
  EXPECT_FALSE(t.is_killed(vip, v1, 3));
  EXPECT_FALSE(t.conn_opened(99, v1));
  EXPECT_FALSE(t.conn_opened(vip, v1 + 1));
  EXPECT_FALSE(t.conn_closed(vip, v1));  // underflow
  EXPECT_EQ(t.refs(vip, v1), 0u);
}

TEST_F(TwoPools, ExplicitVersionNumbers) {
  EXPECT_EQ(t.prepare(vip, a, 1000), 1000u);
  EXPECT_EQ(invalid_message([&] { t.prepare(vip, b, 1000 + kMaxVersionsPerVip); }),
            "prepare: version 1064 of VIP 0 collides with live version 1000");
  t.commit(vip, 1000);
  EXPECT_EQ(t.prepare(vip, b), 1001u);  // local numbering continues after it
}

TEST_F(TwoPools, PreparedVersionsTakeNoReferences) {
  const uint32_t v1 = t.prepare(vip, a);
  EXPECT_FALSE(t.conn_opened(vip, v1));
  EXPECT_EQ(t.refs(vip, v1), 0u);
}

// A retired version is freed by collect_garbage exactly when its last
// connection has closed; the active and prepared versions never are.
TEST_F(TwoPools, GarbageCollectionWaitsForLastReference) {
  const uint32_t v1 = t.prepare(vip, a);
  t.commit(vip, v1);
  EXPECT_EQ(t.collect_garbage(), 0u);  // active, unreferenced: kept
  ASSERT_TRUE(t.conn_opened(vip, v1));
  ASSERT_TRUE(t.conn_opened(vip, v1));
  EXPECT_EQ(t.refs(vip, v1), 2u);
  EXPECT_EQ(t.connections(), 2u);
  const uint32_t v2 = t.prepare(vip, b);
  EXPECT_EQ(t.collect_garbage(), 0u);  // prepared: kept
  t.commit(vip, v2);
  EXPECT_EQ(t.collect_garbage(), 0u);  // v1 retired but referenced
  EXPECT_TRUE(t.is_live(vip, v1));
  ASSERT_TRUE(t.conn_closed(vip, v1));
  EXPECT_EQ(t.collect_garbage(), 0u);
  EXPECT_NE(t.backend(vip, v1, 0), nullptr);
  ASSERT_TRUE(t.conn_closed(vip, v1));
  EXPECT_EQ(t.connections(), 0u);
  EXPECT_EQ(t.collect_garbage(), 1u);
  EXPECT_FALSE(t.is_live(vip, v1));
  EXPECT_EQ(t.backend(vip, v1, 0), nullptr);
  EXPECT_TRUE(t.is_live(vip, v2));
  EXPECT_EQ(t.versions_live(), 1u);
  // The pool outlives its version only as long as someone else holds it.
  EXPECT_EQ(a.use_count(), 1);
}

TEST_F(TwoPools, VersionLimitThenRecovery) {
  // Every committed version keeps one connection: 64 live, the 65th fails.
  std::vector<uint32_t> versions;
  for (uint32_t i = 0; i < kMaxVersionsPerVip; ++i) {
    const uint32_t v = t.prepare(vip, i % 2 ? a : b);
    t.commit(vip, v);
    ASSERT_TRUE(t.conn_opened(vip, v));
    versions.push_back(v);
  }
  EXPECT_EQ(t.collect_garbage(), 0u);
  EXPECT_THROW(t.prepare(vip, a), std::runtime_error);
  for (uint32_t v : versions)
    EXPECT_NE(t.backend(vip, v, 0), nullptr);  // the failure broke nothing
  ASSERT_TRUE(t.conn_closed(vip, versions[10]));
  EXPECT_EQ(t.collect_garbage(), 1u);
  const uint32_t v = t.prepare(vip, a);
  EXPECT_GT(v, versions.back());  // numbers are not reused
  EXPECT_EQ(v % kMaxVersionsPerVip, versions[10] % kMaxVersionsPerVip);
}

TEST_F(TwoPools, KillMarksOldVersionsOnly) {
  const uint32_t v1 = t.prepare(vip, a);  // 10.0.0.1..3
  t.commit(vip, v1);
  const IpAddress dead = IpAddress::parse("10.0.0.3");
  // Still taking new connections in the active version: refused, nothing marked.
  EXPECT_THROW(t.kill_backend(vip, dead, 8080), std::invalid_argument);
  EXPECT_FALSE(t.is_killed(vip, v1, 2));
  // Drained in the next version (weight 0): killable.
  const uint32_t v2 =
      t.prepare(vip, pool({be("10.0.0.1"), be("10.0.0.2"), be("10.0.0.3", 0), be("10.0.0.5")}));
  EXPECT_THROW(t.kill_backend(vip, dead, 8080), std::invalid_argument);  // v1 still active
  t.commit(vip, v2);
  EXPECT_EQ(t.kill_backend(vip, dead, 8080), 2u);
  EXPECT_TRUE(t.is_killed(vip, v1, 2));
  EXPECT_TRUE(t.is_killed(vip, v2, 2));
  EXPECT_FALSE(t.is_killed(vip, v1, 0));
  EXPECT_FALSE(t.is_killed(vip, v2, 3));
  EXPECT_EQ(t.kill_backend(vip, dead, 9999), 0u);  // other port: another backend
  // A version prepared later that re-adds the endpoint starts unmarked.
  const uint32_t v3 = t.prepare(vip, a);
  EXPECT_FALSE(t.is_killed(vip, v3, 2));
  EXPECT_THROW(t.kill_backend(vip, dead, 8080), std::invalid_argument);  // prepared with weight
}

TEST_F(TwoPools, RemovedVipDrainsThenDisappears) {
  const uint32_t v1 = t.prepare(vip, a);
  t.commit(vip, v1);
  ASSERT_TRUE(t.conn_opened(vip, v1));
  const uint32_t v2 = t.prepare(vip, b);
  t.remove_vip(vip);
  EXPECT_EQ(t.select(vip, 5).backend, nullptr);
  EXPECT_FALSE(t.is_live(vip, v2));  // prepared: dropped
  EXPECT_NE(t.backend(vip, v1, 1), nullptr);
  EXPECT_THROW(t.prepare(vip, a), std::invalid_argument);
  EXPECT_THROW(t.remove_vip(vip), std::invalid_argument);
  EXPECT_EQ(t.collect_garbage(), 0u);
  ASSERT_TRUE(t.conn_closed(vip, v1));
  EXPECT_EQ(t.collect_garbage(), 1u);
  EXPECT_EQ(t.backend(vip, v1, 1), nullptr);
  EXPECT_EQ(t.versions_live(), 0u);
  EXPECT_EQ(invalid_message([&] { t.prepare(vip, a); }), "prepare: unknown VIP id 0");
  EXPECT_EQ(t.add_vip(), 1u);  // ids are not reused
}

}  // namespace
}  // namespace tripod
