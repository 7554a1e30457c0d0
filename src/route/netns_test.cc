// NetlinkMonitor and KernelSlowPath against a real kernel, inside two
// namespaces of the test's own (tpnl-<pid>-<n>-a/b) joined by two veth pairs:
//
//   A: va  10.201.0.1/24 fd00:201::1/64  <->  B: vb  10.201.0.2/24 fd00:201::2/64
//   A: va2 10.201.1.1/24 fd00:211::1/64  <->  B: vb2 10.201.1.2/24 fd00:211::2/64
//
// The monitor and slow path sockets are opened in A (NsEnter), the UDP
// receivers in B. Every wait is bounded.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <set>
#include <string>

#include "packet/builder.h"
#include "route/kernel_slow_path.h"
#include "route/netlink_monitor.h"
#include "route/netns_util.h"

namespace tripod::route {
namespace {

using testing::NetNs;
using testing::NsEnter;

constexpr Mac kVaMac{2, 0, 0, 0, 1, 1};
constexpr Mac kVbMac{2, 0, 0, 0, 1, 2};
constexpr Mac kVa2Mac{2, 0, 0, 0, 2, 1};
constexpr Mac kVb2Mac{2, 0, 0, 0, 2, 2};

Addr A(const char* s) {
  return *Addr::parse(s);
}

std::string mac_str(const Mac& m) {
  char b[18];
  std::snprintf(b, sizeof b, "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5]);
  return b;
}

class NetnsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (const std::string why = testing::netns_skip_reason(); !why.empty()) GTEST_SKIP() << why;
    static int counter = 0;
    const std::string prefix =
        "tpnl-" + std::to_string(getpid()) + "-" + std::to_string(counter++) + "-";
    a_ = std::make_unique<NetNs>(prefix + "a");
    b_ = std::make_unique<NetNs>(prefix + "b");
    ASSERT_TRUE(a_->ok() && b_->ok()) << "ip netns add failed";
    ASSERT_EQ(a_->ip({"link", "add", "va", "address", mac_str(kVaMac), "type", "veth", "peer",
                      "name", "vb", "address", mac_str(kVbMac), "netns", b_->name()}),
              0);
    ASSERT_EQ(a_->ip({"link", "add", "va2", "address", mac_str(kVa2Mac), "type", "veth", "peer",
                      "name", "vb2", "address", mac_str(kVb2Mac), "netns", b_->name()}),
              0);
    struct Side {
      const NetNs* ns;
      const char* dev;
      const char* v4;
      const char* v6;
    };
    for (const Side& s : {Side{a_.get(), "va", "10.201.0.1/24", "fd00:201::1/64"},
                          Side{a_.get(), "va2", "10.201.1.1/24", "fd00:211::1/64"},
                          Side{b_.get(), "vb", "10.201.0.2/24", "fd00:201::2/64"},
                          Side{b_.get(), "vb2", "10.201.1.2/24", "fd00:211::2/64"}}) {
      ASSERT_EQ(s.ns->ip({"addr", "add", s.v4, "dev", s.dev}), 0);
      ASSERT_EQ(s.ns->ip({"-6", "addr", "add", s.v6, "dev", s.dev, "nodad"}), 0);
      ASSERT_EQ(s.ns->ip({"link", "set", s.dev, "up"}), 0);
    }
    ASSERT_EQ(a_->ip({"link", "set", "lo", "up"}), 0);
    ASSERT_EQ(b_->ip({"link", "set", "lo", "up"}), 0);
    NsEnter in(*a_);
    ASSERT_TRUE(in.ok());
    va_ = if_nametoindex("va");
    va2_ = if_nametoindex("va2");
    ASSERT_NE(va_, 0u);
    ASSERT_NE(va2_, 0u);
  }

  void TearDown() override {
    slow_.reset();
    mon_.reset();  // before the namespaces go
    b_.reset();
    a_.reset();
  }

