// The unit of work of the data plane: a burst of packets with what each stage
// learned about them. Stages fill and read the arrays by index; a dropped
// packet keeps its slot with verdict kDrop so indices stay stable.
#pragma once

#include <cstdint>
#include <functional>
#include <string_view>

#include "io/packet.h"
#include "packet/flow_key.h"
#include "packet/packet_meta.h"

namespace tripod {

// kPark: a stage waits for something before it can decide (a flow's state
// from a peer); the pipeline keeps the packet and runs it through the stages
// again later (Pipeline::unpark()). Later stages skip it like a drop.
// kHandOff: another worker of the node owns the packet's flow (hold_tag[i]
// names it); the pipeline copies the packet to it (handoff.h).
enum class Verdict : uint8_t { kForward, kDrop, kPark, kHandOff };

// What the L2 (next hop) stage does with a forwarded packet's Ethernet
// header.
enum class L2Action : uint8_t {
  kRoute,    // route the destination IP: source MAC and next hop's MAC (default)
  kKeepDst,  // a stage chose the destination MAC (DSR): set the source MAC only
  kAsIs,     // a reply on the segment it came from (MACs swapped): leave it
};

//
// A stage may append packets it creates (append()): up to kBurstSize of them
// per burst, after the received ones. Later stages see them like any other
// packet; the stage that appended them skips them (it knows its input count).
// Local per-burst arrays of a stage are therefore sized kCapacity.
struct Burst {
  static constexpr uint32_t kCapacity = 2 * kBurstSize;

  uint32_t n = 0;
  // Packets before this one were steered already: parked ones run again,
  // and packets other workers handed over (a stage that steers skips them).
  uint32_t first_rx = 0;
  // Packets in [parsed_from, parsed_to) come parsed (meta, key, reversed):
  // handed over, with the sender's parse of the same bytes.
  uint32_t parsed_from = 0;
  uint32_t parsed_to = 0;
  uint64_t now_ns = 0;            // read once per burst from the injected clock
  FrameSource* frames = nullptr;  // for append(); set by the pipeline
  Packet pkts[kCapacity];
  PacketMeta meta[kCapacity];
  Verdict verdict[kCapacity];
  FlowKey key[kCapacity];
  uint64_t hash[kCapacity];  // keyed hash of key[], set by the first table stage
  bool reversed[kCapacity];  // packet runs b -> a of its canonical key
  L2Action l2[kCapacity];    // reset to kRoute for every received packet
  // Output commit (output_commit.h): a forwarded packet with held[i] waits
  // until batch hold_tag[i] is acknowledged. Reset for every packet. A
  // parked packet's hold_tag[i] is what it waits for (the stage's tag); a
  // packet handed off, the worker it goes to.
  bool held[kCapacity];
  uint16_t hold_tag[kCapacity];

  // A new packet slot with a fresh frame (verdict kForward, len 0), or -1
  // when the burst is full or the port has no free frame: the caller fills
  // data, len and meta, or counts the packet as not sent.
  int append(uint64_t ts_ns) {
    if (n == kCapacity || frames == nullptr || !frames->alloc_frame(&pkts[n])) return -1;
    pkts[n].ts_ns = ts_ns;
    verdict[n] = Verdict::kForward;
    reversed[n] = false;
    l2[n] = L2Action::kRoute;
    held[n] = false;
    hash[n] = 0;
    return static_cast<int>(n++);
  }
};

// A stage of the pipeline (firewall, SYN proxy, LB, NAT ... and for now the
// parse and flow-tracking stages). Stages see the whole burst so they can
// prefetch ahead; they skip packets already dropped.
class Stage {
 public:
  using CounterFn = std::function<void(std::string_view name, uint64_t value)>;
  virtual ~Stage() = default;
  virtual const char* name() const = 0;
  virtual void process(Burst& burst) = 0;
  // Reports every counter (control plane: status, metrics).
  virtual void export_counters(const CounterFn& fn) const = 0;
};

}  // namespace tripod
