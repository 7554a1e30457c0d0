// VIP key -> VIP id, looked up on every packet addressed to the gateway.
//
// Open addressing with linear probing over a power-of-two array kept at most
// half full: a hit or a miss reads one or two adjacent 24-byte entries.
// Deletion shifts the following entries back (no tombstones), so a miss
// always stops at the first empty slot. The hash is SipHash under a
// per-process key: lookups see attacker-chosen destinations, and only the
// configured keys can collide, but a keyed hash costs ~8 ns and closes the
// question. Control-side writes (insert/erase) allocate; find() does not.
#pragma once

#include <cstdint>
#include <vector>

#include "common/random.h"
#include "common/siphash.h"
#include "nf/lb/pool_table.h"
#include "nf/lb/vip.h"

namespace tripod {

class VipMap {
 public:
  VipMap() : slots_(16) { secure_random_bytes(&key_, sizeof key_); }

  VipId find(const VipKey& k) const noexcept {
    const size_t mask = slots_.size() - 1;
    for (size_t i = home(k, mask);; i = (i + 1) & mask) {
      const Entry& e = slots_[i];
      if (e.id == kNoVip) return kNoVip;
      if (e.key == k) return e.id;
    }
  }

  // False if the key is already present.
  bool insert(const VipKey& k, VipId id) {
    if (find(k) != kNoVip) return false;
    if (2 * (size_ + 1) > slots_.size()) rehash(2 * slots_.size());
    place(Entry{k, id});
    ++size_;
    return true;
  }

  bool erase(const VipKey& k) {
    const size_t mask = slots_.size() - 1;
    size_t i = home(k, mask);
    for (; slots_[i].id != kNoVip && !(slots_[i].key == k); i = (i + 1) & mask) {
    }
    if (slots_[i].id == kNoVip) return false;
    // Backward shift: move later entries of the probe run into the hole when
    // their home slot is not cyclically in (hole, j].
    for (size_t j = (i + 1) & mask; slots_[j].id != kNoVip; j = (j + 1) & mask) {
      const size_t h = home(slots_[j].key, mask);
      const bool stays = i <= j ? (i < h && h <= j) : (i < h || h <= j);
      if (!stays) {
        slots_[i] = slots_[j];
        i = j;
      }
    }
    slots_[i] = Entry{};
    --size_;
    return true;
  }

  size_t size() const { return size_; }

 private:
  struct Entry {
    VipKey key;
    VipId id = kNoVip;
  };
  static_assert(sizeof(Entry) == 24);

  size_t home(const VipKey& k, size_t mask) const {
    return siphash13(key_, reinterpret_cast<const uint8_t*>(&k), sizeof k) & mask;
  }
  void place(const Entry& e) {
    const size_t mask = slots_.size() - 1;
    size_t i = home(e.key, mask);
    while (slots_[i].id != kNoVip)
      i = (i + 1) & mask;
    slots_[i] = e;
  }
  void rehash(size_t n) {
    std::vector<Entry> old(n);
    old.swap(slots_);
    for (const Entry& e : old)
      if (e.id != kNoVip) place(e);
  }

  std::vector<Entry> slots_;  // power of two
  size_t size_ = 0;
  SipKey key_;
};

}  // namespace tripod
