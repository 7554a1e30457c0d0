#include "daemon/daemon.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "daemon/logging.h"
#include "io/xdp/xdp_port.h"
#include "nf/firewall/acl.h"

namespace tripod {
namespace {

// Frames a worker may hold for output commit (pipeline/output_commit.h).
constexpr uint32_t kHoldFrames = 2048;
// Twice what the gateway parks at most (GatewayStage::kMaxParked): packets
// of answered pulls wait to run again.
constexpr uint32_t kParkFrames = 1024;

bool output_commit(const TripodConfig& cfg) {
  return cfg.cluster.enabled &&
         std::any_of(cfg.gateway.vips.begin(), cfg.gateway.vips.end(),
                     [](const GatewayVipConfig& v) { return v.output_commit; });
}

uint64_t now_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000 + static_cast<uint64_t>(ts.tv_nsec);
}

// Wall clock minus monotonic, now: SYN cookies run on the wall clock
// (GatewayConfig::cookie_clock_offset_ns).
uint64_t wall_minus_mono() {
  timespec w{};
  clock_gettime(CLOCK_REALTIME, &w);
  const uint64_t wall =
      static_cast<uint64_t>(w.tv_sec) * 1'000'000'000 + static_cast<uint64_t>(w.tv_nsec);
  const uint64_t mono = now_ns();
  return wall > mono ? wall - mono : 0;
}

std::string errno_text(const std::string& what) {
  return what + ": " + std::strerror(errno);
}

XdpAttachMode attach_mode(XdpMode m) {
  switch (m) {
    case XdpMode::kNative:
      return XdpAttachMode::kNative;
    case XdpMode::kSkb:
      return XdpAttachMode::kSkb;
    default:
      return XdpAttachMode::kAuto;
  }
}

XdpBindMode bind_mode(BindMode m) {
  switch (m) {
    case BindMode::kCopy:
      return XdpBindMode::kCopy;
    case BindMode::kZeroCopy:
      return XdpBindMode::kZeroCopy;
    default:
      return XdpBindMode::kAuto;
  }
}

const char* mode_name(VipMode m) {
  return m == VipMode::kDsr ? "dsr" : "fullnat";
}

std::string addr_text(Family f, const uint8_t* b) {
  return IpAddress::from_bytes(f, b).to_string();
}

// Blocks the signals the control loop reads from its signalfd (every thread
// started afterwards inherits the mask, so none of them is interrupted).
int open_signal_fd() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGHUP);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  if (pthread_sigmask(SIG_BLOCK, &set, nullptr) != 0)
    throw std::runtime_error("cannot block signals");
  const int fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
  if (fd < 0) throw std::runtime_error(errno_text("signalfd"));
  return fd;
}

int open_status_socket(const std::string& path) {
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  if (path.size() >= sizeof sa.sun_path)
    throw std::runtime_error("status socket path too long: " + path);
  std::error_code ec;
  std::filesystem::create_directories(std::filesystem::path(path).parent_path(), ec);
  ::unlink(path.c_str());  // a stale socket of a previous run
  std::memcpy(sa.sun_path, path.c_str(), path.size());
  const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) throw std::runtime_error(errno_text("status socket"));
  if (bind(fd, reinterpret_cast<const sockaddr*>(&sa), sizeof sa) != 0 || listen(fd, 16) != 0) {
    const std::string e = errno_text("status socket " + path);
    ::close(fd);
    throw std::runtime_error(e);
  }
  ::chmod(path.c_str(), 0660);  // root and the group: counters are not for everyone
  return fd;
}

}  // namespace

void Daemon::check_supported(const TripodConfig& cfg) {
  if (cfg.interfaces.empty()) throw std::runtime_error(cfg.file + ": no interfaces to serve");
  if (cfg.interfaces.size() != 1)
    throw std::runtime_error(cfg.file +
                             ": one interface per node for now (a worker sends on its own "
                             "queue's interface; serving several is not built yet)");
  if (cfg.effective_workers() != cfg.sockets())
    throw std::runtime_error(cfg.file + ": workers must be auto (one per queue) for now, got " +
                             std::to_string(cfg.workers) + " for " + std::to_string(cfg.sockets()) +
                             " queue(s)");
  if (cfg.sockets() > kMaxWorkers)
    throw std::runtime_error(cfg.file + ": at most " + std::to_string(kMaxWorkers) +
                             " queues per node");
}

