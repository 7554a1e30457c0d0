#include "daemon/l2_stage.h"

#include <cstring>

namespace tripod {

bool L2Stage::slow_path(Burst& b, uint32_t i, L2Counter why) {
  const PacketMeta& m = b.meta[i];
  counters_.inc(why);
  // The kernel sends it now: a packet that should wait for its flow's
  // state to be acknowledged (output commit) does not (rare: the first
  // packets to a neighbour not yet resolved; counted).
  if (b.held[i]) counters_.inc(L2Counter::kSlowPathHeld);
  if (!slow_->send(b.pkts[i].data + m.l3_off, size_t{m.l3_end} - m.l3_off))
    counters_.inc(L2Counter::kSlowPathFailed);
  return false;  // the kernel has it (or counted why not): not ours to transmit
}

void L2Stage::process(Burst& b) {
  const route::NextHopTable* t = reader_.acquire();
  for (uint32_t i = 0; i < b.n; ++i) {
    if (b.verdict[i] != Verdict::kForward) continue;
    uint8_t* frame = b.pkts[i].data;
    const PacketMeta& m = b.meta[i];
    if (m.has(kMetaNotIp)) {  // the XDP program passes these to the kernel
      counters_.inc(L2Counter::kDropNotIp);
      b.verdict[i] = Verdict::kDrop;
      continue;
    }
    if (b.l2[i] == L2Action::kAsIs) {
      counters_.inc(L2Counter::kAsIs);
      continue;
    }
    if (t == nullptr) {
      counters_.inc(L2Counter::kDropNoSnapshot);
      b.verdict[i] = Verdict::kDrop;
      continue;
    }
    if (b.l2[i] == L2Action::kKeepDst) {
      const route::LinkInfo* link = t->link(ifindex_);
      if (link != nullptr && link->has_mac) std::memcpy(frame + 6, link->mac.data(), 6);
      counters_.inc(L2Counter::kSourceOnly);
      continue;
    }
    const route::ResolveResult r =
        t->resolve(m.family, frame + m.dst_off, static_cast<uint32_t>(b.hash[i] >> 32));
    bool keep = true;
    switch (r.status) {
      case route::ResolveStatus::kOk:
        if (r.ifindex != ifindex_) {
          keep = slow_path(b, i, L2Counter::kSlowPathOtherLink);
          break;
        }
        std::memcpy(frame, r.dst_mac.data(), 6);
        std::memcpy(frame + 6, r.src_mac.data(), 6);
        counters_.inc(L2Counter::kRouted);
        break;
      case route::ResolveStatus::kNoNeighbor:
        keep = slow_path(b, i, L2Counter::kSlowPathNoNeighbor);
        break;
      default:
        counters_.inc(L2Counter::kDropNoRoute);
        keep = false;
        break;
    }
    if (!keep) b.verdict[i] = Verdict::kDrop;
  }
  reader_.quiescent();
}

void L2Stage::export_counters(const CounterFn& fn) const {
  for (size_t i = 0; i < counters_.size(); ++i)
    fn(kL2CounterNames[i], counters_.get(i));
}

}  // namespace tripod
