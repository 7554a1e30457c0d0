// libFuzzer target for the wire decoder and a receiving channel. An input is
// a mode byte and a script of operations on node 1's channel to node 2:
//   0 len16 bytes  a datagram from the network (to Codec::open, then the channel)
//   1 type bytes   push a record (body taken from the input)
//   2              flush
//   3 dt           poll, after dt * 100 us
//   4              send a heartbeat
// With bit 0 of the mode byte set, datagrams get a valid MAC (node 2's key)
// before they are opened, so the fuzzer explores what lies behind the MAC.
// Invariants: every opened datagram is counted once; what the channel sends
// is accepted by the peer's codec; each session's DATA seqs are delivered in
// order, each once (1, 2, 3, ...: none skipped, none repeated), with records
// of their registered sizes; the send window holds.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <utility>

#include "cluster/wire/channel.h"
#include "cluster/wire/test_util.h"
#include "common/fuzz_check.h"

namespace tripod::cluster::wire {
namespace {

using namespace testing;

class CheckingSink : public ChannelSink {
 public:
  CheckingSink(Codec* peer, const Channel* const* ch) : peer_(peer), ch_(ch) {}
  void transmit(std::span<const uint8_t> d) override {
    Datagram dg;
    FUZZ_CHECK(d.size() <= kMaxDatagram);
    FUZZ_CHECK(peer_->open(d.data(), d.size(), &dg) == WireDrop::kOk);
    FUZZ_CHECK(dg.header.sender == 1 && dg.header.receiver == 2);
  }
  void deliver(uint64_t seq, const Record& r) override {
    FUZZ_CHECK(r.body.size() == test_records().size_of(r.type));
    const std::pair<uint32_t, uint64_t> key{(*ch_)->session(), seq};
    // Records of one datagram arrive together; the next datagram delivered is
    // the next seq of the session, or seq 1 of a new one, and already acked
    // (state is final before the sink runs).
    if (key != last_) {
      FUZZ_CHECK(key.second == (key.first == last_.first ? last_.second + 1 : 1));
      FUZZ_CHECK(key.second <= (*ch_)->received_through());
    }
    last_ = key;
    ++delivered;
  }
  uint64_t delivered = 0;

 private:
  Codec* peer_;
  const Channel* const* ch_;
  std::pair<uint32_t, uint64_t> last_{0, 0};
};

struct Reader {
  const uint8_t* p;
  size_t n;
  bool empty() const { return n == 0; }
  uint8_t byte() {
    if (n == 0) return 0;
    --n;
    return *p++;
  }
  size_t take(uint8_t* out, size_t want) {
    const size_t k = want < n ? want : n;
    std::memcpy(out, p, k);
    p += k;
    n -= k;
    return k;
  }
};

}  // namespace
}  // namespace tripod::cluster::wire

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace tripod;
  using namespace tripod::cluster::wire;
  if (size == 0) return 0;
  Reader in{data + 1, size - 1};
  const bool seal = (data[0] & 1) != 0;

  Codec rx(testing::codec_config(1), testing::test_records());
  Codec peer(testing::codec_config(2), testing::test_records());
  const Channel* chp = nullptr;
  CheckingSink sink(&peer, &chp);
  ChannelConfig cfg;
  cfg.peer = 2;
  cfg.incarnation = 1;
  cfg.window = 1 + (data[0] >> 1) % Channel::kMaxWindow;
  Channel ch(rx, cfg, &sink);
  chp = &ch;

  uint64_t now = 0, opened = 0;
  uint64_t rcv_through = 0;
  uint32_t session = ch.session();
  uint8_t buf[2 * kMaxDatagram];
  while (!in.empty()) {
    switch (in.byte() % 5) {
      case 0: {
        size_t len = size_t{in.byte()} << 8;
        len |= in.byte();
        len = in.take(buf, len < sizeof buf ? len : sizeof buf);
        if (seal && len >= kHeaderSize + kMacSize) peer.seal(buf, len - kMacSize);
        Datagram dg;
        ++opened;
        if (rx.open(buf, len, &dg) == WireDrop::kOk) ch.receive(dg, now);
        break;
      }
      case 1: {
        const uint8_t type = in.byte();
        uint16_t n = testing::test_records().size_of(type);
        if (n == 0) n = 8;
        uint8_t body[kMaxPayload] = {};
        in.take(body, n);
        const PushResult r = ch.push(type, {body, n}, now);
        if (r.status == PushStatus::kOk) FUZZ_CHECK(r.seq >= 1 && r.seq <= ch.last_seq());
        break;
      }
      case 2:
        ch.flush(now);
        break;
      case 3:
        now += uint64_t{in.byte()} * 100'000;
        ch.poll(now);
        break;
      default:
        ch.send_heartbeat({}, now);
        break;
    }
    uint64_t total = 0;
    for (size_t i = 0; i < rx.counters().size(); ++i)
      total += rx.counters().get(i);
    FUZZ_CHECK(total == opened);
    FUZZ_CHECK(ch.acked_through() <= ch.last_seq());
    FUZZ_CHECK(ch.in_flight() <= cfg.window);
    FUZZ_CHECK(ch.counters().get(ChannelCounter::kRecordsDelivered) == sink.delivered);
    if (ch.session() == session) FUZZ_CHECK(ch.received_through() >= rcv_through);
    session = ch.session();
    rcv_through = ch.received_through();
  }
  return 0;
}
