#include "control/health/health_state.h"

#include <limits>

namespace tripod {
namespace {

uint32_t bump(uint32_t v) {
  return v == std::numeric_limits<uint32_t>::max() ? v : v + 1;
}

}  // namespace

bool HealthTracker::record(bool ok) {
  if (ok) {
    ok_run_ = bump(ok_run_);
    fail_run_ = 0;
    if (state_ == HealthState::kDown && ok_run_ >= rise_) {
      state_ = HealthState::kUp;
      return true;
    }
  } else {
    fail_run_ = bump(fail_run_);
    ok_run_ = 0;
    if (state_ == HealthState::kUp && fail_run_ >= fall_) {
      state_ = HealthState::kDown;
      return true;
    }
  }
  return false;
}

bool TargetHealth::apply(const CheckResult& r, uint64_t now_ns) {
  ++checks;
  last_check_ns = now_ns;
  last_ok = r.ok;
  if (r.ok) {
    ++checks_ok;
  } else {
    ++checks_failed;
    last_error = r.error.empty() ? "failed" : r.error;
    last_error_ns = now_ns;
  }
  const bool changed = tracker.record(r.ok);
  if (changed) {
    ++transitions;
    last_change_ns = now_ns;
  }
  return changed;
}

}  // namespace tripod
