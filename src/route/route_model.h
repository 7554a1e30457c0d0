// RouteModel: the control thread's mutable copy of the kernel state that
// NextHopTable snapshots are built from. Decoded netlink messages are applied
// one by one; where the kernel's notifications are ambiguous the model asks
// for a re-dump of that family's routes instead of guessing:
//
//  * IPv4 "append"/"prepend" aliases (same prefix, tos and metric): the kernel
//    keeps several and uses the first; a later delete may hit either.
//  * IPv6 multipath: siblings are added/removed one next hop at a time and the
//    notification shows either the whole set or the one sibling.
//  * A link going down or away, or an IPv4 address removed: the kernel flushes
//    the dependent IPv4 routes without sending RTM_DELROUTE.
//
// Applying events received after a dump converges: every event sets or
// erases one key to its state at that time, so replaying any suffix of the
// event stream over a dump ends in the kernel's latest state.
#pragma once

#include <cstdint>
#include <map>
#include <tuple>

#include "route/next_hop_table.h"
#include "route/rtnl_decode.h"

namespace tripod::route {

struct ApplyResult {
  bool changed = false;    // the model changed: publish a new snapshot
  bool redump_v4 = false;  // IPv4 routes must be re-dumped
  bool redump_v6 = false;  // IPv6 routes must be re-dumped
  void merge(const ApplyResult& o) {
    changed |= o.changed;
    redump_v4 |= o.redump_v4;
    redump_v6 |= o.redump_v6;
  }
};

class RouteModel {
 public:
  // `from_dump`: the message is part of a dump reply, not a notification
  // (a dump lists IPv4 aliases in kernel order, first = active).
  ApplyResult apply(const DecodedMsg& m, bool from_dump);

  void clear_links() { links_.clear(); }
  void clear_neighbours(Family f);
  void clear_routes(Family f);

  TableInput to_input() const;
  size_t num_routes() const { return routes_.size(); }
  size_t num_neighbours() const { return neigh_.size(); }
  size_t num_links() const { return links_.size(); }

 private:
  // IPv4 routes are identified by (prefix, tos, metric); IPv6 ones also by
  // their next hop (oif, gateway), as several single-path routes to the same
  // prefix and metric may coexist on different devices. A multipath IPv6
  // route (from a dump) is keyed with oif 0.
  struct RouteKey {
    Family family;
    uint8_t len;
    uint8_t tos;
    uint32_t priority;
    Addr dst;
    uint32_t oif;
    Addr gw;
    auto tie() const { return std::tie(family, len, tos, priority, dst, oif, gw); }
    bool operator<(const RouteKey& o) const { return tie() < o.tie(); }
    bool same_prefix(const RouteKey& o) const {
      return family == o.family && len == o.len && tos == o.tos && priority == o.priority &&
             dst == o.dst;
    }
  };
  struct RouteEntry {
    RouteInfo info;
    bool multipath = false;
    bool aliased = false;  // IPv4: the kernel holds more routes under this key
  };
  using NeighKey = std::pair<uint32_t, Addr>;

  ApplyResult apply_link(const LinkMsg& l);
  ApplyResult apply_neigh(const NeighMsg& n);
  ApplyResult apply_route(const RouteMsg& r, uint16_t nl_flags, bool from_dump);
  static RouteKey key_of(const RouteMsg& r);

  std::map<uint32_t, LinkInfo> links_;
  std::map<NeighKey, NeighInfo> neigh_;
  std::map<RouteKey, RouteEntry> routes_;
};

}  // namespace tripod::route
