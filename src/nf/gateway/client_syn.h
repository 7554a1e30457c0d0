// The client's SYN of a FullNAT connection, kept so that the gateway can send
// it again itself (gateway README, "A backend still holding the 4-tuple").
//
// Why: a backend keeps a closed connection's 4-tuple in TIME_WAIT for 60 s.
// When the gateway maps an unrelated client connection onto that SNAT port
// (after a restart, or on a node that took the flow over), the client's
// timestamps and ISN are unrelated to the old connection's, the backend's
// PAWS check fails about half the time, and it answers the SYN with a bare
// ACK of the old connection. The gateway then moves the flow to another SNAT
// port (rekey); without the SYN at hand the connection waits for the
// client's SYN retransmission, one second. With it, the SYN goes again at
// once from the new port and the handshake costs one more round trip.
//
// Not kept: ECN's ECE/CWR (ECN is then not negotiated), TCP Fast Open data
// and cookie (the data is retransmitted), MD5/AO signatures (such a SYN
// could not be rebuilt anyway).
//
// The fields live in the record's SynProxyState bytes, unused by a flow
// without the SYN proxy, until the backend answers: no extra state, and the
// bytes replicate as they are.
#pragma once

#include <cstdint>

#include "nf/synproxy/state.h"
#include "packet/packet_meta.h"

namespace tripod {

struct ClientSyn {
  uint32_t isn = 0;
  uint32_t tsval = 0;  // if timestamps
  uint16_t mss = 0;    // 0: the SYN had no MSS option
  uint16_t window = 0;
  uint8_t wscale = kNoWscale;
  uint8_t sends = 0;  // how often the gateway sent it again (bounded, see the stage)
  bool sack = false;
  bool timestamps = false;
};

// What a client's SYN (meta `m`, a parsed TCP segment with SYN set) carries.
// False if its options do not parse: nothing is kept then, and a collision
// waits for the client's retransmission as before.
bool read_client_syn(const uint8_t* frame, const PacketMeta& m, ClientSyn* out);

// Into and out of the record's SynProxyState (field by field: the record is
// replicated with explicit byte order, so the mapping must survive it).
void store_client_syn(const ClientSyn& s, SynProxyState* sp);
ClientSyn load_client_syn(const SynProxyState& sp);

// The SYN again, as an answer to the backend's segment `frame` (meta `m`,
// backend -> SNAT address): to the backend, from `saddr` (the family's
// length, network order) port `sport`, with the client's ISN, window and
// options. Returns the frame length, or 0 if `cap` is too small or `m` is
// not a TCP segment.
uint32_t write_client_syn(const ClientSyn& s, const uint8_t* frame, const PacketMeta& m,
                          const uint8_t* saddr, uint16_t sport, uint8_t* out, uint32_t cap);

}  // namespace tripod
