// ConnTable: the per-flow state table every network function keeps its state
// in. Bucketized cuckoo hashing (SilkRoad's ConnTable, DPDK's rte_hash) with
// short tags, values by index and per-entry deadlines. Design note: README.md.
//
// Contract
// - Fixed-size trivially copyable Key and Value; all memory is allocated by
//   the constructor, never after. Capacity is exact: `capacity` entries fit
//   (insert fails only with kTableFull once they are all live, or — with
//   negligible probability below ~95% bucket load — kNoCuckooPath).
// - A full table never evicts: insert fails with a counted reason and the
//   caller decides (a firewall drops the new flow; established ones stay).
// - Hashes come from the caller (hash_flow_key: keyed SipHash) so one hash per
//   packet serves shard selection and the table.
// - Time is in ticks supplied by the caller (the clock is injected upstream).
//   Entries whose deadline has passed are removed by advance(), which the
//   owner calls once per burst; lookups between advances still find them.
// - Threading: NOT thread-safe. One thread owns a table (a shard) and does
//   every operation on it; other threads talk to it through rings. See
//   README.md "Sharing between workers" and shard_test.cc. counters() may be
//   read from any thread.
// - A Ref (from lookup/insert) stays valid until the next insert or erase.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "common/compiler.h"
#include "common/counters.h"
#include "table/internal/bucket_wheel.h"
#include "table/internal/huge_alloc.h"

namespace tripod {

#define TRIPOD_CONNTABLE_COUNTERS(X)            \
  X(kInserted, "inserted")                      \
  X(kInsertExists, "insert_exists")             \
  X(kInsertTableFull, "insert_fail_table_full") \
  X(kInsertNoCuckooPath, "insert_fail_no_path") \
  X(kErased, "erased")                          \
  X(kExpired, "expired")                        \
  X(kCuckooMoves, "cuckoo_moves")               \
  X(kDeadlineClamped, "deadline_clamped")

TRIPOD_DECLARE_REASONS(ConnTableCounter, TRIPOD_CONNTABLE_COUNTERS)

enum class InsertStatus : uint8_t { kInserted, kExists, kTableFull, kNoCuckooPath };

struct ConnTableConfig {
  uint32_t capacity = 1 << 20;  // live entries, <= ConnTable::kMaxCapacity
  // Bucket slots per entry of capacity, as a load factor: 8-way 2-choice
  // cuckoo stays insertable well past 95 % (Fan et al., MemC3).
  double max_load = 0.95;
  bool huge_pages = true;  // madvise(MADV_HUGEPAGE): random access over GBs is TLB-bound
};

template <typename Key, typename Value>
class ConnTable {
  static_assert(std::is_trivially_copyable_v<Key> && std::is_trivially_copyable_v<Value>);
  static_assert(sizeof(Key) >= sizeof(uint32_t), "free list is threaded through keys");

 public:
  using Tick = uint32_t;
  static constexpr uint32_t kNone = UINT32_MAX;
  static constexpr uint32_t kWays = 8;
  static constexpr uint32_t kMaxCapacity = (1u << 26) - 1;
  // Deadlines are stored as 24-bit ticks compared modulo 2^24, so a deadline
  // may be at most 2^23 - 1 ticks ahead (9.7 days at 100 ms ticks).
  static constexpr Tick kMaxTimeout = (1u << 23) - 1;

  struct Entry {
    Key key;
    Value value;
  };

  // Position of a live entry: its index in the entry slab and its slot.
  struct Ref {
    uint32_t idx = kNone;
    uint32_t pos = 0;  // bucket * kWays + way
    bool found() const { return idx != kNone; }
  };
  struct InsertResult {
    Ref ref;
    InsertStatus status;
  };

  explicit ConnTable(const ConnTableConfig& cfg);
  ConnTable(const ConnTable&) = delete;
  ConnTable& operator=(const ConnTable&) = delete;

  // --- lookups ---
  Ref lookup(const Key& key, uint64_t hash) const;
  // Bulk lookup over a burst (n <= kMaxBurst): fetches every primary bucket,
  // then candidate keys or secondary buckets, then compares, so the burst's
  // cache misses overlap instead of queueing.
  static constexpr uint32_t kMaxBurst = 64;
  void lookup_bulk(const Key* keys, const uint64_t* hashes, uint32_t n, Ref* out) const;

