// libFuzzer target for the parser and everything that trusts its output:
// TCP options, flow keys and L4 checksums read the frame through the meta's
// offsets, so a wrong offset shows up as an ASan report or a trap below.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "common/byte_order.h"
#include "common/fuzz_check.h"
#include "packet/checksum.h"
#include "packet/flow_key.h"
#include "packet/meta_check.h"
#include "packet/parser.h"

namespace tripod {
namespace {

void check_key(const FlowKey& k) {
  const auto* raw = reinterpret_cast<const uint8_t*>(&k);
  if (k.family == Family::kIpv4) {
    for (size_t i = 16; i < sizeof(FlowKey); ++i)
      FUZZ_CHECK(raw[i] == 0);
  }
  FUZZ_CHECK(k.zone == 0);
}

// The canonical key is the directional key, swapped when `reversed`.
void check_canonical(const FlowKey& canon, bool reversed, const FlowKey& dir) {
  FlowKey expect = dir;
  if (reversed) {
    const size_t alen = dir.family == Family::kIpv6 ? 16 : dir.family == Family::kIpv4 ? 4 : 0;
    expect.port_a = dir.port_b;
    expect.port_b = dir.port_a;
    std::memcpy(expect.addr, dir.addr_b(), alen);
    std::memcpy(expect.addr + alen, dir.addr_a(), alen);
  }
  FUZZ_CHECK(canon == expect);
  check_key(canon);
}

void check_frame(const uint8_t* data, uint32_t len) {
  PacketMeta m;
  const ParseError err = parse_packet(data, len, &m);
  FUZZ_CHECK(err < ParseError::kCount && err != ParseError::kBadTcpOptions);
  if (err != ParseError::kOk) return;
  FUZZ_CHECK(meta_problem(m, len) == nullptr);

  if (m.has(kMetaHasL4) && m.proto == kProtoTcp) {
    TcpOptions o;
    if (parse_tcp_options(data, m, &o) == ParseError::kOk) {
      FUZZ_CHECK(o.wscale <= 14 && o.num_sack <= 4);
      if (o.has_timestamps) FUZZ_CHECK(o.ts_off >= m.l4_off + 22 && o.ts_off + 8u <= m.payload_off);
      if (o.num_sack != 0) {
        FUZZ_CHECK(o.sack_off >= m.l4_off + 22 && o.sack_off + 8u * o.num_sack <= m.payload_off);
      }
    }
  }

  bool reversed = false;
  const FlowKey canon = flow_key_of(data, m, true, &reversed);
  check_canonical(canon, reversed, flow_key_of(data, m, false));
  if (m.has(kMetaIcmpError)) {
    const FlowKey q = flow_key_of_quote(data, m, true, &reversed);
    check_canonical(q, reversed, flow_key_of_quote(data, m, false));
  }

  if (m.has(kMetaHasL4) && !m.has(kMetaFragment)) {
    volatile bool ok = l4_checksum_ok(data, m);
    (void)ok;
  }

  // Recomputing the checksums changes no parsed field, and makes them verify.
  std::vector<uint8_t> copy(data, data + len);
  fix_checksums(copy.data(), m);
  PacketMeta m2;
  FUZZ_CHECK(parse_packet(copy.data(), len, &m2) == ParseError::kOk);
  FUZZ_CHECK(std::memcmp(&m, &m2, sizeof m) == 0);
  if (m.has(kMetaHasL4) && !m.has(kMetaFragment)) {
    FUZZ_CHECK(l4_checksum_ok(copy.data(), m));
  }
}

// A mutated IPv4 header almost never has a valid checksum, which would stop
// the search at L3; so each input is also tried with that checksum repaired.
bool repair_ipv4_checksum(std::vector<uint8_t>* f) {
  uint8_t* b = f->data();
  const size_t n = f->size();
  size_t l3 = 14;
  if (n < 14) return false;
  uint16_t type = load_be16(b + 12);
  if ((type == 0x8100 || type == 0x88A8) && n >= 18) {
    type = load_be16(b + 16);
    l3 = 18;
  }
  if (type != kEtherTypeIpv4 || n < l3 + 20) return false;
  const size_t ihl = (b[l3] & 0xFu) * 4u;
  if (ihl < 20 || n < l3 + ihl) return false;
  store_be16(b + l3 + 10, ipv4_header_checksum(b + l3, ihl));
  return true;
}

}  // namespace
}  // namespace tripod

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace tripod;
  const uint32_t len = size > 0xFFFF ? 0xFFFF : static_cast<uint32_t>(size);
  check_frame(data, len);
  std::vector<uint8_t> repaired(data, data + len);
  if (repair_ipv4_checksum(&repaired)) check_frame(repaired.data(), len);
  return 0;
}
