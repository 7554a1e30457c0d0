// TCP tracking: the state machine and the window checks, as scenarios of
// segments with explicit numbers, plus unit checks of the table and helpers.
#include <gtest/gtest.h>

#include "nf/firewall/firewall_test_util.h"

namespace tripod::fwtest {
namespace {

using R = FwReason;
using TS = TcpState;

// Client ISN a, server ISN b, default window 65535, no options.
std::vector<Step> handshake(uint32_t a, uint32_t b, const Ends& e = {}) {
  return {
      T("SYN", C(SYN, a).ends(e), R::kCreated, TS::kSynSent, 120),
      T("SYN-ACK", S(SYN | ACK, b, a + 1).ends(e), R::kAccepted, TS::kSynRecv, 60),
      T("ACK", C(ACK, a + 1, b + 1).ends(e), R::kAccepted, TS::kEstablished, 432000),
  };
}

std::vector<Step> cat(std::vector<Step> x, const std::vector<Step>& y) {
  x.insert(x.end(), y.begin(), y.end());
  return x;
}

// Handshake, then both sides close (client first), ending in TIME_WAIT.
std::vector<Step> to_time_wait(uint32_t a, uint32_t b) {
  return cat(handshake(a, b),
             {
                 T("FIN", C(FIN | ACK, a + 1, b + 1), R::kAccepted, TS::kFinWait),
                 T("ACK of FIN", S(ACK, b + 1, a + 2), R::kAccepted, TS::kCloseWait),
                 T("FIN", S(FIN | ACK, b + 1, a + 2), R::kAccepted, TS::kLastAck),
                 T("last ACK", C(ACK, a + 2, b + 2), R::kAccepted, TS::kTimeWait),
             });
}

constexpr uint32_t a = 1000;
constexpr uint32_t b = 50000;

}  // namespace

std::vector<Scenario> tcp_scenarios() {
  // ISNs just below 2^32, so the client's data wraps the sequence space.
  constexpr uint32_t wa = 0xFFFFFF00u;
  constexpr uint32_t wb = 5000;
  return {
      {"handshake_data_teardown", "default allow",
       cat(handshake(wa, wb),
           {
               T("client data: unacked caps the timeout", C(ACK | PSH, wa + 1, wb + 1).len(300),
                 R::kAccepted, TS::kEstablished, 300),
               T("server data, acks the client's", S(ACK | PSH, wb + 1, wa + 301).len(200),
                 R::kAccepted, TS::kEstablished, 300),
               T("client acks: nothing in flight", C(ACK, wa + 301, wb + 201), R::kAccepted,
                 TS::kEstablished, 432000),
               T("client FIN", C(FIN | ACK, wa + 301, wb + 201), R::kAccepted, TS::kFinWait, 120),
               T("server ACKs the FIN", S(ACK, wb + 201, wa + 302), R::kAccepted, TS::kCloseWait,
                 60),
               T("server FIN", S(FIN | ACK, wb + 201, wa + 302), R::kAccepted, TS::kLastAck, 30),
               T("client last ACK", C(ACK, wa + 302, wb + 202), R::kAccepted, TS::kTimeWait, 120),
               T("last ACK retransmitted", C(ACK, wa + 302, wb + 202), R::kAccepted, TS::kTimeWait,
                 120),
           }),
       false},
      {"ipv6_handshake_and_data",
       "default deny\nallow out tcp from 2001:db8:1::/48 to any port 443",
       cat(handshake(a, b, v6_ends()),
           {
               T("data", C(ACK | PSH, a + 1, b + 1).len(1200).ends(v6_ends()), R::kAccepted,
                 TS::kEstablished, 300),
               T("ack", S(ACK, b + 1, a + 1201).ends(v6_ends()), R::kAccepted, TS::kEstablished,
                 432000),
           }),
       false},
      {"rst_in_window_closes", "default allow",
       cat(handshake(a, b),
           {
               T("client RST at its next seq", C(RST, a + 1), R::kAccepted, TS::kClose, 10),
               T("late ACK after the RST: still CLOSE", C(ACK, a + 1, b + 1), R::kAccepted,
                 TS::kClose, 10),
           }),
       false},
      {"server_rst_ack_in_window_closes", "default allow",
       cat(handshake(a, b),
           {T("server RST|ACK", S(RST | ACK, b + 1, a + 1), R::kAccepted, TS::kClose, 10)}),
       false},
      {"rst_out_of_window_dropped", "default allow",
       cat(handshake(a, b),
           {
               T("RST far past the window", C(RST, a + 1 + 200000), R::kDropRstOutOfWindow,
                 TS::kEstablished),
               T("RST far before the window", S(RST, b + 1 - 200000), R::kDropRstOutOfWindow,
                 TS::kEstablished),
               T("client data", C(ACK, a + 1, b + 1).len(100), R::kAccepted, TS::kEstablished),
               T("server acks it", S(ACK, b + 1, a + 101), R::kAccepted, TS::kEstablished),
               T("RST below what the server acked", C(RST, a + 1), R::kDropRstOutOfWindow,
                 TS::kEstablished),
               T("RST at the acked edge", C(RST, a + 101), R::kAccepted, TS::kClose, 10),
           }),
       false},
      {"rst_answering_syn",
       "default allow",
       {
           T("SYN", C(SYN, a), R::kCreated, TS::kSynSent),
           T("RST|ACK seq 0 (port closed)", S(RST | ACK, 0, a + 1), R::kAccepted, TS::kClose, 10),
       },
       false},
      {"stray_packets_without_state",
       "default allow",
       {
           T("ACK", C(ACK, a, b), R::kDropStrayAck),
           T("data", C(ACK | PSH, a, b).len(10), R::kDropStrayAck),
           T("FIN|ACK", S(FIN | ACK, b, a), R::kDropStrayAck),
           T("SYN-ACK to nothing", S(SYN | ACK, b, a + 1), R::kDropSynackWithoutSyn),
           T("RST", S(RST, b), R::kDropStrayRst),
           T("RST|ACK", C(RST | ACK, a, b), R::kDropStrayRst),
       },
       false},
      {"bad_flag_combinations", "default allow",
       cat(
           {
               T("SYN|FIN", C(SYN | FIN, a), R::kDropBadTcpFlags),
               T("no flags", C(0, a), R::kDropBadTcpFlags),
               T("FIN without ACK", C(FIN, a), R::kDropBadTcpFlags),
               T("XMAS", C(0xFF, a), R::kDropBadTcpFlags),
               T("SYN|RST", C(SYN | RST, a), R::kDropBadTcpFlags),
           },
           cat(handshake(a, b),
               {
                   T("SYN|FIN on a connection", C(SYN | FIN | ACK, a + 1, b + 1),
                     R::kDropBadTcpFlags, TS::kEstablished),
                   T("ACK|PSH|URG|ECE|CWR is fine",
                     C(ACK | PSH | kTcpUrg | kTcpEce | kTcpCwr, a + 1, b + 1), R::kAccepted,
                     TS::kEstablished),
               })),
       false},
      {"bad_tcp_options",
       "default allow",
       {
           T("SYN with a 4-byte window-scale option", C(SYN, a).opts({3, 4, 7, 0}),
             R::kDropBadTcpOptions),
           T("SYN, SACK permitted", C(SYN, a).sackp(), R::kCreated, TS::kSynSent),
           T("SYN-ACK, SACK permitted", S(SYN | ACK, b, a + 1).sackp(), R::kAccepted, TS::kSynRecv),
           T("ACK", C(ACK, a + 1, b + 1), R::kAccepted, TS::kEstablished),
           T("ACK with an option running past the header", C(ACK, a + 1, b + 1).opts({5, 30, 0, 0}),
             R::kDropBadTcpOptions, TS::kEstablished),
       },
       false},
      {"synack_with_wrong_ack",
       "default allow",
       {
           T("SYN", C(SYN, a), R::kCreated, TS::kSynSent),
           T("SYN-ACK acking unsent data", S(SYN | ACK, b, a + 1000), R::kDropOutOfWindow,
             TS::kSynSent),
           T("the real SYN-ACK still fits", S(SYN | ACK, b, a + 1), R::kAccepted, TS::kSynRecv),
       },
       false},
      {"invalid_transitions", "default allow",
       cat(
           {
               T("SYN", C(SYN, a), R::kCreated, TS::kSynSent),
               T("client FIN before any answer", C(FIN | ACK, a + 1, 0), R::kDropInvalidTransition,
                 TS::kSynSent),
               T("client SYN-ACK after its SYN", C(SYN | ACK, a, b), R::kDropInvalidTransition,
                 TS::kSynSent),
               T("server ACK in SYN_SENT: half-open, ignored", S(ACK, b + 1, a + 1), R::kIgnored,
                 TS::kSynSent, 0),
           },
           {
               T("SYN-ACK", S(SYN | ACK, b, a + 1), R::kAccepted, TS::kSynRecv),
               T("ACK", C(ACK, a + 1, b + 1), R::kAccepted, TS::kEstablished),
               T("server SYN on an established connection", S(SYN, b + 77),
                 R::kDropInvalidTransition, TS::kEstablished),
               T("client SYN-ACK on an established connection", C(SYN | ACK, a + 1, b + 1),
                 R::kDropInvalidTransition, TS::kEstablished),
           }),
       false},
      {"out_of_window_four_bounds", "default allow",
       cat(handshake(a, b),
           {
               T("I: seq past the receiver's window", C(ACK, a + 1 + 70000, b + 1).len(10),
                 R::kDropOutOfWindow, TS::kEstablished),
               T("data", C(ACK, a + 1, b + 1).len(100), R::kAccepted, TS::kEstablished),
               T("ack", S(ACK, b + 1, a + 101), R::kAccepted, TS::kEstablished),
               T("II: end older than one window", C(ACK, a + 101 - 70000, b + 1).len(10),
                 R::kDropOutOfWindow, TS::kEstablished),
               T("III: acks data the server never sent", C(ACK, a + 101, b + 11),
                 R::kDropOutOfWindow, TS::kEstablished),
               T("IV: ack more than 66000 behind", C(ACK, a + 101, b + 1 - 70000),
                 R::kDropOutOfWindow, TS::kEstablished),
               T("retransmission inside the window passes", C(ACK, a + 51, b + 1).len(50),
                 R::kAccepted, TS::kEstablished),
           }),
       false},
      {"window_scale_honoured",
       "default allow",
       {
           T("SYN wscale 7", C(SYN, a).ws(7), R::kCreated, TS::kSynSent),
           T("SYN-ACK wscale 7", S(SYN | ACK, b, a + 1).ws(7), R::kAccepted, TS::kSynRecv),
           T("ACK", C(ACK, a + 1, b + 1), R::kAccepted, TS::kEstablished),
           T("server window 1000 << 7 = 128000", S(ACK, b + 1, a + 1).win(1000), R::kAccepted,
             TS::kEstablished),
           T("client segment 100000 ahead: inside the scaled window",
             C(ACK, a + 1 + 100000, b + 1).len(100), R::kAccepted, TS::kEstablished),
           T("but not past 128000", C(ACK, a + 1 + 130000, b + 1).len(100), R::kDropOutOfWindow,
             TS::kEstablished),
       },
       false},
      {"window_scale_needs_both_sides",
       "default allow",
       {
           T("SYN wscale 7", C(SYN, a).ws(7), R::kCreated, TS::kSynSent),
           T("SYN-ACK without wscale", S(SYN | ACK, b, a + 1), R::kAccepted, TS::kSynRecv),
           T("ACK", C(ACK, a + 1, b + 1), R::kAccepted, TS::kEstablished),
           T("server window 1000, unscaled", S(ACK, b + 1, a + 1).win(1000), R::kAccepted,
             TS::kEstablished),
           T("client segment 100000 ahead: out of window", C(ACK, a + 1 + 100000, b + 1).len(100),
             R::kDropOutOfWindow, TS::kEstablished),
       },
       false},
      {"retransmitted_syn",
       "default allow",
       {
           T("SYN", C(SYN, a), R::kCreated, TS::kSynSent, 120),
           T("same SYN again", C(SYN, a), R::kAccepted, TS::kSynSent, 120),
           T("SYN with a new ISN re-initialises", C(SYN, a + 1000000), R::kAccepted, TS::kSynSent),
           T("SYN-ACK to the old ISN", S(SYN | ACK, b, a + 1), R::kDropOutOfWindow, TS::kSynSent),
           T("SYN-ACK to the new ISN", S(SYN | ACK, b, a + 1000001), R::kAccepted, TS::kSynRecv),
           T("SYN-ACK retransmitted: ignored", S(SYN | ACK, b, a + 1000001), R::kIgnored,
             TS::kSynRecv, 0),
           T("ACK", C(ACK, a + 1000001, b + 1), R::kAccepted, TS::kEstablished),
       },
       false},
      {"simultaneous_open",
       "default allow",
       {
           T("client SYN", C(SYN, a), R::kCreated, TS::kSynSent),
           T("server SYN crosses it", S(SYN, b), R::kAccepted, TS::kSynSent2, 120),
           T("client SYN-ACK", C(SYN | ACK, a, b + 1), R::kAccepted, TS::kSynRecv, 60),
           T("server SYN-ACK: ignored", S(SYN | ACK, b, a + 1), R::kIgnored, TS::kSynRecv),
           T("client ACK", C(ACK, a + 1, b + 1), R::kAccepted, TS::kEstablished),
           T("server ACK", S(ACK, b + 1, a + 1), R::kAccepted, TS::kEstablished),
       },
       false},
      {"time_wait_reopened_by_client", "default deny\nallow out tcp",
       cat(to_time_wait(a, b),
           {
               T("new SYN from the client", C(SYN, a + 100000), R::kReopened, TS::kSynSent, 120),
               T("SYN-ACK", S(SYN | ACK, b + 9, a + 100001), R::kAccepted, TS::kSynRecv),
               T("ACK", C(ACK, a + 100001, b + 10), R::kAccepted, TS::kEstablished),
           }),
       false},
      {"time_wait_reopen_by_server_checks_acl", "default deny\nallow out tcp",
       cat(to_time_wait(a, b),
           {
               T("SYN from the server is inbound: denied", S(SYN, b + 100000), R::kDenyDefault,
                 TS::kTimeWait),
           }),
       false},
      {"time_wait_reopen_by_server_swaps_roles", "default allow",
       cat(to_time_wait(a, b),
           {
               T("SYN from the server", S(SYN, b + 100000), R::kReopened, TS::kSynSent),
               T("client answers SYN-ACK", C(SYN | ACK, a + 7, b + 100001), R::kAccepted,
                 TS::kSynRecv),
               T("server ACK", S(ACK, b + 100001, a + 8), R::kAccepted, TS::kEstablished),
           }),
       false},
      {"close_then_reopen", "default allow",
       cat(handshake(a, b),
           {
               T("RST", C(RST, a + 1), R::kAccepted, TS::kClose),
               T("server SYN on CLOSE: invalid", S(SYN, b + 5000), R::kDropInvalidTransition,
                 TS::kClose),
               T("client SYN reopens", C(SYN, a + 5000), R::kReopened, TS::kSynSent),
           }),
       false},
      {"ignored_syn_then_synack_resyncs", "default allow",
       cat(handshake(a, b),
           {
               T("client restarts: SYN on ESTABLISHED is ignored", C(SYN, a + 3000000).ws(2),
                 R::kIgnored, TS::kEstablished, 0),
               T("server answers it: re-sync to SYN_RECV", S(SYN | ACK, b + 4000000, a + 3000001),
                 R::kAccepted, TS::kSynRecv, 60),
               T("ACK", C(ACK, a + 3000001, b + 4000001), R::kAccepted, TS::kEstablished),
               T("old numbers no longer fit", C(ACK, a + 1, b + 1).len(10), R::kDropOutOfWindow,
                 TS::kEstablished),
           }),
       false},
      {"rst_answering_ignored_syn_closes", "default allow",
       cat(handshake(a, b),
           {
               T("SYN on ESTABLISHED: ignored", C(SYN, a + 3000000), R::kIgnored, TS::kEstablished),
               T("RST|ACK seq 0 acking that SYN", S(RST | ACK, 0, a + 3000001), R::kAccepted,
                 TS::kClose, 10),
               T("retransmitted SYN reopens", C(SYN, a + 3000000), R::kReopened, TS::kSynSent),
           }),
       false},
      {"sack_extends_the_ack_check",
       "default allow",
       {
           T("SYN, SACK permitted", C(SYN, a).sackp(), R::kCreated, TS::kSynSent),
           T("SYN-ACK, SACK permitted", S(SYN | ACK, b, a + 1).sackp(), R::kAccepted, TS::kSynRecv),
           T("ACK", C(ACK, a + 1, b + 1), R::kAccepted, TS::kEstablished),
           T("server sends 1000 bytes", S(ACK, b + 1, a + 1).len(1000), R::kAccepted,
             TS::kEstablished),
           T("SACK block past what was sent", C(ACK, a + 1, b + 1).sacks({{b + 501, b + 1501}}),
             R::kDropOutOfWindow, TS::kEstablished),
           T("SACK block inside", C(ACK, a + 1, b + 1).sacks({{b + 501, b + 1001}}), R::kAccepted,
             TS::kEstablished),
       },
       false},
      {"sack_ignored_unless_permitted", "default allow",
       cat(handshake(a, b),
           {
               T("server sends 1000 bytes", S(ACK, b + 1, a + 1).len(1000), R::kAccepted),
               T("SACK block past what was sent, SACK not negotiated",
                 C(ACK, a + 1, b + 1).sacks({{b + 501, b + 1501}}), R::kAccepted, TS::kEstablished),
           }),
       false},
      {"be_liberal_accepts_out_of_window", "default allow",
       cat(handshake(a, b), {T("segment past the window", C(ACK, a + 1 + 70000, b + 1).len(10),
                               R::kLiberal, TS::kEstablished, 432000)}),
       true},
      {"acl_on_syn_only",
       "default deny\ndeny in tcp from any to any port 22\nallow in tcp from any to 10.0.0.0/8",
       {
           T("inbound SYN to port 22", S(SYN, b).cport(22), R::kDenyRule),
           T("inbound SYN to 80", S(SYN, b), R::kCreated, TS::kSynSent),
           T("outbound SYN: default deny", C(SYN, a).sport(443), R::kDenyDefault),
           T("reply of the allowed one needs no rule", C(SYN | ACK, a, b + 1), R::kAccepted,
             TS::kSynRecv),
       },
       false},
  };
}

class TcpScenarioTest : public ::testing::TestWithParam<Scenario> {};
TEST_P(TcpScenarioTest, Steps) {
  run_scenario(GetParam());
}
INSTANTIATE_TEST_SUITE_P(Tcp, TcpScenarioTest, ::testing::ValuesIn(tcp_scenarios()), scenario_name);

// ---- unit checks ----

TEST(TcpTable, MatchesNetfilterSpotChecks) {
  auto next = [](unsigned dir, TcpIndex i, TcpState s) { return tcp_next_state(dir, i, s); };
  auto u = [](TcpState s) { return static_cast<uint8_t>(s); };
  EXPECT_EQ(next(kDirOriginal, TcpIndex::kSyn, TS::kNone), u(TS::kSynSent));
  EXPECT_EQ(next(kDirReply, TcpIndex::kSynAck, TS::kSynSent), u(TS::kSynRecv));
  EXPECT_EQ(next(kDirOriginal, TcpIndex::kAck, TS::kSynRecv), u(TS::kEstablished));
  EXPECT_EQ(next(kDirOriginal, TcpIndex::kFin, TS::kEstablished), u(TS::kFinWait));
  EXPECT_EQ(next(kDirReply, TcpIndex::kAck, TS::kFinWait), u(TS::kCloseWait));
  EXPECT_EQ(next(kDirReply, TcpIndex::kFin, TS::kCloseWait), u(TS::kLastAck));
  EXPECT_EQ(next(kDirOriginal, TcpIndex::kAck, TS::kLastAck), u(TS::kTimeWait));
  EXPECT_EQ(next(kDirOriginal, TcpIndex::kSyn, TS::kTimeWait), u(TS::kSynSent));
  EXPECT_EQ(next(kDirReply, TcpIndex::kSyn, TS::kSynSent), u(TS::kSynSent2));
  EXPECT_EQ(next(kDirOriginal, TcpIndex::kSyn, TS::kEstablished), kTcpIgnore);
  EXPECT_EQ(next(kDirReply, TcpIndex::kSynAck, TS::kEstablished), kTcpIgnore);
  EXPECT_EQ(next(kDirOriginal, TcpIndex::kSynAck, TS::kSynSent), kTcpInvalid);
  EXPECT_EQ(next(kDirReply, TcpIndex::kSyn, TS::kClose), kTcpInvalid);
  for (int s = 0; s < static_cast<int>(TS::kCount); ++s) {
    const auto st = static_cast<TS>(s);
    // RST closes from every state but NONE; a packet without flags never fits.
    EXPECT_EQ(next(kDirOriginal, TcpIndex::kRst, st), s == 0 ? kTcpInvalid : u(TS::kClose));
    EXPECT_EQ(next(kDirReply, TcpIndex::kRst, st), s == 0 ? kTcpInvalid : u(TS::kClose));
    EXPECT_EQ(next(kDirOriginal, TcpIndex::kNone, st), kTcpInvalid);
    EXPECT_EQ(next(kDirReply, TcpIndex::kNone, st), kTcpInvalid);
  }
}

TEST(TcpFlags, ValidCombinations) {
  int valid = 0;
  for (int f = 0; f < 256; ++f) {
    if (tcp_flags_valid(static_cast<uint8_t>(f))) ++valid;
  }
  // 9 base combinations (netfilter's table) x PSH, ECE, CWR = 72.
  EXPECT_EQ(valid, 72);
  EXPECT_TRUE(tcp_flags_valid(SYN | kTcpUrg));
  EXPECT_FALSE(tcp_flags_valid(SYN | ACK | kTcpUrg));
  EXPECT_FALSE(tcp_flags_valid(RST | kTcpUrg));
  EXPECT_EQ(tcp_index(SYN | ACK), TcpIndex::kSynAck);
  EXPECT_EQ(tcp_index(RST | ACK), TcpIndex::kRst);
  EXPECT_EQ(tcp_index(FIN | ACK), TcpIndex::kFin);
  EXPECT_EQ(tcp_index(PSH), TcpIndex::kNone);
}

TEST(TcpSeq, WrapAround) {
  EXPECT_TRUE(seq_before(0xFFFFFFF0u, 0x10u));
  EXPECT_TRUE(seq_after(0x10u, 0xFFFFFFF0u));
  EXPECT_FALSE(seq_before(5, 5));
  EXPECT_FALSE(seq_after(5, 5));
}

TEST(TcpTimeouts, NetfilterDefaults) {
  const FwTimeouts t;
  EXPECT_EQ(t.tcp(TS::kSynSent), 120u);
  EXPECT_EQ(t.tcp(TS::kSynSent2), 120u);
  EXPECT_EQ(t.tcp(TS::kSynRecv), 60u);
  EXPECT_EQ(t.tcp(TS::kEstablished), 432000u);
  EXPECT_EQ(t.tcp(TS::kFinWait), 120u);
  EXPECT_EQ(t.tcp(TS::kCloseWait), 60u);
  EXPECT_EQ(t.tcp(TS::kLastAck), 30u);
  EXPECT_EQ(t.tcp(TS::kTimeWait), 120u);
  EXPECT_EQ(t.tcp(TS::kClose), 10u);
  EXPECT_EQ(t.udp, 30u);
  EXPECT_EQ(t.udp_stream, 120u);
  EXPECT_EQ(t.icmp, 30u);
  EXPECT_EQ(t.generic, 600u);
}

TEST(TcpTimeouts, Configurable) {
  const char* rules = "default allow";
  FirewallConfig cfg;
  cfg.acl = parse_rules(rules);
  cfg.timeouts.tcp_syn_sent = 5;
  cfg.timeouts.tcp_established = 7200;
  Harness h(cfg);
  const FwConnState* rec;
  EXPECT_EQ(h.feed(C(SYN, a).builder().build(), TrafficDir::kOut, &rec).timeout_s, 5u);
  EXPECT_EQ(h.feed(S(SYN | ACK, b, a + 1).builder().build(), TrafficDir::kIn, &rec).timeout_s, 60u);
  EXPECT_EQ(h.feed(C(ACK, a + 1, b + 1).builder().build(), TrafficDir::kOut, &rec).timeout_s,
            7200u);
}

TEST(TcpInWindow, TracksEdges) {
  // Handshake with windows 65535 (client) and 1000 (server), no scaling:
  // each side's td_end is its ISN+1, td_maxend the other's ack + window.
  FirewallConfig cfg;
  cfg.acl.default_action = FwAction::kAllow;
  Harness h(cfg);
  const FwConnState* rec = nullptr;
  h.feed(C(SYN, a).win(65535).builder().build(), TrafficDir::kOut, &rec);
  h.feed(S(SYN | ACK, b, a + 1).win(1000).builder().build(), TrafficDir::kIn, &rec);
  h.feed(C(ACK, a + 1, b + 1).win(65535).builder().build(), TrafficDir::kOut, &rec);
  ASSERT_NE(rec, nullptr);
  // The client's key is not reversed (10.0.0.1 < 192.0.2.10): it is the original side.
  EXPECT_EQ(rec->dir_of(false), kDirOriginal);
  EXPECT_EQ(rec->peer[kDirOriginal].td_end, a + 1);
  EXPECT_EQ(rec->peer[kDirOriginal].td_maxend, a + 1 + 1000);
  EXPECT_EQ(rec->peer[kDirReply].td_end, b + 1);
  EXPECT_EQ(rec->peer[kDirReply].td_maxend, b + 1 + 65535);
  EXPECT_EQ(rec->peer[kDirOriginal].td_maxwin, 65535u);
  EXPECT_EQ(rec->peer[kDirReply].td_maxwin, 1000u);
  EXPECT_EQ(rec->peer[kDirOriginal].td_maxack, b + 1);
  EXPECT_EQ(rec->peer[kDirReply].td_maxack, a + 1);
  EXPECT_EQ(h.size(), 1u);
}

TEST(FwConnState, FixedAndSmall) {
  EXPECT_EQ(sizeof(FwConnState), 48u);
  FwConnState zero{};
  EXPECT_EQ(zero.kind, FwKind::kNone);
}

}  // namespace tripod::fwtest