  void start_monitor(MonitorOptions opt = {}) {
    NsEnter in(*a_);
    ASSERT_TRUE(in.ok());
    mon_ = std::make_unique<NetlinkMonitor>(opt);
    slow_ = std::make_unique<KernelSlowPath>();
    ASSERT_TRUE(slow_->ok()) << "raw sockets: errno " << slow_->open_errno();
  }

  // Polls the monitor until `pred` holds on the current snapshot (true) or
  // the bound passes (false).
  bool wait_for(const std::function<bool(const NextHopTable&)>& pred, int timeout_ms = 5000) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    for (;;) {
      if (pred(mon_->current())) return true;
      if (std::chrono::steady_clock::now() > deadline) return false;
      mon_->poll_once(50);
    }
  }

  ResolveResult res(const char* dst, uint32_t hash = 0) {
    return mon_->current().resolve(A(dst), hash);
  }

  std::unique_ptr<NetNs> a_, b_;
  std::unique_ptr<NetlinkMonitor> mon_;
  std::unique_ptr<KernelSlowPath> slow_;
  uint32_t va_ = 0, va2_ = 0;
};

TEST_F(NetnsTest, FirstDumpSeesRoutesAndNeighbours) {
  ASSERT_EQ(a_->ip({"route", "add", "10.202.0.0/16", "via", "10.201.0.2"}), 0);
  ASSERT_EQ(a_->ip({"-6", "route", "add", "fd00:202::/48", "via", "fd00:201::2"}), 0);
  ASSERT_EQ(a_->ip({"neigh", "replace", "10.201.0.2", "lladdr", mac_str(kVbMac), "dev", "va", "nud",
                    "permanent"}),
            0);
  start_monitor();
  const NextHopTable& t = mon_->current();
  ASSERT_NE(t.link(va_), nullptr);
  EXPECT_EQ(t.link(va_)->name, "va");
  EXPECT_EQ(t.link(va_)->mac, kVaMac);
  EXPECT_TRUE(t.link(va_)->up);

  ResolveResult r = res("10.202.7.7");
  EXPECT_EQ(r.status, ResolveStatus::kOk);
  EXPECT_EQ(r.ifindex, va_);
  EXPECT_EQ(r.src_mac, kVaMac);
  EXPECT_EQ(r.dst_mac, kVbMac);
  EXPECT_EQ(r.next_hop, A("10.201.0.2"));
  EXPECT_EQ(r.mtu, 1500);

  r = res("fd00:202::9");
  EXPECT_EQ(r.status, ResolveStatus::kNoNeighbor);
  EXPECT_EQ(r.next_hop, A("fd00:201::2"));
  EXPECT_EQ(r.ifindex, va_);

  r = res("10.201.1.77");  // on-link, kernel prefix route of va2
  EXPECT_EQ(r.status, ResolveStatus::kNoNeighbor);
  EXPECT_EQ(r.ifindex, va2_);
  EXPECT_EQ(r.next_hop, A("10.201.1.77"));

  EXPECT_EQ(res("10.99.0.1").status, ResolveStatus::kNoRoute);  // no default route here
  EXPECT_EQ(res("2001:db8::1").status, ResolveStatus::kNoRoute);
}

