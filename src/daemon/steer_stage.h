// Steering between the workers of a node (pipeline/handoff.h): right after
// parsing, a packet whose flow belongs to another worker (its slot, modulo
// the workers, GatewayStage::packet_slot()) leaves the burst for that
// worker. Packets handed in or parked were steered already and stay.
#pragma once

#include <cstdint>

#include "nf/gateway/gateway_stage.h"
#include "pipeline/burst.h"

namespace tripod {

class SteerStage final : public Stage {
 public:
  // `gateway` is this worker's (read only, on the worker thread).
  SteerStage(const GatewayStage& gateway, uint32_t self, uint32_t workers)
      : gw_(gateway), self_(self), workers_(workers) {}
  const char* name() const override { return "steer"; }
  void process(Burst& b) override {
    for (uint32_t i = b.first_rx; i < b.n; ++i) {
      if (b.verdict[i] != Verdict::kForward) continue;
      const uint32_t slot = gw_.packet_slot(b, i);
      if (slot == GatewayStage::kNoSlot) continue;
      const uint32_t owner = slot % workers_;
      if (owner == self_) {
        ++kept_;
        continue;
      }
      b.verdict[i] = Verdict::kHandOff;
      b.hold_tag[i] = static_cast<uint16_t>(owner);
      ++handed_;
    }
  }
  void export_counters(const CounterFn& fn) const override {
    fn("kept", kept_);
    fn("handed", handed_);
  }

 private:
  const GatewayStage& gw_;
  uint32_t self_;
  uint32_t workers_;
  uint64_t kept_ = 0;
  uint64_t handed_ = 0;
};

}  // namespace tripod
