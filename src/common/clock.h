// Time comes in through an interface so that timeouts, cookies and expiry are
// tested deterministically (STYLE.md habit 4). The data plane reads the clock
// once per burst, never per packet.
#pragma once

#include <cstdint>
#include <ctime>

namespace tripod {

class Clock {
 public:
  virtual ~Clock() = default;
  // Monotonic nanoseconds; the origin is arbitrary.
  virtual uint64_t now_ns() const = 0;
};

class MonotonicClock final : public Clock {
 public:
  uint64_t now_ns() const override {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ULL + static_cast<uint64_t>(ts.tv_nsec);
  }
};

// A clock that only moves when told to: for tests.
class ManualClock final : public Clock {
 public:
  explicit ManualClock(uint64_t start_ns = 0) : now_(start_ns) {}
  uint64_t now_ns() const override { return now_; }
  void advance_ns(uint64_t d) { now_ += d; }
  void set_ns(uint64_t t) { now_ = t; }

 private:
  uint64_t now_;
};

}  // namespace tripod