Daemon::Daemon(TripodConfig cfg, std::string config_path)
    : cfg_(std::move(cfg)), path_(std::move(config_path)), started_ns_(now_ns()) {
  check_supported(cfg_);
  signal_fd_ = open_signal_fd();
  monitor_ = std::make_unique<route::NetlinkMonitor>();

  cfg_.gateway.cookie_clock_offset_ns = wall_minus_mono();
  // Several queues: the workers split the flows by slot and hand each other
  // the packets of flows that are not theirs (pipeline/handoff.h).
  const uint32_t n_workers = cfg_.sockets();
  GatewayConfig worker_cfg = cfg_.gateway;  // (max_connections is per worker)
  worker_cfg.shards = n_workers;
  if (n_workers > 1)
    handoff_ = std::make_unique<HandoffMesh>(
        n_workers, std::max(kHandoffMinRing, kHandoffPackets / (n_workers - 1)));
  for (const auto& ifc : cfg_.interfaces) {
    XdpSteeringConfig sc;
    sc.interface = ifc.name;
    sc.mode = attach_mode(ifc.xdp_mode);
    auto steering = std::make_unique<XdpSteering>(sc);
    for (uint32_t q : ifc.queues) {
      XdpPortConfig pc;
      pc.interface = ifc.name;
      pc.queue = q;
      pc.bind_mode = bind_mode(ifc.bind_mode);
      // Output commit keeps up to kHoldFrames frames out of the rings.
      if (output_commit(cfg_)) pc.num_frames += kHoldFrames;
      // Pulling keeps up to kParkFrames parked.
      if (cfg_.cluster.enabled && cfg_.cluster.pull_timeout_ms != 0) pc.num_frames += kParkFrames;
      auto port = std::make_unique<XdpPort>(pc);
      steering->register_port(*port);
      const auto ifindex = static_cast<uint32_t>(port->ifindex());
      slow_paths_.push_back(std::make_unique<route::KernelSlowPath>());
      if (!slow_paths_.back()->ok())
        spdlog::warn("kernel slow path: {} (packets without a neighbour will be dropped)",
                     std::strerror(slow_paths_.back()->open_errno()));
      auto l2 = std::make_unique<L2Stage>(monitor_->snapshots().register_reader(), ifindex,
                                          slow_paths_.back().get());
      auto gw = std::make_unique<GatewayStage>(worker_cfg, now_ns());
      const std::string name = ifc.name + "/" + std::to_string(q);
      const auto index = static_cast<uint32_t>(workers_.size());
      workers_.push_back(std::make_unique<Worker>(name, std::move(port), std::move(gw),
                                                  std::move(l2), handoff_.get(), index));
      spdlog::info(
          "worker {}: AF_XDP {} mode", name,
          static_cast<XdpPort&>(workers_.back()->port()).zero_copy() ? "zero-copy" : "copy");
    }
    steering_.push_back(std::move(steering));
  }
  for (const auto& a : steered_addresses())
    for (auto& s : steering_)
      s->add_address(a);
  // Egress: internal hosts' packets to the outside (config.cc checked the
  // prefixes). Never those to the node's own addresses, wherever they are.
  if (!sync_local_addresses())
    throw std::runtime_error("egress: cannot put the node's own addresses in the XDP map");
  for (const std::string& src : cfg_.gateway.egress.sources) {
    Family fam = Family::kNone;
    uint8_t addr[16] = {};
    int len = 0;
    if (const char* err = fw_internal::parse_prefix(src, &fam, addr, &len))
      throw std::runtime_error(cfg_.file + ": egress source " + src + ": " + err);
    if (fam == Family::kNone)  // "any": refused by config.cc
      throw std::runtime_error(cfg_.file + ": egress source " + src + ": not a prefix");
    for (auto& s : steering_)
      s->add_egress_prefix(fam, addr, len);
  }

  health_ = std::make_unique<HealthChecker>();
  vips_.resize(cfg_.gateway.vips.size());
  for (size_t v = 0; v < vips_.size(); ++v) {
    setup_health(v, nullptr, nullptr);
    push_pool(v);
  }
  status_fd_ = open_status_socket(cfg_.status_socket);
  if (cfg_.cluster.enabled) start_cluster();
  for (auto& w : workers_)
    w->start();
  if (agent_) {
    agent_->start();
    if (!agent_->realtime())
      spdlog::warn(
          "cluster: no real-time priority for the heartbeat thread (CAP_SYS_NICE): under "
          "load, peers may declare this node dead");
  }
  spdlog::info("tripod running: {} VIP(s), {} worker(s), status on {}", cfg_.gateway.vips.size(),
               workers_.size(), cfg_.status_socket);
}

