// NextHopTable on hand-built inputs: LPM, reject routes, metrics, dead
// links, multipath weights, neighbour states, and a randomized comparison
// against a brute-force longest-prefix match.
#include "route/next_hop_table.h"

#include <gtest/gtest.h>
#include <linux/neighbour.h>
#include <linux/rtnetlink.h>

#include <cstring>
#include <random>
#include <set>

namespace tripod::route {
namespace {

Addr A(const char* s) {
  auto a = Addr::parse(s);
  EXPECT_TRUE(a.has_value()) << s;
  return a.value_or(Addr{});
}

const Mac kMac1{2, 0, 0, 0, 0, 1};
const Mac kMac2{2, 0, 0, 0, 0, 2};
const Mac kMac3{2, 0, 0, 0, 0, 3};
const Mac kPeer{2, 0, 0, 0, 0, 0xAA};
const Mac kPeer2{2, 0, 0, 0, 0, 0xBB};

LinkInfo link(uint32_t ifindex, const Mac& mac, bool up = true) {
  LinkInfo l;
  l.ifindex = ifindex;
  l.mac = mac;
  l.has_mac = true;
  l.up = up;
  l.lower_up = up;
  l.mtu = 1500;
  return l;
}

NeighInfo neigh(uint32_t ifindex, const char* addr, uint16_t state, const Mac* mac = &kPeer) {
  NeighInfo n;
  n.ifindex = ifindex;
  n.addr = A(addr);
  n.state = state;
  if (mac != nullptr) {
    n.mac = *mac;
    n.has_mac = true;
  }
  return n;
}

RouteInfo route(const char* dst, uint8_t len, std::vector<NextHopInfo> nhs, uint32_t prio = 0,
                uint8_t type = RTN_UNICAST) {
  RouteInfo r;
  r.dst = A(dst);
  r.dst_len = len;
  r.type = type;
  r.priority = prio;
  r.nexthops = std::move(nhs);
  return r;
}

NextHopInfo via(const char* gw, uint32_t ifindex, uint16_t weight = 1) {
  NextHopInfo nh;
  nh.ifindex = ifindex;
  nh.gateway = A(gw);
  nh.weight = weight;
  return nh;
}

NextHopInfo dev(uint32_t ifindex) {
  NextHopInfo nh;
  nh.ifindex = ifindex;
  return nh;
}

class NextHopTableTest : public ::testing::Test {
 protected:
  void SetUp() override {
    in_.links = {link(1, kMac1), link(2, kMac2), link(3, kMac3, /*up=*/false)};
    in_.routes = {
        route("0.0.0.0", 0, {via("10.0.0.1", 1)}),
        route("10.1.0.0", 16, {via("10.0.0.2", 1)}),
        route("10.1.2.0", 24, {dev(2)}),
        route("10.1.2.128", 25, {}, 0, RTN_BLACKHOLE),
        route("192.168.0.0", 16, {via("10.0.0.3", 3)}, 100),  // link down
        route("192.168.0.0", 16, {via("10.0.0.4", 1)}, 200),
        route("172.16.0.0", 12, {via("10.0.0.5", 1, 1), via("10.0.1.5", 2, 3)}),
        route("::", 0, {via("fe80::1", 1)}),
        route("fd00:1::", 64, {dev(2)}),
        route("fd00:1::", 48, {via("fd00::9", 1)}),
    };
    in_.neighbours = {
        neigh(1, "10.0.0.1", NUD_REACHABLE),
        neigh(1, "10.0.0.2", NUD_STALE),
        neigh(2, "10.1.2.7", NUD_INCOMPLETE, nullptr),
        neigh(2, "10.1.2.8", NUD_FAILED, nullptr),
        neigh(1, "10.0.0.5", NUD_REACHABLE),
        neigh(2, "10.0.1.5", NUD_REACHABLE, &kPeer2),
        neigh(1, "fe80::1", NUD_REACHABLE),
        neigh(2, "fd00:1::5", NUD_PERMANENT, &kPeer2),
    };
  }
  ResolveResult res(const char* dst, uint32_t hash = 0) {
    if (!table_) table_ = NextHopTable::build(in_, 7);
    return table_->resolve(A(dst), hash);
  }
  TableInput in_;
  std::unique_ptr<const NextHopTable> table_;
};

TEST_F(NextHopTableTest, DefaultRouteViaReachableGateway) {
  const ResolveResult r = res("8.8.8.8");
  EXPECT_EQ(r.status, ResolveStatus::kOk);
  EXPECT_EQ(r.ifindex, 1u);
  EXPECT_EQ(r.src_mac, kMac1);
  EXPECT_EQ(r.dst_mac, kPeer);
  EXPECT_EQ(r.next_hop, A("10.0.0.1"));
  EXPECT_EQ(r.mtu, 1500);
  EXPECT_FALSE(r.refresh);
  EXPECT_EQ(table_->generation(), 7u);
}

TEST_F(NextHopTableTest, LongestPrefixWins) {
  EXPECT_EQ(res("10.1.3.3").next_hop, A("10.0.0.2"));  // /16
  const ResolveResult r = res("10.1.2.3");             // /24 on-link
  EXPECT_EQ(r.status, ResolveStatus::kNoNeighbor);
  EXPECT_EQ(r.ifindex, 2u);
  EXPECT_EQ(r.src_mac, kMac2);
  EXPECT_EQ(r.next_hop, A("10.1.2.3"));
}

TEST_F(NextHopTableTest, StaleNeighbourIsUsableButAsksForRefresh) {
  const ResolveResult r = res("10.1.3.3");
  EXPECT_EQ(r.status, ResolveStatus::kOk);
  EXPECT_TRUE(r.refresh);
}

TEST_F(NextHopTableTest, IncompleteAndFailedNeighboursAreNoNeighbor) {
  EXPECT_EQ(res("10.1.2.7").status, ResolveStatus::kNoNeighbor);
  EXPECT_EQ(res("10.1.2.8").status, ResolveStatus::kNoNeighbor);
}

TEST_F(NextHopTableTest, RejectRouteShadowsShorterPrefixes) {
  EXPECT_EQ(res("10.1.2.200").status, ResolveStatus::kNoRoute);
  EXPECT_EQ(res("10.1.2.127").status, ResolveStatus::kNoNeighbor);
}

TEST_F(NextHopTableTest, DownLinkFallsBackToNextMetric) {
  const ResolveResult r = res("192.168.1.1");
  EXPECT_EQ(r.status, ResolveStatus::kNoNeighbor);
  EXPECT_EQ(r.ifindex, 1u);
  EXPECT_EQ(r.next_hop, A("10.0.0.4"));
}

TEST_F(NextHopTableTest, RouteWithoutUsableNextHopFallsBackToShorterPrefix) {
  in_.routes.erase(in_.routes.begin() + 5);  // only the down-link 192.168/16 is left
  const ResolveResult r = res("192.168.1.1");
  EXPECT_EQ(r.next_hop, A("10.0.0.1"));  // the default route
}

TEST_F(NextHopTableTest, DeadNextHopIsSkipped) {
  in_.routes[0].nexthops[0].flags = RTNH_F_DEAD;
  EXPECT_EQ(res("8.8.8.8").status, ResolveStatus::kNoRoute);
}

TEST_F(NextHopTableTest, MultipathFollowsWeightsAndIsStablePerHash) {
  int on2 = 0;
  const int n = 20000;
  std::mt19937 rng(1);
  for (int i = 0; i < n; ++i) {
    const uint32_t h = static_cast<uint32_t>(rng());
    const ResolveResult r = res("172.16.5.5", h);
    ASSERT_EQ(r.status, ResolveStatus::kOk);
    if (r.ifindex == 2) {
      ++on2;
      EXPECT_EQ(r.next_hop, A("10.0.1.5"));
      EXPECT_EQ(r.dst_mac, kPeer2);
    } else {
      EXPECT_EQ(r.next_hop, A("10.0.0.5"));
    }
    EXPECT_EQ(res("172.16.5.5", h).ifindex, r.ifindex);
  }
  EXPECT_NEAR(on2 / static_cast<double>(n), 0.75, 0.02);
  EXPECT_EQ(res("172.16.5.5", 0).ifindex, 1u);
  EXPECT_EQ(res("172.16.5.5", 0xFFFFFFFF).ifindex, 2u);
}

TEST_F(NextHopTableTest, Ipv6) {
  ResolveResult r = res("fd00:1::5");
  EXPECT_EQ(r.status, ResolveStatus::kOk);
  EXPECT_EQ(r.ifindex, 2u);
  EXPECT_EQ(r.dst_mac, kPeer2);
  r = res("fd00:1:0:1::1");
  EXPECT_EQ(r.status, ResolveStatus::kNoNeighbor);
  EXPECT_EQ(r.next_hop, A("fd00::9"));
  r = res("2001:db8::1");
  EXPECT_EQ(r.status, ResolveStatus::kOk);
  EXPECT_EQ(r.next_hop, A("fe80::1"));
}

TEST_F(NextHopTableTest, OtherTablesTosAndUnknownTypesAreIgnored) {
  in_.routes.push_back(route("10.9.0.0", 16, {via("10.0.0.2", 1)}));
  in_.routes.back().table = 100;
  in_.routes.push_back(route("10.8.0.0", 16, {via("10.0.0.2", 1)}));
  in_.routes.back().tos = 0x10;
  in_.routes.push_back(route("10.7.0.0", 16, {dev(1)}, 0, RTN_LOCAL));
  EXPECT_EQ(res("10.9.1.1").next_hop, A("10.0.0.1"));
  EXPECT_EQ(res("10.8.1.1").next_hop, A("10.0.0.1"));
  EXPECT_EQ(res("10.7.1.1").next_hop, A("10.0.0.1"));
}

TEST_F(NextHopTableTest, LinkWithoutMacGoesToTheKernelNotToAShorterRoute) {
  LinkInfo tun = link(4, Mac{});
  tun.has_mac = false;  // tun/wireguard: no Ethernet header possible
  in_.links.push_back(tun);
  in_.routes.push_back(route("10.50.0.0", 16, {dev(4)}));
  const ResolveResult r = res("10.50.1.1");
  EXPECT_EQ(r.status, ResolveStatus::kNoNeighbor);
  EXPECT_EQ(r.ifindex, 4u);
}

TEST_F(NextHopTableTest, NeighbourOnOtherLinkDoesNotCount) {
  in_.neighbours.push_back(neigh(1, "10.1.2.3", NUD_REACHABLE));  // wrong link
  EXPECT_EQ(res("10.1.2.3").status, ResolveStatus::kNoNeighbor);
}

TEST(NextHopTable, EmptyTableHasNoRoute) {
  auto t = NextHopTable::empty();
  const uint8_t v4[4] = {10, 0, 0, 1};
  EXPECT_EQ(t->resolve(Family::kIpv4, v4, 0).status, ResolveStatus::kNoRoute);
  const uint8_t v6[16] = {0xfd};
  EXPECT_EQ(t->resolve(Family::kIpv6, v6, 0).status, ResolveStatus::kNoRoute);
  EXPECT_EQ(t->resolve(Family::kNone, v6, 0).status, ResolveStatus::kNoRoute);
}

// Thousands of random prefixes of every length, each with a distinct
// gateway: the next hop names the route, compared with a linear scan.
TEST(NextHopTable, MatchesBruteForceLpm) {
  for (const Family fam : {Family::kIpv4, Family::kIpv6}) {
    const uint32_t max_len = fam == Family::kIpv6 ? 128 : 32;
    std::mt19937_64 rng(fam == Family::kIpv6 ? 6 : 4);
    TableInput in;
    in.links = {link(1, kMac1)};
    struct Ref {
      Addr prefix;
      uint32_t len;
      Addr gw;
    };
    std::vector<Ref> refs;
    auto masked_eq = [&](const Addr& a, const Addr& p, uint32_t len) {
      const uint32_t full = len / 8;
      if (std::memcmp(a.bytes.data(), p.bytes.data(), full) != 0) return false;
      if (len % 8 == 0) return true;
      const uint8_t m = static_cast<uint8_t>(0xFF00u >> (len % 8));
      return (a.bytes[full] & m) == (p.bytes[full] & m);
    };
    std::set<std::pair<uint32_t, Addr>> seen;
    auto masked = [&](Addr a, uint32_t len) {
      for (uint32_t bit = len; bit < 128; ++bit)
        a.bytes[bit / 8] = static_cast<uint8_t>(a.bytes[bit / 8] & ~(0x80u >> (bit % 8)));
      return a;
    };
    // Prefixes share their first bytes so that lengths really compete.
    auto random_addr = [&]() {
      Addr a;
      a.family = fam;
      for (size_t i = 0; i < a.len(); ++i)
        a.bytes[i] = static_cast<uint8_t>(rng());
      a.bytes[0] = 10;
      if (rng() % 2) a.bytes[1] = 1;
      return a;
    };
    for (uint32_t i = 0; i < 2500; ++i) {
      Ref r;
      r.len = static_cast<uint32_t>(rng() % (max_len + 1));
      r.prefix = random_addr();
      r.gw.family = fam;
      r.gw.bytes[0] = 0xC0;
      r.gw.bytes[1] = static_cast<uint8_t>(i >> 8);
      r.gw.bytes[2] = static_cast<uint8_t>(i);
      r.gw.bytes[3] = 1;
      if (!seen.emplace(r.len, masked(r.prefix, r.len)).second) continue;
      refs.push_back(r);
      RouteInfo ri;
      ri.dst = r.prefix;  // host bits set on purpose: build() masks them
      ri.dst_len = static_cast<uint8_t>(r.len);
      ri.type = RTN_UNICAST;
      NextHopInfo nh;
      nh.ifindex = 1;
      nh.gateway = r.gw;
      ri.nexthops = {nh};
      in.routes.push_back(ri);
    }
    auto t = NextHopTable::build(in);
    EXPECT_EQ(t->num_routes(), refs.size());
    for (int q = 0; q < 4000; ++q) {
      Addr dst = random_addr();
      if (q % 3 == 0) {
        // Near a known prefix, to hit long matches.
        const Ref& r = refs[rng() % refs.size()];
        for (uint32_t bit = 0; bit < r.len; ++bit) {
          const uint8_t m = static_cast<uint8_t>(0x80u >> (bit % 8));
          dst.bytes[bit / 8] =
              static_cast<uint8_t>((dst.bytes[bit / 8] & ~m) | (r.prefix.bytes[bit / 8] & m));
        }
      }
      const Ref* best = nullptr;
      for (const Ref& r : refs)
        if (masked_eq(dst, r.prefix, r.len) && (best == nullptr || r.len > best->len)) best = &r;
      const ResolveResult got = t->resolve(dst, 0);
      if (best == nullptr) {
        ASSERT_EQ(got.status, ResolveStatus::kNoRoute) << dst.to_string();
      } else {
        ASSERT_EQ(got.status, ResolveStatus::kNoNeighbor) << dst.to_string();
        ASSERT_EQ(got.next_hop, best->gw) << dst.to_string() << " want /" << best->len;
      }
    }
  }
}

TEST(Addr, ParseAndFormat) {
  EXPECT_EQ(A("192.0.2.1").to_string(), "192.0.2.1");
  EXPECT_EQ(A("2001:db8::1").to_string(), "2001:db8::1");
  EXPECT_FALSE(Addr::parse("nope").has_value());
  EXPECT_EQ(Addr{}.to_string(), "none");
}

}  // namespace
}  // namespace tripod::route
