// tripod: the gateway's command-line entry point.
//   tripod run --config FILE      the daemon (AF_XDP); --check only validates
//   tripod status [--json]        ask a running daemon
//   tripod replay IN [-o OUT] [--config FILE]
//                                 run a capture through the pipeline: the
//                                 gateway of FILE, or flow tracking only
//   tripod demo                   generate a capture, replay it, summarise
//   tripod gen-pcap OUT           write the demo capture
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>
#include <string>

#include "cmd/demo_traffic.h"
#include "common/random.h"
#include "control/config.h"
#include "daemon/daemon.h"
#include "daemon/logging.h"
#include "daemon/status_client.h"
#include "io/port.h"
#include "nf/gateway/gateway_stage.h"
#include "pipeline/flow_stage.h"
#include "pipeline/parse_stage.h"
#include "pipeline/pipeline.h"

namespace tripod {
namespace {

struct RunOptions {
  std::string in;
  std::string out;
  std::string config;  // replay through this gateway; empty: flow tracking only
  uint32_t capacity = 1 << 20;
};

void print_counters(const Pipeline& p, bool skip_zero);

int run_daemon(const std::string& path, bool check_only) {
  TripodConfig cfg = load_config(path);
  Daemon::check_supported(cfg);
  if (check_only) {
    std::printf("%s: OK (%zu VIP(s), %zu interface(s))\n", path.c_str(), cfg.gateway.vips.size(),
                cfg.interfaces.size());
    return 0;
  }
  setup_logging(cfg.logging);
  if (cfg.generated.lb_key || cfg.generated.synproxy_key)
    spdlog::warn(
        "{}{}drawn at random: fine for one node, but every node of a cluster must share "
        "them (secrets in the configuration)",
        cfg.generated.lb_key ? "lb_key " : "", cfg.generated.synproxy_key ? "synproxy_key " : "");
  Daemon d(std::move(cfg), path);
  return d.run();
}

int replay_gateway(const RunOptions& o) {
  const TripodConfig cfg = load_config(o.config);
  Pipeline p;
  p.add(std::make_unique<ParseStage>());
  p.add(std::make_unique<GatewayStage>(cfg.gateway, 0));
  PcapPort port(o.in, o.out);
  const RunStats st = p.run_to_end(port, nullptr);
  std::printf(
      "replayed %llu packets from %s through the gateway of %s: forwarded %llu, "
      "dropped %llu, created %llu\n",
      static_cast<unsigned long long>(st.rx), o.in.c_str(), o.config.c_str(),
      static_cast<unsigned long long>(st.tx), static_cast<unsigned long long>(st.dropped),
      static_cast<unsigned long long>(st.created));
  print_counters(p, true);
  if (!o.out.empty()) std::printf("forwarded packets written to %s\n", o.out.c_str());
  return 0;
}

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
  auto* replay = app.add_subcommand("replay", "run a pcap capture through the pipeline");
  replay->add_option("in", run.in, "input pcap (Ethernet)")->required()->check(CLI::ExistingFile);
  replay->add_option("-o,--out", run.out, "write forwarded packets here");
  replay->add_option("-c,--config", run.config, "the gateway of this configuration file")
      ->check(CLI::ExistingFile);
  replay->add_option("--table-capacity", run.capacity, "flow table capacity (without --config)")
      ->check(CLI::Range(1u, (1u << 26) - 1));

  std::string config_path;
  bool check_only = false;
  auto* daemon = app.add_subcommand("run", "the gateway daemon (AF_XDP)");
  daemon->add_option("-c,--config", config_path, "configuration file (YAML)")->required();
  daemon->add_flag("--check", check_only, "validate the configuration and exit");

  std::string status_socket = "/run/tripod/status.sock";
  bool status_json = false;
  auto* status = app.add_subcommand("status", "show a running daemon's VIPs, backends, counters");
  status->add_option("-s,--socket", status_socket, "the daemon's status socket");
  status->add_flag("--json", status_json, "print the status document as JSON");

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
    if (*daemon) return run_daemon(config_path, check_only);
    if (*status) {
      const std::string doc = fetch_status(status_socket);
      std::fputs(status_json ? doc.c_str() : format_status(doc).c_str(), stdout);
      return 0;
    }
    return run.config.empty() ? run_capture(run) : replay_gateway(run);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "tripod: %s\n", e.what());
    return 1;
  }
}
