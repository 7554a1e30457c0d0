#include "route/route_model.h"

#include <linux/neighbour.h>
#include <linux/rtnetlink.h>

namespace tripod::route {
namespace {

bool is_reject(uint8_t type) {
  return type == RTN_BLACKHOLE || type == RTN_UNREACHABLE || type == RTN_PROHIBIT ||
         type == RTN_THROW;
}

Addr masked(Addr a, uint32_t len) {
  for (size_t i = 0; i < a.bytes.size(); ++i) {
    const uint32_t bit = static_cast<uint32_t>(i) * 8;
    if (bit >= len) {
      a.bytes[i] = 0;
    } else if (len - bit < 8) {
      a.bytes[i] = static_cast<uint8_t>(a.bytes[i] & (0xFF00u >> (len - bit)));
    }
  }
  return a;
}

bool same_link(const LinkInfo& a, const LinkInfo& b) {
  return a.ifindex == b.ifindex && a.mac == b.mac && a.has_mac == b.has_mac && a.up == b.up &&
         a.lower_up == b.lower_up && a.mtu == b.mtu && a.name == b.name;
}

bool same_neigh(const NeighInfo& a, const NeighInfo& b) {
  return a.ifindex == b.ifindex && a.addr == b.addr && a.mac == b.mac && a.has_mac == b.has_mac &&
         a.state == b.state && a.flags == b.flags;
}

ApplyResult redump(Family f) {
  ApplyResult r;
  (f == Family::kIpv6 ? r.redump_v6 : r.redump_v4) = true;
  return r;
}

constexpr ApplyResult kChanged{true, false, false};

}  // namespace

ApplyResult RouteModel::apply(const DecodedMsg& m, bool from_dump) {
  switch (m.kind) {
    case MsgKind::kLink:
      return apply_link(m.link);
    case MsgKind::kNeigh:
      return apply_neigh(m.neigh);
    case MsgKind::kRoute:
      return apply_route(m.route, m.nl_flags, from_dump);
    case MsgKind::kAddr:
      // A new address announces its prefix route itself; a removed IPv4 one
      // silently takes the routes using it as source or gateway subnet along.
      return m.addr.del ? redump(m.addr.addr.family) : ApplyResult{};
    default:
      return {};
  }
}

ApplyResult RouteModel::apply_link(const LinkMsg& l) {
  const uint32_t ifindex = l.info.ifindex;
  if (l.del) {
    const bool had = links_.erase(ifindex) != 0;
    for (auto it = neigh_.begin(); it != neigh_.end();) {
      it = it->first.first == ifindex ? neigh_.erase(it) : std::next(it);
    }
    return {had, true, true};
  }
  auto it = links_.find(ifindex);
  if (it == links_.end()) {
    links_.emplace(ifindex, l.info);
    return kChanged;
  }
  if (same_link(it->second, l.info)) return {};
  // Up/down and carrier changes flush or revive IPv4 routes (RTNH_F_DEAD,
  // RTNH_F_LINKDOWN) without a route notification.
  const bool state = it->second.up != l.info.up || it->second.lower_up != l.info.lower_up;
  it->second = l.info;
  return {true, state, state};
}

ApplyResult RouteModel::apply_neigh(const NeighMsg& n) {
  const NeighKey k{n.info.ifindex, n.info.addr};
  if (n.del) return {neigh_.erase(k) != 0, false, false};
  auto [it, fresh] = neigh_.try_emplace(k, n.info);
  if (fresh) return kChanged;
  if (same_neigh(it->second, n.info)) return {};
  it->second = n.info;
  return kChanged;
}

RouteModel::RouteKey RouteModel::key_of(const RouteMsg& r) {
  RouteKey k{r.info.dst.family,
             r.info.dst_len,
             r.info.tos,
             r.info.priority,
             masked(r.info.dst, r.info.dst_len),
             0,
             Addr{}};
  if (k.family == Family::kIpv6 && !r.multipath && !r.info.nexthops.empty()) {
    k.oif = r.info.nexthops[0].ifindex;
    k.gw = r.info.nexthops[0].gateway;
  }
  return k;
}

ApplyResult RouteModel::apply_route(const RouteMsg& r, uint16_t nl_flags, bool from_dump) {
  if (r.info.table != RT_TABLE_MAIN) return {};
  if (r.rtm_flags & RTM_F_CLONED) return {};  // a cached exception, not a route
  if (r.info.type != RTN_UNICAST && !is_reject(r.info.type)) return {};
  const Family f = r.info.dst.family;
  const RouteKey k = key_of(r);
  RouteEntry e{r.info, r.multipath, false};
  e.info.dst = k.dst;

  if (from_dump) {
    // A dump lists aliases in kernel order: the first is the active one.
    auto [it, fresh] = routes_.try_emplace(k, std::move(e));
    if (!fresh) it->second.aliased = true;
    return {fresh, false, false};
  }

  if (f == Family::kIpv4) {
    auto it = routes_.find(k);
    if (r.del) {
      if (it == routes_.end()) return {};
      if (it->second.aliased) return redump(f);  // which alias went is unknown
      routes_.erase(it);
      return kChanged;
    }
    if (it == routes_.end()) {
      routes_.emplace(k, std::move(e));
      return kChanged;
    }
    if (nl_flags & NLM_F_APPEND) {
      it->second.aliased = true;  // appended behind the active route: no effect now
      return {};
    }
    const bool aliased = it->second.aliased || !(nl_flags & NLM_F_REPLACE);  // prepend
    it->second = std::move(e);
    it->second.aliased = aliased;
    return kChanged;
  }

  // IPv6.
  const RouteKey first{k.family, k.len, k.tos, k.priority, k.dst, 0, Addr{}};
  auto lo = routes_.lower_bound(first);
  bool any_multipath = false;
  for (auto it = lo; it != routes_.end() && it->first.same_prefix(k); ++it)
    any_multipath |= it->second.multipath;
  if (r.multipath || any_multipath || (nl_flags & NLM_F_APPEND)) return redump(f);
  if (r.del) return {routes_.erase(k) != 0, false, false};
  if (nl_flags & NLM_F_REPLACE) {
    while (lo != routes_.end() && lo->first.same_prefix(k))
      lo = routes_.erase(lo);
  }
  routes_.insert_or_assign(k, std::move(e));
  return kChanged;
}

void RouteModel::clear_neighbours(Family f) {
  for (auto it = neigh_.begin(); it != neigh_.end();)
    it = it->first.second.family == f ? neigh_.erase(it) : std::next(it);
}

void RouteModel::clear_routes(Family f) {
  for (auto it = routes_.begin(); it != routes_.end();)
    it = it->first.family == f ? routes_.erase(it) : std::next(it);
}

TableInput RouteModel::to_input() const {
  TableInput in;
  in.links.reserve(links_.size());
  for (const auto& [k, v] : links_)
    in.links.push_back(v);
  in.neighbours.reserve(neigh_.size());
  for (const auto& [k, v] : neigh_)
    in.neighbours.push_back(v);
  in.routes.reserve(routes_.size());
  for (const auto& [k, v] : routes_)
    in.routes.push_back(v.info);
  return in;
}

}  // namespace tripod::route