Daemon::~Daemon() {
  if (agent_) agent_->stop();  // it posts views to the workers
  for (auto& w : workers_)
    w->stop();
  if (health_) health_->stop();
  workers_.clear();   // sockets closed before the program detaches
  steering_.clear();  // detaches the XDP programs
  if (status_fd_ >= 0) {
    ::close(status_fd_);
    ::unlink(cfg_.status_socket.c_str());
  }
  if (signal_fd_ >= 0) ::close(signal_fd_);
}

bool Daemon::sync_local_addresses() {
  if (cfg_.gateway.egress.sources.empty()) return true;
  // One key per XDP map entry: an IPv4-mapped IPv6 address is its IPv4 one.
  // Link-local and multicast ones never count as egress: not in the map.
  using Key = std::pair<Family, std::array<uint8_t, 16>>;
  std::set<Key> now;
  ifaddrs* ifs = nullptr;
  if (getifaddrs(&ifs) != 0) {
    spdlog::error("egress: getifaddrs: {}", std::strerror(errno));
    return false;
  }
  for (const ifaddrs* i = ifs; i != nullptr; i = i->ifa_next) {
    if (i->ifa_addr == nullptr) continue;
    Key k{Family::kNone, {}};
    if (i->ifa_addr->sa_family == AF_INET) {
      k.first = Family::kIpv4;
      std::memcpy(k.second.data(), &reinterpret_cast<const sockaddr_in*>(i->ifa_addr)->sin_addr, 4);
    } else if (i->ifa_addr->sa_family == AF_INET6) {
      const auto* a6 = &reinterpret_cast<const sockaddr_in6*>(i->ifa_addr)->sin6_addr;
      if (IN6_IS_ADDR_V4MAPPED(a6)) {
        k.first = Family::kIpv4;
        std::memcpy(k.second.data(), a6->s6_addr + 12, 4);
      } else {
        k.first = Family::kIpv6;
        std::memcpy(k.second.data(), a6->s6_addr, 16);
      }
    } else {
      continue;
    }
    const uint8_t* b = k.second.data();
    const bool skip = k.first == Family::kIpv4
                          ? (b[0] == 169 && b[1] == 254) || (b[0] & 0xf0) == 224
                          : (b[0] == 0xfe && (b[1] & 0xc0) == 0x80) || b[0] == 0xff;
    if (!skip) now.insert(k);
  }
  freeifaddrs(ifs);
  // Removals first (they make room in the map); a key whose update failed
  // stays as it was in local_addresses_, and the next sync tries again.
  bool ok = true;
  auto each = [&](const Key& k, bool add) {
    try {
      for (auto& s : steering_) {
        if (add) {
          s->add_local_address(k.first, k.second.data());
        } else {
          s->remove_local_address(k.first, k.second.data());
        }
      }
      return true;
    } catch (const std::exception& e) {
      spdlog::error("egress: {} {}: {}", add ? "adding" : "removing",
                    addr_text(k.first, k.second.data()), e.what());
      ok = false;
      return false;
    }
  };
  const bool first = local_addresses_.empty();  // at start: no log line per address
  for (auto it = local_addresses_.begin(); it != local_addresses_.end();) {
    if (now.count(*it) != 0 || !each(*it, false)) {
      ++it;
      continue;
    }
    spdlog::info("egress: {} is no longer the node's", addr_text(it->first, it->second.data()));
    it = local_addresses_.erase(it);
  }
  for (const Key& k : now) {
    if (local_addresses_.count(k) != 0 || !each(k, true)) continue;
    local_addresses_.insert(k);
    if (!first) spdlog::info("egress: {} is the node's now", addr_text(k.first, k.second.data()));
  }
  return ok;
}

std::vector<std::string> Daemon::steered_addresses() const {
  std::vector<std::string> out;
  auto add = [&](const std::string& a) {
    if (std::find(out.begin(), out.end(), a) == out.end()) out.push_back(a);
  };
  for (const auto& v : cfg_.gateway.vips)
    add(v.key.addr.to_string());
  for (const auto& a : cfg_.gateway.snat.addresses)
    add(addr_text(a.family, a.addr));
  for (const auto& a : cfg_.gateway.egress.snat.addresses)
    add(addr_text(a.family, a.addr));
  // Every node's SNAT and egress addresses: replies of flows taken over
  // from a node, and packets a peer hands over, arrive here too.
  for (const auto& a : cfg_.gateway.cluster.snat_addresses)
    add(addr_text(a.family, a.addr));
  for (const auto& a : cfg_.gateway.cluster.egress_addresses)
    add(addr_text(a.family, a.addr));
  return out;
}

