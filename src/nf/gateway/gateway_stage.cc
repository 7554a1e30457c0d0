#include "nf/gateway/gateway_stage.h"

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <string>

#include "nf/gateway/client_syn.h"
#include "nf/nat/rewrite.h"
#include "nf/synproxy/translate.h"
#include "packet/parser.h"
#include "packet/tcp_frame.h"

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
// How often the stage sends a client's SYN again itself (client_syn.h).
constexpr uint8_t kMaxClientSynSends = 3;

// Validates the connection count before anything is allocated for it.
ConnTableConfig table_config(const GatewayConfig& cfg) {
  constexpr uint32_t kMax = GatewayStage::Table::kMaxCapacity / 2;
  if (cfg.max_connections == 0 || cfg.max_connections > kMax)
    throw std::invalid_argument("gateway: max_connections must be in [1, " + std::to_string(kMax) +
                                "]");
  return ConnTableConfig{.capacity = 2 * cfg.max_connections, .huge_pages = cfg.huge_pages};
}

// The addresses of one family of a pool; nullptr when it has none.
std::unique_ptr<SnatPortAllocator> family_pool(const SnatPoolConfig& cfg, Family f,
                                               const char* what, uint32_t partitions = 1) {
  SnatPoolConfig c = cfg;
  c.partitions = partitions;
  c.addresses.clear();
  for (const auto& a : cfg.addresses) {
    if (a.family != Family::kIpv4 && a.family != Family::kIpv6)
      throw std::invalid_argument(std::string("gateway: ") + what + ": address without a family");
    if (a.family == f) c.addresses.push_back(a);
  }
  if (c.addresses.empty()) return nullptr;
  try {
    return std::make_unique<SnatPortAllocator>(std::move(c));
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(std::string("gateway: ") + what + ": " + e.what());
  }
}

// Egress matcher: internal destinations are not egress (deny), internal
// sources are (allow), the rest is not (default deny).
std::unique_ptr<Acl> egress_acl(const std::vector<std::string>& sources) {
  if (sources.empty()) return nullptr;
  AclConfig c;
  c.default_action = FwAction::kDeny;
  for (size_t i = 0; i < sources.size(); ++i) {
    FwRuleSpec deny_to;
    deny_to.action = FwAction::kDeny;
    deny_to.dst = sources[i];
    try {
      Acl::validate(deny_to);
    } catch (const std::invalid_argument& e) {
      throw std::invalid_argument("gateway: egress source " + std::to_string(i + 1) + ": " +
                                  e.what());
    }
    c.rules.push_back(deny_to);
  }
  for (const auto& src : sources) {
    FwRuleSpec allow_from;
    allow_from.action = FwAction::kAllow;
    allow_from.src = src;
    c.rules.push_back(allow_from);
  }
  return std::make_unique<Acl>(c);
}

bool mac_set(const uint8_t mac[6]) {
  for (int i = 0; i < 6; ++i)
    if (mac[i] != 0) return true;
  return false;
}

void check_vip(const GatewayVipConfig& v, bool have_snat) {
  const std::string name =
      "gateway: VIP " + v.key.addr.to_string() + ":" + std::to_string(v.key.port);
  for (const auto& b : v.pool.backends)
    if (b.addr.family != v.key.addr.family)
      throw std::invalid_argument(name + ": backend " + b.addr.to_string() +
                                  " is not of the VIP's family");
  if (v.mode == VipMode::kFullNat) {
    if (!have_snat)
      throw std::invalid_argument(name + ": FullNAT needs SNAT addresses of the VIP's family");
    return;
  }
  if (v.synproxy)
    throw std::invalid_argument(name + ": the SYN proxy needs both directions (not with DSR)");
  for (const auto& b : v.pool.backends) {
    if (!mac_set(b.mac))
      throw std::invalid_argument(name + ": DSR backend " + b.addr.to_string() + " has no MAC");
    if (b.port != 0 && b.port != v.key.port)
      throw std::invalid_argument(name + ": DSR cannot change the port (backend " +
                                  b.addr.to_string() + ")");
  }
}

bool slotted(const GatewayConfig& cfg) {
  if (cfg.shards == 0 || cfg.shards > kSlots)
    throw std::invalid_argument("gateway: shards must be in [1, " + std::to_string(kSlots) + "]");
  return cfg.cluster.node_id != 0 || cfg.shards > 1;
}

}  // namespace

SlotLayout GatewayStage::slot_layout(const GatewayConfig& cfg) {
  SlotLayout l;
  l.slot_key = cfg.cluster.slot_key;
  auto add = [&](const SnatAddress& a, const SnatPoolConfig& pool) {
    if (l.find(a.family, a.addr) == nullptr) l.snat.push_back({a, pool.port_lo, pool.port_hi});
  };
  for (const SnatAddress& a : cfg.snat.addresses)
    add(a, cfg.snat);
  // Every node's FullNAT pool has this node's range (config.cc).
  for (const SnatAddress& a : cfg.cluster.snat_addresses)
    add(a, cfg.snat);
  for (const SnatAddress& a : cfg.egress.snat.addresses)
    add(a, cfg.egress.snat);
  // Every node's egress pool has this node's range too.
  for (const SnatAddress& a : cfg.cluster.egress_addresses)
    add(a, cfg.egress.snat);
  return l;
}

GatewayStage::GatewayStage(const GatewayConfig& cfg, uint64_t now_ns)
    : fw_(cfg.firewall),
      // Clustered or split between workers: a flow's SNAT port comes from
      // its slot's partition.
      snat_{family_pool(cfg.snat, Family::kIpv4, "snat", slotted(cfg) ? kSlots : 1),
            family_pool(cfg.snat, Family::kIpv6, "snat", slotted(cfg) ? kSlots : 1)},
      egress_{
          family_pool(cfg.egress.snat, Family::kIpv4, "egress.snat", slotted(cfg) ? kSlots : 1),
          family_pool(cfg.egress.snat, Family::kIpv6, "egress.snat", slotted(cfg) ? kSlots : 1)},
      egress_match_(egress_acl(cfg.egress.sources)),
      proxy_(cfg.synproxy_master, cfg.cookies, now_ns + cfg.cookie_clock_offset_ns),
      cookie_offset_(cfg.cookie_clock_offset_ns),
      table_(table_config(cfg)),
      capacity_(cfg.max_connections),
      records_(cfg.max_connections, cfg.huge_pages, true),
      free_list_(cfg.max_connections, cfg.huge_pages, false),
      non_vip_dir_(cfg.non_vip_dir),
      hash_key_(cfg.table_hash_key),
      lb_hash_key_(cfg.lb_hash_key),
      cluster_(cfg.cluster),
      layout_(slot_layout(cfg)),
      slotted_(slotted(cfg)),
      dirty_(cfg.cluster.node_id != 0 ? 2 * size_t{cfg.max_connections} : 1, cfg.huge_pages, false),
      lazy_(cfg.cluster.node_id != 0 ? size_t{cfg.max_connections} : 1, cfg.huge_pages, false),
      deletes_(cfg.cluster.node_id != 0 ? std::max<uint32_t>(cfg.cluster.delete_queue, 1) : 0),
      urgent_(cfg.cluster.node_id != 0 ? kUrgentQueue : 1),
      pull_ns_(uint64_t{cfg.cluster.pull_timeout_ms} * 1'000'000),
      pulls_(cfg.cluster.node_id != 0 ? kPulls : 0),
      outbox_(cfg.cluster.node_id != 0 ? kOutbox : 1) {
  static_assert(kPulls * 256 <= 65536, "a pull's tag (index, generation) is 16 bits");
  huge_pages_ = cfg.huge_pages;
  if (cluster_.node_id > kMaxClusterNodes)
    throw std::invalid_argument("gateway: cluster node id must be in [1, " +
                                std::to_string(kMaxClusterNodes) + "]");
  if (egress_match_ != nullptr && !egress_[0] && !egress_[1])
    throw std::invalid_argument("gateway: egress sources need egress.snat addresses");
  for (const auto& v : cfg.vips)
    check_vip(v, snat_[fam(v.key.addr.family)] != nullptr);
  for (const auto& v : cfg.vips)
    add_vip(v);
  // One list for the lease index of a copy's SNAT address (kRecForeign).
  cluster_egress_from_ = static_cast<uint32_t>(cluster_.snat_addresses.size());
  cluster_.snat_addresses.insert(cluster_.snat_addresses.end(), cluster_.egress_addresses.begin(),
                                 cluster_.egress_addresses.end());
  for (const SnatAddress& a : cluster_.snat_addresses) {
    uint32_t own = UINT32_MAX;
    const bool eg = own_index_.size() >= cluster_egress_from_;
    if (const SnatPortAllocator* p = (eg ? egress_ : snat_)[fam(a.family)].get()) {
      for (uint32_t j = 0; j < p->num_addresses(); ++j)
        if (std::memcmp(p->address(j).addr, a.addr, 16) == 0) own = j;
    }
    own_index_.push_back(own);
  }
  for (uint32_t i = 0; i < capacity_; ++i)
    free_list_[i] = capacity_ - 1 - i;
  free_top_ = capacity_;
}

VipId GatewayStage::add_vip(const GatewayVipConfig& v) {
  check_vip(v, snat_[fam(v.key.addr.family)] != nullptr);
  if (layout_.is_snat_port(v.key.addr.family, v.key.addr.bytes, v.key.port))
    throw std::invalid_argument("gateway: VIP " + v.key.addr.to_string() + ":" +
                                std::to_string(v.key.port) +
                                " is on a SNAT address inside the SNAT port range");
  const VipId id = lb_.add_vip(v.key);
  try {
    lb_.commit(id, lb_.prepare(id, v.pool));
  } catch (...) {
    lb_.remove_vip(v.key);
    throw;
  }
  if (vip_cfg_.size() <= id) {
    vip_cfg_.resize(size_t{id} + 1);
    vip_removed_.resize(size_t{id} + 1, 1);
  }
  vip_cfg_[id] = v;
  vip_cfg_[id].pool.backends.clear();  // the LB owns the pool
  vip_removed_[id] = 0;
  any_output_commit_ |= v.output_commit;
  set_vip_delay(id, v);
  return id;
}

void GatewayStage::set_vip_delay(VipId id, const GatewayVipConfig& v) {
  if (vip_delay_.size() <= id) vip_delay_.resize(size_t{id} + 1, kNoDelay);
  vip_delay_[id] = kNoDelay;
  if (!clustered() || v.checkpoint_ns == 0 || !v.replicated || v.output_commit) return;
  for (size_t c = 0; c < delays_.size(); ++c) {
    if (delays_[c]->interval_ns == v.checkpoint_ns) {
      vip_delay_[id] = static_cast<uint8_t>(c);
      return;
    }
  }
  if (delays_.size() == kMaxCheckpointClasses)
    throw std::invalid_argument("gateway: more than " + std::to_string(kMaxCheckpointClasses) +
                                " distinct VIP checkpoint intervals");
  delays_.push_back(std::make_unique<DelayRing>(v.checkpoint_ns, capacity_, huge_pages_));
  vip_delay_[id] = static_cast<uint8_t>(delays_.size() - 1);
}

bool GatewayStage::delay(uint32_t idx) {
  ConnRecord& r = records_[idx];
  if (r.seen & kSyncLazy) return true;  // waits already: its export carries the latest state
  DelayRing& d = *delays_[vip_delay_[r.lb.vip]];
  if (d.tail - d.head == d.ring.size()) {
    counters_.inc(GatewayCounter::kSyncDelayFull);
    return false;
  }
  r.seen |= kSyncLazy;
  d.ring[d.tail++ % d.ring.size()] = DelayEntry{idx, clock_ns_ + d.interval_ns};
  counters_.inc(GatewayCounter::kSyncDelayed);
  return true;
}

VipId GatewayStage::remove_vip(const VipKey& key) {
  const VipId id = lb_.find_vip(key);
  if (id == kNoVip) throw std::invalid_argument("gateway: no VIP " + key.addr.to_string());
  lb_.remove_vip(key);
  lb_.collect_garbage();
  vip_removed_[id] = 1;  // vip_cfg_[id] stays: draining connections still name it
  return id;
}

