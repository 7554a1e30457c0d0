// The firewall's vocabulary: the per-connection record (FwConnState), the
// verdict of one packet (FwVerdict: a reason from the X-macro below plus the
// connection's new timeout) and the per-state timeouts. No table here: the
// pipeline stage keeps an FwConnState inside its own per-connection value and
// hands it to fw_track() (conntrack.h). Design note and diagram: README.md.
#pragma once

#include <cstdint>
#include <string_view>
#include <type_traits>

#include "common/counters.h"

namespace tripod {

// Every outcome of a packet, accepted or not, with its counter name. The
// accept outcomes come first (is_accept() relies on the order); every drop
// has exactly one reason.
#define TRIPOD_FW_REASONS(X)                                                                     \
  /* accepted */                                                                                 \
  X(kCreated, "created")                /* first packet; the ACL allowed a new conn */           \
  X(kReopened, "reopened")              /* SYN on TIME_WAIT/CLOSE: a new conn, ACL re-checked */ \
  X(kAccepted, "accepted")              /* packet of a tracked connection */                     \
  X(kIgnored, "ignored")                /* forwarded, state untouched (netfilter's IGNORE) */    \
  X(kLiberal, "accepted_out_of_window") /* out of window, tcp_be_liberal set */                  \
  X(kRelated, "related")                /* ICMP error about a tracked connection */              \
  X(kUntracked, "untracked")            /* allowed by the ACL, no state (ICMP info) */           \
  /* dropped */                                                                                  \
  X(kDenyRule, "deny_rule")                                                                      \
  X(kDenyDefault, "deny_default")                                                                \
  X(kDropStrayAck, "drop_stray_ack")                                                             \
  X(kDropStrayRst, "drop_stray_rst")                                                             \
  X(kDropSynackWithoutSyn, "drop_synack_without_syn")                                            \
  X(kDropBadTcpFlags, "drop_bad_tcp_flags")                                                      \
  X(kDropBadTcpOptions, "drop_bad_tcp_options")                                                  \
  X(kDropInvalidTransition, "drop_invalid_transition")                                           \
  X(kDropOutOfWindow, "drop_out_of_window")                                                      \
  X(kDropRstOutOfWindow, "drop_rst_out_of_window")                                               \
  X(kDropEchoReplyWithoutRequest, "drop_echo_reply_without_request")                             \
  X(kDropIcmpErrorUnrelated, "drop_icmp_error_unrelated")                                        \
  X(kDropIcmpErrorOutOfWindow, "drop_icmp_error_out_of_window")                                  \
  X(kDropFragment, "drop_fragment")                                                              \
  X(kDropMalformed, "drop_malformed")

TRIPOD_DECLARE_REASONS(FwReason, TRIPOD_FW_REASONS)

inline constexpr FwReason kFwFirstDrop = FwReason::kDenyRule;
constexpr bool is_accept(FwReason r) {
  return r < kFwFirstDrop;
}

// TCP states, netfilter's (nf_conntrack_tcp.h) and in its order; kSynSent2 is
// the simultaneous-open state (both sides sent a SYN).
enum class TcpState : uint8_t {
  kNone,
  kSynSent,
  kSynRecv,
  kEstablished,
  kFinWait,
  kCloseWait,
  kLastAck,
  kTimeWait,
  kClose,
  kSynSent2,
  kCount
};
inline constexpr std::string_view kTcpStateNames[] = {
    "NONE",       "SYN_SENT", "SYN_RECV",  "ESTABLISHED", "FIN_WAIT",
    "CLOSE_WAIT", "LAST_ACK", "TIME_WAIT", "CLOSE",       "SYN_SENT2"};
constexpr std::string_view to_string(TcpState s) {
  return kTcpStateNames[static_cast<size_t>(s)];
}

// Timeouts in seconds; netfilter's defaults (nf_conntrack_proto_{tcp,udp,icmp,generic}.c).
struct FwTimeouts {
  uint32_t tcp_syn_sent = 120;  // also SYN_SENT2
  uint32_t tcp_syn_recv = 60;
  uint32_t tcp_established = 432000;  // 5 days
  uint32_t tcp_fin_wait = 120;
  uint32_t tcp_close_wait = 60;
  uint32_t tcp_last_ack = 30;
  uint32_t tcp_time_wait = 120;
  uint32_t tcp_close = 10;  // also after any accepted RST
  // Cap while either side has data in flight that the other has not acked
  // (nf_conntrack_tcp_timeout_unacknowledged): a dead peer with pending data
  // frees its entry in minutes, not days.
  uint32_t tcp_unacknowledged = 300;
  uint32_t udp = 30;          // unreplied
  uint32_t udp_stream = 120;  // replied
  uint32_t icmp = 30;
  uint32_t generic = 600;