namespace {

sockaddr_storage sockaddr_of(const IpAddress& a, uint16_t port, socklen_t* len) {
  sockaddr_storage ss{};
  if (a.family == Family::kIpv6) {
    auto* s6 = reinterpret_cast<sockaddr_in6*>(&ss);
    s6->sin6_family = AF_INET6;
    s6->sin6_port = htons(port);
    std::memcpy(&s6->sin6_addr, a.bytes, 16);
    *len = sizeof(sockaddr_in6);
  } else {
    auto* s4 = reinterpret_cast<sockaddr_in*>(&ss);
    s4->sin_family = AF_INET;
    s4->sin_port = htons(port);
    std::memcpy(&s4->sin_addr, a.bytes, 4);
    *len = sizeof(sockaddr_in);
  }
  return ss;
}

// The interface's MAC: where peers send the packets they hand over.
void interface_mac(const std::string& name, uint8_t out[6]) {
  ifreq ifr{};
  std::strncpy(ifr.ifr_name, name.c_str(), IFNAMSIZ - 1);
  const int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  const bool ok = fd >= 0 && ::ioctl(fd, SIOCGIFHWADDR, &ifr) == 0;
  if (fd >= 0) ::close(fd);
  if (!ok) throw std::runtime_error("cluster: cannot read the MAC of " + name);
  std::memcpy(out, ifr.ifr_hwaddr.sa_data, 6);
}

}  // namespace

void Daemon::start_cluster() {
  const ClusterConfig& c = cfg_.cluster;
  cluster::AgentConfig ac;
  ac.self = c.node_id;
  ac.cluster_id = c.cluster_id;
  ac.key = c.key;
  for (const ClusterNodeConfig& n : c.nodes) {
    if (n.id == c.node_id) {
      ac.bind = sockaddr_of(n.address, n.port, &ac.bind_len);
      continue;
    }
    cluster::AgentPeer p;
    p.id = n.id;
    p.addr = sockaddr_of(n.address, n.port, &p.addr_len);
    ac.peers.push_back(p);
  }
  ac.heartbeat_interval_ns = c.heartbeat_interval_ns;
  ac.dead_after_ns = c.dead_after_ns;
  ac.rise = c.rise;
  ac.replicas = c.replicas;
  ac.join_timeout_ns = c.join_timeout_ns;
  // Packets wait for acks under output commit: a peer acks at once.
  const bool commit = output_commit(cfg_);
  // Otherwise the agent reads its socket in 1 ms rounds (Agent::loop), so
  // an ack delay of one checkpoint (at most 1 ms) keeps an ack's round trip
  // within about 3 ms, under the 5 ms retransmission timeout.
  ac.ack_delay_ns = commit ? 0 : std::min<uint64_t>(c.checkpoint_interval_ns, 1'000'000);
  ac.slot_key = cfg_.gateway.cluster.slot_key;
  ac.worker_layout = GatewayStage::slot_layout(cfg_.gateway);
  ac.ring_key = c.ring_key;
  interface_mac(cfg_.interfaces.front().name, ac.data_mac);
  std::vector<cluster::FlowLink*> links;
  for (auto& w : workers_) {
    links_.push_back(
        std::make_unique<cluster::FlowLink>(1u << 16, c.checkpoint_interval_ns, commit));
    cluster::FlowLink* l = links_.back().get();
    w->set_poll([l](GatewayStage& g, uint64_t now) { l->worker_poll(g, now); });
    // A holder that never acks is declared dead after dead_after, which
    // releases the wait; the bound is a backstop.
    if (commit) w->enable_hold(kHoldFrames, 4 * c.dead_after_ns, l->worker_wake_fd());
    if (c.pull_timeout_ms != 0) w->enable_park(kParkFrames);
    links.push_back(l);
  }
  agent_ = std::make_unique<cluster::Agent>(ac, links,
                                            [this](const cluster::ViewChange& v) { on_view(v); });
  spdlog::info(
      "cluster: node {} of {}, replicas {}, heartbeat {} ms, dead after {} ms, output commit {}, "
      "pull timeout {} ms",
      c.node_id, c.nodes.size(), c.replicas, c.heartbeat_interval_ns / 1'000'000,
      c.dead_after_ns / 1'000'000, commit ? "on (sync VIPs)" : "off", c.pull_timeout_ms);
}

