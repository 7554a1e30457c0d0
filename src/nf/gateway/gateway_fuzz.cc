// libFuzzer target for the whole gateway stage: sequences of frames, in
// bursts, through ParseStage + GatewayStage (firewall, SYN proxy, LB,
// FullNAT both families, DSR, egress SNAT, ICMP errors), with time moving
// and a backend killed on request.
//
// Input: records [ctl:1][len:2 big-endian][frame:len]...
//   ctl bits 0-3: seconds to advance before this frame's burst (x 8)
//   ctl bit 4:    the frame ends its burst
//   ctl bit 5:    first take DIP 1 out of the FullNAT pool and kill it
// Checks (trap on violation): every forwarded or created frame parses; the
// connection count never passes the pool; after every timeout has passed,
// nothing is left: no connection, no key, no SNAT port, no LB reference.
//
// One gateway serves every input (building one costs ~50 ms of Maglev
// tables, which would cap the fuzzer at ~20 inputs/s): the end-of-input
// check proves it is empty again, and the pool is restored, so an input
// sees the same gateway as any other, up to time and port order.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "common/clock.h"
#include "common/fuzz_check.h"
#include "nf/gateway/gateway_fuzz_config.h"
#include "packet/parser.h"
#include "pipeline/parse_stage.h"
#include "pipeline/pipeline.h"

namespace tripod {
namespace {

constexpr uint64_t kSec = 1'000'000'000;

struct Run {
  ManualClock clock{1000 * kSec};
  Pipeline pipeline;
  GatewayStage* gw = nullptr;
  bool killed = false;

  Run() {
    pipeline.add(std::make_unique<ParseStage>());
    auto g = std::make_unique<GatewayStage>(fuzzcfg::config(), clock.now_ns());
    gw = g.get();
    pipeline.add(std::move(g));
  }

  void restore_pool() {
    if (!killed) return;
    killed = false;
    const VipId vip = gw->vip_id(VipKey{IpAddress::parse(fuzzcfg::kVip), kProtoTcp, 80});
    gw->lb().commit(vip, gw->lb().prepare(vip, fuzzcfg::config().vips[0].pool));
    gw->lb().collect_garbage();
  }

  void kill_dip1() {
    if (killed) return;
    killed = true;
    const VipId vip = gw->vip_id(VipKey{IpAddress::parse(fuzzcfg::kVip), kProtoTcp, 80});
    PoolSpec next;
    next.backends = {fuzzcfg::backend(fuzzcfg::kDip2, 8080)};
    gw->lb().commit(vip, gw->lb().prepare(vip, next));
    gw->lb().kill_backend(vip, IpAddress::parse(fuzzcfg::kDip1), 8080);
  }

  void burst(std::vector<std::vector<uint8_t>> frames) {
    if (frames.empty()) return;
    MemoryPort port(std::move(frames));
    RunStats stats;
    while (!port.exhausted())
      pipeline.run_once(port, &clock, &stats);
    for (const auto& f : port.output()) {
      PacketMeta m;
      FUZZ_CHECK(parse_packet(f.data(), static_cast<uint32_t>(f.size()), &m) == ParseError::kOk);
    }
    FUZZ_CHECK(gw->live_connections() <= 64);
    FUZZ_CHECK(gw->table().size() <= 2 * size_t{gw->live_connections()});
  }
};

}  // namespace
}  // namespace tripod

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace tripod;
  static Run run;
  std::vector<std::vector<uint8_t>> frames;
  size_t off = 0;
  while (off + 3 <= size) {
    const uint8_t ctl = data[off];
    const size_t len = size_t{data[off + 1]} << 8 | data[off + 2];
    off += 3;
    if (len > size - off) break;
    if (ctl & 0x20) run.kill_dip1();
    if ((ctl & 0x0F) != 0) {
      run.burst(std::move(frames));
      frames.clear();
      run.clock.advance_ns(uint64_t{ctl & 0x0Fu} * 8 * kSec);
    }
    frames.emplace_back(data + off, data + off + len);
    off += len;
    if ((ctl & 0x10) || frames.size() == kBurstSize) {
      run.burst(std::move(frames));
      frames.clear();
    }
  }
  run.burst(std::move(frames));
  // Every timeout is below 6 days (tcp_established is 5): nothing may be
  // left once they have all passed.
  run.clock.advance_ns(6 * 86400 * kSec);
  run.gw->advance_to(run.clock.now_ns());
  FUZZ_CHECK(run.gw->live_connections() == 0);
  FUZZ_CHECK(run.gw->table().size() == 0);
  FUZZ_CHECK(run.gw->snat(Family::kIpv4)->free_ports(0) == 16);
  FUZZ_CHECK(run.gw->snat(Family::kIpv6)->free_ports(0) == 16);
  FUZZ_CHECK(run.gw->egress_snat(Family::kIpv4)->free_ports(0) == 8);
  FUZZ_CHECK(run.gw->snat(Family::kIpv4)->bad_frees() == 0);
  FUZZ_CHECK(run.gw->lb().pools().connections() == 0);
  run.restore_pool();
  return 0;
}
