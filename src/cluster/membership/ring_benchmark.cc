// The slot ring: the share of slots whose owner changes when a member leaves
// or joins (next to the ideal 1/N), the balance of slot ownership, the cost
// of rebuilding a slot table, and of one heartbeat through the detector.
// Prints figures cluster.ring_moved.*, cluster.slot_balance.*,
// cluster.slot_table_build.*, cluster.heartbeat_ns.
#include <benchmark/benchmark.h>

#include <algorithm>

#include "cluster/membership/membership.h"
#include "cluster/membership/ring.h"
#include "figures.h"

namespace tripod::cluster {
namespace {

// A fixed cluster key, so the figures are the same on every run.
RingConfig ring_config(uint32_t members) {
  RingConfig c;
  c.key = {0x0123456789abcdefULL, 0xfedcba9876543210ULL};
  c.members = members >= 64 ? ~NodeSet{0} : (NodeSet{1} << members) - 1;
  return c;
}

void set_us_per_iter(benchmark::State& state) {
  state.counters["us"] =
      benchmark::Counter(static_cast<double>(state.iterations()) * 1e-6,
                         benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

// Nodes 1..N live; build the table; report max and mean ownership shares.
void BM_SlotTableBuild(benchmark::State& state) {
  const auto n = static_cast<uint32_t>(state.range(0));
  const Ring ring(ring_config(n));
  SlotTable t;
  for (auto _ : state) {
    ring.build(ring.members(), 1, &t);
    benchmark::DoNotOptimize(&t);
  }
  set_us_per_iter(state);
  uint32_t mx = 0;
  for (NodeId id = 1; id <= n; ++id)
    mx = std::max(mx, t.slots_owned(id));
  state.counters["max_over_mean"] = mx / (static_cast<double>(kSlots) / n);
  state.counters["ideal"] = 1.0;
}
BENCHMARK(BM_SlotTableBuild)->Arg(3)->Arg(16)->Arg(64);

// One of N leaves (the node at N/3 + 1, as the Maglev figure): percentage of
// slots whose owner changed. Equals that node's share, ideally 100/N; the
// other slots keep their owner by construction (ring_test.cc).
void BM_RingMovedRemove(benchmark::State& state) {
  const auto n = static_cast<uint32_t>(state.range(0));
  const Ring ring(ring_config(n));
  const SlotTable before = ring.build(ring.members());
  const NodeId gone = static_cast<NodeId>(n / 3 + 1);
  SlotTable after;
  for (auto _ : state) {
    ring.build(ring.members() & ~node_bit(gone), 2, &after);
    benchmark::DoNotOptimize(&after);
  }
  state.counters["moved_pct"] =
      100.0 * static_cast<double>(changed_slots(before, after, 1).count()) / kSlots;
  state.counters["ideal_pct"] = 100.0 / n;
  set_us_per_iter(state);
}
BENCHMARK(BM_RingMovedRemove)->Arg(3)->Arg(16)->Arg(64);

// Node N+1 joins N: percentage of slots whose owner changed, ideally 100/(N+1).
void BM_RingMovedAdd(benchmark::State& state) {
  const auto n = static_cast<uint32_t>(state.range(0));
  const Ring ring(ring_config(n + 1));
  const NodeSet old_live = ring.members() & ~node_bit(static_cast<NodeId>(n + 1));
  const SlotTable before = ring.build(old_live);
  SlotTable after;
  for (auto _ : state) {
    ring.build(ring.members(), 2, &after);
    benchmark::DoNotOptimize(&after);
  }
  state.counters["moved_pct"] =
      100.0 * static_cast<double>(changed_slots(before, after, 1).count()) / kSlots;
  state.counters["ideal_pct"] = 100.0 / (n + 1);
  set_us_per_iter(state);
}
BENCHMARK(BM_RingMovedAdd)->Arg(3)->Arg(16);

// A steady heartbeat from one of 16 peers (the per-datagram cost).
void BM_Heartbeat(benchmark::State& state) {
  MembershipConfig c;
  c.self = 1;
  c.members = (NodeSet{1} << 16) - 1;
  c.rise = 1;
  Membership m(c);
  uint64_t now = 0;
  for (NodeId id = 2; id <= 16; ++id)
    m.on_heartbeat(id, 1, true, now);
  NodeId id = 2;
  for (auto _ : state) {
    now += 1000;
    benchmark::DoNotOptimize(m.on_heartbeat(id, 1, true, now).size());
    id = id == 16 ? 2 : static_cast<NodeId>(id + 1);
  }
  state.counters["ns"] =
      benchmark::Counter(static_cast<double>(state.iterations()) * 1e-9,
                         benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}
BENCHMARK(BM_Heartbeat);

}  // namespace
}  // namespace tripod::cluster

#define TRIPOD_RING_MOVED_FIGURE(name, run) \
  TRIPOD_FIGURE({name, "%", 2, {{"", run, "moved_pct"}, {"ideal", run, "ideal_pct"}}})
TRIPOD_RING_MOVED_FIGURE("cluster.ring_moved.remove_1_of_3", "BM_RingMovedRemove/3");
TRIPOD_RING_MOVED_FIGURE("cluster.ring_moved.remove_1_of_16", "BM_RingMovedRemove/16");
TRIPOD_RING_MOVED_FIGURE("cluster.ring_moved.remove_1_of_64", "BM_RingMovedRemove/64");
TRIPOD_RING_MOVED_FIGURE("cluster.ring_moved.add_1_to_3", "BM_RingMovedAdd/3");
TRIPOD_RING_MOVED_FIGURE("cluster.ring_moved.add_1_to_16", "BM_RingMovedAdd/16");
#define TRIPOD_SLOT_BALANCE_FIGURE(name, run) \
  TRIPOD_FIGURE({name, "x", 2, {{"", run, "max_over_mean"}, {"ideal", run, "ideal"}}})
TRIPOD_SLOT_BALANCE_FIGURE("cluster.slot_balance.3", "BM_SlotTableBuild/3");
TRIPOD_SLOT_BALANCE_FIGURE("cluster.slot_balance.16", "BM_SlotTableBuild/16");
TRIPOD_SLOT_BALANCE_FIGURE("cluster.slot_balance.64", "BM_SlotTableBuild/64");
TRIPOD_FIGURE({"cluster.slot_table_build.3", "us", 2, {{"", "BM_SlotTableBuild/3", "us"}}});
TRIPOD_FIGURE({"cluster.slot_table_build.16", "us", 2, {{"", "BM_SlotTableBuild/16", "us"}}});
TRIPOD_FIGURE({"cluster.slot_table_build.64", "us", 2, {{"", "BM_SlotTableBuild/64", "us"}}});
TRIPOD_FIGURE({"cluster.heartbeat_ns", "ns", 1, {{"", "BM_Heartbeat", "ns"}}});
