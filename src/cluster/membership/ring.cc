#include "cluster/membership/ring.h"

#include <algorithm>
#include <stdexcept>
#include <string>

namespace tripod::cluster {
namespace {

// 8 bytes, one SipHash block: a domain tag (so a slot and a vnode never share
// an input), the node id and an index, little-endian. Part of the cluster-wide
// contract (ring.h).
uint64_t position(const SipKey& key, uint8_t tag, NodeId node, uint32_t index) {
  const uint8_t msg[8] = {tag,
                          0,
                          static_cast<uint8_t>(node),
                          static_cast<uint8_t>(node >> 8),
                          static_cast<uint8_t>(index),
                          static_cast<uint8_t>(index >> 8),
                          static_cast<uint8_t>(index >> 16),
                          static_cast<uint8_t>(index >> 24)};
  return siphash13(key, msg, sizeof msg);
}

constexpr uint8_t kVnodeTag = 'v';
constexpr uint8_t kSlotTag = 's';

}  // namespace

void validate(const RingConfig& cfg) {
  if (cfg.members == 0) throw std::invalid_argument("ring: members is empty");
  if (cfg.vnodes == 0 || cfg.vnodes > kMaxVnodes)
    throw std::invalid_argument("ring: vnodes (" + std::to_string(cfg.vnodes) + ") must be in 1.." +
                                std::to_string(kMaxVnodes));
}

uint32_t SlotTable::slots_owned(NodeId node) const {
  uint32_t c = 0;
  if (n_ == 0) return 0;
  for (uint32_t s = 0; s < kSlots; ++s)
    c += owner(s) == node;
  return c;
}

SlotSet changed_slots(const SlotTable& a, const SlotTable& b, uint32_t r) {
  r = std::min(r, kMaxHolders);
  SlotSet changed;
  for (uint32_t s = 0; s < kSlots; ++s) {
    // Past a table's holder count the array holds kNoNode, so a shorter
    // list compares unequal to a longer one.
    for (uint32_t i = 0; i < r; ++i) {
      if (a.h_[size_t{s} * kMaxHolders + i] != b.h_[size_t{s} * kMaxHolders + i]) {
        changed.set(s);
        break;
      }
    }
  }
  return changed;
}

Ring::Ring(const RingConfig& cfg) : cfg_(cfg) {
  validate(cfg_);
  struct Point {
    uint64_t pos;
    NodeId node;
    uint32_t vnode;
  };
  std::vector<Point> pts;
  pts.reserve(size_t{node_count(cfg_.members)} * cfg_.vnodes);
  for (NodeSet r = cfg_.members; r != 0; r &= r - 1) {
    const NodeId n = lowest_node(r);
    for (uint32_t v = 0; v < cfg_.vnodes; ++v)
      pts.push_back({vnode_position(n, v), n, v});
  }
  // Ties (equal 64-bit positions) are broken by (node, vnode): still the
  // same order on every node.
  std::sort(pts.begin(), pts.end(), [](const Point& a, const Point& b) {
    if (a.pos != b.pos) return a.pos < b.pos;
    if (a.node != b.node) return a.node < b.node;
    return a.vnode < b.vnode;
  });
  node_at_.reserve(pts.size());
  for (const Point& p : pts)
    node_at_.push_back(p.node);
  for (uint32_t s = 0; s < kSlots; ++s) {
    const uint64_t sp = slot_position(s);
    const auto it = std::lower_bound(pts.begin(), pts.end(), sp,
                                     [](const Point& p, uint64_t v) { return p.pos < v; });
    start_[s] = it == pts.end() ? 0 : static_cast<uint32_t>(it - pts.begin());
  }
}

uint64_t Ring::slot_position(uint32_t slot) const {
  return position(cfg_.key, kSlotTag, kNoNode, slot);
}

uint64_t Ring::vnode_position(NodeId node, uint32_t vnode) const {
  return position(cfg_.key, kVnodeTag, node, vnode);
}

void Ring::build(NodeSet live, uint32_t epoch, SlotTable* out) const {
  live &= cfg_.members;
  const uint32_t n = std::min(node_count(live), kMaxHolders);
  out->h_.fill(kNoNode);
  out->live_ = live;
  out->epoch_ = epoch;
  out->n_ = n;
  if (n == 0) return;
  const auto size = static_cast<uint32_t>(node_at_.size());
  for (uint32_t s = 0; s < kSlots; ++s) {
    NodeId* h = &out->h_[size_t{s} * kMaxHolders];
    NodeSet taken = 0;
    uint32_t found = 0;
    // Ends within one lap: every live node is a member and has a point.
    for (uint32_t i = start_[s]; found < n; i = i + 1 == size ? 0 : i + 1) {
      const NodeSet bit = node_bit(node_at_[i]);
      if ((live & bit) == 0 || (taken & bit) != 0) continue;
      taken |= bit;
      h[found++] = node_at_[i];
    }
  }
}

bool RingView::update(NodeSet live, uint32_t epoch) {
  if ((live & ring_.members()) == tables_[cur_].live_set()) {
    // Same live set: keep both tables; only the epoch label moves.
    tables_[cur_].epoch_ = epoch;
    return false;
  }
  cur_ ^= 1u;
  ring_.build(live, epoch, &tables_[cur_]);
  has_previous_ = true;
  return true;
}

}  // namespace tripod::cluster
