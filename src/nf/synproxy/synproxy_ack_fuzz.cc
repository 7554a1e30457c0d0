// libFuzzer target for the SYN proxy's packet paths after the parser: ACK
// validation (with cookies forged right when the input asks, so the valid
// path is explored too), the backend SYN / ACK / window-update builders, and
// both translations over an arbitrary state.
//
// Input: [mode:1][SynProxyState:16][Ethernet frame...]
//   mode bit 0: rewrite the frame's ack (and TSecr) to a cookie minted for
//               it, so check_ack must accept it
//   mode bits 1-7: options of that cookie; bit 6 (also ECN) picks the
//               keyring with options_without_timestamps off
// Checks (trap on violation): every frame built parses, matches the meta
// returned, and has correct checksums; a translation of a frame whose
// checksum was right leaves it right; a drop leaves the frame untouched.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "common/byte_order.h"
#include "common/fuzz_check.h"
#include "nf/synproxy/handshake.h"
#include "nf/synproxy/translate.h"
#include "packet/checksum.h"
#include "packet/meta_check.h"
#include "packet/parser.h"

namespace tripod {
namespace {

constexpr uint64_t kNow = 5'000'000'000'000;  // 5000 s
constexpr size_t kHeader = 1 + sizeof(SynProxyState);

void check_built(const uint8_t* out, const BuiltFrame& b) {
  PacketMeta m;
  FUZZ_CHECK(parse_packet(out, b.len, &m) == ParseError::kOk);
  FUZZ_CHECK(std::memcmp(&m, &b.meta, sizeof m) == 0);
  FUZZ_CHECK(l4_checksum_ok(out, m));
}

bool is_ack_candidate(const PacketMeta& m) {
  return m.has(kMetaHasL4) && m.proto == kProtoTcp && !m.has(kMetaFragment) &&
         (m.tcp_flags & (kTcpSyn | kTcpAck | kTcpRst)) == kTcpAck;
}

// Rewrites ack (and TSecr) to a cookie for this frame; true if done.
bool forge_cookie(const SynProxy& p, uint8_t mode, std::vector<uint8_t>& f, PacketMeta& m) {
  TcpOptions o;
  if (!is_ack_candidate(m) || parse_tcp_options(f.data(), m, &o) != ParseError::kOk) return false;
  CookieOptions co;
  co.mss_index = (mode >> 1) & 3;
  co.wscale = static_cast<uint8_t>(((mode >> 3) & 0xF) == 15 ? kNoWscale : (mode >> 3) & 0xF);
  co.sack_permitted = (mode & 0x80) != 0;
  co.timestamps = o.has_timestamps;
  co.ecn = o.has_timestamps && (mode & 0x40) != 0;
  const CookieTuple t{m.family, f.data() + m.src_off, f.data() + m.dst_off, m.sport, m.dport};
  const Cookie c = p.keys().mint(t, m.tcp_seq - 1, co, kNow);
  store_be32(f.data() + m.l4_off + 8, c.isn + 1);
  if (o.has_timestamps) store_be32(f.data() + o.ts_off + 4, c.tsval);
  fix_checksums(f.data(), m);
  return parse_packet(f.data(), static_cast<uint32_t>(f.size()), &m) == ParseError::kOk;
}

void run(uint8_t mode, SynProxyState st, std::vector<uint8_t> frame) {
  static const SynProxy carrying(SipKey{1, 2}, CookieConfig{}, kNow);
  static const SynProxy linux_style(SipKey{1, 2}, CookieConfig{.options_without_timestamps = false},
                                    kNow);
  const SynProxy& proxy = (mode & 0x40) != 0 ? linux_style : carrying;
  const uint32_t len = static_cast<uint32_t>(frame.size());
  PacketMeta m;
  if (parse_packet(frame.data(), len, &m) != ParseError::kOk || m.has(kMetaNotIp)) return;
  FUZZ_CHECK(meta_problem(m, len) == nullptr);
  const bool forged = (mode & 1) != 0 && forge_cookie(proxy, mode, frame, m);

  uint8_t out[256];
  BuiltFrame built;

  // SYN path.
  uint32_t synack_len = 0;
  if (proxy.answer_syn(frame.data(), m, SynProxyVip{}, kNow, out, sizeof out, &synack_len) ==
      SynProxyCounter::kSynCookieSent) {
    PacketMeta sm;
    FUZZ_CHECK(parse_packet(out, synack_len, &sm) == ParseError::kOk);
    FUZZ_CHECK(l4_checksum_ok(out, sm) && sm.tcp_ack == m.tcp_seq + 1);
  }

  // ACK validation -> state -> backend SYN.
  CookieAck ack;
  const SynProxyCounter r = proxy.check_ack(frame.data(), m, kNow, &ack);
  FUZZ_CHECK(r == SynProxyCounter::kCookieValid || is_drop(r));
  if (forged) FUZZ_CHECK(r == SynProxyCounter::kCookieValid);
  if (r == SynProxyCounter::kCookieValid) {
    FUZZ_CHECK(ack.opts.wscale <= 14 || ack.opts.wscale == kNoWscale);
    FUZZ_CHECK(ack.mss == cookie_mss(m.family, ack.opts.mss_index));
    FUZZ_CHECK(build_backend_syn(frame.data(), m, ack, out, sizeof out, &built) ==
               SynProxyCounter::kBackendSynBuilt);
    check_built(out, built);
    FUZZ_CHECK(built.meta.tcp_seq == ack.client_isn && built.meta.tcp_flags & kTcpSyn);
    const SynProxyState begun = synproxy_begin(ack, SynProxyVip{});
    FUZZ_CHECK(!begun.open() && begun.seq_delta == ack.cookie_isn);
  }

  // The frame as the backend's SYN-ACK for an arbitrary state.
  SynProxyState s2 = st;
  const SynProxyCounter sr = synproxy_backend_synack(&s2, frame.data(), m);
  if (sr == SynProxyCounter::kBackendOpen || sr == SynProxyCounter::kBackendSynAckRetransmit) {
    FUZZ_CHECK(s2.open());
    if (build_backend_ack(s2, frame.data(), m, out, sizeof out, &built) ==
        SynProxyCounter::kBackendAckBuilt) {
      check_built(out, built);
    }
    if (build_client_window_update(s2, frame.data(), m, out, sizeof out, &built) ==
        SynProxyCounter::kClientWindowUpdateBuilt) {
      check_built(out, built);
    }
  } else {
    FUZZ_CHECK(is_drop(sr) && std::memcmp(&s2, &st, sizeof st) == 0);
  }

  // Translation both ways.
  const bool csum_ok =
      m.has(kMetaHasL4) && !m.has(kMetaFragment) && l4_checksum_ok(frame.data(), m);
  for (int dir = 0; dir < 2; ++dir) {
    std::vector<uint8_t> f = frame;
    PacketMeta tm = m;
    const SynProxyCounter tr =
        dir == 0 ? synproxy_to_backend(st, f.data(), tm) : synproxy_to_client(st, f.data(), tm);
    if (is_drop(tr)) {
      FUZZ_CHECK(f == frame && std::memcmp(&tm, &m, sizeof m) == 0);
      continue;
    }
    PacketMeta after;
    FUZZ_CHECK(parse_packet(f.data(), len, &after) == ParseError::kOk);
    FUZZ_CHECK(std::memcmp(&after, &tm, sizeof tm) == 0);
    if (csum_ok) FUZZ_CHECK(l4_checksum_ok(f.data(), tm));
  }
}

}  // namespace
}  // namespace tripod

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace tripod;
  if (size < kHeader + 14 || size > kHeader + 0xFFFF) return 0;
  SynProxyState st;
  std::memcpy(&st, data + 1, sizeof st);
  run(data[0], st, std::vector<uint8_t>(data + kHeader, data + size));
  return 0;
}
