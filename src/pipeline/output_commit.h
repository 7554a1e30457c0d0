// Output commit (Pico Replication, issue 5's `sync` mode): a packet whose
// flow has state the holders have not acknowledged yet waits in the worker's
// HoldQueue until they have, so that no packet leaves before the state it
// depends on is safe on another node.
//
// State travels in numbered batches (one per export of the dirty flows,
// cluster/agent FlowLink). A held packet carries the batch that carries its
// flow's latest change (its tag); it leaves once that batch is acknowledged.
// Tags are 16 bits and compared within the window of batches not yet
// acknowledged (committed, open], which is short (a few batches), so a flow
// idle for minutes cannot look unacknowledged by wrap-around except by a
// 1-in-65536 coincidence, and then it waits one batch more (never less).
#pragma once

#include <cstdint>
#include <memory>

#include "io/packet.h"
#include "io/port.h"

namespace tripod {

struct CommitPoint {
  uint16_t open = 1;       // the batch being filled: the next export carries it
  uint16_t committed = 0;  // every batch up to this one is acknowledged
  // Whether state exported in batch `tag` (or queued for `open`) still waits.
  bool waits(uint16_t tag) const {
    const uint16_t d = static_cast<uint16_t>(tag - committed);
    return d != 0 && d <= static_cast<uint16_t>(open - committed);
  }
};

// Held packets, fixed capacity, in arrival order. Released by scanning (a
// flow's tags never decrease, so its packets leave in order).
class HoldQueue {
 public:
  explicit HoldQueue(uint32_t capacity)
      : cap_(capacity), pkts_(new Packet[capacity]), tags_(new uint16_t[capacity]) {}

  bool empty() const { return n_ == 0; }
  uint32_t size() const { return n_; }
  uint32_t capacity() const { return cap_; }
  // False when full (the caller drops the packet and counts it).
  bool push(const Packet& p, uint16_t tag, uint64_t now_ns) {
    if (n_ == cap_) return false;
    pkts_[n_] = p;
    pkts_[n_].ts_ns = now_ns;
    tags_[n_++] = tag;
    return true;
  }
  // Transmits what no longer waits, and what has waited longer than
  // max_wait_ns (counted in *expired: a holder that never answers must not
  // hold a flow forever; its death releases the wait long before). At most
  // kMaxRelease per call (the TX ring's room): the rest, in order, next
  // time. Returns the packets sent. ts_ns of a held packet is when it was
  // held. Cheap when nothing changed: no scan.
  static constexpr uint32_t kMaxRelease = 256;
  uint32_t release(const CommitPoint& c, uint64_t now_ns, uint64_t max_wait_ns, Port& port,
                   uint64_t* expired) {
    if (n_ == 0) return 0;
    if (!more_ && c.committed == scanned_ && now_ns - pkts_[0].ts_ns <= max_wait_ns) return 0;
    scanned_ = c.committed;
    more_ = false;
    Packet out[kBurstSize];
    uint32_t n_out = 0, kept = 0, sent = 0;
    for (uint32_t i = 0; i < n_; ++i) {
      const bool late = now_ns - pkts_[i].ts_ns > max_wait_ns;
      if (sent + n_out == kMaxRelease || (c.waits(tags_[i]) && !late)) {
        more_ |= sent + n_out == kMaxRelease;
        pkts_[kept] = pkts_[i];
        tags_[kept++] = tags_[i];
        continue;
      }
      *expired += late && c.waits(tags_[i]);
      out[n_out++] = pkts_[i];
      if (n_out == kBurstSize) {
        port.tx_burst(out, n_out);
        sent += n_out;
        n_out = 0;
      }
    }
    if (n_out > 0) port.tx_burst(out, n_out);
    n_ = kept;
    return sent + n_out;
  }
  // Gives every held frame back to the port (shutdown).
  void drop_all(Port& port) {
    for (uint32_t i = 0; i < n_; ++i)
      port.release(&pkts_[i], 1);
    n_ = 0;
  }

 private:
  uint32_t cap_;
  uint32_t n_ = 0;
  uint16_t scanned_ = 0;  // the commit point's `committed` at the last scan
  bool more_ = false;     // the last scan stopped at kMaxRelease
  std::unique_ptr<Packet[]> pkts_;
  std::unique_ptr<uint16_t[]> tags_;
};

}  // namespace tripod
