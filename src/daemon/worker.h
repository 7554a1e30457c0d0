// A data-plane worker: one thread, one port (an AF_XDP socket), one pipeline
// (parse -> gateway -> l2). The gateway's state is the worker's alone; the
// control thread changes it only through call(), which runs a function on
// the worker thread between two bursts — so no lock is ever taken on the
// packet path (a relaxed atomic load per burst says whether work is queued).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "common/clock.h"
#include "daemon/l2_stage.h"
#include "io/port.h"
#include "nf/gateway/gateway_stage.h"
#include "pipeline/parse_stage.h"
#include "pipeline/pipeline.h"

namespace tripod {

class Worker {
 public:
  // `l2` may be null (tests over memory ports: frames leave as the gateway
  // left them). With `mesh` (of more than one worker) this is worker
  // `index` of it: packets of other workers' flows go to them, theirs come
  // here (steer_stage.h).
  Worker(std::string name, std::unique_ptr<Port> port, std::unique_ptr<GatewayStage> gateway,
         std::unique_ptr<L2Stage> l2, HandoffMesh* mesh = nullptr, uint32_t index = 0);
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  // Runs fn(gateway, now) on the worker thread once per loop round, between
  // bursts (the cluster's flow records). Set before start().
  void set_poll(std::function<void(GatewayStage&, uint64_t)> fn) { poll_ = std::move(fn); }
  // Output commit: forwarded packets the gateway marks held wait (at most
  // `capacity` of them, at most max_wait) for its commit point to pass
  // them; `wake_fd` (the cluster link's) ends the worker's sleep when it
  // may have. Set before start().
  void enable_hold(uint32_t capacity, uint64_t max_wait_ns, int wake_fd) {
    pipeline_.enable_hold(capacity, max_wait_ns);
    port_->add_wake_fd(wake_fd);
  }

  // Pulling (GatewayClusterConfig::pull_timeout_ms): packets the gateway
  // parks wait here (at most `capacity`) until it has an answer for them.
  void enable_park(uint32_t capacity) { pipeline_.enable_park(capacity); }

  void start();
  void stop();  // idempotent; joins

  // Runs fn(gateway) on the worker thread between bursts and waits for it,
  // at most `timeout`. Exceptions thrown by fn come back here. False on
  // timeout, and then fn has not run and never will.
  bool call(const std::function<void(GatewayStage&)>& fn,
            std::chrono::milliseconds timeout = std::chrono::seconds(5));

  // Every counter of the pipeline, the port and the run loop, read on the
  // worker thread (consistent; call() underneath).
  bool export_counters(const Stage::CounterFn& fn);

  const std::string& name() const { return name_; }
  Port& port() { return *port_; }

 private:
  struct Task;
  void loop();
  void run_tasks();

  std::string name_;
  std::unique_ptr<Port> port_;
  GatewayStage* gateway_;
  L2Stage* l2_;
  HandoffMesh* mesh_ = nullptr;
  uint32_t index_ = 0;
  Pipeline pipeline_;
  MonotonicClock clock_;
  RunStats stats_;
  uint64_t pull_news_ = 0;  // GatewayStage::pull_news() when parked packets were last let go
  std::function<void(GatewayStage&, uint64_t)> poll_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> has_tasks_{false};
  std::mutex mu_;
  std::deque<std::shared_ptr<Task>> tasks_;
};

}  // namespace tripod
