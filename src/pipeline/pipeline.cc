#include "pipeline/pipeline.h"

namespace tripod {

uint32_t Pipeline::run_once(Port& port, const Clock* clock, RunStats* stats) {
  Burst& b = burst_;
  b.frames = &port;
  // Parked packets let go run first (they came first).
  const uint32_t replayed = park_ ? park_->take(b.pkts, kBurstSize) : 0;
  // Then what other workers handed over (it came before this burst too),
  // at most half a burst: under overload the port's own RX keeps its share
  // (its ring would drop where no counter of ours sees it).
  const uint32_t handed_in =
      mesh_ != nullptr ? mesh_->receive(self_, b.pkts + replayed, b.meta + replayed,
                                        b.key + replayed, b.reversed + replayed,
                                        std::min(kBurstSize / 2, kBurstSize - replayed), port)
                       : 0;
  b.parsed_from = replayed;
  b.parsed_to = replayed + handed_in;
  b.first_rx = replayed + handed_in;
  b.n = b.first_rx + port.rx_burst(b.pkts + b.first_rx, kBurstSize - b.first_rx);
  if (b.n == 0) return 0;
  const uint32_t received = b.n;
  if (clock != nullptr) {
    b.now_ns = clock->now_ns();
  } else {
    for (uint32_t i = 0; i < b.n; ++i)
      b.now_ns = std::max(b.now_ns, b.pkts[i].ts_ns);
  }
  for (uint32_t i = 0; i < b.n; ++i) {
    b.verdict[i] = Verdict::kForward;
    b.l2[i] = L2Action::kRoute;
    b.held[i] = false;
  }
  for (auto& s : stages_)
    s->process(b);

  Packet out[Burst::kCapacity], drop[Burst::kCapacity];
  uint32_t n_out = 0, n_drop = 0, n_handed = 0;
  uint64_t handed_to = 0;  // bit w: packets went to worker w (w < 64)
  for (uint32_t i = 0; i < b.n; ++i) {
    if (b.verdict[i] == Verdict::kHandOff) {
      const uint32_t to = b.hold_tag[i];
      if (mesh_ != nullptr && to < mesh_->workers() && to != self_ &&
          mesh_->ring(self_, to).push(b.pkts[i], b.meta[i], b.key[i], b.reversed[i])) {
        stats->handed_off++;
        ++n_handed;
        handed_to |= uint64_t{1} << (to % 64);
        drop[n_drop++] = b.pkts[i];  // copied: the frame is free again
        continue;
      }
      stats->handoff_full++;
      b.verdict[i] = Verdict::kDrop;
    }
    if (b.verdict[i] == Verdict::kPark) {
      if (park_ && park_->push(b.pkts[i], b.hold_tag[i])) {
        stats->parked++;
        continue;
      }
      stats->park_full++;
      b.verdict[i] = Verdict::kDrop;
    }
    if (b.verdict[i] == Verdict::kForward && b.held[i] && hold_) {
      if (hold_->push(b.pkts[i], b.hold_tag[i], b.now_ns)) {
        stats->held++;
        continue;
      }
      stats->hold_full++;
      b.verdict[i] = Verdict::kDrop;
    }
    (b.verdict[i] == Verdict::kForward ? out[n_out++] : drop[n_drop++]) = b.pkts[i];
  }
  port.tx_burst(out, n_out);
  port.release(drop, n_drop);
  for (uint32_t w = 0; handed_to != 0 && w < mesh_->workers(); ++w)
    if (handed_to >> (w % 64) & 1) mesh_->notify(w);
  stats->bursts++;
  stats->rx += received - b.first_rx;
  stats->replayed += replayed;
  stats->handed_in += handed_in;
  stats->created += b.n - received;
  stats->tx += n_out;
  stats->dropped += n_drop - n_handed;
  stats->last_ts_ns = b.now_ns;
  return received;
}

RunStats Pipeline::run_to_end(Port& port, const Clock* clock) {
  RunStats stats;
  while (!port.exhausted() || (park_ && park_->to_run() > 0))
    run_once(port, clock, &stats);
  return stats;
}

}  // namespace tripod
