// The replicated form of one connection (issue 5; src/cluster/README.md):
// what a flow's processor sends to the flow's holders, and how it travels
// as bytes. Three record types, each of fixed size on the wire:
//
//   full    write-once state (backend, SNAT endpoint, SYN-proxy deltas) and
//           the mutable part; sent when a holder first needs the flow
//   update  the mutable part only: TCP state, DSR's FIN/RST, SYN-proxy flags,
//           time left before expiry
//   delete  the identity only: the processor closed the flow
//
// and three that move a flow to the node the router now sends it to (a
// miss there pulls the state instead of handing every packet over):
//
//   pull    the identity as the packet that missed carries it: "do you
//           have this flow?"; sent to the slot's holder
//   grant   the holder's copy, in full: the asker processes the flow now
//   refer   the answer otherwise: the node that processes the flow (alive),
//           or 0: no one has it
//
// The firewall's sequence windows are never sent: they change with every
// segment, and a promoted flow re-learns them from its first packet in each
// direction (netfilter's pickup of a conntrackd-injected entry: td_maxwin 0).
// Everything is explicit network byte order; decode() validates every enum
// and range, so a hostile record is an error, never a bad record in the table.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "common/counters.h"
#include "nf/firewall/fw_state.h"
#include "nf/nat/port_alloc.h"
#include "nf/synproxy/state.h"
#include "packet/flow_key.h"
#include "packet/packet_meta.h"

namespace tripod {

// Flow slots: either direction of a flow names its slot (the client key's
// hash; FullNAT ports come from partition `slot`, port_alloc.h).
inline constexpr uint32_t kSlots = 256;
inline constexpr uint16_t kMaxClusterNodes = 64;  // node ids 1..64: a live set is one uint64
inline constexpr uint32_t kViewHolders = 4;

// What the data plane reads of the cluster, filled by the cluster agent from
// its membership and ring (current epoch, and the previous one while flows
// migrate). Plain data: the worker copies it between bursts.
struct ClusterView {
  uint64_t live = 0;     // bit (node - 1): the node runs (holds copies, takes redirects)
  uint64_t joining = 0;  // of those, still taking in its copies: not yet ready for traffic
  uint64_t suspect = 0;  // declared dead less than dead_after ago: copies wait to take over
  uint32_t gen = 0;      // the holders' generation: changes with `holders` (FlowLink)
  uint8_t mac[kMaxClusterNodes + 1][6] = {};        // by node id: its data-plane MAC (redirects)
  uint8_t holders[kSlots][kViewHolders] = {};       // node ids in ring order; 0: none
  uint8_t prev_holders[kSlots][kViewHolders] = {};  // the previous epoch's
};

// A flow's slot from any of its keys (it is the canonical key's hash, so
// both directions name it), under the cluster-wide slot key.
inline uint32_t flow_slot_canonical(const FlowKey& canonical, const SipKey& slot_key) {
  return static_cast<uint32_t>(hash_flow_key(canonical, slot_key) % kSlots);
}
inline uint32_t flow_slot(const FlowKey& k, const SipKey& slot_key) {
  return flow_slot_canonical(canonical_key(k), slot_key);
}

// How a packet names its flow's slot from its bytes alone: a FullNAT reply
// by its destination port (the SNAT port came from partition `slot`,
// port_alloc.h), anything else by its key. The same on every node and
// every worker: the cluster picks a flow's holders by it, and the workers
// of a node split the flows by it (slot % workers).
struct SlotLayout {
  SipKey slot_key{7, 8};
  // Every SNAT address whose ports name slots, with its pool's port range:
  // this node's FullNAT and egress pools and, in a cluster, every node's
  // FullNAT and egress addresses.
  struct Snat {
    SnatAddress addr;
    uint16_t lo = 1024;
    uint16_t hi = 65535;
  };
  std::vector<Snat> snat;

