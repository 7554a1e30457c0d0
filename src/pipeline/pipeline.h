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
#include "pipeline/handoff.h"
#include "pipeline/output_commit.h"

namespace tripod {

// Parked packets (Verdict::kPark), in arrival order, fixed capacity: those
// that still wait, and those let go (unpark()) that have not run again yet.
class ParkQueue {
 public:
  explicit ParkQueue(uint32_t capacity)
      : cap_(capacity),
        wait_(new Packet[capacity]),
        tags_(new uint16_t[capacity]),
        go_(new Packet[capacity]) {}
  uint32_t size() const { return n_wait_ + n_go_ - go_head_; }
  uint32_t to_run() const { return n_go_ - go_head_; }  // let go, not yet run
  bool push(const Packet& p, uint16_t tag) {
    if (size() == cap_) return false;
    wait_[n_wait_] = p;
    tags_[n_wait_++] = tag;
    return true;
  }
  // The waiting packets for which ready(tag) holds run again, in order,
  // after those already let go.
  template <typename Fn>
  void unpark(Fn&& ready) {
    if (go_head_ > 0) {  // room at the end: what is still to run moves to the front
      std::copy(go_.get() + go_head_, go_.get() + n_go_, go_.get());
      n_go_ -= go_head_;
      go_head_ = 0;
    }
    uint32_t kept = 0;
    for (uint32_t i = 0; i < n_wait_; ++i) {
      if (ready(tags_[i])) {
        go_[n_go_++] = wait_[i];
      } else {
        wait_[kept] = wait_[i];
        tags_[kept++] = tags_[i];
      }
    }
    n_wait_ = kept;
  }
  // Up to `max` packets let go, oldest first.
  uint32_t take(Packet* out, uint32_t max) {
    const uint32_t n = std::min(max, n_go_ - go_head_);
    std::copy(go_.get() + go_head_, go_.get() + go_head_ + n, out);
    go_head_ += n;
    if (go_head_ == n_go_) go_head_ = n_go_ = 0;
    return n;
  }
  void drop_all(Port& port) {
    port.release(wait_.get(), n_wait_);
    port.release(go_.get() + go_head_, n_go_ - go_head_);
    n_wait_ = n_go_ = go_head_ = 0;
  }

 private:
  uint32_t cap_;
  uint32_t n_wait_ = 0;
  uint32_t n_go_ = 0;
  uint32_t go_head_ = 0;
  std::unique_ptr<Packet[]> wait_;
  std::unique_ptr<uint16_t[]> tags_;
  std::unique_ptr<Packet[]> go_;
};

struct RunStats {
  uint64_t bursts = 0;
  uint64_t rx = 0;
  uint64_t created = 0;  // packets stages appended (Burst::append)
  uint64_t tx = 0;
  uint64_t dropped = 0;
  uint64_t held = 0;          // output commit: packets that waited
  uint64_t hold_full = 0;     // dropped: the hold queue was full
  uint64_t hold_expired = 0;  // sent after max_wait without their commit
  uint64_t parked = 0;        // packets a stage parked (Verdict::kPark)
  uint64_t park_full = 0;     // dropped: the park queue was full
  uint64_t replayed = 0;      // parked packets run again (not in rx)
  uint64_t handed_off = 0;    // to the worker that owns their flow (handoff.h)
  uint64_t handoff_full = 0;  // dropped: that worker's ring was full
  uint64_t handed_in = 0;     // from other workers (not in rx)
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
    if (park_) park_->drop_all(port);
  }

  // Parking: packets a stage parks wait here (room for `capacity`; beyond
  // it they are dropped and counted) until unpark(ready) lets go those
  // whose tag is ready; they run through every stage again, first in the
  // next bursts. Without parking enabled a parked packet is dropped.
  void enable_park(uint32_t capacity) { park_ = std::make_unique<ParkQueue>(capacity); }
  uint32_t parked() const { return park_ ? park_->size() : 0; }

  // Handing packets between workers: this pipeline is worker `self` of
  // `mesh`; packets handed to it run first after the parked ones, and
  // packets a stage hands off (Verdict::kHandOff) are copied out.
  void enable_handoff(HandoffMesh* mesh, uint32_t self) {
    mesh_ = mesh;
    self_ = self;
  }
  template <typename Fn>
  void unpark(Fn&& ready) {
    if (park_) park_->unpark(ready);
  }

 private:
  std::vector<std::unique_ptr<Stage>> stages_;
  Burst burst_;
  std::unique_ptr<HoldQueue> hold_;
  uint64_t max_wait_ns_ = 0;
  std::unique_ptr<ParkQueue> park_;
  HandoffMesh* mesh_ = nullptr;
  uint32_t self_ = 0;
};

}  // namespace tripod
