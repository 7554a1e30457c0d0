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

enum class Verdict : uint8_t { kForward, kDrop };

struct Burst {
  uint32_t n = 0;
  uint64_t now_ns = 0;  // read once per burst from the injected clock
  Packet pkts[kBurstSize];
  PacketMeta meta[kBurstSize];
  Verdict verdict[kBurstSize];
  FlowKey key[kBurstSize];
  uint64_t hash[kBurstSize];  // keyed hash of key[], set by the first table stage
  bool reversed[kBurstSize];  // packet runs b -> a of its canonical key
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
