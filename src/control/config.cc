#include "control/config.h"

#include <sodium.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <initializer_list>
#include <memory>
#include <optional>
#include <sstream>
#include <utility>

#include "common/byte_order.h"
#include "common/random.h"
#include "nf/firewall/acl.h"
#include "nf/firewall/conntrack.h"

namespace tripod {

ConfigError::ConfigError(std::string file, int line, int column, std::string path,
                         std::string reason)
    : std::runtime_error([&] {
        std::string w = file;
        if (line > 0) w += ":" + std::to_string(line) + ":" + std::to_string(column);
        w += ": ";
        if (!path.empty()) w += path + ": ";
        return w + reason;
      }()),
      file_(std::move(file)),
      line_(line),
      column_(column),
      path_(std::move(path)),
      reason_(std::move(reason)) {}

std::string vip_label(const VipKey& k) {
  std::string a = k.addr.to_string();
  if (k.addr.family == Family::kIpv6) a = "[" + a + "]";
  const char* proto = k.proto == kProtoTcp ? "tcp" : k.proto == kProtoUdp ? "udp" : "?";
  return a + ":" + std::to_string(k.port) + "/" + proto;
}

uint32_t TripodConfig::sockets() const {
  uint32_t n = 0;
  for (const auto& i : interfaces)
    n += static_cast<uint32_t>(i.queues.size());
  return n;
}

uint32_t TripodConfig::effective_workers() const {
  return workers != 0 ? workers : sockets();
}

namespace {

// ---------------------------------------------------------------------------
// A thin layer over yaml-cpp nodes that knows where each node came from
// (file, line, column, field path), so that every check can fail with a
// located message.

struct Loc {
  int line = 0;  // 1-based; 0: unknown
  int col = 0;
};

Loc loc_of(const YAML::Node& n, Loc fallback) {
  const YAML::Mark m = n.Mark();
  if (m.is_null() || m.line < 0) return fallback;
  return Loc{m.line + 1, m.column + 1};
}

// A value as the user wrote it, for messages: quoted, bounded (fuzzed input
// can be huge) and with control bytes escaped.
std::string shown(std::string_view s) {
  constexpr size_t kMax = 60;
  std::string out = "\"";
  for (size_t i = 0; i < s.size() && i < kMax; ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20 || c == 0x7f) {
      static constexpr char kHex[] = "0123456789abcdef";
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 15];
    } else {
      out += static_cast<char>(c);
    }
  }
  if (s.size() > kMax) out += "...";
  return out + "\"";
}

const char* kind_of(const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Map:
      return "a map";
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Null:
      return "nothing";
    default:
      return "a scalar";
  }
}

size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j)
    row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] != b[j - 1] ? 1 : 0)});
      diag = up;
    }
  }
  return row[b.size()];
}

class V {
 public:
  V(const std::string* file, const YAML::Node& node, std::string path, Loc fallback)
      : file_(file), node_(node), path_(std::move(path)), loc_(loc_of(node_, fallback)) {}
  V(const V&) = default;
  // YAML::Node's assignment writes through into the document: never wanted.
  V& operator=(const V&) = delete;

  const YAML::Node& node() const { return node_; }
  const std::string& path() const { return path_; }
  Loc loc() const { return loc_; }
  std::string where() const {
    return *file_ + ":" + std::to_string(loc_.line) + ":" + std::to_string(loc_.col);
  }
  bool is_map() const { return node_.IsMap(); }
  bool is_seq() const { return node_.IsSequence(); }
  bool is_scalar() const { return node_.IsScalar(); }
  bool is_null() const { return node_.IsNull(); }

  [[noreturn]] void fail(const std::string& reason) const {
    throw ConfigError(*file_, loc_.line, loc_.col, path_, reason);
  }

  // Non-empty scalar text.
  const std::string& text(const char* expected) const {
    if (!node_.IsScalar() || node_.Scalar().empty())
      fail(std::string("must be ") + expected + ", got " + kind_of(node_));
    return node_.Scalar();
  }

  uint64_t integer(uint64_t lo, uint64_t hi) const {
    const std::string expected = "an integer in " + std::to_string(lo) + ".." + std::to_string(hi);
    const std::string& s = text(expected.c_str());
    uint64_t v = 0;
    const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc{} || end != s.data() + s.size() || v < lo || v > hi)
      fail("must be " + expected + ", got " + shown(s));
    return v;
  }
  uint32_t u32(uint32_t lo, uint32_t hi) const { return static_cast<uint32_t>(integer(lo, hi)); }
  uint16_t u16(uint16_t lo, uint16_t hi) const { return static_cast<uint16_t>(integer(lo, hi)); }
  uint8_t u8(uint8_t lo, uint8_t hi) const { return static_cast<uint8_t>(integer(lo, hi)); }

  bool boolean() const {
    const std::string& s = text("true or false");
    if (s == "true") return true;
    if (s == "false") return false;
    fail("must be true or false, got " + shown(s));
  }

  // Index of the value in `choices`.
  size_t choice(std::initializer_list<const char*> choices) const {
    std::string list;
    for (const char* c : choices)
      list += (list.empty() ? "" : ", ") + std::string(c);
    const std::string& s = text(("one of " + list).c_str());
    size_t i = 0;
    for (const char* c : choices) {
      if (s == c) return i;
      ++i;
    }
    fail("must be one of " + list + "; got " + shown(s));
  }

  // "500ms", "2s", "5m", "1h", "5d"; a bare number is seconds.
  uint64_t duration_ms(uint64_t lo_ms, uint64_t hi_ms) const {
    const std::string expected = "a duration in " + fmt_ms(lo_ms) + ".." + fmt_ms(hi_ms) +
                                 " (a number with ms, s, m, h or d; bare: seconds)";
    const std::string& s = text(expected.c_str());
    uint64_t n = 0;
    const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
    const std::string_view unit(end, static_cast<size_t>(s.data() + s.size() - end));
    uint64_t mult = 0;
    if (unit.empty() || unit == "s")
      mult = 1000;
    else if (unit == "ms")
      mult = 1;
    else if (unit == "m")
      mult = 60'000;
    else if (unit == "h")
      mult = 3'600'000;
    else if (unit == "d")
      mult = 86'400'000;
    // The bound on n keeps n * mult from overflowing.
    if (ec != std::errc{} || end == s.data() || mult == 0 || n > (uint64_t{1} << 40) ||
        n * mult < lo_ms || n * mult > hi_ms)
      fail("must be " + expected + ", got " + shown(s));
    return n * mult;
  }

  IpAddress address() const {
    const std::string& s = text("an IPv4 or IPv6 address");
    IpAddress a;
    try {
      a = IpAddress::parse(s);
    } catch (const std::invalid_argument&) {
      fail("must be an IPv4 or IPv6 address, got " + shown(s));
    }
    if (a.empty()) fail("must not be the unspecified address " + shown(s));
    return a;
  }

  PortRange port_range() const {
    const char* expected = "a port range \"lo-hi\" within 1..65535";
    const std::string& s = text(expected);
    const size_t dash = s.find('-');
    const std::string lo_s = s.substr(0, dash);
    const std::string hi_s = dash == std::string::npos ? lo_s : s.substr(dash + 1);
    uint32_t lo = 0, hi = 0;
    auto num = [](const std::string& t, uint32_t* out) {
      const auto [e, ec] = std::from_chars(t.data(), t.data() + t.size(), *out);
      return !t.empty() && ec == std::errc{} && e == t.data() + t.size() && *out >= 1 &&
             *out <= 65535;
    };
    if (!num(lo_s, &lo) || !num(hi_s, &hi))
      fail(std::string("must be ") + expected + ", got " + shown(s));
    if (lo > hi) fail("empty port range " + shown(s) + " (lo > hi)");
    return PortRange{static_cast<uint16_t>(lo), static_cast<uint16_t>(hi)};
  }

  std::vector<V> items() const {
    if (!node_.IsSequence()) fail(std::string("must be a list, got ") + kind_of(node_));
    std::vector<V> out;
    size_t i = 0;
    for (const auto& n : node_) {
      out.emplace_back(file_, n, path_ + "[" + std::to_string(i) + "]", loc_);
      ++i;
    }
    return out;
  }

  const std::string* file() const { return file_; }

 private:
  static std::string fmt_ms(uint64_t ms) {
    if (ms % 1000 == 0) return std::to_string(ms / 1000) + "s";
    return std::to_string(ms) + "ms";
  }

  const std::string* file_;
  YAML::Node node_;
  std::string path_;
  Loc loc_;
};

