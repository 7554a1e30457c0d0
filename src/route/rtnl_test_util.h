// Builds rtnetlink messages byte by byte, as the kernel lays them out, for
// the decoder/model tests and the fuzz seed generator. Tests only.
#pragma once

#include <linux/if.h>
#include <linux/if_link.h>
#include <linux/neighbour.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <sys/socket.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "route/next_hop_table.h"

namespace tripod::route::testing {

using Bytes = std::vector<uint8_t>;

inline void pad4(Bytes* b) {
  while (b->size() % 4)
    b->push_back(0);
}

class NlMsg {
 public:
  NlMsg(uint16_t type, uint16_t flags, uint32_t seq = 0) {
    nlmsghdr h{};
    h.nlmsg_type = type;
    h.nlmsg_flags = flags;
    h.nlmsg_seq = seq;
    append(&h, sizeof h);
  }
  template <typename T>
  NlMsg& hdr(const T& h) {
    append(&h, sizeof h);
    pad4(&b_);
    return *this;
  }
  NlMsg& attr(uint16_t type, const void* p, size_t n) {
    b_ = attr_bytes(std::move(b_), type, p, n);
    return *this;
  }
  NlMsg& u32(uint16_t type, uint32_t v) { return attr(type, &v, 4); }
  NlMsg& addr(uint16_t type, const Addr& a) { return attr(type, a.bytes.data(), a.len()); }
  Bytes bytes() const {
    Bytes out = b_;
    const auto len = static_cast<uint32_t>(out.size());
    if (len >= 4) std::memcpy(out.data(), &len, 4);  // (the header is always there)
    return out;
  }

  static Bytes attr_bytes(Bytes b, uint16_t type, const void* p, size_t n) {
    nlattr a{};
    a.nla_len = static_cast<uint16_t>(4 + n);
    a.nla_type = type;
    const auto* ap = reinterpret_cast<const uint8_t*>(&a);
    b.insert(b.end(), ap, ap + sizeof a);
    const auto* pp = static_cast<const uint8_t*>(p);
    b.insert(b.end(), pp, pp + n);
    pad4(&b);
    return b;
  }

 private:
  void append(const void* p, size_t n) {
    const auto* pp = static_cast<const uint8_t*>(p);
    b_.insert(b_.end(), pp, pp + n);
  }
  Bytes b_;
};

inline Addr A(const char* text) {
  return *Addr::parse(text);
}

inline Bytes link_msg(uint16_t type, uint32_t ifindex, bool up, const Mac& mac, uint32_t mtu = 1500,
                      const char* name = "eth0") {
  ifinfomsg ifi{};
  ifi.ifi_family = AF_UNSPEC;
  ifi.ifi_index = static_cast<int>(ifindex);
  ifi.ifi_flags = up ? (IFF_UP | IFF_RUNNING | IFF_LOWER_UP) : 0;
  return NlMsg(type, 0)
      .hdr(ifi)
      .attr(IFLA_IFNAME, name, std::strlen(name) + 1)
      .attr(IFLA_ADDRESS, mac.data(), 6)
      .u32(IFLA_MTU, mtu)
      .bytes();
}

inline Bytes neigh_msg(uint16_t type, uint32_t ifindex, const Addr& a, uint16_t state,
                       const Mac* mac) {
  ndmsg ndm{};
  ndm.ndm_family = a.family == Family::kIpv6 ? AF_INET6 : AF_INET;
  ndm.ndm_ifindex = static_cast<int>(ifindex);
  ndm.ndm_state = state;
  NlMsg m(type, 0);
  m.hdr(ndm).addr(NDA_DST, a);
  if (mac != nullptr) m.attr(NDA_LLADDR, mac->data(), 6);
  return m.bytes();
}

struct NhSpec {
  uint32_t ifindex;
  const char* gw;  // nullptr: on-link
  uint8_t hops = 0;
  uint8_t flags = 0;
};

inline Bytes route_msg(uint16_t type, uint16_t nl_flags, const char* dst, uint8_t len,
                       const std::vector<NhSpec>& nhs, uint32_t prio = 0,
                       uint8_t rtype = RTN_UNICAST, uint32_t table = RT_TABLE_MAIN,
                       bool force_multipath = false) {
  const Addr d = A(dst);
  rtmsg rtm{};
  rtm.rtm_family = d.family == Family::kIpv6 ? AF_INET6 : AF_INET;
  rtm.rtm_dst_len = len;
  rtm.rtm_table = table < 256 ? static_cast<uint8_t>(table) : static_cast<uint8_t>(RT_TABLE_COMPAT);
  rtm.rtm_protocol = RTPROT_STATIC;
  rtm.rtm_type = rtype;
  NlMsg m(type, nl_flags);
  m.hdr(rtm).u32(RTA_TABLE, table);
  if (len > 0) m.addr(RTA_DST, d);
  if (prio != 0) m.u32(RTA_PRIORITY, prio);
  if (nhs.size() == 1 && !force_multipath) {
    m.u32(RTA_OIF, nhs[0].ifindex);
    if (nhs[0].gw != nullptr) m.addr(RTA_GATEWAY, A(nhs[0].gw));
  } else if (!nhs.empty()) {
    Bytes mp;
    for (const NhSpec& s : nhs) {
      Bytes one;
      if (s.gw != nullptr) {
        const Addr g = A(s.gw);
        one = NlMsg::attr_bytes(std::move(one), RTA_GATEWAY, g.bytes.data(), g.len());
      }
      rtnexthop rh{};
      rh.rtnh_len = static_cast<uint16_t>(sizeof rh + one.size());
      rh.rtnh_flags = s.flags;
      rh.rtnh_hops = s.hops;
      rh.rtnh_ifindex = static_cast<int>(s.ifindex);
      const auto* p = reinterpret_cast<const uint8_t*>(&rh);
      mp.insert(mp.end(), p, p + sizeof rh);
      mp.insert(mp.end(), one.begin(), one.end());
    }
    m.attr(RTA_MULTIPATH, mp.data(), mp.size());
  }
  return m.bytes();
}

inline Bytes done_msg(uint32_t seq = 0) {
  int32_t zero = 0;
  NlMsg m(NLMSG_DONE, NLM_F_MULTI, seq);
  m.hdr(zero);
  return m.bytes();
}

inline Bytes concat(const std::vector<Bytes>& parts) {
  Bytes out;
  for (const Bytes& p : parts)
    out.insert(out.end(), p.begin(), p.end());
  return out;
}

}  // namespace tripod::route::testing
