// Pseudo-connections (UDP, ICMP echo, other protocols), ICMP errors as
// RELATED, the odd packets, the facade's counters, and the check that every
// reason of the X-macro is produced by at least one scenario.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <set>
#include <stdexcept>
#include <string>

#include "nf/firewall/firewall_test_util.h"

namespace tripod::fwtest {
namespace {

using R = FwReason;
using PS = FwPseudoState;
using TS = TcpState;
constexpr auto kIn = TrafficDir::kIn;
constexpr auto kOut = TrafficDir::kOut;

const std::string kCli = "10.0.0.1";
const std::string kSrv = "192.0.2.10";
const std::string kRouter = "198.51.100.1";
const std::string kCli6 = "2001:db8:1::1";
const std::string kSrv6 = "2001:db8:2::10";

Bytes udp(bool from_client) {
  PacketBuilder b;
  if (from_client) {
    b.ipv4(kCli, kSrv).udp(5353, 53);
  } else {
    b.ipv4(kSrv, kCli).udp(53, 5353);
  }
  return b.payload(Bytes(20, 1)).build();
}
PacketBuilder echo_b(bool from_client, bool request, uint16_t id, bool v6 = false) {
  PacketBuilder b;
  const std::string& c = v6 ? kCli6 : kCli;
  const std::string& s = v6 ? kSrv6 : kSrv;
  if (v6) {
    b.ipv6(from_client ? c : s, from_client ? s : c);
  } else {
    b.ipv4(from_client ? c : s, from_client ? s : c);
  }
  return b.icmp_echo(request, id, 1).payload(Bytes(16, 2));
}
Bytes echo(bool from_client, bool request, uint16_t id = 7, bool v6 = false) {
  return echo_b(from_client, request, id, v6).build();
}
Bytes first(const Bytes& b, size_t n) {
  return Bytes(b.begin(), b.begin() + static_cast<long>(std::min(n, b.size())));
}
// An ICMP error from `from` to `to` quoting the IP packet `quote` (28 bytes
// for IPv4: header + 8 bytes of L4, as RFC 792 routers send).
Bytes icmp4_error(const std::string& from, const std::string& to, uint8_t type, uint8_t code,
                  const Bytes& quote_l3) {
  return PacketBuilder().ipv4(from, to).icmp_error(type, code, first(quote_l3, 28)).build();
}
Bytes info_icmp(bool from_client, uint8_t type) {
  PacketBuilder b;
  b.ipv4(from_client ? kCli : kSrv, from_client ? kSrv : kCli);
  return b.icmp_error(type, 0, {}).build();
}
Bytes gre(bool from_client) {
  PacketBuilder b;
  b.ipv4(from_client ? kCli : kSrv, from_client ? kSrv : kCli);
  return b.ip_proto(47).payload(Bytes(24, 3)).build();
}
Step with_state(Step s, TS st) {
  s.state = st;
  return s;
}

constexpr uint32_t a = 1000;
constexpr uint32_t b = 50000;

std::vector<Step> tcp_handshake(const Ends& e = {}) {
  return {
      T("SYN", C(SYN, a).ends(e), R::kCreated, TS::kSynSent),
      T("SYN-ACK", S(SYN | ACK, b, a + 1).ends(e), R::kAccepted, TS::kSynRecv),
      T("ACK", C(ACK, a + 1, b + 1).ends(e), R::kAccepted, TS::kEstablished),
  };
}
std::vector<Step> plus(std::vector<Step> x, const std::vector<Step>& y) {
  x.insert(x.end(), y.begin(), y.end());
  return x;
}

}  // namespace

std::vector<Scenario> other_scenarios() {
  const Bytes syn_l3 = C(SYN, a).builder().build_l3();
  const Bytes far_l3 = C(ACK, a + 1 + 10000000, b + 1).builder().build_l3();
  const Bytes srv_l3 = S(ACK, b + 1, a + 1).builder().build_l3();
  const Bytes udp_l3 =
      PacketBuilder().ipv4(kCli, kSrv).udp(5353, 53).payload(Bytes(20, 1)).build_l3();
  const Bytes echo_l3 = echo_b(true, true, 7).build_l3();
  const Bytes syn6_l3 = C(SYN, a).ends(v6_ends()).builder().build_l3();
  return {
      {"udp_unreplied_then_stream",
       "default allow",
       {
           P("first datagram", udp(true), kOut, R::kCreated, PS::kUnreplied, 30),
           P("another, still unreplied", udp(true), kOut, R::kAccepted, PS::kUnreplied, 30),
           P("reply: stream timeout", udp(false), kIn, R::kAccepted, PS::kReplied, 120),
           P("client again", udp(true), kOut, R::kAccepted, PS::kReplied, 120),
       },
       false},
      {"udp_acl_then_state",
       "default deny\nallow out udp from 10.0.0.0/8 to any port 53",
       {
           P("unsolicited inbound", udp(false), kIn, R::kDenyDefault),
           P("outbound query", udp(true), kOut, R::kCreated, PS::kUnreplied, 30),
           P("the answer comes in by state", udp(false), kIn, R::kAccepted, PS::kReplied, 120),
       },
       false},
      {"udp_deny_rule",
       "default allow\ndeny udp to any port 53",
       {P("query denied", udp(true), kOut, R::kDenyRule)},
       false},
      {"icmp_echo_request_reply",
       "default allow",
       {
           P("request", echo(true, true), kOut, R::kCreated, PS::kUnreplied, 30),
           P("reply", echo(false, false), kIn, R::kAccepted, PS::kReplied, 30),
           P("next request", echo(true, true), kOut, R::kAccepted, PS::kReplied, 30),
           P("request from the replier", echo(false, true), kIn, R::kDropInvalidTransition),
           P("reply from the requester", echo(true, false), kOut, R::kDropInvalidTransition),
           P("reply to another id", echo(false, false, 8), kIn, R::kDropEchoReplyWithoutRequest),
       },
       false},
      {"icmpv6_echo",
       "default deny\nallow out icmpv6",
       {
           P("request", echo(true, true, 7, true), kOut, R::kCreated, PS::kUnreplied, 30),
           P("reply", echo(false, false, 7, true), kIn, R::kAccepted, PS::kReplied, 30),
           P("inbound request: denied", echo(false, true, 9, true), kIn, R::kDenyDefault),
       },
       false},
      {"echo_reply_without_request",
       "default allow",
       {P("reply", echo(false, false, 9), kIn, R::kDropEchoReplyWithoutRequest)},
       false},
      {"icmp_error_about_syn_is_related",
       "default deny\nallow out tcp",
       {
           T("SYN", C(SYN, a), R::kCreated, TS::kSynSent),
           with_state(P("host unreachable from a router", icmp4_error(kRouter, kCli, 3, 1, syn_l3),
                        kIn, R::kRelated, {}, 0),
                      TS::kSynSent),
       },
       false},
      {"icmp_error_to_the_wrong_host",
       "default allow",
       {
           T("SYN", C(SYN, a), R::kCreated, TS::kSynSent),
           P("error sent to someone else", icmp4_error(kRouter, "10.0.0.99", 3, 1, syn_l3), kIn,
             R::kDropIcmpErrorUnrelated),
       },
       false},
      {"icmp_error_without_state",
       "default allow",
       {P("error about nothing", icmp4_error(kRouter, kCli, 3, 1, syn_l3), kIn,
          R::kDropIcmpErrorUnrelated)},
       false},
      {"icmp_error_with_bad_tcp_seq", "default allow",
       plus(tcp_handshake(),
            {P("quotes a seq 10M past the window", icmp4_error(kRouter, kCli, 3, 4, far_l3), kIn,
               R::kDropIcmpErrorOutOfWindow)}),
       false},
      {"icmp_error_about_the_server_side", "default allow",
       plus(tcp_handshake(), {P("error back to the server",
                                icmp4_error(kRouter, kSrv, 3, 4, srv_l3), kOut, R::kRelated)}),
       false},
      {"icmp_error_about_a_side_that_never_sent",
       "default allow",
       {
           T("SYN", C(SYN, a), R::kCreated, TS::kSynSent),
           P("quotes a server segment", icmp4_error(kRouter, kSrv, 3, 4, srv_l3), kOut,
             R::kDropIcmpErrorOutOfWindow),
       },
       false},
      {"udp_port_unreachable",
       "default allow",
       {
           P("datagram", udp(true), kOut, R::kCreated),
           P("port unreachable from the server", icmp4_error(kSrv, kCli, 3, 3, udp_l3), kIn,
             R::kRelated),
       },
       false},
      {"icmpv6_packet_too_big", "default allow",
       plus(
           tcp_handshake(v6_ends()),
           {P("packet too big",
              PacketBuilder().ipv6("2001:db8:ff::1", kCli6).icmp_error(2, 0, syn6_l3, 1280).build(),
              kIn, R::kRelated)}),
       false},
      {"echo_time_exceeded",
       "default allow",
       {
           P("request", echo(true, true), kOut, R::kCreated),
           P("time exceeded", icmp4_error(kRouter, kCli, 11, 0, echo_l3), kIn, R::kRelated),
       },
       false},
      {"icmp_informational_untracked",
       "default deny\ndeny out icmp from any to 192.0.2.128/25\nallow out icmp",
       {
           P("timestamp request out", info_icmp(true, 13), kOut, R::kUntracked),
           P("again: still no state", info_icmp(true, 13), kOut, R::kUntracked),
           P("timestamp request in", info_icmp(false, 13), kIn, R::kDenyDefault),
       },
       false},
      {"icmp_informational_over_echo_id_0",
       "default deny\nallow out icmp\ndeny in icmp",
       {
           P("echo id 0 (portless key)", echo(true, true, 0), kOut, R::kCreated),
           P("timestamp, same key: decided by the ACL", info_icmp(true, 13), kOut, R::kUntracked),
           P("inbound timestamp: rule 2", info_icmp(false, 13), kIn, R::kDenyRule),
           P("the echo is unaffected", echo(false, false, 0), kIn, R::kAccepted, PS::kReplied),
       },
       false},
      {"generic_protocol",
       "default allow",
       {
           P("GRE out", gre(true), kOut, R::kCreated, PS::kUnreplied, 600),
           P("GRE back", gre(false), kIn, R::kAccepted, PS::kReplied, 600),
       },
       false},
      {"fragments_dropped",
       "default allow",
       {
           P("first fragment",
             PacketBuilder()
                 .ipv4(kCli, kSrv)
                 .fragment(0, true, 9)
                 .udp(5353, 53)
                 .payload(Bytes(64, 0))
                 .build(),
             kOut, R::kDropFragment),
           P("later fragment",
             PacketBuilder()
                 .ipv4(kCli, kSrv)
                 .fragment(72, false, 9)
                 .ip_proto(kProtoUdp)
                 .payload(Bytes(64, 0))
                 .build(),
             kOut, R::kDropFragment),
       },
       false},
      {"not_ip",
       "default allow",
       {P("ARP", PacketBuilder().ethertype(kEtherTypeArp).payload(Bytes(28, 0)).build(), kIn,
          R::kDropMalformed)},
       false},
  };
}

class OtherScenarioTest : public ::testing::TestWithParam<Scenario> {};
TEST_P(OtherScenarioTest, Steps) {
  run_scenario(GetParam());
}
INSTANTIATE_TEST_SUITE_P(Conntrack, OtherScenarioTest, ::testing::ValuesIn(other_scenarios()),
                         scenario_name);

TEST(FwReasons, EveryReasonHasAScenario) {
  std::set<FwReason> seen;
  for (const Scenario& sc : tcp_scenarios())
    run_scenario(sc, &seen);
  for (const Scenario& sc : other_scenarios())
    run_scenario(sc, &seen);
  for (size_t i = 0; i < static_cast<size_t>(FwReason::kCount); ++i) {
    const auto r = static_cast<FwReason>(i);
    EXPECT_TRUE(seen.count(r) == 1) << "no scenario produces " << to_string(r);
  }
}

TEST(FwReasons, NamesAndOrder) {
  EXPECT_EQ(to_string(FwReason::kDenyRule), "deny_rule");
  EXPECT_EQ(to_string(FwReason::kDropStrayAck), "drop_stray_ack");
  EXPECT_EQ(to_string(FwReason::kDropRstOutOfWindow), "drop_rst_out_of_window");
  EXPECT_EQ(to_string(FwReason::kDropSynackWithoutSyn), "drop_synack_without_syn");
  EXPECT_EQ(to_string(FwReason::kDropOutOfWindow), "drop_out_of_window");
  EXPECT_EQ(to_string(FwReason::kDropInvalidTransition), "drop_invalid_transition");
  for (size_t i = 0; i < static_cast<size_t>(FwReason::kCount); ++i) {
    const auto r = static_cast<FwReason>(i);
    const bool drop_name = to_string(r).starts_with("drop_") || to_string(r).starts_with("deny_");
    EXPECT_EQ(is_accept(r), !drop_name) << to_string(r);
  }
}

// ---- direct calls: what the harness never does ----

struct Parsed {
  Bytes pkt;
  PacketMeta m;
  bool reversed = false;
};
Parsed parsed(Bytes pkt) {
  Parsed p{std::move(pkt), {}, false};
  EXPECT_EQ(parse_packet(p.pkt.data(), static_cast<uint32_t>(p.pkt.size()), &p.m), ParseError::kOk);
  flow_key_of(p.pkt.data(), p.m, true, &p.reversed);
  return p;
}

TEST(Conntrack, MisuseIsMalformedAndChangesNothing) {
  const FwPolicy pol(FirewallConfig{parse_rules("default allow"), {}, false});
  const Parsed syn = parsed(C(SYN, a).builder().build());
  FwConnState st{};
  ASSERT_EQ(fw_new_connection(pol, &st, syn.pkt.data(), syn.m, kOut, syn.reversed).reason,
            R::kCreated);
  const FwConnState before = st;
  // A UDP packet against a TCP record (a pipeline bug).
  const Parsed u = parsed(udp(true));
  EXPECT_EQ(fw_track(pol, st, u.pkt.data(), u.m, u.reversed).reason, R::kDropMalformed);
  // An ICMP error given to fw_track instead of fw_related.
  const Parsed err = parsed(icmp4_error(kRouter, kCli, 3, 1, C(SYN, a).builder().build_l3()));
  EXPECT_EQ(fw_track(pol, st, err.pkt.data(), err.m, false).reason, R::kDropMalformed);
  // A non-error given to fw_related.
  EXPECT_EQ(fw_related(&st, syn.pkt.data(), syn.m, syn.reversed).reason, R::kDropMalformed);
  // An empty record.
  FwConnState empty{};
  EXPECT_EQ(fw_track(pol, empty, syn.pkt.data(), syn.m, syn.reversed).reason, R::kDropMalformed);
  EXPECT_EQ(fw_related(&empty, err.pkt.data(), err.m, false).reason, R::kDropIcmpErrorUnrelated);
  EXPECT_EQ(std::memcmp(&before, &st, sizeof st), 0);
  // An ICMP error given to fw_new_connection.
  FwConnState out{};
  EXPECT_EQ(fw_new_connection(pol, &out, err.pkt.data(), err.m, kIn, false).reason,
            R::kDropIcmpErrorUnrelated);
}

TEST(Conntrack, VerdictNamesTheRule) {
  const FwPolicy pol(
      FirewallConfig{parse_rules("deny in\nallow out tcp\nallow out udp"), {}, false});
  const Parsed u = parsed(udp(true));
  FwConnState st{};
  const FwVerdict v = fw_new_connection(pol, &st, u.pkt.data(), u.m, kOut, u.reversed);
  EXPECT_EQ(v.reason, R::kCreated);
  EXPECT_EQ(v.rule, 2);
  const FwVerdict d = fw_new_connection(pol, &st, u.pkt.data(), u.m, kIn, u.reversed);
  EXPECT_EQ(d.reason, R::kDenyRule);
  EXPECT_EQ(d.rule, 0);
  EXPECT_EQ(d.timeout_s, 0u);
}

TEST(Firewall, CountsAndExports) {
  FirewallConfig cfg;
  cfg.acl = parse_rules("default deny\nallow out udp\ndeny in udp");
  Firewall fw(cfg);
  const Parsed out = parsed(udp(true));
  const Parsed in = parsed(udp(false));
  FwConnState st{};
  EXPECT_EQ(fw.new_connection(&st, out.pkt.data(), out.m, kOut, out.reversed).reason, R::kCreated);
  FwConnState tmp{};
  EXPECT_EQ(fw.new_connection(&tmp, in.pkt.data(), in.m, kIn, in.reversed).reason, R::kDenyRule);
  EXPECT_EQ(fw.new_connection(&tmp, in.pkt.data(), in.m, kIn, in.reversed).reason, R::kDenyRule);
  EXPECT_EQ(fw.track(st, in.pkt.data(), in.m, in.reversed).reason, R::kAccepted);
  EXPECT_EQ(fw.count(R::kCreated), 1u);
  EXPECT_EQ(fw.count(R::kDenyRule), 2u);
  EXPECT_EQ(fw.count(R::kAccepted), 1u);
  EXPECT_EQ(fw.rule_hits(0), 1u);
  EXPECT_EQ(fw.rule_hits(1), 2u);
  std::map<std::string, uint64_t> exported;
  fw.export_counters([&](std::string_view n, uint64_t v) { exported[std::string(n)] = v; });
  EXPECT_EQ(exported.size(), static_cast<size_t>(FwReason::kCount) + 2);
  EXPECT_EQ(exported["created"], 1u);
  EXPECT_EQ(exported["deny_rule"], 2u);
  EXPECT_EQ(exported["drop_stray_ack"], 0u);
  EXPECT_EQ(exported["acl_rule_1"], 1u);
  EXPECT_EQ(exported["acl_rule_2"], 2u);
  // Workers share one compiled policy; each has its own counters.
  Firewall other(fw.shared_policy());
  EXPECT_EQ(&other.policy(), &fw.policy());
  EXPECT_EQ(other.count(R::kCreated), 0u);
}

TEST(Firewall, TimeoutsAreValidated) {
  FirewallConfig cfg;
  cfg.timeouts.tcp_established = 0;
  try {
    Firewall fw(cfg);
    ADD_FAILURE() << "accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_EQ(std::string(e.what()), "timeout tcp_established: 0 s (must be 1..838860)");
  }
  cfg.timeouts.tcp_established = 838861;
  EXPECT_THROW(Firewall{cfg}, std::invalid_argument);
  cfg.timeouts.tcp_established = 838860;
  EXPECT_NO_THROW(Firewall{cfg});
}

}  // namespace tripod::fwtest
