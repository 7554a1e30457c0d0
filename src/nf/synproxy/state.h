// SYN proxy: the per-connection record, the per-VIP options and the counted
// events every data-plane call returns. Design note: README.md.
//
// Contract
// - Every data-plane function of the SYN proxy (handshake.h, translate.h)
//   returns the SynProxyCounter event it caused: a success event or a drop
//   reason. The stage counts it (SynProxy::count) and drops the packet when
//   is_drop() says so. Nothing on the packet path counts behind the caller's
//   back, so a function stays pure and the stage decides what to record.
// - SynProxyState is the only state, created by the stage from a valid
//   cookie ACK (synproxy_begin) and kept in the connection table for the
//   life of the connection. It is fixed size and trivially copyable so it
//   can be replicated as bytes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <type_traits>

#include "common/counters.h"

namespace tripod {

// Success events first, drops (named drop_*) after kDropSynBadFlags; the
// order is checked below so is_drop() is one compare.
#define TRIPOD_SYNPROXY_COUNTERS(X)                                                  \
  X(kSynCookieSent, "syn_cookies_sent") /* SYN answered, no state */                 \
  X(kCookieValid, "cookie_valid")       /* ACK carried our cookie */                 \
  X(kBackendSynBuilt, "backend_syn_built")                                           \
  X(kBackendOpen, "backend_open") /* backend SYN-ACK: deltas */                      \
  X(kBackendSynAckRetransmit, "backend_synack_retransmit")                           \
  X(kBackendAckBuilt, "backend_ack_built")                                           \
  X(kClientWindowUpdateBuilt, "client_window_update_built")                          \
  X(kClientAckRequestBuilt, "client_ack_request_built")                              \
  X(kTranslatedToClient, "translated_to_client")                                     \
  X(kTranslatedToBackend, "translated_to_backend")                                   \
  X(kKeyRotation, "key_rotations")                                                   \
  X(kDropSynBadFlags, "drop_syn_bad_flags") /* not a bare SYN, or a fragment */      \
  X(kDropSynBadOptions, "drop_syn_bad_options")                                      \
  X(kDropAckBadFlags, "drop_ack_bad_flags") /* not an ACK without SYN/RST */         \
  X(kDropAckBadOptions, "drop_ack_bad_options")                                      \
  X(kDropBadCookie, "drop_bad_cookie")         /* MAC mismatch: forged, old key */   \
  X(kDropCookieExpired, "drop_cookie_expired") /* MAC right, slot too old */         \
  X(kDropSynAckInvalid, "drop_backend_synack_invalid")                               \
  X(kDropSynAckMismatch, "drop_backend_synack_mismatch") /* ack != client ISN + 1 */ \
  X(kDropNotOpen, "drop_backend_not_open")               /* data before SYN-ACK */   \
  X(kDropTranslateBadPacket, "drop_translate_bad_packet")                            \
  X(kDropTranslateBadOptions, "drop_translate_bad_options")                          \
  X(kDropNoRoom, "drop_no_room") /* output buffer too small */

TRIPOD_DECLARE_REASONS(SynProxyCounter, TRIPOD_SYNPROXY_COUNTERS)
using SynProxyCounters = CounterSet<SynProxyCounter, static_cast<size_t>(SynProxyCounter::kCount)>;

inline constexpr bool is_drop(SynProxyCounter e) {
  return e >= SynProxyCounter::kDropSynBadFlags;
}

namespace internal {
constexpr bool synproxy_drops_are_named_drop() {
  for (size_t i = 0; i < static_cast<size_t>(SynProxyCounter::kCount); ++i) {
    const bool named = kSynProxyCounterNames[i].starts_with("drop_");
    if (named != is_drop(static_cast<SynProxyCounter>(i))) return false;
  }
  return true;
}
static_assert(synproxy_drops_are_named_drop(), "drop events must come last and be named drop_*");
}  // namespace internal

// Per-VIP options of the handshake the proxy answers for its backends.
// The backends should be configured the same way (Linux SYNPROXY's rule):
// what cannot be rewritten later is listed in README.md.
struct SynProxyVip {
  uint16_t mss = 1460;         // MSS advertised to clients (<= the backends' MSS)
  uint8_t wscale = 7;          // window shift advertised to clients (backends' own, ideally)
  bool window_scaling = true;  // offer window scaling (if the client does)
  bool sack = true;            // offer SACK-permitted (if the client does)
  bool timestamps = true;      // echo timestamps (if the client sends them)
  bool ecn = false;            // agree to ECN (needs timestamps to carry it; see README)
  uint8_t ttl = 64;            // TTL / hop limit of the SYN-ACK
};

inline constexpr uint8_t kNoWscale = 0xF;  // "no window scaling" in a 4-bit shift field

// SynProxyState::flags
inline constexpr uint8_t kSpOpen = 1u << 0;           // backend SYN-ACK seen: deltas valid
inline constexpr uint8_t kSpTimestamps = 1u << 1;     // both legs use timestamps: translate them
inline constexpr uint8_t kSpSack = 1u << 2;           // client may send SACK blocks
inline constexpr uint8_t kSpRescaleWindow = 1u << 3;  // backend's shift != the one advertised
// How often the client was asked for its ACK again (a 2-bit count, at most
// 3; build_client_ack_request): the backend turned our SYN away.
inline constexpr uint8_t kSpAckRequestOne = 1u << 4;
inline constexpr uint8_t kSpAckRequests = 3u << 4;

// One connection's sequence translation. Before kSpOpen the delta fields
// hold the client-facing values themselves (our ISN and the TSval we sent);
// the backend's SYN-ACK subtracts its own ISN / TSval, which leaves
//   seq_delta = ISN toward the client - backend ISN
//   ts_delta  = TSval of our SYN-ACK  - TSval of the backend's SYN-ACK
// (mod 2^32). backend -> client: seq += seq_delta, TSval += ts_delta;
// client -> backend: ack -= seq_delta, SACK blocks -= seq_delta,
// TSecr -= ts_delta.
struct SynProxyState {
  uint32_t seq_delta = 0;
  uint32_t ts_delta = 0;
  uint32_t client_isn = 0;     // checks the backend's SYN-ACK (ack == client_isn + 1)
  uint16_t client_window = 0;  // window of the client's ACK, for our ACK to the backend
  uint8_t flags = 0;           // kSp*
  uint8_t wscales = 0;         // low nibble: shift advertised to the client; high nibble:
                               // the backend's (valid once open); kNoWscale = none

  uint8_t client_wscale() const { return wscales & 0xF; }
  uint8_t backend_wscale() const { return wscales >> 4; }
  bool open() const { return (flags & kSpOpen) != 0; }
};
static_assert(sizeof(SynProxyState) == 16);
static_assert(std::is_trivially_copyable_v<SynProxyState>);

}  // namespace tripod
