// AF_XDP port: one AF_XDP socket on one (interface, RX queue), owned by one
// worker thread. The port owns its UMEM; a Packet's `frame` is the UMEM frame
// index and `data` points into that frame (see README.md for the layout).
//
// Packet path: no allocation, no exception, no lock. Frames cycle between a
// fixed free-frame stack and the four rings (fill -> RX -> worker -> TX ->
// completion -> free stack). Rings are touched in batches.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "common/counters.h"
#include "io/port.h"

namespace tripod {

enum class XdpBindMode : uint8_t {
  kAuto,      // zero-copy if the driver supports it, else copy
  kCopy,      // XDP_COPY
  kZeroCopy,  // XDP_ZEROCOPY; fails if the driver cannot
};

struct XdpPortConfig {
  std::string interface;
  uint32_t queue = 0;
  XdpBindMode bind_mode = XdpBindMode::kAuto;
  // UMEM frames of kFrameSize bytes. Must cover the fill ring plus what is in
  // flight in RX, the worker and TX.
  uint32_t num_frames = 4096;
  // Entries of each ring (RX, TX, fill, completion); a power of two.
  uint32_t ring_size = 2048;
  // Try 2 MiB pages for the UMEM first (fewer TLB misses, fewer IOMMU
  // mappings in zero-copy); falls back to normal pages.
  bool huge_pages = true;
};

#define TRIPOD_XDP_PORT_COUNTERS(X)                                                   \
  X(kRxPackets, "rx_packets")                                                         \
  X(kRxBytes, "rx_bytes")                                                             \
  X(kTxPackets, "tx_packets")                                                         \
  X(kTxBytes, "tx_bytes")                                                             \
  X(kTxCompleted, "tx_completed")                                                     \
  X(kTxRingFull, "tx_ring_full_drops")  /* no room in the TX ring */                  \
  X(kTxInvalid, "tx_invalid_packets")   /* data/len outside the packet's frame */     \
  X(kRxInvalidDesc, "rx_invalid_descs") /* kernel gave an address outside the UMEM */ \
  X(kFillStarved, "fill_ring_starved")  /* fill ring had room, no free frame */       \
  X(kRxWakeups, "rx_wakeups")                                                         \
  X(kTxWakeups, "tx_wakeups")                                                         \
  X(kTxWakeupErrors, "tx_wakeup_errors")                                              \
  X(kFreeOverflow, "free_overflow") /* a frame released twice: ignored */

TRIPOD_DECLARE_REASONS(XdpPortCounter, TRIPOD_XDP_PORT_COUNTERS)

class XdpPort final : public Port {
 public:
  // Creates the UMEM and the socket and fills the fill ring. Does not attach
  // any XDP program: register fd() with XdpSteering. Throws
  // std::runtime_error naming the interface, the queue and the errno text.
  explicit XdpPort(const XdpPortConfig& config);
  ~XdpPort() override;
  XdpPort(const XdpPort&) = delete;
  XdpPort& operator=(const XdpPort&) = delete;

  uint32_t rx_burst(Packet* pkts, uint32_t max) override;
  // Frames of packets that do not fit in the TX ring are dropped and counted.
  void tx_burst(const Packet* pkts, uint32_t n) override;
  void release(const Packet* pkts, uint32_t n) override;
  // A free UMEM frame for a packet the pipeline creates (it leaves through
  // tx_burst or comes back through release like a received one).
  bool alloc_frame(Packet* p) override {
    if (free_top_ == 0) return false;
    p->frame = free_[--free_top_];
    p->data = umem_area_ + size_t{p->frame} * kFrameSize + kHeadroom;
    p->len = 0;
    return true;
  }

  // Sleeps until the RX ring has packets or timeout_ms passes (-1: forever).
  // Refills the fill ring first, so the kernel has frames while we sleep, and
  // lets a zero-copy driver that asked for a wake-up (need_wakeup) resume.
  // True if packets are ready.
  bool wait(int timeout_ms) override;

  // Reports the port's counters and the kernel's XDP_STATISTICS (prefixed
  // "kernel_"). Safe from another thread (relaxed reads, one getsockopt).
  void export_counters(const CounterFn& fn) const override;
  uint64_t counter(XdpPortCounter c) const { return counters_.get(c); }

  int fd() const { return fd_; }
  uint32_t queue() const { return config_.queue; }
  const std::string& interface() const { return config_.interface; }
  int ifindex() const { return ifindex_; }
  bool zero_copy() const { return zero_copy_; }

  // Frame accounting (tests, status): every frame is in exactly one place.
  struct FrameAccount {
    uint32_t free = 0;         // on the free stack
    uint32_t kernel_rx = 0;    // in the fill ring or the RX ring
    uint32_t kernel_tx = 0;    // in the TX ring or waiting for completion
    uint32_t application = 0;  // received and not yet released/transmitted
  };
  FrameAccount frame_account() const;
  uint32_t num_frames() const { return config_.num_frames; }

 private:
  struct Rings;

  void setup(bool zero_copy);
  void teardown();
  void refill_fill_ring();
  void reap_completions();
  void kick_tx();
  void free_frame(uint32_t frame) {
    if (free_top_ < config_.num_frames) {
      free_[free_top_++] = frame;
    } else {
      counters_.inc(XdpPortCounter::kFreeOverflow);
    }
  }
  [[noreturn]] void fail(std::string_view what, int err) const;

  XdpPortConfig config_;
  int ifindex_ = 0;
  int fd_ = -1;
  bool zero_copy_ = false;
  uint8_t* umem_area_ = nullptr;
  size_t umem_len_ = 0;
  std::unique_ptr<Rings> rings_;
  std::unique_ptr<uint32_t[]> free_;  // free-frame stack, capacity num_frames
  uint32_t free_top_ = 0;
  uint32_t in_fill_or_rx_ = 0;   // frames handed to the kernel for RX
  uint32_t outstanding_tx_ = 0;  // frames submitted to TX, not yet completed
  CounterSet<XdpPortCounter, static_cast<size_t>(XdpPortCounter::kCount)> counters_;
};

}  // namespace tripod
