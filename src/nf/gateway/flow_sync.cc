#include "nf/gateway/flow_sync.h"

#include <cstring>

#include "common/byte_order.h"

namespace tripod {
namespace {

// Layout, offsets in bytes:
//   0 op, 1 family, 2 proto, 3 kind, 4 processor (2), 6 seen, 7 reserved,
//   8 src addr (16), 24 dst addr (16), 40 src port, 42 dst port   [delete: 44]
//   44 remaining_ms (4), 48 fw (16), 64 sp (16)                   [update: 80]
//   80 dip addr (16), 96 snat addr (16), 112 dip port, 114 snat port [full: 116]
// pull: as delete; grant: as full; refer: delete, then 44 node (2), 46 zero (2)
constexpr size_t kOffRemaining = 44;
constexpr size_t kOffFw = 48;
constexpr size_t kOffSp = 64;
constexpr size_t kOffDip = 80;
constexpr size_t kOffNode = 44;
static_assert(kFlowDeleteSize == 44 && kFlowUpdateSize == 80 && kFlowFullSize == 116 &&
              kFlowReferSize == 48);

// What a record type carries beyond the identity.
bool has_mutable(FlowSyncOp op) {
  return op == FlowSyncOp::kFull || op == FlowSyncOp::kUpdate || op == FlowSyncOp::kGrant;
}
bool has_write_once(FlowSyncOp op) {
  return op == FlowSyncOp::kFull || op == FlowSyncOp::kGrant;
}

// The firewall record without its windows: 16 bytes.
void put_fw(const FwConnState& f, uint8_t* p) {
  store_be<uint32_t>(p, f.last_end);
  store_be<uint16_t>(p + 4, f.last_win);
  p[6] = static_cast<uint8_t>(f.kind);
  p[7] = f.state;
  p[8] = f.scale[0];
  p[9] = f.scale[1];
  p[10] = f.peer_flags[0];
  p[11] = f.peer_flags[1];
  p[12] = f.last;
  p[13] = f.last_syn_opts;
  p[14] = f.flags;
  p[15] = 0;
}

void get_fw(const uint8_t* p, FwConnState* f) {
  *f = FwConnState{};
  f->last_end = load_be<uint32_t>(p);
  f->last_win = load_be<uint16_t>(p + 4);
  f->kind = static_cast<FwKind>(p[6]);
  f->state = p[7];
  f->scale[0] = p[8];
  f->scale[1] = p[9];
  f->peer_flags[0] = p[10];
  f->peer_flags[1] = p[11];
  f->last = p[12];
  f->last_syn_opts = p[13];
  f->flags = p[14];
}

void put_sp(const SynProxyState& s, uint8_t* p) {
  store_be<uint32_t>(p, s.seq_delta);
  store_be<uint32_t>(p + 4, s.ts_delta);
  store_be<uint32_t>(p + 8, s.client_isn);
  store_be<uint16_t>(p + 12, s.client_window);
  p[14] = s.flags;
  p[15] = s.wscales;
}

void get_sp(const uint8_t* p, SynProxyState* s) {
  s->seq_delta = load_be<uint32_t>(p);
  s->ts_delta = load_be<uint32_t>(p + 4);
  s->client_isn = load_be<uint32_t>(p + 8);
  s->client_window = load_be<uint16_t>(p + 12);
  s->flags = p[14];
  s->wscales = p[15];
}

bool valid_fw(const FwConnState& f) {
  switch (f.kind) {
    case FwKind::kNone:
      return f.state == 0;
    case FwKind::kTcp:
      return f.state < static_cast<uint8_t>(TcpState::kCount) && f.scale[0] <= 14 &&
             f.scale[1] <= 14;
    case FwKind::kUdp:
    case FwKind::kIcmpEcho:
    case FwKind::kGeneric:
      return f.state <= static_cast<uint8_t>(FwPseudoState::kReplied);
  }
  return false;
}

constexpr uint8_t kSpKnownFlags =
    kSpOpen | kSpTimestamps | kSpSack | kSpRescaleWindow | kSpAckRequests;

// IPv4 addresses live in the first 4 bytes; the rest must be zero so that
// keys built from them compare equal on every node.
bool clean_v4(const uint8_t* a) {
  for (int i = 4; i < 16; ++i)
    if (a[i] != 0) return false;
  return true;
}

}  // namespace

void encode_flow_sync(const FlowSync& s, uint8_t* out) {
  std::memset(out, 0, record_size(s.op));
  out[0] = static_cast<uint8_t>(s.op);
  out[1] = static_cast<uint8_t>(s.family);
  out[2] = s.proto;
  out[3] = s.kind;
  store_be<uint16_t>(out + 4, s.processor);
  out[6] = s.seen;
  std::memcpy(out + 8, s.src_addr, 16);
  std::memcpy(out + 24, s.dst_addr, 16);
  store_be<uint16_t>(out + 40, s.src_port);
  store_be<uint16_t>(out + 42, s.dst_port);
  if (s.op == FlowSyncOp::kRefer) store_be<uint16_t>(out + kOffNode, s.node);
  if (!has_mutable(s.op)) return;
  store_be<uint32_t>(out + kOffRemaining, s.remaining_ms);
  put_fw(s.fw, out + kOffFw);
  put_sp(s.sp, out + kOffSp);
  if (!has_write_once(s.op)) return;
  std::memcpy(out + kOffDip, s.dip_addr, 16);
  std::memcpy(out + kOffDip + 16, s.snat_addr, 16);
  store_be<uint16_t>(out + kOffDip + 32, s.dip_port);
  store_be<uint16_t>(out + kOffDip + 34, s.snat_port);
}

FlowSyncError decode_flow_sync(uint8_t type, const uint8_t* in, size_t len, FlowSync* out) {
  if (type < kRecordFlowFull || type > kRecordFlowRefer) return FlowSyncError::kBadOp;
  const auto op = static_cast<FlowSyncOp>(type);
  if (len != record_size(op)) return FlowSyncError::kBadSize;
  if (in[0] != type) return FlowSyncError::kBadOp;
  FlowSync s;
  s.op = op;
  s.family = static_cast<Family>(in[1]);
  if (s.family != Family::kIpv4 && s.family != Family::kIpv6) return FlowSyncError::kBadFamily;
  s.proto = in[2];
  s.kind = in[3];
  if ((s.kind & ~kSyncKinds) != 0 || ((s.kind & kSyncNat) && (s.kind & kSyncDsr)) ||
      ((s.kind & kSyncSynProxy) && !(s.kind & kSyncNat)) ||
      ((s.kind & kSyncEgress) && s.kind != (kSyncNat | kSyncEgress)))
    return FlowSyncError::kBadKind;
  s.processor = load_be<uint16_t>(in + 4);
  s.seen = in[6];
  std::memcpy(s.src_addr, in + 8, 16);
  std::memcpy(s.dst_addr, in + 24, 16);
  s.src_port = load_be<uint16_t>(in + 40);
  s.dst_port = load_be<uint16_t>(in + 42);
  const bool v4 = s.family == Family::kIpv4;
  if (v4 && (!clean_v4(s.src_addr) || !clean_v4(s.dst_addr))) return FlowSyncError::kBadAddress;
  if (op == FlowSyncOp::kRefer) {
    s.node = load_be<uint16_t>(in + kOffNode);
    if (s.node > kMaxClusterNodes || load_be<uint16_t>(in + kOffNode + 2) != 0)
      return FlowSyncError::kBadNode;
  }
  if (has_mutable(op)) {
    s.remaining_ms = load_be<uint32_t>(in + kOffRemaining);
    get_fw(in + kOffFw, &s.fw);
    if (!valid_fw(s.fw)) return FlowSyncError::kBadFwState;
    get_sp(in + kOffSp, &s.sp);
    // (Window shifts: every nibble is a shift <= 14 or kNoWscale.)
    if ((s.sp.flags & ~kSpKnownFlags) != 0) return FlowSyncError::kBadSynProxy;
  }
  if (has_write_once(op)) {
    std::memcpy(s.dip_addr, in + kOffDip, 16);
    std::memcpy(s.snat_addr, in + kOffDip + 16, 16);
    s.dip_port = load_be<uint16_t>(in + kOffDip + 32);
    s.snat_port = load_be<uint16_t>(in + kOffDip + 34);
    if (v4 && (!clean_v4(s.dip_addr) || !clean_v4(s.snat_addr))) return FlowSyncError::kBadAddress;
  }
  *out = s;
  return FlowSyncError::kOk;
}

}  // namespace tripod
