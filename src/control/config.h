// The daemon's configuration: one YAML file (format: README.md, every field
// documented in config/tripod.example.yaml) loaded into the data plane's
// GatewayConfig plus the parts only the daemon uses (interfaces, workers,
// health checks, logging, the status socket).
//
// Loading validates everything it can before anything runs: syntax, types,
// ranges, unknown keys, and the semantics the data plane would otherwise
// reject at start-up (or worse, accept). Every error is a ConfigError whose
// message starts with "file:line:column: field.path: ", so an operator can
// jump to the line.
//
// plan_reload() compares the running configuration with a newly loaded one
// for SIGHUP: what can change live (VIPs and pools through the LB's
// two-phase update, health checks, firewall rules, logging) and what needs a
// restart (reported as errors: the daemon keeps the old configuration).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "nf/gateway/gateway_stage.h"

namespace tripod {

class ConfigError : public std::runtime_error {
 public:
  // line and column are 1-based; 0 when the error concerns the whole file.
  ConfigError(std::string file, int line, int column, std::string path, std::string reason);

  const std::string& file() const { return file_; }
  int line() const { return line_; }
  int column() const { return column_; }
  const std::string& path() const {
    return path_;
  }  // "vips[1].backends[0].weight"; "" for the file
  const std::string& reason() const { return reason_; }

 private:
  std::string file_;
  int line_;
  int column_;
  std::string path_;
  std::string reason_;
};

// How the XDP program is attached (libxdp's modes).
enum class XdpMode : uint8_t { kAuto, kNative, kSkb };
// How the AF_XDP sockets bind: zero-copy needs driver support; auto tries it first.
enum class BindMode : uint8_t { kAuto, kCopy, kZeroCopy };

struct InterfaceConfig {
  std::string name;
  std::vector<uint32_t> queues;  // one AF_XDP socket per queue
  XdpMode xdp_mode = XdpMode::kAuto;
  BindMode bind_mode = BindMode::kAuto;
  friend bool operator==(const InterfaceConfig&, const InterfaceConfig&) = default;
};

enum class HealthCheckType : uint8_t { kNone, kTcp, kHttp };

struct HealthCheckConfig {
  HealthCheckType type = HealthCheckType::kNone;  // kNone: backends are always up
  uint32_t interval_ms = 2000;
  uint32_t timeout_ms = 1000;  // < interval_ms
  uint32_t rise = 2;           // consecutive successes to come up
  uint32_t fall = 3;           // consecutive failures to go down
  uint16_t port = 0;           // 0: the backend's port (the VIP's when that is 0)
  std::string http_path = "/";
  std::string http_host;  // Host header; empty: the backend's address
  uint16_t http_expect_status = 200;
  friend bool operator==(const HealthCheckConfig&, const HealthCheckConfig&) = default;
};

// Daemon-side options of gateway.vips[i] (same index).
// Flow-state replication in a cluster: `sync` holds a flow's packets until
// its latest state is acknowledged by its holders (output commit); `async`
// sends them at once and the state follows within a checkpoint; `off`
// keeps the flows on their node (they break when it dies or the router
// moves them: traffic not worth the replication bytes, or a baseline to
// measure replication's cost).
enum class ReplicationMode : uint8_t { kAsync, kSync, kOff };

struct VipDaemonConfig {
  std::string name;  // for logs and status; default "address:port/proto"
  HealthCheckConfig health_check;
  // The VIP's own replication mode; unset: the cluster's `mode`. The result
  // is GatewayVipConfig::output_commit and ::replicated.
  std::optional<ReplicationMode> replication;
  // Its flows' checkpoint interval (async replication); unset: the
  // cluster's. The result is GatewayVipConfig::checkpoint_ns.
  std::optional<uint64_t> checkpoint_ns;
  std::string where;  // "file:line:col" of the VIP, for reload messages
};

enum class LogFormat : uint8_t { kText, kJson };

struct LoggingConfig {
  std::string level = "info";  // spdlog's names: trace debug info warn error critical off
  LogFormat format = LogFormat::kText;
  friend bool operator==(const LoggingConfig&, const LoggingConfig&) = default;
};

// The cluster (issue 5; src/cluster/README.md). Every node runs with the same
// `nodes` list and key; `node_id` names this one.
struct ClusterNodeConfig {
  uint16_t id = 0;    // 1..64
  IpAddress address;  // control network (UDP): heartbeats, replication
  uint16_t port = 0;
  std::vector<SnatAddress> snat;    // its FullNAT SNAT addresses
  std::vector<SnatAddress> egress;  // its egress SNAT addresses
};
struct ClusterConfig {
  bool enabled = false;
  uint16_t node_id = 0;
  uint32_t cluster_id = 1;
  std::vector<ClusterNodeConfig> nodes;  // this node included
  std::array<uint8_t, 32> key{};         // authenticates datagrams; other keys derive from it
  SipKey ring_key;                       // derived: positions on the slot ring
  uint64_t heartbeat_interval_ns = 10'000'000;
  uint64_t dead_after_ns = 50'000'000;
  uint32_t rise = 3;
  uint32_t replicas = 1;
  uint64_t checkpoint_interval_ns = 1'000'000;
  // A miss asks the flow's holder for its state and parks the packets this
  // long at most (GatewayClusterConfig::pull_timeout_ms); 0: no pulls, the
  // packets are handed over (every later packet of the flow takes that
  // extra hop).
  uint32_t pull_timeout_ms = 20;
  // A (re)starting node takes in its copies of the peers' flows before it
  // says it is ready; it waits this long at most (AgentConfig).
  uint64_t join_timeout_ns = 3'000'000'000;
  ReplicationMode mode = ReplicationMode::kAsync;  // the VIPs' default
  std::string where;                               // "file:line:col" of the section
  const ClusterNodeConfig* self() const {
    for (const auto& n : nodes)
      if (n.id == node_id) return &n;
    return nullptr;
  }
};

// Which secrets were absent from the file and drawn at random on load.
struct GeneratedSecrets {
  bool table_key = false;
  bool lb_key = false;
  bool synproxy_key = false;
};

struct TripodConfig {
  std::string file;  // name errors and messages use
  std::vector<InterfaceConfig> interfaces;
  uint32_t workers = 0;  // 0 ("auto"): one per (interface, queue)
  LoggingConfig logging;
  std::string status_socket = "/run/tripod/status.sock";
  std::vector<VipDaemonConfig> vips;  // parallel to gateway.vips
  GeneratedSecrets generated;
  ClusterConfig cluster;
  GatewayConfig gateway;

