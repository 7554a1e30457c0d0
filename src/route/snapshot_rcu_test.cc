// SnapshotDomain: reclamation waits for every online reader's quiescent
// state, offline readers do not hold it back, and a reader/writer stress run
// never sees a freed snapshot (ASan/TSan presets make that airtight).
#include "route/snapshot_rcu.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

namespace tripod::route {
namespace {

std::atomic<int> g_live{0};

struct Snap {
  static constexpr uint64_t kCanary = 0x5AFE5AFE5AFE5AFEULL;
  explicit Snap(uint64_t v) : value(v) { g_live.fetch_add(1); }
  ~Snap() {
    canary = 0;
    g_live.fetch_sub(1);
  }
  uint64_t value;
  volatile uint64_t canary = kCanary;
};

TEST(SnapshotDomain, ReclaimWaitsForQuiescentReaders) {
  g_live = 0;
  {
    SnapshotDomain<Snap> d(4, std::make_unique<Snap>(0));
    auto r1 = d.register_reader();
    auto r2 = d.register_reader();
    const Snap* seen = r1.acquire();
    EXPECT_EQ(seen->value, 0u);
    d.publish(std::make_unique<Snap>(1));
    EXPECT_EQ(d.retired(), 1u);
    r1.quiescent();
    EXPECT_EQ(d.reclaim(), 1u);  // r2 has not passed a quiescent point yet
    r2.quiescent();
    EXPECT_EQ(d.reclaim(), 0u);
    EXPECT_EQ(g_live.load(), 1);
    EXPECT_EQ(r1.acquire()->value, 1u);
  }
  EXPECT_EQ(g_live.load(), 0);
}

TEST(SnapshotDomain, OfflineReaderDoesNotHoldReclamation) {
  SnapshotDomain<Snap> d(2, std::make_unique<Snap>(0));
  auto r = d.register_reader();
  r.offline();
  d.publish(std::make_unique<Snap>(1));
  EXPECT_EQ(d.retired(), 0u);
  r.online();
  EXPECT_EQ(r.acquire()->value, 1u);
}

TEST(SnapshotDomain, TooManyReadersThrows) {
  SnapshotDomain<Snap> d(1, std::make_unique<Snap>(0));
  d.register_reader();
  EXPECT_THROW(d.register_reader(), std::length_error);
}

TEST(SnapshotDomain, StressReadersNeverSeeFreedSnapshot) {
  SnapshotDomain<Snap> d(4, std::make_unique<Snap>(0));
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> bad{0}, reads{0};
  std::vector<std::thread> readers;
  for (int i = 0; i < 2; ++i) {
    readers.emplace_back([&, r = d.register_reader()]() mutable {
      uint64_t last = 0;
      while (!stop.load(std::memory_order_relaxed)) {
        const Snap* s = r.acquire();
        for (int k = 0; k < 16; ++k) {
          if (s->canary != Snap::kCanary) bad.fetch_add(1);
        }
        if (s->value < last) bad.fetch_add(1);  // snapshots only move forward
        last = s->value;
        reads.fetch_add(1, std::memory_order_relaxed);
        r.quiescent();
        if ((last & 63) == 0) {
          r.offline();  // as a worker blocked in poll would
          std::this_thread::yield();
          r.online();
        }
      }
      r.offline();
    });
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(500);
  uint64_t v = 1;
  while (std::chrono::steady_clock::now() < deadline) {
    d.publish(std::make_unique<Snap>(v++));
  }
  stop = true;
  for (auto& t : readers)
    t.join();
  EXPECT_EQ(bad.load(), 0u);
  EXPECT_GT(reads.load(), 0u);
  EXPECT_EQ(d.reclaim(), 0u);
}

}  // namespace
}  // namespace tripod::route
