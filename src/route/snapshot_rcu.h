// SnapshotDomain<T>: one writer publishes immutable snapshots, many data
// plane workers read the current one without locks (quiescent-state-based
// reclamation, the userspace-RCU "QSBR" flavour).
//
//   Worker, per burst:   const T* t = reader.acquire();  ... use t ...
//                        reader.quiescent();   // t is not used after this
//   Control thread:      domain.publish(std::move(next));  domain.reclaim();
//
// Scheme: a global epoch counter; each reader owns a slot (its own cache
// line) holding the last epoch it announced. publish() swaps the pointer, then
// bumps the epoch to E and retires the old snapshot tagged E. A reader that
// announces an epoch >= E has read the epoch after the swap, so it can only
// see the new pointer from then on, and its earlier uses of the old one are
// finished (they precede the announcing store). reclaim() frees a retired
// snapshot once every online reader has announced >= its tag. An offline
// reader (blocked in poll, shutting down) holds no snapshot and does not
// hold reclamation back. All operations are seq_cst: on x86 the per-burst
// cost is one plain load (acquire) and one xchg (quiescent), and going
// online needs the store->load ordering that only seq_cst gives.
//
// A reader that stops calling quiescent() while online delays reclamation
// forever: retired() exposes the backlog for monitoring.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <utility>
#include <vector>

#include "common/compiler.h"

namespace tripod::route {

template <typename T>
class SnapshotDomain {
 public:
  static constexpr uint64_t kOffline = ~uint64_t{0};

  class Reader {
   public:
    Reader() = default;
    // The snapshot current now; valid until this reader's next quiescent()
    // or offline(). Never null once the domain has published one.
    const T* acquire() const { return d_->current_.load(std::memory_order_seq_cst); }
    // Announces that no snapshot acquired so far is still in use.
    void quiescent() { slot().store(d_->epoch_.load(std::memory_order_seq_cst)); }
    void offline() { slot().store(kOffline); }
    void online() { quiescent(); }
    bool valid() const { return d_ != nullptr; }

   private:
    friend class SnapshotDomain;
    Reader(SnapshotDomain* d, size_t i) : d_(d), i_(i) {}
    std::atomic<uint64_t>& slot() { return d_->slots_[i_].epoch; }
    SnapshotDomain* d_ = nullptr;
    size_t i_ = 0;
  };

  explicit SnapshotDomain(size_t max_readers, std::unique_ptr<const T> initial = nullptr)
      : slots_(new Slot[max_readers]), max_readers_(max_readers) {
    current_.store(initial.release());
  }
  // Frees everything: destroy only after the workers stopped reading.
  ~SnapshotDomain() {
    delete current_.load();
    for (auto& r : retired_)
      delete r.first;
  }
  SnapshotDomain(const SnapshotDomain&) = delete;
  SnapshotDomain& operator=(const SnapshotDomain&) = delete;

  // Registers a worker (thread-safe; typically before workers start). The
  // reader starts online. Throws std::length_error past max_readers.
  Reader register_reader() {
    std::lock_guard<std::mutex> lock(mu_);
    if (num_readers_ == max_readers_) throw std::length_error("SnapshotDomain: too many readers");
    Reader r(this, num_readers_);
    r.online();
    ++num_readers_;
    num_readers_pub_.store(num_readers_);
    return r;
  }

  // Writer side (one thread).
  void publish(std::unique_ptr<const T> next) {
    const T* old = current_.exchange(next.release());
    const uint64_t tag = epoch_.fetch_add(1) + 1;
    if (old != nullptr) retired_.emplace_back(old, tag);
    reclaim();
  }
  // Frees what no reader can still see; returns how many stay retired.
  size_t reclaim() {
    uint64_t min_seen = kOffline;
    const size_t n = num_readers_pub_.load();
    for (size_t i = 0; i < n; ++i)
      min_seen = std::min(min_seen, slots_[i].epoch.load());
    size_t kept = 0;
    for (auto& r : retired_) {
      if (r.second <= min_seen) {
        delete r.first;
      } else {
        retired_[kept++] = r;
      }
    }
    retired_.resize(kept);
    return kept;
  }
  // Control-thread view of the current snapshot (the writer never races
  // with itself, so no quiescent state is needed).
  const T* current() const { return current_.load(); }
  size_t retired() const { return retired_.size(); }
  uint64_t epoch() const { return epoch_.load(); }

 private:
  struct alignas(kCacheLine) Slot {
    std::atomic<uint64_t> epoch{kOffline};
  };
  std::atomic<const T*> current_{nullptr};
  alignas(kCacheLine) std::atomic<uint64_t> epoch_{0};
  std::unique_ptr<Slot[]> slots_;
  size_t max_readers_;
  size_t num_readers_ = 0;
  std::atomic<size_t> num_readers_pub_{0};
  std::mutex mu_;
  std::vector<std::pair<const T*, uint64_t>> retired_;
};

}  // namespace tripod::route
