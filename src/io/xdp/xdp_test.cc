// Unit tests of the XDP program's classification, run in the kernel with
// BPF_PROG_TEST_RUN on crafted frames (no interface, no namespace). Needs
// root to load BPF; skips otherwise.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>
#include <unistd.h>

#include <cstring>
#include <vector>

#include "gtest/gtest.h"
#include "io/xdp/tripod_xdp_shared.h"
#include "io/xdp/xdp_object.h"
#include "packet/builder.h"

namespace tripod {
namespace {

constexpr char kSteered4[] = "192.0.2.10";
constexpr char kOther4[] = "192.0.2.20";
constexpr char kSteered6[] = "2001:db8::10";
constexpr char kOther6[] = "2001:db8::20";

class XdpProgramTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root to load a BPF program";
    bpf_object_open_opts opts{};
    opts.sz = sizeof(opts);
    opts.object_name = TRIPOD_XDP_PROG_NAME;
    obj_ = bpf_object__open_mem(kTripodXdpObject, kTripodXdpObjectSize, &opts);
    ASSERT_NE(obj_, nullptr) << std::strerror(errno);
    ASSERT_EQ(bpf_object__load(obj_), 0) << std::strerror(errno);
    const bpf_program* prog = bpf_object__find_program_by_name(obj_, TRIPOD_XDP_PROG_NAME);
    ASSERT_NE(prog, nullptr);
    prog_fd_ = bpf_program__fd(prog);
    steer_fd_ = bpf_map__fd(bpf_object__find_map_by_name(obj_, TRIPOD_XDP_STEER_MAP));
    stats_fd_ = bpf_map__fd(bpf_object__find_map_by_name(obj_, TRIPOD_XDP_STATS_MAP));
    cfg_fd_ = bpf_map__fd(bpf_object__find_map_by_name(obj_, TRIPOD_XDP_CONFIG_MAP));
    ASSERT_GE(prog_fd_, 0);
    ASSERT_GE(steer_fd_, 0);
    ASSERT_GE(stats_fd_, 0);
    ASSERT_GE(cfg_fd_, 0);
    steer(kSteered4);
    steer(kSteered6);
  }
  void TearDown() override {
    if (obj_ != nullptr) bpf_object__close(obj_);
  }

  // The key contract of tripod_xdp_shared.h, restated independently.
  void steer(const char* text) {
    Family f;
    uint8_t addr[16];
    ASSERT_TRUE(parse_ip(text, &f, addr));
    uint8_t key[TRIPOD_XDP_KEY_LEN] = {};
    if (f == Family::kIpv4) {
      key[10] = key[11] = 0xff;
      std::memcpy(key + 12, addr, 4);
    } else {
      std::memcpy(key, addr, 16);
    }
    const uint8_t one = 1;
    ASSERT_EQ(bpf_map_update_elem(steer_fd_, key, &one, BPF_ANY), 0);
  }

  int run(const Bytes& frame) {
    bpf_test_run_opts o{};
    o.sz = sizeof(o);
    o.data_in = frame.data();
    o.data_size_in = static_cast<uint32_t>(frame.size());
    o.repeat = 1;
    const int err = bpf_prog_test_run_opts(prog_fd_, &o);
    EXPECT_EQ(err, 0) << std::strerror(errno);
    return err == 0 ? static_cast<int>(o.retval) : -1;
  }

  uint64_t stat(uint32_t slot) {
    std::vector<uint64_t> v(static_cast<size_t>(libbpf_num_possible_cpus()));
    EXPECT_EQ(bpf_map_lookup_elem(stats_fd_, &slot, v.data()), 0);
    uint64_t sum = 0;
    for (const uint64_t x : v)
      sum += x;
    return sum;
  }

  bpf_object* obj_ = nullptr;
  int prog_fd_ = -1, steer_fd_ = -1, stats_fd_ = -1, cfg_fd_ = -1;
};

Bytes udp4(const char* dst, const char* src = "198.51.100.1") {
  return PacketBuilder().ipv4(src, dst).udp(1000, 2000).payload("x").build();
}
Bytes udp6(const char* dst, const char* src = "2001:db8:1::1") {
  return PacketBuilder().ipv6(src, dst).udp(1000, 2000).payload("x").build();
}