// Reads a map's fields by name and, in done(), rejects the ones nobody asked
// for: a typo in an optional field would otherwise silently keep a default.
class Fields {
 public:
  explicit Fields(const V& v) : v_(v) {
    if (v.is_null()) return;  // "section:" with nothing under it: all defaults
    if (!v.is_map()) v.fail(std::string("must be a map, got ") + kind_of(v.node()));
    for (const auto& kv : v.node()) {
      const V key(v.file(), kv.first, kv.first.IsScalar() ? child(kv.first.Scalar()) : v.path(),
                  v.loc());
      if (!kv.first.IsScalar()) key.fail("field names must be plain text");
      const std::string& name = kv.first.Scalar();
      for (const auto& e : entries_) {
        if (e.name == name)
          key.fail("duplicate field " + shown(name) + " (first at line " +
                   std::to_string(e.key_loc.line) + ")");
      }
      entries_.push_back(Entry{name, key.loc(), V(v.file(), kv.second, child(name), key.loc())});
    }
  }

  std::optional<V> get(std::string_view name) {
    known_.emplace_back(name);
    for (auto& e : entries_) {
      if (e.name == name) {
        e.used = true;
        return e.value;
      }
    }
    return std::nullopt;
  }
  V need(std::string_view name) {
    std::optional<V> f = get(name);
    if (f) return *f;
    // A missing required field is most often a typo of it: point at that.
    for (const auto& e : entries_) {
      if (!e.used && close(e.name, name))
        throw ConfigError(*v_.file(), e.key_loc.line, e.key_loc.col, child(e.name),
                          "unknown field (did you mean \"" + std::string(name) + "\"?)");
    }
    throw ConfigError(*v_.file(), v_.loc().line, v_.loc().col, child(name), "is required");
  }

  void done() const {
    for (const auto& e : entries_) {
      if (e.used) continue;
      std::string reason = "unknown field";
      const std::string* best = nullptr;
      size_t best_d = SIZE_MAX;
      for (const auto& k : known_) {
        const size_t d = edit_distance(e.name, k);
        if (close(e.name, k) && d < best_d) {
          best_d = d;
          best = &k;
        }
      }
      if (best != nullptr) reason += " (did you mean \"" + *best + "\"?)";
      throw ConfigError(*v_.file(), e.key_loc.line, e.key_loc.col, child(e.name), reason);
    }
  }

  const V& self() const { return v_; }

 private:
  // Close enough to be a typo: at most 2 edits, and fewer than half the name.
  static bool close(std::string_view typed, std::string_view known) {
    const size_t d = edit_distance(typed, known);
    return d <= 2 && d < std::max<size_t>(known.size() / 2, 1);
  }
  std::string child(std::string_view name) const {
    return v_.path().empty() ? std::string(name) : v_.path() + "." + std::string(name);
  }
  struct Entry {
    std::string name;
    Loc key_loc;
    V value;
    bool used = false;
  };
  V v_;
  std::vector<Entry> entries_;
  std::vector<std::string> known_;
};

// ---------------------------------------------------------------------------
// Sections.

void read_interfaces(const V& v, TripodConfig& cfg) {
  const auto items = v.items();
  if (items.empty()) v.fail("at least one interface is required");
  for (const V& item : items) {
    Fields f(item);
    InterfaceConfig ic;
    const V name = f.need("name");
    ic.name = name.text("an interface name");
    // IFNAMSIZ is 16 with the terminating NUL; the kernel refuses '/' and blanks.
    if (ic.name.size() > 15 || ic.name.find_first_of("/ \t:") != std::string::npos)
      name.fail("not a valid interface name: " + shown(ic.name));
    for (const auto& other : cfg.interfaces) {
      if (other.name == ic.name) name.fail("interface " + shown(ic.name) + " listed twice");
    }
    if (auto q = f.get("queues")) {
      if (q->is_seq()) {
        for (const V& qi : q->items()) {
          const uint32_t id = qi.u32(0, 1023);
          if (std::find(ic.queues.begin(), ic.queues.end(), id) != ic.queues.end())
            qi.fail("queue " + std::to_string(id) + " listed twice");
          ic.queues.push_back(id);
        }
        if (ic.queues.empty()) q->fail("at least one queue is required");
      } else {
        const uint32_t n = q->u32(1, 1024);  // a count: queues 0..n-1
        for (uint32_t i = 0; i < n; ++i)
          ic.queues.push_back(i);
      }
    } else {
      ic.queues.push_back(0);
    }
    if (auto m = f.get("xdp_mode"))
      ic.xdp_mode = static_cast<XdpMode>(m->choice({"auto", "native", "skb"}));
    if (auto m = f.get("bind_mode"))
      ic.bind_mode = static_cast<BindMode>(m->choice({"auto", "copy", "zerocopy"}));
    f.done();
    cfg.interfaces.push_back(std::move(ic));
  }
}

