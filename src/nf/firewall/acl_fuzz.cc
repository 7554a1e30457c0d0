// libFuzzer target for the ACL's text form. Properties checked:
//  - parse_rule / parse_rules throw only std::invalid_argument;
//  - whatever parse_rule accepts compiles, and format_rule is canonical
//    (parse(format(r)) == r, format stable);
//  - Acl::match agrees with a bit-by-bit reference matcher on probe packets
//    placed on and around the rule's prefix and port-range edges.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "common/fuzz_check.h"
#include "nf/firewall/acl.h"

namespace tripod {
namespace {

struct Side {
  Family family;
  uint8_t addr[16];
  int len;
};

Side side_of(const std::string& text) {
  Side s{};
  FUZZ_CHECK(fw_internal::parse_prefix(text, &s.family, s.addr, &s.len) == nullptr);
  return s;
}

bool bit(const uint8_t* a, int i) {
  return ((a[i / 8] >> (7 - i % 8)) & 1) != 0;
}

bool prefix_has(const Side& s, Family f, const uint8_t* addr) {
  if (s.family == Family::kNone) return true;
  if (s.family != f) return false;
  for (int i = 0; i < s.len; ++i) {
    if (bit(s.addr, i) != bit(addr, i)) return false;
  }
  return true;
}

bool ports_have(const std::vector<PortRange>& v, bool has_ports, uint16_t p) {
  if (v.empty()) return true;
  if (!has_ports) return false;
  for (const PortRange& r : v) {
    if (p >= r.lo && p <= r.hi) return true;
  }
  return false;
}

bool reference(const FwRuleSpec& r, const Side& src, const Side& dst, const AclPacket& p) {
  const Family rf = src.family != Family::kNone ? src.family : dst.family;
  if (rf != Family::kNone && rf != p.family) return false;
  if (r.proto != kAnyProto && r.proto != p.proto) return false;
  if (r.dir == RuleDir::kIn && p.dir != TrafficDir::kIn) return false;
  if (r.dir == RuleDir::kOut && p.dir != TrafficDir::kOut) return false;
  return prefix_has(src, p.family, p.src) && prefix_has(dst, p.family, p.dst) &&
         ports_have(r.sports, p.has_ports, p.sport) && ports_have(r.dports, p.has_ports, p.dport);
}

// Addresses on and around a prefix's edges, in family f.
std::vector<std::vector<uint8_t>> probes(const Side& s, Family f) {
  const int width = f == Family::kIpv6 ? 128 : 32;
  std::vector<uint8_t> base(16, 0);
  if (s.family == f) {
    std::memcpy(base.data(), s.addr, 16);  // the network itself
  } else {
    base[3] = 0x5A;  // any address
  }
  std::vector<std::vector<uint8_t>> out;
  out.push_back(base);
  for (const int i : {s.len - 1, s.len, width - 1}) {
    if (i < 0 || i >= width) continue;
    std::vector<uint8_t> v = base;
    v[static_cast<size_t>(i / 8)] ^= static_cast<uint8_t>(0x80 >> (i % 8));
    out.push_back(v);
  }
  return out;
}

std::vector<uint16_t> port_probes(const std::vector<PortRange>& v) {
  if (v.empty()) return {1234};
  return {v[0].lo, v[0].hi, static_cast<uint16_t>(v[0].hi + 1), static_cast<uint16_t>(v[0].lo - 1)};
}

void check_rule(const FwRuleSpec& r) {
  // Compiles, alone and as an ACL.
  AclConfig cfg;
  cfg.rules.push_back(r);
  cfg.default_action = r.action == FwAction::kAllow ? FwAction::kDeny : FwAction::kAllow;
  std::optional<Acl> compiled;
  try {
    compiled.emplace(cfg);
  } catch (...) {
    FUZZ_CHECK(false);
  }
  const Acl& acl = *compiled;
  FUZZ_CHECK(acl.size() == 1);

  // Canonical text.
  const std::string text = format_rule(r);
  FwRuleSpec again;
  try {
    again = parse_rule(text);
  } catch (...) {
    FUZZ_CHECK(false);
  }
  FUZZ_CHECK(again == r);
  FUZZ_CHECK(format_rule(again) == text);

  // Matcher against the reference.
  const Side src = side_of(r.src);
  const Side dst = side_of(r.dst);
  const int proto_probe = r.proto == kAnyProto ? kProtoTcp : r.proto;
  for (const Family f : {Family::kIpv4, Family::kIpv6}) {
    const auto srcs = probes(src, f);
    const auto dsts = probes(dst, f);
    for (const auto& s : srcs) {
      for (const auto& d : dsts) {
        for (const int proto : {proto_probe, int{kProtoUdp}, int{kProtoIcmp}}) {
          for (const TrafficDir dir : {TrafficDir::kIn, TrafficDir::kOut}) {
            for (const uint16_t sp : port_probes(r.sports)) {
              for (const uint16_t dp : port_probes(r.dports)) {
                AclPacket p;
                p.family = f;
                p.proto = static_cast<uint8_t>(proto);
                p.dir = dir;
                p.has_ports = proto == kProtoTcp || proto == kProtoUdp;
                p.sport = sp;
                p.dport = dp;
                p.src = s.data();
                p.dst = d.data();
                const Acl::Match m = acl.match(p);
                const bool hit = reference(r, src, dst, p);
                FUZZ_CHECK(m.rule == (hit ? 0 : -1));
                FUZZ_CHECK(m.action == (hit ? r.action : cfg.default_action));
              }
            }
          }
        }
      }
    }
  }
}

}  // namespace
}  // namespace tripod

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace tripod;
  if (size > 4096) return 0;
  const std::string_view text(reinterpret_cast<const char*>(data), size);

  try {
    const FwRuleSpec r = parse_rule(text);
    check_rule(r);
  } catch (const std::invalid_argument& e) {
    FUZZ_CHECK(std::strlen(e.what()) > 0);
  }

  try {
    const AclConfig cfg = parse_rules(text);
    try {
      const Acl acl(cfg);
      FUZZ_CHECK(acl.size() == cfg.rules.size());
    } catch (...) {
      FUZZ_CHECK(false);  // parse_rules output always compiles
    }
  } catch (const std::invalid_argument& e) {
    const std::string_view msg = e.what();
    FUZZ_CHECK(msg.substr(0, 5) == "line ");
  }
  return 0;
}
