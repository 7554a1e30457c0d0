// Decoder of rtnetlink messages (links, addresses, routes, neighbours) into
// plain records. Pure: no socket, no state; the netns tests feed it the
// kernel's bytes and the fuzz target feeds it anything.
//
// Contract: every read is bounded by the message and buffer lengths (libmnl
// checks attribute headers; this file checks payload sizes); a malformed
// message returns a DecodeError and is skipped by the caller, never
// half-applied. Netlink is host byte order, except addresses (network order,
// copied as bytes).
#pragma once

#include <linux/netlink.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "common/counters.h"
#include "route/next_hop_table.h"

namespace tripod::route {

#define TRIPOD_RTNL_DECODE_ERRORS(X)         \
  X(kOk, "ok")                               \
  X(kTruncatedHeader, "truncated_header")    \
  X(kTruncatedPayload, "truncated_payload")  \
  X(kBadAttribute, "bad_attribute")          \
  X(kBadAddressLength, "bad_address_length") \
  X(kBadMultipath, "bad_multipath")          \
  X(kBadPrefixLength, "bad_prefix_length")

TRIPOD_DECLARE_REASONS(DecodeError, TRIPOD_RTNL_DECODE_ERRORS)

enum class MsgKind : uint8_t {
  kIgnored = 0,  // well-formed, but nothing this module uses (other family, type, ...)
  kLink,
  kAddr,
  kRoute,
  kNeigh,
  kDone,   // NLMSG_DONE: end of a dump
  kError,  // NLMSG_ERROR: `error` is 0 (ACK) or -errno
};

struct LinkMsg {
  bool del = false;
  uint32_t flags = 0;  // IFF_*
  LinkInfo info;
};

struct AddrMsg {
  bool del = false;
  uint32_t ifindex = 0;
  uint8_t prefixlen = 0;
  Addr addr;
};

struct RouteMsg {
  bool del = false;
  bool multipath = false;  // carried RTA_MULTIPATH
  bool has_nh_id = false;  // refers to a nexthop object (RTA_NH_ID)
  uint8_t protocol = 0;    // RTPROT_*
  uint8_t scope = 0;
  uint32_t rtm_flags = 0;  // RTM_F_* / RTNH_F_* of a single-path route
  RouteInfo info;
};

struct NeighMsg {
  bool del = false;
  NeighInfo info;
};

struct DecodedMsg {
  MsgKind kind = MsgKind::kIgnored;
  uint16_t nl_type = 0;
  uint16_t nl_flags = 0;  // NLM_F_* (NLM_F_MULTI, NLM_F_DUMP_INTR, NLM_F_REPLACE, NLM_F_APPEND...)
  uint32_t seq = 0;
  uint32_t portid = 0;
  int error = 0;  // kError only
  LinkMsg link;
  AddrMsg addr;
  RouteMsg route;
  NeighMsg neigh;
};

// Decodes one message whose header is at `nlh`, `avail` bytes of buffer
// being readable from it. On an error, `out->kind` is kIgnored.
DecodeError decode_message(const uint8_t* nlh, size_t avail, DecodedMsg* out);

// Walks the messages of one datagram. `fn(const DecodedMsg&, DecodeError)` is
// called for each message; returns false if the framing itself is broken
// (a header longer than the rest of the buffer), after which the rest is
// skipped.
inline constexpr size_t kNlHdrLen = 16;  // NLMSG_HDRLEN, without the macro's C cast
inline constexpr size_t nl_align(size_t n) {
  return (n + 3) & ~size_t{3};
}

template <typename Fn>
bool for_each_message(const uint8_t* buf, size_t len, Fn&& fn) {
  size_t off = 0;
  while (len - off >= kNlHdrLen) {
    uint32_t msg_len;
    std::memcpy(&msg_len, buf + off, sizeof msg_len);
    if (msg_len < kNlHdrLen || msg_len > len - off) return false;
    DecodedMsg m;
    const DecodeError e = decode_message(buf + off, len - off, &m);
    fn(static_cast<const DecodedMsg&>(m), e);
    const size_t step = nl_align(msg_len);
    if (step >= len - off) return true;
    off += step;
  }
  return off == len;
}

}  // namespace tripod::route
