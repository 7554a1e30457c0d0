#include "daemon/worker.h"

#include <pthread.h>

#include <exception>
#include <string>

#include "daemon/steer_stage.h"

namespace tripod {

struct Worker::Task {
  std::function<void(GatewayStage&)> fn;
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  std::exception_ptr error;
};

Worker::Worker(std::string name, std::unique_ptr<Port> port, std::unique_ptr<GatewayStage> gateway,
               std::unique_ptr<L2Stage> l2, HandoffMesh* mesh, uint32_t index)
    : name_(std::move(name)), port_(std::move(port)) {
  gateway_ = gateway.get();
  l2_ = l2.get();
  pipeline_.add(std::make_unique<ParseStage>());
  if (mesh != nullptr && mesh->workers() > 1) {
    mesh_ = mesh;
    index_ = index;
    pipeline_.add(std::make_unique<SteerStage>(*gateway_, index, mesh->workers()));
    pipeline_.enable_handoff(mesh, index);
    port_->add_wake_fd(mesh->wake_fd(index));
  }
  pipeline_.add(std::move(gateway));
  if (l2) pipeline_.add(std::move(l2));
}

Worker::~Worker() {
  stop();
}

void Worker::start() {
  thread_ = std::thread([this] { loop(); });
  // `top -H` and perf tell the threads apart (15 characters at most).
  pthread_setname_np(thread_.native_handle(), ("tripod:" + name_).substr(0, 15).c_str());
}

void Worker::stop() {
  stop_.store(true, std::memory_order_relaxed);
  if (thread_.joinable()) thread_.join();
  run_tasks();  // nobody waits forever on a stopped worker
  pipeline_.drop_held(*port_);
}

void Worker::run_tasks() {
  std::deque<std::shared_ptr<Task>> todo;
  {
    std::lock_guard<std::mutex> lock(mu_);
    todo.swap(tasks_);
    has_tasks_.store(false, std::memory_order_relaxed);
  }
  for (auto& t : todo) {
    try {
      t->fn(*gateway_);
    } catch (...) {
      t->error = std::current_exception();
    }
    std::lock_guard<std::mutex> lock(t->mu);
    t->done = true;
    t->cv.notify_all();
  }
}

void Worker::loop() {
  while (!stop_.load(std::memory_order_relaxed)) {
    if (has_tasks_.load(std::memory_order_relaxed)) run_tasks();
    if (poll_) poll_(*gateway_, clock_.now_ns());
    // Pulls answered (or given up) since: their parked packets run again.
    if (gateway_->pull_news() != pull_news_) {
      pull_news_ = gateway_->pull_news();
      pipeline_.unpark([this](uint16_t tag) { return gateway_->pull_ready(tag); });
    }
    // Output commit: what the holders have acknowledged since goes out.
    pipeline_.release_held(*port_, gateway_->commit_point(), clock_.now_ns(), &stats_);
    if (pipeline_.run_once(*port_, &clock_, &stats_) == 0) {
      // Idle: expire connections, then sleep until packets (or 10 ms, so
      // tasks and stop are seen promptly).
      gateway_->advance_to(clock_.now_ns());
      if (l2_ != nullptr) l2_->offline();
      // With a cluster the checkpoint interval is 1 ms: sleep no longer.
      // Not at all while other workers' packets wait here.
      if (mesh_ == nullptr || mesh_->may_sleep(index_)) port_->wait(poll_ ? 1 : 10);
      if (mesh_ != nullptr) mesh_->awake(index_);
      if (l2_ != nullptr) l2_->online();
    }
  }
}

bool Worker::call(const std::function<void(GatewayStage&)>& fn, std::chrono::milliseconds timeout) {
  auto t = std::make_shared<Task>();
  t->fn = fn;
  if (!thread_.joinable() || stop_.load(std::memory_order_relaxed)) {
    fn(*gateway_);  // not running: the caller's thread is the only one
    return true;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    tasks_.push_back(t);
    has_tasks_.store(true, std::memory_order_relaxed);
  }
  std::unique_lock<std::mutex> lock(t->mu);
  if (!t->cv.wait_for(lock, timeout, [&] { return t->done; })) {
    lock.unlock();
    {
      std::lock_guard<std::mutex> q(mu_);
      for (auto it = tasks_.begin(); it != tasks_.end(); ++it) {
        if (*it == t) {  // not started: withdrawn, it never runs
          tasks_.erase(it);
          return false;
        }
      }
    }
    lock.lock();  // already running: it finishes soon, and fn's captures must outlive it
    t->cv.wait(lock, [&] { return t->done; });
  }
  if (t->error) std::rethrow_exception(t->error);
  return true;
}

bool Worker::export_counters(const Stage::CounterFn& fn) {
  return call([&](GatewayStage&) {
    for (const auto& s : pipeline_.stages())
      s->export_counters([&](std::string_view n, uint64_t v) {
        fn(std::string(s->name()) + "." + std::string(n), v);
      });
    fn("worker.bursts", stats_.bursts);
    fn("worker.rx", stats_.rx);
    fn("worker.tx", stats_.tx);
    fn("worker.dropped", stats_.dropped);
    fn("worker.held", stats_.held);
    fn("worker.hold_full", stats_.hold_full);
    fn("worker.hold_expired", stats_.hold_expired);
    fn("worker.holding", pipeline_.held());
    fn("worker.created", stats_.created);
    fn("worker.parked", stats_.parked);
    fn("worker.park_full", stats_.park_full);
    fn("worker.replayed", stats_.replayed);
    fn("worker.handed_off", stats_.handed_off);
    fn("worker.handoff_full", stats_.handoff_full);
    fn("worker.handed_in", stats_.handed_in);
    fn("worker.parking", pipeline_.parked());
    port_->export_counters(
        [&](std::string_view n, uint64_t v) { fn("port." + std::string(n), v); });
  });
}

}  // namespace tripod
