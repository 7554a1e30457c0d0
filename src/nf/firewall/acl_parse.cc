// The ACL's one-line text form (grammar in acl.h). Config side only: it
// allocates and throws std::invalid_argument with a message naming the token.
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "nf/firewall/acl.h"

namespace tripod {
namespace {

[[noreturn]] void fail(const std::string& what) {
  throw std::invalid_argument(what);
}

// Appends instead of "'" + std::string(t): GCC 12 at -O3 reports a bogus
// -Wrestrict for literal + string (GCC bug 105651).
std::string quoted(std::string_view t) {
  std::string r;
  r.reserve(t.size() + 2);
  r += '\'';
  r += t;
  r += '\'';
  return r;
}

bool is_blank(char c) {
  return c == ' ' || c == '\t' || c == '\r';
}

// Splits at blanks, dropping a '#' comment.
std::vector<std::string_view> tokens_of(std::string_view line) {
  line = line.substr(0, line.find('#'));
  std::vector<std::string_view> out;
  size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && is_blank(line[i]))
      ++i;
    const size_t start = i;
    while (i < line.size() && !is_blank(line[i]))
      ++i;
    if (i > start) out.push_back(line.substr(start, i - start));
  }
  return out;
}

// Decimal 0..max, digits only.
bool parse_uint(std::string_view t, uint32_t max, uint32_t* out) {
  if (t.empty() || t.size() > 5) return false;
  uint32_t v = 0;
  for (const char c : t) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<uint32_t>(c - '0');
  }
  if (v > max) return false;
  *out = v;
  return true;
}

std::vector<PortRange> parse_ports(std::string_view list) {
  std::vector<PortRange> out;
  size_t pos = 0;
  while (true) {
    const size_t comma = list.find(',', pos);
    const std::string_view item =
        list.substr(pos, comma == std::string_view::npos ? list.npos : comma - pos);
    if (item.empty()) fail("bad port list " + quoted(list));
    const size_t dash = item.find('-');
    uint32_t lo, hi;
    if (dash == std::string_view::npos) {
      if (!parse_uint(item, 65535, &lo)) fail("bad port " + quoted(item));
      hi = lo;
    } else {
      if (!parse_uint(item.substr(0, dash), 65535, &lo) ||
          !parse_uint(item.substr(dash + 1), 65535, &hi)) {
        fail("bad port range " + quoted(item));
      }
      if (lo > hi) fail("bad port range " + quoted(item));
    }
    if (out.size() == Acl::kMaxPortRanges) {
      fail("too many port ranges (max " + std::to_string(Acl::kMaxPortRanges) + ")");
    }
    out.push_back({static_cast<uint16_t>(lo), static_cast<uint16_t>(hi)});
    if (comma == std::string_view::npos) break;
    pos = comma + 1;
  }
  return out;
}

struct Named {
  std::string_view name;
  int proto;
};
constexpr Named kProtoNames[] = {
    {"tcp", kProtoTcp}, {"udp", kProtoUdp}, {"icmp", kProtoIcmp}, {"icmpv6", kProtoIcmpv6}};

class RuleParser {
 public:
  explicit RuleParser(std::vector<std::string_view> toks) : t_(std::move(toks)) {}

  FwRuleSpec parse() {
    FwRuleSpec r;
    if (at_end()) fail("empty rule");
    const std::string_view a = next();
    if (a == "allow") {
      r.action = FwAction::kAllow;
    } else if (a == "deny") {
      r.action = FwAction::kDeny;
    } else {
      fail("expected 'allow' or 'deny', got " + quoted(a));
    }
    if (accept("in")) {
      r.dir = RuleDir::kIn;
    } else if (accept("out")) {
      r.dir = RuleDir::kOut;
    }
    if (accept("proto")) {
      if (at_end()) fail("expected a protocol number after 'proto'");
      const std::string_view n = next();
      uint32_t v;
      if (!parse_uint(n, 255, &v)) fail("bad protocol " + quoted(n));
      r.proto = static_cast<int>(v);
    } else {
      for (const Named& p : kProtoNames) {
        if (accept(p.name)) {
          r.proto = p.proto;
          break;
        }
      }
    }
    if (accept("from")) endpoint("from", &r.src, &r.sports);
    if (accept("to")) endpoint("to", &r.dst, &r.dports);
    if (!at_end()) fail("unexpected " + quoted(t_[i_]));
    Acl::validate(r);  // family mix, ports without tcp/udp: one source of truth
    return r;
  }