void read_logging(const V& v, LoggingConfig& lc) {
  Fields f(v);
  if (auto l = f.get("level")) {
    static constexpr const char* kLevels[] = {"trace", "debug",    "info", "warn",
                                              "error", "critical", "off"};
    lc.level = kLevels[l->choice({"trace", "debug", "info", "warn", "error", "critical", "off"})];
  }
  if (auto fm = f.get("format")) lc.format = static_cast<LogFormat>(fm->choice({"text", "json"}));
  f.done();
}

// `n` bytes as 2n hex digits. The value is a secret: messages never echo it.
void read_hex(const V& v, uint8_t* out, size_t n) {
  const std::string what = std::to_string(2 * n) + " hex digits (" + std::to_string(n) + " bytes)";
  const std::string& s = v.text(what.c_str());
  if (s.size() != 2 * n)
    v.fail("must be " + what + ", got " + std::to_string(s.size()) + " characters");
  for (size_t i = 0; i < n; ++i) {
    const auto [end, ec] = std::from_chars(s.data() + 2 * i, s.data() + 2 * i + 2, out[i], 16);
    if (ec != std::errc{} || end != s.data() + 2 * i + 2) v.fail("must be " + what);
  }
}

// SipHash's key as the reference takes its 16 bytes: k0, k1 little-endian.
SipKey sip_key(const uint8_t bytes[16]) {
  return SipKey{load_le<uint64_t>(bytes), load_le<uint64_t>(bytes + 8)};
}

SipKey read_key(const V& v) {
  uint8_t bytes[16];
  read_hex(v, bytes, sizeof bytes);
  return sip_key(bytes);
}

SipKey random_key() {
  SipKey k;
  secure_random_bytes(&k.k0, sizeof k.k0);
  secure_random_bytes(&k.k1, sizeof k.k1);
  return k;
}

void read_secrets(const std::optional<V>& v, TripodConfig& cfg) {
  std::optional<Fields> f;
  if (v) f.emplace(*v);
  auto get = [&](const char* name) { return f ? f->get(name) : std::optional<V>(); };
  const std::optional<V> table = get("table_key");
  const std::optional<V> lb = get("lb_key");
  const std::optional<V> sp = get("synproxy_key");
  if (f) f->done();
  GatewayConfig& g = cfg.gateway;
  g.table_hash_key = table ? read_key(*table) : random_key();
  g.lb_hash_key = lb ? read_key(*lb) : random_key();
  g.synproxy_master = sp ? read_key(*sp) : random_key();
  // Which worker owns a flow (by slot): secret, so that no one can aim a
  // flood at one worker. A cluster derives its own from the cluster key.
  g.cluster.slot_key = random_key();
  cfg.generated = GeneratedSecrets{!table, !lb, !sp};
}

void read_syn_cookies(const V& v, CookieConfig& c) {
  Fields f(v);
  if (auto s = f.get("slot")) c.slot_ns = s->duration_ms(1000, 3'600'000) * 1'000'000;
  if (auto a = f.get("max_age_slots")) c.max_age_slots = a->u32(1, 3);
  if (auto r = f.get("rotate_every_slots")) {
    c.rotate_every_slots = r->u32(0, 1'000'000);
    // The keyring would silently raise it: a key must outlive its cookies.
    if (c.rotate_every_slots != 0 && c.rotate_every_slots < c.max_age_slots)
      r->fail("must be 0 (on demand only) or at least max_age_slots (" +
              std::to_string(c.max_age_slots) + ")");
  }
  if (auto o = f.get("options_without_timestamps")) c.options_without_timestamps = o->boolean();
  f.done();
}

void read_timeouts(const V& v, FwTimeouts& t) {
  Fields f(v);
  auto one = [&](const char* name, uint32_t* out) {
    if (auto d = f.get(name)) {
      const uint64_t ms = d->duration_ms(1000, uint64_t{FwPolicy::kMaxTimeoutS} * 1000);
      if (ms % 1000 != 0) d->fail("must be whole seconds");
      *out = static_cast<uint32_t>(ms / 1000);
    }
  };
  one("tcp_syn_sent", &t.tcp_syn_sent);
  one("tcp_syn_recv", &t.tcp_syn_recv);
  one("tcp_established", &t.tcp_established);
  one("tcp_fin_wait", &t.tcp_fin_wait);
  one("tcp_close_wait", &t.tcp_close_wait);
  one("tcp_last_ack", &t.tcp_last_ack);
  one("tcp_time_wait", &t.tcp_time_wait);
  one("tcp_close", &t.tcp_close);
  one("tcp_unacknowledged", &t.tcp_unacknowledged);
  one("udp", &t.udp);
  one("udp_stream", &t.udp_stream);
  one("icmp", &t.icmp);
  one("generic", &t.generic);
  f.done();
}

void read_firewall(const V& v, GatewayConfig& g) {
  Fields f(v);
  FirewallConfig& fw = g.firewall;
  if (auto d = f.get("default"))
    fw.acl.default_action = d->choice({"allow", "deny"}) == 0 ? FwAction::kAllow : FwAction::kDeny;
  if (auto l = f.get("tcp_be_liberal")) fw.tcp_be_liberal = l->boolean();
  if (auto d = f.get("non_vip_direction"))
    g.non_vip_dir = d->choice({"in", "out"}) == 0 ? TrafficDir::kIn : TrafficDir::kOut;
  if (auto r = f.get("rules")) {
    const auto items = r->items();
    if (items.size() > Acl::kMaxRules)
      r->fail("too many rules: " + std::to_string(items.size()) + " (at most " +
              std::to_string(Acl::kMaxRules) + ")");
    for (const V& item : items) {
      const std::string& line = item.text("a rule such as \"allow in tcp to any port 80\"");
      try {
        FwRuleSpec rule = parse_rule(line);
        Acl::validate(rule);
        fw.acl.rules.push_back(std::move(rule));
      } catch (const std::invalid_argument& e) {
        item.fail(e.what());
      }
    }
  }
  f.done();
}

