// Cost of the flow-key hash, next to the alternatives considered: libsodium's
// SipHash-2-4 (same PRF, more rounds, not inlined), XXH3 with a random secret
// (fast, but not a PRF: no guarantee against chosen-input bucket collisions)
// and absl::Hash (unkeyed per key). Prints figure hash.flowkey_v4/_v6.
#include <benchmark/benchmark.h>
#include <sodium.h>
#include <xxhash.h>

#include <string_view>
#include <vector>

#include "absl/hash/hash.h"
#include "common/random.h"
#include "figures.h"
#include "packet/flow_key.h"

namespace tripod {
namespace {

std::vector<FlowKey> keys(Family f) {
  SplitMix64 rng(9);
  std::vector<FlowKey> v;
  for (int i = 0; i < 1024; ++i) {
    uint8_t a[16], b[16];
    for (auto& x : a)
      x = static_cast<uint8_t>(rng.next());
    for (auto& x : b)
      x = static_cast<uint8_t>(rng.next());
    v.push_back(make_flow_key(f, kProtoTcp, a, b, static_cast<uint16_t>(rng.next()),
                              static_cast<uint16_t>(rng.next()), true));
  }
  return v;
}

template <typename F>
void run(benchmark::State& state, Family fam, F&& hash) {
  const auto ks = keys(fam);
  size_t i = 0;
  uint64_t acc = 0;
  for (auto _ : state) {
    acc += hash(ks[i++ & 1023]);
  }
  benchmark::DoNotOptimize(acc);
  state.counters["ns_per_key"] =
      benchmark::Counter(static_cast<double>(state.iterations()) * 1e-9,
                         benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

Family fam(const benchmark::State& s) {
  return s.range(0) == 6 ? Family::kIpv6 : Family::kIpv4;
}

void BM_HashSip13(benchmark::State& state) {
  SipKey k;
  secure_random_bytes(&k, sizeof k);
  run(state, fam(state), [&](const FlowKey& key) { return hash_flow_key(key, k); });
}
void BM_HashSodiumSip24(benchmark::State& state) {
  if (sodium_init() < 0) state.SkipWithError("sodium_init failed");
  unsigned char k[crypto_shorthash_KEYBYTES];
  randombytes_buf(k, sizeof k);
  run(state, fam(state), [&](const FlowKey& key) {
    uint64_t out;
    crypto_shorthash(reinterpret_cast<unsigned char*>(&out),
                     reinterpret_cast<const unsigned char*>(&key), key.hashed_len(), k);
    return out;
  });
}
void BM_HashXxh3Secret(benchmark::State& state) {
  std::vector<uint8_t> secret(XXH3_SECRET_SIZE_MIN * 2);
  secure_random_bytes(secret.data(), secret.size());
  run(state, fam(state), [&](const FlowKey& key) {
    return XXH3_64bits_withSecret(&key, key.hashed_len(), secret.data(), secret.size());
  });
}
void BM_HashAbsl(benchmark::State& state) {
  run(state, fam(state), [](const FlowKey& key) {
    return absl::Hash<std::string_view>{}(
        std::string_view(reinterpret_cast<const char*>(&key), key.hashed_len()));
  });
}
BENCHMARK(BM_HashSip13)->Arg(4)->Arg(6);
BENCHMARK(BM_HashSodiumSip24)->Arg(4)->Arg(6);
BENCHMARK(BM_HashXxh3Secret)->Arg(4)->Arg(6);
BENCHMARK(BM_HashAbsl)->Arg(4)->Arg(6);

#define TRIPOD_HASH_FIGURE(name, arg)                                               \
  TRIPOD_FIGURE({name,                                                              \
                 "ns",                                                              \
                 2,                                                                 \
                 {{"", "BM_HashSip13/" arg, "ns_per_key"},                          \
                  {"libsodium_siphash24", "BM_HashSodiumSip24/" arg, "ns_per_key"}, \
                  {"xxh3_secret", "BM_HashXxh3Secret/" arg, "ns_per_key"},          \
                  {"absl::Hash", "BM_HashAbsl/" arg, "ns_per_key"}}})
TRIPOD_HASH_FIGURE("hash.flowkey_v4", "4");
TRIPOD_HASH_FIGURE("hash.flowkey_v6", "6");

}  // namespace
}  // namespace tripod