TEST_F(NetnsTest, LiveRouteAndNeighbourChanges) {
  start_monitor();
  const uint64_t gen0 = mon_->current().generation();

  ASSERT_EQ(a_->ip({"route", "add", "10.203.0.0/24", "via", "10.201.1.2"}), 0);
  EXPECT_TRUE(wait_for([&](const NextHopTable&) {
    const ResolveResult r = res("10.203.0.1");
    return r.status == ResolveStatus::kNoNeighbor && r.ifindex == va2_ &&
           r.next_hop == A("10.201.1.2");
  }));
  EXPECT_GT(mon_->current().generation(), gen0);

  ASSERT_EQ(a_->ip({"neigh", "add", "10.201.1.2", "lladdr", mac_str(kVb2Mac), "dev", "va2", "nud",
                    "reachable"}),
            0);
  EXPECT_TRUE(wait_for([&](const NextHopTable&) {
    const ResolveResult r = res("10.203.0.1");
    return r.status == ResolveStatus::kOk && r.dst_mac == kVb2Mac && r.src_mac == kVa2Mac;
  }));

  const Mac other{2, 0, 0, 0, 0xA, 0xA};
  ASSERT_EQ(a_->ip({"neigh", "change", "10.201.1.2", "lladdr", mac_str(other), "dev", "va2", "nud",
                    "permanent"}),
            0);
  EXPECT_TRUE(wait_for([&](const NextHopTable&) { return res("10.203.0.1").dst_mac == other; }));

  ASSERT_EQ(a_->ip({"route", "add", "blackhole", "10.203.0.128/25"}), 0);
  EXPECT_TRUE(wait_for(
      [&](const NextHopTable&) { return res("10.203.0.200").status == ResolveStatus::kNoRoute; }));
  EXPECT_EQ(res("10.203.0.1").status, ResolveStatus::kOk);

  ASSERT_EQ(a_->ip({"neigh", "del", "10.201.1.2", "dev", "va2"}), 0);
  EXPECT_TRUE(wait_for(
      [&](const NextHopTable&) { return res("10.203.0.1").status == ResolveStatus::kNoNeighbor; }));

  ASSERT_EQ(a_->ip({"route", "del", "10.203.0.0/24"}), 0);
  EXPECT_TRUE(wait_for(
      [&](const NextHopTable&) { return res("10.203.0.1").status == ResolveStatus::kNoRoute; }));

  ASSERT_EQ(a_->ip({"-6", "route", "add", "fd00:203::/64", "via", "fd00:211::2"}), 0);
  EXPECT_TRUE(wait_for([&](const NextHopTable&) {
    const ResolveResult r = res("fd00:203::1");
    return r.ifindex == va2_ && r.next_hop == A("fd00:211::2");
  }));
  ASSERT_EQ(a_->ip({"-6", "route", "del", "fd00:203::/64"}), 0);
  EXPECT_TRUE(wait_for(
      [&](const NextHopTable&) { return res("fd00:203::1").status == ResolveStatus::kNoRoute; }));

  // A link going down takes its IPv4 routes without RTM_DELROUTE: re-dumped.
  ASSERT_EQ(a_->ip({"link", "set", "va2", "down"}), 0);
  EXPECT_TRUE(wait_for(
      [&](const NextHopTable&) { return res("10.201.1.9").status == ResolveStatus::kNoRoute; }));
  EXPECT_GE(mon_->counters().get(MonitorCounter::kRouteRedumps), 1u);
  EXPECT_EQ(mon_->counters().get(MonitorCounter::kDecodeErrors), 0u);
}

TEST_F(NetnsTest, MultipathRoutes) {
  start_monitor();
  ASSERT_EQ(a_->ip({"route", "add", "10.204.0.0/24", "nexthop", "via", "10.201.0.2", "dev", "va",
                    "nexthop", "via", "10.201.1.2", "dev", "va2"}),
            0);
  EXPECT_TRUE(wait_for(
      [&](const NextHopTable& t) { return t.route_nexthops(A("10.204.0.1")).size() == 2; }));
  std::set<uint32_t> seen;
  for (uint32_t h = 0; h < 64; ++h)
    seen.insert(res("10.204.0.1", h * 0x9E3779B9u).ifindex);
  EXPECT_EQ(seen, (std::set<uint32_t>{va_, va2_}));

  ASSERT_EQ(a_->ip({"-6", "route", "add", "fd00:204::/64", "nexthop", "via", "fd00:201::2", "dev",
                    "va", "nexthop", "via", "fd00:211::2", "dev", "va2"}),
            0);
  EXPECT_TRUE(wait_for(
      [&](const NextHopTable& t) { return t.route_nexthops(A("fd00:204::1")).size() == 2; }));
  // One IPv6 sibling removed: only a re-dump can tell what is left.
  ASSERT_EQ(a_->ip({"-6", "route", "del", "fd00:204::/64", "via", "fd00:211::2", "dev", "va2"}), 0);
  EXPECT_TRUE(wait_for([&](const NextHopTable& t) {
    const auto nhs = t.route_nexthops(A("fd00:204::1"));
    return nhs.size() == 1 && nhs[0].ifindex == va_;
  }));

  ASSERT_EQ(a_->ip({"route", "del", "10.204.0.0/24"}), 0);
  EXPECT_TRUE(wait_for(
      [&](const NextHopTable&) { return res("10.204.0.1").status == ResolveStatus::kNoRoute; }));
}