// Addresses of one SNAT pool plus its port range.
void read_snat_pool(Fields& f, SnatPoolConfig& pool) {
  if (auto a = f.get("addresses")) {
    for (const V& item : a->items()) {
      const IpAddress ip = item.address();
      SnatAddress sa;
      sa.family = ip.family;
      std::memcpy(sa.addr, ip.bytes, sizeof sa.addr);
      for (const auto& other : pool.addresses) {
        if (other.family == sa.family && std::memcmp(other.addr, sa.addr, 16) == 0)
          item.fail("address " + ip.to_string() + " listed twice");
      }
      pool.addresses.push_back(sa);
    }
  }
  if (auto p = f.get("port_range")) {
    const PortRange r = p->port_range();
    pool.port_lo = r.lo;
    pool.port_hi = r.hi;
  }
  // A fresh port order per process (port_alloc.h: a restarted node must not
  // replay its predecessor's ports into the backends' TIME_WAIT).
  do {
    secure_random_bytes(&pool.shuffle_seed, sizeof pool.shuffle_seed);
  } while (pool.shuffle_seed == 0);
}

// The allocator validates what the checks above may have missed. The stage
// keeps one allocator per family (GatewayConfig::snat), so build one each.
void check_snat_pool(const V& where, const SnatPoolConfig& pool) {
  for (const Family fam : {Family::kIpv4, Family::kIpv6}) {
    SnatPoolConfig one = pool;
    one.addresses.clear();
    for (const auto& a : pool.addresses) {
      if (a.family == fam) one.addresses.push_back(a);
    }
    if (one.addresses.empty()) continue;
    try {
      SnatPortAllocator check(std::move(one));
    } catch (const std::invalid_argument& e) {
      where.fail(e.what());
    }
  }
}

bool pool_has_family(const SnatPoolConfig& pool, Family f) {
  return std::any_of(pool.addresses.begin(), pool.addresses.end(),
                     [&](const SnatAddress& a) { return a.family == f; });
}

const char* family_name(Family f) {
  return f == Family::kIpv6 ? "IPv6" : "IPv4";
}

void read_egress(const V& v, EgressConfig& eg) {
  Fields f(v);
  std::vector<std::pair<V, Family>> sources;
  if (auto s = f.get("sources")) {
    for (const V& item : s->items()) {
      const std::string& text = item.text("a prefix such as 10.0.0.0/8, or any");
      Family fam = Family::kNone;
      uint8_t addr[16];
      int len = 0;
      if (const char* err = fw_internal::parse_prefix(text, &fam, addr, &len))
        item.fail(std::string(err) + ": " + shown(text));
      // Every destination inside the sources stays untranslated: "any"
      // would leave nothing to translate.
      if (fam == Family::kNone)
        item.fail("\"any\" would make every destination internal: list the internal prefixes");
      // The XDP program keys IPv4 as IPv4-mapped IPv6 (::ffff:0:0/96): an
      // IPv6 prefix covering that would cover every IPv4 address too.
      static const uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
      if (fam == Family::kIpv6 && len <= 96) {
        bool covers = true;
        for (int bit = 0; bit < len && covers; ++bit)
          covers = ((addr[bit / 8] ^ kMapped[bit / 8]) >> (7 - bit % 8) & 1) == 0;
        if (covers) item.fail("covers the IPv4-mapped range ::ffff:0:0/96: " + shown(text));
      }
      eg.sources.push_back(text);
      sources.emplace_back(item, fam);
    }
  }
  read_snat_pool(f, eg.snat);
  f.done();
  if (!eg.sources.empty() && eg.snat.addresses.empty())
    v.fail("sources need at least one address in egress.addresses");
  if (eg.sources.empty() && !eg.snat.addresses.empty())
    v.fail("addresses without sources: list the internal prefixes in egress.sources");
  for (const auto& [item, fam] : sources) {
    // "any" (kNone) is fine with either family.
    if (fam != Family::kNone && !pool_has_family(eg.snat, fam))
      item.fail(std::string(family_name(fam)) + " source needs an " + family_name(fam) +
                " address in egress.addresses");
  }
  check_snat_pool(v, eg.snat);
}

void read_synproxy(const V& v, GatewayVipConfig& vip) {
  if (v.is_scalar()) {  // shorthand: synproxy: true
    vip.synproxy = v.boolean();
    return;
  }
  Fields f(v);
  vip.synproxy = true;  // a section turns it on unless it says otherwise
  SynProxyVip& o = vip.synproxy_options;
  if (auto e = f.get("enabled")) vip.synproxy = e->boolean();
  if (auto m = f.get("mss")) o.mss = m->u16(536, 65495);
  if (auto w = f.get("wscale")) o.wscale = w->u8(0, 14);
  if (auto w = f.get("window_scaling")) o.window_scaling = w->boolean();
  if (auto s = f.get("sack")) o.sack = s->boolean();
  if (auto t = f.get("timestamps")) o.timestamps = t->boolean();
  std::optional<V> ecn = f.get("ecn");
  if (ecn) o.ecn = ecn->boolean();
  if (auto t = f.get("ttl")) o.ttl = t->u8(1, 255);
  f.done();
  if (o.ecn && !o.timestamps)
    ecn->fail("needs timestamps: true (the cookie carries ECN in the timestamp)");
}