  // Hashes a burst (hash(key) -> uint64_t) and looks it up, starting each
  // bucket fetch as soon as its hash is known so that hashing overlaps memory.
  template <typename HashFn>
  void hash_lookup_bulk(const Key* keys, uint32_t n, HashFn&& hash, uint64_t* hashes,
                        Ref* out) const {
    if (n > kMaxBurst) n = kMaxBurst;
    for (uint32_t i = 0; i < n; ++i) {
      hashes[i] = hash(keys[i]);
      prefetch(&buckets_[primary(hashes[i])]);
    }
    lookup_bulk(keys, hashes, n, out);
  }

  // --- updates ---
  // Inserts `key` with a zeroed value and the given deadline (absolute tick).
  // kExists returns the existing entry's ref.
  InsertResult insert(const Key& key, uint64_t hash, Tick deadline);
  void erase(Ref ref);
  bool erase(const Key& key, uint64_t hash);
  // Changes an entry's deadline. Extending costs one store (lazy re-arm).
  void set_deadline(Ref ref, Tick deadline);
  Tick deadline(Ref ref) const { return unpack_deadline(slot(ref.pos)); }

  // Expires every entry whose deadline is <= `now`, calling
  // on_expire(idx, const Key&, Value&) before the entry is freed. on_expire
  // may erase other entries but must not insert. If on_expire returns a Tick
  // later than the expiry tick, the entry is kept and re-armed until then
  // instead (a connection's second key follows the connection's deadline
  // without being refreshed on every packet). Returns entries expired.
  template <typename OnExpire>
  uint64_t advance(Tick now, OnExpire&& on_expire);
  uint64_t advance(Tick now) {
    return advance(now, [](uint32_t, const Key&, Value&) {});
  }
  Tick now() const { return wheel_.now(); }

  // --- access ---
  Value& value(uint32_t idx) { return entries_[idx].value; }
  const Value& value(uint32_t idx) const { return entries_[idx].value; }
  const Key& key(uint32_t idx) const { return entries_[idx].key; }

  // Calls f(idx, key, value) for every live entry (control plane: dumps, sync).
  template <typename F>
  void for_each(F&& f);

  uint32_t size() const { return size_; }
  uint32_t capacity() const { return capacity_; }
  uint32_t num_buckets() const { return nbuckets_; }
  // Every byte this table allocated.
  size_t memory_bytes() const {
    return buckets_.bytes() + entries_.bytes() + wheel_.memory_bytes() + sizeof(*this);
  }
  const CounterSet<ConnTableCounter, size_t(ConnTableCounter::kCount)>& counters() const {
    return counters_;
  }

 private:
  // Slot layout (64 bits; 0 = empty):
  //   [0, 14) tag (never 0)  [14, 40) entry index  [40, 64) deadline tick
  // 8 slots = one 64-byte cache line per bucket: a lookup reads two lines of
  // buckets and, on a tag match, one entry. 14-bit tags make a false match
  // (an extra entry read) happen for ~1 lookup in 1000.
  static constexpr uint64_t kTagBits = 14, kIdxBits = 26, kDeadlineBits = 24;
  static constexpr uint64_t kTagMask = (1u << kTagBits) - 1;
  static constexpr uint64_t kIdxMask = (1u << kIdxBits) - 1;
  static constexpr uint32_t kDeadlineMask = (1u << kDeadlineBits) - 1;
  static_assert(kTagBits + kIdxBits + kDeadlineBits == 64);

  struct alignas(64) Bucket {
    uint64_t slot[kWays];
  };
  static_assert(sizeof(Bucket) == 64);

  static uint64_t pack(uint32_t tag, uint32_t idx, Tick deadline) {
    return tag | (uint64_t{idx} << kTagBits) |
           (uint64_t{deadline & kDeadlineMask} << (kTagBits + kIdxBits));
  }
  static uint32_t unpack_tag(uint64_t s) { return static_cast<uint32_t>(s & kTagMask); }
  static uint32_t unpack_idx(uint64_t s) {
    return static_cast<uint32_t>((s >> kTagBits) & kIdxMask);
  }
  // Reconstructs the absolute tick from 24 bits, relative to now.
  Tick unpack_deadline(uint64_t s) const {
    const uint32_t d24 = static_cast<uint32_t>(s >> (kTagBits + kIdxBits));
    int32_t delta = static_cast<int32_t>((d24 - wheel_.now()) & kDeadlineMask);
    if (delta >= (1 << 23)) delta -= (1 << 24);
    return wheel_.now() + static_cast<uint32_t>(delta);
  }

