// Node ids and sets of nodes.
//
// Ids 1..kMaxNodes come from the cluster's static config; 0 means "no node".
// A set of nodes is a 64-bit bitmap (bit id-1): a live set is one word, so it
// is cheap to copy into a slot table, to compare between epochs and to test
// on the ring walk (one AND per virtual node).
#pragma once

#include <bit>
#include <cstdint>
#include <initializer_list>
#include <span>
#include <stdexcept>
#include <string>

namespace tripod::cluster {

using NodeId = uint16_t;
using NodeSet = uint64_t;

inline constexpr NodeId kNoNode = 0;
inline constexpr NodeId kMaxNodes = 64;

constexpr bool valid_node(NodeId n) {
  return n >= 1 && n <= kMaxNodes;
}
// `n` must be valid.
constexpr NodeSet node_bit(NodeId n) {
  return NodeSet{1} << (n - 1);
}
constexpr bool contains(NodeSet s, NodeId n) {
  return valid_node(n) && (s & node_bit(n)) != 0;
}
constexpr uint32_t node_count(NodeSet s) {
  return static_cast<uint32_t>(std::popcount(s));
}
// Lowest id in a non-empty set. Iterate with `for (r = s; r; r &= r - 1)`.
constexpr NodeId lowest_node(NodeSet s) {
  return static_cast<NodeId>(std::countr_zero(s) + 1);
}

// The set of `ids`; throws std::invalid_argument on an id outside 1..64 or a
// duplicate (config parsing).
inline NodeSet node_set_of(std::span<const NodeId> ids) {
  NodeSet s = 0;
  for (NodeId n : ids) {
    if (!valid_node(n))
      throw std::invalid_argument("cluster: node id " + std::to_string(n) + " out of range 1.." +
                                  std::to_string(kMaxNodes));
    if (s & node_bit(n))
      throw std::invalid_argument("cluster: node id " + std::to_string(n) + " listed twice");
    s |= node_bit(n);
  }
  return s;
}
inline NodeSet node_set_of(std::initializer_list<NodeId> ids) {
  return node_set_of(std::span<const NodeId>(ids.begin(), ids.size()));
}

}  // namespace tripod::cluster