void read_health_check(const V& v, HealthCheckConfig& hc) {
  Fields f(v);
  const V type = f.need("type");
  hc.type = type.choice({"tcp", "http"}) == 0 ? HealthCheckType::kTcp : HealthCheckType::kHttp;
  if (auto i = f.get("interval"))
    hc.interval_ms = static_cast<uint32_t>(i->duration_ms(100, 3'600'000));
  std::optional<V> timeout = f.get("timeout");
  if (timeout)
    hc.timeout_ms = static_cast<uint32_t>(timeout->duration_ms(10, 3'600'000));
  else  // the default 1s, but always inside a short interval
    hc.timeout_ms = std::min(hc.timeout_ms, hc.interval_ms / 2);
  if (auto r = f.get("rise")) hc.rise = r->u32(1, 1000);
  if (auto r = f.get("fall")) hc.fall = r->u32(1, 1000);
  if (auto p = f.get("port")) hc.port = p->u16(1, 65535);
  std::optional<V> path = f.get("path"), host = f.get("host"), status = f.get("expect_status");
  if (hc.type != HealthCheckType::kHttp) {
    for (const auto* o : {&path, &host, &status}) {
      if (*o) (*o)->fail("only http health checks have this field");
    }
  }
  if (path) {
    hc.http_path = path->text("an absolute path such as /healthz");
    // It goes into the request line verbatim: no blanks or control bytes.
    const bool bad = std::any_of(hc.http_path.begin(), hc.http_path.end(), [](char c) {
      const auto u = static_cast<unsigned char>(c);
      return u <= 0x20 || u == 0x7f;
    });
    if (hc.http_path[0] != '/' || bad)
      path->fail("must be an absolute path without blanks, got " + shown(hc.http_path));
  }
  if (host) {
    hc.http_host = host->text("a host name");
    const bool bad = std::any_of(hc.http_host.begin(), hc.http_host.end(), [](char c) {
      const auto u = static_cast<unsigned char>(c);
      return u <= 0x20 || u == 0x7f || c == '/';
    });
    if (bad) host->fail("not a valid host name: " + shown(hc.http_host));
  }
  if (status) hc.http_expect_status = status->u16(100, 599);
  f.done();
  if (hc.timeout_ms >= hc.interval_ms) {
    const V& at = timeout ? *timeout : v;
    at.fail("timeout (" + std::to_string(hc.timeout_ms) + "ms) must be shorter than interval (" +
            std::to_string(hc.interval_ms) + "ms)");
  }
}

bool parse_mac(std::string_view s, uint8_t out[6]) {
  if (s.size() != 17) return false;
  for (size_t i = 0; i < 6; ++i) {
    if (i > 0 && s[3 * i - 1] != ':' && s[3 * i - 1] != '-') return false;
    const char* p = s.data() + 3 * i;
    const auto [end, ec] = std::from_chars(p, p + 2, out[i], 16);
    if (ec != std::errc{} || end != p + 2) return false;
  }
  return true;
}

void read_backend(const V& v, const GatewayVipConfig& vip, Backend& b) {
  Fields f(v);
  const V addr = f.need("address");
  b.addr = addr.address();
  if (b.addr.family != vip.key.addr.family)
    addr.fail(std::string(family_name(b.addr.family)) + " backend for an " +
              family_name(vip.key.addr.family) + " VIP");
  std::optional<V> port = f.get("port");
  if (port) b.port = port->u16(0, 65535);
  if (auto w = f.get("weight")) b.weight = w->u32(0, kMaxWeight);
  std::optional<V> mac = f.get("mac");
  if (mac) {
    const std::string& s = mac->text("a MAC address such as 02:00:00:00:00:01");
    if (!parse_mac(s, b.mac))
      mac->fail("must be a MAC address such as 02:00:00:00:00:01, got " + shown(s));
    if (std::all_of(std::begin(b.mac), std::end(b.mac), [](uint8_t x) { return x == 0; }))
      mac->fail("must not be all zero");
    if (b.mac[0] & 1) mac->fail("must be a unicast MAC, got " + shown(s));
  }
  f.done();
  if (vip.mode == VipMode::kDsr) {
    // DSR rewrites only the destination MAC: the backend sees the VIP's port.
    if (!mac)
      throw ConfigError(*v.file(), v.loc().line, v.loc().col, v.path() + ".mac",
                        "is required for a dsr VIP");
    if (b.port != 0 && b.port != vip.key.port)
      port->fail("a dsr backend receives the VIP's port " + std::to_string(vip.key.port) +
                 "; omit port or set it to that");
  } else if (mac) {
    mac->fail("only dsr VIPs use a backend mac");
  }
}

