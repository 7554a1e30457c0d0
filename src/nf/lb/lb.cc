#include "nf/lb/lb.h"

#include <stdexcept>
#include <string>

namespace tripod {
namespace {

std::string describe(const VipKey& k) {
  return k.addr.to_string() + " proto " + std::to_string(k.proto) + " port " +
         std::to_string(k.port);
}

}  // namespace

Lb::Lb(const MaglevConfig& maglev) : maglev_(maglev) {
  maglev_table_size(0, maglev_.min_table_size);  // validates the floor now, not at first pool
}

VipId Lb::add_vip(const VipKey& key) {
  if (key.addr.empty()) throw std::invalid_argument("add_vip: empty VIP address");
  if (key.addr.family == Family::kIpv4) {
    for (size_t i = 4; i < 16; ++i)
      if (key.addr.bytes[i] != 0)
        throw std::invalid_argument("add_vip: IPv4 address with bytes set past the first 4");
  }
  if (key.proto != kProtoTcp && key.proto != kProtoUdp)
    throw std::invalid_argument("add_vip: protocol " + std::to_string(key.proto) +
                                " (only TCP 6 and UDP 17 are balanced)");
  if (key.port == 0) throw std::invalid_argument("add_vip: port 0 for " + describe(key));
  if (vips_.find(key) != kNoVip)
    throw std::invalid_argument("add_vip: duplicate VIP " + describe(key));
  // If an allocation below throws, the id is orphaned (no key maps to it):
  // harmless, and ids stay aligned with vip_counters_.
  const VipId id = pools_.add_vip();
  vip_counters_.resize(size_t{id} + 1);
  vip_counters_[id] = std::make_unique<VipCounters>();
  vips_.insert(key, id);
  set_gauge(LbGauge::kVips, vips_.size());
  return id;
}

void Lb::remove_vip(const VipKey& key) {
  const VipId id = vips_.find(key);
  if (id == kNoVip) throw std::invalid_argument("remove_vip: no VIP " + describe(key));
  pools_.remove_vip(id);
  vips_.erase(key);
  set_gauge(LbGauge::kVips, vips_.size());
  update_version_gauges();
}

uint32_t Lb::prepare(VipId vip, const PoolSpec& spec, uint32_t version) {
  return prepare(vip, build_pool(spec, maglev_), version);
}

uint32_t Lb::prepare(VipId vip, std::shared_ptr<const BuiltPool> pool, uint32_t version) {
  const uint32_t v = pools_.prepare(vip, std::move(pool), version);
  counters_.inc(LbCounter::kVersionsPrepared);
  update_version_gauges();
  return v;
}

void Lb::commit(VipId vip, uint32_t version) {
  pools_.commit(vip, version);
  counters_.inc(LbCounter::kVersionsCommitted);
}

void Lb::abort(VipId vip, uint32_t version) {
  pools_.abort(vip, version);
  counters_.inc(LbCounter::kVersionsAborted);
  update_version_gauges();
}

size_t Lb::kill_backend(VipId vip, const IpAddress& addr, uint16_t port) {
  const size_t n = pools_.kill_backend(vip, addr, port);
  if (n > 0) counters_.inc(LbCounter::kBackendsKilled);
  return n;
}

size_t Lb::collect_garbage() {
  const size_t n = pools_.collect_garbage();
  counters_.inc(LbCounter::kVersionsCollected, n);
  update_version_gauges();
  return n;
}

void Lb::update_version_gauges() {
  set_gauge(LbGauge::kVersionsLive, pools_.versions_live());
}

VipId Lb::lookup_vip(Family family, const uint8_t* addr, uint8_t proto, uint16_t port) noexcept {
  VipId id = kNoVip;
  if (family == Family::kIpv4 || family == Family::kIpv6) {
    VipKey k;
    k.addr = IpAddress::from_bytes(family, addr);
    k.proto = proto;
    k.port = port;
    id = vips_.find(k);
  }
  if (id == kNoVip) counters_.inc(LbCounter::kVipMiss);
  return id;
}

Selection Lb::select(VipId vip, uint64_t flow_hash) noexcept {
  const Selection s = pools_.select(vip, flow_hash);
  const bool ok = s.backend != nullptr;
  counters_.inc(ok ? LbCounter::kSelected : LbCounter::kNoBackend);
  if (vip < vip_counters_.size() && vip_counters_[vip] != nullptr)
    vip_counters_[vip]->inc(ok ? LbVipCounter::kSelected : LbVipCounter::kNoBackend);
  return s;
}

const Backend* Lb::backend(VipId vip, uint32_t version, uint16_t index) noexcept {
  const Backend* b = pools_.backend(vip, version, index);
  if (b == nullptr) counters_.inc(LbCounter::kUnknownVersion);
  return b;
}

void Lb::conn_opened(VipId vip, uint32_t version) noexcept {
  if (!pools_.conn_opened(vip, version)) {
    counters_.inc(LbCounter::kUnknownVersion);
    return;
  }
  counters_.inc(LbCounter::kConnectionsOpened);
  set_gauge(LbGauge::kConnectionsLive, pools_.connections());
}

void Lb::conn_closed(VipId vip, uint32_t version) noexcept {
  if (!pools_.conn_closed(vip, version)) {
    counters_.inc(pools_.is_live(vip, version) ? LbCounter::kRefUnderflow
                                               : LbCounter::kUnknownVersion);
    return;
  }
  counters_.inc(LbCounter::kConnectionsClosed);
  set_gauge(LbGauge::kConnectionsLive, pools_.connections());
}

}  // namespace tripod
