// libFuzzer target for replication records from peers (flow_sync.h): bytes
// decoded as records and applied to a clustered gateway stage, as the
// cluster agent does with what its peers send.
//
// Input: records [type:1][len:1][bytes:len]... (type taken mod 4, so all
// three record types and an unknown one are reached).
// Checks (trap on violation): a decoded record re-encodes to the same bytes
// (no field is lost or invented); the standby count never passes the pool;
// after every deadline and grace has passed nothing is left: no standby
// record, no key, no LB reference, no reserved SNAT port.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>

#include "common/fuzz_check.h"
#include "nf/gateway/flow_sync.h"
#include "nf/gateway/gateway_stage.h"

namespace tripod {
namespace {

constexpr uint64_t kSec = 1'000'000'000;

SnatAddress v4(uint8_t last) {
  SnatAddress a;
  a.family = Family::kIpv4;
  a.addr[0] = 10;
  a.addr[3] = last;
  return a;
}

GatewayConfig config() {
  GatewayConfig c;
  c.firewall.acl = parse_rules("default allow");
  for (const char* vip : {"0.0.0.1", "0.0.0.2"}) {
    GatewayVipConfig v;
    v.key = VipKey{IpAddress::parse(vip), kProtoTcp, 0x0101};
    Backend b;
    b.addr = IpAddress::parse("0.0.0.3");
    b.port = 0x0202;
    v.pool.backends = {b};
    c.vips.push_back(v);
  }
  c.snat.addresses = {v4(1)};
  c.max_connections = 64;
  c.huge_pages = false;
  c.cluster.node_id = 1;
  c.cluster.snat_addresses = {v4(1), v4(2), v4(3)};
  return c;
}

uint64_t free_ports(const GatewayStage& gw) {
  uint64_t n = 0;
  for (uint32_t p = 0; p < gw.snat()->partitions(); ++p)
    n += gw.snat()->free_ports(p);
  return n;
}

struct Run {
  uint64_t now = 1000 * kSec;
  std::unique_ptr<GatewayStage> gw = std::make_unique<GatewayStage>(config(), now);
  uint64_t ports = free_ports(*gw);
  uint64_t bad_frees = gw->snat()->bad_frees();
};

}  // namespace
}  // namespace tripod

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace tripod;
  static Run run;
  GatewayStage& gw = *run.gw;
  size_t off = 0;
  while (off + 2 <= size) {
    const auto type = static_cast<uint8_t>(data[off] % 8);  // 0 and 7: not a record type
    const size_t len = data[off + 1];
    off += 2;
    if (off + len > size) break;
    FlowSync s;
    if (decode_flow_sync(type, data + off, len, &s) == FlowSyncError::kOk) {
      // Only the reserved bytes (7, and 63 in the firewall part) may differ.
      uint8_t in[kFlowMaxSize], again[kFlowMaxSize];
      std::memcpy(in, data + off, len);
      in[7] = 0;
      if (len > 63) in[63] = 0;
      encode_flow_sync(s, again);
      FUZZ_CHECK(std::memcmp(again, in, len) == 0);
      gw.import_sync(s, run.now);
      FUZZ_CHECK(gw.standby_connections() <= 64);
    }
    off += len;
  }
  // Everything expires: a standby deadline is at most the timer wheel's
  // reach (9.7 days at 100 ms ticks).
  for (int step = 0; step < 2; ++step) {  // in steps the 24-bit wheel can tell apart
    run.now += 5ull * 86400 * kSec;
    gw.advance_to(run.now);
  }
  FUZZ_CHECK(gw.standby_connections() == 0);
  FUZZ_CHECK(gw.table().size() == 0);
  FUZZ_CHECK(gw.lb().pools().connections() == 0);
  // Ports reserved for copies of this node's own flows are all back.
  FUZZ_CHECK(free_ports(gw) == run.ports);
  FUZZ_CHECK(gw.snat()->bad_frees() == run.bad_frees);
  return 0;
}
