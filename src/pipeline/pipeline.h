// The per-worker run loop: receive a burst, run it through the stages in
// order, transmit what is still forwarded, release what was dropped.
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <vector>

#include "common/clock.h"
#include "io/port.h"
#include "pipeline/burst.h"
#include "pipeline/output_commit.h"

namespace tripod {

struct RunStats {
  uint64_t bursts = 0;
  uint64_t rx = 0;
  uint64_t created = 0;  // packets stages appended (Burst::append)
  uint64_t tx = 0;
  uint64_t dropped = 0;
  uint64_t held = 0;          // output commit: packets that waited
  uint64_t hold_full = 0;     // dropped: the hold queue was full
  uint64_t hold_expired = 0;  // sent after max_wait without their commit
  uint64_t last_ts_ns = 0;
};

class Pipeline {
 public:
  void add(std::unique_ptr<Stage> stage) { stages_.push_back(std::move(stage)); }
  const std::vector<std::unique_ptr<Stage>>& stages() const { return stages_; }

  // Runs one burst; returns packets received (0: the port had nothing).
  // With a clock, time is read once per burst; without one (replaying a
  // capture), time is the newest packet timestamp of the burst.
  uint32_t run_once(Port& port, const Clock* clock, RunStats* stats);
  // Runs until the port is exhausted.
  RunStats run_to_end(Port& port, const Clock* clock);

  // Output commit: packets the stages mark held wait here (room for
  // `capacity`; beyond it they are dropped and counted) until
  // release_held() finds their batch acknowledged, or they waited max_wait.
  void enable_hold(uint32_t capacity, uint64_t max_wait_ns) {
    hold_ = std::make_unique<HoldQueue>(capacity);
    max_wait_ns_ = max_wait_ns;
  }
  bool has_held() const { return hold_ && !hold_->empty(); }
  uint32_t held() const { return hold_ ? hold_->size() : 0; }
  void release_held(Port& port, const CommitPoint& c, uint64_t now_ns, RunStats* stats) {
    if (has_held())
      stats->tx += hold_->release(c, now_ns, max_wait_ns_, port, &stats->hold_expired);
  }
  void drop_held(Port& port) {
    if (hold_) hold_->drop_all(port);
  }

 private:
  std::vector<std::unique_ptr<Stage>> stages_;
  Burst burst_;
  std::unique_ptr<HoldQueue> hold_;
  uint64_t max_wait_ns_ = 0;
};

}  // namespace tripod
