// Bounded single-producer single-consumer ring: how workers hand packets (or
// any trivially copyable item) to the worker that owns their flow's shard.
// Head and tail live on separate cache lines; each side caches the other's
// index so a burst costs one acquire load, not one per item.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <type_traits>

#include "common/compiler.h"

namespace tripod {

// A ring's capacity: `capacity` rounded up to a power of two (index & mask).
inline uint32_t spsc_capacity(uint32_t capacity) {
  uint32_t cap = 1;
  while (cap < capacity)
    cap <<= 1;
  return cap;
}

// The two ends' indices, each on its own cache line with its cached copy of
// the other end's (SpscRing; PacketRing in pipeline/handoff.h).
struct alignas(kCacheLine) SpscProducer {
  std::atomic<uint32_t> tail{0};
  uint32_t cached_head = 0;
};
struct alignas(kCacheLine) SpscConsumer {
  std::atomic<uint32_t> head{0};
  uint32_t cached_tail = 0;
};

template <typename T>
class SpscRing {
  static_assert(std::is_trivially_copyable_v<T>);

 public:
  // Capacity is rounded up to a power of two.
  explicit SpscRing(uint32_t capacity) {
    cap_ = spsc_capacity(capacity);
    mask_ = cap_ - 1;
    items_ = std::make_unique<T[]>(cap_);
  }

  // Producer side: pushes up to n items, returns how many fit.
  uint32_t push(const T* in, uint32_t n) {
    const uint32_t tail = prod_.tail.load(std::memory_order_relaxed);
    if (cap_ - (tail - prod_.cached_head) < n) {
      prod_.cached_head = cons_.head.load(std::memory_order_acquire);
    }
    const uint32_t room = cap_ - (tail - prod_.cached_head);
    if (n > room) n = room;
    for (uint32_t i = 0; i < n; ++i)
      items_[(tail + i) & mask_] = in[i];
    prod_.tail.store(tail + n, std::memory_order_release);
    return n;
  }

  // Consumer side: pops up to n items, returns how many.
  uint32_t pop(T* out, uint32_t n) {
    const uint32_t head = cons_.head.load(std::memory_order_relaxed);
    if (cons_.cached_tail - head < n) {
      cons_.cached_tail = prod_.tail.load(std::memory_order_acquire);
    }
    const uint32_t avail = cons_.cached_tail - head;
    if (n > avail) n = avail;
    for (uint32_t i = 0; i < n; ++i)
      out[i] = items_[(head + i) & mask_];
    cons_.head.store(head + n, std::memory_order_release);
    return n;
  }

  uint32_t capacity() const { return cap_; }
  // Producer side: how many items push() would take now (at least).
  uint32_t room() const {
    return cap_ - (prod_.tail.load(std::memory_order_relaxed) -
                   cons_.head.load(std::memory_order_acquire));
  }

 private:
  SpscProducer prod_;
  SpscConsumer cons_;
  uint32_t cap_;
  uint32_t mask_;
  std::unique_ptr<T[]> items_;
};

}  // namespace tripod
