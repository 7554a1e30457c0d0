// Writes the table-driven gateway cases (pcap_cases.h) as pcap files, the
// form gateway_pcap_test replays (and the form captured cases take):
//   build/dev/src/nf/gateway/gateway_pcap_gen tests/pcap/gateway
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "nf/gateway/pcap_cases.h"
#include "packet/pcap_io.h"

namespace tripod {
namespace {

bool write(const std::filesystem::path& path, const std::vector<Bytes>& frames) {
  std::string err;
  auto w = PcapWriter::open(path.string(), &err);
  if (!w) {
    std::fprintf(stderr, "%s\n", err.c_str());
    return false;
  }
  uint64_t ts = 1000ull * 1'000'000'000;
  for (const Bytes& f : frames)
    w->write(f, ts += 1'000'000);
  return true;
}

int run(const char* dir) {
  for (const auto& c : pcapcases::cases()) {
    const auto d = std::filesystem::path(dir) / c.name;
    std::filesystem::create_directories(d);
    if (!write(d / "in.pcap", c.in) || !write(d / "expected.pcap", c.expected)) return 1;
    std::ofstream(d / "README") << c.description << "\n";
  }
  return 0;
}

}  // namespace
}  // namespace tripod

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s <dir>\n", argv[0]);
    return 2;
  }
  return tripod::run(argv[1]);
}
