// The L4 load balancer's facade, called by the pipeline's LB stage.
//
// Per packet to a VIP:
//   vip = lookup_vip(family, dst addr, proto, dst port)     // kNoVip: not ours
//   new connection:  sel = select(vip, flow_hash)           // nullptr: drop
//                    store LbConn{vip, sel.version, sel.index}; conn_opened(vip, version)
//   later packets:   b = backend(vip, version, index)       // same DIP for life
//                    if (is_killed(vip, version, index)) reset the connection
//   connection end:  conn_closed(vip, version)
// flow_hash should be keyed by a cluster-wide secret, not a per-process one,
// so that a node that lost a connection's state picks the same DIP (Maglev's
// stateless fallback).
//
// Threading (see pool_table.h): one Lb per worker, data-plane and control
// calls on that worker; build_pool() on the control thread, the result
// installed with prepare(vip, pool). Counters are readable from any thread.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "common/counters.h"
#include "nf/lb/pool_table.h"
#include "nf/lb/vip.h"
#include "nf/lb/vip_map.h"

namespace tripod {

// An LB connection's record, kept in the pipeline's connection state: written
// once at the first packet and replicated once (write-once state). VipId is
// local to this node; a replicated record carries the VipKey or a
// cluster-assigned id, and the version number chosen by the cluster.
struct LbConn {
  VipId vip = kNoVip;
  uint32_t version = kNoVersion;
  uint16_t backend = 0;
  uint16_t spare = 0;  // the record's owner's (the gateway: the flow's processor node)
};
static_assert(sizeof(LbConn) == 12);

// no_vip: packet for no configured VIP. no_backend: VIP without an active
// version, or every weight 0. unknown_version: a connection named a (VIP,
// version) that is not live (a pipeline bug, or replicated state from a node
// that prepared other versions). ref_underflow: conn_closed without opened.
#define TRIPOD_LB_COUNTERS(X)                 \
  X(kVipMiss, "no_vip")                       \
  X(kNoBackend, "no_backend")                 \
  X(kSelected, "selected")                    \
  X(kUnknownVersion, "unknown_version")       \
  X(kRefUnderflow, "ref_underflow")           \
  X(kConnectionsOpened, "connections_opened") \
  X(kConnectionsClosed, "connections_closed") \
  X(kVersionsPrepared, "versions_prepared")   \
  X(kVersionsCommitted, "versions_committed") \
  X(kVersionsAborted, "versions_aborted")     \
  X(kVersionsCollected, "versions_collected") \
  X(kBackendsKilled, "backends_killed")
TRIPOD_DECLARE_REASONS(LbCounter, TRIPOD_LB_COUNTERS)

// Levels rather than events; written by the owner, read from anywhere.
#define TRIPOD_LB_GAUGES(X)               \
  X(kVersionsLive, "versions_live")       \
  X(kConnectionsLive, "connections_live") \
  X(kVips, "vips")
TRIPOD_DECLARE_REASONS(LbGauge, TRIPOD_LB_GAUGES)

#define TRIPOD_LB_VIP_COUNTERS(X) \
  X(kSelected, "selected")        \
  X(kNoBackend, "no_backend")
TRIPOD_DECLARE_REASONS(LbVipCounter, TRIPOD_LB_VIP_COUNTERS)

class Lb {
 public:
  explicit Lb(const MaglevConfig& maglev = {});

  // ---- control (owner thread; throws std::invalid_argument on bad input) ----
  VipId add_vip(const VipKey& key);
  void remove_vip(const VipKey& key);  // existing connections drain
  VipId find_vip(const VipKey& key) const { return vips_.find(key); }
  // Builds the pool's Maglev table here (tests, small pools); a control
  // thread calls build_pool() itself and passes the result instead.
  uint32_t prepare(VipId vip, const PoolSpec& spec, uint32_t version = kNoVersion);
  uint32_t prepare(VipId vip, std::shared_ptr<const BuiltPool> pool, uint32_t version = kNoVersion);
  void commit(VipId vip, uint32_t version);
  void abort(VipId vip, uint32_t version);
  size_t kill_backend(VipId vip, const IpAddress& addr, uint16_t port);
  size_t collect_garbage();
  const PoolTable& pools() const { return pools_; }
  const MaglevConfig& maglev_config() const { return maglev_; }

  // ---- data plane (owner thread; noexcept, no allocation, no locks) ----
  // `addr`: 4 or 16 network-order bytes; `port`: host order.
  VipId lookup_vip(Family family, const uint8_t* addr, uint8_t proto, uint16_t port) noexcept;
  Selection select(VipId vip, uint64_t flow_hash) noexcept;
  const Backend* backend(VipId vip, uint32_t version, uint16_t index) noexcept;
  bool is_killed(VipId vip, uint32_t version, uint16_t index) const noexcept {
    return pools_.is_killed(vip, version, index);
  }
  void conn_opened(VipId vip, uint32_t version) noexcept;
  void conn_closed(VipId vip, uint32_t version) noexcept;

  // ---- counters (any thread) ----
  uint64_t counter(LbCounter c) const { return counters_.get(c); }
  uint64_t gauge(LbGauge g) const { return gauges_[size_t(g)].load(std::memory_order_relaxed); }
  uint64_t vip_counter(VipId vip, LbVipCounter c) const {
    return vip < vip_counters_.size() && vip_counters_[vip] != nullptr ? vip_counters_[vip]->get(c)
                                                                       : 0;
  }
  template <typename Fn>
  void export_counters(Fn&& fn) const {
    for (size_t i = 0; i < size_t(LbCounter::kCount); ++i)
      fn(kLbCounterNames[i], counters_.get(i));
    for (size_t i = 0; i < size_t(LbGauge::kCount); ++i)
      fn(kLbGaugeNames[i], gauges_[i].load(std::memory_order_relaxed));
  }

 private:
  using VipCounters = CounterSet<LbVipCounter, size_t(LbVipCounter::kCount)>;
  // Single writer: a relaxed load + store, as CounterSet::inc.
  void set_gauge(LbGauge g, uint64_t v) { gauges_[size_t(g)].store(v, std::memory_order_relaxed); }
  void update_version_gauges();

  MaglevConfig maglev_;
  VipMap vips_;
  PoolTable pools_;
  CounterSet<LbCounter, size_t(LbCounter::kCount)> counters_;
  std::array<std::atomic<uint64_t>, size_t(LbGauge::kCount)> gauges_{};
  std::vector<std::unique_ptr<VipCounters>> vip_counters_;  // by VipId; never shrinks
};

}  // namespace tripod
