#include "nf/gateway/client_syn.h"

#include "packet/parser.h"
#include "packet/tcp_frame.h"

namespace tripod {

bool read_client_syn(const uint8_t* frame, const PacketMeta& m, ClientSyn* out) {
  TcpOptions o;
  if (!is_tcp_segment(m) || (m.tcp_flags & (kTcpSyn | kTcpAck | kTcpRst)) != kTcpSyn ||
      parse_tcp_options(frame, m, &o) != ParseError::kOk)
    return false;
  ClientSyn s;
  s.isn = m.tcp_seq;
  s.window = m.tcp_window;
  if (o.has_mss) s.mss = o.mss;
  if (o.has_wscale) s.wscale = o.wscale > 14 ? 14 : o.wscale;  // RFC 7323 2.3
  s.sack = o.sack_permitted;
  s.timestamps = o.has_timestamps;
  s.tsval = o.ts_val;
  *out = s;
  return true;
}

// SynProxyState field   <- ClientSyn
//   client_isn             isn
//   ts_delta               tsval
//   seq_delta              mss | window << 16
//   client_window          sends
//   flags                  kSpTimestamps, kSpSack (bits the record format knows)
//   wscales (low nibble)   wscale
void store_client_syn(const ClientSyn& s, SynProxyState* sp) {
  sp->client_isn = s.isn;
  sp->ts_delta = s.tsval;
  sp->seq_delta = uint32_t{s.mss} | uint32_t{s.window} << 16;
  sp->client_window = s.sends;
  sp->flags = static_cast<uint8_t>((s.timestamps ? kSpTimestamps : 0) | (s.sack ? kSpSack : 0));
  sp->wscales = static_cast<uint8_t>(kNoWscale << 4 | (s.wscale & 0xF));
}

ClientSyn load_client_syn(const SynProxyState& sp) {
  ClientSyn s;
  s.isn = sp.client_isn;
  s.tsval = sp.ts_delta;
  s.mss = static_cast<uint16_t>(sp.seq_delta);
  s.window = static_cast<uint16_t>(sp.seq_delta >> 16);
  s.sends = static_cast<uint8_t>(sp.client_window);
  s.timestamps = (sp.flags & kSpTimestamps) != 0;
  s.sack = (sp.flags & kSpSack) != 0;
  s.wscale = sp.client_wscale();
  return s;
}

uint32_t write_client_syn(const ClientSyn& s, const uint8_t* frame, const PacketMeta& m,
                          const uint8_t* saddr, uint16_t sport, uint8_t* out, uint32_t cap) {
  if (!is_tcp_segment(m)) return 0;
  TcpOptWriter opts;
  if (s.mss != 0) opts.mss(s.mss);
  opts.sack_timestamps(s.sack, s.timestamps, s.tsval, 0);
  if (s.wscale != kNoWscale) opts.wscale(s.wscale);
  TcpFrameSpec f = tcp_frame_reply(frame, m);
  f.src = saddr;
  f.sport = sport;
  f.seq = s.isn;
  f.ack = 0;
  f.flags = kTcpSyn;
  f.window = s.window;
  f.opts = &opts;
  return write_tcp_frame(f, out, cap);
}

}  // namespace tripod
