// Decoder and RouteModel on kernel-shaped messages built by hand: what is
// applied in place, what asks for a re-dump, what is rejected as malformed.
#include "route/route_model.h"

#include <gtest/gtest.h>

#include "route/rtnl_decode.h"
#include "route/rtnl_test_util.h"

namespace tripod::route {
namespace {

using testing::A;
using testing::Bytes;
using testing::NhSpec;

const Mac kMac1{2, 0, 0, 0, 0, 1};
const Mac kMac2{2, 0, 0, 0, 0, 2};
const Mac kPeer{2, 0, 0, 0, 0, 0xAA};

DecodedMsg decode(const Bytes& b, DecodeError want = DecodeError::kOk) {
  DecodedMsg m;
  EXPECT_EQ(decode_message(b.data(), b.size(), &m), want);
  return m;
}

class RouteModelTest : public ::testing::Test {
 protected:
  ApplyResult dump(const Bytes& b) { return model_.apply(decode(b), true); }
  ApplyResult event(const Bytes& b) { return model_.apply(decode(b), false); }
  ResolveResult res(const char* dst, uint32_t hash = 0) {
    return NextHopTable::build(model_.to_input())->resolve(A(dst), hash);
  }
  void SetUp() override {
    dump(testing::link_msg(RTM_NEWLINK, 1, true, kMac1, 1500, "eth0"));
    dump(testing::link_msg(RTM_NEWLINK, 2, true, kMac2, 9000, "eth1"));
    dump(testing::neigh_msg(RTM_NEWNEIGH, 1, A("10.0.0.1"), NUD_REACHABLE, &kPeer));
    dump(testing::neigh_msg(RTM_NEWNEIGH, 1, A("10.0.0.2"), NUD_REACHABLE, &kPeer));
    dump(testing::route_msg(RTM_NEWROUTE, NLM_F_MULTI, "0.0.0.0", 0, {{1, "10.0.0.1"}}));
  }
  RouteModel model_;
};

TEST_F(RouteModelTest, DecodesLinkNeighbourRoute) {
  const DecodedMsg l = decode(testing::link_msg(RTM_NEWLINK, 2, true, kMac2, 9000, "eth1"));
  ASSERT_EQ(l.kind, MsgKind::kLink);
  EXPECT_EQ(l.link.info.ifindex, 2u);
  EXPECT_EQ(l.link.info.name, "eth1");
  EXPECT_EQ(l.link.info.mtu, 9000u);
  EXPECT_TRUE(l.link.info.up);
  EXPECT_TRUE(l.link.info.has_mac);
  EXPECT_EQ(l.link.info.mac, kMac2);

  const DecodedMsg r = decode(testing::route_msg(RTM_NEWROUTE, 0, "fd00::", 64,
                                                 {{1, "fe80::1", 0}, {2, "fe80::2", 4}}, 1024));
  ASSERT_EQ(r.kind, MsgKind::kRoute);
  EXPECT_TRUE(r.route.multipath);
  EXPECT_EQ(r.route.info.priority, 1024u);
  EXPECT_EQ(r.route.info.table, static_cast<uint32_t>(RT_TABLE_MAIN));
  ASSERT_EQ(r.route.info.nexthops.size(), 2u);
  EXPECT_EQ(r.route.info.nexthops[1].gateway, A("fe80::2"));
  EXPECT_EQ(r.route.info.nexthops[1].weight, 5);
  EXPECT_EQ(r.route.info.nexthops[1].ifindex, 2u);

  EXPECT_EQ(decode(testing::done_msg()).kind, MsgKind::kDone);
}

TEST_F(RouteModelTest, DumpThenResolve) {
  const ResolveResult r = res("1.2.3.4");
  EXPECT_EQ(r.status, ResolveStatus::kOk);
  EXPECT_EQ(r.dst_mac, kPeer);
  EXPECT_EQ(r.src_mac, kMac1);
}

TEST_F(RouteModelTest, Ipv4AddReplaceDelete) {
  ApplyResult a = event(testing::route_msg(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, "10.5.0.0", 16,
                                           {{1, "10.0.0.1"}}));
  EXPECT_TRUE(a.changed);
  EXPECT_FALSE(a.redump_v4);
  a = event(testing::route_msg(RTM_NEWROUTE, NLM_F_REPLACE, "10.5.0.0", 16, {{1, "10.0.0.2"}}));
  EXPECT_TRUE(a.changed);
  EXPECT_EQ(res("10.5.1.1").next_hop, A("10.0.0.2"));
  a = event(testing::route_msg(RTM_DELROUTE, 0, "10.5.0.0", 16, {{1, "10.0.0.2"}}));
  EXPECT_TRUE(a.changed);
  EXPECT_FALSE(a.redump_v4);
  EXPECT_EQ(res("10.5.1.1").next_hop, A("10.0.0.1"));  // back to the default
  // Deleting what is not there changes nothing.
  a = event(testing::route_msg(RTM_DELROUTE, 0, "10.6.0.0", 16, {{1, "10.0.0.2"}}));
  EXPECT_FALSE(a.changed);
}

TEST_F(RouteModelTest, Ipv4AppendedAliasMakesDeleteRedump) {
  event(testing::route_msg(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, "10.5.0.0", 16,
                           {{1, "10.0.0.1"}}));
  ApplyResult a = event(testing::route_msg(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_APPEND, "10.5.0.0",
                                           16, {{1, "10.0.0.2"}}));
  EXPECT_FALSE(a.changed);  // the first route stays active
  EXPECT_EQ(res("10.5.1.1").next_hop, A("10.0.0.1"));
  a = event(testing::route_msg(RTM_DELROUTE, 0, "10.5.0.0", 16, {{1, "10.0.0.1"}}));
  EXPECT_TRUE(a.redump_v4);
  EXPECT_FALSE(a.redump_v6);
}

TEST_F(RouteModelTest, Ipv6MultipathEventsRedumpButDumpsApply) {
  const Bytes mp =
      testing::route_msg(RTM_NEWROUTE, 0, "fd00:5::", 64, {{1, "fe80::1"}, {2, "fe80::2"}}, 1024);
  ApplyResult a = event(mp);
  EXPECT_TRUE(a.redump_v6);
  EXPECT_FALSE(a.changed);
  a = dump(mp);
  EXPECT_TRUE(a.changed);
  model_.apply(decode(testing::neigh_msg(RTM_NEWNEIGH, 2, A("fe80::2"), NUD_REACHABLE, &kPeer)),
               false);
  EXPECT_EQ(res("fd00:5::1", 0xFFFFFFFF).ifindex, 2u);
  EXPECT_EQ(res("fd00:5::1", 0).ifindex, 1u);
  // A single sibling going away: the model cannot tell what is left.
  a = event(testing::route_msg(RTM_DELROUTE, 0, "fd00:5::", 64, {{2, "fe80::2"}}, 1024));
  EXPECT_TRUE(a.redump_v6);
}

TEST_F(RouteModelTest, Ipv6SinglePathRoutesOnTwoDevicesCoexist) {
  event(testing::route_msg(RTM_NEWROUTE, NLM_F_CREATE, "fd00:6::", 64, {{1, nullptr}}, 256));
  event(testing::route_msg(RTM_NEWROUTE, NLM_F_CREATE, "fd00:6::", 64, {{2, nullptr}}, 256));
  EXPECT_EQ(model_.num_routes(), 3u);
  ApplyResult a = event(testing::route_msg(RTM_DELROUTE, 0, "fd00:6::", 64, {{1, nullptr}}, 256));
  EXPECT_TRUE(a.changed);
  EXPECT_EQ(model_.num_routes(), 2u);
  EXPECT_EQ(res("fd00:6::1").ifindex, 2u);
  // Replace takes every route of that prefix and metric.
  event(testing::route_msg(RTM_NEWROUTE, NLM_F_CREATE, "fd00:6::", 64, {{1, nullptr}}, 256));
  event(testing::route_msg(RTM_NEWROUTE, NLM_F_REPLACE, "fd00:6::", 64, {{1, "fe80::9"}}, 256));
  EXPECT_EQ(model_.num_routes(), 2u);
  EXPECT_EQ(res("fd00:6::1").next_hop, A("fe80::9"));
}

TEST_F(RouteModelTest, OtherTablesAndClonedRoutesAreIgnored) {
  ApplyResult a = event(
      testing::route_msg(RTM_NEWROUTE, 0, "10.7.0.0", 16, {{1, "10.0.0.2"}}, 0, RTN_UNICAST, 100));
  EXPECT_FALSE(a.changed);
  a = event(testing::route_msg(RTM_NEWROUTE, 0, "10.7.0.0", 16, {{1, "10.0.0.2"}}, 0, RTN_UNICAST,
                               1000));  // table id past 8 bits
  EXPECT_FALSE(a.changed);
  EXPECT_EQ(res("10.7.1.1").next_hop, A("10.0.0.1"));
}

TEST_F(RouteModelTest, LinkStateChangesRedumpRoutesAndDeleteDropsNeighbours) {
  ApplyResult a = event(testing::link_msg(RTM_NEWLINK, 1, true, kMac1, 1500, "eth0"));
  EXPECT_FALSE(a.changed);  // nothing new
  a = event(testing::link_msg(RTM_NEWLINK, 1, false, kMac1, 1500, "eth0"));
  EXPECT_TRUE(a.changed);
  EXPECT_TRUE(a.redump_v4);
  EXPECT_TRUE(a.redump_v6);
  EXPECT_EQ(res("1.2.3.4").status, ResolveStatus::kNoRoute);  // only route is via a down link
  a = event(testing::link_msg(RTM_DELLINK, 1, false, kMac1, 1500, "eth0"));
  EXPECT_TRUE(a.changed);
  EXPECT_EQ(model_.num_neighbours(), 0u);
  EXPECT_EQ(model_.num_links(), 1u);
}

TEST_F(RouteModelTest, NeighbourLifecycle) {
  event(testing::neigh_msg(RTM_NEWNEIGH, 1, A("10.0.0.1"), NUD_FAILED, nullptr));
  EXPECT_EQ(res("1.2.3.4").status, ResolveStatus::kNoNeighbor);
  event(testing::neigh_msg(RTM_NEWNEIGH, 1, A("10.0.0.1"), NUD_STALE, &kPeer));
  EXPECT_EQ(res("1.2.3.4").status, ResolveStatus::kOk);
  EXPECT_TRUE(res("1.2.3.4").refresh);
  ApplyResult a = event(testing::neigh_msg(RTM_DELNEIGH, 1, A("10.0.0.1"), NUD_STALE, &kPeer));
  EXPECT_TRUE(a.changed);
  EXPECT_EQ(res("1.2.3.4").status, ResolveStatus::kNoNeighbor);
}

TEST(RtnlDecode, RejectsMalformedMessages) {
  Bytes b = testing::route_msg(RTM_NEWROUTE, 0, "10.0.0.0", 8, {{1, "10.0.0.1"}});
  // Truncated family header.
  Bytes t(b.begin(), b.begin() + 20);
  const uint32_t len = 20;
  std::memcpy(t.data(), &len, 4);
  decode(t, DecodeError::kTruncatedPayload);
  // An attribute longer than the message.
  Bytes bad = b;
  const uint16_t huge = 200;
  std::memcpy(bad.data() + 16 + 12, &huge, 2);
  decode(bad, DecodeError::kBadAttribute);
  // A 5-byte IPv4 gateway.
  rtmsg rtm{};
  rtm.rtm_family = AF_INET;
  rtm.rtm_table = RT_TABLE_MAIN;
  rtm.rtm_type = RTN_UNICAST;
  const uint8_t five[5] = {10, 0, 0, 1, 0};
  decode(testing::NlMsg(RTM_NEWROUTE, 0).hdr(rtm).attr(RTA_GATEWAY, five, 5).bytes(),
         DecodeError::kBadAddressLength);
  // A prefix longer than the family.
  rtm.rtm_dst_len = 33;
  decode(testing::NlMsg(RTM_NEWROUTE, 0).hdr(rtm).bytes(), DecodeError::kBadPrefixLength);
  // A header claiming more than the buffer.
  Bytes h = b;
  const uint32_t more = static_cast<uint32_t>(b.size() + 4);
  std::memcpy(h.data(), &more, 4);
  decode(h, DecodeError::kTruncatedHeader);
}

TEST(RtnlDecode, MultipathEntryLongerThanAttributeIsRejected) {
  rtmsg rtm{};
  rtm.rtm_family = AF_INET;
  rtm.rtm_table = RT_TABLE_MAIN;
  rtm.rtm_type = RTN_UNICAST;
  rtnexthop rh{};
  rh.rtnh_len = 64;
  rh.rtnh_ifindex = 1;
  decode(testing::NlMsg(RTM_NEWROUTE, 0).hdr(rtm).attr(RTA_MULTIPATH, &rh, sizeof rh).bytes(),
         DecodeError::kBadMultipath);
}

TEST(RtnlDecode, IgnoresOtherFamilies) {
  ndmsg ndm{};
  ndm.ndm_family = AF_BRIDGE;
  ndm.ndm_ifindex = 3;
  const uint8_t mac[6] = {2, 0, 0, 0, 0, 9};
  const DecodedMsg m =
      decode(testing::NlMsg(RTM_NEWNEIGH, 0).hdr(ndm).attr(NDA_LLADDR, mac, 6).bytes());
  EXPECT_EQ(m.kind, MsgKind::kIgnored);
}

TEST(RtnlDecode, WalksDatagramsAndStopsOnBrokenFraming) {
  const Bytes one = testing::neigh_msg(RTM_NEWNEIGH, 1, A("10.0.0.1"), NUD_REACHABLE, &kPeer);
  const Bytes dgram = testing::concat({one, one, testing::done_msg()});
  int n = 0;
  EXPECT_TRUE(for_each_message(dgram.data(), dgram.size(), [&](const DecodedMsg&, DecodeError e) {
    EXPECT_EQ(e, DecodeError::kOk);
    ++n;
  }));
  EXPECT_EQ(n, 3);
  Bytes broken = dgram;
  const uint32_t big = 4096;
  std::memcpy(broken.data() + one.size(), &big, 4);
  n = 0;
  EXPECT_FALSE(
      for_each_message(broken.data(), broken.size(), [&](const DecodedMsg&, DecodeError) { ++n; }));
  EXPECT_EQ(n, 1);
}

}  // namespace
}  // namespace tripod::route
