// The consistent-hash ring and its slot tables: which nodes hold the flows of
// each of the kSlots flow slots, for a given live set.
//
// Ring: every configured member has `vnodes` points at
// SipHash-1-3(key, "v", node, vnode); slot s sits at SipHash-1-3(key, "s", s).
// A slot's holders are the distinct live nodes met walking clockwise from its
// position. Removing a node deletes it from every slot's holder list and
// shifts the rest up (the slots it owned go to their first backup, which
// already has their state); adding it back restores the previous lists. Only
// the removed node's slots change owner.
//
// The positions are a cluster-wide contract: every node must use the same
// key, members and vnodes, and a change of this file's hashing must not
// reach a running cluster through a rolling upgrade.
//
// SlotTable: the first kMaxHolders holders of every slot in one flat array,
// rebuilt on a membership change; the per-packet lookup is one index.
// Every slot has the same number of holders, min(live nodes, kMaxHolders),
// since a walk meets every live node before it wraps.
//
// RingView keeps the current table and the previous epoch's: while flows
// migrate, a node that misses asks the current holders, then the previous
// ones (README.md).
#pragma once

#include <array>
#include <bitset>
#include <cstdint>
#include <span>
#include <type_traits>
#include <vector>

#include "cluster/membership/node_set.h"
#include "common/siphash.h"

namespace tripod::cluster {

inline constexpr uint32_t kSlots = 256;
// Owner plus up to three backups: replicas <= 3.
inline constexpr uint32_t kMaxHolders = 4;

struct RingConfig {
  SipKey key;            // cluster-wide, from the cluster secret
  NodeSet members = 0;   // every node that may be live (static config)
  uint32_t vnodes = 64;  // points per member: balance improves as 1/sqrt(vnodes)
};

inline constexpr uint32_t kMaxVnodes = 4096;

// Throws std::invalid_argument naming the field.
void validate(const RingConfig& cfg);

using SlotSet = std::bitset<kSlots>;
class SlotTable;

// Slots whose first `r` holders (in order; r <= kMaxHolders) differ between
// two tables: with r = 1, the slots whose owner changed; with r = 1 +
// replicas, the slots whose replicas must be re-sent.
SlotSet changed_slots(const SlotTable& a, const SlotTable& b, uint32_t r);

class SlotTable {
 public:
  // The holders of `slot` (< kSlots) in ring order; the owner first. Empty
  // when no node is live.
  std::span<const NodeId> holders(uint32_t slot) const {
    return {&h_[size_t{slot} * kMaxHolders], n_};
  }
  // kNoNode when no node is live.
  NodeId owner(uint32_t slot) const { return h_[size_t{slot} * kMaxHolders]; }
  uint32_t holders_per_slot() const { return n_; }
  NodeSet live_set() const { return live_; }
  uint32_t epoch() const { return epoch_; }
  // Slots whose owner is `node` (stats, balance).
  uint32_t slots_owned(NodeId node) const;

  friend bool operator==(const SlotTable&, const SlotTable&) = default;

 private:
  friend class Ring;
  friend class RingView;
  friend SlotSet changed_slots(const SlotTable&, const SlotTable&, uint32_t);
  std::array<NodeId, size_t{kSlots} * kMaxHolders> h_{};  // kNoNode past n_
  NodeSet live_ = 0;
  uint32_t epoch_ = 0;
  uint32_t n_ = 0;
};
// Workers can be handed a copy; no pointers inside.
static_assert(std::is_trivially_copyable_v<SlotTable>);

class Ring {
 public:
  // Hashes and sorts members x vnodes points (allocates; control plane).
  // Throws std::invalid_argument on a bad config.
  explicit Ring(const RingConfig& cfg);

  // Fills `out` for `live` (nodes outside `members` are ignored). No
  // allocation; about one array read per point walked over.
  void build(NodeSet live, uint32_t epoch, SlotTable* out) const;
  SlotTable build(NodeSet live, uint32_t epoch = 0) const {
    SlotTable t;
    build(live, epoch, &t);
    return t;
  }

  NodeSet members() const { return cfg_.members; }
  uint32_t points() const { return static_cast<uint32_t>(node_at_.size()); }
  // Position of a slot / a virtual node on the ring (tests, tools).
  uint64_t slot_position(uint32_t slot) const;
  uint64_t vnode_position(NodeId node, uint32_t vnode) const;

 private:
  RingConfig cfg_;
  std::vector<NodeId> node_at_;           // the points' nodes in clockwise order
  std::array<uint32_t, kSlots> start_{};  // each slot's first point clockwise
};

class RingView {
 public:
  // Starts with an empty current table (no live node) and no previous one.
  explicit RingView(const RingConfig& cfg) : ring_(cfg) {}

  // A new live set from an epoch event: the current table becomes the
  // previous one. When `live` equals the current live set only the epoch
  // is updated (and false returned), so a repeated call keeps the previous
  // table. No allocation.
  bool update(NodeSet live, uint32_t epoch);
  // Migration is over: misses no longer consult the previous epoch.
  void drop_previous() { has_previous_ = false; }
  // The previous table is that of `live` (a joined node takes the table
  // the others had before it came). The current one stays.
  void set_previous(NodeSet live) {
    ring_.build(live, tables_[cur_].epoch(), &tables_[cur_ ^ 1u]);
    has_previous_ = true;
  }

  const SlotTable& current() const { return tables_[cur_]; }
  // nullptr when there is none (start, or after drop_previous()).
  const SlotTable* previous() const { return has_previous_ ? &tables_[cur_ ^ 1u] : nullptr; }
  const Ring& ring() const { return ring_; }

 private:
  Ring ring_;
  std::array<SlotTable, 2> tables_{};
  uint32_t cur_ = 0;
  bool has_previous_ = false;
};

}  // namespace tripod::cluster
