// Table-driven firewall tests: a scenario is a list of steps, each a packet
// from the builder (explicit seq/ack/window/options), where it came from and
// what must happen (reason, state, timeout). The harness plays the pipeline
// stage: parse, key, look up, call new_connection / track / related, insert.
// Every drop is also checked to leave the record untouched.
#pragma once

#include <gtest/gtest.h>

#include <cstring>
#include <map>
#include <optional>
#include <ostream>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "nf/firewall/conntrack.h"
#include "nf/firewall/tcp_state.h"
#include "packet/builder.h"
#include "packet/flow_key.h"
#include "packet/parser.h"

namespace tripod::fwtest {

inline constexpr uint8_t SYN = kTcpSyn;
inline constexpr uint8_t ACK = kTcpAck;
inline constexpr uint8_t FIN = kTcpFin;
inline constexpr uint8_t RST = kTcpRst;
inline constexpr uint8_t PSH = kTcpPsh;

// The test connection's endpoints. The client is inside (its packets are
// outbound), the server outside.
struct Ends {
  std::string client = "10.0.0.1";
  std::string server = "192.0.2.10";
  uint16_t cport = 40000;
  uint16_t sport = 80;
  bool v6 = false;
};
inline Ends v6_ends() {
  return Ends{"2001:db8:1::1", "2001:db8:2::10", 40000, 443, true};
}

// One TCP segment, from the client or from the server.
struct Seg {
  bool from_client = true;
  uint8_t flags = 0;
  uint32_t seq = 0;
  uint32_t ack = 0;
  uint16_t win_ = 65535;
  uint16_t len_ = 0;
  int wscale_ = -1;
  bool sack_perm_ = false;
  std::vector<SackBlock> sack_;
  Bytes raw_opts_;
  Ends ends_;

  Seg win(uint16_t w) const {
    return with([&](Seg& s) { s.win_ = w; });
  }
  Seg len(uint16_t n) const {
    return with([&](Seg& s) { s.len_ = n; });
  }
  Seg ws(int shift) const {
    return with([&](Seg& s) { s.wscale_ = shift; });
  }
  Seg sackp() const {
    return with([](Seg& s) { s.sack_perm_ = true; });
  }
  Seg sacks(std::vector<SackBlock> b) const {
    return with([&](Seg& s) { s.sack_ = b; });
  }
  Seg opts(Bytes raw) const {
    return with([&](Seg& s) { s.raw_opts_ = raw; });
  }
  Seg ends(const Ends& e) const {
    return with([&](Seg& s) { s.ends_ = e; });
  }
  Seg sport(uint16_t p) const {
    return with([&](Seg& s) { s.ends_.sport = p; });
  }  // server's
  Seg cport(uint16_t p) const {
    return with([&](Seg& s) { s.ends_.cport = p; });
  }  // client's

  PacketBuilder builder() const {
    PacketBuilder b;
    const std::string& src = from_client ? ends_.client : ends_.server;
    const std::string& dst = from_client ? ends_.server : ends_.client;
    if (ends_.v6) {
      b.ipv6(src, dst);
    } else {
      b.ipv4(src, dst);
    }
    if (from_client) {
      b.tcp(ends_.cport, ends_.sport);
    } else {
      b.tcp(ends_.sport, ends_.cport);
    }
    b.seq(seq).ack_seq(ack).flags(flags).window(win_);
    if (wscale_ >= 0) b.wscale(static_cast<uint8_t>(wscale_));
    if (sack_perm_) b.sack_permitted();
    if (!sack_.empty()) b.sack(sack_);
    if (!raw_opts_.empty()) b.tcp_raw_options(raw_opts_);
    if (len_ != 0) b.payload(Bytes(len_, 0x61));
    return b;
  }

 private:
  template <class F>
  Seg with(F f) const {
    Seg s = *this;
    f(s);
    return s;
  }
};
inline Seg make_seg(bool from_client, uint8_t flags, uint32_t seq, uint32_t ack) {
  Seg s;
  s.from_client = from_client;
  s.flags = flags;
  s.seq = seq;
  s.ack = ack;
  return s;
}
inline Seg C(uint8_t flags, uint32_t seq, uint32_t ack = 0) {
  return make_seg(true, flags, seq, ack);
}
inline Seg S(uint8_t flags, uint32_t seq, uint32_t ack = 0) {
  return make_seg(false, flags, seq, ack);
}

struct Step {
  std::string what;
  Bytes pkt;
  TrafficDir dir = TrafficDir::kOut;
  FwReason expect = FwReason::kAccepted;
  std::optional<TcpState> state{};        // TCP state of the record afterwards
  std::optional<FwPseudoState> pseudo{};  // UDP/ICMP/generic state afterwards
  std::optional<uint32_t> timeout{};      // verdict's timeout_s
};

// A TCP step: client segments are outbound, server segments inbound.
inline Step T(std::string what, const Seg& s, FwReason r, std::optional<TcpState> st = {},
              std::optional<uint32_t> timeout = {}) {
  return Step{std::move(what),
              s.builder().build(),
              s.from_client ? TrafficDir::kOut : TrafficDir::kIn,
              r,
              st,
              {},
              timeout};
}
// Any other packet.
inline Step P(std::string what, Bytes pkt, TrafficDir dir, FwReason r,
              std::optional<FwPseudoState> ps = {}, std::optional<uint32_t> timeout = {}) {
  return Step{std::move(what), std::move(pkt), dir, r, {}, ps, timeout};
}

struct Scenario {
  std::string name;
  std::string rules = "default allow";  // parse_rules() text
  std::vector<Step> steps;
  bool liberal = false;
};

struct KeyLess {
  bool operator()(const FlowKey& a, const FlowKey& b) const {
    return std::memcmp(&a, &b, sizeof(FlowKey)) < 0;
  }
};

// The pipeline stage, minus expiry.
class Harness {
 public:
  explicit Harness(const FirewallConfig& cfg) : fw_(cfg) {}

