// Flow tracking over the connection table: the first user of ConnTable and
// the seed of the firewall's connection tracking (issue 3 replaces its
// simple state with netfilter's TCP machine). Per flow: packets and bytes per
// direction, first/last seen, and a coarse state that picks the timeout.
//
// A new flow that does not fit (table full) is dropped and counted; existing
// flows are never evicted to make room.
#pragma once

#include <cstdint>

#include "common/counters.h"
#include "pipeline/burst.h"
#include "table/conn_table.h"

namespace tripod {

struct FlowState {
  uint64_t packets[2];  // [0] a->b, [1] b->a of the canonical key
  uint64_t bytes[2];
  uint64_t first_seen_ns;
  uint64_t last_seen_ns;
  uint8_t tcp_flags[2];  // OR of the TCP flags seen per direction
  uint8_t state;         // FlowPhase
  uint8_t reserved[13];
};
static_assert(sizeof(FlowState) == 64);

enum class FlowPhase : uint8_t { kOneWay, kBothWays, kClosing };

// Timeouts, netfilter's defaults where it has one.
struct FlowTimeouts {
  uint32_t tcp_one_way_s = 120;         // nf_conntrack_tcp_timeout_syn_sent
  uint32_t tcp_established_s = 432000;  // 5 days
  uint32_t tcp_closing_s = 120;         // time_wait
  uint32_t udp_one_way_s = 30;          // nf_conntrack_udp_timeout
  uint32_t udp_stream_s = 120;          // nf_conntrack_udp_timeout_stream
  uint32_t icmp_s = 30;
  uint32_t other_s = 600;  // nf_conntrack_generic_timeout
};

#define TRIPOD_FLOW_STAGE_COUNTERS(X)  \
  X(kPackets, "packets")               \
  X(kFlowsCreated, "flows_created")    \
  X(kFlowsExpired, "flows_expired")    \
  X(kDropTableFull, "drop_table_full") \
  X(kDropNoCuckooPath, "drop_no_cuckoo_path")

TRIPOD_DECLARE_REASONS(FlowStageCounter, TRIPOD_FLOW_STAGE_COUNTERS)

class FlowStage final : public Stage {
 public:
  using Table = ConnTable<FlowKey, FlowState>;
  static constexpr uint64_t kTickNs = 100'000'000;  // 100 ms

  // hash_key: the per-process secret of the flow hash (see common/siphash.h).
  FlowStage(const ConnTableConfig& table_cfg, const FlowTimeouts& timeouts, const SipKey& hash_key);
  const char* name() const override { return "flow"; }
  void process(Burst& burst) override;
  void export_counters(const CounterFn& fn) const override;

  // Expires flows up to `now_ns` without traffic (also done by process()).
  void advance_to(uint64_t now_ns);
  const Table& table() const { return table_; }

 private:
  uint32_t timeout_ticks(const FlowKey& k, const FlowState& s) const;
  static uint32_t to_ticks(uint64_t ns) { return static_cast<uint32_t>(ns / kTickNs); }

  Table table_;
  FlowTimeouts timeouts_;
  SipKey hash_key_;
  CounterSet<FlowStageCounter, size_t(FlowStageCounter::kCount)> counters_;
};

}  // namespace tripod
