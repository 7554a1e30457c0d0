// A packet as the data plane sees it: a frame in a pool-owned buffer (a UMEM
// frame under AF_XDP) with headroom before it, so encapsulation can prepend
// headers without copying or allocating.
#pragma once

#include <cstdint>

namespace tripod {

inline constexpr uint32_t kBurstSize = 32;  // DESIGN.md §3: bursts of 32-64 packets
inline constexpr uint32_t kFrameSize = 2048;
inline constexpr uint32_t kHeadroom = 256;
inline constexpr uint32_t kMaxFrameLen = kFrameSize - kHeadroom;

struct Packet {
  uint8_t* data = nullptr;  // first byte of the Ethernet header
  uint32_t len = 0;         // bytes from data
  uint32_t frame = 0;       // index of the owning frame in its pool
  uint64_t ts_ns = 0;       // receive time
};

// Where a stage gets a frame for a packet it adds to a burst (a SYN proxy
// window update, the resets of a killed backend): the port's own pool, so
// the frame is transmitted and reclaimed like a received one.
class FrameSource {
 public:
  // False when no frame is free (the caller counts it).
  virtual bool alloc_frame(Packet* p) = 0;

 protected:
  ~FrameSource() = default;
};

}  // namespace tripod