// On the agent thread, for the log: the workers take the view themselves
// (FlowLink::post()), so the agent never waits for them.
void Daemon::on_view(const cluster::ViewChange& change) {
  auto list = [](uint64_t set) {
    std::string out;
    for (uint16_t n = 1; n <= kMaxClusterNodes; ++n)
      if (set >> (n - 1) & 1) {
        if (!out.empty()) out += ',';
        out += std::to_string(n);  // (not "," + ...: GCC 12 -O3 -Wrestrict false positive)
      }
    return out;
  };
  for (uint16_t d : change.down)
    spdlog::warn(
        "cluster: node {} is down; its flows' copies here take over on their next packet once "
        "that has lasted dead_after",
        d);
  for (uint16_t r : change.restarted)
    spdlog::warn("cluster: node {} restarted; its old flows' copies here take over", r);
  if (change.resync)
    spdlog::info("cluster: running nodes {{{}}}, joining {{{}}}", list(change.view->live),
                 list(change.view->joining));
  const uint16_t self = cfg_.cluster.node_id;
  if (!logged_ready_ && (change.view->live >> (self - 1) & 1) &&
      !(change.view->joining >> (self - 1) & 1)) {
    logged_ready_ = true;
    spdlog::info("cluster: ready: the peers' flows that this node holds are here; announce it");
  }
}

void Daemon::steer_addresses(bool add, const GatewayVipConfig& v) {
  const std::string a = v.key.addr.to_string();
  if (!add) {
    // Another VIP (other port), a draining one or a SNAT address may share it.
    for (const auto& s : steered_addresses())
      if (s == a) return;
    for (const auto& d : draining_)
      if (d.key.addr == v.key.addr) return;
  }
  for (auto& s : steering_) {
    try {
      add ? s->add_address(a) : s->remove_address(a);
    } catch (const std::exception& e) {
      spdlog::error("steering {} {}: {}", add ? "add" : "remove", a, e.what());
    }
  }
}

void Daemon::drain_removed() {
  if (draining_.empty() || workers_.empty()) return;
  std::vector<uint64_t> conns(draining_.size(), 0);
  for (auto& w : workers_) {
    const bool ok = w->call([&](GatewayStage& g) {
      for (size_t i = 0; i < draining_.size(); ++i)
        conns[i] += g.lb().pools().vip_connections(draining_[i].id);
    });
    if (!ok) return;  // not known: ask again next round
  }
  for (size_t i = draining_.size(); i-- > 0;) {
    if (conns[i] != 0) continue;
    GatewayVipConfig v;
    v.key = draining_[i].key;
    draining_.erase(draining_.begin() + static_cast<long>(i));
    spdlog::info("removed VIP {} drained: no longer steered", vip_label(v.key));
    steer_addresses(false, v);
  }
}

void Daemon::for_each_worker(const std::function<void(GatewayStage&)>& fn, const char* what) {
  for (auto& w : workers_) {
    try {
      if (!w->call(fn)) spdlog::error("worker {}: {}: timed out", w->name(), what);
    } catch (const std::exception& e) {
      spdlog::error("worker {}: {}: {}", w->name(), what, e.what());
    }
  }
}

HealthCheckSpec Daemon::health_spec(size_t v, size_t b) const {
  const GatewayVipConfig& vip = cfg_.gateway.vips[v];
  const HealthCheckConfig& hc = cfg_.vips[v].health_check;
  const Backend& be = vip.pool.backends[b];
  HealthCheckSpec s;
  s.type = hc.type == HealthCheckType::kHttp ? CheckType::kHttp : CheckType::kTcp;
  s.addr = be.addr;
  s.port = hc.port != 0 ? hc.port : (be.port != 0 ? be.port : vip.key.port);
  s.name = cfg_.vips[v].name + "/" + be.addr.to_string() + ":" + std::to_string(s.port);
  s.path = hc.http_path;
  s.host = hc.http_host;
  s.expect = StatusRange{hc.http_expect_status, hc.http_expect_status};
  s.interval_ms = hc.interval_ms;
  s.timeout_ms = hc.timeout_ms;
  s.rise = hc.rise;
  s.fall = hc.fall;
  return s;
}

void Daemon::setup_health(size_t v, const std::vector<Backend>* old_backends, VipState* old) {
  const GatewayVipConfig& vip = cfg_.gateway.vips[v];
  const bool checked = cfg_.vips[v].health_check.type != HealthCheckType::kNone;
  VipState st;
  st.targets.assign(vip.pool.backends.size(), 0);
  st.up.assign(vip.pool.backends.size(), !checked);
  for (size_t b = 0; checked && b < vip.pool.backends.size(); ++b) {
    const HealthCheckSpec spec = health_spec(v, b);
    // A backend that stays keeps its checker and its state: a reload must
    // not take it out of the pool until it passes `rise` checks again.
    size_t prev = SIZE_MAX;
    for (size_t k = 0; old != nullptr && old_backends != nullptr && k < old_backends->size(); ++k)
      if ((*old_backends)[k].same_endpoint(vip.pool.backends[b]) && k < old->targets.size() &&
          old->targets[k] != 0)
        prev = k;
    if (prev != SIZE_MAX) {
      st.targets[b] = old->targets[prev];
      st.up[b] = old->up[prev];
      old->targets[prev] = 0;  // taken over
      health_->update(st.targets[b], spec);
    } else {
      try {
        st.targets[b] = health_->add(spec);
      } catch (const std::exception& e) {  // a spec the checker refuses: unchecked, up
        spdlog::error("health check {}: {} (backend left unchecked)", spec.name, e.what());
        st.up[b] = true;
      }
    }
  }
  if (old != nullptr) {  // checkers of backends that left
    for (HealthTargetId id : old->targets)
      if (id != 0) health_->remove(id);
  }
  vips_[v] = std::move(st);
}

