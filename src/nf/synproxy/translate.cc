#include "nf/synproxy/translate.h"

#include <algorithm>

#include "common/compiler.h"
#include "packet/parser.h"
#include "packet/tcp_frame.h"

namespace tripod {
namespace {

struct OptionOffsets {
  uint16_t ts = 0;    // frame offset of TSval (0: none)
  uint16_t sack = 0;  // frame offset of the first SACK block (0: none)
  uint8_t num_sack = 0;
};

// Where the timestamp and SACK fields are. Established traffic almost always
// carries either nothing or exactly NOP NOP TS (RFC 7323 appendix A's
// layout), which is recognised without walking the options.
TRIPOD_ALWAYS_INLINE bool locate_options(const uint8_t* frame, const PacketMeta& m,
                                         OptionOffsets* out) {
  if (m.tcp_hdr_len == 20) return true;
  if (m.tcp_hdr_len == 32 && load_be32(frame + m.l4_off + 20) == 0x0101080A) {
    out->ts = static_cast<uint16_t>(m.l4_off + 24);
    return true;
  }
  TcpOptions o;
  if (parse_tcp_options(frame, m, &o) != ParseError::kOk) return false;
  out->ts = o.ts_off;
  out->sack = o.sack_off;
  out->num_sack = o.num_sack;
  return true;
}

uint8_t shift_of(uint8_t wscale) {
  return wscale == kNoWscale ? 0 : wscale;
}

}  // namespace

SynProxyCounter synproxy_to_client(const SynProxyState& st, uint8_t* frame, PacketMeta& meta) {
  if (!is_tcp_segment(meta)) return SynProxyCounter::kDropTranslateBadPacket;
  uint8_t* tcp = frame + meta.l4_off;
  uint16_t cs = load_be16(tcp + 16);
  if (TRIPOD_UNLIKELY(!st.open())) {
    // Only the backend's refusal passes: seq_delta still holds our ISN.
    if ((meta.tcp_flags & kTcpRst) == 0) return SynProxyCounter::kDropNotOpen;
    meta.tcp_seq = st.seq_delta + 1;
    store_be16(tcp + 16, rewrite32(tcp + 4, 4, meta.tcp_seq, cs));
    return SynProxyCounter::kTranslatedToClient;
  }
  OptionOffsets opt;
  if ((st.flags & kSpTimestamps) != 0 && !locate_options(frame, meta, &opt)) {
    return SynProxyCounter::kDropTranslateBadOptions;
  }

  meta.tcp_seq = load_be32(tcp + 4) + st.seq_delta;
  cs = rewrite32(tcp + 4, 4, meta.tcp_seq, cs);
  if (opt.ts != 0) {
    uint8_t* p = frame + opt.ts;
    cs = rewrite32(p, opt.ts - meta.l4_off, load_be32(p) + st.ts_delta, cs);
  }
  if ((st.flags & kSpRescaleWindow) != 0 && (meta.tcp_flags & kTcpSyn) == 0) {
    // The client reads windows with the shift we advertised. Rounding down
    // (or clamping) only ever offers less than the backend does.
    const uint16_t old = load_be16(tcp + 14);
    const uint32_t bytes = static_cast<uint32_t>(old) << shift_of(st.backend_wscale());
    const uint16_t w =
        static_cast<uint16_t>(std::min<uint32_t>(bytes >> shift_of(st.client_wscale()), 0xFFFF));
    cs = csum_update16(cs, old, w);
    store_be16(tcp + 14, w);
    meta.tcp_window = w;
  }
  store_be16(tcp + 16, cs);
  return SynProxyCounter::kTranslatedToClient;
}

SynProxyCounter synproxy_to_backend(const SynProxyState& st, uint8_t* frame, PacketMeta& meta) {
  if (!is_tcp_segment(meta)) return SynProxyCounter::kDropTranslateBadPacket;
  if (TRIPOD_UNLIKELY(!st.open())) return SynProxyCounter::kDropNotOpen;
  OptionOffsets opt;
  if (!locate_options(frame, meta, &opt)) return SynProxyCounter::kDropTranslateBadOptions;

  uint8_t* tcp = frame + meta.l4_off;
  uint16_t cs = load_be16(tcp + 16);
  const uint32_t d = st.seq_delta;
  // TSecr and the ack number mean something only with ACK (RFC 7323 3.2).
  if ((meta.tcp_flags & kTcpAck) != 0) {
    meta.tcp_ack = load_be32(tcp + 8) - d;
    cs = rewrite32(tcp + 8, 8, meta.tcp_ack, cs);
    if (opt.ts != 0 && (st.flags & kSpTimestamps) != 0) {
      uint8_t* p = frame + opt.ts + 4;
      cs = rewrite32(p, opt.ts + 4 - meta.l4_off, load_be32(p) - st.ts_delta, cs);
    }
  }
  // SACK blocks name the backend's bytes in the client's numbering (RFC 2018).
  for (uint32_t i = 0; i < 2u * opt.num_sack; ++i) {
    uint8_t* p = frame + opt.sack + 4 * i;
    cs = rewrite32(p, opt.sack + 4 * i - meta.l4_off, load_be32(p) - d, cs);
  }
  store_be16(tcp + 16, cs);
  return SynProxyCounter::kTranslatedToBackend;
}

}  // namespace tripod