void GatewayStage::update_pool(const VipKey& key, const PoolSpec& pool) {
  const VipId id = lb_.find_vip(key);
  if (id == kNoVip) throw std::invalid_argument("gateway: no VIP " + key.addr.to_string());
  GatewayVipConfig v = vip_cfg_[id];
  v.pool = pool;
  check_vip(v, snat_[fam(key.addr.family)] != nullptr);
  lb_.commit(id, lb_.prepare(id, pool));
  lb_.collect_garbage();
}

void GatewayStage::update_pool(const VipKey& key, const PoolSpec& spec,
                               std::shared_ptr<const BuiltPool> built) {
  const VipId id = lb_.find_vip(key);
  if (id == kNoVip) throw std::invalid_argument("gateway: no VIP " + key.addr.to_string());
  GatewayVipConfig v = vip_cfg_[id];
  v.pool = spec;
  check_vip(v, snat_[fam(key.addr.family)] != nullptr);
  lb_.commit(id, lb_.prepare(id, std::move(built)));
  lb_.collect_garbage();
}

void GatewayStage::update_vip_options(const GatewayVipConfig& v) {
  const VipId id = lb_.find_vip(v.key);
  if (id == kNoVip) throw std::invalid_argument("gateway: no VIP " + v.key.addr.to_string());
  if (v.mode != vip_cfg_[id].mode)
    throw std::invalid_argument("gateway: VIP " + v.key.addr.to_string() +
                                ": the mode cannot change in place");
  GatewayVipConfig c = v;
  c.pool.backends.clear();
  if (c.synproxy && c.mode == VipMode::kDsr)
    throw std::invalid_argument("gateway: the SYN proxy needs both directions (not with DSR)");
  vip_cfg_[id] = c;
  any_output_commit_ |= c.output_commit;
  set_vip_delay(id, c);
}

void GatewayStage::set_firewall(const FirewallConfig& cfg, TrafficDir non_vip_dir) {
  fw_.set_policy(std::make_shared<const FwPolicy>(cfg));
  non_vip_dir_ = non_vip_dir;
}

FlowKey GatewayStage::original_key(const ConnRecord& r) const {
  return make_flow_key(r.family, r.proto, r.client_addr, vip_addr(r), r.client_port, vip_port(r),
                       false);
}

FlowKey GatewayStage::record_key(const ConnRecord& r) const {
  if (r.flags & (kRecNat | kRecDsr)) return original_key(r);
  // Firewall only: the canonical key's endpoints, kept in the record.
  return make_flow_key(r.family, r.proto, r.client_addr, r.dip_addr, r.client_port, r.dip_port,
                       false);
}

FlowKey GatewayStage::reply_key(const ConnRecord& r) const {
  return make_flow_key(r.family, r.proto, r.dip_addr, snat_addr(r), r.dip_port, r.lease.port,
                       false);
}

uint32_t GatewayStage::alloc_record() {
  if (free_top_ == 0) return UINT32_MAX;
  const uint32_t idx = free_list_[--free_top_];
  records_[idx] = ConnRecord{};
  return idx;
}

void GatewayStage::free_record(uint32_t idx) {
  ConnRecord& r = records_[idx];
  if ((r.flags & kRecNat) && !(r.flags & kRecForeign)) pool_of(r).free(r.lease);
  if (r.flags & kRecReserved) pool_of(r).free(SnatLease{own_index_[r.lease.address], r.lease.port});
  if (r.flags & (kRecNat | kRecDsr) && !(r.flags & kRecEgress) && r.lb.version != kNoVersion)
    lb_.conn_closed(r.lb.vip, r.lb.version);
  if (r.flags & kRecStandby) {
    --standby_;
  } else {
    --live_;
    // The holders have it: they must not keep it (or promote it) later.
    if (clustered() && (r.seen & kSyncSent)) {
      if (del_tail_ - del_head_ == deletes_.size()) {
        counters_.inc(GatewayCounter::kSyncDeleteOverflow);
      } else {
        fill_sync(r, &deletes_[del_tail_++ % deletes_.size()], FlowSyncOp::kDelete, 0);
      }
    }
  }
  r.flags = 0;
  r.seen = 0;
  free_list_[free_top_++] = idx;
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
    mark_dirty(link.record);  // the holders' copies follow the deadline
    return r.deadline;
  }
  if (r.flags & kRecNat) {
    const FlowKey partner = link.direction == kLinkOriginal ? reply_key(r) : original_key(r);
    table_.erase(partner, hash(partner));
  }
  free_record(link.record);
  return free_it;
}

GatewayStage::Reopen GatewayStage::reopens(const Burst& b, uint32_t i, const ConnLink& link) {
  const PacketMeta& m = b.meta[i];
  if (link.direction != kLinkOriginal || m.proto != kProtoTcp) return Reopen::kNo;
  const ConnRecord& r = records_[link.record];
  if ((m.tcp_flags & (kTcpSyn | kTcpAck | kTcpRst)) == kTcpSyn)
    return is_closed(r) ? Reopen::kSyn : Reopen::kNo;
  // Only closed SYN-proxy connections pay for a cookie check (an ACK on a
  // TIME_WAIT tuple is rare: the client's last ACK again).
  if ((m.tcp_flags & (kTcpSyn | kTcpAck | kTcpRst | kTcpFin)) != kTcpAck ||
      !(r.flags & kRecSynProxy) || !is_closed(r) || !synproxy_vip(b.pkts[i].data, m))
    return Reopen::kNo;
  CookieAck ack;
  return is_drop(proxy_.check_ack(b.pkts[i].data, m, b.now_ns + cookie_offset_, &ack))
             ? Reopen::kNo
             : Reopen::kCookie;
}

bool GatewayStage::synproxy_vip(const uint8_t* frame, const PacketMeta& m) {
  if (!m.has(kMetaHasL4) || m.has(kMetaFragment) || m.proto != kProtoTcp) return false;
  const VipId vip = lb_.lookup_vip(m.family, frame + m.dst_off, m.proto, m.dport);
  return vip != kNoVip && vip_cfg_[vip].synproxy && vip_cfg_[vip].mode != VipMode::kDsr;
}

bool GatewayStage::is_closed(const ConnRecord& r) const {
  if (!(r.flags & (kRecNat | kRecDsr)) || (r.flags & kRecEgress) || r.proto != kProtoTcp)
    return false;
  // Its backend was killed: the old connection is over (it was reset).
  if (lb_.is_killed(r.lb.vip, r.lb.version, r.lb.backend)) return true;
  if (r.flags & kRecDsr) return (r.seen & (kSeenFin | kSeenRst)) != 0;
  return sync_closed_state(r.fw);
}

bool GatewayStage::adopt_built(Burst& b, uint32_t i, SynProxyCounter ev, const uint8_t* out,
                               const BuiltFrame& f) {
  proxy_.count(ev);
  if (is_drop(ev) || f.len > kMaxFrameLen) return drop(GatewayCounter::kDropSynProxy);
  std::memcpy(b.pkts[i].data, out, f.len);
  b.pkts[i].len = f.len;
  b.meta[i] = f.meta;
  return true;
}

bool GatewayStage::handshake_pending(const ConnRecord& r) {
  if ((r.flags & (kRecNat | kRecEgress)) != kRecNat || r.proto != kProtoTcp) return false;
  if (r.flags & kRecSynProxy) return !r.sp.open();
  return r.fw.kind == FwKind::kTcp && r.fw.tcp_state() == TcpState::kSynSent;
}

bool GatewayStage::rekey_snat(uint32_t idx) {
  ConnRecord& r = records_[idx];
  if (r.flags & (kRecForeign | kRecStandby)) return false;
  SnatPortAllocator& pool = pool_of(r);
  const SnatLease old = r.lease;
  SnatLease fresh;
  if (!pool.alloc(pool.partition_of(old.port), old.address, &fresh)) return false;
  const FlowKey ok = reply_key(r);
  table_.erase(ok, hash(ok));
  fresh.spare = old.spare;  // (output commit's tag, not the lease's)
  r.lease = fresh;
  const FlowKey nk = reply_key(r);
  auto ins = table_.insert(nk, hash(nk), r.deadline);
  if (ins.status != InsertStatus::kInserted) {  // back as it was
    pool.free(fresh);
    r.lease = old;
    ins = table_.insert(ok, hash(ok), r.deadline);
  }
  if (ins.status == InsertStatus::kInserted)
    table_.value(ins.ref.idx) = ConnLink{idx, kLinkReply, {}};
  table_moved_ = true;
  if (r.lease.port == old.port) return false;
  pool.free(old);  // to its queue's tail: the last one taken again
  // The holders' copies have the old port (write-once): a full record again.
  r.seen &= static_cast<uint8_t>(~kSyncSent);
  mark_dirty(idx);
  counters_.inc(GatewayCounter::kSnatRekeyed);
  return true;
}

bool GatewayStage::send_client_syn_again(Burst& b, uint32_t i, ConnRecord& r) {
  ClientSyn cs = load_client_syn(r.sp);
  // Bounded: a backend that turns every port away gets the client's own
  // retransmissions only.
  if (cs.sends >= kMaxClientSynSends) return false;
  ++cs.sends;
  store_client_syn(cs, &r.sp);
  uint8_t out[kScratch];
  PacketMeta meta;
  const uint32_t len =
      write_client_syn(cs, b.pkts[i].data, b.meta[i], snat_addr(r), r.lease.port, out, sizeof out);
  if (len == 0 || len > kMaxFrameLen || parse_packet(out, len, &meta) != ParseError::kOk)
    return false;
  std::memcpy(b.pkts[i].data, out, len);
  b.pkts[i].len = len;
  b.meta[i] = meta;
  b.l2[i] = L2Action::kRoute;  // to the backend, whichever way the ACK came
  maybe_clamp(b.pkts[i].data, b.meta[i], r);
  counters_.inc(GatewayCounter::kClientSynAgain);
  return true;
}

bool GatewayStage::sync_closed_state(const FwConnState& fw) {
  return fw.kind == FwKind::kTcp &&
         (fw.tcp_state() == TcpState::kTimeWait || fw.tcp_state() == TcpState::kClose);
}

bool GatewayStage::sync_closed(const ConnRecord& r) {
  // Both FINs or a RST seen (TIME_WAIT, CLOSE). Not DSR: its node sees one
  // direction, and the client's ACKs of a closing server still pass it.
  return r.proto == kProtoTcp && !(r.flags & kRecDsr) && sync_closed_state(r.fw);
}

bool GatewayStage::end_connection(uint32_t idx, SnatLease* kept) {
  ConnRecord& r = records_[idx];
  const FlowKey ok = record_key(r);
  table_.erase(ok, hash(ok));
  bool has_lease = false;
  if (r.flags & kRecNat) {
    const FlowKey rk = reply_key(r);
    table_.erase(rk, hash(rk));
    if (kept != nullptr &&
        !(r.flags & kRecForeign)) {  // the caller frees it (after allocating another)
      *kept = r.lease;
      has_lease = true;
      // free_record() then releases the LB reference only.
      r.flags = static_cast<uint8_t>((r.flags & ~kRecNat) | kRecDsr);
    }
  }
  free_record(idx);
  return has_lease;
}

void GatewayStage::advance_to(uint64_t now_ns) {
  if (pulls_active_ != 0) expire_pulls(now_ns);
  const Tick now = to_ticks(now_ns);
  table_.advance(now,
                 [&](uint32_t, const FlowKey& k, ConnLink& l) { return on_expire(now, k, l); });
}

void GatewayStage::maybe_clamp(uint8_t* frame, const PacketMeta& m, const ConnRecord& r) {
  if (m.proto != kProtoTcp || (m.tcp_flags & kTcpSyn) == 0 || !(r.flags & (kRecNat | kRecDsr)) ||
      (r.flags & kRecEgress))
    return;
  const uint16_t mss = vip_cfg_[r.lb.vip].mss_clamp;
  if (mss != 0 && clamp_mss(frame, m, mss)) counters_.inc(GatewayCounter::kMssClamped);
}