void Daemon::teardown_health(size_t v) {
  for (HealthTargetId id : vips_[v].targets)
    if (id != 0) health_->remove(id);
  vips_[v].targets.clear();
  vips_[v].up.clear();
}

PoolSpec Daemon::effective_pool(size_t v) const {
  PoolSpec p = cfg_.gateway.vips[v].pool;
  for (size_t b = 0; b < p.backends.size(); ++b)
    if (!vips_[v].up[b]) p.backends[b].weight = 0;  // drained: keeps its connections
  return p;
}

void Daemon::push_pool(size_t v) {
  const VipKey key = cfg_.gateway.vips[v].key;
  const PoolSpec pool = effective_pool(v);
  // The Maglev table is built here, once, not on the workers' packet threads.
  std::shared_ptr<const BuiltPool> built;
  try {
    built = build_pool(pool);
  } catch (const std::exception& e) {
    spdlog::error("pool of {}: {}", vip_label(key), e.what());
    return;
  }
  for_each_worker([key, pool, built](GatewayStage& g) { g.update_pool(key, pool, built); },
                  "pool update");
}

void Daemon::on_health_events() {
  std::vector<bool> changed(vips_.size(), false);
  for (const HealthEvent& e : health_->drain_events()) {
    for (size_t v = 0; v < vips_.size(); ++v) {
      for (size_t b = 0; b < vips_[v].targets.size(); ++b) {
        if (vips_[v].targets[b] != e.id) continue;
        const bool up = e.state == HealthState::kUp;
        if (vips_[v].up[b] != up) changed[v] = true;
        vips_[v].up[b] = up;
        spdlog::info("health: {} is {} ({})", e.name, up ? "up" : "down", e.reason);
      }
    }
  }
  for (size_t v = 0; v < vips_.size(); ++v)
    if (changed[v]) push_pool(v);
}

bool Daemon::reload() {
  TripodConfig next;
  try {
    next = load_config(path_);
  } catch (const std::exception& e) {
    spdlog::error("reload refused, the running configuration stays: {}", e.what());
    ++reloads_failed_;
    return false;
  }
  const ReloadPlan plan = plan_reload(cfg_, next);
  for (const auto& line : plan.describe(cfg_, next))
    (plan.ok() ? spdlog::info("reload: {}", line) : spdlog::error("reload: {}", line));
  if (!plan.ok()) {
    spdlog::error("reload refused, the running configuration stays");
    ++reloads_failed_;
    return false;
  }
  // Removed VIPs first (their addresses may be reused by added ones).
  std::vector<size_t> removed = plan.vips_removed;
  std::sort(removed.rbegin(), removed.rend());
  for (size_t r : removed) {
    const GatewayVipConfig old = cfg_.gateway.vips[r];
    teardown_health(r);
    VipId id = kNoVip;
    for_each_worker([k = old.key, &id](GatewayStage& g) { id = g.remove_vip(k); }, "remove VIP");
    // Its address stays steered while connections drain (drain_removed()).
    if (id != kNoVip) draining_.push_back({old.key, id});
    cfg_.gateway.vips.erase(cfg_.gateway.vips.begin() + static_cast<long>(r));
    cfg_.vips.erase(cfg_.vips.begin() + static_cast<long>(r));
    vips_.erase(vips_.begin() + static_cast<long>(r));
  }
  // From here the running VIPs are matched to the next ones by key.
  auto running_index = [&](const VipKey& k) {
    for (size_t i = 0; i < cfg_.gateway.vips.size(); ++i)
      if (cfg_.gateway.vips[i].key == k) return i;
    return SIZE_MAX;
  };
  if (plan.firewall_changed || plan.timeouts_changed)
    for_each_worker([fw = next.gateway.firewall,
                     dir = next.gateway.non_vip_dir](GatewayStage& g) { g.set_firewall(fw, dir); },
                    "firewall");
  for (size_t n = 0; n < next.gateway.vips.size(); ++n) {
    const GatewayVipConfig& nv = next.gateway.vips[n];
    const size_t r = running_index(nv.key);
    if (r == SIZE_MAX) {  // added: no backend is up until its checks pass
      cfg_.gateway.vips.push_back(nv);
      cfg_.vips.push_back(next.vips[n]);
      vips_.emplace_back();
      const size_t v = cfg_.gateway.vips.size() - 1;
      setup_health(v, nullptr, nullptr);
      GatewayVipConfig start = nv;
      start.pool = effective_pool(v);
      for_each_worker([start](GatewayStage& g) { g.add_vip(start); }, "add VIP");
      steer_addresses(true, nv);
      continue;
    }
    const bool pool_changed =
        !(cfg_.gateway.vips[r].pool.backends.size() == nv.pool.backends.size() &&
          std::equal(nv.pool.backends.begin(), nv.pool.backends.end(),
                     cfg_.gateway.vips[r].pool.backends.begin(),
                     [](const Backend& a, const Backend& b) {
                       return std::memcmp(&a, &b, sizeof a) == 0;
                     }));
    const bool checks_changed = !(cfg_.vips[r].health_check == next.vips[n].health_check) ||
                                cfg_.vips[r].name != next.vips[n].name;
    const std::vector<Backend> old_backends = cfg_.gateway.vips[r].pool.backends;
    cfg_.gateway.vips[r] = nv;
    cfg_.vips[r] = next.vips[n];
    for_each_worker([nv](GatewayStage& g) { g.update_vip_options(nv); }, "VIP options");
    if (pool_changed || checks_changed) {
      VipState old = std::move(vips_[r]);
      setup_health(r, &old_backends, &old);
      push_pool(r);
    }
  }
  cfg_.gateway.firewall = next.gateway.firewall;
  cfg_.gateway.non_vip_dir = next.gateway.non_vip_dir;
  cfg_.logging = next.logging;
  setup_logging(cfg_.logging);
  ++reloads_ok_;
  spdlog::info("reload done: {} VIP(s)", cfg_.gateway.vips.size());
  return true;
}

