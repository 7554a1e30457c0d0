// The pure part of health checking: the rise/fall state machine, what one
// check's result does to a target's record, and when the next check runs.
// No sockets, no threads, no clock reads: times come in as arguments, so the
// tests drive it with tables of results and invented timestamps.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace tripod {

enum class HealthState : uint8_t { kDown, kUp };

inline constexpr std::string_view to_string(HealthState s) {
  return s == HealthState::kUp ? "up" : "down";
}

// HAProxy's rise/fall: `rise` consecutive successes bring a down target up,
// `fall` consecutive failures take an up target down. A result that agrees
// with the current state only extends its own run, so a single blip never
// flips a target and counts never need a "half state".
class HealthTracker {
 public:
  // rise, fall >= 1 (the checker validates specs; 0 is treated as 1 here).
  HealthTracker(uint32_t rise, uint32_t fall, HealthState initial)
      : rise_(rise == 0 ? 1 : rise), fall_(fall == 0 ? 1 : fall), state_(initial) {}

  // Returns true when this result changed the state.
  bool record(bool ok);

  // A reload may change the thresholds: state and the current runs are kept,
  // and the new thresholds apply from the next result on.
  void set_thresholds(uint32_t rise, uint32_t fall) {
    rise_ = rise == 0 ? 1 : rise;
    fall_ = fall == 0 ? 1 : fall;
  }

  HealthState state() const { return state_; }
  // Length of the current run of successes / failures (one of them is 0
  // once any check has completed). Saturates instead of wrapping.
  uint32_t consecutive_ok() const { return ok_run_; }
  uint32_t consecutive_failed() const { return fail_run_; }
  uint32_t rise() const { return rise_; }
  uint32_t fall() const { return fall_; }

 private:
  uint32_t rise_;
  uint32_t fall_;
  HealthState state_;
  uint32_t ok_run_ = 0;
  uint32_t fail_run_ = 0;
};

// The outcome of one check. `error` is the operator-facing reason, e.g.
// "connect: Connection refused", "http: status 503", "timeout after 200 ms
// (connect)"; empty when ok.
struct CheckResult {
  bool ok = false;
  std::string error;
};

// Everything `status` shows about one target, updated by one result at a time.
struct TargetHealth {
  explicit TargetHealth(uint32_t rise = 1, uint32_t fall = 1,
                        HealthState initial = HealthState::kDown)
      : tracker(rise, fall, initial) {}

  // Returns true when the state changed. `now_ns`: the checker's clock.
  bool apply(const CheckResult& r, uint64_t now_ns);

  HealthTracker tracker;
  bool last_ok = false;
  std::string last_error;       // most recent failure's reason, kept after later successes
  uint64_t last_error_ns = 0;   // 0: never failed
  uint64_t last_check_ns = 0;   // 0: never checked
  uint64_t last_change_ns = 0;  // 0: never changed state
  uint64_t checks = 0;
  uint64_t checks_ok = 0;
  uint64_t checks_failed = 0;
  uint64_t transitions = 0;
};

// Scheduling. The first check of a target is delayed by a uniform draw in
// [0, interval) so that a thousand targets added by one reload spread over
// the interval instead of firing together; later checks run at a fixed rate
// from there, which keeps them spread.
//
// `draw` is a uniform 64-bit random value (the caller owns the generator).
inline uint64_t first_check_at(uint64_t now_ns, uint64_t interval_ns, uint64_t draw) {
  if (interval_ns == 0) return now_ns;
  __extension__ using u128 = unsigned __int128;
  return now_ns + static_cast<uint64_t>((static_cast<u128>(draw) * interval_ns) >> 64);
}

// The check scheduled at `scheduled_ns` has ended at `now_ns`. Fixed rate, but
// a loop that fell behind (a stalled process, a suspended VM) resumes at once
// rather than firing the missed checks back to back.
inline uint64_t next_check_at(uint64_t scheduled_ns, uint64_t interval_ns, uint64_t now_ns) {
  const uint64_t next = scheduled_ns + interval_ns;
  return next > now_ns ? next : now_ns;
}

}  // namespace tripod