  static uint32_t tag_of(uint64_t h) {
    const auto t = static_cast<uint32_t>(h & kTagMask);
    return t == 0 ? 1 : t;
  }
  // Lemire's fast range reduction: no division, any bucket count.
  static uint32_t reduce(uint32_t x, uint32_t n) {
    return static_cast<uint32_t>((uint64_t{x} * n) >> 32);
  }
  uint32_t primary(uint64_t h) const { return reduce(static_cast<uint32_t>(h >> 32), nbuckets_); }
  // Partial-key cuckoo: the other bucket follows from (bucket, tag) alone, so
  // displacement never rereads the key. alt(b) = (x - b) mod n is an
  // involution, alt(alt(b)) = b, for any n (XOR would need a power of two).
  uint32_t alt(uint32_t b, uint32_t tag) const {
    const uint32_t x = reduce(tag * 0x9E3779B1u, nbuckets_);
    return x >= b ? x - b : x + nbuckets_ - b;
  }
  static uint32_t match(const Bucket& bk, uint32_t tag) {
    uint32_t m = 0;
    for (uint32_t w = 0; w < kWays; ++w)
      m |= uint32_t{(bk.slot[w] & kTagMask) == tag} << w;
    return m;
  }
  // Branch-free compare of word-multiple keys (no memcmp call per candidate).
  static bool key_equal(const Key& a, const Key& b) {
    if constexpr (sizeof(Key) % 8 == 0) {
      const auto* pa = reinterpret_cast<const uint8_t*>(&a);
      const auto* pb = reinterpret_cast<const uint8_t*>(&b);
      uint64_t diff = 0;
      for (size_t i = 0; i < sizeof(Key); i += 8) {
        uint64_t x, y;
        std::memcpy(&x, pa + i, 8);
        std::memcpy(&y, pb + i, 8);
        diff |= x ^ y;
      }
      return diff == 0;
    } else {
      return std::memcmp(&a, &b, sizeof(Key)) == 0;
    }
  }
  static uint32_t empties(const Bucket& bk) {
    uint32_t m = 0;
    for (uint32_t w = 0; w < kWays; ++w)
      m |= uint32_t{bk.slot[w] == 0} << w;
    return m;
  }
  uint64_t& slot(uint32_t pos) { return buckets_[pos / kWays].slot[pos % kWays]; }
  uint64_t slot(uint32_t pos) const { return buckets_[pos / kWays].slot[pos % kWays]; }
  Tick clamp_deadline(Tick deadline);
  Ref find_in(uint32_t b, uint32_t tag, const Key& key) const;
  void prefetch_key(uint32_t b, uint32_t way) const;
  uint32_t alloc_entry();
  void free_entry(uint32_t idx);
  bool make_room(uint32_t b1, uint32_t b2, uint32_t* pos);
  void visit_group(uint32_t g, Tick t, auto& on_expire);
  // Timers are kept per group of kTimerGroup adjacent buckets: 12 B of wheel
  // per 32 slots (0.4 B per entry). A firing group scans its 4 lines.
  static constexpr uint32_t kTimerGroup = 4;
  void schedule(uint32_t bucket, Tick deadline) { wheel_.schedule(bucket / kTimerGroup, deadline); }

  uint32_t capacity_;
  uint32_t nbuckets_;
  uint32_t size_ = 0;
  uint32_t free_head_ = kNone;  // entries freed, threaded through their keys
  uint32_t bump_ = 0;           // entries never used: [bump_, capacity_)
  internal::HugeArray<Bucket> buckets_;
  internal::HugeArray<Entry> entries_;
  internal::BucketWheel wheel_;
  CounterSet<ConnTableCounter, size_t(ConnTableCounter::kCount)> counters_;
};

}  // namespace tripod

#include "table/internal/conn_table_impl.h"