bool GatewayStage::nat_forward(uint8_t* frame, PacketMeta& m, const ConnRecord& r, uint8_t dir) {
  NatResult a;
  if (r.flags & kRecEgress) {
    // Only the inside host's endpoint changes.
    a = dir == kLinkOriginal
            ? nat_rewrite(frame, m, NatSide::kSource, snat_addr(r), r.lease.port)
            : nat_rewrite(frame, m, NatSide::kDestination, r.client_addr, r.client_port);
  } else if (dir == kLinkOriginal) {
    a = nat_rewrite_both(frame, m, snat_addr(r), r.lease.port, r.dip_addr, r.dip_port);
  } else {
    a = nat_rewrite_both(frame, m, vip_addr(r), vip_port(r), r.client_addr, r.client_port);
  }
  if (a != NatResult::kOk) return drop(GatewayCounter::kDropNatUnsupported);
  return true;
}

uint32_t GatewayStage::dsr_timeout(const PacketMeta& m, ConnRecord& r) const {
  // One direction only, no state machine: the client's flags, and once it
  // has closed (FIN) or reset, never the established timeout again.
  const FwTimeouts& t = fw_.policy().timeouts;
  if (m.proto != kProtoTcp) return t.udp_stream;
  if (m.tcp_flags & kTcpRst) r.seen |= kSeenRst;
  if (m.tcp_flags & kTcpFin) r.seen |= kSeenFin;
  if (r.seen & kSeenRst) return t.tcp_close;
  if (r.seen & kSeenFin) return t.tcp_time_wait;
  if (m.tcp_flags & kTcpSyn) return t.tcp_syn_sent;
  return t.tcp_established;
}

bool GatewayStage::dsr_forward(Burst& b, uint32_t i, const ConnRecord& r) {
  const Backend* be = lb_.backend(r.lb.vip, r.lb.version, r.lb.backend);
  if (be == nullptr) return drop(GatewayCounter::kDropUnknownBackend);
  set_dst_mac(b.pkts[i].data, be->mac);
  b.l2[i] = L2Action::kKeepDst;
  return true;
}

bool GatewayStage::reset_killed(Burst& b, uint32_t i, Table::Ref ref, ConnRecord& r, uint8_t dir,
                                Tick now) {
  uint8_t* frame = b.pkts[i].data;
  PacketMeta& m = b.meta[i];
  if (m.proto != kProtoTcp || (m.tcp_flags & kTcpRst) || m.has(kMetaFragment) || !m.has(kMetaHasL4))
    return drop(GatewayCounter::kDropBackendKilled);
  // 1. Back to the sender, in its own address space: a new packet.
  const int k = b.append(b.now_ns);
  if (k < 0) {
    counters_.inc(GatewayCounter::kCreatedNoFrame);
  } else {
    const auto j = static_cast<uint32_t>(k);
    const uint32_t len = write_tcp_reset(frame, m, true, b.pkts[j].data, kMaxFrameLen);
    if (len == 0 || parse_packet(b.pkts[j].data, len, &b.meta[j]) != ParseError::kOk) {
      b.verdict[j] = Verdict::kDrop;
      counters_.inc(GatewayCounter::kCreatedNoFrame);
    } else {
      b.pkts[j].len = len;
      b.l2[j] = L2Action::kAsIs;
    }
  }
  // 2. This packet, translated as usual, becomes the reset of the other side.
  const bool sp = (r.flags & kRecSynProxy) != 0 && r.sp.open();
  if (sp) {
    const SynProxyCounter ev = dir == kLinkOriginal ? synproxy_to_backend(r.sp, frame, m)
                                                    : synproxy_to_client(r.sp, frame, m);
    if (is_drop(ev)) return drop(GatewayCounter::kDropBackendKilled);
  }
  bool ok = true;
  if (r.flags & kRecDsr) {
    ok = dsr_forward(b, i, r);
  } else {
    ok = nat_forward(frame, m, r, dir);
  }
  if (!ok) return false;
  uint8_t out[kScratch];
  const uint32_t len = write_tcp_reset(frame, m, false, out, sizeof out);
  if (len == 0) return drop(GatewayCounter::kDropBackendKilled);
  std::memcpy(frame, out, len);
  b.pkts[i].len = len;
  if (parse_packet(frame, len, &m) != ParseError::kOk)
    return drop(GatewayCounter::kDropBackendKilled);
  // The connection ends: its keys expire on the close timeout.
  r.deadline = now + timeout_ticks(fw_.policy().timeouts.tcp_close);
  if (static_cast<int32_t>(r.deadline - table_.deadline(ref)) < 0)
    table_.set_deadline(ref, r.deadline);
  counters_.inc(GatewayCounter::kBackendKilledResets);
  return true;
}

void GatewayStage::send_window_update(Burst& b, uint32_t i, const ConnRecord& r) {
  const int k = b.append(b.now_ns);
  if (k < 0) {
    counters_.inc(GatewayCounter::kCreatedNoFrame);
    return;
  }
  const auto j = static_cast<uint32_t>(k);
  BuiltFrame f;
  const SynProxyCounter ev =
      build_client_window_update(r.sp, b.pkts[i].data, b.meta[i], b.pkts[j].data, kMaxFrameLen, &f);
  proxy_.count(ev);
  if (is_drop(ev) || f.len == 0) {
    b.verdict[j] = Verdict::kDrop;
    counters_.inc(GatewayCounter::kCreatedNoFrame);
    return;
  }
  b.pkts[j].len = f.len;
  b.meta[j] = f.meta;
  if (!nat_forward(b.pkts[j].data, b.meta[j], r, kLinkReply)) {
    b.verdict[j] = Verdict::kDrop;
    return;
  }
  counters_.inc(GatewayCounter::kSynProxyWindowUpdate);
}

// What the holders' copies carry besides write-once state changes rarely
// (a TCP state, the SYN proxy opening, DSR's FIN/RST): only then is the
// record queued for export, never per packet.
bool GatewayStage::on_hit(Burst& b, uint32_t i, Table::Ref ref, Tick now) {
  if (!clustered()) return on_hit_inner(b, i, ref, now);
  const uint32_t idx = table_.value(ref.idx).record;
  touched_ = idx;
  const ConnRecord& r = records_[idx];
  const uint8_t state = r.fw.state, spf = r.sp.flags, seen = r.seen & (kSeenFin | kSeenRst);
  const bool ok = on_hit_inner(b, i, ref, now);
  if (r.sp.flags != spf || (r.seen & (kSeenFin | kSeenRst)) != seen)
    mark_dirty(idx);
  else if (r.fw.state != state)
    lazy_change(r.fw, state) ? mark_lazy(idx, now) : mark_dirty(idx);
  return ok;
}

