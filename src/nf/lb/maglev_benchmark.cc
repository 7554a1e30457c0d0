// Maglev table rebuild time, the share of entries a pool change moves (next
// to the ideal 1/N), and the cost of select() for a new connection.
// Prints figures lb.maglev_rebuild.*, lb.maglev_moved.*, lb.select_ns*.
#include <benchmark/benchmark.h>

#include <string>
#include <vector>

#include "common/random.h"
#include "figures.h"
#include "nf/lb/lb.h"
#include "nf/lb/maglev.h"
#include "nf/lb/test_backends.h"

namespace tripod {
namespace {

using lb_testing::be;
using lb_testing::pool_of;

void set_ms_per_iter(benchmark::State& state) {
  state.counters["ms"] =
      benchmark::Counter(static_cast<double>(state.iterations()) * 1e-3,
                         benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

void BM_MaglevRebuild(benchmark::State& state) {
  const auto bs = pool_of(static_cast<uint32_t>(state.range(0)));
  const uint32_t m = maglev_table_size(bs.size());
  for (auto _ : state) {
    MaglevTable t = MaglevTable::build(bs, m);
    benchmark::DoNotOptimize(t.entries().data());
  }
  set_ms_per_iter(state);
  state.counters["table_size"] = m;
}
BENCHMARK(BM_MaglevRebuild)->Arg(100)->Arg(1000)->Arg(4096)->Unit(benchmark::kMillisecond);

// Unequal weights (1..4) take the divisor-sequence path with its heap.
void BM_MaglevRebuildWeighted(benchmark::State& state) {
  auto bs = pool_of(static_cast<uint32_t>(state.range(0)));
  for (size_t i = 0; i < bs.size(); ++i)
    bs[i].weight = 1 + static_cast<uint32_t>(i % 4);
  const uint32_t m = maglev_table_size(bs.size());
  for (auto _ : state) {
    MaglevTable t = MaglevTable::build(bs, m);
    benchmark::DoNotOptimize(t.entries().data());
  }
  set_ms_per_iter(state);
}
BENCHMARK(BM_MaglevRebuildWeighted)->Arg(100)->Arg(1000)->Unit(benchmark::kMillisecond);

// Percentage of entries whose backend (by endpoint) differs between the
// tables of `before` and `after`; the rebuild of `after` is what is timed.
void moved_run(benchmark::State& state, const std::vector<Backend>& before,
               const std::vector<Backend>& after, double ideal_pct) {
  const uint32_t m = maglev_table_size(before.size());
  if (maglev_table_size(after.size()) != m) state.SkipWithError("table size changed");
  const MaglevTable ta = MaglevTable::build(before, m);
  MaglevTable tb;
  for (auto _ : state) {
    tb = MaglevTable::build(after, m);
    benchmark::DoNotOptimize(tb.entries().data());
  }
  size_t moved = 0;
  for (size_t i = 0; i < m; ++i)
    moved += !before[ta.entries()[i]].same_endpoint(after[tb.entries()[i]]);
  state.counters["moved_pct"] = 100.0 * static_cast<double>(moved) / m;
  state.counters["ideal_pct"] = ideal_pct;
  set_ms_per_iter(state);
}

void BM_MaglevMovedRemove(benchmark::State& state) {
  const auto n = static_cast<uint32_t>(state.range(0));
  const auto before = pool_of(n);
  auto after = before;
  after.erase(after.begin() + static_cast<long>(n / 3));
  moved_run(state, before, after, 100.0 / static_cast<double>(n));
}
BENCHMARK(BM_MaglevMovedRemove)->Arg(100)->Arg(1000)->Unit(benchmark::kMillisecond);

void BM_MaglevMovedAdd(benchmark::State& state) {
  const auto n = static_cast<uint32_t>(state.range(0));
  const auto before = pool_of(n);
  auto after = before;
  after.insert(after.begin() + static_cast<long>(n / 2), be(50000));
  moved_run(state, before, after, 100.0 / static_cast<double>(n + 1));
}
BENCHMARK(BM_MaglevMovedAdd)->Arg(100)->Arg(1000)->Unit(benchmark::kMillisecond);

// Lb::select() for a new connection, counters included, over random hashes
// (the table of 100 backends is 128 KB, of 1000 200 KB: L2-resident).
void BM_MaglevSelect(benchmark::State& state) {
  Lb lb;
  VipKey key;
  key.addr = IpAddress::parse("192.0.2.1");
  key.proto = kProtoTcp;
  key.port = 80;
  const VipId vip = lb.add_vip(key);
  lb.commit(vip, lb.prepare(vip, PoolSpec{pool_of(static_cast<uint32_t>(state.range(0)))}));
  SplitMix64 rng(5);
  std::vector<uint64_t> hashes(4096);
  for (auto& h : hashes)
    h = rng.next();
  size_t i = 0;
  for (auto _ : state) {
    const Selection s = lb.select(vip, hashes[i++ & 4095]);
    benchmark::DoNotOptimize(s.backend);
  }
  state.counters["ns"] =
      benchmark::Counter(static_cast<double>(state.iterations()) * 1e-9,
                         benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}
BENCHMARK(BM_MaglevSelect)->Arg(100)->Arg(1000);

}  // namespace
}  // namespace tripod

TRIPOD_FIGURE({"lb.maglev_rebuild.100", "ms", 2, {{"", "BM_MaglevRebuild/100", "ms"}}});
TRIPOD_FIGURE({"lb.maglev_rebuild.1000", "ms", 2, {{"", "BM_MaglevRebuild/1000", "ms"}}});
TRIPOD_FIGURE(
    {"lb.maglev_rebuild.weighted_1000", "ms", 2, {{"", "BM_MaglevRebuildWeighted/1000", "ms"}}});
#define TRIPOD_MOVED_FIGURE(name, run) \
  TRIPOD_FIGURE({name, "%", 2, {{"", run, "moved_pct"}, {"ideal", run, "ideal_pct"}}})
TRIPOD_MOVED_FIGURE("lb.maglev_moved.remove_1_of_100", "BM_MaglevMovedRemove/100");
TRIPOD_MOVED_FIGURE("lb.maglev_moved.add_1_to_100", "BM_MaglevMovedAdd/100");
TRIPOD_MOVED_FIGURE("lb.maglev_moved.remove_1_of_1000", "BM_MaglevMovedRemove/1000");
TRIPOD_MOVED_FIGURE("lb.maglev_moved.add_1_to_1000", "BM_MaglevMovedAdd/1000");
TRIPOD_FIGURE({"lb.select_ns", "ns", 1, {{"", "BM_MaglevSelect/100", "ns"}}});
TRIPOD_FIGURE({"lb.select_ns.1000", "ns", 1, {{"", "BM_MaglevSelect/1000", "ns"}}});
