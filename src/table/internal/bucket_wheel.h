// Hierarchical timer wheel over *bucket* indices (not entries). Internal to
// ConnTable; see ../README.md for why timers are per bucket.
//
// Each bucket is scheduled at most once, at the earliest deadline among its
// entries when it was scheduled ("due"). Scheduling an earlier due moves it
// (O(1) unlink + link); a later one is ignored, the bucket fires early, finds
// nothing due and reschedules itself (lazy re-arm, as Linux's TCP timers do).
// Four levels, as the pre-4.8 Linux timer wheel:
//   L0 256 slots x 1 tick, L1 64 x 2^8, L2 64 x 2^14, L3 64 x 2^20 ticks,
// so any due up to 2^26 ticks ahead is placed in O(1) and cascades at most
// three times before it fires.
//
// Lists are circular, doubly linked, by index: nodes [0, n) are buckets and
// nodes [n, n + kLists) are the list heads, so unlink needs no list id.
// Memory: 12 bytes per node (next, prev, due), kept together.
#pragma once

#include <cstdint>
#include <memory>

namespace tripod::internal {

class BucketWheel {
 public:
  using Tick = uint32_t;
  static constexpr uint32_t kNone = UINT32_MAX;
  static constexpr Tick kMaxAhead = (1u << 26) - 1;

  explicit BucketWheel(uint32_t num_buckets);

  // Tick of the last advance; dues are always > now().
  Tick now() const { return now_; }
  void set_now(Tick t) { now_ = t; }  // only while nothing is scheduled
  uint32_t scheduled() const { return scheduled_; }

  void prefetch(uint32_t b) const { __builtin_prefetch(&nodes_[b], 1, 3); }

  // Makes bucket `b` fire no later than `due` (clamped to (now, now + kMaxAhead]).
  void schedule(uint32_t b, Tick due) {
    // Ticks wrap: compare by signed difference.
    if (static_cast<int32_t>(due - now_) <= 0) due = now_ + 1;
    if (due - now_ > kMaxAhead) due = now_ + kMaxAhead;
    if (d_at(b) != kNone) {
      if (static_cast<int32_t>(d_at(b) - due) <= 0) return;
      unlink(b);
    }
    d_at(b) = due;
    link(b, list_for(due));
  }

  // Moves time forward to `to`, calling visit(bucket, tick) for each bucket
  // whose due tick is reached. visit must reschedule the bucket if it still
  // holds entries; it may schedule other buckets. Returns buckets visited.
  template <typename Visit>
  uint64_t advance(Tick to, Visit&& visit) {
    uint64_t visited = 0;
    while (static_cast<int32_t>(to - now_) > 0) {
      if (scheduled_ == 0) {  // nothing can fire: jump
        now_ = to;
        break;
      }
      // Skip straight to the next L0 slot that may hold buckets, or to the
      // next cascade boundary, so long idle stretches cost O(ticks / 256).
      const Tick t = next_event(now_);
      if (static_cast<int32_t>(t - to) > 0) {
        now_ = to;
        break;
      }
      now_ = t;
      if ((t & 0xff) == 0) {
        if ((t & 0x3fff) == 0) {
          if ((t & 0xfffff) == 0) cascade(kL3 + ((t >> 20) & 63));
          cascade(kL2 + ((t >> 14) & 63));
        }
        cascade(kL1 + ((t >> 8) & 63));
      }
      const uint32_t slot = t & 0xff;
      l0_bits_[slot / 64] &= ~(uint64_t{1} << (slot % 64));
      const uint32_t head = n_ + slot;
      while (n_at(head) != head) {
        const uint32_t b = n_at(head);
        unlink(b);
        d_at(b) = kNone;
        visit(b, t);
        ++visited;
      }
    }
    return visited;
  }

  size_t memory_bytes() const { return (static_cast<size_t>(n_) + kLists) * 3 * sizeof(uint32_t); }

 private:
  static constexpr uint32_t kL1 = 256, kL2 = kL1 + 64, kL3 = kL2 + 64, kLists = kL3 + 64;

  // First tick after `from` that is a 256-boundary or whose L0 slot is marked.
  Tick next_event(Tick from) const {
    const Tick base = from + 1;
    const Tick boundary = (from | 0xff) + 1;
    if (base == boundary) return boundary;  // the cascade runs first
    for (uint32_t i = base & 0xff; i < 256;) {
      const uint64_t bits = l0_bits_[i / 64] >> (i % 64);
      if (bits != 0) return (base & ~Tick{0xff}) + i + static_cast<uint32_t>(__builtin_ctzll(bits));
      i = (i / 64 + 1) * 64;
    }
    return boundary;
  }
  uint32_t list_for(Tick due) const {
    const Tick d = due - now_;
    if (d < (1u << 8)) return due & 0xff;
    if (d < (1u << 14)) return kL1 + ((due >> 8) & 63);
    if (d < (1u << 20)) return kL2 + ((due >> 14) & 63);
    return kL3 + ((due >> 20) & 63);
  }
  void link(uint32_t b, uint32_t list) {
    if (list < kL1) l0_bits_[list / 64] |= uint64_t{1} << (list % 64);  // may be stale-set
    const uint32_t head = n_ + list;
    Node& h = nodes_[head];
    nodes_[b].next = h.next;
    nodes_[b].prev = head;
    nodes_[h.next].prev = b;
    h.next = b;
    ++scheduled_;
  }
  void unlink(uint32_t b) {
    const Node& n = nodes_[b];
    nodes_[n.prev].next = n.next;
    nodes_[n.next].prev = n.prev;
    --scheduled_;
  }
  // Re-places every bucket of a higher-level list by its due: each lands in a
  // lower level (or the L0 slot fired this very tick).
  void cascade(uint32_t list) {
    const uint32_t head = n_ + list;
    while (n_at(head) != head) {
      const uint32_t b = n_at(head);
      unlink(b);
      link(b, list_for(static_cast<int32_t>(d_at(b) - now_) <= 0 ? now_ : d_at(b)));
    }
  }

  uint32_t n_;
  Tick now_ = 0;
  uint32_t scheduled_ = 0;
  uint64_t l0_bits_[4] = {};  // L0 slots that may be non-empty
  // One 12-byte node per bucket group, so scheduling touches one line.
  struct Node {
    uint32_t next, prev, due;
  };
  uint32_t& n_at(uint32_t i) { return nodes_[i].next; }
  uint32_t& d_at(uint32_t i) { return nodes_[i].due; }
  uint32_t n_at(uint32_t i) const { return nodes_[i].next; }
  uint32_t d_at(uint32_t i) const { return nodes_[i].due; }
  std::unique_ptr<Node[]> nodes_;
};

}  // namespace tripod::internal
