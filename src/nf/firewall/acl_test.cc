// ACL: rule text and struct validation (exact messages), canonical format,
// and first-match evaluation over v4/v6 prefixes, protocols, ports, direction.
#include "nf/firewall/acl.h"

#include <gtest/gtest.h>

#include <ostream>
#include <stdexcept>
#include <string>
#include <vector>

#include "packet/builder.h"
#include "packet/parser.h"

namespace tripod::fwtest {
namespace {

// ---- evaluation ----

constexpr const char* kRules = R"(
# A small security group, first match wins.
default deny
allow in tcp from any to 10.1.0.0/16 port 80,443                  # 0
deny in tcp from 192.0.2.0/24 to any                               # 1
allow in tcp from 192.0.2.0/24 to 10.2.0.0/16 port 8000-8099       # 2: shadowed by 1
allow in tcp from 198.18.0.0/15 to 10.2.0.0/16 port 8000-8099      # 3
allow out udp from 10.0.0.0/8 to any port 53                       # 4
allow in udp from any port 53 to 10.0.0.0/8                        # 5
allow in tcp from 2001:db8::/32 to 2001:db8:ffff::/48 port 22      # 6
allow in tcp from 2001:db8::2/127 to any port 23                   # 7
deny icmp from 203.0.113.7 to any                                  # 8
allow icmp                                                         # 9
allow proto 47 from 198.51.100.0/24 to 10.9.0.0/16                 # 10
allow in tcp from 172.16.0.0/12 to any port 25                     # 11
allow out from 10.0.0.0/8 to 0.0.0.0/0                             # 12: IPv4 only
allow icmpv6 from ::/0 to any                                      # 13
)";

PacketBuilder ip(const std::string& s, const std::string& d) {
  PacketBuilder b;
  if (s.find(':') != std::string::npos) {
    b.ipv6(s, d);
  } else {
    b.ipv4(s, d);
  }
  return b;
}
Bytes tcp(const std::string& s, uint16_t sp, const std::string& d, uint16_t dp) {
  return ip(s, d).tcp(sp, dp).syn().build();
}
Bytes udp(const std::string& s, uint16_t sp, const std::string& d, uint16_t dp) {
  return ip(s, d).udp(sp, dp).build();
}
Bytes echo(const std::string& s, const std::string& d) {
  return ip(s, d).icmp_echo(true, 1, 1).build();
}
Bytes proto(const std::string& s, const std::string& d, uint8_t p) {
  return ip(s, d).ip_proto(p).payload(Bytes(8, 0)).build();
}

struct AclCase {
  std::string name;
  Bytes pkt;
  TrafficDir dir;
  FwAction action;
  int32_t rule;
};

void PrintTo(const AclCase& c, std::ostream* os) {
  *os << c.name;
}

constexpr auto kIn = TrafficDir::kIn;
constexpr auto kOut = TrafficDir::kOut;
constexpr auto kAllow = FwAction::kAllow;
constexpr auto kDeny = FwAction::kDeny;

std::vector<AclCase> acl_cases() {
  return {
      {"port_80_first_match_wins", tcp("192.0.2.5", 1234, "10.1.255.255", 80), kIn, kAllow, 0},
      {"port_443_in_list", tcp("192.0.2.5", 1234, "10.1.0.1", 443), kIn, kAllow, 0},
      {"port_22_falls_to_deny", tcp("192.0.2.5", 1234, "10.1.0.1", 22), kIn, kDeny, 1},
      {"later_allow_is_shadowed", tcp("192.0.2.5", 1234, "10.2.0.1", 8000), kIn, kDeny, 1},
      {"range_low_edge", tcp("198.18.0.1", 1, "10.2.0.1", 8000), kIn, kAllow, 3},
      {"range_high_edge_and_slash15_top", tcp("198.19.255.255", 1, "10.2.3.4", 8099), kIn, kAllow,
       3},
      {"range_above", tcp("198.18.0.1", 1, "10.2.0.1", 8100), kIn, kDeny, -1},
      {"range_below", tcp("198.18.0.1", 1, "10.2.0.1", 7999), kIn, kDeny, -1},
      {"slash15_outside", tcp("198.20.0.0", 1, "10.2.0.1", 8050), kIn, kDeny, -1},
      {"direction_mismatch", tcp("198.18.0.1", 1, "10.2.0.1", 8050), kOut, kDeny, -1},
      {"udp_out_dst_port", udp("10.3.3.3", 5353, "8.8.8.8", 53), kOut, kAllow, 4},
      {"udp_same_packet_inbound", udp("10.3.3.3", 5353, "8.8.8.8", 53), kIn, kDeny, -1},
      {"udp_in_src_port", udp("8.8.8.8", 53, "10.3.3.3", 5353), kIn, kAllow, 5},
      {"udp_in_src_port_wrong", udp("8.8.8.8", 54, "10.3.3.3", 5353), kIn, kDeny, -1},
      {"tcp_is_not_udp", tcp("8.8.8.8", 53, "10.3.3.3", 5353), kIn, kDeny, -1},
      {"v6_prefixes", tcp("2001:db8:abcd::1", 1, "2001:db8:ffff:1::1", 22), kIn, kAllow, 6},
      {"v6_outside_slash48", tcp("2001:db8:abcd::1", 1, "2001:db8:fffe::1", 22), kIn, kDeny, -1},
      {"v6_outside_slash32", tcp("2001:db9::1", 1, "2001:db8:ffff::1", 22), kIn, kDeny, -1},
      {"v6_slash127_low", tcp("2001:db8::2", 1, "2001:db8:ffff::1", 23), kIn, kAllow, 7},
      {"v6_slash127_high", tcp("2001:db8::3", 1, "2001:db8:ffff::1", 23), kIn, kAllow, 7},
      {"v6_slash127_outside", tcp("2001:db8::4", 1, "2001:db8:ffff::1", 23), kIn, kDeny, -1},
      {"icmp_host_denied", echo("203.0.113.7", "10.0.0.1"), kIn, kDeny, 8},
      {"icmp_other_host", echo("203.0.113.8", "10.0.0.1"), kIn, kAllow, 9},
      {"proto_47", proto("198.51.100.9", "10.9.1.1", 47), kIn, kAllow, 10},
      {"proto_47_outside", proto("198.51.101.9", "10.9.1.1", 47), kIn, kDeny, -1},
      {"proto_50_not_47", proto("198.51.100.9", "10.9.1.1", 50), kIn, kDeny, -1},
      {"slash12_top", tcp("172.31.255.255", 1, "1.2.3.4", 25), kIn, kAllow, 11},
      {"slash12_outside", tcp("172.32.0.0", 1, "1.2.3.4", 25), kIn, kDeny, -1},
      {"zero_prefix_v4", tcp("10.0.0.1", 1, "1.1.1.1", 443), kOut, kAllow, 12},
      {"zero_prefix_v4_not_v6", tcp("2001:db8:1::1", 1, "2001:db8:2::1", 443), kOut, kDeny, -1},
      {"icmpv6_is_not_icmp", echo("2001:db8::9", "2001:db8::10"), kIn, kAllow, 13},
  };
}

class AclMatchTest : public ::testing::TestWithParam<AclCase> {};
TEST_P(AclMatchTest, FirstMatch) {
  static const Acl acl(parse_rules(kRules));
  const AclCase& c = GetParam();
  PacketMeta m;
  ASSERT_EQ(parse_packet(c.pkt.data(), static_cast<uint32_t>(c.pkt.size()), &m), ParseError::kOk);
  const Acl::Match hit = acl.match(acl_packet_of(c.pkt.data(), m, c.dir));
  EXPECT_EQ(hit.rule, c.rule);
  EXPECT_EQ(hit.action, c.action);
}
std::string acl_case_name(const ::testing::TestParamInfo<AclCase>& p) {
  return p.param.name;
}
INSTANTIATE_TEST_SUITE_P(Acl, AclMatchTest, ::testing::ValuesIn(acl_cases()), acl_case_name);

TEST(Acl, DefaultPolicy) {
  const Bytes p = tcp("10.0.0.1", 1, "10.0.0.2", 2);
  PacketMeta m;
  ASSERT_EQ(parse_packet(p.data(), static_cast<uint32_t>(p.size()), &m), ParseError::kOk);
  const AclPacket ap = acl_packet_of(p.data(), m, kIn);
  const Acl allow_all(parse_rules("default allow"));
  EXPECT_EQ(allow_all.match(ap).action, kAllow);
  EXPECT_EQ(allow_all.match(ap).rule, -1);
  const Acl deny_all(parse_rules(""));
  EXPECT_EQ(deny_all.match(ap).action, kDeny);
  EXPECT_EQ(deny_all.match(ap).rule, -1);
  const Acl one(parse_rules("default allow\ndeny"));
  EXPECT_EQ(one.match(ap).action, kDeny);
  EXPECT_EQ(one.match(ap).rule, 0);
}

TEST(Acl, PortRulesNeverMatchWithoutPorts) {
  const Acl acl(parse_rules("allow udp to any port 0-65535\ndeny udp"));
  const Bytes p = udp("10.0.0.1", 1, "10.0.0.2", 2);
  PacketMeta m;
  ASSERT_EQ(parse_packet(p.data(), static_cast<uint32_t>(p.size()), &m), ParseError::kOk);
  AclPacket ap = acl_packet_of(p.data(), m, kIn);
  EXPECT_EQ(acl.match(ap).rule, 0);
  ap.has_ports = false;  // a fragment
  EXPECT_EQ(acl.match(ap).rule, 1);
}

TEST(Acl, StructConfig) {
  AclConfig cfg;
  FwRuleSpec r;
  r.action = FwAction::kAllow;
  r.dir = RuleDir::kIn;
  r.proto = kProtoTcp;
  r.dst = "10.0.0.0/8";
  r.dports = {{80, 80}, {443, 443}};
  cfg.rules.push_back(r);
  const Acl acl(cfg);
  EXPECT_EQ(acl.size(), 1u);
  EXPECT_EQ(r, parse_rule("allow in tcp to 10.0.0.0/8 port 80,443"));
}

// ---- text form ----

struct ErrorCase {
  std::string text;
  std::string message;
};

TEST(AclParse, RuleErrorsAreExact) {
  const std::vector<ErrorCase> cases = {
      {"allow in tcp from 10.0.0.0/33 to any", "bad prefix '10.0.0.0/33'"},
      {"allow in tcp from 2001:db8::/129", "bad prefix '2001:db8::/129'"},
      {"allow from 10.0.0", "bad prefix '10.0.0'"},
      {"allow from 10.0.0.0/", "bad prefix '10.0.0.0/'"},
      {"allow from 10.0.0.0/-1", "bad prefix '10.0.0.0/-1'"},
      {"allow from 10.1.0.0/8", "prefix has host bits set '10.1.0.0/8'"},
      {"allow from 2001:db8::1/64", "prefix has host bits set '2001:db8::1/64'"},
      {"permit in tcp", "expected 'allow' or 'deny', got 'permit'"},
      {"", "empty rule"},
      {"   # only a comment", "empty rule"},
      {"allow tcp to any port 70000", "bad port '70000'"},
      {"allow tcp to any port 90-80", "bad port range '90-80'"},
      {"allow tcp to any port 80-", "bad port range '80-'"},
      {"allow tcp to any port 80,,81", "bad port list '80,,81'"},
      {"allow tcp to any port", "expected ports after 'port'"},
      {"allow to any port 80", "ports need tcp or udp"},
      {"allow icmp from any port 80", "ports need tcp or udp"},
      {"allow from 10.0.0.0/8 to 2001:db8::/32",
       "mixed address families '10.0.0.0/8' and '2001:db8::/32'"},
      {"allow proto 256", "bad protocol '256'"},
      {"allow proto tcp", "bad protocol 'tcp'"},
      {"allow proto", "expected a protocol number after 'proto'"},
      {"allow from", "expected an address after 'from'"},
      {"allow tcp from any extra", "unexpected 'extra'"},
      {"allow to any from any", "unexpected 'from'"},
      {"allow tcp in", "unexpected 'in'"},
      {"ALLOW tcp", "expected 'allow' or 'deny', got 'ALLOW'"},
      {"allow udp to any port 1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17",
       "too many port ranges (max 16)"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.text);
    try {
      parse_rule(c.text);
      ADD_FAILURE() << "accepted";
    } catch (const std::invalid_argument& e) {
      EXPECT_EQ(std::string(e.what()), c.message);
    }
  }
}

TEST(AclParse, RulesErrorsNameTheLine) {
  const std::vector<ErrorCase> cases = {
      {"default deny\nallow tcp\nallow nonsense", "line 3: unexpected 'nonsense'"},
      {"default deny\n\n# x\ndefault allow", "line 4: second 'default' line"},
      {"default maybe", "line 1: expected 'default allow' or 'default deny'"},
      {"allow\r\ndeny from 10.0.0.0/33\r\n", "line 2: bad prefix '10.0.0.0/33'"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.text);
    try {
      parse_rules(c.text);
      ADD_FAILURE() << "accepted";
    } catch (const std::invalid_argument& e) {
      EXPECT_EQ(std::string(e.what()), c.message);
    }
  }
}

TEST(AclParse, StructErrorsNameTheRule) {
  auto expect_error = [](const AclConfig& cfg, const std::string& msg) {
    try {
      const Acl acl(cfg);
      ADD_FAILURE() << "accepted: " << msg;
    } catch (const std::invalid_argument& e) {
      EXPECT_EQ(std::string(e.what()), msg);
    }
  };
  FwRuleSpec ok;
  {
    AclConfig cfg;
    FwRuleSpec bad;
    bad.src = "10.0.0.0/33";
    cfg.rules = {ok, ok, bad};
    expect_error(cfg, "rule 3: bad prefix '10.0.0.0/33'");
  }
  {
    AclConfig cfg;
    FwRuleSpec bad;
    bad.proto = 300;
    cfg.rules = {bad};
    expect_error(cfg, "rule 1: bad protocol 300");
  }
  {
    AclConfig cfg;
    FwRuleSpec bad;
    bad.proto = kProtoUdp;
    bad.dports = {{90, 80}};
    cfg.rules = {ok, bad};
    expect_error(cfg, "rule 2: bad port range '90-80'");
  }
  {
    AclConfig cfg;
    FwRuleSpec bad;
    bad.proto = kProtoTcp;
    bad.sports.assign(17, PortRange{1, 2});
    cfg.rules = {bad};
    expect_error(cfg, "rule 1: too many port ranges (17 > 16)");
  }
  {
    AclConfig cfg;
    FwRuleSpec bad;
    bad.src = "";
    cfg.rules = {bad};
    expect_error(cfg, "rule 1: bad prefix ''");
  }
  {
    AclConfig cfg;
    cfg.rules.assign(Acl::kMaxRules + 1, ok);
    expect_error(cfg, "too many rules: 4097 > 4096");
  }
  {
    AclConfig cfg;
    cfg.rules.assign(Acl::kMaxRules, ok);
    EXPECT_EQ(Acl(cfg).size(), Acl::kMaxRules);
  }
}

TEST(AclParse, CanonicalFormat) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"allow in tcp from any to 10.0.0.0/8 port 80,443",
       "allow in tcp from any to 10.0.0.0/8 port 80,443"},
      {"deny \t udp   from 2001:db8::/32 port 53-54   # dns",
       "deny udp from 2001:db8::/32 port 53-54 to any"},
      {"allow proto 6", "allow tcp from any to any"},
      {"allow proto 132 to 192.0.2.1", "allow proto 132 from any to 192.0.2.1"},
      {"deny out icmpv6", "deny out icmpv6 from any to any"},
      {"allow", "allow from any to any"},
      {"allow udp to any port 0-65535,7-7", "allow udp from any to any port 0-65535,7"},
  };
  for (const auto& [in, out] : cases) {
    SCOPED_TRACE(in);
    const FwRuleSpec r = parse_rule(in);
    EXPECT_EQ(format_rule(r), out);
    EXPECT_EQ(parse_rule(out), r);
  }
}

TEST(AclParse, RulesFile) {
  const AclConfig cfg = parse_rules(kRules);
  EXPECT_EQ(cfg.rules.size(), 14u);
  EXPECT_EQ(cfg.default_action, FwAction::kDeny);
  EXPECT_EQ(format_rule(cfg.rules[3]),
            "allow in tcp from 198.18.0.0/15 to 10.2.0.0/16 port 8000-8099");
  EXPECT_EQ(parse_rules("default allow").default_action, FwAction::kAllow);
}

}  // namespace
}  // namespace tripod::fwtest
