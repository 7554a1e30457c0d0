#include "route/rtnl_decode.h"

#include <linux/if.h>
#include <linux/if_addr.h>
#include <linux/if_link.h>
#include <linux/neighbour.h>
#include <linux/rtnetlink.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstring>

namespace tripod::route {
namespace {

// Attribute table of one message: the payload (pointer, length) of the last
// attribute of each type up to Max. Own walker rather than libmnl's parser so
// that every bound is the message's exact length, independent of alignment.
template <size_t Max>
struct Attrs {
  const uint8_t* p[Max + 1] = {};
  size_t len[Max + 1] = {};
  bool has(size_t t) const { return p[t] != nullptr; }
};

template <size_t Max>
DecodeError parse_attrs(const uint8_t* b, size_t n, Attrs<Max>* tb) {
  size_t off = 0;
  while (n - off >= 4) {
    uint16_t alen, atype;
    std::memcpy(&alen, b + off, 2);
    std::memcpy(&atype, b + off + 2, 2);
    if (alen < 4 || alen > n - off) return DecodeError::kBadAttribute;
    const size_t type = atype & NLA_TYPE_MASK;
    if (type <= Max) {
      tb->p[type] = b + off + 4;
      tb->len[type] = alen - 4u;
    }
    off += nl_align(alen);
    if (off >= n) break;
  }
  return DecodeError::kOk;
}

template <size_t Max>
bool get_u32(const Attrs<Max>& tb, size_t t, uint32_t* v) {
  if (!tb.has(t)) return true;
  if (tb.len[t] < 4) return false;
  std::memcpy(v, tb.p[t], 4);
  return true;
}

Family family_of(uint8_t af) {
  if (af == AF_INET) return Family::kIpv4;
  if (af == AF_INET6) return Family::kIpv6;
  return Family::kNone;
}

// An address attribute must be exactly 4 or 16 bytes for its family.
bool get_addr(const uint8_t* p, size_t len, Family f, Addr* out) {
  if (len != (f == Family::kIpv6 ? 16u : 4u)) return false;
  *out = Addr::from_bytes(f, p);
  return true;
}

// RTA_VIA: struct rtvia { __kernel_sa_family_t family; __u8 addr[]; }.
bool get_via(const uint8_t* p, size_t len, Addr* out) {
  if (len < 2) return false;
  uint16_t af;
  std::memcpy(&af, p, 2);
  const Family f = family_of(static_cast<uint8_t>(af));
  if (f == Family::kNone || af > 0xFF) return false;
  return get_addr(p + 2, len - 2, f, out);
}

DecodeError decode_link(const uint8_t* pl, size_t n, DecodedMsg* m) {
  ifinfomsg ifi;
  if (n < sizeof ifi) return DecodeError::kTruncatedPayload;
  std::memcpy(&ifi, pl, sizeof ifi);
  Attrs<IFLA_MTU> tb;
  if (auto e = parse_attrs(pl + nl_align(sizeof ifi), n - std::min(n, nl_align(sizeof ifi)), &tb);
      e != DecodeError::kOk) {
    return e;
  }
  // Bridge port notifications (AF_BRIDGE) share the group: not a link state.
  if (ifi.ifi_family != AF_UNSPEC || ifi.ifi_index <= 0) return DecodeError::kOk;
  LinkMsg& l = m->link;
  l.del = m->nl_type == RTM_DELLINK;
  l.flags = ifi.ifi_flags;
  l.info.ifindex = static_cast<uint32_t>(ifi.ifi_index);
  l.info.up = (ifi.ifi_flags & IFF_UP) != 0;
  l.info.lower_up = (ifi.ifi_flags & IFF_LOWER_UP) != 0;
  if (tb.has(IFLA_ADDRESS) && tb.len[IFLA_ADDRESS] == 6) {
    std::memcpy(l.info.mac.data(), tb.p[IFLA_ADDRESS], 6);
    l.info.has_mac = true;
  }
  if (!get_u32(tb, IFLA_MTU, &l.info.mtu)) return DecodeError::kBadAttribute;
  if (tb.has(IFLA_IFNAME)) {
    const auto* s = reinterpret_cast<const char*>(tb.p[IFLA_IFNAME]);
    l.info.name.assign(s, strnlen(s, std::min<size_t>(tb.len[IFLA_IFNAME], IFNAMSIZ)));
  }
  m->kind = MsgKind::kLink;
  return DecodeError::kOk;
}

DecodeError decode_addr(const uint8_t* pl, size_t n, DecodedMsg* m) {
  ifaddrmsg ifa;
  if (n < sizeof ifa) return DecodeError::kTruncatedPayload;
  std::memcpy(&ifa, pl, sizeof ifa);
  Attrs<IFA_LOCAL> tb;
  if (auto e = parse_attrs(pl + nl_align(sizeof ifa), n - std::min(n, nl_align(sizeof ifa)), &tb);
      e != DecodeError::kOk) {
    return e;
  }
  const Family f = family_of(ifa.ifa_family);
  if (f == Family::kNone) return DecodeError::kOk;
  if (ifa.ifa_prefixlen > (f == Family::kIpv6 ? 128 : 32)) return DecodeError::kBadPrefixLength;
  AddrMsg& a = m->addr;
  a.del = m->nl_type == RTM_DELADDR;
  a.ifindex = ifa.ifa_index;
  a.prefixlen = ifa.ifa_prefixlen;
  // IFA_LOCAL is the interface's own address on point-to-point links.
  const size_t t = tb.has(IFA_LOCAL) ? IFA_LOCAL : IFA_ADDRESS;
  if (tb.has(t) && !get_addr(tb.p[t], tb.len[t], f, &a.addr)) {
    return DecodeError::kBadAddressLength;
  }
  m->kind = MsgKind::kAddr;
  return DecodeError::kOk;
}

DecodeError decode_multipath(const uint8_t* p, size_t n, Family f, RouteMsg* r) {
  size_t off = 0;
  while (n - off >= sizeof(rtnexthop)) {
    rtnexthop rtnh;
    std::memcpy(&rtnh, p + off, sizeof rtnh);
    if (rtnh.rtnh_len < sizeof rtnh || rtnh.rtnh_len > n - off) return DecodeError::kBadMultipath;
    Attrs<RTA_VIA> tb;
    if (parse_attrs(p + off + sizeof rtnh, rtnh.rtnh_len - sizeof rtnh, &tb) != DecodeError::kOk) {
      return DecodeError::kBadMultipath;
    }
    NextHopInfo nh;
    nh.ifindex = static_cast<uint32_t>(rtnh.rtnh_ifindex);
    nh.flags = rtnh.rtnh_flags;
    nh.weight = static_cast<uint16_t>(rtnh.rtnh_hops + 1u);
    if (tb.has(RTA_GATEWAY) && !get_addr(tb.p[RTA_GATEWAY], tb.len[RTA_GATEWAY], f, &nh.gateway)) {
      return DecodeError::kBadAddressLength;
    }
    if (tb.has(RTA_VIA) && !get_via(tb.p[RTA_VIA], tb.len[RTA_VIA], &nh.gateway)) {
      return DecodeError::kBadAddressLength;
    }
    r->info.nexthops.push_back(nh);
    off += nl_align(rtnh.rtnh_len);
    if (off >= n) break;
  }
  return DecodeError::kOk;
}

DecodeError decode_route(const uint8_t* pl, size_t n, DecodedMsg* m) {
  rtmsg rtm;
  if (n < sizeof rtm) return DecodeError::kTruncatedPayload;
  std::memcpy(&rtm, pl, sizeof rtm);
  Attrs<RTA_NH_ID> tb;
  if (auto e = parse_attrs(pl + nl_align(sizeof rtm), n - std::min(n, nl_align(sizeof rtm)), &tb);
      e != DecodeError::kOk) {
    return e;
  }
  const Family f = family_of(rtm.rtm_family);
  if (f == Family::kNone) return DecodeError::kOk;
  if (rtm.rtm_dst_len > (f == Family::kIpv6 ? 128 : 32)) return DecodeError::kBadPrefixLength;
  RouteMsg& r = m->route;
  r.del = m->nl_type == RTM_DELROUTE;
  r.protocol = rtm.rtm_protocol;
  r.scope = rtm.rtm_scope;
  r.rtm_flags = rtm.rtm_flags;
  r.info.dst.family = f;
  r.info.dst_len = rtm.rtm_dst_len;
  r.info.type = rtm.rtm_type;
  r.info.tos = rtm.rtm_tos;
  r.info.table = rtm.rtm_table;
  // The 8-bit rtm_table saturates at RT_TABLE_COMPAT; RTA_TABLE is exact.
  if (!get_u32(tb, RTA_TABLE, &r.info.table)) return DecodeError::kBadAttribute;
  if (!get_u32(tb, RTA_PRIORITY, &r.info.priority)) return DecodeError::kBadAttribute;
  if (tb.has(RTA_DST) && !get_addr(tb.p[RTA_DST], tb.len[RTA_DST], f, &r.info.dst)) {
    return DecodeError::kBadAddressLength;
  }
  r.has_nh_id = tb.has(RTA_NH_ID);
  if (tb.has(RTA_MULTIPATH)) {
    r.multipath = true;
    if (auto e = decode_multipath(tb.p[RTA_MULTIPATH], tb.len[RTA_MULTIPATH], f, &r);
        e != DecodeError::kOk) {
      return e;
    }
  } else if (tb.has(RTA_OIF) || tb.has(RTA_GATEWAY) || tb.has(RTA_VIA)) {
    NextHopInfo nh;
    if (!get_u32(tb, RTA_OIF, &nh.ifindex)) return DecodeError::kBadAttribute;
    // Single-path routes carry their next hop's RTNH_F_* in rtm_flags.
    nh.flags = static_cast<uint8_t>(rtm.rtm_flags & 0xFF);
    if (tb.has(RTA_GATEWAY) && !get_addr(tb.p[RTA_GATEWAY], tb.len[RTA_GATEWAY], f, &nh.gateway)) {
      return DecodeError::kBadAddressLength;
    }
    if (tb.has(RTA_VIA) && !get_via(tb.p[RTA_VIA], tb.len[RTA_VIA], &nh.gateway)) {
      return DecodeError::kBadAddressLength;
    }
    r.info.nexthops.push_back(nh);
  }
  m->kind = MsgKind::kRoute;
  return DecodeError::kOk;
}

DecodeError decode_neigh(const uint8_t* pl, size_t n, DecodedMsg* m) {
  ndmsg ndm;
  if (n < sizeof ndm) return DecodeError::kTruncatedPayload;
  std::memcpy(&ndm, pl, sizeof ndm);
  Attrs<NDA_LLADDR> tb;
  if (auto e = parse_attrs(pl + nl_align(sizeof ndm), n - std::min(n, nl_align(sizeof ndm)), &tb);
      e != DecodeError::kOk) {
    return e;
  }
  const Family f = family_of(ndm.ndm_family);
  // AF_BRIDGE (FDB) entries share the group; proxy entries are not neighbours.
  if (f == Family::kNone || ndm.ndm_ifindex <= 0 || !tb.has(NDA_DST)) return DecodeError::kOk;
  NeighMsg& nb = m->neigh;
  nb.del = m->nl_type == RTM_DELNEIGH;
  nb.info.ifindex = static_cast<uint32_t>(ndm.ndm_ifindex);
  nb.info.state = ndm.ndm_state;
  nb.info.flags = ndm.ndm_flags;
  if (!get_addr(tb.p[NDA_DST], tb.len[NDA_DST], f, &nb.info.addr)) {
    return DecodeError::kBadAddressLength;
  }
  if (tb.has(NDA_LLADDR) && tb.len[NDA_LLADDR] == 6) {
    std::memcpy(nb.info.mac.data(), tb.p[NDA_LLADDR], 6);
    nb.info.has_mac = true;
  }
  m->kind = MsgKind::kNeigh;
  return DecodeError::kOk;
}

}  // namespace

DecodeError decode_message(const uint8_t* buf, size_t avail, DecodedMsg* out) {
  *out = DecodedMsg{};
  if (avail < kNlHdrLen) return DecodeError::kTruncatedHeader;
  nlmsghdr h;
  std::memcpy(&h, buf, sizeof h);
  if (h.nlmsg_len < kNlHdrLen || h.nlmsg_len > avail) return DecodeError::kTruncatedHeader;
  out->nl_type = h.nlmsg_type;
  out->nl_flags = h.nlmsg_flags;
  out->seq = h.nlmsg_seq;
  out->portid = h.nlmsg_pid;
  const uint8_t* pl = buf + kNlHdrLen;
  const size_t n = h.nlmsg_len - kNlHdrLen;

  DecodeError e = DecodeError::kOk;
  switch (h.nlmsg_type) {
    case NLMSG_DONE:
      out->kind = MsgKind::kDone;
      break;
    case NLMSG_ERROR: {
      int32_t err;
      if (n < sizeof err) return DecodeError::kTruncatedPayload;
      std::memcpy(&err, pl, sizeof err);
      out->error = err;
      out->kind = MsgKind::kError;
      break;
    }
    case RTM_NEWLINK:
    case RTM_DELLINK:
      e = decode_link(pl, n, out);
      break;
    case RTM_NEWADDR:
    case RTM_DELADDR:
      e = decode_addr(pl, n, out);
      break;
    case RTM_NEWROUTE:
    case RTM_DELROUTE:
      e = decode_route(pl, n, out);
      break;
    case RTM_NEWNEIGH:
    case RTM_DELNEIGH:
      e = decode_neigh(pl, n, out);
      break;
    default:
      break;
  }
  if (e != DecodeError::kOk) out->kind = MsgKind::kIgnored;
  return e;
}

}  // namespace tripod::route
