#include "route/next_hop_table.h"

#include <arpa/inet.h>
#include <linux/neighbour.h>
#include <linux/rtnetlink.h>

#include <algorithm>
#include <bit>
#include <tuple>
#include <unordered_map>

#include "common/byte_order.h"

namespace tripod::route {

using detail::Key128;

std::optional<Addr> Addr::parse(std::string_view text) {
  const std::string s(text);
  Addr a;
  if (inet_pton(AF_INET, s.c_str(), a.bytes.data()) == 1) {
    a.family = Family::kIpv4;
    return a;
  }
  if (inet_pton(AF_INET6, s.c_str(), a.bytes.data()) == 1) {
    a.family = Family::kIpv6;
    return a;
  }
  return std::nullopt;
}

std::string Addr::to_string() const {
  char buf[INET6_ADDRSTRLEN] = {};
  if (family == Family::kIpv4) return inet_ntop(AF_INET, bytes.data(), buf, sizeof buf);
  if (family == Family::kIpv6) return inet_ntop(AF_INET6, bytes.data(), buf, sizeof buf);
  return "none";
}

std::string_view to_string(ResolveStatus s) {
  switch (s) {
    case ResolveStatus::kOk:
      return "ok";
    case ResolveStatus::kNoRoute:
      return "no_route";
    case ResolveStatus::kNoNeighbor:
      return "no_neighbor";
  }
  return "?";
}

namespace {

constexpr uint16_t kNudUsable =
    NUD_REACHABLE | NUD_STALE | NUD_DELAY | NUD_PROBE | NUD_PERMANENT | NUD_NOARP;

inline int fam_index(Family f) {
  return f == Family::kIpv6 ? 1 : 0;
}

inline Key128 load_key(Family f, const uint8_t* p) {
  Key128 k;
  if (f == Family::kIpv6) {
    k.hi = load_be<uint64_t>(p);
    k.lo = load_be<uint64_t>(p + 8);
  } else {
    k.hi = static_cast<uint64_t>(load_be32(p)) << 32;
  }
  return k;
}

inline Key128 mask_key(const Key128& k, uint32_t len) {
  if (len == 0) return {};
  if (len <= 64) return {k.hi & (~0ULL << (64 - len)), 0};
  return {k.hi, k.lo & (~0ULL << (128 - len))};
}

// murmur3's 64-bit finaliser: route and neighbour keys come from the kernel's
// configuration, not from packets, so a keyed hash buys nothing here.
inline uint64_t mix(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ULL;
  x ^= x >> 33;
  return x;
}

inline uint64_t hash_prefix(const Key128& k, uint32_t len) {
  return mix(k.hi ^ mix(k.lo ^ len));
}

inline uint64_t hash_neigh(uint32_t ifindex, Family f, const Key128& k) {
  return mix(k.hi ^ mix(k.lo ^ (static_cast<uint64_t>(ifindex) << 8) ^ static_cast<uint8_t>(f)));
}

size_t capacity_for(size_t n) {
  // Load factor <= 1/2 keeps linear probing short; at least 8 slots.
  return std::bit_ceil(std::max<size_t>(8, n * 2));
}

bool is_reject(uint8_t type) {
  return type == RTN_BLACKHOLE || type == RTN_UNREACHABLE || type == RTN_PROHIBIT ||
         type == RTN_THROW;
}

}  // namespace

NextHopTable::~NextHopTable() = default;

std::unique_ptr<const NextHopTable> NextHopTable::build(const TableInput& in, uint64_t generation) {
  std::unique_ptr<NextHopTable> t(new NextHopTable());
  t->generation_ = generation;

  // Links: the last record for an ifindex wins.
  std::unordered_map<uint32_t, uint32_t> link_idx;
  for (const LinkInfo& l : in.links) {
    auto [it, fresh] = link_idx.try_emplace(l.ifindex, static_cast<uint32_t>(t->links_.size()));
    if (fresh) {
      t->links_.push_back(l);
    } else {
      t->links_[it->second] = l;
    }
  }
  for (const LinkInfo& l : t->links_) {
    CompiledLink c;
    c.ifindex = l.ifindex;
    c.mtu = static_cast<uint16_t>(std::min<uint32_t>(l.mtu, 0xFFFF));
    c.mac = l.mac;
    c.has_mac = l.has_mac;
    t->clinks_.push_back(c);
  }

  // Neighbours.
  for (const NeighInfo& n : in.neighbours) {
    if (n.addr.family != Family::kIpv4 && n.addr.family != Family::kIpv6) continue;
    if (n.flags & NTF_PROXY) continue;
    CompiledNeigh c;
    c.ifindex = n.ifindex;
    c.family = n.addr.family;
    c.addr = load_key(n.addr.family, n.addr.bytes.data());
    c.usable = n.has_mac && (n.state & kNudUsable) != 0;
    c.refresh = c.usable && (n.state & NUD_STALE) != 0;
    c.mac = n.mac;
    t->neigh_.push_back(c);
    t->neigh_info_.push_back(n);
  }
  t->neigh_slots_.assign(capacity_for(t->neigh_.size()), 0);
  t->neigh_mask_ = t->neigh_slots_.size() - 1;
  for (uint32_t i = 0; i < t->neigh_.size(); ++i) {
    const CompiledNeigh& c = t->neigh_[i];
    uint64_t h = hash_neigh(c.ifindex, c.family, c.addr) & t->neigh_mask_;
    for (;; h = (h + 1) & t->neigh_mask_) {
      uint32_t& slot = t->neigh_slots_[h];
      if (slot == 0) {
        slot = i + 1;
        break;
      }
      const CompiledNeigh& o = t->neigh_[slot - 1];
      if (o.ifindex == c.ifindex && o.family == c.family && o.addr == c.addr) {
        slot = i + 1;  // duplicate record: the later one wins
        break;
      }
    }
  }

  // Routes: candidates per (family, length, prefix), best priority first.
  struct Cand {
    int fam;
    uint32_t len;
    Key128 key;
    uint32_t priority;
    size_t idx;
  };
  std::vector<Cand> cands;
  for (size_t i = 0; i < in.routes.size(); ++i) {
    const RouteInfo& r = in.routes[i];
    if (r.table != RT_TABLE_MAIN || r.tos != 0) continue;
    if (r.dst.family != Family::kIpv4 && r.dst.family != Family::kIpv6) continue;
    if (r.dst_len > (r.dst.family == Family::kIpv6 ? 128 : 32)) continue;
    if (r.type != RTN_UNICAST && !is_reject(r.type)) continue;
    cands.push_back({fam_index(r.dst.family), r.dst_len,
                     mask_key(load_key(r.dst.family, r.dst.bytes.data()), r.dst_len), r.priority,
                     i});
  }
  std::stable_sort(cands.begin(), cands.end(), [](const Cand& a, const Cand& b) {
    return std::tie(a.fam, a.len, a.key.hi, a.key.lo, a.priority) <
           std::tie(b.fam, b.len, b.key.hi, b.key.lo, b.priority);
  });

  auto usable_link = [&](uint32_t ifindex) -> int64_t {
    auto it = link_idx.find(ifindex);
    if (it == link_idx.end()) return -1;
    // A down link's routes are gone from the kernel (or about to be). An up
    // link without a MAC (tun, wireguard) stays: its packets go to the kernel.
    return t->links_[it->second].up ? static_cast<int64_t>(it->second) : -1;
  };

  std::vector<PrefixSlot> chosen[2];
  for (size_t i = 0; i < cands.size();) {
    size_t j = i;
    bool done = false;
    for (; j < cands.size() && cands[j].fam == cands[i].fam && cands[j].len == cands[i].len &&
           cands[j].key == cands[i].key;
         ++j) {
      if (done) continue;
      const RouteInfo& r = in.routes[cands[j].idx];
      CompiledRoute cr;
      std::vector<NextHopInfo> used;
      if (is_reject(r.type)) {
        cr.reject = true;
      } else {
        cr.nh_first = static_cast<uint32_t>(t->nexthops_.size());
        for (const NextHopInfo& nh : r.nexthops) {
          if (nh.flags & RTNH_F_DEAD) continue;
          if (nh.gateway.family != Family::kNone && nh.gateway.family != Family::kIpv4 &&
              nh.gateway.family != Family::kIpv6) {
            continue;
          }
          const int64_t li = usable_link(nh.ifindex);
          if (li < 0) continue;
          CompiledNextHop c;
          c.link = static_cast<uint32_t>(li);
          cr.total_weight += std::max<uint16_t>(nh.weight, 1);
          c.cum_weight = cr.total_weight;
          c.gateway = nh.gateway;
          if (nh.gateway.family != Family::kNone) {
            c.gw_key = load_key(nh.gateway.family, nh.gateway.bytes.data());
          }
          t->nexthops_.push_back(c);
          used.push_back(nh);
        }
        cr.nh_count = static_cast<uint32_t>(t->nexthops_.size()) - cr.nh_first;
        if (cr.nh_count == 0) continue;  // nothing usable: try the next priority
      }
      t->routes_.push_back(cr);
      t->route_nh_info_.push_back(std::move(used));
      PrefixSlot s;
      s.key = cands[i].key;
      s.len = cands[i].len;
      s.route = static_cast<uint32_t>(t->routes_.size());
      chosen[cands[i].fam].push_back(s);
      done = true;
    }
    i = j;
  }

  for (int f = 0; f < 2; ++f) {
    auto& table = t->prefix_[f];
    table.assign(capacity_for(chosen[f].size()), PrefixSlot{});
    t->prefix_mask_[f] = table.size() - 1;
    std::vector<uint8_t> lens;
    for (const PrefixSlot& s : chosen[f]) {
      uint64_t h = hash_prefix(s.key, s.len) & t->prefix_mask_[f];
      while (table[h].route != 0)
        h = (h + 1) & t->prefix_mask_[f];
      table[h] = s;
      lens.push_back(static_cast<uint8_t>(s.len));
    }
    std::sort(lens.begin(), lens.end(), std::greater<>());
    lens.erase(std::unique(lens.begin(), lens.end()), lens.end());
    t->lengths_[f] = std::move(lens);
    t->num_prefixes_ += chosen[f].size();
  }
  return t;
}

const NextHopTable::CompiledRoute* NextHopTable::lpm(Family family,
                                                     const Key128& k) const noexcept {
  const int f = fam_index(family);
  const PrefixSlot* table = prefix_[f].data();
  const uint64_t mask = prefix_mask_[f];
  for (const uint8_t len : lengths_[f]) {
    const Key128 m = mask_key(k, len);
    for (uint64_t h = hash_prefix(m, len) & mask;; h = (h + 1) & mask) {
      const PrefixSlot& s = table[h];
      if (s.route == 0) break;
      if (s.len == len && s.key == m) return &routes_[s.route - 1];
    }
  }
  return nullptr;
}

const NextHopTable::CompiledNeigh* NextHopTable::find_neigh(uint32_t ifindex, Family f,
                                                            const Key128& k) const noexcept {
  for (uint64_t h = hash_neigh(ifindex, f, k) & neigh_mask_;; h = (h + 1) & neigh_mask_) {
    const uint32_t slot = neigh_slots_[h];
    if (slot == 0) return nullptr;
    const CompiledNeigh& n = neigh_[slot - 1];
    if (n.ifindex == ifindex && n.family == f && n.addr == k) return &n;
  }
}

ResolveResult NextHopTable::resolve(Family family, const uint8_t* dst,
                                    uint32_t flow_hash) const noexcept {
  ResolveResult res;
  if (family != Family::kIpv4 && family != Family::kIpv6) return res;
  const Key128 k = load_key(family, dst);
  const CompiledRoute* r = lpm(family, k);
  if (r == nullptr || r->reject) return res;

  const CompiledNextHop* nh = &nexthops_[r->nh_first];
  if (r->nh_count > 1) {
    // Hash-threshold (RFC 2992) over the weights: scale the hash into
    // [0, total) without a division, then find its bucket.
    const uint32_t pick =
        static_cast<uint32_t>((static_cast<uint64_t>(flow_hash) * r->total_weight) >> 32);
    uint32_t i = 0;
    while (i + 1 < r->nh_count && pick >= nh[i].cum_weight)
      ++i;
    nh += i;
  }
  const CompiledLink& l = clinks_[nh->link];
  res.ifindex = l.ifindex;
  res.src_mac = l.mac;
  res.mtu = l.mtu;

  if (!l.has_mac) {
    // No Ethernet header can be built for this link: only the kernel can send.
    res.next_hop =
        nh->gateway.family == Family::kNone ? Addr::from_bytes(family, dst) : nh->gateway;
    res.status = ResolveStatus::kNoNeighbor;
    return res;
  }
  const CompiledNeigh* n;
  if (nh->gateway.family == Family::kNone) {
    res.next_hop = Addr::from_bytes(family, dst);
    n = find_neigh(l.ifindex, family, k);
  } else {
    res.next_hop = nh->gateway;
    n = find_neigh(l.ifindex, nh->gateway.family, nh->gw_key);
  }
  if (n == nullptr || !n->usable) {
    res.status = ResolveStatus::kNoNeighbor;
    return res;
  }
  res.status = ResolveStatus::kOk;
  res.dst_mac = n->mac;
  res.refresh = n->refresh;
  return res;
}

const LinkInfo* NextHopTable::link(uint32_t ifindex) const {
  for (const LinkInfo& l : links_)
    if (l.ifindex == ifindex) return &l;
  return nullptr;
}

const NeighInfo* NextHopTable::neighbour(uint32_t ifindex, const Addr& addr) const {
  const NeighInfo* found = nullptr;
  for (const NeighInfo& n : neigh_info_)
    if (n.ifindex == ifindex && n.addr == addr) found = &n;  // the later record wins
  return found;
}

std::vector<NextHopInfo> NextHopTable::route_nexthops(const Addr& dst) const {
  if (dst.family != Family::kIpv4 && dst.family != Family::kIpv6) return {};
  const CompiledRoute* r = lpm(dst.family, load_key(dst.family, dst.bytes.data()));
  if (r == nullptr || r->reject) return {};
  return route_nh_info_[static_cast<size_t>(r - routes_.data())];
}

}  // namespace tripod::route