std::string Daemon::status_json() {
  using nlohmann::json;
  json doc;
  doc["config"] = path_;
  doc["uptime_s"] = static_cast<double>(now_ns() - started_ns_) / 1e9;
  doc["reloads"] = {{"ok", reloads_ok_}, {"failed", reloads_failed_}};
  std::map<HealthTargetId, HealthTargetStatus> health;
  for (auto& s : health_->statuses())
    health.emplace(s.id, std::move(s));

  // Per-VIP connection counts: the sum of the workers' LBs.
  std::vector<uint64_t> conns(cfg_.gateway.vips.size(), 0);
  for (auto& w : workers_) {
    w->call([&](GatewayStage& g) {
      for (size_t v = 0; v < conns.size(); ++v) {
        const VipId id = g.vip_id(cfg_.gateway.vips[v].key);
        if (id != kNoVip) conns[v] += g.lb().pools().vip_connections(id);
      }
    });
  }
  json vips = json::array();
  for (size_t v = 0; v < cfg_.gateway.vips.size(); ++v) {
    const GatewayVipConfig& vc = cfg_.gateway.vips[v];
    json backends = json::array();
    for (size_t b = 0; b < vc.pool.backends.size(); ++b) {
      const Backend& be = vc.pool.backends[b];
      json jb = {{"address", be.addr.to_string()},
                 {"port", be.port},
                 {"weight", be.weight},
                 {"in_pool", vips_[v].up[b] && be.weight > 0}};
      const HealthTargetId id = vips_[v].targets.empty() ? 0 : vips_[v].targets[b];
      if (auto it = health.find(id); id != 0 && it != health.end()) {
        jb["health"] = std::string(to_string(it->second.health.tracker.state()));
        jb["last_error"] = it->second.health.last_error;
        jb["checks"] = it->second.health.checks;
      } else {
        jb["health"] = "unchecked";
      }
      backends.push_back(jb);
    }
    vips.push_back({{"name", cfg_.vips[v].name},
                    {"address", vc.key.addr.to_string()},
                    {"port", vc.key.port},
                    {"protocol", vc.key.proto == kProtoTcp ? "tcp" : "udp"},
                    {"mode", mode_name(vc.mode)},
                    {"synproxy", vc.synproxy},
                    {"connections", conns[v]},
                    {"backends", backends}});
  }
  doc["vips"] = vips;
  json workers = json::array();
  for (auto& w : workers_) {
    json counters = json::object();
    w->export_counters([&](std::string_view n, uint64_t val) { counters[std::string(n)] = val; });
    workers.push_back({{"name", w->name()}, {"counters", counters}});
  }
  doc["workers"] = workers;
  json hc = json::object();
  health_->export_counters([&](std::string_view n, uint64_t val) { hc[std::string(n)] = val; });
  doc["health_checks"] = hc;
  if (agent_) {
    json cl = json::object();
    json live = json::array();
    for (uint16_t n = 1; n <= kMaxClusterNodes; ++n)
      if (agent_->live_set() >> (n - 1) & 1) live.push_back(n);
    cl["node_id"] = cfg_.cluster.node_id;
    cl["epoch"] = agent_->epoch();
    cl["ready"] = agent_->ready();
    cl["live"] = live;
    json cc = json::object();
    agent_->export_counters([&](std::string_view n, uint64_t val) { cc[std::string(n)] = val; });
    cl["counters"] = cc;
    doc["cluster"] = cl;
  }
  json xdp = json::object();
  for (const auto& s : steering_) {
    json c = json::object();
    s->export_counters([&](std::string_view n, uint64_t v) { c[std::string(n)] = v; });
    xdp[s->interface()] = c;
  }
  doc["xdp"] = xdp;
  json nl = json::object();
  for (size_t i = 0; i < monitor_->counters().size(); ++i)
    nl[std::string(route::kMonitorCounterNames[i])] = monitor_->counters().get(i);
  doc["netlink"] = nl;
  // Names come from the configuration: never let bad UTF-8 throw here.
  return doc.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

void Daemon::serve_status() {
  for (;;) {
    // Non-blocking (accept4 does not inherit it): a client that does not
    // read costs at most the poll timeouts below, never the control thread.
    const int c = accept4(status_fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (c < 0) {
      if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        spdlog::warn("status socket: accept: {}", std::strerror(errno));
        usleep(10'000);  // e.g. EMFILE: the listener stays readable; do not spin
      }
      return;
    }
    const std::string doc = status_json();
    size_t off = 0;
    while (off < doc.size()) {
      pollfd p{c, POLLOUT, 0};
      if (poll(&p, 1, 1000) <= 0) break;  // a stuck client does not stall us for long
      const ssize_t n = ::send(c, doc.data() + off, doc.size() - off, MSG_NOSIGNAL);
      if (n <= 0) break;
      off += static_cast<size_t>(n);
    }
    ::close(c);
  }
}

void Daemon::stop() {
  stopping_ = true;
}

int Daemon::run() {
  while (!stopping_) {
    pollfd fds[4] = {{signal_fd_, POLLIN, 0},
                     {monitor_->fd(), POLLIN, 0},
                     {health_->event_fd(), POLLIN, 0},
                     {status_fd_, POLLIN, 0}};
    const int n = poll(fds, 4, 1000);
    if (n < 0 && errno != EINTR) {
      spdlog::error("poll: {}", std::strerror(errno));
      return 1;
    }
    // Nothing on this thread may end the daemon but a signal: every handler
    // is guarded, and a failure is logged.
    auto guarded = [](const char* what, const std::function<void()>& fn) {
      try {
        fn();
      } catch (const std::exception& e) {
        spdlog::error("{}: {}", what, e.what());
      }
    };
    if (fds[0].revents & POLLIN) {
      signalfd_siginfo si{};
      while (read(signal_fd_, &si, sizeof si) == static_cast<ssize_t>(sizeof si)) {
        if (si.ssi_signo == SIGHUP) {
          spdlog::info("SIGHUP: reloading {}", path_);
          guarded("reload", [&] { reload(); });
        } else {
          spdlog::info("signal {}: shutting down", si.ssi_signo);
          stopping_ = true;
        }
      }
    }
    if (fds[1].revents & POLLIN) {
      guarded("netlink", [&] { monitor_->process_events(); });
      // (A message that did not decode may have been an address one.)
      const auto& c = monitor_->counters();
      const uint64_t seen = c.get(route::MonitorCounter::kAddressEvents) +
                            c.get(route::MonitorCounter::kOverruns) +
                            c.get(route::MonitorCounter::kDecodeErrors);
      if (seen != address_events_seen_) {
        address_events_seen_ = seen;
        local_sync_pending_ = true;
      }
    }
    // Until a sync succeeds, again every round (at least once a second).
    if (local_sync_pending_)
      guarded("local addresses", [&] { local_sync_pending_ = !sync_local_addresses(); });
    if (fds[2].revents & POLLIN) guarded("health events", [&] { on_health_events(); });
    if (fds[3].revents & POLLIN) guarded("status", [&] { serve_status(); });
    guarded("drain", [&] { drain_removed(); });
    monitor_->snapshots().reclaim();
  }
  for (auto& w : workers_)
    w->stop();
  spdlog::info("stopped");
  return 0;
}

}  // namespace tripod
