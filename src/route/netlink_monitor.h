// NetlinkMonitor: follows the kernel's links, neighbours and main-table
// routes over rtnetlink (libmnl) and publishes NextHopTable snapshots for the
// data plane.
//
// Threading: everything here runs on one control thread. fd() is a
// non-blocking socket to add to that thread's poll set; on POLLIN call
// process_events(). (poll_once() does both, for simple loops and tests.)
// Workers never call into the monitor: they read snapshots through
// snapshots().register_reader() (see snapshot_rcu.h).
//
// Start-up: subscribe first, then dump links, neighbours and routes, so that
// no change between the dump and the subscription is lost; events queued
// during the dump are applied after it, which converges (route_model.h).
// Lost events (ENOBUFS on the event socket): everything is re-dumped.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <utility>
#include <vector>

#include "common/clock.h"
#include "common/counters.h"
#include "route/next_hop_table.h"
#include "route/route_model.h"
#include "route/snapshot_rcu.h"

struct mnl_socket;

namespace tripod::route {

#define TRIPOD_NL_MONITOR_COUNTERS(X)            \
  X(kMessages, "messages")                       \
  X(kAddressEvents, "address_events")            \
  X(kDecodeErrors, "decode_errors")              \
  X(kOverruns, "overrun_resyncs")                \
  X(kDumps, "dumps")                             \
  X(kDumpRetries, "dump_retries")                \
  X(kDumpFailures, "dump_failures")              \
  X(kRouteRedumps, "route_redumps")              \
  X(kSnapshots, "snapshots_published")           \
  X(kResolveSent, "resolve_sent")                \
  X(kResolveRateLimited, "resolve_rate_limited") \
  X(kResolveErrors, "resolve_errors")            \
  X(kSocketErrors, "socket_errors")

TRIPOD_DECLARE_REASONS(MonitorCounter, TRIPOD_NL_MONITOR_COUNTERS)
using MonitorCounters = CounterSet<MonitorCounter, static_cast<size_t>(MonitorCounter::kCount)>;

struct MonitorOptions {
  size_t max_readers = 64;  // data plane workers that may register
  // Event socket receive buffer. Large, because a link flap or a routing
  // daemon can emit thousands of messages at once; an overrun costs a full
  // re-dump. Tests shrink it to provoke ENOBUFS.
  int event_rcvbuf = 8 << 20;
  uint64_t resolve_interval_ns = 1'000'000'000;  // request_resolution: per (ifindex, address)
  int dump_timeout_ms = 5000;                    // a dump reply slower than this fails
  size_t max_datagrams_per_call = 256;           // bounds the work of one process_events()
  const Clock* clock = nullptr;                  // nullptr: CLOCK_MONOTONIC
};

class NetlinkMonitor {
 public:
  // Opens the sockets in the caller's network namespace, dumps and publishes
  // the first snapshot. Throws std::system_error if netlink is unusable.
  explicit NetlinkMonitor(const MonitorOptions& opt = {});
  ~NetlinkMonitor();
  NetlinkMonitor(const NetlinkMonitor&) = delete;
  NetlinkMonitor& operator=(const NetlinkMonitor&) = delete;

  int fd() const;
  // Drains pending notifications (up to max_datagrams_per_call), re-dumps
  // where needed and publishes a snapshot if anything changed. Returns the
  // number of messages handled.
  size_t process_events();
  // poll(fd, timeout_ms) then process_events(). Returns messages handled.
  size_t poll_once(int timeout_ms);
  // Re-dumps everything and publishes (what an overrun triggers).
  void resync();

  enum class Resolve : uint8_t { kSent, kRateLimited, kError };
  // Asks the kernel to resolve (ifindex, addr) now: RTM_NEWNEIGH with
  // NTF_USE creates the entry if absent and starts ARP/ND as if a packet had
  // been sent; the answer arrives as a neighbour event. At most one request
  // per address per resolve_interval_ns.
  Resolve request_resolution(uint32_t ifindex, const Addr& addr);

  SnapshotDomain<NextHopTable>& snapshots() { return domain_; }
  // The current snapshot, for the control thread.
  const NextHopTable& current() const { return *domain_.current(); }
  const MonitorCounters& counters() const { return counters_; }
  int last_resolve_errno() const { return last_resolve_errno_; }

 private:
  bool dump(uint16_t type, uint8_t family, std::vector<DecodedMsg>* out);
  bool dump_routes(Family f);
  bool dump_all();
  void publish();

  MonitorOptions opt_;
  MonotonicClock default_clock_;
  const Clock* clock_;
  mnl_socket* ev_ = nullptr;   // subscribed to the multicast groups, non-blocking
  mnl_socket* req_ = nullptr;  // dumps and requests, blocking with a timeout
  uint32_t seq_ = 0;
  uint64_t generation_ = 0;
  bool pending_full_ = false;
  bool pending_v4_ = false;
  bool pending_v6_ = false;
  int last_resolve_errno_ = 0;
  std::vector<uint8_t> buf_;
  RouteModel model_;
  SnapshotDomain<NextHopTable> domain_;
  MonitorCounters counters_;
  std::map<std::pair<uint32_t, Addr>, uint64_t> last_resolve_;
};

}  // namespace tripod::route
