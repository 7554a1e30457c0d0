#include "control/health/health_state.h"

#include <gtest/gtest.h>

#include <ostream>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/random.h"

namespace tripod {
namespace {

constexpr HealthState U = HealthState::kUp;
constexpr HealthState D = HealthState::kDown;

// One row: thresholds, initial state, results as a string ('+' ok, '-' fail)
// and the state expected after each result.
struct Row {
  const char* name;
  uint32_t rise;
  uint32_t fall;
  HealthState initial;
  std::string results;
  std::string states;  // 'U' / 'D' per result
};

const std::vector<Row> kRows = {
    {"down_needs_rise_successes", 2, 3, D, "++", "DU"},
    {"down_single_success_not_enough", 3, 3, D, "++-++", "DDDDD"},
    {"failure_resets_rise_run", 2, 2, D, "+-+-++", "DDDDDU"},
    {"up_needs_fall_failures", 2, 3, U, "---", "UUD"},
    {"success_resets_fall_run", 2, 3, U, "--+--+---", "UUUUUUUUD"},
    {"rise1_fall1_follows_every_result", 1, 1, D, "+-+-", "UDUD"},
    {"flap_back_up_needs_full_rise", 2, 2, U, "--+-++", "UDDDDU"},
    {"staying_up_ignores_successes", 1, 2, U, "++++", "UUUU"},
    {"staying_down_ignores_failures", 2, 1, D, "----", "DDDD"},
    {"zero_thresholds_act_as_one", 0, 0, D, "+-", "UD"},
};

void PrintTo(const Row& r, std::ostream* os) {
  *os << r.name;
}

class TrackerTable : public ::testing::TestWithParam<Row> {};

TEST_P(TrackerTable, StatesFollowTheTable) {
  const Row& r = GetParam();
  ASSERT_EQ(r.results.size(), r.states.size());
  HealthTracker t(r.rise, r.fall, r.initial);
  HealthState prev = r.initial;
  for (size_t i = 0; i < r.results.size(); ++i) {
    const bool changed = t.record(r.results[i] == '+');
    const HealthState want = r.states[i] == 'U' ? U : D;
    EXPECT_EQ(t.state(), want) << "after result " << i << " of " << r.results;
    EXPECT_EQ(changed, want != prev) << "after result " << i;
    prev = want;
  }
}

INSTANTIATE_TEST_SUITE_P(Rows, TrackerTable, ::testing::ValuesIn(kRows),
                         [](const auto& row) { return std::string(row.param.name); });

TEST(HealthTracker, CountsAreRuns) {
  HealthTracker t(3, 3, D);
  t.record(true);
  t.record(true);
  EXPECT_EQ(t.consecutive_ok(), 2u);
  EXPECT_EQ(t.consecutive_failed(), 0u);
  t.record(false);
  EXPECT_EQ(t.consecutive_ok(), 0u);
  EXPECT_EQ(t.consecutive_failed(), 1u);
}

TEST(HealthTracker, NewThresholdsApplyFromTheNextResult) {
  HealthTracker t(5, 5, D);
  t.record(true);
  t.record(true);
  t.set_thresholds(2, 5);
  EXPECT_EQ(t.state(), D);  // no change without a result
  EXPECT_TRUE(t.record(true));
  EXPECT_EQ(t.state(), U);
  EXPECT_EQ(t.consecutive_ok(), 3u);
}

TEST(TargetHealth, RecordsTimesErrorsAndTotals) {
  ManualClock clock(1'000);
  TargetHealth h(2, 1, D);
  EXPECT_EQ(h.last_check_ns, 0u);

  EXPECT_FALSE(h.apply({false, "connect: Connection refused"}, clock.now_ns()));
  EXPECT_EQ(h.last_error, "connect: Connection refused");
  EXPECT_EQ(h.last_error_ns, 1'000u);
  EXPECT_FALSE(h.last_ok);

  clock.advance_ns(500);
  EXPECT_FALSE(h.apply({true, {}}, clock.now_ns()));
  clock.advance_ns(500);
  EXPECT_TRUE(h.apply({true, {}}, clock.now_ns()));
  EXPECT_EQ(h.tracker.state(), U);
  EXPECT_EQ(h.last_change_ns, 2'000u);
  EXPECT_EQ(h.last_check_ns, 2'000u);
  EXPECT_TRUE(h.last_ok);
  // The last failure stays visible after successes: it explains a flap.
  EXPECT_EQ(h.last_error, "connect: Connection refused");
  EXPECT_EQ(h.last_error_ns, 1'000u);

  clock.advance_ns(500);
  EXPECT_TRUE(h.apply({false, "http: status 503"}, clock.now_ns()));
  EXPECT_EQ(h.tracker.state(), D);
  EXPECT_EQ(h.last_error, "http: status 503");
  EXPECT_EQ(h.checks, 4u);
  EXPECT_EQ(h.checks_ok, 2u);
  EXPECT_EQ(h.checks_failed, 2u);
  EXPECT_EQ(h.transitions, 2u);
}

TEST(Schedule, FirstCheckIsSpreadOverOneInterval) {
  constexpr uint64_t kInterval = 2'000'000'000;
  EXPECT_EQ(first_check_at(100, kInterval, 0), 100u);
  EXPECT_LT(first_check_at(100, kInterval, ~uint64_t{0}), 100 + kInterval);
  EXPECT_EQ(first_check_at(100, kInterval, uint64_t{1} << 63), 100 + kInterval / 2);
  EXPECT_EQ(first_check_at(100, 0, 12345), 100u);

  // A thousand targets land in all ten tenths of the interval.
  SplitMix64 rng(7);
  std::vector<int> tenth(10, 0);
  for (int i = 0; i < 1000; ++i) {
    const uint64_t at = first_check_at(0, kInterval, rng.next());
    ASSERT_LT(at, kInterval);
    ++tenth[at / (kInterval / 10)];
  }
  for (int n : tenth)
    EXPECT_GT(n, 50);
}

TEST(Schedule, FixedRateThenCatchUp) {
  EXPECT_EQ(next_check_at(1'000, 100, 1'020), 1'100u);  // check took 20
  EXPECT_EQ(next_check_at(1'000, 100, 1'100), 1'100u);
  EXPECT_EQ(next_check_at(1'000, 100, 5'000), 5'000u);  // stalled: once, now
}

}  // namespace
}  // namespace tripod
