// The last stage of a worker: the Ethernet header the kernel would write on
// each forwarded packet (route and neighbour from the kernel's tables, read
// through a NextHopTable snapshot), or the kernel itself when we cannot:
//   L2Action::kRoute   -> resolve the destination: source MAC of the egress
//                         link, destination MAC of the next hop;
//   L2Action::kKeepDst -> DSR chose the destination MAC: source MAC only;
//   L2Action::kAsIs    -> a reply on its own segment (MACs swapped): as is.
// A missing neighbour, or an egress link that is not this worker's port,
// hands the IP packet to the kernel (KernelSlowPath), which resolves and
// sends it: never a silent drop (route/README.md). No route: counted drop.
#pragma once

#include <cstdint>

#include "common/counters.h"
#include "pipeline/burst.h"
#include "route/kernel_slow_path.h"
#include "route/next_hop_table.h"
#include "route/snapshot_rcu.h"

namespace tripod {

#define TRIPOD_L2_COUNTERS(X)                                                                    \
  X(kRouted, "routed")                                                                           \
  X(kSourceOnly, "source_mac_only")                                                              \
  X(kAsIs, "as_is")                                                                              \
  X(kSlowPathNoNeighbor, "slow_path_no_neighbor")                                                \
  X(kSlowPathOtherLink, "slow_path_other_link") /* egress is not our interface */                \
  X(kSlowPathFailed, "slow_path_failed")        /* the kernel refused it */                      \
  X(kSlowPathHeld, "slow_path_held")            /* output commit: left before its state's ack */ \
  X(kDropNoRoute, "drop_no_route")                                                               \
  X(kDropNoSnapshot, "drop_no_snapshot")                                                         \
  X(kDropNotIp, "drop_not_ip")

TRIPOD_DECLARE_REASONS(L2Counter, TRIPOD_L2_COUNTERS)

class L2Stage final : public Stage {
 public:
  using Reader = route::SnapshotDomain<route::NextHopTable>::Reader;

  // `ifindex`: the interface this worker's port transmits on.
  L2Stage(Reader reader, uint32_t ifindex, route::KernelSlowPath* slow_path)
      : reader_(reader), ifindex_(ifindex), slow_(slow_path) {}

  const char* name() const override { return "l2"; }
  void process(Burst& b) override;
  void export_counters(const CounterFn& fn) const override;

  // Around blocking waits: a worker asleep must not hold up snapshot frees.
  void offline() { reader_.offline(); }
  void online() { reader_.online(); }

 private:
  bool slow_path(Burst& b, uint32_t i, L2Counter why);

  Reader reader_;
  uint32_t ifindex_;
  route::KernelSlowPath* slow_;
  CounterSet<L2Counter, size_t(L2Counter::kCount)> counters_;
};

}  // namespace tripod
