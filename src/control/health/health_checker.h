// Active health checks of backends: TCP connect and HTTP GET, with interval,
// timeout, rise and fall, from one thread running one epoll loop over
// non-blocking sockets (no thread per backend).
//
// Threading:
//  - The constructor starts the checker thread; stop() or the destructor
//    joins it. Every public method may be called from any thread (in the
//    daemon: the control thread); they take one mutex, never block on I/O.
//  - add/update/remove take effect on the checker thread shortly after
//    (they wake it through an eventfd). status() reflects them at once.
//  - State changes are queued as HealthEvents. event_fd() becomes readable
//    when the queue is non-empty; the daemon polls it with its other fds and
//    calls drain_events(), then builds a pool version without the down
//    backends and commits it (existing connections keep their backend).
//    Events are never delivered by callback, so no daemon code runs on the
//    checker thread.
//  - Counters are written by the checker thread only; read from anywhere.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "common/clock.h"
#include "common/counters.h"
#include "control/health/health_state.h"
#include "control/health/http_status.h"
#include "nf/lb/vip.h"

namespace tripod {

enum class CheckType : uint8_t { kTcp, kHttp };

struct HealthCheckSpec {
  CheckType type = CheckType::kTcp;
  IpAddress addr;     // the backend
  uint16_t port = 0;  // host order; required (a backend port 0 means "the
                      // client's port", so the config must name one here)
  std::string name;   // free text for logs and status, e.g. "web/10.0.0.5:80"

  // HTTP only.
  std::string path = "/";
  std::string host;    // Host header; empty: the address (and port if not 80)
  StatusRange expect;  // healthy status codes; default 200-399 as HAProxy

  uint32_t interval_ms = 2000;
  uint32_t timeout_ms = 1000;  // < interval_ms, so checks of a target never overlap
  uint32_t rise = 2;
  uint32_t fall = 3;
  // Down until `rise` successes: a backend nobody has seen answer gets no
  // new connections (see README.md for why this is the default).
  HealthState initial = HealthState::kDown;

  // Where checks leave from (optional): a source address (bind() with port
  // 0, same family as addr) and/or an interface (SO_BINDTODEVICE).
  IpAddress source;
  std::string interface;

  friend bool operator==(const HealthCheckSpec&, const HealthCheckSpec&) = default;
};

// Throws std::invalid_argument naming the field (add/update call it).
void validate(const HealthCheckSpec& spec);

using HealthTargetId = uint64_t;  // never reused within one HealthChecker

struct HealthEvent {
  HealthTargetId id = 0;
  std::string name;
  HealthState state = HealthState::kDown;  // the new state
  std::string reason;                      // the result that tipped it: "ok" or the error text
  uint32_t consecutive = 0;                // length of the run that tipped it (rise or fall)
  uint64_t at_ns = 0;
};

struct HealthTargetStatus {
  HealthTargetId id = 0;
  HealthCheckSpec spec;
  TargetHealth health;
  bool in_flight = false;
};

#define TRIPOD_HEALTH_COUNTERS(X)          \
  X(kChecksStarted, "checks_started")      \
  X(kChecksOk, "checks_ok")                \
  X(kChecksFailed, "checks_failed")        \
  X(kTimeouts, "timeouts")                 \
  X(kConnectErrors, "connect_errors")      \
  X(kIoErrors, "io_errors")                \
  X(kHttpBadStatus, "http_bad_status")     \
  X(kHttpBadResponse, "http_bad_response") \
  X(kLocalErrors, "local_errors")          \
  X(kWentUp, "went_up")                    \
  X(kWentDown, "went_down")                \
  X(kEventsDropped, "events_dropped")
TRIPOD_DECLARE_REASONS(HealthCounter, TRIPOD_HEALTH_COUNTERS)

#define TRIPOD_HEALTH_GAUGES(X) \
  X(kTargets, "targets")        \
  X(kTargetsUp, "targets_up")   \
  X(kChecksInFlight, "checks_in_flight")
TRIPOD_DECLARE_REASONS(HealthGauge, TRIPOD_HEALTH_GAUGES)

class HealthChecker {
 public:
  struct Options {
    const Clock* clock = nullptr;  // nullptr: CLOCK_MONOTONIC. Must be real time.
    uint64_t seed = 0;             // first-check jitter; 0: from getrandom
    size_t max_events = 65536;     // queue bound; the oldest events are dropped
  };

  HealthChecker() : HealthChecker(Options{}) {}
  // Throws std::system_error if the epoll/eventfd setup fails.
  explicit HealthChecker(const Options& opts);
  ~HealthChecker();
  HealthChecker(const HealthChecker&) = delete;
  HealthChecker& operator=(const HealthChecker&) = delete;

  // Idempotent. In-flight checks are abandoned (their sockets closed).
  void stop();

  // Throws std::invalid_argument (validate()).
  HealthTargetId add(const HealthCheckSpec& spec);
  // Keeps the target's state and counts (a reload must not flap pools); an
  // in-flight check is abandoned and the next one starts within one new
  // interval (jittered). Identical spec: no-op. Returns false for an unknown id.
  bool update(HealthTargetId id, const HealthCheckSpec& spec);
  bool remove(HealthTargetId id);

  std::optional<HealthTargetStatus> status(HealthTargetId id) const;
  std::vector<HealthTargetStatus> statuses() const;  // by id

  int event_fd() const { return events_fd_; }
  std::vector<HealthEvent> drain_events();

  uint64_t counter(HealthCounter c) const { return counters_.get(c); }
  uint64_t gauge(HealthGauge g) const;
  template <typename Fn>
  void export_counters(Fn&& fn) const {
    for (size_t i = 0; i < size_t(HealthCounter::kCount); ++i)
      fn(kHealthCounterNames[i], counters_.get(i));
    for (size_t i = 0; i < size_t(HealthGauge::kCount); ++i)
      fn(kHealthGaugeNames[i], gauge(static_cast<HealthGauge>(i)));
  }

 private:
  struct Command {
    enum Kind : uint8_t { kAdd, kUpdate, kRemove } kind;
    HealthTargetId id;
    HealthCheckSpec spec;
  };
  struct Shared {
    HealthCheckSpec spec;
    TargetHealth health;
    bool in_flight = false;
  };
  struct Loop;  // checker-thread state (health_checker.cc)

  void run();
  void wake();
  // Checker thread: records a finished check (ignored if the target was
  // removed meanwhile) and queues an event if its state changed.
  void publish(HealthTargetId id, const CheckResult& r, uint64_t now_ns);
  void set_in_flight(HealthTargetId id, bool v);
  uint64_t now() const { return clock_->now_ns(); }

  MonotonicClock default_clock_;
  const Clock* clock_;
  Options opts_;
  int epoll_fd_ = -1;
  int wake_fd_ = -1;    // control -> checker: commands pending or stop
  int events_fd_ = -1;  // checker -> daemon: events pending

  mutable std::mutex mu_;
  HealthTargetId next_id_ = 1;                         // guarded by mu_
  std::unordered_map<HealthTargetId, Shared> shared_;  // guarded by mu_
  std::vector<Command> commands_;                      // guarded by mu_
  std::deque<HealthEvent> events_;                     // guarded by mu_

  CounterSet<HealthCounter, size_t(HealthCounter::kCount)> counters_;
  std::atomic<uint64_t> in_flight_{0};
  std::atomic<bool> stopping_{false};
  std::unique_ptr<Loop> loop_;
  std::thread thread_;
};

}  // namespace tripod
