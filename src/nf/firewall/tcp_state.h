// TCP connection tracking: netfilter's state machine (nf_conntrack_proto_tcp.c)
// and sequence-window checks after Guido van Rooij, "Real Stateful TCP Packet
// Filtering in IP Filter" (netfilter's tcp_in_window). The diagram and the
// choices that differ from netfilter are in README.md.
//
// These are the building blocks of conntrack.h, which adds the ACL; they
// touch only the record they are given and the packet, never allocate.
#pragma once

#include <cstdint>

#include "nf/firewall/fw_state.h"
#include "packet/packet_meta.h"

namespace tripod {

// Packet class, netfilter's get_conntrack_index(): the row of the table.
enum class TcpIndex : uint8_t { kSyn, kSynAck, kFin, kAck, kRst, kNone, kCount };

TcpIndex tcp_index(uint8_t tcp_flags);
// netfilter's tcp_valid_flags: SYN, SYN|ACK, RST, RST|ACK, ACK, FIN|ACK (each
// optionally with URG; PSH, ECE, CWR ignored). Everything else (SYN|FIN,
// FIN without ACK, no flags, ...) is a scan or a broken stack.
bool tcp_flags_valid(uint8_t tcp_flags);

// The transition table: next state for a packet of class `index` travelling
// in direction `dir` (kDirOriginal / kDirReply) on a connection in `state`.
// Besides TcpState values it returns these two:
inline constexpr uint8_t kTcpIgnore = 10;   // netfilter's sIG: forward, keep state
inline constexpr uint8_t kTcpInvalid = 11;  // netfilter's sIV: drop
uint8_t tcp_next_state(unsigned dir, TcpIndex index, TcpState state);

// Sequence comparisons modulo 2^32 (RFC 1982 style).
constexpr bool seq_before(uint32_t a, uint32_t b) {
  return static_cast<int32_t>(a - b) < 0;
}
constexpr bool seq_after(uint32_t a, uint32_t b) {
  return seq_before(b, a);
}

// The fields of one segment the tracker uses.
struct TcpSegment {
  uint32_t seq = 0;
  uint32_t ack = 0;
  uint32_t end = 0;       // seq + payload + SYN + FIN
  uint32_t sack = 0;      // highest of ack and the SACK right edges
  uint16_t win = 0;       // raw (unscaled) window
  uint8_t flags = 0;      // TCP flags
  uint8_t wscale = 0;     // SYN: the window-scale option, if kPeerWindowScale
  uint8_t opt_flags = 0;  // SYN: kPeerWindowScale | kPeerSackPerm
};

// Reads the segment. Options are parsed only for SYNs and, when `want_sack`,
// for segments that carry options. False if they are malformed.
bool tcp_segment(const uint8_t* frame, const PacketMeta& m, bool want_sack, TcpSegment* g);

// Stateless checks of a packet that has no connection: kCreated if it may
// start one (a SYN), else the drop reason (stray ACK/RST, SYN-ACK to nothing,
// bad flags).
FwReason tcp_check_new(const PacketMeta& m);

// Initialises `st` (kind, state SYN_SENT, the original side's window data)
// from a SYN that tcp_check_new() accepted. `st->flags` is left to the caller.
// Returns kCreated or kDropBadTcpOptions.
FwReason tcp_init(FwConnState* st, const uint8_t* frame, const PacketMeta& m);

// One packet of a tracked connection, travelling in `dir`. On a drop the
// record is unchanged. Sets *reopen (and changes nothing) when the packet is a
// SYN that starts a new connection over a TIME_WAIT/CLOSE one: the caller
// re-checks the ACL and re-initialises with tcp_init().
FwVerdict tcp_track(FwConnState& st, unsigned dir, const uint8_t* frame, const PacketMeta& m,
                    const FwTimeouts& timeouts, bool be_liberal, bool* reopen);

// van Rooij's four bounds on `g` (sent in `dir`) against the record, updating
// the window data when they hold (netfilter's tcp_in_window). Exposed for
// tests; tcp_track() calls it.
bool tcp_in_window(FwConnState& st, unsigned dir, const TcpSegment& g);

}  // namespace tripod
