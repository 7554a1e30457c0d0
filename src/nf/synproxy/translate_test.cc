#include "nf/synproxy/translate.h"

#include <gtest/gtest.h>

#include <string>

#include "common/random.h"
#include "nf/synproxy/test_util.h"

namespace tripod {
namespace {

using namespace sptest;

constexpr uint32_t kD = 0x80000010;   // seq delta
constexpr uint32_t kTd = 0x01000003;  // ts delta
const Family v4 = Family::kIpv4;
const Family v6 = Family::kIpv6;

SynProxyState open_state(uint8_t flags, uint8_t adv = kNoWscale, uint8_t backend = kNoWscale) {
  SynProxyState s;
  s.seq_delta = kD;
  s.ts_delta = kTd;
  s.client_isn = 1;
  s.flags = static_cast<uint8_t>(flags | kSpOpen);
  s.wscales = static_cast<uint8_t>(backend << 4 | adv);
  if ((adv == kNoWscale ? 0 : adv) != (backend == kNoWscale ? 0 : backend)) {
    s.flags |= kSpRescaleWindow;
  }
  return s;
}

SynProxyState pending_state(uint32_t cookie_isn) {
  SynProxyState s;
  s.seq_delta = cookie_isn;
  s.ts_delta = 777;
  s.client_isn = 1;
  s.flags = kSpTimestamps;
  return s;
}

enum class Dir : uint8_t { kToBackend, kToClient };

struct Case {
  std::string name;
  SynProxyState st;
  Dir dir;
  Bytes in;
  Bytes want;  // empty: the frame must come out unchanged
  SynProxyCounter result;
};

std::vector<SackBlock> blocks(std::initializer_list<SackBlock> b, uint32_t minus = 0) {
  std::vector<SackBlock> v(b);
  for (auto& x : v)
    x.left -= minus, x.right -= minus;
  return v;
}

std::vector<Case> cases() {
  const SynProxyState ts = open_state(kSpTimestamps | kSpSack, 7, 7);
  const SynProxyState nots = open_state(kSpSack);
  const auto sack3 = blocks({{0x100, 0x200}, {0x300, 0x400}, {0xFFFFFFF0, 0x10}});
  const auto sack4 = blocks({{10, 20}, {30, 40}, {50, 60}, {70, 80}});
  const auto sack2 = blocks({{kD + 1000, kD + 2000}, {kD + 3000, kD + 4000}});
  const Bytes payload(100, 'p');
  const auto T = SynProxyCounter::kTranslatedToBackend;
  const auto C = SynProxyCounter::kTranslatedToClient;
  return {
      // client -> backend: ack, TSecr and SACK blocks come down by the deltas.
      {"ack_no_options", nots, Dir::kToBackend, from_client(v4).seq(1000).ack_seq(5000).build(),
       from_client(v4).seq(1000).ack_seq(5000 - kD).build(), T},
      {"ack_ts_fast_path", ts, Dir::kToBackend,
       from_client(v4)
           .seq(1)
           .ack_seq(kD + 1)
           .tcp_raw_options(Bytes{1, 1})
           .timestamps(111, 2222)
           .build(),
       from_client(v4)
           .seq(1)
           .ack_seq(1)
           .tcp_raw_options(Bytes{1, 1})
           .timestamps(111, 2222 - kTd)
           .build(),
       T},
      {"ts_and_three_sack_blocks", ts, Dir::kToBackend,
       from_client(v4)
           .seq(1)
           .ack_seq(99)
           .tcp_raw_options(Bytes{1, 1})
           .timestamps(5, kTd + 6)
           .tcp_raw_options(Bytes{1, 1})
           .sack(sack3)
           .build(),
       from_client(v4)
           .seq(1)
           .ack_seq(99 - kD)
           .tcp_raw_options(Bytes{1, 1})
           .timestamps(5, 6)
           .tcp_raw_options(Bytes{1, 1})
           .sack(blocks({{0x100, 0x200}, {0x300, 0x400}, {0xFFFFFFF0, 0x10}}, kD))
           .build(),
       T},
      {"four_sack_blocks_v6", nots, Dir::kToBackend,
       from_client(v6).seq(1).ack_seq(7).tcp_raw_options(Bytes{1, 1}).sack(sack4).build(),
       from_client(v6)
           .seq(1)
           .ack_seq(7 - kD)
           .tcp_raw_options(Bytes{1, 1})
           .sack(blocks({{10, 20}, {30, 40}, {50, 60}, {70, 80}}, kD))
           .build(),
       T},
      // A single NOP puts TSval/TSecr and the SACK blocks at odd offsets:
      // their checksum update is done byte-swapped.
      {"odd_aligned_ts", ts, Dir::kToBackend,
       from_client(v4)
           .ack_seq(3)
           .tcp_raw_options(Bytes{1})
           .timestamps(0x01020304, 0x0A0B0C0D)
           .build(),
       from_client(v4)
           .ack_seq(3 - kD)
           .tcp_raw_options(Bytes{1})
           .timestamps(0x01020304, 0x0A0B0C0D - kTd)
           .build(),
       T},
      {"odd_aligned_sack_v6", nots, Dir::kToBackend,
       from_client(v6).ack_seq(3).tcp_raw_options(Bytes{1}).sack(sack2).payload(payload).build(),
       from_client(v6)
           .ack_seq(3 - kD)
           .tcp_raw_options(Bytes{1})
           .sack(blocks({{kD + 1000, kD + 2000}, {kD + 3000, kD + 4000}}, kD))
           .payload(payload)
           .build(),
       T},
      {"data_v6_ts", ts, Dir::kToBackend,
       from_client(v6)
           .seq(77)
           .ack_seq(kD)
           .psh()
           .tcp_raw_options(Bytes{1, 1})
           .timestamps(9, kTd)
           .payload(payload)
           .build(),
       from_client(v6)
           .seq(77)
           .ack_seq(0)
           .psh()
           .tcp_raw_options(Bytes{1, 1})
           .timestamps(9, 0)
           .payload(payload)
           .build(),
       T},
      // Without ACK there is no ack number or TSecr to translate.
      {"rst_without_ack",
       ts,
       Dir::kToBackend,
       from_client(v4).seq(5).rst().tcp_raw_options(Bytes{1, 1}).timestamps(1, 2).build(),
       {},
       T},
      // Timestamps not agreed on both legs: TSecr is left alone.
      {"tsecr_untouched_without_ts_state", nots, Dir::kToBackend,
       from_client(v4).ack_seq(10).tcp_raw_options(Bytes{1, 1}).timestamps(1, 2).build(),
       from_client(v4).ack_seq(10 - kD).tcp_raw_options(Bytes{1, 1}).timestamps(1, 2).build(), T},

      // backend -> client: seq and TSval go up; window rescaled if needed.
      {"data_ts_v4", ts, Dir::kToClient,
       from_backend(v4)
           .seq(1)
           .ack_seq(500)
           .psh()
           .tcp_raw_options(Bytes{1, 1})
           .timestamps(0xFFFFFFFF, 42)
           .payload(payload)
           .build(),
       from_backend(v4)
           .seq(1 + kD)
           .ack_seq(500)
           .psh()
           .tcp_raw_options(Bytes{1, 1})
           .timestamps(0xFFFFFFFF + kTd, 42)
           .payload(payload)
           .build(),
       C},
      {"sack_from_backend_untouched_v6", ts, Dir::kToClient,
       from_backend(v6)
           .seq(10)
           .ack_seq(20)
           .tcp_raw_options(Bytes{1, 1})
           .timestamps(3, 4)
           .tcp_raw_options(Bytes{1, 1})
           .sack(sack2)
           .build(),
       from_backend(v6)
           .seq(10 + kD)
           .ack_seq(20)
           .tcp_raw_options(Bytes{1, 1})
           .timestamps(3 + kTd, 4)
           .tcp_raw_options(Bytes{1, 1})
           .sack(sack2)
           .build(),
       C},
      {"odd_aligned_tsval", ts, Dir::kToClient,
       from_backend(v4)
           .seq(10)
           .ack_seq(20)
           .tcp_raw_options(Bytes{1})
           .timestamps(0x00FF00FF, 4)
           .build(),
       from_backend(v4)
           .seq(10 + kD)
           .ack_seq(20)
           .tcp_raw_options(Bytes{1})
           .timestamps(0x00FF00FF + kTd, 4)
           .build(),
       C},
      {"rescale_up_backend_9_adv_7", open_state(0, 7, 9), Dir::kToClient,
       from_backend(v4).seq(1).ack_seq(2).window(1000).build(),
       from_backend(v4).seq(1 + kD).ack_seq(2).window(4000).build(), C},
      {"rescale_clamped", open_state(0, 7, 9), Dir::kToClient,
       from_backend(v4).seq(1).ack_seq(2).window(60000).build(),
       from_backend(v4).seq(1 + kD).ack_seq(2).window(65535).build(), C},
      {"rescale_down_backend_5_adv_7", open_state(0, 7, 5), Dir::kToClient,
       from_backend(v6).seq(1).ack_seq(2).window(1003).build(),
       from_backend(v6).seq(1 + kD).ack_seq(2).window(250).build(), C},
      {"backend_without_wscale", open_state(0, 7, kNoWscale), Dir::kToClient,
       from_backend(v4).seq(1).ack_seq(2).window(65535).build(),
       from_backend(v4).seq(1 + kD).ack_seq(2).window(511).build(), C},
      {"same_shift_window_untouched", open_state(0, 7, 7), Dir::kToClient,
       from_backend(v4).seq(1).ack_seq(2).window(12345).build(),
       from_backend(v4).seq(1 + kD).ack_seq(2).window(12345).build(), C},
      {"synack_retransmit_window_unscaled", open_state(0, 7, 9), Dir::kToClient,
       from_backend(v4).seq(1).ack_seq(2).syn().window(29200).build(),
       from_backend(v4).seq(1 + kD).ack_seq(2).syn().window(29200).build(), C},

      // Before the backend's SYN-ACK.
      {"client_data_before_open",
       pending_state(1000),
       Dir::kToBackend,
       from_client(v4).seq(2).ack_seq(1001).payload("x").build(),
       {},
       SynProxyCounter::kDropNotOpen},
      {"backend_data_before_open",
       pending_state(1000),
       Dir::kToClient,
       from_backend(v4).seq(2).ack_seq(2).payload("x").build(),
       {},
       SynProxyCounter::kDropNotOpen},
      {"backend_refuses_rst", pending_state(0x7FFFFFFF), Dir::kToClient,
       from_backend(v6).seq(0).ack_seq(2).rst().build(),
       from_backend(v6).seq(0x80000000).ack_seq(2).rst().build(), C},

      // Malformed: counted drops, frame untouched.
      {"bad_options_to_backend",
       ts,
       Dir::kToBackend,
       from_client(v4).ack_seq(1).tcp_raw_options(Bytes{1, 1, 8, 12, 0, 0, 0, 0}).build(),
       {},
       SynProxyCounter::kDropTranslateBadOptions},
      {"bad_options_to_client",
       ts,
       Dir::kToClient,
       from_backend(v4).ack_seq(1).tcp_raw_options(Bytes{5, 9, 0, 0, 0, 0, 0, 0, 0}).build(),
       {},
       SynProxyCounter::kDropTranslateBadOptions},
      {"udp_to_backend",
       ts,
       Dir::kToBackend,
       PacketBuilder().ipv4("1.1.1.1", "2.2.2.2").udp(1, 2).build(),
       {},
       SynProxyCounter::kDropTranslateBadPacket},
      {"fragment_to_client",
       ts,
       Dir::kToClient,
       PacketBuilder()
           .ipv4("1.1.1.1", "2.2.2.2")
           .fragment(0, true)
           .tcp(1, 2)
           .payload(Bytes(8, 0))
           .build(),
       {},
       SynProxyCounter::kDropTranslateBadPacket},
  };
}

void PrintTo(const Case& c, std::ostream* os) {
  *os << c.name;
}

class Translate : public ::testing::TestWithParam<Case> {};

TEST_P(Translate, ByteExact) {
  const Case& c = GetParam();
  Bytes pkt = c.in;
  PacketMeta m;
  ASSERT_EQ(parse_packet(pkt.data(), static_cast<uint32_t>(pkt.size()), &m), ParseError::kOk);
  const PacketMeta before = m;
  const SynProxyCounter r = c.dir == Dir::kToBackend ? synproxy_to_backend(c.st, pkt.data(), m)
                                                     : synproxy_to_client(c.st, pkt.data(), m);
  ASSERT_EQ(r, c.result);
  if (is_drop(r)) {
    EXPECT_EQ(pkt, c.in);
    EXPECT_EQ(std::memcmp(&m, &before, sizeof m), 0);
    return;
  }
  EXPECT_EQ(pkt, c.want.empty() ? c.in : c.want);
  // The incremental updates equal a full recompute, and meta follows.
  EXPECT_TRUE(l4_checksum_ok(pkt.data(), m));
  const PacketMeta after = parse_ok(pkt);
  EXPECT_EQ(std::memcmp(&m, &after, sizeof m), 0);
}

INSTANTIATE_TEST_SUITE_P(Cases, Translate, ::testing::ValuesIn(cases()),
                         [](const auto& p) { return p.param.name; });

TEST(TranslateTest, BackendRstBeforeOpenTakesOurIsnPlusOne) {
  Bytes rst = from_backend(v4).seq(0).ack_seq(2).rst().build();
  PacketMeta m = parse_ok(rst);
  ASSERT_EQ(synproxy_to_client(pending_state(0x1234), rst.data(), m),
            SynProxyCounter::kTranslatedToClient);
  EXPECT_EQ(rst, from_backend(v4).seq(0x1235).ack_seq(2).rst().build());
  EXPECT_EQ(m.tcp_seq, 0x1235u);
}

// Random segments, option layouts (0-3 leading NOPs, so every alignment) and
// deltas: the incremental checksum always equals a full recompute.
TEST(TranslateTest, RandomSegmentsChecksumsAlwaysVerify) {
  SplitMix64 rng(123);
  for (int i = 0; i < 3000; ++i) {
    const Family f = i % 2 ? v6 : v4;
    PacketBuilder b = (i % 4 < 2 ? from_client(f) : from_backend(f))
                          .seq(static_cast<uint32_t>(rng.next()))
                          .ack_seq(static_cast<uint32_t>(rng.next()))
                          .window(static_cast<uint16_t>(rng.next()));
    const int nops = static_cast<int>(rng.below(4));
    b.tcp_raw_options(Bytes(static_cast<size_t>(nops), 1));
    if (rng.below(2))
      b.timestamps(static_cast<uint32_t>(rng.next()), static_cast<uint32_t>(rng.next()));
    if (rng.below(2)) {
      std::vector<SackBlock> s(1 + rng.below(2));
      for (auto& x : s)
        x = {static_cast<uint32_t>(rng.next()), static_cast<uint32_t>(rng.next())};
      b.sack(s);
    }
    b.payload(Bytes(rng.below(40), 'z'));
    Bytes pkt = b.build();
    PacketMeta m = parse_ok(pkt);
    SynProxyState st = open_state(kSpTimestamps, static_cast<uint8_t>(rng.below(15)),
                                  static_cast<uint8_t>(rng.below(15)));
    st.seq_delta = static_cast<uint32_t>(rng.next());
    st.ts_delta = static_cast<uint32_t>(rng.next());
    const SynProxyCounter r =
        i % 4 < 2 ? synproxy_to_backend(st, pkt.data(), m) : synproxy_to_client(st, pkt.data(), m);
    ASSERT_FALSE(is_drop(r)) << i;
    ASSERT_TRUE(l4_checksum_ok(pkt.data(), m)) << i;
    const PacketMeta after = parse_ok(pkt);
    ASSERT_EQ(std::memcmp(&m, &after, sizeof m), 0) << i;
  }
}

}  // namespace
}  // namespace tripod
