// NextHopTable: an immutable snapshot of the kernel's main routing table,
// links and neighbours, in the form the data plane needs after a network
// function rewrote a packet: "which interface, which MACs".
//
// Built on the control thread (allocates freely), published through
// SnapshotDomain (snapshot_rcu.h) and read by workers: resolve() does no
// allocation, takes no lock and throws nothing.
//
// Byte order: addresses are network order, as they sit in the frame; every
// other field is host order.
#pragma once

#include <array>
#include <compare>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "packet/packet_meta.h"

namespace tripod::route {

using Mac = std::array<uint8_t, 6>;

// An IPv4 or IPv6 address; IPv4 uses bytes[0..3] and the rest stays zero, so
// addresses compare as plain bytes.
struct Addr {
  Family family = Family::kNone;
  std::array<uint8_t, 16> bytes{};

  static Addr from_bytes(Family f, const uint8_t* p) {
    Addr a;
    a.family = f;
    std::memcpy(a.bytes.data(), p, f == Family::kIpv6 ? 16 : 4);
    return a;
  }
  // "192.0.2.1" / "2001:db8::1"; nullopt if unparsable.
  static std::optional<Addr> parse(std::string_view text);
  std::string to_string() const;
  size_t len() const { return family == Family::kIpv6 ? 16 : 4; }

  friend auto operator<=>(const Addr&, const Addr&) = default;
  friend bool operator==(const Addr&, const Addr&) = default;
};

// ---------------------------------------------------------------------------
// Builder input: plain records, as the netlink decoder produces them (or a
// test writes them by hand).

struct LinkInfo {
  uint32_t ifindex = 0;
  Mac mac{};
  bool has_mac = false;   // an Ethernet-like 6-byte address
  bool up = false;        // IFF_UP (administratively up)
  bool lower_up = false;  // IFF_LOWER_UP (carrier); informational only
  uint32_t mtu = 0;
  std::string name;
};

struct NeighInfo {
  uint32_t ifindex = 0;
  Addr addr;
  Mac mac{};
  bool has_mac = false;
  uint16_t state = 0;  // NUD_* bits
  uint8_t flags = 0;   // NTF_*
};

struct NextHopInfo {
  uint32_t ifindex = 0;
  Addr gateway;         // family kNone: on-link (the destination is the neighbour)
  uint8_t flags = 0;    // RTNH_F_*
  uint16_t weight = 1;  // rtnh_hops + 1, 1..256

  friend bool operator==(const NextHopInfo&, const NextHopInfo&) = default;
};

struct RouteInfo {
  Addr dst;  // host bits beyond dst_len are ignored
  uint8_t dst_len = 0;
  uint8_t type = 0;  // RTN_*
  uint8_t tos = 0;
  uint32_t priority = 0;  // metric; the lowest usable one wins
  uint32_t table = 254;   // RT_TABLE_MAIN
  std::vector<NextHopInfo> nexthops;

  friend bool operator==(const RouteInfo&, const RouteInfo&) = default;
};

struct TableInput {
  std::vector<LinkInfo> links;
  std::vector<NeighInfo> neighbours;
  std::vector<RouteInfo> routes;
};

// ---------------------------------------------------------------------------

enum class ResolveStatus : uint8_t {
  kOk = 0,
  kNoRoute,  // no route, a reject route (blackhole/unreachable/prohibit/throw), or no usable link
  kNoNeighbor,  // route found, but no Ethernet header can be built (neighbour absent,
                // incomplete or failed; or a link without MAC): hand to KernelSlowPath
};
std::string_view to_string(ResolveStatus s);

struct ResolveResult {
  ResolveStatus status = ResolveStatus::kNoRoute;
  // Neighbour usable but STALE/DELAY/PROBE: the kernel only confirms it if
  // someone uses it, and the data plane bypasses the kernel, so the caller
  // should ask the control thread for NetlinkMonitor::request_resolution().
  bool refresh = false;
  uint16_t mtu = 0;
  uint32_t ifindex = 0;  // valid for kOk and kNoNeighbor
  Mac src_mac{};         // egress link's MAC (kOk, kNoNeighbor)
  Mac dst_mac{};         // neighbour's MAC (kOk)
  Addr next_hop;         // gateway, or the destination itself on-link (kOk, kNoNeighbor)
};

namespace detail {
// 128-bit address as two host-order words (big-endian loaded), so masking by
// prefix length is two shifts; IPv4 sits in the top 32 bits of `hi`.
struct Key128 {
  uint64_t hi = 0;
  uint64_t lo = 0;
  friend bool operator==(const Key128&, const Key128&) = default;
};
}  // namespace detail

class NextHopTable {
 public:
  // Builds a snapshot. Per (family, prefix, length) the route with the lowest
  // priority that has a usable next hop (link known and up; not RTNH_F_DEAD)
  // wins, as in the kernel; reject routes are always usable and
  // shadow shorter prefixes. Only RT_TABLE_MAIN routes with tos 0 are used.
  static std::unique_ptr<const NextHopTable> build(const TableInput& in, uint64_t generation = 0);
  static std::unique_ptr<const NextHopTable> empty() { return build(TableInput{}); }