  uint32_t tcp(TcpState s) const;
};

// What one packet did. `timeout_s` is the connection's new timeout for
// accepted packets that refresh it; 0 means "leave the deadline as it is"
// (drops, ignored packets, ICMP errors, untracked packets).
struct FwVerdict {
  FwReason reason = FwReason::kAccepted;
  uint32_t timeout_s = 0;
  int32_t rule = -1;  // ACL rule (0-based) that decided a new connection; -1: default/none

  bool accepted() const { return is_accept(reason); }
};

// Kind of connection a record tracks.
enum class FwKind : uint8_t { kNone, kTcp, kUdp, kIcmpEcho, kGeneric };

// Pseudo-states of UDP / ICMP echo / generic connections.
enum class FwPseudoState : uint8_t { kUnreplied, kReplied };

// Directions relative to the connection: the sender of the first packet is
// the original direction (netfilter's IP_CT_DIR_ORIGINAL / REPLY).
inline constexpr unsigned kDirOriginal = 0;
inline constexpr unsigned kDirReply = 1;

// One direction's sender, as seen by the window tracker (netfilter's
// ip_ct_tcp_state; van Rooij's per-side data). Sequence numbers are mod 2^32.
struct FwTcpPeer {
  uint32_t td_end;     // max(seq + len) sent
  uint32_t td_maxend;  // max(ack + window) the other side allowed: the right edge
  uint32_t td_maxwin;  // max(window) sent, scaled (at least 1 once initialised)
  uint32_t td_maxack;  // max(ack) sent, valid if kPeerMaxAckSet
};

// FwTcpPeer flags, per sender (FwConnState::peer_flags).
inline constexpr uint8_t kPeerWindowScale = 1u << 0;  // its SYN carried the option
inline constexpr uint8_t kPeerSackPerm = 1u << 1;     // its SYN carried SACK-permitted
inline constexpr uint8_t kPeerCloseInit = 1u << 2;    // it sent the first FIN
inline constexpr uint8_t kPeerDataUnacked = 1u << 3;  // it sent data not yet acked
inline constexpr uint8_t kPeerMaxAckSet = 1u << 4;    // td_maxack is valid

// FwConnState::flags.
inline constexpr uint8_t kConnOrigReversed = 1u << 0;  // original dir runs b->a of the key
inline constexpr uint8_t kConnOrigInbound = 1u << 1;   // original dir is TrafficDir::kIn

// The per-connection record. Trivially copyable and fixed size so that the
// pipeline can embed it in its ConnTable value and the cluster layer can
// replicate it as bytes. Zero bytes are an empty record (kind kNone).
struct FwConnState {
  FwTcpPeer peer[2];      // TCP: [kDirOriginal], [kDirReply] senders
  uint32_t last_end;      // TCP: end of the last in-window or ignored segment
  uint16_t last_win;      // TCP: raw window of the last ignored SYN (re-sync)
  FwKind kind;            // what this record tracks
  uint8_t state;          // TcpState for TCP, FwPseudoState otherwise
  uint8_t scale[2];       // TCP: window scale per sender (td_scale)
  uint8_t peer_flags[2];  // TCP: kPeer* per sender
  uint8_t last;           // TCP: index (bits 0-2) | dir (bit 3) of the last packet
  uint8_t last_syn_opts;  // TCP: ignored SYN's wscale (bits 0-3) | kPeer* flags << 4
  uint8_t flags;          // kConn*
  uint8_t reserved;

  TcpState tcp_state() const { return static_cast<TcpState>(state); }
  FwPseudoState pseudo_state() const { return static_cast<FwPseudoState>(state); }
  // Direction of a packet given its FlowKey `reversed` bit.
  unsigned dir_of(bool key_reversed) const {
    return key_reversed != ((flags & kConnOrigReversed) != 0) ? kDirReply : kDirOriginal;
  }
};
static_assert(sizeof(FwConnState) == 48);
static_assert(std::is_trivially_copyable_v<FwConnState>);
static_assert(std::is_standard_layout_v<FwConnState>);

}  // namespace tripod
