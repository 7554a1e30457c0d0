// ConnTable's template definitions; included by conn_table.h only.
#pragma once

#include <algorithm>
#include <cmath>

namespace tripod {

template <typename K, typename V>
ConnTable<K, V>::ConnTable(const ConnTableConfig& cfg)
    : capacity_(cfg.capacity),
      nbuckets_([&] {
        if (cfg.capacity == 0 || cfg.capacity > kMaxCapacity) {
          throw std::invalid_argument("conn table capacity must be in [1, " +
                                      std::to_string(kMaxCapacity) + "]");
        }
        if (!(cfg.max_load > 0.1 && cfg.max_load <= 1.0)) {
          throw std::invalid_argument("conn table max_load must be in (0.1, 1]");
        }
        const double slots = std::ceil(cfg.capacity / cfg.max_load);
        // At least two buckets, so that most keys have two distinct choices.
        return std::max<uint32_t>(2, static_cast<uint32_t>(std::ceil(slots / kWays)));
      }()),
      buckets_(nbuckets_, cfg.huge_pages, /*zero=*/true),
      // Every page is faulted in now, at creation: the packet path must never
      // stall on a page fault (or, with THP, on compaction) when flows arrive.
      entries_(capacity_, cfg.huge_pages, /*zero=*/true),
      wheel_((nbuckets_ + kTimerGroup - 1) / kTimerGroup) {}

template <typename K, typename V>
typename ConnTable<K, V>::Ref ConnTable<K, V>::find_in(uint32_t b, uint32_t tag,
                                                       const K& key) const {
  for (uint32_t m = match(buckets_[b], tag); m != 0; m &= m - 1) {
    const uint32_t w = static_cast<uint32_t>(__builtin_ctz(m));
    const uint32_t idx = unpack_idx(buckets_[b].slot[w]);
    if (key_equal(entries_[idx].key, key)) return Ref{idx, b * kWays + w};
  }
  return Ref{};
}

template <typename K, typename V>
typename ConnTable<K, V>::Ref ConnTable<K, V>::lookup(const K& key, uint64_t hash) const {
  const uint32_t tag = tag_of(hash);
  const uint32_t b1 = primary(hash);
  Ref r = find_in(b1, tag, key);
  if (r.found()) return r;
  const uint32_t b2 = alt(b1, tag);
  return b2 == b1 ? r : find_in(b2, tag, key);
}

template <typename K, typename V>
void ConnTable<K, V>::prefetch_key(uint32_t b, uint32_t way) const {
  const auto* e = reinterpret_cast<const char*>(&entries_[unpack_idx(buckets_[b].slot[way])]);
  prefetch(e);
  prefetch(e + sizeof(K) - 1);  // the key may straddle a line; the value is read later
}

// Inserts fill the primary bucket first, so most keys are found there: the
// secondary bucket is only fetched for keys without a primary tag match.
// Each stage issues the burst's next memory accesses before using any, so
// their cache misses overlap.
template <typename K, typename V>
void ConnTable<K, V>::lookup_bulk(const K* keys, const uint64_t* hashes, uint32_t n,
                                  Ref* out) const {
  uint32_t b1[kMaxBurst], b2[kMaxBurst], tags[kMaxBurst], m1[kMaxBurst], m2[kMaxBurst];
  if (n > kMaxBurst) n = kMaxBurst;
  // Stage 1: primary buckets.
  for (uint32_t i = 0; i < n; ++i) {
    tags[i] = tag_of(hashes[i]);
    b1[i] = primary(hashes[i]);
    prefetch(&buckets_[b1[i]]);
  }
  // Stage 2: primary tag matches -> prefetch the candidate's key; no match ->
  // prefetch the secondary bucket.
  for (uint32_t i = 0; i < n; ++i) {
    m1[i] = match(buckets_[b1[i]], tags[i]);
    b2[i] = alt(b1[i], tags[i]);
    m2[i] = 0;
    if (m1[i] != 0) {
      prefetch_key(b1[i], static_cast<uint32_t>(__builtin_ctz(m1[i])));
    } else {
      prefetch(&buckets_[b2[i]]);
    }
  }
  // Stage 3: secondary tag matches for the rest.
  for (uint32_t i = 0; i < n; ++i) {
    if (m1[i] == 0 && b2[i] != b1[i]) {
      m2[i] = match(buckets_[b2[i]], tags[i]);
      if (m2[i] != 0) prefetch_key(b2[i], static_cast<uint32_t>(__builtin_ctz(m2[i])));
    }
  }
  // Stage 4: key comparison. A primary tag match that was a false positive
  // (~1 in 1000) still has to look at the secondary bucket.
  for (uint32_t i = 0; i < n; ++i) {
    Ref r;
    const uint32_t b = m1[i] != 0 ? b1[i] : b2[i];
    for (uint32_t m = m1[i] != 0 ? m1[i] : m2[i]; m != 0; m &= m - 1) {
      const uint32_t w = static_cast<uint32_t>(__builtin_ctz(m));
      const uint32_t idx = unpack_idx(buckets_[b].slot[w]);
      if (key_equal(entries_[idx].key, keys[i])) {
        r = Ref{idx, b * kWays + w};
        break;
      }
    }
    if (!r.found() && m1[i] != 0 && b2[i] != b1[i]) r = find_in(b2[i], tags[i], keys[i]);
    out[i] = r;
  }
}

template <typename K, typename V>
typename ConnTable<K, V>::Tick ConnTable<K, V>::clamp_deadline(Tick deadline) {
  const Tick now = wheel_.now();
  if (static_cast<int32_t>(deadline - now) > static_cast<int32_t>(kMaxTimeout)) {
    counters_.inc(ConnTableCounter::kDeadlineClamped);
    return now + kMaxTimeout;
  }
  // A deadline in the past expires at the next advance.
  if (static_cast<int32_t>(deadline - now) <= 0) return now + 1;
  return deadline;
}

template <typename K, typename V>
uint32_t ConnTable<K, V>::alloc_entry() {
  if (free_head_ != kNone) {
    const uint32_t idx = free_head_;
    std::memcpy(&free_head_, static_cast<const void*>(&entries_[idx].key), sizeof(uint32_t));
    return idx;
  }
  return bump_ < capacity_ ? bump_++ : kNone;
}

template <typename K, typename V>
void ConnTable<K, V>::free_entry(uint32_t idx) {
  std::memcpy(static_cast<void*>(&entries_[idx].key), &free_head_, sizeof(uint32_t));
  free_head_ = idx;
}

// Makes a free slot in b1 or b2 by moving entries to their alternate buckets
// along the shortest path found by breadth-first search (MemC3's choice: BFS
// paths are short, so few entries move). Each move keeps an entry in one of
// its two buckets, so a path abandoned half-way still leaves a valid table.
template <typename K, typename V>
bool ConnTable<K, V>::make_room(uint32_t b1, uint32_t b2, uint32_t* pos) {
  struct Node {
    uint32_t bucket;
    int32_t parent;     // index in q, -1 for a root
    uint32_t from_way;  // way in the parent bucket whose entry moves here
  };
  constexpr uint32_t kMaxNodes = 512;  // ~ depth 3 of an 8-ary tree, two roots
  Node q[kMaxNodes];
  uint32_t head = 0, tail = 0;
  q[tail++] = {b1, -1, 0};
  if (b2 != b1) q[tail++] = {b2, -1, 0};
  while (head < tail) {
    const uint32_t qi = head++;
    const uint32_t b = q[qi].bucket;
    // Fetch all eight alternate buckets at once: at high load this search is
    // what an insert waits on.
    uint32_t alts[kWays];
    for (uint32_t w = 0; w < kWays; ++w) {
      alts[w] = alt(b, unpack_tag(buckets_[b].slot[w]));
      prefetch(&buckets_[alts[w]]);
    }
    for (uint32_t w = 0; w < kWays; ++w) {
      const uint64_t s = buckets_[b].slot[w];
      if (s == 0) continue;  // cannot happen for full buckets; harmless
      const uint32_t a = alts[w];
      if (a == b) continue;
      const uint32_t e = empties(buckets_[a]);
      if (e != 0) {
        // Found: move (b, w) -> (a, free way), then walk back to the root.
        uint32_t dst_pos = a * kWays + static_cast<uint32_t>(__builtin_ctz(e));
        uint32_t src_pos = b * kWays + w;
        int32_t node = static_cast<int32_t>(qi);
        for (;;) {
          // A path that visits a bucket twice can go stale half-way: only
          // move an entry into its own alternate bucket.
          const uint64_t moving = slot(src_pos);
          if (moving == 0 || slot(dst_pos) != 0 ||
              alt(src_pos / kWays, unpack_tag(moving)) != dst_pos / kWays) {
            return false;
          }
          slot(dst_pos) = moving;
          slot(src_pos) = 0;
          schedule(dst_pos / kWays, unpack_deadline(moving));
          counters_.inc(ConnTableCounter::kCuckooMoves);
          const Node& nd = q[node];
          if (nd.parent < 0) {
            *pos = src_pos;
            return true;
          }
          dst_pos = src_pos;
          src_pos = q[nd.parent].bucket * kWays + nd.from_way;
          node = nd.parent;
        }
      }
      if (tail < kMaxNodes) q[tail++] = {a, static_cast<int32_t>(qi), w};
    }
  }
  return false;
}

template <typename K, typename V>
typename ConnTable<K, V>::InsertResult ConnTable<K, V>::insert(const K& key, uint64_t hash,
                                                               Tick deadline) {
  const uint32_t tag = tag_of(hash);
  const uint32_t b1 = primary(hash);
  const uint32_t b2 = alt(b1, tag);
  // Start every miss this insert may take before waiting on the first.
  prefetch_write(&buckets_[b1]);
  prefetch_write(&buckets_[b2]);
  wheel_.prefetch(b1 / kTimerGroup);
  Ref existing = find_in(b1, tag, key);
  if (!existing.found() && b2 != b1) existing = find_in(b2, tag, key);
  if (existing.found()) {
    counters_.inc(ConnTableCounter::kInsertExists);
    return {existing, InsertStatus::kExists};
  }
  const uint32_t idx = alloc_entry();
  if (idx == kNone) {
    counters_.inc(ConnTableCounter::kInsertTableFull);
    return {Ref{}, InsertStatus::kTableFull};
  }
  // Primary first (lookups fetch the secondary bucket only when needed);
  // cuckoo displacement still balances the two when the primary is full.
  const uint32_t e1 = empties(buckets_[b1]);
  const uint32_t e2 = b2 == b1 ? 0 : empties(buckets_[b2]);
  uint32_t pos;
  if (e1 != 0) {
    pos = b1 * kWays + static_cast<uint32_t>(__builtin_ctz(e1));
  } else if (e2 != 0) {
    pos = b2 * kWays + static_cast<uint32_t>(__builtin_ctz(e2));
  } else if (!make_room(b1, b2, &pos) && !make_room(b1, b2, &pos)) {
    free_entry(idx);
    counters_.inc(ConnTableCounter::kInsertNoCuckooPath);
    return {Ref{}, InsertStatus::kNoCuckooPath};
  }
  deadline = clamp_deadline(deadline);
  entries_[idx].key = key;
  entries_[idx].value = V{};
  slot(pos) = pack(tag, idx, deadline);
  schedule(pos / kWays, deadline);
  ++size_;
  counters_.inc(ConnTableCounter::kInserted);
  return {Ref{idx, pos}, InsertStatus::kInserted};
}

template <typename K, typename V>
void ConnTable<K, V>::erase(Ref ref) {
  // The bucket stays scheduled; it fires, finds nothing due and goes quiet.
  slot(ref.pos) = 0;
  free_entry(ref.idx);
  --size_;
  counters_.inc(ConnTableCounter::kErased);
}

template <typename K, typename V>
bool ConnTable<K, V>::erase(const K& key, uint64_t hash) {
  const Ref r = lookup(key, hash);
  if (!r.found()) return false;
  erase(r);
  return true;
}

template <typename K, typename V>
void ConnTable<K, V>::set_deadline(Ref ref, Tick deadline) {
  deadline = clamp_deadline(deadline);
  uint64_t& s = slot(ref.pos);
  s = pack(unpack_tag(s), unpack_idx(s), deadline);
  schedule(ref.pos / kWays, deadline);  // no-op unless earlier than the group's due
}

template <typename K, typename V>
void ConnTable<K, V>::visit_group(uint32_t g, Tick t, auto& on_expire) {
  Tick next = 0;
  bool any = false;
  const uint32_t end = std::min(nbuckets_, (g + 1) * kTimerGroup);
  for (uint32_t b = g * kTimerGroup; b < end; ++b) {
    for (uint32_t w = 0; w < kWays; ++w) {
      const uint64_t s = buckets_[b].slot[w];
      if (s == 0) continue;
      const Tick d = unpack_deadline(s);
      if (static_cast<int32_t>(d - t) <= 0) {
        const uint32_t idx = unpack_idx(s);
        const K& key = entries_[idx].key;
        if constexpr (std::is_void_v<decltype(on_expire(idx, key, entries_[idx].value))>) {
          on_expire(idx, key, entries_[idx].value);
        } else {
          const Tick keep = on_expire(idx, key, entries_[idx].value);
          if (static_cast<int32_t>(keep - t) > 0 && buckets_[b].slot[w] == s) {
            const Tick d2 = clamp_deadline(keep);
            buckets_[b].slot[w] = pack(unpack_tag(s), idx, d2);
            if (!any || static_cast<int32_t>(d2 - next) < 0) {
              next = d2;
              any = true;
            }
            continue;
          }
        }
        // on_expire may have erased entries, this one included.
        if (buckets_[b].slot[w] == s) {
          buckets_[b].slot[w] = 0;
          free_entry(idx);
          --size_;
          counters_.inc(ConnTableCounter::kExpired);
        }
      } else if (!any || static_cast<int32_t>(d - next) < 0) {
        next = d;
        any = true;
      }
    }
  }
  if (any) wheel_.schedule(g, next);
}

template <typename K, typename V>
template <typename OnExpire>
uint64_t ConnTable<K, V>::advance(Tick now, OnExpire&& on_expire) {
  const uint64_t before = counters_.get(ConnTableCounter::kExpired);
  wheel_.advance(now, [&](uint32_t g, Tick t) { visit_group(g, t, on_expire); });
  return counters_.get(ConnTableCounter::kExpired) - before;
}

template <typename K, typename V>
template <typename F>
void ConnTable<K, V>::for_each(F&& f) {
  for (uint32_t b = 0; b < nbuckets_; ++b) {
    for (uint32_t w = 0; w < kWays; ++w) {
      const uint64_t s = buckets_[b].slot[w];
      if (s == 0) continue;
      const uint32_t idx = unpack_idx(s);
      f(idx, static_cast<const K&>(entries_[idx].key), entries_[idx].value);
    }
  }
}

}  // namespace tripod