TEST_F(NetnsTest, RequestResolutionMakesTheKernelResolve) {
  start_monitor();
  EXPECT_EQ(res("10.201.0.2").status, ResolveStatus::kNoNeighbor);
  EXPECT_EQ(mon_->request_resolution(va_, A("10.201.0.2")), NetlinkMonitor::Resolve::kSent)
      << "errno " << mon_->last_resolve_errno();
  EXPECT_EQ(mon_->request_resolution(va_, A("10.201.0.2")), NetlinkMonitor::Resolve::kRateLimited);
  EXPECT_TRUE(wait_for([&](const NextHopTable&) {
    const ResolveResult r = res("10.201.0.2");
    return r.status == ResolveStatus::kOk && r.dst_mac == kVbMac;
  }));

  EXPECT_EQ(mon_->request_resolution(va_, A("fd00:201::2")), NetlinkMonitor::Resolve::kSent)
      << "errno " << mon_->last_resolve_errno();
  // Right after link-up the kernel's first ND probe often goes unanswered
  // (retransmitted after 1 s, given up after 3): ask again, as the control
  // thread would; the rate limit keeps that to once a second.
  EXPECT_TRUE(wait_for(
      [&](const NextHopTable&) {
        const ResolveResult r = res("fd00:201::2");
        if (r.status == ResolveStatus::kOk) return r.dst_mac == kVbMac;
        mon_->request_resolution(va_, A("fd00:201::2"));
        return false;
      },
      10000));
  // An unknown interface is an error the caller sees.
  EXPECT_EQ(mon_->request_resolution(999999, A("10.201.0.3")), NetlinkMonitor::Resolve::kError);
  EXPECT_GE(mon_->counters().get(MonitorCounter::kResolveErrors), 1u);
}

