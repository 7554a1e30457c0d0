// Sequence-number translation for the life of a proxied connection. The
// client was given our cookie ISN (and our TSval); the backend chose its
// own. Each packet is rewritten in place with RFC 1624 checksum updates:
//
//   backend -> client: seq += seq_delta; TSval += ts_delta; window rescaled
//                      if the backend's shift differs from the advertised one
//   client -> backend: ack -= seq_delta (if ACK); SACK blocks -= seq_delta;
//                      TSecr -= ts_delta (if ACK)
//
// Pure functions of the state: no allocation, no lock, no exception. meta's
// tcp_seq / tcp_ack / tcp_window follow the rewrite. A drop (bad options,
// not a TCP segment) leaves the frame untouched. Options at any alignment
// are handled (a field at an odd offset is updated byte-swapped).
//
// Before the backend's SYN-ACK (state not open): client -> backend is
// kDropNotOpen (the client's window is zero, so that is only a duplicate
// ACK); backend -> client is kDropNotOpen too, except a RST (the backend
// refused the connection), whose seq becomes our ISN + 1 so that the client
// accepts it (RFC 5961 3.2: an exact match resets).
#pragma once

#include <cstdint>

#include "nf/synproxy/state.h"
#include "packet/packet_meta.h"

namespace tripod {

SynProxyCounter synproxy_to_client(const SynProxyState& st, uint8_t* frame, PacketMeta& meta);
SynProxyCounter synproxy_to_backend(const SynProxyState& st, uint8_t* frame, PacketMeta& meta);

}  // namespace tripod