bool GatewayStage::on_hit_inner(Burst& b, uint32_t i, Table::Ref ref, Tick now) {
  counters_.inc(GatewayCounter::kHits);
  const ConnLink link = table_.value(ref.idx);
  ConnRecord& r = records_[link.record];
  uint8_t* frame = b.pkts[i].data;
  PacketMeta& m = b.meta[i];
  // The record's deadline is the truth; a key's deadline is only a lower
  // bound (its expiry re-arms it from the record), so it is touched only
  // when the connection's deadline moves earlier. Extending it on every
  // packet would cost a random access to the timer wheel.
  auto refresh_s = [&](uint32_t timeout_s) {
    if (timeout_s == 0) return;
    r.deadline = now + timeout_ticks(timeout_s);
    if (static_cast<int32_t>(r.deadline - table_.deadline(ref)) < 0)
      table_.set_deadline(ref, r.deadline);
  };
  auto refresh = [&](const FwVerdict& v) { refresh_s(v.timeout_s); };

  if (link.direction == kLinkCanonical) {
    const FwVerdict v = fw_.track(r.fw, frame, m, b.reversed[i]);
    if (!v.accepted()) return drop(GatewayCounter::kDropFirewall);
    refresh(v);
    return true;
  }

  const uint8_t dir = link.direction;
  if (!(r.flags & kRecEgress) && lb_.is_killed(r.lb.vip, r.lb.version, r.lb.backend))
    return reset_killed(b, i, ref, r, dir, now);
  if (r.flags & kRecDsr) {
    // Only the client's half passes here: the ACL decided at creation.
    refresh_s(dsr_timeout(m, r));
    maybe_clamp(frame, m, r);
    return dsr_forward(b, i, r);
  }
  const bool sp = (r.flags & kRecSynProxy) != 0;

  // The backend answers our SYN with a bare ACK: the 4-tuple is taken there
  // (an earlier connection on this SNAT port, still open or in TIME_WAIT,
  // e.g. one of this node's previous life), and it would go on answering so.
  // The flow moves to another port of its partition, and the SYN goes
  // again from there at once: without the SYN proxy the client's, kept in
  // the record (client_syn.h); with it, rebuilt from the client's ACK, which
  // the client is asked for (below). Else the client's own retransmission
  // (its SYN; with the SYN proxy, its probe) does it.
  if (dir == kLinkReply && (m.tcp_flags & (kTcpSyn | kTcpAck | kTcpRst)) == kTcpAck &&
      handshake_pending(r)) {
    if (rekey_snat(link.record)) {
      // (`ref`, the old reply key's entry, is gone: the deadline follows
      // the new one.)
      const FlowKey nk = reply_key(r);
      ref = table_.lookup(nk, hash(nk));
      if (!sp && send_client_syn_again(b, i, r)) {
        const FwVerdict v = fw_.track(r.fw, frame, m, false);
        if (!v.accepted()) return drop(GatewayCounter::kDropFirewall);
        if (ref.found()) refresh(v);
        return true;
      }
      // With the SYN proxy the client holds what the backend SYN is built
      // from (its ACK and our cookie): asked, it sends its ACK again at once
      // (a few times per connection: a backend that turns every port away
      // must not keep the client answering).
      if (sp && (r.sp.flags & kSpAckRequests) < kSpAckRequests) {
        r.sp.flags = static_cast<uint8_t>(r.sp.flags + kSpAckRequestOne);
        uint8_t out[kScratch];
        BuiltFrame f;
        if (!adopt_built(b, i, build_client_ack_request(r.sp, frame, m, out, sizeof out, &f), out,
                         f))
          return false;
        counters_.inc(GatewayCounter::kSynProxyAckRequested);
        return nat_forward(frame, m, r, kLinkReply);
      }
    }
    return drop(GatewayCounter::kDropBackendTupleBusy);
  }

  // The backend's SYN-ACK to our SYN: answer it with the client's ACK, and
  // open the client's window (our cookie SYN-ACK offered zero).
  if (sp && dir == kLinkReply && !r.sp.open() &&
      (m.tcp_flags & (kTcpSyn | kTcpAck)) == (kTcpSyn | kTcpAck)) {
    const FwVerdict v = fw_.track(r.fw, frame, m, true);
    if (!v.accepted()) return drop(GatewayCounter::kDropFirewall);
    refresh(v);
    SynProxyCounter ev = synproxy_backend_synack(&r.sp, frame, m);
    proxy_.count(ev);
    if (is_drop(ev)) return drop(GatewayCounter::kDropSynProxy);
    send_window_update(b, i, r);
    uint8_t out[kScratch];
    BuiltFrame f;
    if (!adopt_built(b, i, build_backend_ack(r.sp, frame, m, out, sizeof out, &f), out, f))
      return false;
    // Already in the backend's address space (SNAT -> DIP): no rewrite.
    const FwVerdict v2 = fw_.track(r.fw, frame, m, false);
    if (!v2.accepted()) return drop(GatewayCounter::kDropFirewall);
    refresh(v2);
    counters_.inc(GatewayCounter::kSynProxyBackendAck);
    return true;
  }

  // The client speaks before the backend's handshake is done (its
  // zero-window probe, or its ACK again): our SYN or the backend's SYN-ACK
  // was lost, or the node that sent the SYN died and this one took the flow
  // over. The SYN again, rebuilt from the client's packet and its cookie
  // (the same ISN and options: a backend that got the first one answers
  // with its SYN-ACK again).
  if (sp && dir == kLinkOriginal && !r.sp.open()) {
    if (m.tcp_flags & (kTcpFin | kTcpRst)) {  // only an ACK or a probe asks for the SYN
      proxy_.count(SynProxyCounter::kDropNotOpen);
      return drop(GatewayCounter::kDropSynProxy);
    }
    CookieAck ack;
    SynProxyCounter ev = proxy_.check_ack(frame, m, b.now_ns + cookie_offset_, &ack);
    if (is_drop(ev)) {
      proxy_.count(ev);
      return drop(GatewayCounter::kDropSynProxy);
    }
    uint8_t out[kScratch];
    BuiltFrame f;
    if (!adopt_built(b, i, build_backend_syn(frame, m, ack, out, sizeof out, &f), out, f))
      return false;
    const FwVerdict v = fw_.track(r.fw, frame, m, false);
    if (!v.accepted()) return drop(GatewayCounter::kDropFirewall);
    refresh(v);
    counters_.inc(GatewayCounter::kSynProxyBackendSynAgain);
    maybe_clamp(frame, m, r);
    return nat_forward(frame, m, r, kLinkOriginal);
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

// Inserts the record's original (dkey) and reply keys. On failure nothing
// is left behind except the record itself (the caller frees it).
bool GatewayStage::insert_keys(const FlowKey& dkey, uint64_t dhash, uint32_t idx, ConnRecord& r) {
  auto fail = [&](InsertStatus st) {
    return drop(st == InsertStatus::kExists ? GatewayCounter::kDropKeyCollision
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
  return true;
}

// A new connection to a VIP: ACL, backend, record, keys, then the first
// rewrite. FullNAT takes a SNAT port and two keys; DSR one key, no port.
bool GatewayStage::create(Burst& b, uint32_t i, const FlowKey& dkey, uint64_t dhash, VipId vip,
                          Tick now, const SynProxyState* sp) {
  uint8_t* frame = b.pkts[i].data;
  PacketMeta& m = b.meta[i];
  const bool dsr = vip_cfg_[vip].mode == VipMode::kDsr;
  FwConnState st{};
  const FwVerdict v = fw_.new_connection(&st, frame, m, TrafficDir::kIn, false);
  if (!v.accepted()) return drop(GatewayCounter::kDropFirewall);
  if (v.reason != FwReason::kCreated) {
    counters_.inc(GatewayCounter::kUntracked);
    return true;
  }
  const Selection sel = lb_.select(vip, lb_hash(dkey, vip));
  if (sel.backend == nullptr) return drop(GatewayCounter::kDropNoBackend);
  const uint32_t idx = alloc_record();
  if (idx == UINT32_MAX) return drop(GatewayCounter::kDropRecordPoolFull);
  ConnRecord& r = records_[idx];
  r.family = m.family;
  if (!dsr && m.proto == kProtoTcp && sp == nullptr) {
    // The SYN, should the backend turn it away (client_syn.h); options that
    // do not parse leave nothing to send again.
    ClientSyn cs;
    if (!read_client_syn(frame, m, &cs)) cs.sends = kMaxClientSynSends;
    store_client_syn(cs, &r.sp);
  }
  if (!dsr && has_reused_lease_) {
    r.lease = reused_lease_;  // see process(): a reopened tuple keeps its port
    has_reused_lease_ = false;
  } else if (!dsr && !pool_of(r).alloc(slotted_ ? slot_of(dkey) : 0, static_cast<uint32_t>(dhash),
                                       &r.lease)) {
    free_list_[free_top_++] = idx;  // the VIP's family has a pool (checked at construction)
    return drop(GatewayCounter::kDropSnatExhausted);
  }
  const uint32_t alen = m.addr_len();
  r.fw = st;
  if (sp != nullptr) r.sp = *sp;
  r.lb = LbConn{vip, sel.version, sel.index, cluster_.node_id};
  std::memcpy(r.client_addr, frame + m.src_off, alen);
  std::memcpy(r.dip_addr, sel.backend->addr.bytes, alen);
  r.client_port = m.sport;
  r.dip_port = !dsr && sel.backend->port != 0 ? sel.backend->port : m.dport;
  r.proto = m.proto;
  r.flags = kRecLive | (dsr ? kRecDsr : kRecNat) | (sp != nullptr ? kRecSynProxy : 0);
  if (!vip_cfg_[vip].replicated) r.seen |= kSyncLocal;
  r.deadline = now + timeout_ticks(v.timeout_s);
  bool inserted;
  if (dsr) {
    const auto ins = table_.insert(dkey, dhash, r.deadline);
    inserted = ins.status == InsertStatus::kInserted;
    if (inserted) {
      table_.value(ins.ref.idx) = ConnLink{idx, kLinkOriginal, {}};
    } else {
      drop(ins.status == InsertStatus::kExists ? GatewayCounter::kDropKeyCollision
                                               : GatewayCounter::kDropTableFull);
    }
  } else {
    inserted = insert_keys(dkey, dhash, idx, r);
  }
  if (!inserted) {
    if (!dsr) pool_of(r).free(r.lease);
    r.flags = 0;
    free_list_[free_top_++] = idx;
    return false;
  }
  lb_.conn_opened(vip, sel.version);
  ++live_;
  mark_dirty(idx);
  touched_ = idx;
  counters_.inc(GatewayCounter::kConnsCreated);
  counters_.inc(dsr ? GatewayCounter::kConnsCreatedDsr : GatewayCounter::kConnsCreatedNat);
  maybe_clamp(frame, m, r);
  return dsr ? dsr_forward(b, i, r) : nat_forward(frame, m, r, kLinkOriginal);
}

uint64_t GatewayStage::lb_hash(const FlowKey& dkey, VipId vip) const {
  if (vip_cfg_[vip].hash == LbHash::kFlow) return hash_flow_key(dkey, lb_hash_key_);
  // The client's address alone (dkey runs client -> VIP): a key with the VIP
  // and both ports cleared, hashed under the same cluster-wide key.
  FlowKey k = dkey;
  const size_t len = k.family == Family::kIpv6 ? 16 : 4;
  std::memset(k.addr + len, 0, len);
  k.port_a = k.port_b = 0;
  return hash_flow_key(k, lb_hash_key_);
}

bool GatewayStage::is_outward(const uint8_t* frame, const PacketMeta& m) const {
  return egress_match_ != nullptr && egress_[fam(m.family)] &&
         egress_match_->match(acl_packet_of(frame, m, TrafficDir::kOut)).action == FwAction::kAllow;
}

bool GatewayStage::egress_translatable(const PacketMeta& m) {
  if (!m.has(kMetaHasL4) || m.has(kMetaFragment)) return false;
  // Ports (or the echo id) are what NAT multiplexes on.
  const bool echo = (m.proto == kProtoIcmp && m.icmp_type == 8) ||
                    (m.proto == kProtoIcmpv6 && m.icmp_type == 128);
  return m.proto == kProtoTcp || m.proto == kProtoUdp || echo;
}

bool GatewayStage::create_egress(Burst& b, uint32_t i, const FlowKey& dkey, uint64_t dhash,
                                 Tick now, const FwConnState& st, uint32_t timeout_s) {
  uint8_t* frame = b.pkts[i].data;
  PacketMeta& m = b.meta[i];
  const uint32_t idx = alloc_record();
  if (idx == UINT32_MAX) return drop(GatewayCounter::kDropRecordPoolFull);
  ConnRecord& r = records_[idx];
  r.family = m.family;
  r.flags = kRecEgress;  // pool_of() below
  SnatPortAllocator& pool = pool_of(r);
  if (!pool.alloc(slotted_ ? slot_of(dkey) : 0, static_cast<uint32_t>(dhash), &r.lease)) {
    r.flags = 0;
    free_list_[free_top_++] = idx;
    return drop(GatewayCounter::kDropSnatExhausted);
  }
  const uint32_t alen = m.addr_len();
  r.fw = st;
  std::memcpy(r.client_addr, frame + m.src_off, alen);
  std::memcpy(r.dip_addr, frame + m.dst_off, alen);
  r.client_port = m.sport;
  // An echo reply carries the (translated) id in both "ports".
  r.dip_port = m.proto == kProtoTcp || m.proto == kProtoUdp ? m.dport : r.lease.port;
  r.proto = m.proto;
  r.flags = kRecLive | kRecNat | kRecEgress;
  r.lb.spare = cluster_.node_id;
  r.deadline = now + timeout_ticks(timeout_s);
  if (!insert_keys(dkey, dhash, idx, r)) {
    pool.free(r.lease);
    r.flags = 0;
    free_list_[free_top_++] = idx;
    return false;
  }
  ++live_;
  mark_dirty(idx);
  counters_.inc(GatewayCounter::kConnsCreated);
  counters_.inc(GatewayCounter::kConnsCreatedEgress);
  return nat_forward(frame, m, r, kLinkOriginal);
}

bool GatewayStage::on_miss(Burst& b, uint32_t i, const FlowKey& dkey, uint64_t dhash, Tick now,
                           bool* mutated) {
  uint8_t* frame = b.pkts[i].data;
  PacketMeta& m = b.meta[i];
  const VipId vip = m.has(kMetaHasL4) && !m.has(kMetaFragment)
                        ? lb_.lookup_vip(m.family, frame + m.dst_off, m.proto, m.dport)
                        : kNoVip;
  // A SYN-proxied VIP's ACK may carry our cookie: checked before anything
  // goes elsewhere (below).
  const bool cookie_ack = vip != kNoVip && vip_cfg_[vip].synproxy && m.proto == kProtoTcp &&
                          (m.tcp_flags & (kTcpSyn | kTcpAck)) == kTcpAck;
  // No NAT: one canonical key, shared by both directions; a packet against
  // its order finds it here (before a cluster looks elsewhere for it).
  const uint64_t ch = vip == kNoVip && b.reversed[i] ? hash(b.key[i]) : dhash;
  Table::Ref cref;  // that key's flow (miss_to_holder() inserts nothing)
  if (vip == kNoVip && b.reversed[i]) {
    const Table::Ref ref = table_.lookup(b.key[i], ch);
    // Only an untranslated flow's key: a packet that merely mirrors a NAT
    // connection's original key is not that connection.
    if (ref.found() && table_.value(ref.idx).direction == kLinkCanonical) cref = ref;
    // Only a flow processed here: another node's copy is for
    // miss_to_holder() below.
    if (cref.found() && !(records_[table_.value(cref.idx).record].flags & kRecStandby))
      return on_hit(b, i, cref, now);
  }
  if (clustered() && !cookie_ack) {
    bool handled = false;
    const bool ok = miss_to_holder(b, i, vip != kNoVip ? dkey : b.key[i], &handled);
    if (handled) return ok;
  }
  if (vip == kNoVip) {
    const FlowKey& ckey = b.key[i];
    if (cref.found()) return on_hit(b, i, cref, now);  // another node's copy: as before
    // From inside to outside: translated, or dropped when it cannot be (it
    // would leave with its internal source).
    const bool egress = is_outward(frame, m);
    if (egress && !egress_translatable(m)) return drop(GatewayCounter::kDropEgressUntranslatable);
    FwConnState st{};
    const FwVerdict v =
        fw_.new_connection(&st, frame, m, non_vip_dir_, egress ? false : b.reversed[i]);
    if (!v.accepted()) return drop(GatewayCounter::kDropFirewall);
    if (v.reason != FwReason::kCreated) {
      counters_.inc(GatewayCounter::kUntracked);
      return true;
    }
    *mutated = true;
    if (egress) return create_egress(b, i, dkey, dhash, now, st, v.timeout_s);
    const uint32_t idx = alloc_record();
    if (idx == UINT32_MAX) return drop(GatewayCounter::kDropRecordPoolFull);
    ConnRecord& r = records_[idx];
    r.fw = st;
    r.family = m.family;
    r.proto = m.proto;
    r.flags = kRecLive;
    r.deadline = now + timeout_ticks(v.timeout_s);
    // Unused otherwise: the key's endpoints, for replication (fill_sync()).
    const size_t alen = ckey.family == Family::kIpv6 ? 16 : 4;
    std::memcpy(r.client_addr, ckey.addr_a(), alen);
    std::memcpy(r.dip_addr, ckey.addr_b(), alen);
    r.client_port = ckey.port_a;
    r.dip_port = ckey.port_b;
    r.lb.spare = cluster_.node_id;
    const auto ins = table_.insert(ckey, ch, r.deadline);
    if (ins.status != InsertStatus::kInserted) {
      r.flags = 0;
      free_list_[free_top_++] = idx;
      return drop(GatewayCounter::kDropTableFull);
    }
    *mutated = true;
    table_.value(ins.ref.idx) = ConnLink{idx, kLinkCanonical, {}};
    ++live_;
    mark_dirty(idx);
    counters_.inc(GatewayCounter::kConnsCreated);
    return true;
  }

  const GatewayVipConfig& vc = vip_cfg_[vip];
  if (vc.mode == VipMode::kDsr || !vc.synproxy || m.proto != kProtoTcp) {
    *mutated = true;
    return create(b, i, dkey, dhash, vip, now, nullptr);
  }
  // SYN proxy: a SYN is answered with a cookie (the packet becomes the
  // SYN-ACK, no state); an ACK with a valid cookie becomes the backend SYN.
  uint8_t out[kScratch];
  if ((m.tcp_flags & (kTcpSyn | kTcpAck)) == kTcpSyn) {
    uint32_t len = 0;
    const SynProxyCounter ev = proxy_.answer_syn(frame, m, vc.synproxy_options,
                                                 b.now_ns + cookie_offset_, out, sizeof out, &len);
    proxy_.count(ev);
    if (is_drop(ev) || len > kMaxFrameLen) return drop(GatewayCounter::kDropSynProxy);
    std::memcpy(frame, out, len);
    b.pkts[i].len = len;
    if (parse_packet(frame, len, &m) != ParseError::kOk) return drop(GatewayCounter::kDropSynProxy);
    counters_.inc(GatewayCounter::kSynProxySynAck);
    return true;
  }
  CookieAck ack;
  SynProxyCounter ev = proxy_.check_ack(frame, m, b.now_ns + cookie_offset_, &ack);
  if (is_drop(ev) && clustered()) {  // not a cookie: maybe another node's flow
    bool handled = false;
    const bool ok = miss_to_holder(b, i, dkey, &handled);
    if (handled) return ok;
  }
  proxy_.count(ev);
  if (is_drop(ev)) return drop(GatewayCounter::kDropSynProxy);
  const SynProxyState sp = synproxy_begin(ack, vc.synproxy_options);
  BuiltFrame f;
  if (!adopt_built(b, i, build_backend_syn(frame, m, ack, out, sizeof out, &f), out, f))
    return false;
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
    if (r.flags & kRecDsr) return dsr_forward(b, i, r);  // about the backend's reply: to it
    NatResult a, q1, q2;
    if (link.direction == kLinkReply) {
      // About SNAT -> DIP: becomes about client -> VIP, sent to the client.
      a = nat_rewrite(frame, m, NatSide::kDestination, r.client_addr, 0);
      q1 = nat_rewrite_quote(frame, m, NatSide::kSource, r.client_addr, r.client_port);
      q2 = nat_rewrite_quote(frame, m, NatSide::kDestination, vip_addr(r), vip_port(r));
    } else {
      // About VIP -> client: becomes about DIP -> SNAT, sent to the backend.
      const uint8_t* snat = snat_addr(r);
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
  clock_ns_ = std::max(clock_ns_, b.now_ns);
  advance_to(b.now_ns);
  proxy_.advance(b.now_ns + cookie_offset_);
  const Tick now = to_ticks(b.now_ns);

  // Packets this stage appends (resets, window updates) come after these.
  const uint32_t received = b.n;
  uint32_t sel[Burst::kCapacity];
  FlowKey keys[Burst::kCapacity];
  uint64_t hashes[Burst::kCapacity] = {};  // (GCC -O3 cannot see hash_lookup_bulk fill it)
  Table::Ref refs[Burst::kCapacity];
  uint32_t n = 0;
  for (uint32_t i = 0; i < received; ++i) {
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
  }
  bool mutated = false;  // an insert moves entries: later refs must be re-read
  for (uint32_t j = 0; j < n; ++j) {
    const uint32_t i = sel[j];
    b.hash[i] = hashes[j];
    Table::Ref r = mutated ? table_.lookup(keys[j], hashes[j]) : refs[j];
    // A SYN reopening the tuple of a closed copy is a new connection: it
    // opens here, where the router sends it (below, as any reuse). Handed
    // to the old connection's processor, it would make that node process
    // every later connection on the tuple, each packet handed over.
    const Reopen reopen = r.found() ? reopens(b, i, table_.value(r.idx)) : Reopen::kNo;
    if (clustered() && r.found() && (records_[table_.value(r.idx).record].flags & kRecStandby) &&
        reopen == Reopen::kNo) {
      // Another node's flow: to it while it lives, else ours from now on.
      const uint32_t rec = table_.value(r.idx).record;
      const uint16_t p = records_[rec].lb.spare;
      // (A packet the processor itself handed here: it lost the flow.)
      if (p != cluster_.node_id && node_live(p) && mac_set(view_->mac[p]) &&
          std::memcmp(b.pkts[i].data + 6, view_->mac[p], 6) != 0) {
        redirect(b, i, p, GatewayCounter::kSyncRedirected);
        continue;
      }
      // Declared dead only just now: a node that stalled (an overloaded
      // machine) comes back within a few heartbeats with its flows, and a
      // copy promoted meanwhile would be a second processor, each node
      // seeing one direction. The sender resends; a real death is believed
      // after dead_after more.
      if (p != cluster_.node_id && node_suspect(p)) {
        drop(GatewayCounter::kSyncTakeoverWait);
        b.verdict[i] = Verdict::kDrop;
        continue;
      }
      // The processor is gone: the slot's first live holder takes the flow
      // over. A copy elsewhere is older (sent before a ring change), and
      // promoting it as well would split the flow's directions between two
      // nodes. A packet a peer handed here is ours, whatever the copy's age.
      if (const uint16_t h = takeover_node(b.pkts[i].data, records_[rec]);
          h != 0 && h != cluster_.node_id) {
        redirect(b, i, h, GatewayCounter::kSyncHandedToHolder);
        continue;
      }
      promote(rec);
    }
    Family reused_family = Family::kNone;
    // (Only a SYN-proxy connection: one from before the VIP's proxy was
    // turned on would not be reopened by the cookie's ACK.)
    if (reopen == Reopen::kSyn && (records_[table_.value(r.idx).record].flags & kRecSynProxy) &&
        synproxy_vip(b.pkts[i].data, b.meta[i])) {
      // The proxy answers with a cookie and keeps no state (on_miss); the
      // closed connection stays for the cookie's ACK to reopen (kCookie).
      r = Table::Ref{};
    } else if (reopen != Reopen::kNo) {
      const uint32_t rec = table_.value(r.idx).record;
      reused_family = records_[rec].family;
      // The new connection keeps the old SNAT port (create() takes it): to
      // the backend it is then the same client 4-tuple reopened, whose new
      // ISN and timestamps are ahead of the old ones (RFC 6528), which a
      // TIME_WAIT there accepts. Another client on that port would not be.
      has_reused_lease_ = end_connection(rec, &reused_lease_);
      counters_.inc(GatewayCounter::kConnsReused);
      mutated = true;
      r = Table::Ref{};
    }
    touched_ = kNoRecord;
    const uint32_t appended_from = b.n;
    const bool ok =
        r.found() ? on_hit(b, i, r, now) : on_miss(b, i, keys[j], hashes[j], now, &mutated);
    if (ok && any_output_commit_ && touched_ != kNoRecord && clustered())
      hold_for_commit(b, i, appended_from);
    if (table_moved_) {  // (rekey_snat(): an insert)
      mutated = true;
      table_moved_ = false;
    }
    if (has_reused_lease_) {  // not taken (a SYN-proxy cookie, a drop): back to the pool
      snat_[fam(reused_family)]->free(reused_lease_);
      has_reused_lease_ = false;
    }
    if (!ok) b.verdict[i] = Verdict::kDrop;
  }
  for (uint32_t i = 0; i < received; ++i) {
    if (b.verdict[i] != Verdict::kForward || !b.meta[i].has(kMetaIcmpError)) continue;
    if (!on_icmp_error(b, i)) b.verdict[i] = Verdict::kDrop;
  }
}

// ---- cluster ----

// Output commit: the packet, and what this stage appended for it (a backend
// ACK, a window update), wait for the batch carrying the flow's latest
// change: the open one while the flow is queued for export, else the one it
// last went out in, until acknowledged. A closed flow's packets do not wait
// for its delete: a holder's copy of a connection that is over lets nothing
// through that the processor would have refused (a copy promoted before
// the delete came is an ESTABLISHED flow whose ends are gone), and a wait
// per close was a third of a short connection's round trips to holders.
// They still queue behind the flow's earlier held packets (order).
void GatewayStage::hold_for_commit(Burst& b, uint32_t i, uint32_t appended_from) {
  const ConnRecord& r = records_[touched_];
  if ((r.flags & (kRecStandby | kRecEgress)) || r.lb.vip >= vip_cfg_.size() ||
      !vip_cfg_[r.lb.vip].output_commit)
    return;
  uint16_t tag;
  if (!(r.flags & kRecLive) || sync_closed(r)) {  // freed, or its delete is queued
    if (!commit_.waits(r.lease.spare)) return;
    tag = r.lease.spare;
  } else if ((r.seen & kSyncQueued) || resync_pending_) {
    // Its record goes ahead of the others (a resync queues every flow: the
    // open batch must not wait for all of them).
    tag = commit_.open;
    export_due_ = true;
    // The flow's latest tag, until its export sets the same or a later one:
    // what its packets after a close wait behind (tags never decrease).
    records_[touched_].lease.spare = tag;
    if (!(records_[touched_].seen & kSyncUrgent)) {
      if (urgent_tail_ - urgent_head_ < urgent_.size()) {
        records_[touched_].seen |= kSyncUrgent;
        urgent_[urgent_tail_++ % urgent_.size()] = touched_;
      } else {
        urgent_overflow_ = true;  // the batch closes when the whole queue is out
      }
    }
  } else if (commit_.waits(r.lease.spare)) {
    tag = r.lease.spare;
  } else {
    return;
  }
  b.held[i] = true;
  b.hold_tag[i] = tag;
  for (uint32_t k = appended_from; k < b.n; ++k) {
    b.held[k] = true;
    b.hold_tag[k] = tag;
  }
}

bool GatewayStage::redirect(Burst& b, uint32_t i, uint16_t node, GatewayCounter c) {
  // Same segment: only the destination MAC changes; the node's XDP program
  // steers the VIP / SNAT destination to its workers as for any packet.
  set_dst_mac(b.pkts[i].data, view_->mac[node]);
  b.l2[i] = L2Action::kKeepDst;
  counters_.inc(c);
  return true;
}

uint32_t GatewayStage::find_cluster_snat(Family f, const uint8_t* addr) const {
  const size_t len = f == Family::kIpv6 ? 16 : 4;
  for (uint32_t a = 0; a < cluster_.snat_addresses.size(); ++a) {
    const SnatAddress& sa = cluster_.snat_addresses[a];
    if (sa.family == f && std::memcmp(sa.addr, addr, len) == 0) return a;
  }
  return UINT32_MAX;
}

uint32_t GatewayStage::packet_slot(const Burst& b, uint32_t i) const {
  const PacketMeta& m = b.meta[i];
  if (m.has(kMetaNotIp)) return kNoSlot;
  const uint8_t* frame = b.pkts[i].data;
  if (!m.has(kMetaIcmpError)) {
    // Fragments have no ports in their key (all pieces alike): none here either.
    const uint16_t dport = m.has(kMetaHasL4) && !m.has(kMetaFragment) ? m.dport : 0;
    return layout_.slot(b.key[i], m.family, frame + m.dst_off, dport);
  }
  // An error travels against the packet it quotes: it goes where a packet
  // from the quote's destination to its source goes (on_icmp_error()).
  bool qrev = false;
  const FlowKey c = flow_key_of_quote(frame, m, true, &qrev);
  const FlowKey k = swapped(directional(c, qrev));
  return layout_.slot(c, k.family, k.addr_b(), k.port_b);
}

bool GatewayStage::miss_to_holder(Burst& b, uint32_t i, const FlowKey& key, bool* handled) {
  const PacketMeta& m = b.meta[i];
  if (!m.has(kMetaHasL4) || m.has(kMetaFragment)) return false;
  const uint32_t a = find_cluster_snat(m.family, b.pkts[i].data + m.dst_off);
  const SnatPortAllocator* pool =
      (a != UINT32_MAX && cluster_egress(a) ? egress_ : snat_)[fam(m.family)].get();
  // A reply to a cluster SNAT address (another node's, or this node's from
  // before a restart) names its slot by its port. Such a packet never opens
  // a flow: a holder has it, or no one.
  const bool foreign_reply = a != UINT32_MAX;
  uint32_t slot;
  if (foreign_reply) {
    // A SYN alone is no reply (scans of the public SNAT and egress
    // addresses): no one is asked about it.
    const bool syn_only =
        m.proto == kProtoTcp && (m.tcp_flags & (kTcpSyn | kTcpAck | kTcpRst | kTcpFin)) == kTcpSyn;
    if (pool == nullptr || !pool->in_range(m.dport) || syn_only) {
      *handled = true;
      return drop(GatewayCounter::kDropSyncNoState);
    }
    slot = pool->partition_of(m.dport);
  } else {
    // Only what cannot open a flow goes elsewhere: TCP that is not a SYN.
    // (UDP cannot tell: a datagram of another node's flow opens one here.)
    if (m.proto != kProtoTcp || (m.tcp_flags & (kTcpSyn | kTcpAck | kTcpRst)) == kTcpSyn)
      return false;
    slot = slot_of(key);
  }
  // The slot's first live holder has the flow's copy (or the flow): it is
  // the old first backup when the processor died, and the processor itself
  // otherwise whenever it comes first. If that is this node, the previous
  // epoch's (a rejoining node has not got its copies yet). A packet a peer
  // already handed over is never passed on again: no loops.
  if (view_ != nullptr && !from_peer(b.pkts[i].data)) {
    uint16_t target = slot_holder(slot);
    if (target == cluster_.node_id) target = first_live(view_->prev_holders[slot]);
    if (target != 0 && target != cluster_.node_id) {
      *handled = true;
      if (pull_ns_ == 0) return redirect(b, i, target, GatewayCounter::kSyncMissRedirected);
      uint16_t to = target;
      switch (pull(b, i, target, &to)) {
        case PullStep::kParked:
          return true;
        case PullStep::kRedirect:
          return redirect(b, i, to,
                          to == target ? GatewayCounter::kSyncMissRedirected
                                       : GatewayCounter::kSyncPullReferred);
        case PullStep::kUnknown:  // no one has it
          *handled = false;
          break;
        case PullStep::kDrop:
          return false;  // counted
      }
    }
  }
  if (!foreign_reply) return false;  // the firewall decides (an unknown flow)
  *handled = true;
  return drop(GatewayCounter::kDropSyncNoState);
}

// ---- pulling ----
//
// The router moved a flow here (a node died, or rejoined): rather than hand
// each of its packets to the slot's holder for the rest of the flow's life,
// this node asks the holder for the state (a pull) and parks the packets
// meanwhile. The holder grants its copy (the flow is processed here from
// then on, the holder keeps a copy naming this node), or refers to the node
// that processes the flow, or says no one has it. The holder decides alone,
// so two nodes that pull the two directions of one flow cannot both take
// it: the second is referred to the first. No answer within pull_timeout:
// the packets are handed over as without pulling.

GatewayStage::PullStep GatewayStage::pull(Burst& b, uint32_t i, uint16_t target, uint16_t* to) {
  const FlowKey k = directional(b.key[i], b.reversed[i]);
  const uint64_t h = b.hash[i];  // of the directional key (process())
  auto park = [&](Pull& e) {
    ++e.parked;
    ++parked_;
    b.verdict[i] = Verdict::kPark;
    b.hold_tag[i] =
        static_cast<uint16_t>(static_cast<uint32_t>(&e - pulls_.data()) + kPulls * uint32_t{e.gen});
    counters_.inc(GatewayCounter::kSyncPullParked);
    return PullStep::kParked;
  };
  Pull* free_entry = nullptr;
  for (Pull& e : pulls_) {
    if (e.state == PullState::kFree) {
      if (free_entry == nullptr) free_entry = &e;
      continue;
    }
    if (e.hash != h || !(e.key == k)) continue;
    switch (e.state) {
      case PullState::kWaiting:
        if (e.parked < kMaxParkedPerPull && parked_ < kMaxParked) return park(e);
        // Not handed over: the holder may have granted the flow already,
        // and a packet from us would make it take the flow back (two
        // processors). TCP sends it again.
        counters_.inc(GatewayCounter::kSyncPullOverflow);
        return PullStep::kDrop;
      case PullState::kReferred:
        if (e.node == 0) {
          counters_.inc(GatewayCounter::kSyncPullNone);
          return PullStep::kUnknown;
        }
        if (e.node != cluster_.node_id && node_live(e.node) && mac_set(view_->mac[e.node]))
          *to = e.node;
        return PullStep::kRedirect;
      case PullState::kTimedOut:
        return PullStep::kRedirect;
      case PullState::kGranted:  // the flow was here and is gone again: ask anew
      case PullState::kFree:
        break;
    }
    e.state = PullState::kFree;
    --pulls_active_;
    if (free_entry == nullptr) free_entry = &e;
  }
  FlowSync q;
  q.op = FlowSyncOp::kPull;
  q.family = k.family;
  q.proto = k.proto;
  q.processor = cluster_.node_id;
  const size_t alen = k.family == Family::kIpv6 ? 16 : 4;
  std::memcpy(q.src_addr, k.addr_a(), alen);
  std::memcpy(q.dst_addr, k.addr_b(), alen);
  q.src_port = k.port_a;
  q.dst_port = k.port_b;
  q.peer = target;
  if (free_entry == nullptr || parked_ >= kMaxParked || !send_out(q)) {
    counters_.inc(GatewayCounter::kSyncPullBusy);
    return PullStep::kRedirect;
  }
  Pull& e = *free_entry;
  e.key = k;
  e.hash = h;
  e.due_ns = b.now_ns + pull_ns_;
  e.target = target;
  e.node = 0;
  e.parked = 0;
  e.gen = static_cast<uint8_t>(e.gen + 1);
  e.state = PullState::kWaiting;
  ++pulls_active_;
  counters_.inc(GatewayCounter::kSyncPullSent);
  return park(e);
}

bool GatewayStage::send_out(const FlowSync& s) {
  if (out_tail_ - out_head_ == outbox_.size()) return false;
  outbox_[out_tail_++ % outbox_.size()] = s;
  return true;
}

GatewayStage::Table::Ref GatewayStage::find_flow(const FlowKey& dkey) const {
  const Table::Ref ref = table_.lookup(dkey, hash(dkey));
  if (ref.found()) return ref;
  bool rev = false;
  const FlowKey c = make_flow_key(dkey.family, dkey.proto, dkey.addr_a(), dkey.addr_b(),
                                  dkey.port_a, dkey.port_b, true, &rev);
  if (!rev) return ref;  // the canonical key is the one just looked up
  const Table::Ref cref = table_.lookup(c, hash(c));
  if (cref.found() && table_.value(cref.idx).direction == kLinkCanonical) return cref;
  return Table::Ref{};
}

// On the holder: the node that asks gets the copy, or where to send the
// flow's packets.
GatewayCounter GatewayStage::answer_pull(const FlowSync& s, uint64_t now_ns) {
  const FlowKey k = sync_key(s);
  FlowSync a = s;
  a.op = FlowSyncOp::kRefer;
  a.kind = 0;
  a.processor = cluster_.node_id;
  a.peer = s.processor;
  a.node = 0;  // no one has it
  bool give = false;
  const Table::Ref ref = find_flow(k);
  if (ref.found()) {
    const uint32_t idx = table_.value(ref.idx).record;
    ConnRecord& r = records_[idx];
    const uint16_t p = r.lb.spare;
    if (!(r.flags & kRecStandby)) {
      a.node = cluster_.node_id;  // processed here: its packets come here
    } else if (p != 0 && p != s.processor && node_live(p)) {
      a.node = p;
    } else if (const uint16_t h = view_ != nullptr ? slot_holder(slot_of(record_key(r))) : 0;
               h != 0 && h != cluster_.node_id && h != s.processor) {
      // The processor is gone, and the flow is the slot's first live
      // holder's to give (as in process()): two holders granting one flow
      // to two askers (a restarted node's previous epoch is not the
      // survivors') would split it. The asker's packets go there.
      a.node = h;
    } else if (p != s.processor && node_suspect(p)) {
      // Declared dead only just now (see process()): not given yet. Its
      // packets come here, and wait as the ones the router sends here do.
      a.node = cluster_.node_id;
      counters_.inc(GatewayCounter::kSyncTakeoverWait);
    } else {
      // Its processor is gone (or is the asker, which lost it): the asker
      // processes it from now on, and this copy names it.
      fill_sync(r, &a, FlowSyncOp::kFull, to_ticks(now_ns));
      a.op = FlowSyncOp::kGrant;
      a.peer = s.processor;
      give = true;
    }
  }
  if (!send_out(a)) {  // the asker times out and hands its packets over
    counters_.inc(GatewayCounter::kSyncPullBusy);
    return GatewayCounter::kSyncPullBusy;
  }
  counters_.inc(GatewayCounter::kSyncPullAnswered);
  if (!give) return GatewayCounter::kSyncPullAnswered;
  records_[table_.value(ref.idx).record].lb.spare = s.processor;
  counters_.inc(GatewayCounter::kSyncPullGiven);
  return GatewayCounter::kSyncPullGiven;
}

GatewayCounter GatewayStage::on_refer(const FlowSync& s, uint64_t now_ns) {
  const FlowKey k = sync_key(s);
  for (Pull& e : pulls_) {
    if (e.state != PullState::kWaiting || !(e.key == k) || e.target != s.processor) continue;
    e.node = s.node;
    resolve(e, PullState::kReferred,
            now_ns + (s.node != 0 ? std::max(kReferNs, pull_ns_) : pull_ns_));
    return GatewayCounter::kSyncPullReferred;
  }
  // A grant declined (see import_sync): our copy named the sender, which
  // does not process the flow; it has no processor again.
  if (s.node == 0) {
    const Table::Ref ref = find_flow(k);
    if (ref.found()) {
      ConnRecord& r = records_[table_.value(ref.idx).record];
      if ((r.flags & kRecStandby) && r.lb.spare == s.processor) {
        r.lb.spare = 0;
        counters_.inc(GatewayCounter::kSyncPullReturned);
        return GatewayCounter::kSyncPullReturned;
      }
    }
  }
  counters_.inc(GatewayCounter::kSyncPullLate);  // timed out before: its packets went on
  return GatewayCounter::kSyncPullLate;
}

bool GatewayStage::grant_awaited(const FlowSync& s) const {
  // The pull named either direction of the flow (for a firewall-only flow,
  // either order of its key).
  FlowKey keys[3];
  uint32_t n = 0;
  keys[n++] = sync_key(s);
  keys[n++] = swapped(keys[0]);
  if (s.kind & kSyncNat)
    keys[n++] =
        make_flow_key(s.family, s.proto, s.dip_addr, s.snat_addr, s.dip_port, s.snat_port, false);
  for (const Pull& e : pulls_) {
    if (e.state != PullState::kWaiting || e.target != s.processor) continue;
    for (uint32_t j = 0; j < n; ++j)
      if (e.key == keys[j]) return true;
  }
  return false;
}

void GatewayStage::settle_pulls(uint64_t now_ns) {
  for (Pull& e : pulls_) {
    if (e.state != PullState::kWaiting) continue;
    // Processed here now; a copy (another node's flow, arrived meanwhile)
    // does not settle it: the answer will.
    const Table::Ref ref = find_flow(e.key);
    if (ref.found() && !(records_[table_.value(ref.idx).record].flags & kRecStandby))
      resolve(e, PullState::kGranted, now_ns + pull_ns_);
  }
}

void GatewayStage::expire_pulls(uint64_t now_ns) {
  for (Pull& e : pulls_) {
    if (e.state == PullState::kFree || static_cast<int64_t>(now_ns - e.due_ns) < 0) continue;
    if (e.state == PullState::kWaiting) {
      // No answer: its packets go to the holder (handed over), and so do
      // the flow's next ones for as long again.
      resolve(e, PullState::kTimedOut, now_ns + pull_ns_);
      counters_.inc(GatewayCounter::kSyncPullTimeout);
    } else {
      e.state = PullState::kFree;
      --pulls_active_;
    }
  }
}

void GatewayStage::resolve(Pull& e, PullState to, uint64_t due_ns) {
  e.state = to;
  e.due_ns = due_ns;
  parked_ -= e.parked;  // the pipeline runs them again
  e.parked = 0;
  ++pull_news_;
}

uint16_t GatewayStage::takeover_node(const uint8_t* frame, const ConnRecord& r) const {
  if (view_ == nullptr || from_peer(frame)) return 0;
  return slot_holder(slot_of(record_key(r)));
}

uint16_t GatewayStage::slot_holder(uint32_t slot) const {
  const uint16_t h = first_live(view_->holders[slot]);
  // A node still joining (a restart) is taking in its copies: until it is
  // ready, the previous epoch's first live holder has them.
  if (h != 0 && h != cluster_.node_id && node_joining(h)) {
    for (uint8_t n : view_->prev_holders[slot])  // (another may be joining too)
      if (n != 0 && node_live(n) && !node_joining(n) && mac_set(view_->mac[n])) return n;
  }
  return h;
}

uint16_t GatewayStage::first_live(const uint8_t (&holders)[kViewHolders]) const {
  for (uint8_t n : holders)
    if (n != 0 && node_live(n) && mac_set(view_->mac[n])) return n;
  return 0;
}

bool GatewayStage::from_peer(const uint8_t* frame) const {
  // Redirects leave with the sender's own MAC as the source (L2Action::kKeepDst).
  for (uint64_t live = view_->live; live != 0; live &= live - 1) {
    const auto n = static_cast<uint16_t>(__builtin_ctzll(live) + 1);
    if (n != cluster_.node_id && std::memcmp(frame + 6, view_->mac[n], 6) == 0) return true;
  }
  return false;
}

void GatewayStage::promote(uint32_t idx) {
  ConnRecord& r = records_[idx];
  r.flags &= static_cast<uint8_t>(~kRecStandby);
  r.lb.spare = cluster_.node_id;
  r.seen &= static_cast<uint8_t>(~kSyncSent);  // to this node's holders, in full
  --standby_;
  ++live_;
  mark_dirty(idx, true);  // its holders may have no copy: not after an interval
  counters_.inc(GatewayCounter::kSyncPromoted);
}

void GatewayStage::peer_down(uint16_t node) {
  // A pull it will never answer: its packets run again and ask the new
  // holder (the view has changed already).
  for (Pull& e : pulls_) {
    if (e.state != PullState::kFree && (e.target == node || e.node == node)) {
      resolve(e, PullState::kFree, 0);
      --pulls_active_;
    }
  }
}

void GatewayStage::peer_restarted(uint16_t node) {
  peer_down(node);
  // Without this, the restarted peer (alive, empty) and a holder would hand
  // its old flows' packets to each other.
  for (uint32_t i = 0; i < capacity_; ++i) {
    ConnRecord& r = records_[i];
    if ((r.flags & (kRecLive | kRecStandby)) == (kRecLive | kRecStandby) && r.lb.spare == node)
      r.lb.spare = 0;
  }
}

bool GatewayStage::take_orphan(uint32_t idx) {
  // A copy whose processor died, of a slot this node held first and another
  // node holds first now (it joined before this one): misses go there, and
  // only this node has the flow. Taken over, it goes there in full (with
  // the resync, or as a change). Not a copy this node kept from an older
  // ring (the slot's first holder before this change has the current one),
  // nor one whose processor may only have stalled (suspect: the rescan
  // once the suspicion is over takes it).
  ConnRecord& r = records_[idx];
  if ((r.flags & (kRecLive | kRecStandby)) != (kRecLive | kRecStandby) || view_ == nullptr ||
      node_live(r.lb.spare) || node_suspect(r.lb.spare) || sync_closed(r))
    return false;
  const uint32_t slot = slot_of(record_key(r));
  const uint16_t h = first_live(view_->holders[slot]);
  if (h == 0 || h == cluster_.node_id || first_live(view_->prev_holders[slot]) != cluster_.node_id)
    return false;
  promote(idx);
  counters_.inc(GatewayCounter::kSyncOrphanTaken);
  return true;
}

void GatewayStage::take_orphans() {
  for (uint32_t i = 0; i < capacity_; ++i)
    take_orphan(i);
}

void GatewayStage::resync() {
  // Everything is queued again below: what the queue held goes with it.
  dirty_head_ = dirty_tail_;
  for (uint32_t i = 0; i < capacity_; ++i) {
    ConnRecord& r = records_[i];
    r.seen &= static_cast<uint8_t>(~(kSyncQueued | kSyncInQueue | kSyncLazy));
    take_orphan(i);
    if ((r.flags & kRecLive) && !(r.flags & kRecStandby)) {
      // A closed flow's copy still out there gets its delete; an open one
      // goes in full (the holders may have changed).
      if (sync_closed(r)) {
        if (r.seen & kSyncSent) mark_dirty(i, true);
      } else {
        r.seen &= static_cast<uint8_t>(~kSyncSent);
        mark_dirty(i, true);  // (resync_exported() waits for it)
      }
    }
  }
  resync_end_ = dirty_tail_;
}

void GatewayStage::fill_sync(const ConnRecord& r, FlowSync* s, FlowSyncOp op, Tick now) const {
  *s = FlowSync{};
  s->op = op;
  s->family = r.family;
  s->proto = r.proto;
  const bool nat = (r.flags & kRecNat) != 0;
  s->kind = sync_kind(r);
  s->processor = cluster_.node_id;
  s->seen = r.seen & (kSeenFin | kSeenRst);
  const size_t alen = r.family == Family::kIpv6 ? 16 : 4;
  std::memcpy(s->src_addr, r.client_addr, alen);
  s->src_port = r.client_port;
  if (s->kind != 0) {
    std::memcpy(s->dst_addr, vip_addr(r), alen);
    s->dst_port = vip_port(r);
  } else {  // firewall only: the canonical key's b side
    std::memcpy(s->dst_addr, r.dip_addr, alen);
    s->dst_port = r.dip_port;
  }
  if (op == FlowSyncOp::kDelete) return;
  const auto left = static_cast<int32_t>(r.deadline - now);
  s->remaining_ms =
      left > 0 ? static_cast<uint32_t>(left) * static_cast<uint32_t>(kTickNs / 1'000'000) : 0;
  s->fw = r.fw;
  s->fw.peer[0] = s->fw.peer[1] = FwTcpPeer{};  // re-learned on promotion
  s->sp = r.sp;
  if (op != FlowSyncOp::kFull) return;
  if (s->kind != 0) {
    std::memcpy(s->dip_addr, r.dip_addr, alen);
    s->dip_port = r.dip_port;
  }
  if (nat) {
    std::memcpy(s->snat_addr, snat_addr(r), alen);
    s->snat_port = r.lease.port;
  }
}

uint32_t GatewayStage::export_sync(FlowSync* out, uint32_t max, uint64_t now_ns) {
  if (!clustered()) return 0;
  if (resync_pending_) {  // the queue overflowed: everything goes again
    resync_pending_ = false;
    resync();
  }
  const Tick now = to_ticks(now_ns);
  uint32_t n = 0;
  // Pulls and answers: packets wait for them.
  while (n < max && out_head_ != out_tail_)
    out[n++] = outbox_[out_head_++ % outbox_.size()];
  // Closed flows first: a tuple closed and reopened since the last call
  // then reaches the holders as delete + full, in that order.
  while (n < max && del_head_ != del_tail_)
    out[n++] = deletes_[del_head_++ % deletes_.size()];
  auto export_one = [&](uint32_t idx) {
    ConnRecord& r = records_[idx];
    // A stale entry: freed (and maybe reused and queued again) since, or
    // already out (urgent).
    if (!(r.flags & kRecLive) || !(r.seen & kSyncQueued)) return;
    r.seen &= static_cast<uint8_t>(~(kSyncQueued | kSyncLazy));  // a lazy change goes too
    if (r.flags & kRecStandby) return;
    if (sync_closed(r)) {  // (its packets wait for no delete: hold_for_commit())
      // Over: nothing a holder could continue. Its copy goes now rather
      // than at expiry, so that churn does not fill the holders' tables.
      if (r.seen & kSyncSent) fill_sync(r, &out[n++], FlowSyncOp::kDelete, now);
      r.seen &= static_cast<uint8_t>(~kSyncSent);
      return;
    }
    r.lease.spare = commit_.open;  // output commit: the batch that carries it
    fill_sync(r, &out[n++], (r.seen & kSyncSent) ? FlowSyncOp::kUpdate : FlowSyncOp::kFull, now);
    r.seen |= kSyncSent;
  };
  // Changes that waited out their VIP's interval: to the export queue.
  clock_ns_ = std::max(clock_ns_, now_ns);
  for (const auto& d : delays_) {
    while (d->head != d->tail) {
      const DelayEntry e = d->ring[d->head % d->ring.size()];
      if (e.due_ns > now_ns) break;
      ++d->head;
      ConnRecord& r = records_[e.idx];
      if (!(r.seen & kSyncLazy)) continue;  // exported or freed since
      r.seen &= static_cast<uint8_t>(~kSyncLazy);
      if (r.flags & kRecLive) enqueue_dirty(e.idx);
    }
  }
  // Closes under way that lasted: to the export queue.
  while (lazy_head_ != lazy_tail_) {
    const LazyEntry e = lazy_[lazy_head_ % lazy_.size()];
    if (static_cast<int32_t>(e.due - now) > 0) break;
    ++lazy_head_;
    ConnRecord& r = records_[e.idx];
    if (!(r.seen & kSyncLazy)) continue;  // exported or freed since
    r.seen &= static_cast<uint8_t>(~kSyncLazy);
    if (r.flags & kRecLive) {
      mark_dirty(e.idx);
      counters_.inc(GatewayCounter::kSyncLazyDue);
    }
  }
  // Output commit: the flows that packets wait for, ahead of the queue.
  while (n < max && urgent_head_ != urgent_tail_) {
    const uint32_t idx = urgent_[urgent_head_++ % urgent_.size()];
    records_[idx].seen &= static_cast<uint8_t>(~kSyncUrgent);
    export_one(idx);
  }
  while (n < max && dirty_head_ != dirty_tail_) {
    const uint32_t idx = dirty_[dirty_head_++ % dirty_.size()];
    records_[idx].seen &= static_cast<uint8_t>(~kSyncInQueue);
    export_one(idx);
  }
  if (dirty_head_ == dirty_tail_) urgent_overflow_ = false;
  counters_.inc(GatewayCounter::kSyncExported, n);
  return n;
}

uint8_t GatewayStage::sync_kind(const ConnRecord& r) {
  const bool nat = (r.flags & kRecNat) != 0;
  // (A reused tuple's old record is freed as DSR-like, end_connection(): its
  // delete must still decode, so the SYN-proxy bit goes with NAT only.)
  return static_cast<uint8_t>((nat ? kSyncNat : 0) | ((r.flags & kRecDsr) ? kSyncDsr : 0) |
                              (nat && (r.flags & kRecSynProxy) ? kSyncSynProxy : 0) |
                              (nat && (r.flags & kRecEgress) ? kSyncEgress : 0));
}

bool GatewayStage::same_write_once(const ConnRecord& r, const FlowSync& s) const {
  const size_t alen = r.family == Family::kIpv6 ? 16 : 4;
  const uint8_t kind = sync_kind(r);
  if (kind != s.kind) return false;
  if (kind == 0) return true;  // the key is all there is
  if (r.dip_port != s.dip_port || std::memcmp(r.dip_addr, s.dip_addr, alen) != 0) return false;
  return !(r.flags & kRecNat) ||
         (r.lease.port == s.snat_port && std::memcmp(snat_addr(r), s.snat_addr, alen) == 0);
}

GatewayCounter GatewayStage::import_sync(const FlowSync& s, uint64_t now_ns) {
  if (!clustered() || s.processor == cluster_.node_id) {
    counters_.inc(GatewayCounter::kSyncIgnoredLive);
    return GatewayCounter::kSyncIgnoredLive;
  }
  switch (s.op) {
    case FlowSyncOp::kPull:
      return answer_pull(s, now_ns);
    case FlowSyncOp::kRefer:
      return on_refer(s, now_ns);
    case FlowSyncOp::kGrant: {
      // Only for a pull still waiting: one that timed out has handed its
      // packets to the holder, which takes the flow back with them (two
      // processors otherwise).
      if (!grant_awaited(s)) {
        counters_.inc(GatewayCounter::kSyncPullLate);
        const FlowKey k = sync_key(s);
        const Table::Ref ref = find_flow(k);
        if (ref.found() && !(records_[table_.value(ref.idx).record].flags & kRecStandby))
          return GatewayCounter::kSyncPullLate;  // here already (both directions were asked)
        // Declined: the granter's copy names this node, which does not
        // process the flow; a refer to no one gives it back (nobody would
        // process it otherwise: the granter hands everything here).
        FlowSync d = s;
        d.op = FlowSyncOp::kRefer;
        d.processor = cluster_.node_id;
        d.peer = s.processor;
        d.node = 0;
        if (send_out(d)) counters_.inc(GatewayCounter::kSyncPullDeclined);
        return GatewayCounter::kSyncPullLate;
      }
      // The holder's copy, ours to process now: made (or updated) as a
      // copy, then promoted.
      FlowSync full = s;
      full.op = FlowSyncOp::kFull;
      uint32_t idx = kNoRecord;
      const GatewayCounter c = import_copy(full, now_ns, &idx);
      if (idx != kNoRecord && (records_[idx].flags & kRecStandby)) {
        promote(idx);
        counters_.inc(GatewayCounter::kSyncPullGranted);
      }
      // (Also when the flow was here already: its packets run again.)
      settle_pulls(now_ns);
      return idx != kNoRecord ? GatewayCounter::kSyncPullGranted : c;
    }
    default:
      return import_copy(s, now_ns, nullptr);
  }
}

GatewayCounter GatewayStage::import_copy(const FlowSync& s, uint64_t now_ns, uint32_t* idx_out) {
  auto count = [&](GatewayCounter c) {
    counters_.inc(c);
    return c;
  };
  const Tick now = to_ticks(now_ns);
  const FlowKey k = sync_key(s);
  const uint64_t h = hash(k);
  // The processor's deadline plus the grace, within what the timer wheel holds.
  const uint64_t left = uint64_t{s.remaining_ms} / (kTickNs / 1'000'000) + 1 +
                        timeout_ticks(cluster_.standby_grace_s);
  const Tick deadline = now + static_cast<Tick>(std::min<uint64_t>(left, Table::kMaxTimeout));
  Table::Ref ref = table_.lookup(k, h);
  if (ref.found()) {
    const uint32_t idx = table_.value(ref.idx).record;
    ConnRecord& r = records_[idx];
    if (!(r.flags & kRecStandby)) {
      // Our connection on this tuple is over and another node opened a new
      // one (the router sends the tuple there now): its copy replaces ours.
      // (is_closed() is about LB connections; an egress one by its TCP state.)
      const bool closed =
          (r.flags & kRecEgress) ? r.proto == kProtoTcp && sync_closed_state(r.fw) : is_closed(r);
      if (s.op != FlowSyncOp::kFull || !closed || same_write_once(r, s) || sync_closed_state(s.fw))
        return count(GatewayCounter::kSyncIgnoredLive);
      end_connection(idx);
      counters_.inc(GatewayCounter::kSyncSuperseded);
      ref = Table::Ref{};
    } else if (s.op != FlowSyncOp::kFull && r.lb.spare != 0 && r.lb.spare != s.processor) {
      // About an older connection on the tuple, by its processor, after a
      // newer one's full record from another node replaced it here.
      return count(GatewayCounter::kSyncStale);
    } else if (s.op == FlowSyncOp::kDelete) {
      end_connection(idx);
      return count(GatewayCounter::kSyncDeleted);
    }
    if (!ref.found()) {
      // Ours ended above: the new copy is made below.
    } else if (s.op == FlowSyncOp::kFull && !same_write_once(r, s)) {
      // Another connection on the same tuple (the old one's delete was
      // lost): the old copy goes, the new one is made below.
      end_connection(idx);
      ref = Table::Ref{};
    } else {
      r.fw = s.fw;
      r.sp = s.sp;
      r.seen = static_cast<uint8_t>((r.seen & ~(kSeenFin | kSeenRst)) |
                                    (s.seen & (kSeenFin | kSeenRst)));
      r.lb.spare = s.processor;
      r.deadline = deadline;
      if (idx_out != nullptr) *idx_out = idx;
      // Keys' deadlines are lower bounds: pull them in if the flow now ends sooner.
      if (static_cast<int32_t>(deadline - table_.deadline(ref)) < 0)
        table_.set_deadline(ref, deadline);
      if (r.flags & kRecNat) {
        const FlowKey rk = reply_key(r);
        const Table::Ref rref = table_.lookup(rk, hash(rk));
        if (rref.found() && static_cast<int32_t>(deadline - table_.deadline(rref)) < 0)
          table_.set_deadline(rref, deadline);
      }
      return count(GatewayCounter::kSyncUpdated);
    }
  }
  if (s.op != FlowSyncOp::kFull) return count(GatewayCounter::kSyncUpdateUnknown);

  const uint32_t idx = alloc_record();
  if (idx == UINT32_MAX) return count(GatewayCounter::kDropRecordPoolFull);
  ConnRecord& r = records_[idx];
  auto fail = [&](GatewayCounter c) {
    if (r.flags & kRecReserved)
      pool_of(r).free(SnatLease{own_index_[r.lease.address], r.lease.port});
    r.flags = 0;
    free_list_[free_top_++] = idx;
    return count(c);
  };
  const size_t alen = s.family == Family::kIpv6 ? 16 : 4;
  r.family = s.family;
  r.proto = s.proto;
  std::memcpy(r.client_addr, s.src_addr, alen);
  r.client_port = s.src_port;
  r.fw = s.fw;
  r.sp = s.sp;
  r.seen = s.seen & (kSeenFin | kSeenRst);
  r.deadline = deadline;
  r.flags = kRecLive | kRecStandby;
  r.lb.spare = s.processor;
  Selection sel;
  if (s.kind == 0) {
    // A firewall-only flow to a VIP would pass it untranslated.
    if (lb_.find_vip(VipKey{IpAddress::from_bytes(s.family, s.dst_addr), s.proto, s.dst_port}) !=
        kNoVip)
      return fail(GatewayCounter::kSyncUnknownVip);
    std::memcpy(r.dip_addr, s.dst_addr, alen);
    r.dip_port = s.dst_port;
    const auto ins = table_.insert(k, h, deadline);
    if (ins.status != InsertStatus::kInserted) return fail(GatewayCounter::kDropTableFull);
    table_.value(ins.ref.idx) = ConnLink{idx, kLinkCanonical, {}};
  } else if (s.kind & kSyncEgress) {
    // Egress SNAT (an internal host to the outside): no VIP, no backend.
    const uint32_t a = find_cluster_snat(s.family, s.snat_addr);
    if (a == UINT32_MAX || !cluster_egress(a) || !egress_[fam(s.family)])
      return fail(GatewayCounter::kSyncUnknownSnat);
    std::memcpy(r.dip_addr, s.dip_addr, alen);
    r.dip_port = s.dip_port;
    r.lease = SnatLease{a, s.snat_port};
    r.flags |= kRecNat | kRecEgress | kRecForeign;
    if (own_index_[a] != UINT32_MAX && pool_of(r).reserve(SnatLease{own_index_[a], s.snat_port}))
      r.flags |= kRecReserved;
    if (!insert_keys(k, h, idx, r)) return fail(GatewayCounter::kDropTableFull);
  } else {
    VipKey vk;
    vk.addr = IpAddress::from_bytes(s.family, s.dst_addr);
    vk.proto = s.proto;
    vk.port = s.dst_port;
    const VipId vip = lb_.find_vip(vk);
    if (vip == kNoVip) return fail(GatewayCounter::kSyncUnknownVip);
    sel = lb_.pools().find_backend(vip, IpAddress::from_bytes(s.family, s.dip_addr), s.dip_port,
                                   s.dst_port);
    if ((s.kind & kSyncDsr) && sel.backend == nullptr)
      return fail(GatewayCounter::kSyncUnknownBackend);
    // Without a local version the flow still translates (the DIP is in the
    // record); it only escapes the pool's connection count and kills.
    r.lb = LbConn{vip, sel.backend != nullptr ? sel.version : kNoVersion, sel.index, s.processor};
    // Replication off here (a reload on the way through the cluster): once
    // promoted, the flow is not exported again.
    if (!vip_cfg_[vip].replicated) r.seen |= kSyncLocal;
    std::memcpy(r.dip_addr, s.dip_addr, alen);
    r.dip_port = s.dip_port;
    if (s.kind & kSyncNat) {
      const uint32_t a = find_cluster_snat(s.family, s.snat_addr);
      if (a == UINT32_MAX || cluster_egress(a)) return fail(GatewayCounter::kSyncUnknownSnat);
      r.lease = SnatLease{a, s.snat_port};
      r.flags |= kRecNat | kRecForeign | ((s.kind & kSyncSynProxy) ? kRecSynProxy : 0);
      // This node's own address (its flow before a restart): the port must
      // not be handed out again while the flow lives on.
      if (own_index_[a] != UINT32_MAX &&
          snat_[fam(s.family)]->reserve(SnatLease{own_index_[a], s.snat_port}))
        r.flags |= kRecReserved;
      if (!insert_keys(k, h, idx, r)) return fail(GatewayCounter::kDropTableFull);
    } else {
      r.flags |= kRecDsr;
      const auto ins = table_.insert(k, h, deadline);
      if (ins.status != InsertStatus::kInserted) return fail(GatewayCounter::kDropTableFull);
      table_.value(ins.ref.idx) = ConnLink{idx, kLinkOriginal, {}};
    }
    if (sel.backend != nullptr) lb_.conn_opened(vip, sel.version);
  }
  ++standby_;
  if (idx_out != nullptr) *idx_out = idx;
  return count(GatewayCounter::kSyncImported);
}

void GatewayStage::export_counters(const CounterFn& fn) const {
  for (size_t i = 0; i < counters_.size(); ++i)
    fn(kGatewayCounterNames[i], counters_.get(i));
  fn("conns_live", live_);
  fn("conns_standby", standby_);
  fn("conns_capacity", capacity_);
  static constexpr const char* kFam[2] = {"ipv4", "ipv6"};
  for (size_t f = 0; f < 2; ++f) {
    if (snat_[f]) {
      uint64_t free = 0;
      for (uint32_t p = 0; p < snat_[f]->partitions(); ++p)
        free += snat_[f]->free_ports(p);
      fn(std::string("snat_free_ports_") + kFam[f], free);
      fn(std::string("snat_bad_frees_") + kFam[f], snat_[f]->bad_frees());
    }
    if (egress_[f]) {
      uint64_t free = 0;
      for (uint32_t p = 0; p < egress_[f]->partitions(); ++p)
        free += egress_[f]->free_ports(p);
      fn(std::string("egress_snat_free_ports_") + kFam[f], free);
      fn(std::string("egress_snat_bad_frees_") + kFam[f], egress_[f]->bad_frees());
    }
  }
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
