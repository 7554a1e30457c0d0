#include "pipeline/flow_stage.h"

namespace tripod {

FlowStage::FlowStage(const ConnTableConfig& table_cfg, const FlowTimeouts& timeouts,
                     const SipKey& hash_key)
    : table_(table_cfg), timeouts_(timeouts), hash_key_(hash_key) {}

uint32_t FlowStage::timeout_ticks(const FlowKey& k, const FlowState& s) const {
  const auto phase = static_cast<FlowPhase>(s.state);
  uint32_t sec;
  switch (k.proto) {
    case kProtoTcp:
      sec = phase == FlowPhase::kClosing    ? timeouts_.tcp_closing_s
            : phase == FlowPhase::kBothWays ? timeouts_.tcp_established_s
                                            : timeouts_.tcp_one_way_s;
      break;
    case kProtoUdp:
      sec = phase == FlowPhase::kBothWays ? timeouts_.udp_stream_s : timeouts_.udp_one_way_s;
      break;
    case kProtoIcmp:
    case kProtoIcmpv6:
      sec = timeouts_.icmp_s;
      break;
    default:
      sec = timeouts_.other_s;
  }
  return static_cast<uint32_t>(uint64_t{sec} * 1'000'000'000 / kTickNs);
}

void FlowStage::advance_to(uint64_t now_ns) {
  const uint64_t n = table_.advance(to_ticks(now_ns));
  counters_.inc(FlowStageCounter::kFlowsExpired, n);
}

void FlowStage::process(Burst& b) {
  advance_to(b.now_ns);
  const uint32_t now = to_ticks(b.now_ns);

  // Gather the burst's IP packets and look their flows up in one bulk pass.
  uint32_t sel[Burst::kCapacity];
  FlowKey keys[Burst::kCapacity];
  uint64_t hashes[Burst::kCapacity];
  Table::Ref refs[Burst::kCapacity];
  uint32_t m = 0;
  for (uint32_t i = 0; i < b.n; ++i) {
    if (b.verdict[i] != Verdict::kForward || b.meta[i].has(kMetaNotIp)) continue;
    sel[m] = i;
    keys[m] = b.key[i];
    ++m;
  }
  table_.hash_lookup_bulk(
      keys, m, [this](const FlowKey& k) { return hash_flow_key(k, hash_key_); }, hashes, refs);
  for (uint32_t j = 0; j < m; ++j)
    b.hash[sel[j]] = hashes[j];

  bool mutated = false;  // an insert moves entries: later refs must be re-read
  for (uint32_t j = 0; j < m; ++j) {
    const uint32_t i = sel[j];
    counters_.inc(FlowStageCounter::kPackets);
    Table::Ref r = mutated ? table_.lookup(keys[j], hashes[j]) : refs[j];
    if (!r.found()) {
      const auto ins = table_.insert(keys[j], hashes[j], now + 1);
      if (ins.status == InsertStatus::kTableFull || ins.status == InsertStatus::kNoCuckooPath) {
        counters_.inc(ins.status == InsertStatus::kTableFull ? FlowStageCounter::kDropTableFull
                                                             : FlowStageCounter::kDropNoCuckooPath);
        b.verdict[i] = Verdict::kDrop;
        continue;
      }
      mutated = true;
      r = ins.ref;
      FlowState& s = table_.value(r.idx);
      s.first_seen_ns = b.now_ns;
      s.state = static_cast<uint8_t>(FlowPhase::kOneWay);
      counters_.inc(FlowStageCounter::kFlowsCreated);
    }
    FlowState& s = table_.value(r.idx);
    const int dir = b.reversed[i] ? 1 : 0;
    ++s.packets[dir];
    s.bytes[dir] += b.pkts[i].len;
    s.last_seen_ns = b.now_ns;
    const uint8_t flags = b.meta[i].proto == kProtoTcp ? b.meta[i].tcp_flags : 0;
    s.tcp_flags[dir] |= flags;
    if (flags & (kTcpFin | kTcpRst)) {
      s.state = static_cast<uint8_t>(FlowPhase::kClosing);
    } else if (s.state == static_cast<uint8_t>(FlowPhase::kOneWay) && s.packets[1 - dir] > 0) {
      s.state = static_cast<uint8_t>(FlowPhase::kBothWays);
    }
    table_.set_deadline(r, now + timeout_ticks(keys[j], s));
  }
}

void FlowStage::export_counters(const CounterFn& fn) const {
  for (size_t i = 0; i < counters_.size(); ++i)
    fn(kFlowStageCounterNames[i], counters_.get(i));
  fn("flows_live", table_.size());
  fn("table_capacity", table_.capacity());
  const auto& tc = table_.counters();
  for (size_t i = 0; i < tc.size(); ++i) {
    fn("table_" + std::string(kConnTableCounterNames[i]), tc.get(i));
  }
}

}  // namespace tripod
