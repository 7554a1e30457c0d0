#include "table/internal/bucket_wheel.h"

#include <gtest/gtest.h>

#include <vector>

#include "common/random.h"

namespace tripod::internal {
namespace {

// Every bucket fires exactly at the earliest due it was given, across all
// four levels and their cascades (dues up to 2^24 ticks ahead).
TEST(BucketWheel, FiresEachBucketAtItsEarliestDue) {
  constexpr uint32_t kBuckets = 2000;
  BucketWheel w(kBuckets);
  w.set_now(0xFFF00000u);  // start near a 2^20 boundary and near uint32 wrap
  SplitMix64 rng(1);
  std::vector<uint32_t> want(kBuckets, BucketWheel::kNone);
  for (uint32_t b = 0; b < kBuckets; ++b) {
    // Spread over every level: 1..2^24 ticks ahead, log-uniform.
    const uint32_t bits = 1 + static_cast<uint32_t>(rng.below(24));
    const uint32_t ahead = 1 + static_cast<uint32_t>(rng.below(1u << bits));
    want[b] = w.now() + ahead;
    w.schedule(b, want[b]);
    if (rng.below(3) == 0) {  // a later due is ignored, an earlier one wins
      w.schedule(b, want[b] + 5);
      if (ahead > 2) {
        want[b] -= 1;
        w.schedule(b, want[b]);
      }
    }
  }
  EXPECT_EQ(w.scheduled(), kBuckets);
  std::vector<uint32_t> fired(kBuckets, BucketWheel::kNone);
  uint32_t count = 0;
  const uint32_t end = w.now() + (1u << 24) + 10;
  while (w.now() != end) {
    const uint32_t step = 1 + static_cast<uint32_t>(rng.below(5000));
    const uint32_t to =
        static_cast<int32_t>(end - w.now()) < static_cast<int32_t>(step) ? end : w.now() + step;
    w.advance(to, [&](uint32_t b, uint32_t t) {
      EXPECT_EQ(fired[b], BucketWheel::kNone) << "bucket fired twice";
      fired[b] = t;
      ++count;
    });
  }
  EXPECT_EQ(count, kBuckets);
  for (uint32_t b = 0; b < kBuckets; ++b)
    EXPECT_EQ(fired[b], want[b]) << "bucket " << b;
  EXPECT_EQ(w.scheduled(), 0u);
}

TEST(BucketWheel, PastDueFiresOnNextTick) {
  BucketWheel w(4);
  w.advance(100, [](uint32_t, uint32_t) {});
  w.schedule(1, 50);
  uint32_t at = 0;
  w.advance(200, [&](uint32_t b, uint32_t t) {
    EXPECT_EQ(b, 1u);
    at = t;
  });
  EXPECT_EQ(at, 101u);
}

}  // namespace
}  // namespace tripod::internal
