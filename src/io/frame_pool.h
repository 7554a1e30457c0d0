// Fixed pool of equal-size frames, allocated once; the same discipline as an
// AF_XDP UMEM, so the pcap/memory ports and the XDP port share one model.
// Single-threaded: each worker owns its pool.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "io/packet.h"

namespace tripod {

class FramePool {
 public:
  explicit FramePool(uint32_t num_frames)
      : mem_(new uint8_t[size_t{num_frames} * kFrameSize]), free_(num_frames) {
    for (uint32_t i = 0; i < num_frames; ++i)
      free_[i] = num_frames - 1 - i;
  }

  // False when the pool is exhausted (the port counts it as an RX drop).
  bool alloc(Packet* p) {
    if (free_.empty()) return false;
    p->frame = free_.back();
    free_.pop_back();  // never reallocates: capacity is fixed at construction
    p->data = mem_.get() + size_t{p->frame} * kFrameSize + kHeadroom;
    p->len = 0;
    return true;
  }
  void release(const Packet& p) { free_.push_back(p.frame); }
  uint32_t available() const { return static_cast<uint32_t>(free_.size()); }

 private:
  std::unique_ptr<uint8_t[]> mem_;
  std::vector<uint32_t> free_;
};

}  // namespace tripod