  // Sockets the interfaces ask for: sum of their queues.
  uint32_t sockets() const;
  // Worker threads to run: `workers`, or sockets() for auto.
  uint32_t effective_workers() const;
};

// Reads and validates; throws ConfigError (also for an unreadable file).
TripodConfig load_config(const std::string& path);
// The same on text in memory; `name` stands for the file in messages.
TripodConfig load_config_string(std::string_view text, const std::string& name = "<config>");

// SIGHUP: what changes between the running configuration and the next one.
struct ReloadPlan {
  struct VipPair {
    size_t running;  // index into running.gateway.vips
    size_t next;     // index into next.gateway.vips
  };
  // Through the LB's two-phase prepare/commit: no connection is dropped.
  std::vector<size_t> vips_added;    // into next.gateway.vips
  std::vector<size_t> vips_removed;  // into running.gateway.vips (connections drain)
  std::vector<VipPair> pools_changed;
  // mss_clamp / SYN proxy options: apply to new connections.
  std::vector<VipPair> vip_options_changed;
  std::vector<VipPair> health_checks_changed;  // includes name changes
  bool firewall_changed = false;               // rules, default, tcp_be_liberal, non_vip_direction
  bool timeouts_changed = false;
  bool logging_changed = false;
  // Settings that only a restart can change, one message each naming the
  // field. Not empty: the reload is refused and the old configuration stays.
  std::vector<std::string> errors;

  bool ok() const { return errors.empty(); }
  bool empty() const;  // nothing to do (and nothing refused)
  // Human-readable lines for the log, one per change or error.
  std::vector<std::string> describe(const TripodConfig& running, const TripodConfig& next) const;
};

ReloadPlan plan_reload(const TripodConfig& running, const TripodConfig& next);

// "192.0.2.10:80/tcp" ("[2001:db8::1]:443/tcp" for IPv6).
std::string vip_label(const VipKey& k);

}  // namespace tripod
