#include "packet/pcap_io.h"

#include <gtest/gtest.h>
#include <pcap/pcap.h>
#include <unistd.h>

#include <filesystem>
#include <vector>

#include "packet/builder.h"

namespace tripod {
namespace {

// A fresh directory under the system temp dir, removed at the end.
class TempDir {
 public:
  TempDir() {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    path_ = std::filesystem::temp_directory_path() /
            ("tripod_pcap_" + std::string(info->name()) + "_" + std::to_string(::getpid()));
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  std::string file(const char* name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

TEST(Pcap, WriteReadRoundTrip) {
  TempDir dir;
  const std::string path = dir.file("trace.pcap");
  std::vector<Bytes> frames = {
      PacketBuilder().ipv4("10.0.0.1", "10.0.0.2").tcp(1, 2).syn().mss(1460).build(),
      PacketBuilder().ipv6("::1", "::2").udp(53, 53).payload(Bytes(1400, 7)).build(),
      PacketBuilder().ethertype(kEtherTypeArp).payload(Bytes(28, 1)).build(),
  };
  const uint64_t stamps[] = {1, 1'700'000'000'123'456'789ULL, 1'700'000'001'000'000'000ULL};
  {
    std::string err;
    auto w = PcapWriter::open(path, &err);
    ASSERT_NE(w, nullptr) << err;
    for (size_t i = 0; i < frames.size(); ++i)
      w->write(frames[i], stamps[i]);
  }
  std::string err;
  auto r = PcapReader::open(path, &err);
  ASSERT_NE(r, nullptr) << err;
  std::span<const uint8_t> f;
  uint64_t ts = 0;
  for (size_t i = 0; i < frames.size(); ++i) {
    ASSERT_TRUE(r->next(&f, &ts)) << i;
    EXPECT_EQ(Bytes(f.begin(), f.end()), frames[i]) << i;
    EXPECT_EQ(ts, stamps[i]) << i;  // nanoseconds survive
  }
  EXPECT_FALSE(r->next(&f, &ts));
  EXPECT_TRUE(r->error().empty()) << r->error();
}

TEST(Pcap, MissingFileIsAnError) {
  TempDir dir;
  std::string err;
  EXPECT_EQ(PcapReader::open(dir.file("nope.pcap"), &err), nullptr);
  EXPECT_FALSE(err.empty());
  err.clear();
  EXPECT_EQ(PcapWriter::open(dir.file("no/such/dir.pcap"), &err), nullptr);
  EXPECT_FALSE(err.empty());
}

TEST(Pcap, NonEthernetLinkTypeIsRejected) {
  TempDir dir;
  const std::string path = dir.file("raw.pcap");
  pcap_t* p = pcap_open_dead(DLT_RAW, 65535);
  ASSERT_NE(p, nullptr);
  pcap_dumper_t* d = pcap_dump_open(p, path.c_str());
  ASSERT_NE(d, nullptr);
  pcap_dump_close(d);
  pcap_close(p);
  std::string err;
  EXPECT_EQ(PcapReader::open(path, &err), nullptr);
  EXPECT_NE(err.find("not Ethernet"), std::string::npos) << err;
}

}  // namespace
}  // namespace tripod
