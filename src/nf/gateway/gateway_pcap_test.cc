// Replays every case directory under tests/pcap/gateway (in.pcap through
// ParseStage + GatewayStage with pcap_cases.h's config, time from the
// capture) and compares the transmitted frames with expected.pcap, byte
// for byte. Cases can be added as files alone; the generated ones are also
// checked against their table so the files cannot go stale.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "nf/gateway/pcap_cases.h"
#include "packet/pcap_io.h"
#include "pipeline/parse_stage.h"
#include "pipeline/pipeline.h"

#ifndef TRIPOD_PCAP_CASES
#error "TRIPOD_PCAP_CASES must name the case directory"
#endif

namespace tripod {
namespace {

std::vector<Bytes> read_pcap(const std::filesystem::path& p) {
  std::string err;
  auto r = PcapReader::open(p.string(), &err);
  EXPECT_TRUE(r) << err;
  std::vector<Bytes> out;
  std::span<const uint8_t> f;
  while (r && r->next(&f))
    out.emplace_back(f.begin(), f.end());
  return out;
}

std::vector<std::filesystem::path> case_dirs() {
  std::vector<std::filesystem::path> dirs;
  for (const auto& e : std::filesystem::directory_iterator(TRIPOD_PCAP_CASES))
    if (e.is_directory()) dirs.push_back(e.path());
  std::sort(dirs.begin(), dirs.end());
  return dirs;
}

TEST(GatewayPcap, EveryCaseGivesItsExpectedFrames) {
  const auto dirs = case_dirs();
  ASSERT_GE(dirs.size(), pcapcases::cases().size());
  for (const auto& d : dirs) {
    SCOPED_TRACE(d.filename().string());
    const auto out_path =
        std::filesystem::temp_directory_path() / ("tripod-pcap-" + d.filename().string() + ".pcap");
    {
      Pipeline p;
      p.add(std::make_unique<ParseStage>());
      p.add(std::make_unique<GatewayStage>(pcapcases::config(), 1000ull * 1'000'000'000));
      PcapPort port((d / "in.pcap").string(), out_path.string());
      p.run_to_end(port, nullptr);
    }  // closes the output
    const auto got = read_pcap(out_path);
    const auto want = read_pcap(d / "expected.pcap");
    std::filesystem::remove(out_path);
    ASSERT_EQ(got.size(), want.size());
    for (size_t i = 0; i < got.size(); ++i) {
      if (got[i] == want[i]) continue;
      size_t at = 0;
      while (at < got[i].size() && at < want[i].size() && got[i][at] == want[i][at])
        ++at;
      ADD_FAILURE() << "frame " << i << " differs from byte " << at << " (got " << got[i].size()
                    << " bytes, want " << want[i].size() << ")";
    }
  }
}

TEST(GatewayPcap, GeneratedFilesMatchTheirTable) {
  for (const auto& c : pcapcases::cases()) {
    SCOPED_TRACE(c.name);
    const auto d = std::filesystem::path(TRIPOD_PCAP_CASES) / c.name;
    EXPECT_EQ(read_pcap(d / "in.pcap"), c.in);
    EXPECT_EQ(read_pcap(d / "expected.pcap"), c.expected);
  }
}

}  // namespace
}  // namespace tripod
