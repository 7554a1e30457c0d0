#include "nf/synproxy/handshake.h"

#include <algorithm>

#include "nf/synproxy/translate.h"
#include "packet/parser.h"
#include "packet/tcp_frame.h"

namespace tripod {
namespace {

CookieTuple tuple_of(const uint8_t* frame, const PacketMeta& m) {
  return CookieTuple{m.family, frame + m.src_off, frame + m.dst_off, m.sport, m.dport};
}

uint8_t dscp_of(const uint8_t* frame, const PacketMeta& m) {
  const uint8_t* ip = frame + m.l3_off;
  if (m.family == Family::kIpv4) return ip[1];
  return static_cast<uint8_t>(load_be16(ip) >> 4);
}

uint32_t flow_label_of(const uint8_t* frame, const PacketMeta& m) {
  return m.family == Family::kIpv6 ? load_be32(frame + m.l3_off) & 0xFFFFF : 0;
}

// Writes the frame and parses it back for the meta the next stages use.
// The parse cannot fail on what write_tcp_frame wrote; if it ever did, the
// frame is reported as not built rather than passed on with a wrong meta.
SynProxyCounter emit(const TcpFrameSpec& s, uint8_t* out, uint32_t cap, BuiltFrame* built,
                     SynProxyCounter ok) {
  built->len = write_tcp_frame(s, out, cap);
  if (built->len == 0 || parse_packet(out, built->len, &built->meta) != ParseError::kOk) {
    built->len = 0;
    return SynProxyCounter::kDropNoRoom;
  }
  return ok;
}

uint8_t shift_of(uint8_t wscale) {
  return wscale == kNoWscale ? 0 : wscale;
}

}  // namespace

SynProxy::SynProxy(const SipKey& master, const CookieConfig& cfg, uint64_t now_ns)
    : keys_(master, cfg, now_ns) {}

void SynProxy::advance(uint64_t now_ns) {
  counters_.inc(SynProxyCounter::kKeyRotation, keys_.advance(now_ns));
}

void SynProxy::rotate_keys() {
  keys_.rotate();
  counters_.inc(SynProxyCounter::kKeyRotation);
}

void SynProxy::rotate_keys(const SipKey& new_master) {
  keys_.rotate(new_master);
  counters_.inc(SynProxyCounter::kKeyRotation);
}

SynProxyCounter SynProxy::answer_syn(const uint8_t* frame, const PacketMeta& meta,
                                     const SynProxyVip& vip, uint64_t now_ns, uint8_t* out,
                                     uint32_t cap, uint32_t* out_len) const {
  *out_len = 0;
  // A bare SYN only (Linux: syn && !(ack || fin || rst)); data on it (TFO)
  // is not acknowledged and the client sends it again after the handshake.
  if (!is_tcp_segment(meta) ||
      (meta.tcp_flags & (kTcpSyn | kTcpAck | kTcpFin | kTcpRst)) != kTcpSyn) {
    return SynProxyCounter::kDropSynBadFlags;
  }
  TcpOptions o;
  if (parse_tcp_options(frame, meta, &o) != ParseError::kOk) {
    return SynProxyCounter::kDropSynBadOptions;
  }

  CookieOptions co;
  // RFC 9293 3.7.1 / RFC 8200 8.3: the default MSS without the option.
  const uint16_t client_mss = o.has_mss ? o.mss : meta.family == Family::kIpv6 ? 1220 : 536;
  co.mss_index = cookie_mss_index(meta.family, client_mss);
  co.timestamps = o.has_timestamps && vip.timestamps;
  co.sack_permitted = o.sack_permitted && vip.sack;
  co.wscale = o.has_wscale && vip.window_scaling ? o.wscale : kNoWscale;
  // RFC 3168 6.1.1: an ECN-setup SYN has ECE and CWR.
  co.ecn =
      co.timestamps && vip.ecn && (meta.tcp_flags & (kTcpEce | kTcpCwr)) == (kTcpEce | kTcpCwr);
  co = keys_.carried(co);  // the SYN-ACK offers exactly what the cookie can carry
  const Cookie c = keys_.mint(tuple_of(frame, meta), meta.tcp_seq, co, now_ns);

  TcpOptWriter opts;
  opts.mss(vip.mss);
  opts.sack_timestamps(co.sack_permitted, co.timestamps, c.tsval, o.ts_val);
  if (co.wscale != kNoWscale) opts.wscale(std::min<uint8_t>(vip.wscale, 14));

  TcpFrameSpec s = tcp_frame_reply(frame, meta);
  s.ttl = vip.ttl;
  s.seq = c.isn;
  s.ack = meta.tcp_seq + 1;
  s.flags = kTcpSyn | kTcpAck | (co.ecn ? kTcpEce : 0);
  // Zero window: the client may not send data before the backend is open
  // (Linux SYNPROXY does the same); build_client_window_update opens it.
  s.window = 0;
  s.opts = &opts;
  *out_len = write_tcp_frame(s, out, cap);
  return *out_len != 0 ? SynProxyCounter::kSynCookieSent : SynProxyCounter::kDropNoRoom;
}

SynProxyCounter SynProxy::check_ack(const uint8_t* frame, const PacketMeta& meta, uint64_t now_ns,
                                    CookieAck* out) const {
  if (!is_tcp_segment(meta) || (meta.tcp_flags & (kTcpSyn | kTcpAck | kTcpRst)) != kTcpAck) {
    return SynProxyCounter::kDropAckBadFlags;
  }
  TcpOptions o;
  if (parse_tcp_options(frame, meta, &o) != ParseError::kOk) {
    return SynProxyCounter::kDropAckBadOptions;
  }
  CookieAck a;
  a.client_isn = meta.tcp_seq - 1;
  a.cookie_isn = meta.tcp_ack - 1;
  const CookieTuple t = tuple_of(frame, meta);
  CookieStatus st =
      keys_.verify(t, a.client_isn, a.cookie_isn, o.has_timestamps, o.ts_ecr, now_ns, &a.opts);
  // If the handshake ACK was lost, the client (whose window is zero) sends
  // zero-window probes instead, with seq = SND.UNA - 1 = its ISN (Linux's
  // tcp_xmit_probe_skb). Accepting those lets the connection recover; only
  // empty, FIN-less segments get this second MAC.
  if (st == CookieStatus::kBad && meta.payload_off == meta.l3_end &&
      (meta.tcp_flags & kTcpFin) == 0) {
    const CookieStatus probe =
        keys_.verify(t, meta.tcp_seq, a.cookie_isn, o.has_timestamps, o.ts_ecr, now_ns, &a.opts);
    if (probe != CookieStatus::kBad) {
      st = probe;
      a.client_isn = meta.tcp_seq;
    }
  }
  switch (st) {
    case CookieStatus::kValid:
      break;
    case CookieStatus::kExpired:
      return SynProxyCounter::kDropCookieExpired;
    case CookieStatus::kBad:
      return SynProxyCounter::kDropBadCookie;
  }
  a.client_tsval = o.ts_val;
  a.synack_tsval = o.ts_ecr;
  a.mss = cookie_mss(meta.family, a.opts.mss_index);
  a.client_window = meta.tcp_window;
  a.payload_len = static_cast<uint16_t>(meta.l3_end - meta.payload_off);
  *out = a;
  return SynProxyCounter::kCookieValid;
}

SynProxyState synproxy_begin(const CookieAck& ack, const SynProxyVip& vip) {
  SynProxyState st;
  st.seq_delta = ack.cookie_isn;
  st.ts_delta = ack.synack_tsval;
  st.client_isn = ack.client_isn;
  st.client_window = ack.client_window;
  st.flags = static_cast<uint8_t>((ack.opts.timestamps ? kSpTimestamps : 0) |
                                  (ack.opts.sack_permitted ? kSpSack : 0));
  // The SYN-ACK advertised vip.wscale exactly when the cookie carries the
  // client's shift (both sides must send the option for scaling to apply).
  const uint8_t advertised =
      ack.opts.wscale != kNoWscale ? std::min<uint8_t>(vip.wscale, 14) : kNoWscale;
  st.wscales = static_cast<uint8_t>(kNoWscale << 4 | advertised);
  return st;
}

SynProxyCounter build_backend_syn(const uint8_t* ack_frame, const PacketMeta& ack_meta,
                                  const CookieAck& ack, uint8_t* out, uint32_t cap,
                                  BuiltFrame* built) {
  built->len = 0;
  if (!is_tcp_segment(ack_meta)) return SynProxyCounter::kDropAckBadFlags;
  const CookieOptions& co = ack.opts;
  TcpOptWriter opts;
  opts.mss(ack.mss);
  opts.sack_timestamps(co.sack_permitted, co.timestamps, ack.client_tsval, 0);
  if (co.wscale != kNoWscale) opts.wscale(co.wscale);

  TcpFrameSpec s = tcp_frame_forward(ack_frame, ack_meta);
  s.ttl = ack_meta.ttl;
  s.dscp_tos = dscp_of(ack_frame, ack_meta);
  s.flow_label = flow_label_of(ack_frame, ack_meta);
  s.seq = ack.client_isn;
  s.ack = 0;
  s.flags = kTcpSyn | (co.ecn ? kTcpEce | kTcpCwr : 0);
  // A SYN's window is never scaled (RFC 7323 2.2): give the client's real one.
  s.window = static_cast<uint16_t>(
      std::min<uint32_t>(static_cast<uint32_t>(ack.client_window) << shift_of(co.wscale), 65535));
  s.opts = &opts;
  return emit(s, out, cap, built, SynProxyCounter::kBackendSynBuilt);
}

SynProxyCounter synproxy_backend_synack(SynProxyState* st, const uint8_t* frame,
                                        const PacketMeta& meta) {
  if (!is_tcp_segment(meta) ||
      (meta.tcp_flags & (kTcpSyn | kTcpAck | kTcpRst | kTcpFin)) != (kTcpSyn | kTcpAck)) {
    return SynProxyCounter::kDropSynAckInvalid;
  }
  if (meta.tcp_ack != st->client_isn + 1) return SynProxyCounter::kDropSynAckMismatch;
  TcpOptions o;
  if (parse_tcp_options(frame, meta, &o) != ParseError::kOk) {
    return SynProxyCounter::kDropSynAckInvalid;
  }
  if (st->open()) return SynProxyCounter::kBackendSynAckRetransmit;

  st->seq_delta -= meta.tcp_seq;
  if ((st->flags & kSpTimestamps) != 0) {
    if (o.has_timestamps) {
      st->ts_delta -= o.ts_val;
    } else {
      // The backend refused timestamps the client was promised: nothing to
      // translate (README: backends must match the VIP's options).
      st->flags &= static_cast<uint8_t>(~kSpTimestamps);
      st->ts_delta = 0;
    }
  } else {
    st->ts_delta = 0;
  }
  // Scaling applies only if our SYN offered it, i.e. the client's shift was
  // carried (then we also advertised one to the client).
  const uint8_t adv = st->client_wscale();
  const uint8_t backend = adv != kNoWscale && o.has_wscale ? o.wscale : kNoWscale;
  st->wscales = static_cast<uint8_t>(backend << 4 | adv);
  if (shift_of(backend) != shift_of(adv)) st->flags |= kSpRescaleWindow;
  st->flags |= kSpOpen;
  return SynProxyCounter::kBackendOpen;
}

// What both frames built from the backend's SYN-ACK need: an open proxy
// and the SYN-ACK's options. kBackendOpen: go on.
static SynProxyCounter check_synack(const SynProxyState& st, const uint8_t* synack,
                                    const PacketMeta& synack_meta, TcpOptions* o) {
  if (!st.open()) return SynProxyCounter::kDropNotOpen;
  if (!is_tcp_segment(synack_meta) ||
      parse_tcp_options(synack, synack_meta, o) != ParseError::kOk) {
    return SynProxyCounter::kDropSynAckInvalid;
  }
  return SynProxyCounter::kBackendOpen;
}

SynProxyCounter build_backend_ack(const SynProxyState& st, const uint8_t* synack,
                                  const PacketMeta& synack_meta, uint8_t* out, uint32_t cap,
                                  BuiltFrame* built) {
  built->len = 0;
  TcpOptions o;
  if (const SynProxyCounter bad = check_synack(st, synack, synack_meta, &o);
      bad != SynProxyCounter::kBackendOpen)
    return bad;
  TcpOptWriter opts;
  // The SYN-ACK echoes the client's TSval we put in the SYN: echo back.
  if ((st.flags & kSpTimestamps) != 0 && o.has_timestamps) {
    opts.timestamps(false, o.ts_ecr, o.ts_val);
  }
  TcpFrameSpec s = tcp_frame_reply(synack, synack_meta);
  s.seq = synack_meta.tcp_ack;
  s.ack = synack_meta.tcp_seq + 1;
  s.flags = kTcpAck;
  s.window = st.client_window;
  s.opts = &opts;
  return emit(s, out, cap, built, SynProxyCounter::kBackendAckBuilt);
}

SynProxyCounter build_client_ack_request(const SynProxyState& st, const uint8_t* frame,
                                         const PacketMeta& meta, uint8_t* out, uint32_t cap,
                                         BuiltFrame* built) {
  built->len = 0;
  if (!is_tcp_segment(meta) || st.open()) return SynProxyCounter::kDropTranslateBadPacket;
  TcpOptWriter opts;
  if ((st.flags & kSpTimestamps) != 0) opts.timestamps(false, st.ts_delta, 0);
  TcpFrameSpec s = tcp_frame_forward(frame, meta);
  s.seq = st.seq_delta;  // before open: our ISN toward the client
  s.ack = st.client_isn + 1;
  s.flags = kTcpAck;
  s.window = 0;
  s.opts = &opts;
  return emit(s, out, cap, built, SynProxyCounter::kClientAckRequestBuilt);
}

SynProxyCounter build_client_window_update(const SynProxyState& st, const uint8_t* synack,
                                           const PacketMeta& synack_meta, uint8_t* out,
                                           uint32_t cap, BuiltFrame* built) {
  built->len = 0;
  TcpOptions o;
  if (const SynProxyCounter bad = check_synack(st, synack, synack_meta, &o);
      bad != SynProxyCounter::kBackendOpen)
    return bad;
  TcpOptWriter opts;
  if ((st.flags & kSpTimestamps) != 0 && o.has_timestamps) {
    opts.timestamps(false, o.ts_val, o.ts_ecr);
  }
  // What the backend would send after its SYN-ACK: the next seq, and its
  // window now scaled by its own shift; then translated like its traffic.
  TcpFrameSpec s = tcp_frame_forward(synack, synack_meta);
  s.ttl = synack_meta.ttl;
  s.seq = synack_meta.tcp_seq + 1;
  s.ack = synack_meta.tcp_ack;
  s.flags = kTcpAck;
  s.window = static_cast<uint16_t>(synack_meta.tcp_window >> shift_of(st.backend_wscale()));
  s.opts = &opts;
  const SynProxyCounter r = emit(s, out, cap, built, SynProxyCounter::kClientWindowUpdateBuilt);
  if (r != SynProxyCounter::kClientWindowUpdateBuilt) return r;
  if (synproxy_to_client(st, out, built->meta) != SynProxyCounter::kTranslatedToClient) {
    built->len = 0;
    return SynProxyCounter::kDropTranslateBadPacket;
  }
  return r;
}

}  // namespace tripod