// A UDP socket in B, bound to `addr`:port.
int udp_listener(const NetNs& ns, const char* addr, uint16_t port) {
  NsEnter in(ns);
  if (!in.ok()) return -1;
  const Addr a = A(addr);
  const int fd = socket(a.family == Family::kIpv6 ? AF_INET6 : AF_INET,
                        SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  int rc;
  if (a.family == Family::kIpv6) {
    sockaddr_in6 sa{};
    sa.sin6_family = AF_INET6;
    sa.sin6_port = htons(port);
    std::memcpy(&sa.sin6_addr, a.bytes.data(), 16);
    rc = bind(fd, reinterpret_cast<const sockaddr*>(&sa), sizeof sa);
  } else {
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    std::memcpy(&sa.sin_addr, a.bytes.data(), 4);
    rc = bind(fd, reinterpret_cast<const sockaddr*>(&sa), sizeof sa);
  }
  if (rc != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

std::string recv_within(int fd, int timeout_ms) {
  pollfd p{fd, POLLIN, 0};
  if (poll(&p, 1, timeout_ms) != 1) return "";
  char buf[256];
  const ssize_t n = recv(fd, buf, sizeof buf, 0);
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : "";
}

TEST_F(NetnsTest, SlowPathDeliversWhileTheKernelResolves) {
  start_monitor();
  const int s4 = udp_listener(*b_, "10.201.0.2", 5353);
  const int s6 = udp_listener(*b_, "fd00:201::2", 5353);
  ASSERT_GE(s4, 0);
  ASSERT_GE(s6, 0);
  // No neighbour yet: exactly the case the data plane hands to the kernel.
  ASSERT_EQ(res("10.201.0.2").status, ResolveStatus::kNoNeighbor);
  ASSERT_EQ(res("fd00:201::2").status, ResolveStatus::kNoNeighbor);

  const Bytes p4 =
      PacketBuilder().ipv4("10.201.0.1", "10.201.0.2").udp(4000, 5353).payload("hello4").build_l3();
  EXPECT_TRUE(slow_->send(p4.data(), p4.size()));
  EXPECT_EQ(recv_within(s4, 5000), "hello4");

  Bytes p6 = PacketBuilder()
                 .ipv6("fd00:201::1", "fd00:201::2")
                 .udp(4000, 5353)
                 .payload("hello6")
                 .build_l3();
  p6.push_back(0);  // trailing L2 padding is trimmed to the payload length
  EXPECT_TRUE(slow_->send(p6.data(), p6.size()));
  EXPECT_EQ(recv_within(s6, 5000), "hello6");
  EXPECT_EQ(slow_->counters().get(SlowPathReason::kSent), 2u);

  // The kernel's resolution reaches the snapshot: the next packets go fast.
  EXPECT_TRUE(wait_for([&](const NextHopTable&) {
    return res("10.201.0.2").status == ResolveStatus::kOk &&
           res("fd00:201::2").status == ResolveStatus::kOk;
  }));

  // Unroutable and malformed packets are counted, not silently lost.
  const Bytes lost =
      PacketBuilder().ipv4("10.201.0.1", "10.99.0.1").udp(4000, 5353).payload("x").build_l3();
  EXPECT_FALSE(slow_->send(lost.data(), lost.size()));
  EXPECT_EQ(slow_->counters().get(SlowPathReason::kErrUnreachable), 1u);
  EXPECT_FALSE(slow_->send(lost.data(), 10));
  EXPECT_EQ(slow_->counters().get(SlowPathReason::kBadPacket), 1u);
  close(s4);
  close(s6);
}

TEST_F(NetnsTest, OverrunTriggersFullResync) {
  MonitorOptions opt;
  opt.event_rcvbuf = 1;  // the kernel rounds up to its minimum: a few messages
  start_monitor(opt);
  char path[] = "/tmp/tpnl-batch-XXXXXX";
  const int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  std::string cmds;
  for (int i = 10; i < 250; ++i) {
    char line[160];
    std::snprintf(line, sizeof line,
                  "neigh add 10.201.0.%d lladdr 02:00:00:00:03:%02x dev va nud permanent\n"
                  "neigh add fd00:201::1:%x lladdr 02:00:00:00:04:%02x dev va nud permanent\n",
                  i, i, i, i);
    cmds += line;
  }
  ASSERT_EQ(write(fd, cmds.data(), cmds.size()), static_cast<ssize_t>(cmds.size()));
  close(fd);
  const int rc = a_->ip({"-batch", path});
  unlink(path);
  ASSERT_EQ(rc, 0);
  EXPECT_TRUE(wait_for([&](const NextHopTable& t) { return t.num_neighbours() >= 480; }));
  EXPECT_GE(mon_->counters().get(MonitorCounter::kOverruns), 1u);
  const ResolveResult r = res("10.201.0.200");
  EXPECT_EQ(r.status, ResolveStatus::kOk);
  EXPECT_EQ(r.dst_mac, (Mac{2, 0, 0, 0, 3, 200}));
}

}  // namespace
}  // namespace tripod::route
