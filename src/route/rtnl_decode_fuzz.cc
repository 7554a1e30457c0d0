// libFuzzer target for the rtnetlink decoder and everything that trusts its
// output: each input is one datagram as recv() would return it. Messages are
// applied to a RouteModel (the first byte picks dump or event semantics), a
// snapshot is built and queried; a bad bound shows up as an ASan report, a
// broken invariant as a trap.
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "common/fuzz_check.h"
#include "route/next_hop_table.h"
#include "route/route_model.h"
#include "route/rtnl_decode.h"

namespace tripod::route {
namespace {

void check_msg(const DecodedMsg& m, DecodeError e) {
  FUZZ_CHECK(e < DecodeError::kCount);
  if (e != DecodeError::kOk) {
    FUZZ_CHECK(m.kind == MsgKind::kIgnored);
    return;
  }
  if (m.kind == MsgKind::kRoute) {
    const RouteInfo& r = m.route.info;
    FUZZ_CHECK(r.dst.family == Family::kIpv4 || r.dst.family == Family::kIpv6);
    FUZZ_CHECK(r.dst_len <= (r.dst.family == Family::kIpv6 ? 128 : 32));
    for (const NextHopInfo& nh : r.nexthops) {
      FUZZ_CHECK(nh.weight >= 1 && nh.weight <= 256);
    }
  }
  if (m.kind == MsgKind::kNeigh) {
    const Family f = m.neigh.info.addr.family;
    FUZZ_CHECK(f == Family::kIpv4 || f == Family::kIpv6);
    FUZZ_CHECK(m.neigh.info.ifindex != 0);
  }
  if (m.kind == MsgKind::kLink) FUZZ_CHECK(m.link.info.ifindex != 0);
}

}  // namespace
}  // namespace tripod::route

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace tripod;
  using namespace tripod::route;
  if (size == 0) return 0;
  const bool from_dump = (data[0] & 1) != 0;
  RouteModel model;
  std::vector<Addr> probes;
  for_each_message(data, size, [&](const DecodedMsg& m, DecodeError e) {
    check_msg(m, e);
    if (e != DecodeError::kOk) return;
    // Messages whose links are missing would resolve to nothing: announce
    // every ifindex seen as an up Ethernet link, so lookups get deep.
    auto add_link = [&](uint32_t ifindex) {
      DecodedMsg l;
      l.kind = MsgKind::kLink;
      l.link.info.ifindex = ifindex;
      l.link.info.up = true;
      l.link.info.has_mac = true;
      l.link.info.mtu = 1500;
      model.apply(l, true);
    };
    if (m.kind == MsgKind::kRoute) {
      for (const NextHopInfo& nh : m.route.info.nexthops) {
        add_link(nh.ifindex);
        if (nh.gateway.family != Family::kNone) probes.push_back(nh.gateway);
      }
      probes.push_back(m.route.info.dst);
    }
    if (m.kind == MsgKind::kNeigh) probes.push_back(m.neigh.info.addr);
    model.apply(m, from_dump);
  });
  auto table = NextHopTable::build(model.to_input(), 1);
  FUZZ_CHECK(table->num_routes() <= model.num_routes());
  uint32_t hash = 0x9E3779B9u;
  for (const Addr& a : probes) {
    for (int i = 0; i < 4; ++i, hash *= 2654435761u) {
      const ResolveResult r = table->resolve(a, hash);
      if (r.status != ResolveStatus::kNoRoute) FUZZ_CHECK(table->link(r.ifindex) != nullptr);
      if (r.status == ResolveStatus::kOk) {
        const NeighInfo* n = table->neighbour(r.ifindex, r.next_hop);
        FUZZ_CHECK(n != nullptr && n->has_mac && n->mac == r.dst_mac);
      }
    }
  }
  return 0;
}
