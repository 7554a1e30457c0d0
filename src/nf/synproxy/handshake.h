// SYN proxy handshakes: the client's (answered statelessly with a cookie)
// and the backend's (opened with the client's options once the cookie
// checks). Design note and sequence diagram: README.md.
//
// The stage's calls, per packet of a VIP with the proxy enabled:
//   client SYN, no state      -> answer_syn: transmit the SYN-ACK, keep nothing
//   client ACK, no state      -> check_ack; if kCookieValid: insert
//                                synproxy_begin(...) in the table and send
//                                build_backend_syn(...) on toward the backend
//   backend SYN-ACK, state    -> synproxy_backend_synack (computes the deltas);
//                                send build_backend_ack(...) to the backend and
//                                build_client_window_update(...) to the client
//   anything else, state      -> synproxy_to_client / synproxy_to_backend
//                                (translate.h)
//
// Contract
// - No allocation, no exception, no lock. Frames are written into the
//   caller's buffer (`out`, `cap` bytes, not overlapping the input); a
//   buffer too small is kDropNoRoom. Inputs are frames the parser accepted
//   with the meta it produced; the functions check everything else
//   themselves (flags, fragments, options), so any such frame is safe.
// - Built frames are "as this stage outputs them": the SYN-ACK is a reply
//   (MACs, addresses and ports swapped); the backend SYN keeps the client's
//   addresses (the LB / NAT stages after this one pick and rewrite the
//   destination); the backend ACK replies to the backend's SYN-ACK; the
//   client window update goes the SYN-ACK's way, already translated.
// - L4 checksums of inputs are not verified here (the parse stage or the
//   NIC does); outputs carry correct IPv4 and TCP checksums.
#pragma once

#include <cstdint>

#include "common/siphash.h"
#include "nf/synproxy/cookie.h"
#include "nf/synproxy/state.h"
#include "packet/packet_meta.h"

namespace tripod {

// A frame the proxy wrote, with the meta the parser would give it (so the
// following stages need not parse it again).
struct BuiltFrame {
  uint32_t len = 0;
  PacketMeta meta;
};

// What a valid cookie ACK tells the stage.
struct CookieAck {
  uint32_t client_isn = 0;     // ACK.seq - 1
  uint32_t cookie_isn = 0;     // ACK.ack_seq - 1: our ISN toward the client
  uint32_t client_tsval = 0;   // the ACK's TSval (opts.timestamps)
  uint32_t synack_tsval = 0;   // the ACK's TSecr: the TSval we sent (opts.timestamps)
  uint16_t mss = 0;            // the client's MSS, rounded down to the cookie table
  uint16_t client_window = 0;  // the ACK's window field (scaled by opts.wscale)
  uint16_t payload_len = 0;    // data on the ACK: not forwarded (see README)
  CookieOptions opts;
};

// One per worker: the cookie keys and the counters. Not thread-safe.
class SynProxy {
 public:
  SynProxy(const SipKey& master, const CookieConfig& cfg, uint64_t now_ns);

  // Once per burst, with the burst's time: time-based key rotation.
  void advance(uint64_t now_ns);
  // On demand (control plane, through the worker's ring).
  void rotate_keys();
  void rotate_keys(const SipKey& new_master);

  // Client SYN -> SYN-ACK with a cookie in `out`: kSynCookieSent, or a drop.
  // No state is created whatever the outcome.
  SynProxyCounter answer_syn(const uint8_t* frame, const PacketMeta& meta, const SynProxyVip& vip,
                             uint64_t now_ns, uint8_t* out, uint32_t cap, uint32_t* out_len) const;

  // Client ACK without state -> kCookieValid with *out filled, or a drop
  // (kDropBadCookie, kDropCookieExpired, kDropAck*).
  SynProxyCounter check_ack(const uint8_t* frame, const PacketMeta& meta, uint64_t now_ns,
                            CookieAck* out) const;

  void count(SynProxyCounter e) { counters_.inc(e); }
  const SynProxyCounters& counters() const { return counters_; }
  const CookieKeyring& keys() const { return keys_; }

 private:
  CookieKeyring keys_;
  SynProxyCounters counters_;
};

// The connection's record, from a valid cookie ACK. `vip` must be the
// options the SYN-ACK was sent with (the advertised window shift).
SynProxyState synproxy_begin(const CookieAck& ack, const SynProxyVip& vip);

// The SYN to the backend, from the client's ACK: seq = client ISN, MSS /
// window scale / SACK-permitted / timestamps (TSval = the client's current
// one) as the cookie carried, ECE|CWR if ECN was agreed.
SynProxyCounter build_backend_syn(const uint8_t* ack_frame, const PacketMeta& ack_meta,
                                  const CookieAck& ack, uint8_t* out, uint32_t cap,
                                  BuiltFrame* built);

// The backend's SYN-ACK: checks it answers our SYN (ack == client ISN + 1)
// and completes the state (kSpOpen, seq/ts deltas, backend window shift).
// kBackendOpen, kBackendSynAckRetransmit (already open: state unchanged,
// send the ACK again), or a drop. The SYN-ACK itself is not forwarded.
SynProxyCounter synproxy_backend_synack(SynProxyState* st, const uint8_t* frame,
                                        const PacketMeta& meta);

// Our ACK to the backend's SYN-ACK (the client's handshake ACK, on its
// behalf): seq = client ISN + 1, ack = backend ISN + 1, the client's window,
// timestamps echoed. Needs the state open.
SynProxyCounter build_backend_ack(const SynProxyState& st, const uint8_t* synack,
                                  const PacketMeta& synack_meta, uint8_t* out, uint32_t cap,
                                  BuiltFrame* built);

// Asks the client for its ACK again, before the backend is open (the state
// not open): an ACK to the client one below what it expects (seq = our ISN),
// window zero, our SYN-ACK's TSval. Out of its window, it makes the client
// answer at once with a duplicate ACK (RFC 9293 3.10.7.4), which carries the
// cookie again: the stage then rebuilds the backend SYN from it
// (build_backend_syn), as from a zero-window probe, without waiting for the
// client's persist timer. Built from a backend segment `frame` of the
// connection (backend -> SNAT), in the backend's address space: the caller
// translates it toward the client. (Linux rate-limits such answers to one per
// 500 ms per socket, tcp_invalid_ratelimit: the probe stays the fallback.)
SynProxyCounter build_client_ack_request(const SynProxyState& st, const uint8_t* frame,
                                         const PacketMeta& meta, uint8_t* out, uint32_t cap,
                                         BuiltFrame* built);

// An ACK to the client carrying the backend's window: our SYN-ACK offered a
// zero window so that the client sends nothing before the backend is open;
// this opens it. Built from the backend's SYN-ACK and translated.
SynProxyCounter build_client_window_update(const SynProxyState& st, const uint8_t* synack,
                                           const PacketMeta& synack_meta, uint8_t* out,
                                           uint32_t cap, BuiltFrame* built);

}  // namespace tripod
