// TCP tracking, following net/netfilter/nf_conntrack_proto_tcp.c (tcp_new,
// tcp_packet, tcp_in_window) closely enough that its comments apply; the
// differences are listed in README.md.
#include "nf/firewall/tcp_state.h"

#include <algorithm>

#include "packet/parser.h"

namespace tripod {
namespace {

constexpr uint8_t sSS = static_cast<uint8_t>(TcpState::kSynSent);
constexpr uint8_t sSR = static_cast<uint8_t>(TcpState::kSynRecv);
constexpr uint8_t sES = static_cast<uint8_t>(TcpState::kEstablished);
constexpr uint8_t sFW = static_cast<uint8_t>(TcpState::kFinWait);
constexpr uint8_t sCW = static_cast<uint8_t>(TcpState::kCloseWait);
constexpr uint8_t sLA = static_cast<uint8_t>(TcpState::kLastAck);
constexpr uint8_t sTW = static_cast<uint8_t>(TcpState::kTimeWait);
constexpr uint8_t sCL = static_cast<uint8_t>(TcpState::kClose);
constexpr uint8_t sS2 = static_cast<uint8_t>(TcpState::kSynSent2);
constexpr uint8_t sIG = kTcpIgnore;
constexpr uint8_t sIV = kTcpInvalid;
constexpr size_t kStates = static_cast<size_t>(TcpState::kCount);
constexpr size_t kIndexes = static_cast<size_t>(TcpIndex::kCount);

// clang-format off
// [dir][packet class][old state] -> new state. netfilter's tcp_conntracks,
// verbatim; its per-cell comments explain each choice.
constexpr uint8_t kTransitions[2][kIndexes][kStates] = {
  { // ORIGINAL
  /*            sNO  sSS  sSR  sES  sFW  sCW  sLA  sTW  sCL  sS2 */
  /* syn    */ {sSS, sSS, sIG, sIG, sIG, sIG, sIG, sSS, sSS, sS2},
  /* synack */ {sIV, sIV, sSR, sIV, sIV, sIV, sIV, sIV, sIV, sSR},
  /* fin    */ {sIV, sIV, sFW, sFW, sLA, sLA, sLA, sTW, sCL, sIV},
  /* ack    */ {sES, sIV, sES, sES, sCW, sCW, sTW, sTW, sCL, sIV},
  /* rst    */ {sIV, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL},
  /* none   */ {sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV},
  },
  { // REPLY
  /*            sNO  sSS  sSR  sES  sFW  sCW  sLA  sTW  sCL  sS2 */
  /* syn    */ {sIV, sS2, sIV, sIV, sIV, sIV, sIV, sSS, sIV, sS2},
  /* synack */ {sIV, sSR, sIG, sIG, sIG, sIG, sIG, sIG, sIG, sSR},
  /* fin    */ {sIV, sIV, sFW, sFW, sLA, sLA, sLA, sTW, sCL, sIV},
  /* ack    */ {sIV, sIG, sSR, sES, sCW, sCW, sTW, sTW, sCL, sIG},
  /* rst    */ {sIV, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL},
  /* none   */ {sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV},
  },
};
// clang-format on

// netfilter's MAXACKWINCONST: the lowest ack accepted lags the highest seen
// by at least this much (delayed ACKs of a sender whose window is small).
constexpr uint32_t kMaxAckWinConst = 66000;

constexpr uint8_t kLastIndexMask = 0x07;
constexpr uint8_t kLastDirBit = 0x08;

TcpIndex last_index(const FwConnState& s) {
  return static_cast<TcpIndex>(s.last & kLastIndexMask);
}
unsigned last_dir(const FwConnState& s) {
  return (s.last & kLastDirBit) != 0 ? kDirReply : kDirOriginal;
}
void set_last(FwConnState& s, TcpIndex index, unsigned dir) {
  s.last = static_cast<uint8_t>(static_cast<uint8_t>(index) | (dir != 0 ? kLastDirBit : 0));
}

FwVerdict drop(FwReason r) {
  return FwVerdict{r, 0, -1};
}

// A SYN or SYN-ACK (re)initialises its sender's window data (netfilter's
// tcp_init_sender): the SYN's window is never scaled.
void init_sender(FwConnState& s, unsigned dir, const TcpSegment& g) {
  FwTcpPeer& snd = s.peer[dir];
  snd.td_end = snd.td_maxend = g.end;
  snd.td_maxwin = g.win == 0 ? 1 : g.win;
  s.scale[dir] = (g.opt_flags & kPeerWindowScale) != 0 ? g.wscale : 0;
  s.peer_flags[dir] = g.opt_flags;  // clears every other flag, as tcp_options() does
  // RFC 7323 2.2: scaling is on only if both SYNs carried the option.
  if (dir == kDirReply &&
      !((s.peer_flags[0] & kPeerWindowScale) && (s.peer_flags[1] & kPeerWindowScale))) {
    s.scale[0] = s.scale[1] = 0;
  }
}

}  // namespace

uint32_t FwTimeouts::tcp(TcpState s) const {
  switch (s) {
    case TcpState::kNone:
    case TcpState::kSynSent:
    case TcpState::kSynSent2:
      return tcp_syn_sent;
    case TcpState::kSynRecv:
      return tcp_syn_recv;
    case TcpState::kEstablished:
      return tcp_established;
    case TcpState::kFinWait:
      return tcp_fin_wait;
    case TcpState::kCloseWait:
      return tcp_close_wait;
    case TcpState::kLastAck:
      return tcp_last_ack;
    case TcpState::kTimeWait:
      return tcp_time_wait;
    case TcpState::kClose:
    case TcpState::kCount:
      break;
  }
  return tcp_close;
}

TcpIndex tcp_index(uint8_t f) {
  if (f & kTcpRst) return TcpIndex::kRst;
  if (f & kTcpSyn) return (f & kTcpAck) ? TcpIndex::kSynAck : TcpIndex::kSyn;
  if (f & kTcpFin) return TcpIndex::kFin;
  if (f & kTcpAck) return TcpIndex::kAck;
  return TcpIndex::kNone;
}

bool tcp_flags_valid(uint8_t f) {
  switch (f & ~(kTcpEce | kTcpCwr | kTcpPsh) & ~kTcpUrg) {
    case kTcpSyn:
    case kTcpSyn | kTcpAck:
    case kTcpRst:
    case kTcpRst | kTcpAck:
    case kTcpFin | kTcpAck:
    case kTcpAck:
      break;
    default:
      return false;
  }
  // URG is fine with SYN, ACK and FIN|ACK (netfilter's table), not with RST
  // or SYN|ACK.
  if (f & kTcpUrg) {
    const auto base = static_cast<uint8_t>(f & ~(kTcpEce | kTcpCwr | kTcpPsh | kTcpUrg));
    return base == kTcpSyn || base == kTcpAck || base == (kTcpFin | kTcpAck);
  }
  return true;
}

uint8_t tcp_next_state(unsigned dir, TcpIndex index, TcpState state) {
  return kTransitions[dir & 1][static_cast<size_t>(index)][static_cast<size_t>(state)];
}

bool tcp_segment(const uint8_t* frame, const PacketMeta& m, bool want_sack, TcpSegment* g) {
  *g = TcpSegment{};
  g->seq = m.tcp_seq;
  g->ack = m.tcp_ack;
  g->sack = m.tcp_ack;
  g->win = m.tcp_window;
  g->flags = m.tcp_flags;
  const uint32_t payload = m.l3_end > m.payload_off ? uint32_t{m.l3_end} - m.payload_off : 0;
  g->end = g->seq + payload + ((m.tcp_flags & kTcpSyn) ? 1 : 0) + ((m.tcp_flags & kTcpFin) ? 1 : 0);
  const bool syn = (m.tcp_flags & kTcpSyn) != 0;
  if (m.tcp_hdr_len <= 20 || !(syn || want_sack)) return true;
  TcpOptions o;
  if (parse_tcp_options(frame, m, &o) != ParseError::kOk) return false;
  if (syn) {
    if (o.has_wscale) {
      g->wscale = o.wscale;  // the parser caps it at 14
      g->opt_flags |= kPeerWindowScale;
    }
    if (o.sack_permitted) g->opt_flags |= kPeerSackPerm;
  }
  if (want_sack) {
    for (uint8_t i = 0; i < o.num_sack; ++i) {
      if (seq_after(o.sack[i].right, g->sack)) g->sack = o.sack[i].right;
    }
  }
  return true;
}

FwReason tcp_check_new(const PacketMeta& m) {
  if (!tcp_flags_valid(m.tcp_flags)) return FwReason::kDropBadTcpFlags;
  switch (tcp_index(m.tcp_flags)) {
    case TcpIndex::kSyn:
      return FwReason::kCreated;
    case TcpIndex::kSynAck:
      return FwReason::kDropSynackWithoutSyn;
    case TcpIndex::kRst:
      return FwReason::kDropStrayRst;
    default:
      // No mid-stream pickup (nf_conntrack_tcp_loose=0): flows survive a node
      // failure through replication, not by adopting unknown ACKs.
      return FwReason::kDropStrayAck;
  }
}

FwReason tcp_init(FwConnState* st, const uint8_t* frame, const PacketMeta& m) {
  TcpSegment g;
  if (!tcp_segment(frame, m, false, &g)) return FwReason::kDropBadTcpOptions;
  *st = FwConnState{};
  st->kind = FwKind::kTcp;
  st->state = sSS;
  init_sender(*st, kDirOriginal, g);  // netfilter's tcp_new(): the same fields
  set_last(*st, TcpIndex::kSyn, kDirOriginal);
  st->last_end = g.end;
  return FwReason::kCreated;
}

bool tcp_in_window(FwConnState& st, unsigned dir, const TcpSegment& g) {
  FwTcpPeer& snd = st.peer[dir];
  FwTcpPeer& rcv = st.peer[dir ^ 1];
  const TcpState state = st.tcp_state();
  const bool syn = (g.flags & kTcpSyn) != 0;
  const bool has_ack = (g.flags & kTcpAck) != 0;
  const bool rst = (g.flags & kTcpRst) != 0;
  uint32_t seq = g.seq, ack = g.ack, sack = g.sack, end = g.end;
  uint32_t win = g.win;

  if (snd.td_maxwin == 0) {
    if (syn) {
      // SYN-ACK answering the SYN, or the reply side's SYN in a simultaneous open.
      init_sender(st, dir, g);
      if (!has_ack) return true;
    } else {
      // The first packet from this side is not a SYN (an RST answering the
      // SYN): take what the packet says.
      snd.td_end = end;
      const uint32_t swin = win << st.scale[dir];
      snd.td_maxwin = swin == 0 ? 1 : swin;
      snd.td_maxend = end + snd.td_maxwin;
      if (rcv.td_maxwin == 0) {
        rcv.td_end = rcv.td_maxend = sack;
      } else if (sack == rcv.td_end + 1) {
        ++rcv.td_end;  // likely the reply to a keepalive
      }
    }
  } else if (syn && seq_after(end, snd.td_end) &&
             (state == TcpState::kSynSent || state == TcpState::kSynRecv)) {
    // A SYN (or SYN-ACK) retransmitted with a new ISN or options: RFC 793
    // lets a reinitialised TCP use any higher sequence number.
    init_sender(st, dir, g);
    if (dir == kDirReply && !has_ack) return true;
  }

  if (!has_ack || (rst && ack == 0)) {
    // No ACK (or a broken stack's RST|ACK with ack 0): pretend it acks all.
    ack = sack = rcv.td_end;
  }
  if (rst && seq == 0 && state == TcpState::kSynSent) {
    seq = end = snd.td_end;  // RST answering the SYN (RFC 793: seq 0)
  }

  // van Rooij's four bounds:
  //   I   seq  <= snd.td_maxend                 not past what the receiver allowed
  //   II  end  >= snd.td_end - rcv.td_maxwin    not older than one receive window
  //   III sack <= rcv.td_end                    acks nothing the receiver has not sent
  //   IV  sack >= rcv.td_end - max(snd.td_maxwin, 66000)   not an ancient ack
  const bool in_recv_win = rcv.td_maxwin == 0 || seq_after(end, snd.td_end - rcv.td_maxwin - 1);
  const uint32_t maxackwin = std::max(snd.td_maxwin, kMaxAckWinConst);
  if (!(seq_before(seq, snd.td_maxend + 1) && in_recv_win && seq_before(sack, rcv.td_end + 1) &&
        seq_after(sack, rcv.td_end - maxackwin - 1))) {
    return false;
  }

  // In window: move the edges.
  if (!syn) win <<= st.scale[dir];
  const uint32_t swin = win + (sack - ack);
  if (snd.td_maxwin < swin) snd.td_maxwin = swin;
  if (seq_after(end, snd.td_end)) {
    snd.td_end = end;
    st.peer_flags[dir] |= kPeerDataUnacked;
  }
  if (has_ack) {
    if (!(st.peer_flags[dir] & kPeerMaxAckSet)) {
      snd.td_maxack = ack;
      st.peer_flags[dir] |= kPeerMaxAckSet;
    } else if (seq_after(ack, snd.td_maxack)) {
      snd.td_maxack = ack;
    }
  }
  if (rcv.td_maxwin != 0 && seq_after(end, snd.td_maxend)) rcv.td_maxwin += end - snd.td_maxend;
  if (seq_after(sack + win, rcv.td_maxend - 1)) {
    rcv.td_maxend = sack + win;
    if (win == 0) ++rcv.td_maxend;
  }
  if (ack == rcv.td_end) st.peer_flags[dir ^ 1] &= static_cast<uint8_t>(~kPeerDataUnacked);
  return true;
}

FwVerdict tcp_track(FwConnState& st, unsigned dir, const uint8_t* frame, const PacketMeta& m,
                    const FwTimeouts& timeouts, bool be_liberal, bool* reopen) {
  *reopen = false;
  if (!tcp_flags_valid(m.tcp_flags)) return drop(FwReason::kDropBadTcpFlags);
  const TcpIndex index = tcp_index(m.tcp_flags);
  TcpSegment g;
  if (!tcp_segment(frame, m, (st.peer_flags[dir ^ 1] & kPeerSackPerm) != 0, &g)) {
    return drop(FwReason::kDropBadTcpOptions);
  }
  const TcpState old_state = st.tcp_state();
  if (old_state >= TcpState::kCount) return drop(FwReason::kDropMalformed);
  uint8_t next = tcp_next_state(dir, index, old_state);
  bool check_window = true;
  // A dropped packet leaves no trace: the window check and a re-sync write
  // into the record as they go, so keep a copy (48 bytes) to restore.
  const FwConnState saved = st;

  switch (next) {
    case sSS:
      // A SYN on a finished connection opens a new one (RFC 1122 4.2.2.13
      // allows it from TIME_WAIT); new connections go through the ACL.
      if (old_state == TcpState::kTimeWait || old_state == TcpState::kClose) {
        *reopen = true;
        return FwVerdict{};  // the caller decides
      }
      break;
    case sIG:
      if (index == TcpIndex::kSynAck && last_index(st) == TcpIndex::kSyn && last_dir(st) != dir &&
          g.ack == st.last_end) {
        // This SYN-ACK answers a SYN we ignored: the endpoints restarted the
        // connection and we were out of sync. Adopt the SYN's data, forget
        // this side's, and track the SYN-ACK as the handshake's second step.
        const unsigned o = last_dir(st);
        st.peer[o].td_end = st.peer[o].td_maxend = st.last_end;
        st.peer[o].td_maxwin = st.last_win == 0 ? 1 : st.last_win;
        st.scale[o] = st.last_syn_opts & 0x0F;
        st.peer_flags[o] = static_cast<uint8_t>(st.last_syn_opts >> 4);
        st.peer[dir] = FwTcpPeer{};
        st.scale[dir] = 0;
        st.peer_flags[dir] = 0;
        st.state = sSS;
        next = sSR;
        break;
      }
      // Our state may be out of sync with the endpoints; let the packet
      // through unchanged and remember it, so that the answer can re-sync us
      // (above) or an RST to it can close us (below).
      set_last(st, index, dir);
      st.last_end = g.end;
      if (index == TcpIndex::kSyn && dir == kDirOriginal) {
        st.last_win = g.win;
        st.last_syn_opts = static_cast<uint8_t>((g.wscale & 0x0F) | (g.opt_flags << 4));
      }
      return FwVerdict{FwReason::kIgnored, 0, -1};
    case sIV:
      return drop(FwReason::kDropInvalidTransition);
    case sCL:
      if (index == TcpIndex::kRst) {
        // An RST answering a SYN we let through unchecked (ignored, or the
        // initial one): its numbers are about that SYN, not about our
        // windows, and its ack must match the SYN exactly. netfilter makes
        // the stale-RST check below first, which drops the seq-0 RST a
        // restarted server sends to an ignored SYN.
        if (last_index(st) == TcpIndex::kSyn && last_dir(st) != dir && (g.flags & kTcpAck) &&
            g.ack == st.last_end) {
          check_window = false;
          break;
        }
        // An RST below what the other side has already acked is stale.
        const unsigned r = dir ^ 1;
        if ((st.peer_flags[r] & kPeerMaxAckSet) && seq_before(g.seq, st.peer[r].td_maxack)) {
          return drop(FwReason::kDropRstOutOfWindow);
        }
      }
      break;
    default:
      break;
  }

  FwReason reason = FwReason::kAccepted;
  if (check_window && !tcp_in_window(st, dir, g)) {
    if (!be_liberal) {
      st = saved;
      return drop(index == TcpIndex::kRst ? FwReason::kDropRstOutOfWindow
                                          : FwReason::kDropOutOfWindow);
    }
    reason = FwReason::kLiberal;
  }

  set_last(st, index, dir);
  st.last_end = g.end;
  const auto next_state = static_cast<TcpState>(next);
  if (next_state == TcpState::kFinWait && st.tcp_state() != TcpState::kFinWait) {
    st.peer_flags[dir] |= kPeerCloseInit;
  }
  st.state = next;

  uint32_t timeout = timeouts.tcp(next_state);
  if (index == TcpIndex::kRst) {
    timeout = timeouts.tcp_close;
  } else if (((st.peer_flags[0] | st.peer_flags[1]) & kPeerDataUnacked) &&
             timeout > timeouts.tcp_unacknowledged) {
    timeout = timeouts.tcp_unacknowledged;
  }
  return FwVerdict{reason, timeout, -1};
}

}  // namespace tripod