// Without a socket on the queue, a steered packet is dropped (fail closed)
// and counted as no_socket: that is how these tests see "steered".
TEST_F(XdpProgramTest, SteeredDestinationsAreClaimed) {
  EXPECT_EQ(run(udp4(kSteered4)), XDP_DROP);
  EXPECT_EQ(run(udp6(kSteered6)), XDP_DROP);
  EXPECT_EQ(run(PacketBuilder().ipv4("198.51.100.1", kSteered4).tcp(1, 80).syn().build()),
            XDP_DROP);
  EXPECT_EQ(stat(TRIPOD_XDP_STAT_NO_SOCKET), 3u);
  EXPECT_EQ(stat(TRIPOD_XDP_STAT_PASSED), 0u);
  EXPECT_EQ(stat(TRIPOD_XDP_STAT_REDIRECTED), 0u);
}

TEST_F(XdpProgramTest, OtherTrafficPasses) {
  EXPECT_EQ(run(udp4(kOther4)), XDP_PASS);
  EXPECT_EQ(run(udp6(kOther6)), XDP_PASS);
  // Only the destination matters: a steered source is the node's reply path.
  EXPECT_EQ(run(udp4(kOther4, kSteered4)), XDP_PASS);
  EXPECT_EQ(run(udp6(kOther6, kSteered6)), XDP_PASS);
  // ARP (even for a steered address) and other non-IP frames.
  Bytes arp_body(28, 0);
  EXPECT_EQ(run(PacketBuilder()
                    .eth("02:00:00:00:00:01", "ff:ff:ff:ff:ff:ff")
                    .ethertype(kEtherTypeArp)
                    .payload(arp_body)
                    .build()),
            XDP_PASS);
  EXPECT_EQ(stat(TRIPOD_XDP_STAT_PASSED), 5u);
  EXPECT_EQ(stat(TRIPOD_XDP_STAT_NO_SOCKET), 0u);
}

TEST_F(XdpProgramTest, OneVlanTagIsParsed) {
  EXPECT_EQ(run(PacketBuilder().vlan(100).ipv4("198.51.100.1", kSteered4).udp(1, 2).build()),
            XDP_DROP);
  EXPECT_EQ(run(PacketBuilder().vlan(100).ipv6("2001:db8:1::1", kSteered6).udp(1, 2).build()),
            XDP_DROP);
  EXPECT_EQ(run(PacketBuilder().vlan(100).ipv4("198.51.100.1", kOther4).udp(1, 2).build()),
            XDP_PASS);
  // 802.1ad outer tag: rewrite the TPID of a tagged frame.
  Bytes qinq = PacketBuilder().vlan(7).ipv4("198.51.100.1", kSteered4).udp(1, 2).build();
  qinq[12] = 0x88;
  qinq[13] = 0xa8;
  EXPECT_EQ(run(qinq), XDP_DROP);
  // Two tags: the user-space parser rejects stacked VLANs, so the program
  // does not look past the first one either.
  Bytes stacked = PacketBuilder().vlan(7).ipv4("198.51.100.1", kSteered4).udp(1, 2).build();
  const uint8_t inner_tag[4] = {0x81, 0x00, 0x00, 0x08};
  stacked.insert(stacked.begin() + 16, inner_tag, inner_tag + 4);
  EXPECT_EQ(run(stacked), XDP_PASS);
  EXPECT_EQ(stat(TRIPOD_XDP_STAT_NO_SOCKET), 3u);
  EXPECT_EQ(stat(TRIPOD_XDP_STAT_PASSED), 2u);
}

TEST_F(XdpProgramTest, TruncatedHeadersPass) {
  Bytes v4 = udp4(kSteered4);
  v4.resize(14 + 19);  // one byte short of the IPv4 header
  EXPECT_EQ(run(v4), XDP_PASS);
  Bytes v6 = udp6(kSteered6);
  v6.resize(14 + 39);
  EXPECT_EQ(run(v6), XDP_PASS);
  Bytes vlan = PacketBuilder().vlan(1).ipv4("198.51.100.1", kSteered4).udp(1, 2).build();
  vlan.resize(16);  // half a tag
  EXPECT_EQ(run(vlan), XDP_PASS);
  EXPECT_EQ(stat(TRIPOD_XDP_STAT_PASSED), 3u);
  EXPECT_EQ(stat(TRIPOD_XDP_STAT_NO_SOCKET), 0u);
}

TEST_F(XdpProgramTest, NoSocketPolicyCanPass) {
  const uint32_t slot = TRIPOD_XDP_CFG_NO_SOCKET_PASS;
  const uint32_t pass = 1;
  ASSERT_EQ(bpf_map_update_elem(cfg_fd_, &slot, &pass, BPF_ANY), 0);
  EXPECT_EQ(run(udp4(kSteered4)), XDP_PASS);
  EXPECT_EQ(stat(TRIPOD_XDP_STAT_NO_SOCKET), 1u);  // still counted as a miss
}

}  // namespace
}  // namespace tripod