// `all`: every VIP node, for the line of an earlier duplicate.
void read_vip(const V& v, TripodConfig& cfg, const std::vector<V>& all) {
  Fields f(v);
  GatewayVipConfig vip;
  VipDaemonConfig dv;
  dv.where = v.where();
  const V addr = f.need("address");
  vip.key.addr = addr.address();
  vip.key.proto = kProtoTcp;
  std::optional<V> proto = f.get("protocol");
  if (proto) vip.key.proto = proto->choice({"tcp", "udp"}) == 0 ? kProtoTcp : kProtoUdp;
  vip.key.port = f.need("port").u16(1, 65535);
  std::optional<V> mode = f.get("mode");
  if (mode) vip.mode = mode->choice({"fullnat", "dsr"}) == 0 ? VipMode::kFullNat : VipMode::kDsr;
  if (std::optional<V> h = f.get("scheduler"))
    vip.hash = h->choice({"flow", "source"}) == 0 ? LbHash::kFlow : LbHash::kSource;
  std::optional<V> clamp = f.get("mss_clamp");
  if (clamp) {
    vip.mss_clamp = clamp->u16(0, 65495);
    if (vip.mss_clamp != 0 && vip.mss_clamp < 536) clamp->fail("must be 0 (off) or 536..65495");
  }
  std::optional<V> sp = f.get("synproxy");
  if (sp) read_synproxy(*sp, vip);
  if (auto n = f.get("name")) {
    dv.name = n->text("a name");
    for (size_t j = 0; j < cfg.vips.size(); ++j) {
      if (cfg.vips[j].name == dv.name)  // status and logs address VIPs by name
        n->fail("name " + shown(dv.name) + " is also vips[" + std::to_string(j) + "]'s");
    }
  }
  if (auto hc = f.get("health_check")) read_health_check(*hc, dv.health_check);
  if (auto r = f.get("replication"))
    dv.replication = static_cast<ReplicationMode>(r->choice({"async", "sync", "off"}));
  // At most 5 s: a holder's copy outlives its processor's deadline by 10 s
  // (standby_grace_s), and a rearmed deadline travels after the interval.
  if (auto ci = f.get("checkpoint_interval"))
    dv.checkpoint_ns = ci->duration_ms(1, 5'000) * 1'000'000;

  const V backends = f.need("backends");
  const auto items = backends.items();
  if (items.size() > kMaxBackends)
    backends.fail("too many backends: " + std::to_string(items.size()) + " (at most " +
                  std::to_string(kMaxBackends) + ")");
  for (size_t i = 0; i < items.size(); ++i) {
    Backend b;
    read_backend(items[i], vip, b);
    // Two entries for one endpoint would share a Maglev permutation (pool_table.cc).
    for (size_t j = 0; j < i; ++j) {
      if (vip.pool.backends[j].same_endpoint(b))
        items[i].fail("duplicates " + backends.path() + "[" + std::to_string(j) + "] (line " +
                      std::to_string(items[j].loc().line) + ")");
    }
    vip.pool.backends.push_back(b);
  }
  f.done();

  if (vip.key.proto != kProtoTcp) {
    if (vip.synproxy) sp->fail("the SYN proxy needs a tcp VIP");
    if (vip.mss_clamp != 0) clamp->fail("MSS clamping needs a tcp VIP");
  }
  if (vip.mode == VipMode::kDsr) {
    // Replies bypass the gateway: nothing to translate or clamp on the way back.
    if (vip.synproxy)
      sp->fail("the SYN proxy needs a fullnat VIP (dsr replies bypass the gateway)");
    if (vip.mss_clamp != 0) clamp->fail("MSS clamping applies to fullnat VIPs only");
  }
  for (size_t j = 0; j < cfg.gateway.vips.size(); ++j) {
    if (cfg.gateway.vips[j].key == vip.key)
      v.fail("duplicates vips[" + std::to_string(j) + "] " + vip_label(vip.key) + " (line " +
             std::to_string(all[j].loc().line) + ")");
  }
  if (dv.name.empty()) dv.name = vip_label(vip.key);
  cfg.gateway.vips.push_back(std::move(vip));
  cfg.vips.push_back(std::move(dv));
}

// "192.0.2.1:7946", "[2001:db8::1]:7946".
std::pair<IpAddress, uint16_t> read_endpoint(const V& v) {
  const char* expected = "an address:port (IPv6 in brackets: [addr]:port)";
  const std::string& s = v.text(expected);
  const size_t colon = s.rfind(':');
  if (colon == std::string::npos || colon + 1 == s.size())
    v.fail(std::string("must be ") + expected);
  std::string host = s.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  } else if (host.find(':') != std::string::npos) {
    v.fail("an IPv6 address needs brackets: [addr]:port, got " + shown(s));
  }
  IpAddress a;
  try {
    a = IpAddress::parse(host);
  } catch (const std::invalid_argument&) {
    v.fail(std::string("must be ") + expected + ", got " + shown(s));
  }
  uint32_t port = 0;
  const std::string ps = s.substr(colon + 1);
  const auto [end, ec] = std::from_chars(ps.data(), ps.data() + ps.size(), port);
  if (ec != std::errc{} || end != ps.data() + ps.size() || port < 1 || port > 65535 || a.empty())
    v.fail(std::string("must be ") + expected + ", got " + shown(s));
  return {a, static_cast<uint16_t>(port)};
}

// A SipHash key for `label`, derived from the cluster key (keyed BLAKE2b):
// every node derives the same one, and none of them is the cluster key.
SipKey derive_key(const std::array<uint8_t, 32>& key, const char* label) {
  uint8_t out[16];
  crypto_generichash(out, sizeof out, reinterpret_cast<const uint8_t*>(label), std::strlen(label),
                     key.data(), key.size());
  return sip_key(out);
}