  const Snat* find(Family f, const uint8_t* addr) const {
    const size_t len = f == Family::kIpv6 ? 16 : 4;
    for (const Snat& s : snat)
      if (s.addr.family == f && std::memcmp(s.addr.addr, addr, len) == 0) return &s;
    return nullptr;
  }
  // Whether dst:dport could be a translated flow's SNAT port.
  bool is_snat_port(Family f, const uint8_t* dst, uint16_t dport) const {
    const Snat* s = find(f, dst);
    return s != nullptr && dport >= s->lo && dport <= s->hi;
  }
  // The slot of a packet to dst:dport whose flow's canonical key is `canonical`.
  uint32_t slot(const FlowKey& canonical, Family f, const uint8_t* dst, uint16_t dport) const {
    if (const Snat* s = find(f, dst); s != nullptr && dport >= s->lo && dport <= s->hi)
      return static_cast<uint32_t>(dport - s->lo) % kSlots;
    return flow_slot_canonical(canonical, slot_key);
  }
};

enum class FlowSyncOp : uint8_t {
  kFull = 1,
  kUpdate = 2,
  kDelete = 3,
  kPull = 4,
  kGrant = 5,
  kRefer = 6,
};

// FlowSync::kind
inline constexpr uint8_t kSyncNat = 1u << 0;       // FullNAT to a VIP
inline constexpr uint8_t kSyncDsr = 1u << 1;       // DSR to a VIP
inline constexpr uint8_t kSyncSynProxy = 1u << 2;  // with kSyncNat
// With kSyncNat alone: egress SNAT. dst is the outside host (no VIP), dip
// the same host (an echo's translated id as its port), snat an egress address.
inline constexpr uint8_t kSyncEgress = 1u << 3;
inline constexpr uint8_t kSyncKinds = kSyncNat | kSyncDsr | kSyncSynProxy | kSyncEgress;

struct FlowSync {
  FlowSyncOp op = FlowSyncOp::kFull;
  Family family = Family::kNone;
  uint8_t proto = 0;
  uint8_t kind = 0;  // kSync*; 0: a firewall-only flow (one canonical key)
  // The node that processes the flow; pull, grant and refer: the sender.
  uint16_t processor = 0;
  uint8_t seen = 0;  // DSR: kSeenFin | kSeenRst (gateway_stage.h)
  // Identity. NAT / DSR: the client -> VIP direction; egress: the inside
  // host -> the outside host. Firewall-only: the canonical key's a -> b.
  uint8_t src_addr[16] = {};
  uint8_t dst_addr[16] = {};
  uint16_t src_port = 0;
  uint16_t dst_port = 0;
  // update and full
  uint32_t remaining_ms = 0;  // until the processor's deadline, at export
  FwConnState fw{};           // peer[] (the windows) is not carried: zero
  SynProxyState sp{};
  // full only
  uint8_t dip_addr[16] = {};
  uint8_t snat_addr[16] = {};
  uint16_t dip_port = 0;
  uint16_t snat_port = 0;
  // refer only: the node that processes the flow, 0: no one has it
  uint16_t node = 0;
  // Not on the wire: the other node of a pull, grant or refer (where it
  // goes; where it came from). The agent routes these by it, not by slot.
  uint16_t peer = 0;
};

// Record type numbers (the cluster transport's registry) and sizes.
inline constexpr uint8_t kRecordFlowFull = 1;
inline constexpr uint8_t kRecordFlowUpdate = 2;
inline constexpr uint8_t kRecordFlowDelete = 3;
inline constexpr uint8_t kRecordFlowPull = 4;
inline constexpr uint8_t kRecordFlowGrant = 5;
inline constexpr uint8_t kRecordFlowRefer = 6;
inline constexpr size_t kFlowDeleteSize = 44;
inline constexpr size_t kFlowUpdateSize = kFlowDeleteSize + 4 + 16 + 16;
inline constexpr size_t kFlowFullSize = kFlowUpdateSize + 36;
inline constexpr size_t kFlowPullSize = kFlowDeleteSize;
inline constexpr size_t kFlowGrantSize = kFlowFullSize;
inline constexpr size_t kFlowReferSize = kFlowDeleteSize + 4;
inline constexpr size_t kFlowMaxSize = kFlowFullSize;

constexpr uint8_t record_type(FlowSyncOp op) {
  return static_cast<uint8_t>(op);
}
constexpr size_t record_size(FlowSyncOp op) {
  switch (op) {
    case FlowSyncOp::kFull:
    case FlowSyncOp::kGrant:
      return kFlowFullSize;
    case FlowSyncOp::kUpdate:
      return kFlowUpdateSize;
    case FlowSyncOp::kRefer:
      return kFlowReferSize;
    case FlowSyncOp::kDelete:
    case FlowSyncOp::kPull:
      break;
  }
  return kFlowDeleteSize;
}
// Whether a record is a pull or its answer (to one node, not the holders).
constexpr bool is_pull_op(FlowSyncOp op) {
  return op == FlowSyncOp::kPull || op == FlowSyncOp::kGrant || op == FlowSyncOp::kRefer;
}

#define TRIPOD_FLOW_SYNC_ERRORS(X)                                     \
  X(kOk, "ok")                                                         \
  X(kBadSize, "bad_size") /* length is not the type's size */          \
  X(kBadOp, "bad_op")     /* op byte != record type */                 \
  X(kBadFamily, "bad_family")                                          \
  X(kBadKind, "bad_kind")         /* unknown bits, DSR with NAT ... */ \
  X(kBadFwState, "bad_fw_state")  /* firewall kind / state / scale */  \
  X(kBadSynProxy, "bad_synproxy") /* unknown flags */                  \
  X(kBadAddress, "bad_address")   /* IPv4 with bytes beyond the 4th */ \
  X(kBadNode, "bad_node")         /* refer: beyond kMaxClusterNodes */

TRIPOD_DECLARE_REASONS(FlowSyncError, TRIPOD_FLOW_SYNC_ERRORS)

// The slot of the flow a record is about.
// The key a record names its flow by (directional: src -> dst as carried).
inline FlowKey sync_key(const FlowSync& s) {
  return make_flow_key(s.family, s.proto, s.src_addr, s.dst_addr, s.src_port, s.dst_port, false);
}
inline uint32_t flow_slot(const FlowSync& s, const SipKey& slot_key) {
  return flow_slot(sync_key(s), slot_key);
}
// The slot a record's flow is in under a layout: a pull (or its answer) for
// a FullNAT reply names it as the reply packet did, by the SNAT port.
inline uint32_t record_slot(const FlowSync& s, const SlotLayout& l) {
  return l.slot(canonical_key(sync_key(s)), s.family, s.dst_addr, s.dst_port);
}

// Writes record_size(s.op) bytes to `out`.
void encode_flow_sync(const FlowSync& s, uint8_t* out);
// Reads a record of `type` (kRecordFlow*) and `len` bytes.
FlowSyncError decode_flow_sync(uint8_t type, const uint8_t* in, size_t len, FlowSync* out);

}  // namespace tripod
