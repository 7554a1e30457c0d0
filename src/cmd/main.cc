// tripod: the gateway's command-line entry point.
//   tripod demo              generate a capture, run the pipeline, summarise
//   tripod gen-pcap OUT      write the demo capture
//   tripod run IN [-o OUT]   run the pipeline over a capture
// (The AF_XDP daemon and the lab arrive with issue 4.)
#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>
#include <string>

#include "cmd/demo_traffic.h"
#include "common/random.h"
#include "io/port.h"
#include "pipeline/flow_stage.h"
#include "pipeline/parse_stage.h"
#include "pipeline/pipeline.h"

namespace tripod {
namespace {

struct RunOptions {
  std::string in;
  std::string out;
  uint32_t capacity = 1 << 20;
};

void print_counters(const Pipeline& p, bool skip_zero) {
  for (const auto& s : p.stages()) {
    std::printf("  %-6s", s->name());
    int col = 0;
    s->export_counters([&](std::string_view n, uint64_t v) {
      if (skip_zero && v == 0) return;
      if (col++ % 4 == 0 && col > 1) std::printf("\n        ");
      std::printf(" %.*s=%llu", static_cast<int>(n.size()), n.data(),
                  static_cast<unsigned long long>(v));
    });
    std::printf("\n");
  }
}

int run_capture(const RunOptions& o) {
  SipKey hash_key;
  secure_random_bytes(&hash_key, sizeof hash_key);  // per process: see siphash.h
  Pipeline p;
  p.add(std::make_unique<ParseStage>());
  ConnTableConfig tc;
  tc.capacity = o.capacity;
  auto flow_owned = std::make_unique<FlowStage>(tc, FlowTimeouts{}, hash_key);
  FlowStage* flow = flow_owned.get();
  p.add(std::move(flow_owned));

  PcapPort port(o.in, o.out);
  const auto t0 = std::chrono::steady_clock::now();
  const RunStats st = p.run_to_end(port, nullptr);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  std::printf("replayed %llu packets from %s in %.1f ms (%.0f ns/packet, one core)\n",
              static_cast<unsigned long long>(st.rx), o.in.c_str(), secs * 1e3,
              st.rx ? secs * 1e9 / static_cast<double>(st.rx) : 0.0);
  std::printf("  forwarded %llu, dropped %llu, oversize frames skipped %llu\n",
              static_cast<unsigned long long>(st.tx), static_cast<unsigned long long>(st.dropped),
              static_cast<unsigned long long>(port.oversize_drops()));
  print_counters(p, true);
  std::printf("at the end of the capture: %u flows live in a table of %u (%.1f MiB)\n",
              flow->table().size(), flow->table().capacity(),
              static_cast<double>(flow->table().memory_bytes()) / (1 << 20));
  for (uint32_t minutes : {2u, 10u}) {
    flow->advance_to(st.last_ts_ns + uint64_t{minutes} * 60 * 1'000'000'000);
    std::printf(
        "after %2u idle minutes:    %u flows live (closed TCP, UDP and ICMP expired; "
        "open TCP sessions stay established for 5 days)\n",
        minutes, flow->table().size());
  }
  if (!o.out.empty()) std::printf("forwarded packets written to %s\n", o.out.c_str());
  return 0;
}

}  // namespace
}  // namespace tripod

int main(int argc, char** argv) {
  using namespace tripod;
  CLI::App app{"tripod: a replicated, stateful software cloud gateway"};
  app.require_subcommand(1);

  DemoTrafficOptions gen;
  std::string demo_dir = (std::filesystem::temp_directory_path() / "tripod-demo").string();
  auto* demo =
      app.add_subcommand("demo", "generate a capture, run the pipeline over it, summarise");
  demo->add_option("--dir", demo_dir, "where to write demo.pcap and out.pcap");
  demo->add_option("--tcp-flows", gen.tcp_flows, "TCP sessions in the capture");
  demo->add_option("--udp-flows", gen.udp_flows, "UDP exchanges in the capture");

  std::string gen_out;
  auto* genc = app.add_subcommand("gen-pcap", "write the demo's synthetic capture");
  genc->add_option("out", gen_out, "output pcap")->required();
  genc->add_option("--tcp-flows", gen.tcp_flows);
  genc->add_option("--udp-flows", gen.udp_flows);
  genc->add_option("--seed", gen.seed);

  RunOptions run;
  auto* runc = app.add_subcommand("run", "run the pipeline over a pcap capture");
  runc->add_option("in", run.in, "input pcap (Ethernet)")->required()->check(CLI::ExistingFile);
  runc->add_option("-o,--out", run.out, "write forwarded packets here");
  runc->add_option("--table-capacity", run.capacity, "connection table capacity")
      ->check(CLI::Range(1u, (1u << 26) - 1));

  CLI11_PARSE(app, argc, argv);
  try {
    if (*demo) {
      std::filesystem::create_directories(demo_dir);
      run.in = demo_dir + "/demo.pcap";
      run.out = demo_dir + "/out.pcap";
      const auto s = write_demo_pcap(run.in, gen);
      std::printf(
          "tripod demo: generated %llu packets (%u TCP sessions, %u UDP exchanges, ICMP, "
          "fragments, ARP, %llu malformed frames) in %s\n\n",
          static_cast<unsigned long long>(s.packets), gen.tcp_flows, gen.udp_flows,
          static_cast<unsigned long long>(s.malformed), run.in.c_str());
      return run_capture(run);
    }
    if (*genc) {
      const auto s = write_demo_pcap(gen_out, gen);
      std::printf("wrote %llu packets to %s\n", static_cast<unsigned long long>(s.packets),
                  gen_out.c_str());
      return 0;
    }
    return run_capture(run);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "tripod: %s\n", e.what());
    return 1;
  }
}
