#include "nf/lb/maglev.h"

#include <algorithm>
#include <bit>
#include <stdexcept>
#include <string>

#include "common/siphash.h"

namespace tripod {
namespace {

// Fixed (not per-process) keys: every node must derive the same permutations
// from the same pool. Backend addresses are operator configuration, not
// attacker input, so a public key costs nothing here.
constexpr SipKey kOffsetKey{0x6d61676c65762d6fULL, 0x66667365742d6b31ULL};
constexpr SipKey kSkipKey{0x6d61676c65762d73ULL, 0x6b69702d6b65792dULL};

uint64_t hash_endpoint(const Backend& b, const SipKey& key) {
  uint8_t buf[19];
  std::memcpy(buf, b.addr.bytes, 16);
  buf[16] = static_cast<uint8_t>(b.addr.family);
  buf[17] = static_cast<uint8_t>(b.port >> 8);
  buf[18] = static_cast<uint8_t>(b.port);
  return siphash13(key, buf, sizeof buf);
}

}  // namespace

bool is_prime(uint32_t n) {
  if (n < 2) return false;
  if (n % 2 == 0) return n == 2;
  for (uint32_t d = 3; static_cast<uint64_t>(d) * d <= n; d += 2)
    if (n % d == 0) return false;
  return true;
}

uint32_t maglev_table_size(size_t n_backends, uint32_t min_table_size) {
  if (min_table_size < kMaglevMinTableSize)
    throw std::invalid_argument("Maglev table size floor " + std::to_string(min_table_size) +
                                " is below the minimum " + std::to_string(kMaglevMinTableSize));
  if (n_backends > kMaxBackends)
    throw std::invalid_argument("pool of " + std::to_string(n_backends) +
                                " backends exceeds the limit of " + std::to_string(kMaxBackends));
  const uint64_t rounded = std::bit_ceil(std::max<uint64_t>(n_backends, 1));
  uint64_t m = std::max<uint64_t>(rounded * kMaglevSlotsPerBackend, min_table_size);
  while (m <= kMaglevMaxTableSize && !is_prime(static_cast<uint32_t>(m)))
    ++m;
  if (m > kMaglevMaxTableSize)
    throw std::invalid_argument("Maglev table size floor " + std::to_string(min_table_size) +
                                " exceeds the maximum " + std::to_string(kMaglevMaxTableSize));
  return static_cast<uint32_t>(m);
}

MaglevPermutation maglev_permutation(const Backend& b, uint32_t table_size) {
  return MaglevPermutation{
      static_cast<uint32_t>(hash_endpoint(b, kOffsetKey) % table_size),
      static_cast<uint32_t>(hash_endpoint(b, kSkipKey) % (table_size - 1)) + 1};
}

MaglevTable MaglevTable::build(std::span<const Backend> backends, uint32_t table_size) {
  if (!is_prime(table_size) || table_size < 3)
    throw std::invalid_argument("Maglev table size " + std::to_string(table_size) +
                                " is not a prime >= 3");
  if (backends.size() > kMaxBackends)
    throw std::invalid_argument("pool of " + std::to_string(backends.size()) +
                                " backends exceeds the limit of " + std::to_string(kMaxBackends));
  MaglevTable t;
  t.size_ = table_size;
  const size_t n = backends.size();
  std::vector<uint32_t> next(n), skip(n);
  std::vector<uint16_t> heap;  // backends with a weight
  for (size_t i = 0; i < n; ++i) {
    const MaglevPermutation p = maglev_permutation(backends[i], table_size);
    next[i] = p.offset;
    skip[i] = p.skip;
    if (backends[i].weight > 0) heap.push_back(static_cast<uint16_t>(i));
  }
  if (heap.empty()) return t;  // every backend drained: no table

  t.entries_.assign(table_size, kEmpty);
  uint16_t* e = t.entries_.data();
  uint32_t filled = 0;
  // Backend i claims its next preferred free slot; true once the table is
  // full. A permutation visits every slot and the table is not full, so the
  // walk ends.
  auto claim = [&](uint16_t i) {
    uint32_t c = next[i];
    while (e[c] != kEmpty) {
      c += skip[i];
      if (c >= table_size) c -= table_size;
    }
    e[c] = i;
    c += skip[i];
    next[i] = c >= table_size ? c - table_size : c;
    return ++filled == table_size;
  };

  // Turn k of backend i happens at (2k+1)/w_i; compared by cross-multiplying
  // (< 2^25 * 2^16, no overflow). std heaps put the *largest* on top, so
  // `later(a, b)` says a's next turn comes after b's.
  std::vector<uint32_t> turns(n, 0);
  auto later = [&](uint16_t a, uint16_t b) {
    const uint64_t ta = (2 * uint64_t{turns[a]} + 1) * backends[b].weight;
    const uint64_t tb = (2 * uint64_t{turns[b]} + 1) * backends[a].weight;
    return ta != tb ? ta > tb : a > b;
  };
  // The sequence is periodic: by "time" 2 every backend has had exactly w_i
  // turns (2k+1 = 2w_i has no solution, so no turn sits on the boundary), and
  // the order then repeats shifted by 2. So one period of W = sum(w) turns
  // (at most M) comes from the heap and is replayed: the heap costs
  // O(min(W, M) log N) instead of O(M log N), and equal weights give the
  // paper's round robin over N turns.
  uint64_t period = 0;
  for (uint16_t i : heap)
    period += backends[i].weight;
  const auto period_turns = static_cast<size_t>(std::min<uint64_t>(period, table_size));
  std::vector<uint16_t> order;
  order.reserve(period_turns);
  std::make_heap(heap.begin(), heap.end(), later);
  while (order.size() < period_turns) {
    std::pop_heap(heap.begin(), heap.end(), later);
    order.push_back(heap.back());
    ++turns[heap.back()];
    std::push_heap(heap.begin(), heap.end(), later);
  }
  for (;;)
    for (uint16_t i : order)
      if (claim(i)) return t;
}

}  // namespace tripod
