#include "table/conn_table.h"

#include <gtest/gtest.h>

#include <map>
#include <set>
#include <unordered_map>
#include <vector>

#include "common/clock.h"
#include "common/random.h"
#include "common/siphash.h"

namespace tripod {
namespace {

struct TestKey {
  uint64_t a = 0;
  uint64_t b = 0;
  bool operator==(const TestKey&) const = default;
};
struct TestValue {
  uint64_t payload[8];  // 64 bytes, as the benchmark's
};
using Table = ConnTable<TestKey, TestValue>;

const SipKey kHashKey{0x0123456789abcdefULL, 0xfedcba9876543210ULL};
uint64_t hash_of(const TestKey& k) {
  return siphash13(kHashKey, reinterpret_cast<const uint8_t*>(&k), sizeof k);
}
TestKey key_n(uint64_t n) {
  return TestKey{n, n * 7 + 1};
}
ConnTableConfig small(uint32_t cap) {
  ConnTableConfig c;
  c.capacity = cap;
  c.huge_pages = false;
  return c;
}

TEST(ConnTable, InsertLookupEraseAndValues) {
  Table t(small(1000));
  auto r = t.insert(key_n(1), hash_of(key_n(1)), 100);
  ASSERT_EQ(r.status, InsertStatus::kInserted);
  t.value(r.ref.idx).payload[3] = 42;
  auto again = t.insert(key_n(1), hash_of(key_n(1)), 100);
  EXPECT_EQ(again.status, InsertStatus::kExists);
  EXPECT_EQ(again.ref.idx, r.ref.idx);
  auto f = t.lookup(key_n(1), hash_of(key_n(1)));
  ASSERT_TRUE(f.found());
  EXPECT_EQ(t.value(f.idx).payload[3], 42u);
  EXPECT_TRUE(t.key(f.idx) == key_n(1));
  EXPECT_FALSE(t.lookup(key_n(2), hash_of(key_n(2))).found());
  EXPECT_EQ(t.size(), 1u);
  EXPECT_TRUE(t.erase(key_n(1), hash_of(key_n(1))));
  EXPECT_FALSE(t.erase(key_n(1), hash_of(key_n(1))));
  EXPECT_FALSE(t.lookup(key_n(1), hash_of(key_n(1))).found());
  EXPECT_EQ(t.size(), 0u);
  // A re-inserted key starts from a zeroed value.
  r = t.insert(key_n(1), hash_of(key_n(1)), 100);
  EXPECT_EQ(t.value(r.ref.idx).payload[3], 0u);
}

// The configured capacity is exact; one more insert fails with a counted
// reason and evicts nothing.
TEST(ConnTable, FullTableFailsCleanlyAndEvictsNothing) {
  constexpr uint32_t kCap = 200000;
  Table t(small(kCap));
  for (uint32_t i = 0; i < kCap; ++i) {
    ASSERT_EQ(t.insert(key_n(i), hash_of(key_n(i)), 1000).status, InsertStatus::kInserted) << i;
  }
  EXPECT_EQ(t.size(), kCap);
  auto r = t.insert(key_n(kCap), hash_of(key_n(kCap)), 1000);
  EXPECT_EQ(r.status, InsertStatus::kTableFull);
  EXPECT_FALSE(r.ref.found());
  EXPECT_EQ(t.counters().get(ConnTableCounter::kInsertTableFull), 1u);
  for (uint32_t i = 0; i < kCap; ++i)
    ASSERT_TRUE(t.lookup(key_n(i), hash_of(key_n(i))).found());
  // Erase one: exactly one new entry fits again.
  ASSERT_TRUE(t.erase(key_n(5), hash_of(key_n(5))));
  EXPECT_EQ(t.insert(key_n(kCap), hash_of(key_n(kCap)), 1000).status, InsertStatus::kInserted);
  EXPECT_GT(t.counters().get(ConnTableCounter::kCuckooMoves), 0u);
}

// An attacker who could predict the hash aims every key at the same two
// buckets: 16 fit, the rest fail with kNoCuckooPath, nothing is lost.
TEST(ConnTable, CollidingHashesFailWithoutLosingEntries) {
  Table t(small(10000));
  const uint64_t h = 0xdeadbeefcafef00dULL;
  int inserted = 0, no_path = 0;
  for (uint64_t i = 0; i < 40; ++i) {
    auto r = t.insert(key_n(i), h, 1000);
    if (r.status == InsertStatus::kInserted) ++inserted;
    if (r.status == InsertStatus::kNoCuckooPath) ++no_path;
  }
  EXPECT_EQ(inserted, 16);
  EXPECT_EQ(no_path, 24);
  EXPECT_EQ(t.counters().get(ConnTableCounter::kInsertNoCuckooPath), 24u);
  for (uint64_t i = 0; i < 16; ++i)
    EXPECT_TRUE(t.lookup(key_n(i), h).found());
  EXPECT_EQ(t.size(), 16u);
}

TEST(ConnTable, BulkLookupAgreesWithScalar) {
  Table t(small(50000));
  for (uint32_t i = 0; i < 40000; i += 2)
    t.insert(key_n(i), hash_of(key_n(i)), 1000);
  SplitMix64 rng(3);
  for (int round = 0; round < 200; ++round) {
    TestKey keys[Table::kMaxBurst];
    uint64_t hashes[Table::kMaxBurst];
    Table::Ref out[Table::kMaxBurst];
    const uint32_t n = 1 + static_cast<uint32_t>(rng.below(Table::kMaxBurst));
    for (uint32_t i = 0; i < n; ++i) {
      keys[i] = key_n(rng.below(40000));
      hashes[i] = hash_of(keys[i]);
    }
    t.lookup_bulk(keys, hashes, n, out);
    for (uint32_t i = 0; i < n; ++i) {
      const auto s = t.lookup(keys[i], hashes[i]);
      ASSERT_EQ(out[i].idx, s.idx);
      ASSERT_EQ(out[i].found(), keys[i].a % 2 == 0);
      if (s.found()) {
        ASSERT_EQ(out[i].pos, s.pos);
      }
    }
  }
}

// Randomised model check: inserts, erases, deadline changes (extend and
// shorten) and time jumps of every size, against a std::map model. Each
// advance must expire exactly the entries whose deadline passed, no more, no
// less, and report each through on_expire.
TEST(ConnTable, ExpiryMatchesModelExactly) {
  constexpr uint32_t kCap = 4000;
  Table t(small(kCap));
  std::unordered_map<uint64_t, uint32_t> model;  // key id -> deadline
  SplitMix64 rng(11);
  uint32_t now = 0;
  auto deadline = [&] {
    // Mostly short, some long enough to land in every wheel level.
    const uint32_t bits = 1 + static_cast<uint32_t>(rng.below(22));
    return now + 1 + static_cast<uint32_t>(rng.below(1u << bits));
  };
  uint64_t expired_total = 0;
  for (int step = 0; step < 60000; ++step) {
    const uint64_t id = rng.below(6000);
    const TestKey k = key_n(id);
    const uint64_t h = hash_of(k);
    switch (rng.below(10)) {
      case 0:
      case 1:
      case 2:
      case 3: {  // NOLINT(bugprone-branch-clone)
        const uint32_t d = deadline();
        auto r = t.insert(k, h, d);
        if (model.count(id)) {
          ASSERT_EQ(r.status, InsertStatus::kExists);
        } else if (model.size() < kCap) {
          ASSERT_EQ(r.status, InsertStatus::kInserted);
          t.value(r.ref.idx).payload[0] = id;
          model[id] = d;
        } else {
          ASSERT_EQ(r.status, InsertStatus::kTableFull);
        }
        break;
      }
      case 4: {
        ASSERT_EQ(t.erase(k, h), model.erase(id) == 1);
        break;
      }
      case 5:
      case 6: {
        auto r = t.lookup(k, h);
        ASSERT_EQ(r.found(), model.count(id) == 1);
        if (r.found()) {
          ASSERT_EQ(t.value(r.idx).payload[0], id);
          ASSERT_EQ(t.deadline(r), model[id]);
          const uint32_t d = deadline();  // may extend or shorten
          t.set_deadline(r, d);
          model[id] = d;
        }
        break;
      }
      default: {
        const uint32_t bits = static_cast<uint32_t>(rng.below(20));
        now += static_cast<uint32_t>(rng.below(1u << bits));
        std::set<uint64_t> got;
        const uint64_t n = t.advance(now, [&](uint32_t idx, const TestKey& key, TestValue& v) {
          EXPECT_TRUE(key == key_n(v.payload[0]));
          EXPECT_TRUE(got.insert(v.payload[0]).second);
          EXPECT_LE(static_cast<int32_t>(model[v.payload[0]] - now), 0);
          (void)idx;
        });
        std::set<uint64_t> want;
        for (auto it = model.begin(); it != model.end();) {
          if (static_cast<int32_t>(it->second - now) <= 0) {
            want.insert(it->first);
            it = model.erase(it);
          } else {
            ++it;
          }
        }
        ASSERT_EQ(got, want) << "step " << step << " now " << now;
        ASSERT_EQ(n, want.size());
        expired_total += n;
        break;
      }
    }
    ASSERT_EQ(t.size(), model.size());
  }
  EXPECT_GT(expired_total, 1000u);  // the test really exercised expiry
}

// Time from an injected clock: a UDP-like 30 s timeout at 100 ms ticks.
TEST(ConnTable, ExpiresOnInjectedClock) {
  constexpr uint64_t kTickNs = 100'000'000;
  ManualClock clock(5'000'000'000);
  auto ticks = [&] { return static_cast<uint32_t>(clock.now_ns() / kTickNs); };
  Table t(small(100));
  t.advance(ticks());
  auto r = t.insert(key_n(1), hash_of(key_n(1)), ticks() + 300);
  ASSERT_EQ(r.status, InsertStatus::kInserted);
  clock.advance_ns(29'900'000'000);
  EXPECT_EQ(t.advance(ticks()), 0u);
  EXPECT_TRUE(t.lookup(key_n(1), hash_of(key_n(1))).found());
  // A packet refreshes it: 30 s more from now.
  t.set_deadline(t.lookup(key_n(1), hash_of(key_n(1))), ticks() + 300);
  clock.advance_ns(20'000'000'000);
  EXPECT_EQ(t.advance(ticks()), 0u);
  clock.advance_ns(10'000'000'000);
  EXPECT_EQ(t.advance(ticks()), 1u);
  EXPECT_FALSE(t.lookup(key_n(1), hash_of(key_n(1))).found());
  EXPECT_EQ(t.counters().get(ConnTableCounter::kExpired), 1u);
}

TEST(ConnTable, DeadlineBeyondMaxIsClampedAndCounted) {
  Table t(small(10));
  auto r = t.insert(key_n(1), hash_of(key_n(1)), Table::kMaxTimeout + 1000);
  ASSERT_EQ(r.status, InsertStatus::kInserted);
  EXPECT_EQ(t.deadline(r.ref), Table::kMaxTimeout);
  EXPECT_EQ(t.counters().get(ConnTableCounter::kDeadlineClamped), 1u);
}

// A NAT session is two directional entries; expiring one erases its partner.
TEST(ConnTable, OnExpireMayErasePartner) {
  Table t(small(100));
  auto a = t.insert(key_n(1), hash_of(key_n(1)), 10);
  auto b = t.insert(key_n(2), hash_of(key_n(2)), 50);
  t.value(a.ref.idx).payload[0] = 2;  // partner id
  t.value(b.ref.idx).payload[0] = 1;
  t.advance(10, [&](uint32_t, const TestKey&, TestValue& v) {
    EXPECT_TRUE(t.erase(key_n(v.payload[0]), hash_of(key_n(v.payload[0]))));
  });
  EXPECT_EQ(t.size(), 0u);
  EXPECT_EQ(t.advance(100), 0u);  // the partner's bucket fires and finds nothing
}

// A connection's second (reply) key is not refreshed per packet: at its
// deadline the callback answers with the connection's real deadline and the
// entry is re-armed instead of freed.
TEST(ConnTable, OnExpireCanKeepAndRearm) {
  Table t(small(100));
  auto r = t.insert(key_n(1), hash_of(key_n(1)), 10);
  ASSERT_EQ(r.status, InsertStatus::kInserted);
  uint32_t connection_deadline = 25;
  std::vector<uint32_t> calls;
  auto cb = [&](uint32_t, const TestKey&, TestValue&) -> uint32_t {
    calls.push_back(t.now());
    return connection_deadline;  // keep while the connection lives
  };
  EXPECT_EQ(t.advance(10, cb), 0u);
  EXPECT_TRUE(t.lookup(key_n(1), hash_of(key_n(1))).found());
  EXPECT_EQ(t.deadline(t.lookup(key_n(1), hash_of(key_n(1)))), 25u);
  EXPECT_EQ(t.advance(24, cb), 0u);
  EXPECT_EQ(calls.size(), 1u) << "re-armed entry must not fire before its new deadline";
  connection_deadline = 0;  // the connection is over
  EXPECT_EQ(t.advance(25, cb), 1u);
  EXPECT_EQ(calls.size(), 2u);
  EXPECT_FALSE(t.lookup(key_n(1), hash_of(key_n(1))).found());
}

TEST(ConnTable, RejectsBadConfig) {
  ConnTableConfig c = small(0);
  EXPECT_THROW(Table{c}, std::invalid_argument);
  c.capacity = Table::kMaxCapacity + 1;
  EXPECT_THROW(Table{c}, std::invalid_argument);
  c.capacity = 10;
  c.max_load = 0;
  EXPECT_THROW(Table{c}, std::invalid_argument);
}

TEST(ConnTable, MemoryIsAccountedAndTight) {
  ConnTableConfig c = small(1'000'000);
  Table t(c);
  const double raw = 1e6 * (sizeof(TestKey) + sizeof(TestValue));
  // Per entry beyond key + value: 8 B bucket slot / 0.95 load + 12 B of wheel
  // per 4 buckets of 8 slots = ~8.8 B; the two big arrays round up to 2 MiB.
  const double rounding = 2.0 * (2 << 20);
  const double per_entry = (static_cast<double>(t.memory_bytes()) - raw - rounding) / 1e6;
  EXPECT_LT(per_entry, 9.2);
  EXPECT_GT(per_entry, 8.4);
  EXPECT_GE(t.num_buckets() * Table::kWays, 1'000'000u);
}

}  // namespace
}  // namespace tripod
