#include "nf/gateway/gateway_stage.h"

#include <cstring>
#include <stdexcept>
#include <string>

#include "nf/nat/rewrite.h"
#include "nf/synproxy/translate.h"
#include "packet/parser.h"

namespace tripod {
namespace {

// The key of the opposite direction (no canonical ordering).
FlowKey swapped(const FlowKey& k) {
  FlowKey r = k;
  r.port_a = k.port_b;
  r.port_b = k.port_a;
  const size_t len = k.family == Family::kIpv6 ? 16 : 4;
  std::memcpy(r.addr, k.addr_b(), len);
  std::memcpy(r.addr + len, k.addr_a(), len);
  return r;
}

// The directional key of a packet from its canonical key: the parse stage
// already built the canonical one, so no second pass over the headers.
FlowKey directional(const FlowKey& canonical, bool reversed) {
  return reversed ? swapped(canonical) : canonical;
}

constexpr uint32_t kScratch = 512;  // handshake frames the SYN proxy builds

// Validates the connection count before anything is allocated for it.
ConnTableConfig table_config(const GatewayConfig& cfg) {
  constexpr uint32_t kMax = GatewayStage::Table::kMaxCapacity / 2;
  if (cfg.max_connections == 0 || cfg.max_connections > kMax)
    throw std::invalid_argument("gateway: max_connections must be in [1, " + std::to_string(kMax) +
                                "]");
  return ConnTableConfig{.capacity = 2 * cfg.max_connections, .huge_pages = cfg.huge_pages};
}

}  // namespace

GatewayStage::GatewayStage(const GatewayConfig& cfg, uint64_t now_ns)
    : fw_(cfg.firewall),
      snat_(cfg.snat),
      proxy_(cfg.synproxy_master, cfg.cookies, now_ns),
      table_(table_config(cfg)),
      capacity_(cfg.max_connections),
      records_(cfg.max_connections, cfg.huge_pages, true),
      free_list_(cfg.max_connections, cfg.huge_pages, false),
      non_vip_dir_(cfg.non_vip_dir),
      hash_key_(cfg.table_hash_key),
      lb_hash_key_(cfg.lb_hash_key) {
  for (const auto& v : cfg.vips) {
    const VipId id = lb_.add_vip(v.key);
    lb_.commit(id, lb_.prepare(id, v.pool));
    if (vip_cfg_.size() <= id) vip_cfg_.resize(size_t{id} + 1);
    vip_cfg_[id] = v;
    vip_cfg_[id].pool.backends.clear();  // the LB owns the pool
  }
  for (uint32_t i = 0; i < capacity_; ++i)
    free_list_[i] = capacity_ - 1 - i;
  free_top_ = capacity_;
}

FlowKey GatewayStage::original_key(const ConnRecord& r) const {
  return make_flow_key(r.family, r.proto, r.client_addr, r.vip_addr, r.client_port, r.vip_port,
                       false);
}

FlowKey GatewayStage::reply_key(const ConnRecord& r) const {
  return make_flow_key(r.family, r.proto, r.dip_addr, snat_.address(r.lease.address).addr,
                       r.dip_port, r.lease.port, false);
}

uint32_t GatewayStage::alloc_record() {
  if (free_top_ == 0) return UINT32_MAX;
  const uint32_t idx = free_list_[--free_top_];
  records_[idx] = ConnRecord{};
  return idx;
}

void GatewayStage::free_record(uint32_t idx) {
  ConnRecord& r = records_[idx];
  if (r.flags & kRecNat) {
    snat_.free(r.lease);
    lb_.conn_closed(r.lb.vip, r.lb.version);
  }
  r.flags = 0;
  free_list_[free_top_++] = idx;
  --live_;
  counters_.inc(GatewayCounter::kConnsFreed);
}

GatewayStage::Tick GatewayStage::on_expire(Tick now, const FlowKey& key, ConnLink& link) {
  (void)key;
  // "Do not keep": a tick long before any firing tick of this advance (the
  // table keeps the entry if the answer is later than the tick it fired at).
  const Tick free_it = now - (1u << 30);
  ConnRecord& r = records_[link.record];
  if (!(r.flags & kRecLive)) return free_it;  // not reached: a record dies with its keys
  if (static_cast<int32_t>(r.deadline - now) > 0) {
    counters_.inc(GatewayCounter::kKeysRearmed);
    return r.deadline;
  }
  if (r.flags & kRecNat) {
    const FlowKey partner = link.direction == kLinkOriginal ? reply_key(r) : original_key(r);
    table_.erase(partner, hash(partner));
  }
  free_record(link.record);
  return free_it;
}

void GatewayStage::advance_to(uint64_t now_ns) {
  const Tick now = to_ticks(now_ns);
  table_.advance(now,
                 [&](uint32_t, const FlowKey& k, ConnLink& l) { return on_expire(now, k, l); });
}

void GatewayStage::maybe_clamp(uint8_t* frame, const PacketMeta& m, const ConnRecord& r) {
  if (m.proto != kProtoTcp || (m.tcp_flags & kTcpSyn) == 0 || !(r.flags & kRecNat)) return;
  const uint16_t mss = vip_cfg_[r.lb.vip].mss_clamp;
  if (mss != 0 && clamp_mss(frame, m, mss)) counters_.inc(GatewayCounter::kMssClamped);
}

bool GatewayStage::nat_forward(uint8_t* frame, PacketMeta& m, const ConnRecord& r, uint8_t dir) {
  NatResult a, c;
  if (dir == kLinkOriginal) {
    a = nat_rewrite(frame, m, NatSide::kSource, snat_.address(r.lease.address).addr, r.lease.port);
    c = nat_rewrite(frame, m, NatSide::kDestination, r.dip_addr, r.dip_port);
  } else {
    a = nat_rewrite(frame, m, NatSide::kSource, r.vip_addr, r.vip_port);
    c = nat_rewrite(frame, m, NatSide::kDestination, r.client_addr, r.client_port);
  }
  if (a != NatResult::kOk || c != NatResult::kOk) return drop(GatewayCounter::kDropNatUnsupported);
  return true;
}

bool GatewayStage::on_hit(Burst& b, uint32_t i, Table::Ref ref, Tick now) {
  counters_.inc(GatewayCounter::kHits);
  const ConnLink link = table_.value(ref.idx);
  ConnRecord& r = records_[link.record];
  uint8_t* frame = b.pkts[i].data;
  PacketMeta& m = b.meta[i];
  // The record's deadline is the truth; a key's deadline is only a lower
  // bound (its expiry re-arms it from the record), so it is touched only
  // when the connection's deadline moves earlier. Extending it on every
  // packet would cost a random access to the timer wheel.
  auto refresh = [&](const FwVerdict& v) {
    if (v.timeout_s == 0) return;
    r.deadline = now + timeout_ticks(v.timeout_s);
    if (static_cast<int32_t>(r.deadline - table_.deadline(ref)) < 0)
      table_.set_deadline(ref, r.deadline);
  };

  if (link.direction == kLinkCanonical) {
    const FwVerdict v = fw_.track(r.fw, frame, m, b.reversed[i]);
    if (!v.accepted()) return drop(GatewayCounter::kDropFirewall);
    refresh(v);
    return true;
  }

  const uint8_t dir = link.direction;
  if (lb_.is_killed(r.lb.vip, r.lb.version, r.lb.backend))
    return drop(GatewayCounter::kDropBackendKilled);
  const bool sp = (r.flags & kRecSynProxy) != 0;

  // The backend's SYN-ACK to our SYN: answer it with the client's ACK.
  if (sp && dir == kLinkReply && !r.sp.open() &&
      (m.tcp_flags & (kTcpSyn | kTcpAck)) == (kTcpSyn | kTcpAck)) {
    const FwVerdict v = fw_.track(r.fw, frame, m, true);
    if (!v.accepted()) return drop(GatewayCounter::kDropFirewall);
    refresh(v);
    SynProxyCounter ev = synproxy_backend_synack(&r.sp, frame, m);
    proxy_.count(ev);
    if (is_drop(ev)) return drop(GatewayCounter::kDropSynProxy);
    uint8_t out[kScratch];
    BuiltFrame f;
    ev = build_backend_ack(r.sp, frame, m, out, sizeof out, &f);
    proxy_.count(ev);
    if (is_drop(ev) || f.len > kMaxFrameLen) return drop(GatewayCounter::kDropSynProxy);
    std::memcpy(frame, out, f.len);
    b.pkts[i].len = f.len;
    m = f.meta;
    // Already in the backend's address space (SNAT -> DIP): no rewrite.
    const FwVerdict v2 = fw_.track(r.fw, frame, m, false);
    if (!v2.accepted()) return drop(GatewayCounter::kDropFirewall);
    refresh(v2);
    counters_.inc(GatewayCounter::kSynProxyBackendAck);
    return true;
  }

  if (sp && dir == kLinkOriginal) {
    const SynProxyCounter ev = synproxy_to_backend(r.sp, frame, m);
    proxy_.count(ev);
    if (is_drop(ev)) return drop(GatewayCounter::kDropSynProxy);
  }
  const FwVerdict v = fw_.track(r.fw, frame, m, dir == kLinkReply);
  if (!v.accepted()) return drop(GatewayCounter::kDropFirewall);
  if (sp && dir == kLinkReply) {
    const SynProxyCounter ev = synproxy_to_client(r.sp, frame, m);
    proxy_.count(ev);
    if (is_drop(ev)) return drop(GatewayCounter::kDropSynProxy);
  }
  refresh(v);
  maybe_clamp(frame, m, r);
  return nat_forward(frame, m, r, dir);
}

bool GatewayStage::create(Burst& b, uint32_t i, const FlowKey& dkey, uint64_t dhash, VipId vip,
                          Tick now, const SynProxyState* sp) {
  uint8_t* frame = b.pkts[i].data;
  PacketMeta& m = b.meta[i];
  FwConnState st{};
  const FwVerdict v = fw_.new_connection(&st, frame, m, TrafficDir::kIn, false);
  if (!v.accepted()) return drop(GatewayCounter::kDropFirewall);
  if (v.reason != FwReason::kCreated) {
    counters_.inc(GatewayCounter::kUntracked);
    return true;
  }
  const Selection sel = lb_.select(vip, hash_flow_key(dkey, lb_hash_key_));
  if (sel.backend == nullptr) return drop(GatewayCounter::kDropNoBackend);
  const uint32_t idx = alloc_record();
  if (idx == UINT32_MAX) return drop(GatewayCounter::kDropRecordPoolFull);
  ConnRecord& r = records_[idx];
  if (!snat_.alloc(0, static_cast<uint32_t>(dhash), &r.lease)) {
    free_list_[free_top_++] = idx;
    return drop(GatewayCounter::kDropSnatExhausted);
  }
  const uint32_t alen = m.addr_len();
  r.fw = st;
  if (sp != nullptr) r.sp = *sp;
  r.lb = LbConn{vip, sel.version, sel.index, 0};
  std::memcpy(r.client_addr, frame + m.src_off, alen);
  std::memcpy(r.vip_addr, frame + m.dst_off, alen);
  std::memcpy(r.dip_addr, sel.backend->addr.bytes, alen);
  r.client_port = m.sport;
  r.vip_port = m.dport;
  r.dip_port = sel.backend->port != 0 ? sel.backend->port : m.dport;
  r.family = m.family;
  r.proto = m.proto;
  r.flags = kRecLive | kRecNat | (sp != nullptr ? kRecSynProxy : 0);
  r.deadline = now + timeout_ticks(v.timeout_s);

  auto fail = [&](InsertStatus s) {
    snat_.free(r.lease);
    r.flags = 0;
    free_list_[free_top_++] = idx;
    return drop(s == InsertStatus::kExists ? GatewayCounter::kDropKeyCollision
                                           : GatewayCounter::kDropTableFull);
  };
  const auto ins1 = table_.insert(dkey, dhash, r.deadline);
  if (ins1.status != InsertStatus::kInserted) return fail(ins1.status);
  table_.value(ins1.ref.idx) = ConnLink{idx, kLinkOriginal, {}};
  const FlowKey rkey = reply_key(r);
  const auto ins2 = table_.insert(rkey, hash(rkey), r.deadline);
  if (ins2.status != InsertStatus::kInserted) {
    table_.erase(dkey, dhash);
    return fail(ins2.status);
  }
  table_.value(ins2.ref.idx) = ConnLink{idx, kLinkReply, {}};
  lb_.conn_opened(vip, sel.version);
  ++live_;
  counters_.inc(GatewayCounter::kConnsCreated);
  counters_.inc(GatewayCounter::kConnsCreatedNat);
  maybe_clamp(frame, m, r);
  return nat_forward(frame, m, r, kLinkOriginal);
}

bool GatewayStage::on_miss(Burst& b, uint32_t i, const FlowKey& dkey, uint64_t dhash, Tick now,
                           bool* mutated) {
  uint8_t* frame = b.pkts[i].data;
  PacketMeta& m = b.meta[i];
  const VipId vip = m.has(kMetaHasL4) && !m.has(kMetaFragment)
                        ? lb_.lookup_vip(m.family, frame + m.dst_off, m.proto, m.dport)
                        : kNoVip;
  if (vip == kNoVip) {
    // No NAT: one canonical key, shared by both directions.
    const FlowKey& ckey = b.key[i];
    const uint64_t ch = b.reversed[i] ? hash(ckey) : dhash;
    if (b.reversed[i]) {
      const Table::Ref ref = table_.lookup(ckey, ch);
      if (ref.found()) return on_hit(b, i, ref, now);
    }
    FwConnState st{};
    const FwVerdict v = fw_.new_connection(&st, frame, m, non_vip_dir_, b.reversed[i]);
    if (!v.accepted()) return drop(GatewayCounter::kDropFirewall);
    if (v.reason != FwReason::kCreated) {
      counters_.inc(GatewayCounter::kUntracked);
      return true;
    }
    const uint32_t idx = alloc_record();
    if (idx == UINT32_MAX) return drop(GatewayCounter::kDropRecordPoolFull);
    ConnRecord& r = records_[idx];
    r.fw = st;
    r.family = m.family;
    r.proto = m.proto;
    r.flags = kRecLive;
    r.deadline = now + timeout_ticks(v.timeout_s);
    const auto ins = table_.insert(ckey, ch, r.deadline);
    if (ins.status != InsertStatus::kInserted) {
      r.flags = 0;
      free_list_[free_top_++] = idx;
      return drop(GatewayCounter::kDropTableFull);
    }
    *mutated = true;
    table_.value(ins.ref.idx) = ConnLink{idx, kLinkCanonical, {}};
    ++live_;
    counters_.inc(GatewayCounter::kConnsCreated);
    return true;
  }

  const GatewayVipConfig& vc = vip_cfg_[vip];
  if (!vc.synproxy || m.proto != kProtoTcp) {
    *mutated = true;
    return create(b, i, dkey, dhash, vip, now, nullptr);
  }
  // SYN proxy: a SYN is answered with a cookie (the packet becomes the
  // SYN-ACK, no state); an ACK with a valid cookie becomes the backend SYN.
  uint8_t out[kScratch];
  if ((m.tcp_flags & (kTcpSyn | kTcpAck)) == kTcpSyn) {
    uint32_t len = 0;
    const SynProxyCounter ev =
        proxy_.answer_syn(frame, m, vc.synproxy_options, b.now_ns, out, sizeof out, &len);
    proxy_.count(ev);
    if (is_drop(ev) || len > kMaxFrameLen) return drop(GatewayCounter::kDropSynProxy);
    std::memcpy(frame, out, len);
    b.pkts[i].len = len;
    if (parse_packet(frame, len, &m) != ParseError::kOk) return drop(GatewayCounter::kDropSynProxy);
    counters_.inc(GatewayCounter::kSynProxySynAck);
    return true;
  }
  CookieAck ack;
  SynProxyCounter ev = proxy_.check_ack(frame, m, b.now_ns, &ack);
  proxy_.count(ev);
  if (is_drop(ev)) return drop(GatewayCounter::kDropSynProxy);
  const SynProxyState sp = synproxy_begin(ack, vc.synproxy_options);
  BuiltFrame f;
  ev = build_backend_syn(frame, m, ack, out, sizeof out, &f);
  proxy_.count(ev);
  if (is_drop(ev) || f.len > kMaxFrameLen) return drop(GatewayCounter::kDropSynProxy);
  std::memcpy(frame, out, f.len);
  b.pkts[i].len = f.len;
  m = f.meta;
  counters_.inc(GatewayCounter::kSynProxyBackendSyn);
  *mutated = true;
  return create(b, i, dkey, dhash, vip, now, &sp);
}

bool GatewayStage::on_icmp_error(Burst& b, uint32_t i) {
  uint8_t* frame = b.pkts[i].data;
  PacketMeta& m = b.meta[i];
  // The quoted packet is one we sent: its reverse is the key of the
  // direction the error travels (original: from the client side).
  bool qrev = false;
  const FlowKey c = flow_key_of_quote(frame, m, true, &qrev);
  const FlowKey k = swapped(directional(c, qrev));
  const Table::Ref ref = table_.lookup(k, hash(k));
  if (ref.found() && table_.value(ref.idx).direction != kLinkCanonical) {
    const ConnLink link = table_.value(ref.idx);
    const ConnRecord& r = records_[link.record];
    const FwVerdict v = fw_.related(&r.fw, frame, m, link.direction == kLinkOriginal);
    if (!v.accepted()) return drop(GatewayCounter::kDropFirewall);
    NatResult a, q1, q2;
    if (link.direction == kLinkReply) {
      // About SNAT -> DIP: becomes about client -> VIP, sent to the client.
      a = nat_rewrite(frame, m, NatSide::kDestination, r.client_addr, 0);
      q1 = nat_rewrite_quote(frame, m, NatSide::kSource, r.client_addr, r.client_port);
      q2 = nat_rewrite_quote(frame, m, NatSide::kDestination, r.vip_addr, r.vip_port);
    } else {
      // About VIP -> client: becomes about DIP -> SNAT, sent to the backend.
      const uint8_t* snat = snat_.address(r.lease.address).addr;
      a = nat_rewrite(frame, m, NatSide::kDestination, r.dip_addr, 0);
      q1 = nat_rewrite_quote(frame, m, NatSide::kSource, r.dip_addr, r.dip_port);
      q2 = nat_rewrite_quote(frame, m, NatSide::kDestination, snat, r.lease.port);
    }
    if (a != NatResult::kOk || q1 != NatResult::kOk || q2 != NatResult::kOk)
      return drop(GatewayCounter::kDropNatUnsupported);
    counters_.inc(GatewayCounter::kIcmpTranslated);
    return true;
  }
  const Table::Ref cref = table_.lookup(c, hash(c));
  const ConnRecord* r = cref.found() && table_.value(cref.idx).direction == kLinkCanonical
                            ? &records_[table_.value(cref.idx).record]
                            : nullptr;
  const FwVerdict v = fw_.related(r != nullptr ? &r->fw : nullptr, frame, m, qrev);
  if (!v.accepted())
    return drop(r != nullptr ? GatewayCounter::kDropFirewall : GatewayCounter::kDropIcmpNoConn);
  return true;
}

void GatewayStage::process(Burst& b) {
  advance_to(b.now_ns);
  proxy_.advance(b.now_ns);
  const Tick now = to_ticks(b.now_ns);

  uint32_t sel[kBurstSize];
  FlowKey keys[kBurstSize];
  uint64_t hashes[kBurstSize] = {};
  Table::Ref refs[kBurstSize];
  uint32_t n = 0;
  for (uint32_t i = 0; i < b.n; ++i) {
    if (b.verdict[i] != Verdict::kForward) continue;
    counters_.inc(GatewayCounter::kPackets);
    if (b.meta[i].has(kMetaNotIp)) {
      counters_.inc(GatewayCounter::kNotIp);
      continue;
    }
    if (b.meta[i].has(kMetaIcmpError)) continue;  // handled below, one by one
    sel[n] = i;
    keys[n] = directional(b.key[i], b.reversed[i]);
    ++n;
  }
  table_.hash_lookup_bulk(
      keys, n, [this](const FlowKey& k) { return hash(k); }, hashes, refs);

  // The hits' records: fetch them all before touching the first.
  for (uint32_t j = 0; j < n; ++j) {
    if (refs[j].found()) __builtin_prefetch(&table_.value(refs[j].idx));
  }
  for (uint32_t j = 0; j < n; ++j) {
    if (!refs[j].found()) continue;
    const auto* rec = reinterpret_cast<const char*>(&records_[table_.value(refs[j].idx).record]);
    __builtin_prefetch(rec);
    __builtin_prefetch(rec + 64);
    __builtin_prefetch(rec + sizeof(ConnRecord) - 1);
  }
  bool mutated = false;  // an insert moves entries: later refs must be re-read
  for (uint32_t j = 0; j < n; ++j) {
    const uint32_t i = sel[j];
    b.hash[i] = hashes[j];
    const Table::Ref r = mutated ? table_.lookup(keys[j], hashes[j]) : refs[j];
    const bool ok =
        r.found() ? on_hit(b, i, r, now) : on_miss(b, i, keys[j], hashes[j], now, &mutated);
    if (!ok) b.verdict[i] = Verdict::kDrop;
  }
  for (uint32_t i = 0; i < b.n; ++i) {
    if (b.verdict[i] != Verdict::kForward || !b.meta[i].has(kMetaIcmpError)) continue;
    if (!on_icmp_error(b, i)) b.verdict[i] = Verdict::kDrop;
  }
}

void GatewayStage::export_counters(const CounterFn& fn) const {
  for (size_t i = 0; i < counters_.size(); ++i)
    fn(kGatewayCounterNames[i], counters_.get(i));
  fn("conns_live", live_);
  fn("conns_capacity", capacity_);
  fn("snat_free_ports", snat_.free_ports(0));
  fn("snat_bad_frees", snat_.bad_frees());
  fw_.export_counters([&](std::string_view n, uint64_t v) { fn("fw_" + std::string(n), v); });
  lb_.export_counters([&](std::string_view n, uint64_t v) { fn("lb_" + std::string(n), v); });
  const auto& sc = proxy_.counters();
  for (size_t i = 0; i < sc.size(); ++i)
    fn("synproxy_" + std::string(kSynProxyCounterNames[i]), sc.get(i));
  const auto& tc = table_.counters();
  for (size_t i = 0; i < tc.size(); ++i)
    fn("table_" + std::string(kConnTableCounterNames[i]), tc.get(i));
}

}  // namespace tripod
