// ACL compilation (config side: validates, allocates, throws) and matching
// (data plane: a linear scan, no allocation).
#include "nf/firewall/acl.h"

#include <arpa/inet.h>

#include <cstring>
#include <stdexcept>
#include <string>

#include "common/byte_order.h"

namespace tripod {
namespace fw_internal {

const char* parse_prefix(std::string_view text, Family* family, uint8_t addr[16], int* len) {
  std::memset(addr, 0, 16);
  if (text == "any") {
    *family = Family::kNone;
    *len = 0;
    return nullptr;
  }
  const size_t slash = text.find('/');
  const std::string_view host = text.substr(0, slash);
  if (host.empty() || host.size() > 45) return "bad prefix";
  const std::string host_z(host);  // inet_pton wants a terminated string
  int max_len;
  if (host.find(':') != std::string_view::npos) {
    if (inet_pton(AF_INET6, host_z.c_str(), addr) != 1) return "bad prefix";
    *family = Family::kIpv6;
    max_len = 128;
  } else {
    if (inet_pton(AF_INET, host_z.c_str(), addr) != 1) return "bad prefix";
    *family = Family::kIpv4;
    max_len = 32;
  }
  *len = max_len;
  if (slash != std::string_view::npos) {
    const std::string_view digits = text.substr(slash + 1);
    if (digits.empty() || digits.size() > 3) return "bad prefix";
    int n = 0;
    for (const char c : digits) {
      if (c < '0' || c > '9') return "bad prefix";
      n = n * 10 + (c - '0');
    }
    if (n > max_len) return "bad prefix";
    *len = n;
  }
  // Host bits must be clear.
  const int bytes = max_len / 8;
  for (int i = 0; i < bytes; ++i) {
    const int keep = *len - 8 * i;  // bits of this byte inside the prefix
    const unsigned mask = keep >= 8 ? 0xFFu : keep <= 0 ? 0u : (0xFF00u >> keep) & 0xFFu;
    if ((addr[i] & ~mask) != 0) return "prefix has host bits set";
  }
  return nullptr;
}

}  // namespace fw_internal

namespace {

[[noreturn]] void fail(const std::string& what) {
  throw std::invalid_argument(what);
}

// Mask of the top `len` bits of a `width`-bit value held in a uint64.
uint64_t top_bits(int len, int width) {
  if (len <= 0) return 0;
  const uint64_t all = width == 64 ? ~uint64_t{0} : (uint64_t{1} << width) - 1;
  return len >= width ? all : all & ~((uint64_t{1} << (width - len)) - 1);
}

void load_addr(Family f, const uint8_t* a, uint64_t out[2]) {
  if (f == Family::kIpv6) {
    out[0] = load_be<uint64_t>(a);
    out[1] = load_be<uint64_t>(a + 8);
  } else {
    out[0] = 0;
    out[1] = load_be32(a);
  }
}

}  // namespace

Acl::Rule Acl::compile(const FwRuleSpec& s, std::vector<PortRange>* ranges) {
  Rule r{};
  if (s.action != FwAction::kAllow && s.action != FwAction::kDeny) fail("bad action");
  if (s.dir != RuleDir::kAny && s.dir != RuleDir::kIn && s.dir != RuleDir::kOut) {
    fail("bad direction");
  }
  r.action = s.action;
  r.dir = s.dir;
  if (s.proto != kAnyProto && (s.proto < 0 || s.proto > 255)) {
    fail("bad protocol " + std::to_string(s.proto));
  }
  r.any_proto = s.proto == kAnyProto;
  r.proto = r.any_proto ? 0 : static_cast<uint8_t>(s.proto);

  Family fam[2];
  const std::string* text[2] = {&s.src, &s.dst};
  Prefix* pre[2] = {&r.src, &r.dst};
  for (int side = 0; side < 2; ++side) {
    uint8_t a[16];
    int len;
    if (const char* err = fw_internal::parse_prefix(*text[side], &fam[side], a, &len)) {
      fail(std::string(err) + " '" + *text[side] + "'");
    }
    if (fam[side] == Family::kNone) {
      *pre[side] = Prefix{};  // mask 0: anything
      continue;
    }
    load_addr(fam[side], a, pre[side]->net);
    if (fam[side] == Family::kIpv6) {
      pre[side]->mask[0] = top_bits(len, 64);
      pre[side]->mask[1] = top_bits(len - 64, 64);
    } else {
      pre[side]->mask[0] = 0;
      pre[side]->mask[1] = top_bits(len, 32);
    }
  }
  if (fam[0] != Family::kNone && fam[1] != Family::kNone && fam[0] != fam[1]) {
    fail("mixed address families '" + s.src + "' and '" + s.dst + "'");
  }
  r.family = fam[0] != Family::kNone ? fam[0] : fam[1];

  const std::vector<PortRange>* ports[2] = {&s.sports, &s.dports};
  for (int side = 0; side < 2; ++side) {
    const auto& v = *ports[side];
    if (v.empty()) continue;
    if (s.proto != kProtoTcp && s.proto != kProtoUdp) fail("ports need tcp or udp");
    if (v.size() > kMaxPortRanges) {
      fail("too many port ranges (" + std::to_string(v.size()) + " > " +
           std::to_string(kMaxPortRanges) + ")");
    }
    for (const PortRange& pr : v) {
      if (pr.lo > pr.hi) {
        fail("bad port range '" + std::to_string(pr.lo) + "-" + std::to_string(pr.hi) + "'");
      }
    }
    const auto first = static_cast<uint32_t>(ranges->size());
    ranges->insert(ranges->end(), v.begin(), v.end());
    (side == 0 ? r.sport_first : r.dport_first) = first;
    (side == 0 ? r.sport_count : r.dport_count) = static_cast<uint16_t>(v.size());
  }
  return r;
}

void Acl::validate(const FwRuleSpec& rule) {
  std::vector<PortRange> scratch;
  compile(rule, &scratch);
}

Acl::Acl(const AclConfig& cfg) : default_(cfg.default_action) {
  if (cfg.default_action != FwAction::kAllow && cfg.default_action != FwAction::kDeny) {
    throw std::invalid_argument("bad default action");
  }
  if (cfg.rules.size() > kMaxRules) {
    throw std::invalid_argument("too many rules: " + std::to_string(cfg.rules.size()) + " > " +
                                std::to_string(kMaxRules));
  }
  rules_.reserve(cfg.rules.size());
  for (size_t i = 0; i < cfg.rules.size(); ++i) {
    try {
      rules_.push_back(compile(cfg.rules[i], &ranges_));
    } catch (const std::invalid_argument& e) {
      throw std::invalid_argument("rule " + std::to_string(i + 1) + ": " + e.what());
    }
  }
}

bool Acl::ports_match(const PortRange* r, uint16_t n, uint16_t port) {
  for (uint16_t i = 0; i < n; ++i) {
    if (port >= r[i].lo && port <= r[i].hi) return true;
  }
  return false;
}

Acl::Match Acl::match(const AclPacket& p) const noexcept {
  if (p.family != Family::kIpv4 && p.family != Family::kIpv6) return {default_, -1};
  uint64_t src[2], dst[2];
  load_addr(p.family, p.src, src);
  load_addr(p.family, p.dst, dst);
  const RuleDir dir = p.dir == TrafficDir::kIn ? RuleDir::kIn : RuleDir::kOut;
  const PortRange* ranges = ranges_.data();
  for (size_t i = 0; i < rules_.size(); ++i) {
    const Rule& r = rules_[i];
    if (r.family != Family::kNone && r.family != p.family) continue;
    if (!r.any_proto && r.proto != p.proto) continue;
    if (r.dir != RuleDir::kAny && r.dir != dir) continue;
    if (((src[0] & r.src.mask[0]) != r.src.net[0]) | ((src[1] & r.src.mask[1]) != r.src.net[1]) |
        ((dst[0] & r.dst.mask[0]) != r.dst.net[0]) | ((dst[1] & r.dst.mask[1]) != r.dst.net[1])) {
      continue;
    }
    if (r.sport_count != 0 &&
        (!p.has_ports || !ports_match(ranges + r.sport_first, r.sport_count, p.sport))) {
      continue;
    }
    if (r.dport_count != 0 &&
        (!p.has_ports || !ports_match(ranges + r.dport_first, r.dport_count, p.dport))) {
      continue;
    }
    return {r.action, static_cast<int32_t>(i)};
  }
  return {default_, -1};
}

AclPacket acl_packet_of(const uint8_t* frame, const PacketMeta& m, TrafficDir dir) {
  AclPacket p;
  p.family = m.family;
  p.proto = m.proto;
  p.dir = dir;
  p.has_ports =
      (m.proto == kProtoTcp || m.proto == kProtoUdp) && m.has(kMetaHasL4) && !m.has(kMetaFragment);
  p.sport = m.sport;
  p.dport = m.dport;
  p.src = frame + m.src_off;
  p.dst = frame + m.dst_off;
  return p;
}

}  // namespace tripod
