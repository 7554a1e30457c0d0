// Maglev consistent hashing with weights (Eisenbud et al., "Maglev: A Fast and
// Reliable Software Network Load Balancer", NSDI'16, section 3.4).
//
// Why Maglev: a lookup is one table read (no ring walk), load is balanced to
// within one entry per backend, and a pool change moves about 1/N of the
// entries, so connections that lose their state (a node dies before
// replication, a table overflows) usually still land on the same DIP. The
// versioned pools (pool_table.h) make established connections exact; Maglev
// keeps the fallback good.
//
// Table: M entries, M prime. Backend i has a permutation of the M slots,
// offset_i + j * skip_i (mod M), from two hashes of its (address, port);
// backends take turns claiming their next preferred free slot until the table
// is full. Weights: a backend with weight w takes w turns per w_total turns,
// interleaved by the Sainte-Lague divisor sequence (turn k of backend i is at
// "time" (2k+1)/w_i, ties to the lower index). With equal weights this is
// exactly the paper's round robin; with unequal ones every backend's share is
// within about one entry of M * w_i / sum(w), and the turns of a heavy backend
// are spread over the fill instead of taken in a clump.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "nf/lb/vip.h"

namespace tripod {

// 65537 (prime) is Katran's default ring size.
inline constexpr uint32_t kMaglevMinTableSize = 65537;
// Maglev's disruption bound needs M >> N; the paper uses M >= 100 N.
inline constexpr uint32_t kMaglevSlotsPerBackend = 100;
inline constexpr uint32_t kMaglevMaxTableSize = 1u << 24;

struct MaglevConfig {
  // Floor of the table size; at least kMaglevMinTableSize. Raise it to
  // 100 x the largest pool a VIP will have so that M never changes (a new M
  // reshuffles every entry; established connections are safe either way).
  uint32_t min_table_size = kMaglevMinTableSize;
};

bool is_prime(uint32_t n);

// Smallest prime >= max(100 * N', min_table_size), N' = n_backends rounded
// up to a power of two: M changes only when the pool crosses a power of two,
// not on every add or remove (a new M moves nearly every entry). Depends on
// the pool only, so every node builds the same table. Throws
// std::invalid_argument if min_table_size is below kMaglevMinTableSize or the
// size would exceed kMaglevMaxTableSize.
uint32_t maglev_table_size(size_t n_backends, uint32_t min_table_size = kMaglevMinTableSize);

struct MaglevPermutation {
  uint32_t offset;  // first preferred slot, in [0, M)
  uint32_t skip;    // stride, in [1, M): coprime with prime M, so all slots are visited
};
// Hashed from the backend's (address, port) with fixed keys: the same backend
// has the same preferences on every node and in every pool version.
MaglevPermutation maglev_permutation(const Backend& b, uint32_t table_size);

class MaglevTable {
 public:
  static constexpr uint16_t kEmpty = 0xFFFF;
  static_assert(kMaxBackends < kEmpty);

  MaglevTable() = default;
  // `table_size` must be prime (maglev_table_size()); backends of weight 0
  // get no entry. Allocates; control plane only.
  static MaglevTable build(std::span<const Backend> backends, uint32_t table_size);

  // False when no backend has a weight: lookup() must not be called.
  bool has_backends() const { return !entries_.empty(); }
  uint32_t size() const { return size_; }
  std::span<const uint16_t> entries() const { return entries_; }

  // Backend index for a uniformly distributed 64-bit hash. Multiply-shift
  // (Lemire) maps the hash onto [0, M) without a division.
  uint16_t lookup(uint64_t hash) const {
    __extension__ using u128 = unsigned __int128;
    return entries_[static_cast<size_t>((static_cast<u128>(hash) * size_) >> 64)];
  }

 private:
  std::vector<uint16_t> entries_;
  uint32_t size_ = 0;
};

}  // namespace tripod
