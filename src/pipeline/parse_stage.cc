#include "pipeline/parse_stage.h"

#include <string>

namespace tripod {

void ParseStage::process(Burst& b) {
  for (uint32_t i = 0; i < b.n; ++i) {
    if (i >= b.parsed_from && i < b.parsed_to) continue;  // the sender's parse came with it
    counters_.inc(ParseStageCounter::kPackets);
    const ParseError e = parse_packet(b.pkts[i].data, b.pkts[i].len, &b.meta[i]);
    if (e != ParseError::kOk) {
      drops_.inc(e);
      b.verdict[i] = Verdict::kDrop;
      continue;
    }
    b.verdict[i] = Verdict::kForward;
    if (b.meta[i].has(kMetaNotIp)) {
      // ARP and friends belong to the kernel (the XDP program passes them).
      counters_.inc(ParseStageCounter::kNotIp);
      continue;
    }
    if (b.meta[i].has(kMetaFragment)) counters_.inc(ParseStageCounter::kFragments);
    b.key[i] = flow_key_of(b.pkts[i].data, b.meta[i], true, &b.reversed[i]);
  }
}

void ParseStage::export_counters(const CounterFn& fn) const {
  for (size_t i = 0; i < counters_.size(); ++i) {
    fn(kParseStageCounterNames[i], counters_.get(i));
  }
  for (size_t i = 1; i < drops_.size(); ++i) {
    fn("drop_" + std::string(kParseErrorNames[i]), drops_.get(i));
  }
}

}  // namespace tripod
