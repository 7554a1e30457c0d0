// The tripod daemon: the control thread that owns everything else.
//
// Start-up (Daemon::Daemon): routes and neighbours from the kernel
// (NetlinkMonitor), per interface the XDP program (XdpSteering) and per
// queue an AF_XDP port with its worker (parse -> gateway -> l2), health
// checkers for the backends, the status socket. Then run() polls, on this
// thread only: signals (SIGHUP reload, SIGTERM/SIGINT stop), netlink events,
// health events, status requests.
//
// Every change to a worker's gateway is a Worker::call() (runs between two
// bursts on the worker thread): pool updates from health checks and
// reloads go through the LB's two-phase prepare/commit, so connections keep
// their backend.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "cluster/agent/agent.h"
#include "control/config.h"
#include "control/health/health_checker.h"
#include "daemon/worker.h"
#include "io/xdp/xdp_steering.h"
#include "route/kernel_slow_path.h"
#include "route/netlink_monitor.h"

namespace tripod {

class Daemon {
 public:
  // Builds everything; throws std::runtime_error (or ConfigError) naming
  // what failed. `config_path` is re-read on SIGHUP.
  Daemon(TripodConfig cfg, std::string config_path);
  ~Daemon();
  // What a valid configuration may still ask that this daemon cannot do
  // yet (several interfaces, egress SNAT); throws std::runtime_error.
  static constexpr uint32_t kMaxWorkers = 32;
  // Packets each worker's inbound rings hold in all (about 1.8 KB each):
  // ring capacity kHandoffPackets / (workers - 1), at least kHandoffMinRing.
  static constexpr uint32_t kHandoffPackets = 1024;
  static constexpr uint32_t kHandoffMinRing = 128;
  static void check_supported(const TripodConfig& cfg);
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;

  // Runs until SIGTERM/SIGINT (or stop()); returns the exit code.
  int run();
  void stop();

  // Re-reads the configuration file and applies what can change live;
  // returns false (and keeps the running configuration) if it cannot.
  bool reload();
  // The status document (JSON text) `tripod status` prints.
  std::string status_json();

 private:
  struct VipState {
    std::vector<HealthTargetId> targets;  // by backend index; 0: unchecked
    std::vector<bool> up;                 // by backend index
  };

  HealthCheckSpec health_spec(size_t vip, size_t backend) const;
  // (Re)creates the VIP's checkers; with the previous backends and state,
  // backends that stay keep theirs.
  void setup_health(size_t vip, const std::vector<Backend>* old_backends, VipState* old);
  void teardown_health(size_t vip);
  PoolSpec effective_pool(size_t vip) const;
  void push_pool(size_t vip);
  void on_health_events();
  void steer_addresses(bool add, const GatewayVipConfig& v);
  void for_each_worker(const std::function<void(GatewayStage&)>& fn, const char* what);
  void serve_status();
  // Stops steering removed VIPs' addresses once their connections are gone.
  void drain_removed();
  std::vector<std::string> steered_addresses() const;
  // Egress: the XDP programs' map of the node's own addresses follows the
  // kernel's (at start, and on every address event or netlink overrun);
  // false if an update failed (logged; the next call tries again).
  bool sync_local_addresses();
  void start_cluster();
  void on_view(const cluster::ViewChange& change);

  TripodConfig cfg_;
  std::string path_;
  uint64_t started_ns_ = 0;
  std::unique_ptr<route::NetlinkMonitor> monitor_;
  std::vector<std::unique_ptr<route::KernelSlowPath>> slow_paths_;
  std::vector<std::unique_ptr<XdpSteering>> steering_;
  std::set<std::pair<Family, std::array<uint8_t, 16>>> local_addresses_;  // in the XDP maps
  uint64_t address_events_seen_ = 0;  // the monitor's address events, overruns, decode errors
  bool local_sync_pending_ = false;
  // The rings between the workers (several queues), before them: they
  // hold its pointer.
  std::unique_ptr<HandoffMesh> handoff_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::unique_ptr<HealthChecker> health_;
  // Cluster: one link per worker (flow records and views), and the agent.
  std::vector<std::unique_ptr<cluster::FlowLink>> links_;
  std::unique_ptr<cluster::Agent> agent_;
  bool logged_ready_ = false;   // agent thread (on_view)
  std::vector<VipState> vips_;  // parallel to cfg_.gateway.vips
  struct Draining {
    VipKey key;
    VipId id;
  };
  std::vector<Draining> draining_;  // removed VIPs whose connections still drain
  int signal_fd_ = -1;
  int status_fd_ = -1;
  bool stopping_ = false;
  uint64_t reloads_ok_ = 0, reloads_failed_ = 0;
};

}  // namespace tripod
