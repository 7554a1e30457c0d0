// Connection table vs absl::flat_hash_map and std::unordered_map holding the
// same 40-byte flow keys and 64-byte values, at 1M and 10M live entries.
//
// - insert: build the whole structure (peers get reserve(N), as ours is
//   sized at creation). Only the inserts are timed. Ours faults all of its
//   memory in at creation, as a data plane must; the peers' slots are faulted
//   in by the inserts, which their design cannot avoid, so their insert
//   figures include those page faults. Ours inserts as the
//   flow stage does: bulk lookup of a burst, then insert of its misses; peers
//   use emplace. Memory is the malloc-visible delta (mallinfo2) of the build,
//   everything counted, for all three alike.
// - lookup (hits) / miss: bursts of 32 random keys from a pre-gathered query
//   stream, hashing included (ours: keyed SipHash-1-3; peers: absl::Hash,
//   which is faster and unkeyed), one word of the value read per hit.
#include <benchmark/benchmark.h>
#include <malloc.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <memory>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/hash/hash.h"
#include "common/random.h"
#include "figures.h"
#include "packet/flow_key.h"
#include "table/conn_table.h"

namespace tripod {
namespace {

struct Value64 {
  uint64_t w[8];
};
static_assert(sizeof(Value64) == 64);

struct PeerHash {
  size_t operator()(const FlowKey& k) const {
    return absl::Hash<std::string_view>{}(
        std::string_view(reinterpret_cast<const char*>(&k), sizeof k));
  }
};

using Ours = ConnTable<FlowKey, Value64>;
using Absl = absl::flat_hash_map<FlowKey, Value64, PeerHash>;
using Std = std::unordered_map<FlowKey, Value64, PeerHash>;

constexpr uint32_t kBurst = 32;
constexpr size_t kQueries = 1 << 20;
const SipKey kKey{0x5eed5eed5eed5eedULL, 0x1234567812345678ULL};

// A realistic mix: three IPv4 flows for each IPv6 flow, random endpoints.
FlowKey random_key(SplitMix64& rng) {
  uint8_t src[16], dst[16];
  for (int i = 0; i < 16; i += 8) {
    const uint64_t a = rng.next(), b = rng.next();
    std::memcpy(src + i, &a, 8);
    std::memcpy(dst + i, &b, 8);
  }
  const Family f = rng.below(4) == 0 ? Family::kIpv6 : Family::kIpv4;
  return make_flow_key(f, kProtoTcp, src, dst, static_cast<uint16_t>(rng.next()),
                       static_cast<uint16_t>(rng.next()), true);
}

struct Dataset {
  std::vector<FlowKey> live, hit_queries, miss_queries;
};
const Dataset& dataset(size_t n) {
  static std::map<size_t, std::unique_ptr<Dataset>> sets;
  auto& d = sets[n];
  if (!d) {
    d = std::make_unique<Dataset>();
    SplitMix64 rng(n);
    d->live.reserve(n);
    for (size_t i = 0; i < n; ++i)
      d->live.push_back(random_key(rng));
    SplitMix64 other(n ^ 0xabcdef);
    for (size_t i = 0; i < kQueries; ++i) {
      d->hit_queries.push_back(d->live[rng.below(n)]);
      d->miss_queries.push_back(random_key(other));  // 2^-128 chance of a hit
    }
  }
  return *d;
}

size_t heap_in_use() {
  const struct mallinfo2 m = mallinfo2();
  return m.uordblks + m.hblkhd;
}

// The structures built by the insert benchmarks, kept for the lookups.
template <typename T>
std::map<size_t, std::unique_ptr<T>>& built() {
  static std::map<size_t, std::unique_ptr<T>> m;
  return m;
}

// An empty structure sized for n entries (ours: capacity; peers: reserve).
template <typename T>
std::unique_ptr<T> make_empty(size_t n) {
  if constexpr (std::is_same_v<T, Ours>) {
    ConnTableConfig c;
    c.capacity = static_cast<uint32_t>(n);
    return std::make_unique<Ours>(c);
  } else {
    auto t = std::make_unique<T>();
    t->reserve(n);
    return t;
  }
}

template <typename T>
void fill(T& t, const Dataset& d) {
  const size_t n = d.live.size();
  if constexpr (std::is_same_v<T, Ours>) {
    // As the flow stage does it: a burst is looked up in bulk (which fetches
    // both buckets of a missing key), then the misses are inserted.
    uint64_t hashes[kBurst];
    Ours::Ref refs[kBurst];
    for (size_t base = 0; base < n; base += kBurst) {
      const auto m = static_cast<uint32_t>(std::min<size_t>(kBurst, n - base));
      t.hash_lookup_bulk(
          &d.live[base], m, [](const FlowKey& k) { return hash_flow_key(k, kKey); }, hashes, refs);
      for (uint32_t i = 0; i < m; ++i) {
        if (refs[i].found()) std::abort();
        auto r = t.insert(d.live[base + i], hashes[i], 1000);
        if (r.status != InsertStatus::kInserted) std::abort();
        t.value(r.ref.idx).w[0] = base + i;
      }
    }
  } else {
    for (size_t i = 0; i < n; ++i)
      t.emplace(d.live[i], Value64{{i}});
  }
}

template <typename T>
std::unique_ptr<T> build(const Dataset& d) {
  auto t = make_empty<T>(d.live.size());
  fill(*t, d);
  return t;
}

template <typename T>
void BM_Insert(benchmark::State& state) {
  const size_t n = static_cast<size_t>(state.range(0));
  const Dataset& d = dataset(n);
  built<T>().erase(n);
  size_t bytes = 0;
  for (auto _ : state) {
    // Only the inserts are timed, not the allocation of the empty structure.
    state.PauseTiming();
    const size_t before = heap_in_use();
    auto t = make_empty<T>(n);
    state.ResumeTiming();
    fill(*t, d);
    state.PauseTiming();
    bytes = heap_in_use() - before;
    built<T>()[n] = std::move(t);
    state.ResumeTiming();
  }
  const double raw = static_cast<double>(n) * (sizeof(FlowKey) + sizeof(Value64));
  state.counters["Mops"] =
      benchmark::Counter(static_cast<double>(n) * 1e-6, benchmark::Counter::kIsRate);
  state.counters["bytes_per_entry"] = static_cast<double>(bytes) / static_cast<double>(n);
  state.counters["overhead_pct"] = (static_cast<double>(bytes) - raw) / raw * 100.0;
  if constexpr (std::is_same_v<T, Ours>) {
    state.counters["cuckoo_moves"] =
        static_cast<double>(built<T>()[n]->counters().get(ConnTableCounter::kCuckooMoves));
  }
}

template <typename T>
T& get_built(size_t n) {
  auto& m = built<T>();
  if (!m[n]) m[n] = build<T>(dataset(n));
  return *m[n];
}

template <typename T>
void BM_Lookup(benchmark::State& state) {
  const size_t n = static_cast<size_t>(state.range(0));
  const bool hits = state.range(1) == 1;
  const Dataset& d = dataset(n);
  const std::vector<FlowKey>& q = hits ? d.hit_queries : d.miss_queries;
  T& t = get_built<T>(n);
  size_t pos = 0;
  uint64_t found = 0, sum = 0;
  for (auto _ : state) {
    const FlowKey* keys = &q[pos];
    pos = (pos + kBurst) % kQueries;
    if constexpr (std::is_same_v<T, Ours>) {
      uint64_t hashes[kBurst];
      Ours::Ref refs[kBurst];
      t.hash_lookup_bulk(
          keys, kBurst, [](const FlowKey& k) { return hash_flow_key(k, kKey); }, hashes, refs);
      for (uint32_t i = 0; i < kBurst; ++i) {
        if (refs[i].found()) {
          ++found;
          sum += t.value(refs[i].idx).w[0];
        }
      }
    } else {
      for (uint32_t i = 0; i < kBurst; ++i) {
        auto it = t.find(keys[i]);
        if (it != t.end()) {
          ++found;
          sum += it->second.w[0];
        }
      }
    }
  }
  benchmark::DoNotOptimize(sum);
  const double lookups = static_cast<double>(state.iterations()) * kBurst;
  if (static_cast<double>(found) != (hits ? lookups : 0.0)) state.SkipWithError("wrong hit count");
  state.counters["Mops"] = benchmark::Counter(lookups * 1e-6, benchmark::Counter::kIsRate);
}

#define TRIPOD_TABLE_BENCH(T)          \
  BENCHMARK_TEMPLATE(BM_Insert, T)     \
      ->Arg(1'000'000)                 \
      ->Arg(10'000'000)                \
      ->Iterations(1)                  \
      ->Unit(benchmark::kMillisecond); \
  BENCHMARK_TEMPLATE(BM_Lookup, T)     \
      ->Args({1'000'000, 1})           \
      ->Args({1'000'000, 0})           \
      ->Args({10'000'000, 1})          \
      ->Args({10'000'000, 0})          \
      ->MinTime(1.0)
TRIPOD_TABLE_BENCH(Ours);
TRIPOD_TABLE_BENCH(Absl);
TRIPOD_TABLE_BENCH(Std);

#define TRIPOD_RUN(kind, T, args) #kind "<" #T ">/" args
#define TRIPOD_TABLE_FIGURE(fig, kind, args, counter, unit)                       \
  TRIPOD_FIGURE({fig,                                                             \
                 unit,                                                            \
                 1,                                                               \
                 {{"", TRIPOD_RUN(kind, Ours, args), counter},                    \
                  {"absl::flat_hash_map", TRIPOD_RUN(kind, Absl, args), counter}, \
                  {"std::unordered_map", TRIPOD_RUN(kind, Std, args), counter}}})
TRIPOD_TABLE_FIGURE("conntable.lookup.10M", BM_Lookup, "10000000/1/min_time:1.000", "Mops", "Mops");
TRIPOD_TABLE_FIGURE("conntable.lookup.1M", BM_Lookup, "1000000/1/min_time:1.000", "Mops", "Mops");
TRIPOD_TABLE_FIGURE("conntable.miss.10M", BM_Lookup, "10000000/0/min_time:1.000", "Mops", "Mops");
TRIPOD_TABLE_FIGURE("conntable.miss.1M", BM_Lookup, "1000000/0/min_time:1.000", "Mops", "Mops");
TRIPOD_TABLE_FIGURE("conntable.insert.10M", BM_Insert, "10000000/iterations:1", "Mops", "Mops");
TRIPOD_TABLE_FIGURE("conntable.insert.1M", BM_Insert, "1000000/iterations:1", "Mops", "Mops");
TRIPOD_TABLE_FIGURE("conntable.overhead.10M", BM_Insert, "10000000/iterations:1", "overhead_pct",
                    "%");
TRIPOD_TABLE_FIGURE("conntable.overhead.1M", BM_Insert, "1000000/iterations:1", "overhead_pct",
                    "%");
TRIPOD_TABLE_FIGURE("conntable.bytes_per_entry.10M", BM_Insert, "10000000/iterations:1",
                    "bytes_per_entry", "B");

}  // namespace
}  // namespace tripod
