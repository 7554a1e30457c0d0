// First stage: parse every packet and build its canonical flow key. Malformed
// packets are dropped here and counted by ParseError. The key's hash is
// computed by the first table stage, interleaved with its bucket prefetches
// (ConnTable::hash_lookup_bulk), and kept in the burst for later stages.
#pragma once

#include "packet/parser.h"
#include "pipeline/burst.h"

namespace tripod {

#define TRIPOD_PARSE_STAGE_COUNTERS(X) \
  X(kPackets, "packets")               \
  X(kNotIp, "not_ip")                  \
  X(kFragments, "fragments")

TRIPOD_DECLARE_REASONS(ParseStageCounter, TRIPOD_PARSE_STAGE_COUNTERS)

class ParseStage final : public Stage {
 public:
  ParseStage() = default;
  const char* name() const override { return "parse"; }
  void process(Burst& burst) override;
  void export_counters(const CounterFn& fn) const override;
  const ParseCounters& drops() const { return drops_; }

 private:
  ParseCounters drops_;
  CounterSet<ParseStageCounter, size_t(ParseStageCounter::kCount)> counters_;
};

}  // namespace tripod
