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

namespace tripod {

struct RunStats {
  uint64_t bursts = 0;
  uint64_t rx = 0;
  uint64_t created = 0;  // packets stages appended (Burst::append)
  uint64_t tx = 0;
  uint64_t dropped = 0;
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

 private:
  std::vector<std::unique_ptr<Stage>> stages_;
  Burst burst_;
};

}  // namespace tripod