  // Feeds one frame; *rec is the record the packet was judged against (or
  // created), nullptr if none.
  FwVerdict feed(const Bytes& pkt, TrafficDir dir, const FwConnState** rec) {
    *rec = nullptr;
    PacketMeta m;
    const ParseError e = parse_packet(pkt.data(), static_cast<uint32_t>(pkt.size()), &m);
    EXPECT_EQ(e, ParseError::kOk) << "test packet does not parse";
    if (m.has(kMetaIcmpError)) {
      bool qrev = false;
      const FlowKey qk = flow_key_of_quote(pkt.data(), m, true, &qrev);
      auto it = conns_.find(qk);
      const FwConnState* q = it == conns_.end() ? nullptr : &it->second;
      FwConnState before{};
      if (q != nullptr) before = *q;
      const FwVerdict v = fw_.related(q, pkt.data(), m, qrev);
      if (q != nullptr) {
        EXPECT_EQ(std::memcmp(&before, q, sizeof before), 0) << "related changed";
      }
      *rec = q;
      return v;
    }
    bool rev = false;
    const FlowKey k = flow_key_of(pkt.data(), m, true, &rev);
    auto it = conns_.find(k);
    if (it != conns_.end()) {
      const FwConnState before = it->second;
      const FwVerdict v = fw_.track(it->second, pkt.data(), m, rev);
      if (!v.accepted()) {
        EXPECT_EQ(std::memcmp(&before, &it->second, sizeof before), 0) << "drop changed the record";
      }
      *rec = &it->second;
      return v;
    }
    FwConnState st;
    std::memset(&st, 0xA5, sizeof st);  // poison: must stay untouched unless created
    FwConnState poison;
    std::memset(&poison, 0xA5, sizeof poison);
    const FwVerdict v = fw_.new_connection(&st, pkt.data(), m, dir, rev);
    if (v.reason == FwReason::kCreated) {
      *rec = &conns_.emplace(k, st).first->second;
    } else {
      EXPECT_EQ(std::memcmp(&st, &poison, sizeof st), 0) << "no connection, yet *out written";
    }
    return v;
  }

  Firewall& fw() { return fw_; }
  size_t size() const { return conns_.size(); }

 private:
  Firewall fw_;
  std::map<FlowKey, FwConnState, KeyLess> conns_;
};

// Runs a scenario with exact assertions; adds the reasons seen to *seen.
inline void run_scenario(const Scenario& sc, std::set<FwReason>* seen = nullptr) {
  FirewallConfig cfg;
  cfg.acl = parse_rules(sc.rules);
  cfg.tcp_be_liberal = sc.liberal;
  Harness h(cfg);
  std::map<FwReason, uint64_t> expected_counts;
  for (size_t i = 0; i < sc.steps.size(); ++i) {
    const Step& s = sc.steps[i];
    SCOPED_TRACE("step " + std::to_string(i + 1) + ": " + s.what);
    const FwConnState* rec = nullptr;
    const FwVerdict v = h.feed(s.pkt, s.dir, &rec);
    EXPECT_EQ(to_string(v.reason), to_string(s.expect));
    ++expected_counts[s.expect];
    if (seen != nullptr && v.reason == s.expect) seen->insert(v.reason);
    if (s.state) {
      ASSERT_NE(rec, nullptr);
      EXPECT_EQ(rec->kind, FwKind::kTcp);
      EXPECT_EQ(to_string(rec->tcp_state()), to_string(*s.state));
    }
    if (s.pseudo) {
      ASSERT_NE(rec, nullptr);
      EXPECT_EQ(static_cast<int>(rec->pseudo_state()), static_cast<int>(*s.pseudo));
    }
    if (s.timeout) {
      EXPECT_EQ(v.timeout_s, *s.timeout);
    }
  }
  // The facade counted exactly these verdicts.
  for (size_t r = 0; r < static_cast<size_t>(FwReason::kCount); ++r) {
    const auto reason = static_cast<FwReason>(r);
    const auto it = expected_counts.find(reason);
    EXPECT_EQ(h.fw().count(reason), it == expected_counts.end() ? 0u : it->second)
        << to_string(reason);
  }
}

// The tables, one per test file; the coverage test runs them all.
std::vector<Scenario> tcp_scenarios();
std::vector<Scenario> other_scenarios();  // UDP, ICMP, generic, related, misc

// gtest prints a parameter with this instead of its bytes.
inline void PrintTo(const Scenario& s, std::ostream* os) {
  *os << s.name;
}

inline std::string scenario_name(const ::testing::TestParamInfo<Scenario>& info) {
  return info.param.name;
}

}  // namespace tripod::fwtest
