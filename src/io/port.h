// An I/O port moves bursts of packets in and out of the pipeline. AF_XDP is
// the production port (issue 4); the pcap and memory ports feed tests, the
// demo and benchmarks through the very same pipeline code.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "io/frame_pool.h"
#include "io/packet.h"

namespace tripod {

class PcapReader;
class PcapWriter;

class Port : public FrameSource {
 public:
  virtual ~Port() = default;
  // A frame for a packet the pipeline creates; ports that cannot give one
  // (none yet) say no, and the stage counts the packet as not sent.
  bool alloc_frame(Packet* p) override {
    (void)p;
    return false;
  }
  // Receives up to `max` packets into pkts; 0 means nothing (or end of input).
  virtual uint32_t rx_burst(Packet* pkts, uint32_t max) = 0;
  // Transmits n packets and takes their frames back.
  virtual void tx_burst(const Packet* pkts, uint32_t n) = 0;
  // Takes back the frames of dropped packets.
  virtual void release(const Packet* pkts, uint32_t n) = 0;
  // True once an input-driven port (pcap, memory) has nothing left.
  virtual bool exhausted() const { return false; }
  // Sleeps until packets may be ready or timeout_ms passes; true if ready.
  // Input-driven ports never wait.
  virtual bool wait(int timeout_ms) {
    (void)timeout_ms;
    return !exhausted();
  }
  // Eventfds whose readability also ends wait() (which drains them): the
  // cluster agent's news that held packets may go (output commit), other
  // workers' handed packets (handoff.h). At most kMaxWakeFds.
  static constexpr int kMaxWakeFds = 2;
  void add_wake_fd(int fd) {
    if (num_wake_fds_ == kMaxWakeFds) throw std::logic_error("port: too many wake-up fds");
    wake_fds_[num_wake_fds_++] = fd;
  }
  using CounterFn = std::function<void(std::string_view name, uint64_t value)>;
  // The port's own counters (rx, tx, ring drops ...), by name.
  virtual void export_counters(const CounterFn& fn) const { (void)fn; }

 protected:
  int wake_fds_[kMaxWakeFds] = {-1, -1};
  int num_wake_fds_ = 0;
};

// Reads frames from a pcap file; writes transmitted frames to another (or
// discards them when no output path is given).
class PcapPort final : public Port {
 public:
  // Throws std::runtime_error naming the file when it cannot be opened.
  PcapPort(const std::string& in_path, const std::string& out_path);
  ~PcapPort() override;

  uint32_t rx_burst(Packet* pkts, uint32_t max) override;
  void tx_burst(const Packet* pkts, uint32_t n) override;
  void release(const Packet* pkts, uint32_t n) override;
  bool exhausted() const override { return eof_; }
  bool alloc_frame(Packet* p) override { return pool_.alloc(p); }
  uint64_t oversize_drops() const { return oversize_; }

 private:
  FramePool pool_;
  std::unique_ptr<PcapReader> in_;
  std::unique_ptr<PcapWriter> out_;
  bool eof_ = false;
  uint64_t oversize_ = 0;
};

// In-memory port for tests: frames in, frames out.
class MemoryPort final : public Port {
 public:
  explicit MemoryPort(std::vector<std::vector<uint8_t>> input, uint64_t ts_step_ns = 1000);
  uint32_t rx_burst(Packet* pkts, uint32_t max) override;
  void tx_burst(const Packet* pkts, uint32_t n) override;
  void release(const Packet* pkts, uint32_t n) override;
  bool exhausted() const override { return next_ == input_.size(); }
  bool alloc_frame(Packet* p) override { return pool_.alloc(p); }
  const std::vector<std::vector<uint8_t>>& output() const { return output_; }
  // More input after the first (tests of packets held across bursts).
  void feed(std::vector<std::vector<uint8_t>> more) {
    for (auto& f : more)
      input_.push_back(std::move(f));
  }
  uint64_t oversize_drops() const { return oversize_; }

 private:
  FramePool pool_;
  std::vector<std::vector<uint8_t>> input_, output_;
  size_t next_ = 0;
  uint64_t oversize_ = 0;
  uint64_t ts_step_ns_;
};

}  // namespace tripod