void read_cluster(const V& v, TripodConfig& cfg, const std::optional<V>& secrets) {
  ClusterConfig& c = cfg.cluster;
  c.enabled = true;
  c.where = v.where();
  Fields f(v);
  const V id = f.need("node_id");
  c.node_id = id.u16(1, kMaxClusterNodes);
  if (auto i = f.get("cluster_id")) c.cluster_id = i->u32(0, UINT32_MAX);
  read_hex(f.need("key"), c.key.data(), c.key.size());
  if (auto h = f.get("heartbeat_interval"))
    c.heartbeat_interval_ns = h->duration_ms(1, 10'000) * 1'000'000;
  std::optional<V> dead = f.get("dead_after");
  if (dead) c.dead_after_ns = dead->duration_ms(2, 60'000) * 1'000'000;
  if (c.dead_after_ns <= c.heartbeat_interval_ns)
    (dead ? *dead : v).fail("dead_after must be longer than heartbeat_interval");
  if (auto r = f.get("rise")) c.rise = r->u32(1, 100);
  if (auto r = f.get("replicas")) c.replicas = r->u32(1, 3);
  if (auto ci = f.get("checkpoint_interval"))
    c.checkpoint_interval_ns = ci->duration_ms(1, 1000) * 1'000'000;
  if (auto pt = f.get("pull_timeout"))
    c.pull_timeout_ms = static_cast<uint32_t>(pt->duration_ms(0, 1000));
  if (auto jt = f.get("join_timeout")) c.join_timeout_ns = jt->duration_ms(1, 600'000) * 1'000'000;
  if (auto m = f.get("mode"))
    c.mode = static_cast<ReplicationMode>(m->choice({"async", "sync", "off"}));
  const V nodes = f.need("nodes");
  for (const V& nv : nodes.items()) {
    Fields nf(nv);
    ClusterNodeConfig n;
    const V nid = nf.need("id");
    n.id = nid.u16(1, kMaxClusterNodes);
    for (const auto& o : c.nodes)
      if (o.id == n.id) nid.fail("node id " + std::to_string(n.id) + " listed twice");
    std::tie(n.address, n.port) = read_endpoint(nf.need("address"));
    auto read_addresses = [&](const char* key, std::vector<SnatAddress>* out) {
      if (auto sv = nf.get(key)) {
        for (const V& item : sv->items()) {
          const IpAddress ip = item.address();
          SnatAddress sa;
          sa.family = ip.family;
          std::memcpy(sa.addr, ip.bytes, sizeof sa.addr);
          out->push_back(sa);
        }
      }
    };
    read_addresses("snat", &n.snat);
    read_addresses("egress", &n.egress);
    nf.done();
    c.nodes.push_back(std::move(n));
  }
  f.done();
  const ClusterNodeConfig* self = c.self();
  if (self == nullptr)
    nodes.fail("node_id " + std::to_string(c.node_id) + " is not in the list of nodes");
  // This node's SNAT addresses are its FullNAT pool's, its egress ones its
  // egress pool's: the same sets.
  auto same_set = [](const std::vector<SnatAddress>& x, const std::vector<SnatAddress>& y) {
    bool same = x.size() == y.size();
    for (const SnatAddress& a : x) {
      bool found = false;
      for (const SnatAddress& b : y)
        found |= a.family == b.family && std::memcmp(a.addr, b.addr, 16) == 0;
      same &= found;
    }
    return same;
  };
  if (!same_set(self->snat, cfg.gateway.snat.addresses))
    nodes.fail("node " + std::to_string(c.node_id) + "'s snat must list exactly snat.addresses");
  if (!same_set(self->egress, cfg.gateway.egress.snat.addresses))
    nodes.fail("node " + std::to_string(c.node_id) +
               "'s egress must list exactly egress.addresses");
  // A peer's egress flow moves here when it dies, and this node's to the
  // peers: every node translates every node's egress flows (its egress pool
  // in the same families, the same sources and port range).
  const bool own_egress = !cfg.gateway.egress.sources.empty();
  for (const auto& n : c.nodes) {
    if (n.egress.empty() == own_egress)
      nodes.fail("node " + std::to_string(n.id) +
                 (own_egress ? " has no egress addresses and this node has an egress section"
                             : " has egress addresses and this node has no egress section") +
                 ": every node of a cluster serves egress alike");
    for (const SnatAddress& a : n.egress)
      if (!pool_has_family(cfg.gateway.egress.snat, a.family))
        nodes.fail("node " + std::to_string(n.id) + "'s egress address " +
                   IpAddress::from_bytes(a.family, a.addr).to_string() +
                   " is of a family this node's egress.addresses lack: every node "
                   "translates every node's egress flows");
  }

  GatewayClusterConfig& g = cfg.gateway.cluster;
  g.node_id = c.node_id;
  g.pull_timeout_ms = c.pull_timeout_ms;
  g.slot_key = derive_key(c.key, "tripod slot");
  c.ring_key = derive_key(c.key, "tripod ring");
  g.snat_addresses.clear();
  g.egress_addresses.clear();
  auto add_unique = [&](const SnatAddress& a, std::vector<SnatAddress>* to) {
    for (const auto* list : {&g.snat_addresses, &g.egress_addresses})
      for (const SnatAddress& b : *list)
        if (a.family == b.family && std::memcmp(a.addr, b.addr, 16) == 0)
          nodes.fail("SNAT address " + IpAddress::from_bytes(a.family, a.addr).to_string() +
                     " is listed twice (each node's snat and egress addresses are its own)");
    to->push_back(a);
  };
  for (const auto& n : c.nodes) {
    for (const SnatAddress& a : n.snat)
      add_unique(a, &g.snat_addresses);
    for (const SnatAddress& a : n.egress)
      add_unique(a, &g.egress_addresses);
  }
  // Keys every node must share: from the cluster key unless the file sets them.
  bool has_lb = false, has_sp = false;
  if (secrets && secrets->is_map()) {
    has_lb = secrets->node()["lb_key"].IsDefined();
    has_sp = secrets->node()["synproxy_key"].IsDefined();
  }
  if (!has_lb) {
    cfg.gateway.lb_hash_key = derive_key(c.key, "tripod lb");
    cfg.generated.lb_key = false;
  }
  if (!has_sp) {
    cfg.gateway.synproxy_master = derive_key(c.key, "tripod synproxy");
    cfg.generated.synproxy_key = false;
  }
}

TripodConfig parse_document(const YAML::Node& root, const std::string& file) {
  TripodConfig cfg;
  cfg.file = file;
  const V top(&cfg.file, root, "", Loc{1, 1});
  if (!root.IsMap())
    top.fail(std::string("the file must be a map of sections, got ") + kind_of(root));
  Fields f(top);
  GatewayConfig& g = cfg.gateway;

  read_interfaces(f.need("interfaces"), cfg);
  std::optional<V> workers = f.get("workers");
  if (workers && !(workers->is_scalar() && workers->node().Scalar() == "auto")) {
    cfg.workers = workers->u32(1, 1024);
    // A worker serves at least one socket; an extra one would idle.
    if (cfg.workers > cfg.sockets())
      workers->fail(std::to_string(cfg.workers) + " workers for " + std::to_string(cfg.sockets()) +
                    " sockets (interface queues): at most one worker per socket");
  }
  constexpr uint32_t kMaxConns = GatewayStage::Table::kMaxCapacity / 2;
  if (auto m = f.get("max_connections")) g.max_connections = m->u32(1, kMaxConns);
  if (auto h = f.get("huge_pages")) g.huge_pages = h->boolean();
  if (auto l = f.get("logging")) read_logging(*l, cfg.logging);
  if (auto s = f.get("status_socket")) {
    cfg.status_socket = s->text("an absolute path");
    if (cfg.status_socket[0] != '/' || cfg.status_socket.size() > 107)
      s->fail("must be an absolute path of at most 107 bytes (sun_path)");
  }
  const std::optional<V> secrets = f.get("secrets");
  read_secrets(secrets, cfg);
  if (auto c = f.get("syn_cookies")) read_syn_cookies(*c, g.cookies);
  if (auto fw = f.get("firewall")) read_firewall(*fw, g);
  if (auto t = f.get("timeouts")) read_timeouts(*t, g.firewall.timeouts);
  std::optional<V> snat = f.get("snat");
  if (snat) {
    Fields sf(*snat);
    read_snat_pool(sf, g.snat);
    sf.done();
    check_snat_pool(*snat, g.snat);
  }
  if (auto e = f.get("egress")) read_egress(*e, g.egress);
  std::vector<V> vip_nodes;
  if (auto vs = f.get("vips")) {
    vip_nodes = vs->items();
    for (const V& vn : vip_nodes)
      read_vip(vn, cfg, vip_nodes);
  }
  if (auto c = f.get("cluster")) read_cluster(*c, cfg, secrets);
  f.done();

  for (size_t i = 0; i < g.vips.size(); ++i) {
    const std::optional<ReplicationMode> own = cfg.vips[i].replication;
    if (own && !cfg.cluster.enabled)
      Fields(vip_nodes[i])
          .need("replication")
          .fail("needs a cluster section (it replicates flow state)");
    const ReplicationMode mode = own.value_or(cfg.cluster.mode);
    g.vips[i].output_commit = cfg.cluster.enabled && mode == ReplicationMode::kSync;
    g.vips[i].replicated = mode != ReplicationMode::kOff;
    if (const auto ci = cfg.vips[i].checkpoint_ns) {
      const V at = Fields(vip_nodes[i]).need("checkpoint_interval");
      if (!cfg.cluster.enabled) at.fail("needs a cluster section (it replicates flow state)");
      if (mode != ReplicationMode::kAsync)
        at.fail("is for async replication (sync waits for every change; off sends none)");
      // No shorter than the cluster's: records leave the worker once per that.
      if (*ci > cfg.cluster.checkpoint_interval_ns) g.vips[i].checkpoint_ns = *ci;
    }
  }
  {
    std::vector<uint64_t> intervals;
    for (size_t i = 0; i < g.vips.size(); ++i) {
      const uint64_t ci = g.vips[i].checkpoint_ns;
      if (ci == 0 || std::find(intervals.begin(), intervals.end(), ci) != intervals.end()) continue;
      if (intervals.size() == kMaxCheckpointClasses)
        Fields(vip_nodes[i])
            .need("checkpoint_interval")
            .fail("at most " + std::to_string(kMaxCheckpointClasses) +
                  " distinct VIP checkpoint intervals");
      intervals.push_back(ci);
    }
  }

  // FullNAT needs a source address of the backends' family.
  for (size_t i = 0; i < g.vips.size(); ++i) {
    const GatewayVipConfig& vip = g.vips[i];
    if (vip.mode != VipMode::kFullNat) continue;
    const Family fam = vip.key.addr.family;
    if (!pool_has_family(g.snat, fam)) {
      const V& at = snat ? *snat : vip_nodes[i];
      at.fail(std::string("fullnat VIP vips[") + std::to_string(i) + "] " + vip_label(vip.key) +
              " needs an " + family_name(fam) + " address in snat.addresses");
    }
  }
  // One address in both pools: two allocators would hand out its ports.
  for (const SnatAddress& a : g.egress.snat.addresses)
    for (const SnatAddress& b : g.snat.addresses)
      if (a.family == b.family && std::memcmp(a.addr, b.addr, 16) == 0)
        throw ConfigError(file, 0, 0, "egress.addresses",
                          IpAddress::from_bytes(a.family, a.addr).to_string() +
                              " is in snat.addresses too: give egress its own addresses");
  // A VIP port on a SNAT address, inside the SNAT port range, could be a
  // translated flow's port too, and its packets would name the wrong
  // worker (and cluster holders) by the port.
  const SlotLayout layout = GatewayStage::slot_layout(g);
  for (size_t i = 0; i < g.vips.size(); ++i) {
    const VipKey& k = g.vips[i].key;
    if (const SlotLayout::Snat* s = layout.find(k.addr.family, k.addr.bytes);
        s != nullptr && k.port >= s->lo && k.port <= s->hi)
      vip_nodes[i].fail("vips[" + std::to_string(i) + "] " + vip_label(k) +
                        " is on a SNAT address inside the SNAT port range (" +
                        std::to_string(s->lo) + "-" + std::to_string(s->hi) +
                        "): move the VIP or narrow the range");
  }
  // The compiled firewall checks the whole policy (rules and timeouts) once more.
  try {
    FwPolicy check(g.firewall);
  } catch (const std::invalid_argument& e) {
    throw ConfigError(file, 0, 0, "firewall", e.what());
  }
  return cfg;
}

}  // namespace

namespace {

// Records where documents start, and nothing else.
class DocumentStarts final : public YAML::EventHandler {
 public:
  std::vector<YAML::Mark> starts;
  void OnDocumentStart(const YAML::Mark& m) override { starts.push_back(m); }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t,
                const std::string&) override {}
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {}
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {}
  void OnMapEnd() override {}
};

[[noreturn]] void syntax_error(const std::string& name, const YAML::Exception& e) {
  const int line = e.mark.is_null() ? 0 : e.mark.line + 1;
  const int col = e.mark.is_null() ? 0 : e.mark.column + 1;
  throw ConfigError(name, line, col, "", "YAML syntax: " + e.msg);
}

}  // namespace

TripodConfig load_config_string(std::string_view text, const std::string& name) {
  const std::string buf(text);
  YAML::Node root;
  try {
    // One pass for the syntax of the first document and whether a second
    // follows, stopping there: yaml-cpp 0.7's LoadAll() never returns on a
    // stray ',' at document level (it yields empty documents forever).
    std::istringstream in(buf);
    YAML::Parser parser(in);
    DocumentStarts docs;
    for (int i = 0; i < 2 && parser.HandleNextDocument(docs); ++i) {
    }
    if (docs.starts.size() > 1) {
      const YAML::Mark m = docs.starts[1];
      const bool marker = static_cast<size_t>(m.pos) < buf.size() &&
                          buf.compare(static_cast<size_t>(m.pos), 3, "---") == 0;
      throw ConfigError(name, m.line + 1, m.column + 1, "",
                        marker ? "more than one YAML document"
                               : "YAML syntax: unexpected text after the document");
    }
    std::istringstream again(buf);
    root = YAML::Load(again);  // the first document only
  } catch (const YAML::Exception& e) {
    syntax_error(name, e);
  }
  if (root.IsNull()) throw ConfigError(name, 0, 0, "", "empty configuration");
  try {
    return parse_document(root, name);
  } catch (const YAML::Exception& e) {
    // Not expected (we only walk nodes), but never let yaml-cpp's type escape.
    syntax_error(name, e);
  }
}

TripodConfig load_config(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ConfigError(path, 0, 0, "", std::string("cannot open: ") + std::strerror(errno));
  std::stringstream ss;
  ss << in.rdbuf();
  if (in.bad()) throw ConfigError(path, 0, 0, "", "read error");
  return load_config_string(ss.str(), path);
}

}  // namespace tripod