 private:
  bool at_end() const { return i_ == t_.size(); }
  std::string_view next() { return t_[i_++]; }
  bool accept(std::string_view word) {
    if (at_end() || t_[i_] != word) return false;
    ++i_;
    return true;
  }
  void endpoint(const char* after, std::string* addr, std::vector<PortRange>* ports) {
    if (at_end()) fail(std::string("expected an address after '") + after + "'");
    const std::string_view a = next();
    Family f;
    uint8_t bytes[16];
    int len;
    if (const char* err = fw_internal::parse_prefix(a, &f, bytes, &len)) {
      fail(std::string(err) + " " + quoted(a));
    }
    *addr = std::string(a);
    if (accept("port")) {
      if (at_end()) fail("expected ports after 'port'");
      *ports = parse_ports(next());
    }
  }

  std::vector<std::string_view> t_;
  size_t i_ = 0;
};

void append_ports(std::string* out, const std::vector<PortRange>& ports) {
  if (ports.empty()) return;
  *out += " port ";
  for (size_t i = 0; i < ports.size(); ++i) {
    if (i != 0) *out += ',';
    *out += std::to_string(ports[i].lo);
    if (ports[i].hi != ports[i].lo) {
      *out += '-';
      *out += std::to_string(ports[i].hi);
    }
  }
}

}  // namespace

FwRuleSpec parse_rule(std::string_view line) {
  return RuleParser(tokens_of(line)).parse();
}

AclConfig parse_rules(std::string_view text) {
  AclConfig cfg;
  bool have_default = false;
  size_t line_no = 0;
  size_t pos = 0;
  while (pos <= text.size()) {
    const size_t nl = text.find('\n', pos);
    const std::string_view line =
        text.substr(pos, nl == std::string_view::npos ? text.npos : nl - pos);
    pos = nl == std::string_view::npos ? text.size() + 1 : nl + 1;
    ++line_no;
    const auto toks = tokens_of(line);
    if (toks.empty()) continue;
    try {
      if (toks[0] == "default") {
        if (toks.size() != 2 || (toks[1] != "allow" && toks[1] != "deny")) {
          fail("expected 'default allow' or 'default deny'");
        }
        if (have_default) fail("second 'default' line");
        have_default = true;
        cfg.default_action = toks[1] == "allow" ? FwAction::kAllow : FwAction::kDeny;
        continue;
      }
      if (cfg.rules.size() == Acl::kMaxRules) {
        fail("too many rules (max " + std::to_string(Acl::kMaxRules) + ")");
      }
      cfg.rules.push_back(RuleParser(toks).parse());
    } catch (const std::invalid_argument& e) {
      throw std::invalid_argument("line " + std::to_string(line_no) + ": " + e.what());
    }
  }
  return cfg;
}

std::string format_rule(const FwRuleSpec& r) {
  std::string out = r.action == FwAction::kAllow ? "allow" : "deny";
  if (r.dir == RuleDir::kIn) out += " in";
  if (r.dir == RuleDir::kOut) out += " out";
  if (r.proto != kAnyProto) {
    bool named = false;
    for (const Named& p : kProtoNames) {
      if (p.proto == r.proto) {
        out += " ";
        out += p.name;
        named = true;
      }
    }
    if (!named) out += " proto " + std::to_string(r.proto);
  }
  out += " from " + r.src;
  append_ports(&out, r.sports);
  out += " to " + r.dst;
  append_ports(&out, r.dports);
  return out;
}

}  // namespace tripod
