// Ordered ACL: first match wins, else the default policy. Evaluated only for
// packets that would create a connection (conntrack.h); established traffic
// is decided by state.
//
// Config side (may allocate, throws std::invalid_argument with the rule's
// 1-based number: "rule 3: bad prefix '10.0.0.0/33'"):
//   - FwRuleSpec / AclConfig, a plain struct (the YAML layer will fill it);
//   - the one-line text form, parse_rule() / parse_rules(), grammar below.
// Data-plane side: Acl::match() is a linear scan over a compiled array, no
// allocation, no branches on strings. Fine for the hundreds of rules a
// gateway's security group holds (kMaxRules bounds the worst case); a larger
// set wants tuple-space search (rules grouped by prefix-length pair, one hash
// probe per group) or a per-field prefix trie with bitmap intersection.
//
// Text form (one rule per line, keywords lower case, tokens separated by
// blanks, '#' starts a comment):
//
//   rule     := action [dir] [proto] ["from" endpoint] ["to" endpoint]
//   action   := "allow" | "deny"
//   dir      := "in" | "out"                      (absent: either direction)
//   proto    := "tcp" | "udp" | "icmp" | "icmpv6" | "proto" 0..255   (absent: any)
//   endpoint := addr ["port" ports]               (ports need tcp or udp)
//   addr     := "any" | ipv4["/"0..32] | ipv6["/"0..128]   (no length: a host)
//   ports    := range{","range}   range := port | port"-"port   (no blanks)
//
//   allow in tcp from any to 10.0.0.0/8 port 80,443,8000-8099
//   deny out udp from 2001:db8::/32 port 53 to any
//   allow icmp
// parse_rules() also takes "default allow" / "default deny" (at most once).
//
// "any" matches both families; "0.0.0.0/0" matches every IPv4 packet only.
// A rule whose two addresses name different families is rejected, as is a
// prefix with host bits set ("10.1.0.0/8": almost always a typo).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "packet/packet_meta.h"

namespace tripod {

enum class FwAction : uint8_t { kAllow, kDeny };

// Where a packet travels relative to the protected side, as the pipeline
// knows it from the port it arrived on.
enum class TrafficDir : uint8_t { kIn, kOut };
// A rule's direction: it applies to the packet that creates a connection.
enum class RuleDir : uint8_t { kAny, kIn, kOut };

inline constexpr int kAnyProto = -1;

struct PortRange {
  uint16_t lo = 0;
  uint16_t hi = 65535;
  friend bool operator==(const PortRange&, const PortRange&) = default;
};

struct FwRuleSpec {
  FwAction action = FwAction::kDeny;
  RuleDir dir = RuleDir::kAny;
  int proto = kAnyProto;  // kAnyProto or 0..255
  std::string src = "any";
  std::string dst = "any";
  std::vector<PortRange> sports;  // empty: any port
  std::vector<PortRange> dports;
  friend bool operator==(const FwRuleSpec&, const FwRuleSpec&) = default;
};

struct AclConfig {
  std::vector<FwRuleSpec> rules;
  FwAction default_action = FwAction::kDeny;
};

// Parses one rule of the text form; throws std::invalid_argument. Everything
// it accepts compiles (the fuzz target checks it).
FwRuleSpec parse_rule(std::string_view line);
// Parses rules, one per line, with comments, blank lines and one optional
// "default" line; errors name the 1-based line: "line 2: bad port '70000'".
AclConfig parse_rules(std::string_view text);
// Canonical text of a rule: parse_rule(format_rule(r)) == r for any r that
// parse_rule returned.
std::string format_rule(const FwRuleSpec& r);

// What the ACL looks at in a packet. Addresses are network order, 4 or 16
// bytes by family; ports are meaningful for TCP/UDP only.
struct AclPacket {
  Family family = Family::kNone;
  uint8_t proto = 0;
  TrafficDir dir = TrafficDir::kIn;
  bool has_ports = false;  // false for fragments: a port-constrained rule never matches
  uint16_t sport = 0;
  uint16_t dport = 0;
  const uint8_t* src = nullptr;
  const uint8_t* dst = nullptr;
};
AclPacket acl_packet_of(const uint8_t* frame, const PacketMeta& m, TrafficDir dir);

class Acl {
 public:
  static constexpr size_t kMaxRules = 4096;
  static constexpr size_t kMaxPortRanges = 16;  // per side of one rule

  struct Match {
    FwAction action;
    int32_t rule;  // 0-based index of the matching rule, -1: the default policy
  };

  Acl() : Acl(AclConfig{}) {}
  // Validates and compiles; throws std::invalid_argument ("rule 3: ...").
  explicit Acl(const AclConfig& cfg);

  // Checks one rule as the constructor does; throws std::invalid_argument
  // with the bare reason ("bad prefix '10.0.0.0/33'").
  static void validate(const FwRuleSpec& rule);

  Match match(const AclPacket& p) const noexcept;
  size_t size() const { return rules_.size(); }
  FwAction default_action() const { return default_; }

 private:
  // Addresses as two host-order 64-bit halves; IPv4 sits in the low 32 bits
  // of [1]. A rule matches when (addr & mask) == net for both sides.
  struct Prefix {
    uint64_t net[2];
    uint64_t mask[2];
  };
  struct Rule {
    Prefix src;
    Prefix dst;
    Family family;  // kNone: both addresses "any", either family
    uint8_t proto;
    bool any_proto;
    RuleDir dir;
    FwAction action;
    uint32_t sport_first;  // into ranges_
    uint32_t dport_first;
    uint16_t sport_count;
    uint16_t dport_count;
  };
  static bool ports_match(const PortRange* r, uint16_t n, uint16_t port);
  // Compiles one rule, appending its port ranges; throws the bare reason.
  static Rule compile(const FwRuleSpec& s, std::vector<PortRange>* ranges);

  std::vector<Rule> rules_;
  std::vector<PortRange> ranges_;
  FwAction default_ = FwAction::kDeny;
};

namespace fw_internal {
// Parses "any", an address or a prefix into `family` (kNone for "any"),
// 16 network-order bytes and a length; returns an error text, or nullptr.
const char* parse_prefix(std::string_view text, Family* family, uint8_t addr[16], int* len);
}  // namespace fw_internal

}  // namespace tripod