  // Longest-prefix match of `dst` (4 or 16 network-order bytes), choice of a
  // multipath next hop by `flow_hash` (weighted, stable for a given hash and
  // table), then the neighbour. Never allocates, locks or throws.
  ResolveResult resolve(Family family, const uint8_t* dst, uint32_t flow_hash) const noexcept;
  ResolveResult resolve(const Addr& dst, uint32_t flow_hash) const noexcept {
    return resolve(dst.family, dst.bytes.data(), flow_hash);
  }

  uint64_t generation() const { return generation_; }
  size_t num_routes() const { return num_prefixes_; }
  size_t num_neighbours() const { return neigh_.size(); }
  size_t num_links() const { return links_.size(); }
  // Control/test helpers (not for the data plane hot path).
  const LinkInfo* link(uint32_t ifindex) const;
  const NeighInfo* neighbour(uint32_t ifindex, const Addr& addr) const;
  // The next hops the route matching `dst` would choose from (empty if none
  // or a reject route).
  std::vector<NextHopInfo> route_nexthops(const Addr& dst) const;

  ~NextHopTable();
  NextHopTable(const NextHopTable&) = delete;
  NextHopTable& operator=(const NextHopTable&) = delete;

  // Implementation records (public only so that the .cc's helpers see them).
  struct CompiledNextHop {
    uint32_t link = 0;        // index into clinks_
    uint32_t cum_weight = 0;  // running sum of weights up to and including this one
    Addr gateway;             // family kNone: on-link
    detail::Key128 gw_key;
  };
  struct CompiledRoute {
    bool reject = false;
    uint32_t nh_first = 0;
    uint32_t nh_count = 0;
    uint32_t total_weight = 0;
  };
  struct CompiledLink {
    uint32_t ifindex = 0;
    uint16_t mtu = 0;
    bool has_mac = false;
    Mac mac{};
  };
  struct CompiledNeigh {
    uint32_t ifindex = 0;
    Family family = Family::kNone;
    bool usable = false;
    bool refresh = false;
    detail::Key128 addr;
    Mac mac{};
  };
  struct PrefixSlot {
    detail::Key128 key;
    uint32_t len = 0;
    uint32_t route = 0;  // index into routes_ + 1; 0 = empty slot
  };

 private:
  NextHopTable() = default;
  const CompiledRoute* lpm(Family family, const detail::Key128& k) const noexcept;
  const CompiledNeigh* find_neigh(uint32_t ifindex, Family f,
                                  const detail::Key128& k) const noexcept;

  uint64_t generation_ = 0;
  size_t num_prefixes_ = 0;
  std::vector<CompiledRoute> routes_;
  std::vector<CompiledNextHop> nexthops_;
  std::vector<CompiledLink> clinks_;
  // One open-addressing table per family holding every (prefix, length);
  // lengths present are probed longest first.
  std::vector<PrefixSlot> prefix_[2];
  uint64_t prefix_mask_[2] = {0, 0};
  std::vector<uint8_t> lengths_[2];
  std::vector<uint32_t> neigh_slots_;  // index into neigh_ + 1; 0 = empty
  uint64_t neigh_mask_ = 0;
  std::vector<CompiledNeigh> neigh_;
  // Control-side copies for the helpers above.
  std::vector<LinkInfo> links_;
  std::vector<NeighInfo> neigh_info_;
  std::vector<std::vector<NextHopInfo>> route_nh_info_;
};

}  // namespace tripod::route
