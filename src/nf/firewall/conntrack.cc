// Connection tracking over all protocols: TCP through tcp_state.h, UDP / ICMP
// echo / other protocols as pseudo-connections, ICMP errors as RELATED.
#include "nf/firewall/conntrack.h"

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <string>
#include <utility>

#include "common/byte_order.h"
#include "nf/firewall/tcp_state.h"

namespace tripod {
namespace {

enum class IcmpClass : uint8_t { kNotIcmp, kEchoRequest, kEchoReply, kError, kOther };

IcmpClass icmp_class(const PacketMeta& m) {
  const uint8_t icmp = m.family == Family::kIpv6 ? kProtoIcmpv6 : kProtoIcmp;
  if (m.proto != icmp) return IcmpClass::kNotIcmp;
  if (m.has(kMetaIcmpError)) return IcmpClass::kError;
  const bool v6 = m.family == Family::kIpv6;
  if (m.icmp_type == (v6 ? 128 : 8)) return IcmpClass::kEchoRequest;
  if (m.icmp_type == (v6 ? 129 : 0)) return IcmpClass::kEchoReply;
  return IcmpClass::kOther;
}

FwKind kind_of(const PacketMeta& m) {
  if (m.proto == kProtoTcp) return FwKind::kTcp;
  if (m.proto == kProtoUdp) return FwKind::kUdp;
  const IcmpClass c = icmp_class(m);
  if (c == IcmpClass::kEchoRequest || c == IcmpClass::kEchoReply) return FwKind::kIcmpEcho;
  return FwKind::kGeneric;
}

FwVerdict drop(FwReason r, int32_t rule = -1) {
  return FwVerdict{r, 0, rule};
}

// Checks shared by every entry point. kAccepted: go on.
FwReason precheck(const PacketMeta& m) {
  if (m.has(kMetaNotIp) || (m.family != Family::kIpv4 && m.family != Family::kIpv6)) {
    return FwReason::kDropMalformed;
  }
  // Non-first fragments carry no L4 header and all fragments are keyed
  // without ports (flow_key.h), so neither the ACL nor the state machine can
  // place them. Until the pipeline reassembles (or maps fragments to the
  // first one's flow), they are dropped.
  if (m.has(kMetaFragment)) return FwReason::kDropFragment;
  const bool needs_l4 =
      m.proto == kProtoTcp || m.proto == kProtoUdp || icmp_class(m) != IcmpClass::kNotIcmp;
  if (needs_l4 && !m.has(kMetaHasL4)) return FwReason::kDropMalformed;
  return FwReason::kAccepted;
}

// The ACL's verdict on a packet that would create a connection.
// kAccepted (allowed) or kDenyRule / kDenyDefault; *rule gets the index.
FwReason check_acl(const FwPolicy& p, const uint8_t* frame, const PacketMeta& m, TrafficDir dir,
                   int32_t* rule) {
  const Acl::Match hit = p.acl.match(acl_packet_of(frame, m, dir));
  *rule = hit.rule;
  if (hit.action == FwAction::kAllow) return FwReason::kAccepted;
  return hit.rule >= 0 ? FwReason::kDenyRule : FwReason::kDenyDefault;
}

uint8_t conn_flags(TrafficDir dir, bool key_reversed) {
  return static_cast<uint8_t>((key_reversed ? kConnOrigReversed : 0) |
                              (dir == TrafficDir::kIn ? kConnOrigInbound : 0));
}

TrafficDir traffic_dir_of(const FwConnState& st, unsigned dir) {
  const bool orig_in = (st.flags & kConnOrigInbound) != 0;
  return (orig_in == (dir == kDirOriginal)) ? TrafficDir::kIn : TrafficDir::kOut;
}

void check_timeout(const char* name, uint32_t s) {
  if (s == 0 || s > FwPolicy::kMaxTimeoutS) {
    throw std::invalid_argument(std::string("timeout ") + name + ": " + std::to_string(s) +
                                " s (must be 1.." + std::to_string(FwPolicy::kMaxTimeoutS) + ")");
  }
}

}  // namespace

FwPolicy::FwPolicy(const FirewallConfig& cfg)
    : acl(cfg.acl), timeouts(cfg.timeouts), tcp_be_liberal(cfg.tcp_be_liberal) {
  const FwTimeouts& t = cfg.timeouts;
  check_timeout("tcp_syn_sent", t.tcp_syn_sent);
  check_timeout("tcp_syn_recv", t.tcp_syn_recv);
  check_timeout("tcp_established", t.tcp_established);
  check_timeout("tcp_fin_wait", t.tcp_fin_wait);
  check_timeout("tcp_close_wait", t.tcp_close_wait);
  check_timeout("tcp_last_ack", t.tcp_last_ack);
  check_timeout("tcp_time_wait", t.tcp_time_wait);
  check_timeout("tcp_close", t.tcp_close);
  check_timeout("tcp_unacknowledged", t.tcp_unacknowledged);
  check_timeout("udp", t.udp);
  check_timeout("udp_stream", t.udp_stream);
  check_timeout("icmp", t.icmp);
  check_timeout("generic", t.generic);
}

FwVerdict fw_new_connection(const FwPolicy& p, FwConnState* out, const uint8_t* frame,
                            const PacketMeta& m, TrafficDir dir, bool key_reversed) noexcept {
  if (const FwReason r = precheck(m); r != FwReason::kAccepted) return drop(r);
  const IcmpClass icmp = icmp_class(m);
  // Stateless reasons first: the ACL is for packets that could start a connection.
  if (m.proto == kProtoTcp) {
    if (const FwReason r = tcp_check_new(m); r != FwReason::kCreated) return drop(r);
  } else if (icmp == IcmpClass::kError) {
    return drop(FwReason::kDropIcmpErrorUnrelated);  // fw_related() found nothing either
  } else if (icmp == IcmpClass::kEchoReply) {
    return drop(FwReason::kDropEchoReplyWithoutRequest);
  }

  int32_t rule;
  if (const FwReason r = check_acl(p, frame, m, dir, &rule); r != FwReason::kAccepted) {
    return drop(r, rule);
  }
  if (icmp == IcmpClass::kOther) return FwVerdict{FwReason::kUntracked, 0, rule};

  FwConnState st{};
  uint32_t timeout;
  const FwKind kind = kind_of(m);
  if (kind == FwKind::kTcp) {
    if (const FwReason r = tcp_init(&st, frame, m); r != FwReason::kCreated) return drop(r);
    timeout = p.timeouts.tcp_syn_sent;
  } else {
    st.kind = kind;
    st.state = static_cast<uint8_t>(FwPseudoState::kUnreplied);
    timeout = kind == FwKind::kUdp        ? p.timeouts.udp
              : kind == FwKind::kIcmpEcho ? p.timeouts.icmp
                                          : p.timeouts.generic;
  }
  st.flags = conn_flags(dir, key_reversed);
  *out = st;
  return FwVerdict{FwReason::kCreated, timeout, rule};
}

FwVerdict fw_track(const FwPolicy& p, FwConnState& st, const uint8_t* frame, const PacketMeta& m,
                   bool key_reversed) noexcept {
  if (const FwReason r = precheck(m); r != FwReason::kAccepted) return drop(r);
  const IcmpClass icmp = icmp_class(m);
  // ICMP errors belong to fw_related(); an error's own key (ports 0) can
  // collide with an echo of id 0, so the kind check alone would not catch it.
  if (icmp == IcmpClass::kError) return drop(FwReason::kDropMalformed);
  const unsigned dir = st.dir_of(key_reversed);
  if (icmp == IcmpClass::kOther) {
    // Informational ICMP is never tracked, but its portless key can find an
    // echo record of id 0: decide it afresh and leave the record alone.
    int32_t rule;
    const FwReason r = check_acl(p, frame, m, traffic_dir_of(st, dir), &rule);
    return r == FwReason::kAccepted ? FwVerdict{FwReason::kUntracked, 0, rule} : drop(r, rule);
  }
  if (kind_of(m) != st.kind) return drop(FwReason::kDropMalformed);

  switch (st.kind) {
    case FwKind::kTcp: {
      bool reopen = false;
      const FwVerdict v = tcp_track(st, dir, frame, m, p.timeouts, p.tcp_be_liberal, &reopen);
      if (!reopen) return v;
      // A new connection over the old one's key, started by this packet's
      // sender: ACL first, as for any new connection.
      const TrafficDir tdir = traffic_dir_of(st, dir);
      int32_t rule;
      if (const FwReason r = check_acl(p, frame, m, tdir, &rule); r != FwReason::kAccepted) {
        return drop(r, rule);
      }
      FwConnState fresh;
      if (const FwReason r = tcp_init(&fresh, frame, m); r != FwReason::kCreated) return drop(r);
      fresh.flags = conn_flags(tdir, key_reversed);
      st = fresh;
      return FwVerdict{FwReason::kReopened, p.timeouts.tcp_syn_sent, rule};
    }
    case FwKind::kUdp:
      if (dir == kDirReply) st.state = static_cast<uint8_t>(FwPseudoState::kReplied);
      return FwVerdict{
          FwReason::kAccepted,
          st.pseudo_state() == FwPseudoState::kReplied ? p.timeouts.udp_stream : p.timeouts.udp,
          -1};
    case FwKind::kIcmpEcho:
      // Requests go the way the first one went, replies come back.
      if ((icmp == IcmpClass::kEchoRequest) != (dir == kDirOriginal)) {
        return drop(FwReason::kDropInvalidTransition);
      }
      if (dir == kDirReply) st.state = static_cast<uint8_t>(FwPseudoState::kReplied);
      return FwVerdict{FwReason::kAccepted, p.timeouts.icmp, -1};
    case FwKind::kGeneric:
      if (dir == kDirReply) st.state = static_cast<uint8_t>(FwPseudoState::kReplied);
      return FwVerdict{FwReason::kAccepted, p.timeouts.generic, -1};
    case FwKind::kNone:
      break;
  }
  return drop(FwReason::kDropMalformed);
}

FwVerdict fw_related(const FwConnState* quoted, const uint8_t* frame, const PacketMeta& m,
                     bool quote_key_reversed) noexcept {
  if (m.has(kMetaNotIp) || !m.has(kMetaIcmpError) || m.inner.family != m.family) {
    return drop(FwReason::kDropMalformed);
  }
  if (quoted == nullptr || quoted->kind == FwKind::kNone) {
    return drop(FwReason::kDropIcmpErrorUnrelated);
  }
  // The error goes back to the quoted packet's sender (netfilter: "outer
  // daddr mismatch"); anything else is a forged or misrouted error.
  const QuotedPacket& q = m.inner;
  if (std::memcmp(frame + m.dst_off, frame + q.src_off, m.addr_len()) != 0) {
    return drop(FwReason::kDropIcmpErrorUnrelated);
  }
  // For TCP, the quoted sequence number must be one the sender could have
  // used (OpenBSD pf's check): between one receive window below its highest
  // end and the right edge the receiver allowed. A blind attacker cannot
  // reset or PMTU-shrink a connection without guessing it.
  if (quoted->kind == FwKind::kTcp && q.proto == kProtoTcp && q.l4_off != 0 && q.l4_quoted >= 8) {
    const uint32_t seq = load_be32(frame + q.l4_off + 4);
    const unsigned dir = quoted->dir_of(quote_key_reversed);
    const FwTcpPeer& snd = quoted->peer[dir];
    const FwTcpPeer& rcv = quoted->peer[dir ^ 1];
    if (snd.td_maxwin != 0) {
      const uint32_t slack = std::max<uint32_t>(rcv.td_maxwin, 66000);
      if (seq_after(seq, snd.td_maxend) || seq_before(seq, snd.td_end - slack)) {
        return drop(FwReason::kDropIcmpErrorOutOfWindow);
      }
    } else {
      return drop(FwReason::kDropIcmpErrorOutOfWindow);  // this side never sent anything
    }
  }
  return FwVerdict{FwReason::kRelated, 0, -1};
}

Firewall::Firewall(const FirewallConfig& cfg) : Firewall(std::make_shared<const FwPolicy>(cfg)) {}

Firewall::Firewall(std::shared_ptr<const FwPolicy> policy)
    : policy_(std::move(policy)),
      rule_hits_(std::make_unique<std::atomic<uint64_t>[]>(policy_->acl.size() + 1)) {}

void Firewall::set_policy(std::shared_ptr<const FwPolicy> policy) {
  auto hits = std::make_unique<std::atomic<uint64_t>[]>(policy->acl.size() + 1);
  policy_ = std::move(policy);
  rule_hits_ = std::move(hits);
}

void Firewall::export_counters(const CounterFn& fn) const {
  for (size_t i = 0; i < counters_.size(); ++i)
    fn(kFwReasonNames[i], counters_.get(i));
  for (size_t i = 0; i < policy_->acl.size(); ++i) {
    fn("acl_rule_" + std::to_string(i + 1), rule_hits(i));
  }
}

}  // namespace tripod
