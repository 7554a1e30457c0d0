#include "io/xdp/xdp_steering.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <linux/if_link.h>
#include <net/if.h>
#include <sched.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xdp/libxdp.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <vector>

#include "io/xdp/tripod_xdp_shared.h"
#include "io/xdp/xdp_object.h"
#include "io/xdp/xdp_port.h"

namespace tripod {

namespace {

const char* mode_name(XdpAttachMode m) {
  switch (m) {
    case XdpAttachMode::kNative:
      return "native";
    case XdpAttachMode::kSkb:
      return "skb";
    case XdpAttachMode::kAuto:
      break;
  }
  return "auto";
}

xdp_attach_mode to_libxdp(XdpAttachMode m) {
  return m == XdpAttachMode::kSkb ? XDP_MODE_SKB : XDP_MODE_NATIVE;
}

// IPv4 goes in as an IPv4-mapped IPv6 address: one map, one key size.
void make_key(Family family, const uint8_t* addr, uint8_t key[TRIPOD_XDP_KEY_LEN]) {
  std::memset(key, 0, TRIPOD_XDP_KEY_LEN);
  if (family == Family::kIpv4) {
    key[10] = 0xff;
    key[11] = 0xff;
    std::memcpy(key + 12, addr, 4);
  } else if (family == Family::kIpv6) {
    std::memcpy(key, addr, 16);
  } else {
    throw std::invalid_argument("XDP steering: address without a family");
  }
}

Family parse_address(std::string_view text, uint8_t out[16]) {
  const std::string s(text);
  if (inet_pton(AF_INET, s.c_str(), out) == 1) return Family::kIpv4;
  if (inet_pton(AF_INET6, s.c_str(), out) == 1) return Family::kIpv6;
  throw std::invalid_argument("XDP steering: not an IP address: '" + s + "'");
}

std::string format_addr(Family family, const uint8_t* addr) {
  char buf[INET6_ADDRSTRLEN] = {};
  inet_ntop(family == Family::kIpv4 ? AF_INET : AF_INET6, addr, buf, sizeof(buf));
  return buf;
}

bool same_netns(int a, int b) {
  struct stat sa {
  }, sb{};
  return fstat(a, &sa) == 0 && fstat(b, &sb) == 0 && sa.st_ino == sb.st_ino &&
         sa.st_dev == sb.st_dev;
}

int open_current_netns() {
  return open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
}

}  // namespace

void XdpSteering::fail(std::string_view what, int err) const {
  std::string msg = "XDP steering on interface '" + config_.interface + "': " + std::string(what);
  if (err != 0) msg += ": " + std::string(std::strerror(err));
  throw std::runtime_error(msg);
}

XdpSteering::XdpSteering(const XdpSteeringConfig& config) : config_(config) {
  if (config_.interface.empty() || config_.interface.size() >= IFNAMSIZ)
    fail("invalid interface name", 0);
  if (config_.max_queues == 0 || config_.max_addresses == 0)
    fail("max_queues and max_addresses must be positive", 0);
  ifindex_ = static_cast<int>(if_nametoindex(config_.interface.c_str()));
  if (ifindex_ == 0) fail("interface not found", errno);
  netns_fd_ = open_current_netns();

  try {
    std::string errors;
    const XdpAttachMode modes[2] = {
        config_.mode == XdpAttachMode::kSkb ? XdpAttachMode::kSkb : XdpAttachMode::kNative,
        XdpAttachMode::kSkb};
    const int attempts = config_.mode == XdpAttachMode::kAuto ? 2 : 1;
    for (int i = 0; i < attempts && !attached_; ++i) {
      // A fresh object per attempt: a failed attach may have loaded the
      // program already, and a loaded object cannot be loaded again.
      bpf_object_open_opts opts{};
      opts.sz = sizeof(opts);
      opts.object_name = TRIPOD_XDP_PROG_NAME;
      obj_ = bpf_object__open_mem(kTripodXdpObject, kTripodXdpObjectSize, &opts);
      if (obj_ == nullptr) fail("cannot open the embedded XDP object", errno);
      bpf_map* xsks = bpf_object__find_map_by_name(obj_, TRIPOD_XDP_XSKS_MAP);
      bpf_map* steer = bpf_object__find_map_by_name(obj_, TRIPOD_XDP_STEER_MAP);
      if (xsks == nullptr || steer == nullptr) fail("embedded XDP object lacks its maps", ENOENT);
      if (bpf_map__set_max_entries(xsks, config_.max_queues) != 0 ||
          bpf_map__set_max_entries(steer, config_.max_addresses) != 0)
        fail("cannot size the XDP maps", errno);
      prog_ = xdp_program__from_bpf_obj(obj_, "xdp");
      if (const long e = libxdp_get_error(prog_); e != 0) {
        prog_ = nullptr;
        fail("cannot create the XDP program from the embedded object", static_cast<int>(-e));
      }
      const int err = xdp_program__attach(prog_, ifindex_, to_libxdp(modes[i]), 0);
      if (err == 0) {
        attached_ = true;
        attached_mode_ = modes[i];
        break;
      }
      char buf[128];
      libxdp_strerror(err, buf, sizeof(buf));
      if (!errors.empty()) errors += "; ";
      errors += std::string(mode_name(modes[i])) + " mode: " + buf;
      xdp_program__close(prog_);
      prog_ = nullptr;
      bpf_object__close(obj_);
      obj_ = nullptr;
    }
    if (!attached_) fail("cannot attach the XDP program (" + errors + ")", 0);

    // Our own program on the interface means libxdp attached it alone (no
    // bpffs, or no freplace support); anything else is its dispatcher.
    // Settled first, since detach() depends on it. Asked of the kernel:
    // libxdp 1.3's multiprog query leaks a program fd per call when alone.
    uint32_t on_if = 0;
    if (bpf_xdp_query_id(ifindex_, xdp_flags(), &on_if) == 0)
      dispatcher_ = on_if != 0 && on_if != xdp_program__id(prog_);

    auto map_fd = [&](const char* name) {
      const bpf_map* m = bpf_object__find_map_by_name(obj_, name);
      const int fd = m != nullptr ? bpf_map__fd(m) : -1;
      if (fd < 0) fail(std::string("XDP map ") + name + " not loaded", ENOENT);
      return fd;
    };
    xsks_fd_ = map_fd(TRIPOD_XDP_XSKS_MAP);
    steer_fd_ = map_fd(TRIPOD_XDP_STEER_MAP);
    stats_fd_ = map_fd(TRIPOD_XDP_STATS_MAP);
    cfg_fd_ = map_fd(TRIPOD_XDP_CONFIG_MAP);
    egress_fd_ = map_fd(TRIPOD_XDP_EGRESS_MAP);
    local_fd_ = map_fd(TRIPOD_XDP_LOCAL_MAP);
    set_pass_without_socket(config_.pass_without_socket);

  } catch (...) {
    detach();
    throw;
  }
}

XdpSteering::~XdpSteering() {
  detach();
}

void XdpSteering::detach() {
  if (attached_) {
    // libxdp finds the interface by index in the calling thread's network
    // namespace; detach in the namespace we attached in, never in another
    // one where the same index may name a different interface.
    const int here = open_current_netns();
    const bool switch_ns = netns_fd_ >= 0 && here >= 0 && !same_netns(here, netns_fd_);
    if (!switch_ns || setns(netns_fd_, CLONE_NEWNET) == 0) {
      // Errors are ignored: the interface (or its namespace) may be gone,
      // which detached the program already.
      if (dispatcher_) {
        xdp_program__detach(prog_, ifindex_, to_libxdp(attached_mode_), 0);
      } else {
        // Alone on the interface: detach only if it is still ours
        // (XDP_FLAGS_REPLACE compares the attached program atomically).
        bpf_xdp_attach_opts opts{};
        opts.sz = sizeof(opts);
        opts.old_prog_fd = xdp_program__fd(prog_);
        bpf_xdp_detach(ifindex_, xdp_flags() | XDP_FLAGS_REPLACE, &opts);
      }
      if (switch_ns) setns(here, CLONE_NEWNET);
    }
    if (here >= 0) close(here);
    attached_ = false;
  }
  if (prog_ != nullptr) xdp_program__close(prog_);
  prog_ = nullptr;
  if (obj_ != nullptr) bpf_object__close(obj_);  // closes the map fds too
  obj_ = nullptr;
  xsks_fd_ = steer_fd_ = stats_fd_ = cfg_fd_ = egress_fd_ = local_fd_ = -1;
  if (netns_fd_ >= 0) close(netns_fd_);
  netns_fd_ = -1;
}

uint32_t XdpSteering::xdp_flags() const {
  return attached_mode_ == XdpAttachMode::kSkb ? XDP_FLAGS_SKB_MODE : XDP_FLAGS_DRV_MODE;
}

void XdpSteering::register_socket(uint32_t queue, int xsk_fd) {
  if (queue >= config_.max_queues)
    fail("queue " + std::to_string(queue) + " is beyond max_queues " +
             std::to_string(config_.max_queues),
         0);
  const uint32_t value = static_cast<uint32_t>(xsk_fd);
  const int err = bpf_map_update_elem(xsks_fd_, &queue, &value, BPF_ANY);
  if (err != 0) fail("cannot register the AF_XDP socket of queue " + std::to_string(queue), -err);
}

void XdpSteering::register_port(const XdpPort& port) {
  if (port.ifindex() != ifindex_)
    fail("port is on interface '" + port.interface() + "', not on this one", 0);
  register_socket(port.queue(), port.fd());
}

void XdpSteering::unregister_socket(uint32_t queue) {
  if (queue >= config_.max_queues) return;
  bpf_map_delete_elem(xsks_fd_, &queue);  // ENOENT: was not registered
}

bool XdpSteering::add_address(Family family, const uint8_t* addr) {
  uint8_t key[TRIPOD_XDP_KEY_LEN];
  make_key(family, addr, key);
  const uint8_t one = 1;
  const int err = bpf_map_update_elem(steer_fd_, key, &one, BPF_NOEXIST);
  if (err == -EEXIST) return false;
  if (err != 0) fail("cannot add steered address " + format_addr(family, addr), -err);
  return true;
}

bool XdpSteering::remove_key(int fd, Family family, const uint8_t* addr, const char* what) {
  uint8_t key[TRIPOD_XDP_KEY_LEN];
  make_key(family, addr, key);
  const int err = bpf_map_delete_elem(fd, key);
  if (err == -ENOENT) return false;
  if (err != 0) fail(std::string("cannot remove ") + what + " " + format_addr(family, addr), -err);
  return true;
}

bool XdpSteering::remove_address(Family family, const uint8_t* addr) {
  return remove_key(steer_fd_, family, addr, "steered address");
}

bool XdpSteering::add_address(std::string_view text) {
  uint8_t addr[16];
  const Family f = parse_address(text, addr);
  return add_address(f, addr);
}

bool XdpSteering::remove_address(std::string_view text) {
  uint8_t addr[16];
  const Family f = parse_address(text, addr);
  return remove_address(f, addr);
}

void XdpSteering::add_egress_prefix(Family family, const uint8_t* addr, int len) {
  const int max = family == Family::kIpv4 ? 32 : 128;
  if (len < 0 || len > max)
    throw std::invalid_argument("XDP steering: egress prefix length " + std::to_string(len));
  tripod_xdp_prefix k{};
  make_key(family, addr, k.addr);
  k.prefixlen = static_cast<unsigned>(family == Family::kIpv4 ? 96 + len : len);
  const uint8_t one = 1;
  const int err = bpf_map_update_elem(egress_fd_, &k, &one, BPF_ANY);
  if (err != 0)
    fail("cannot add egress prefix " + format_addr(family, addr) + "/" + std::to_string(len), -err);
}

void XdpSteering::add_local_address(Family family, const uint8_t* addr) {
  uint8_t key[TRIPOD_XDP_KEY_LEN];
  make_key(family, addr, key);
  const uint8_t one = 1;
  const int err = bpf_map_update_elem(local_fd_, key, &one, BPF_ANY);
  if (err != 0) fail("cannot add local address " + format_addr(family, addr), -err);
}

bool XdpSteering::remove_local_address(Family family, const uint8_t* addr) {
  return remove_key(local_fd_, family, addr, "local address");
}

void XdpSteering::set_pass_without_socket(bool pass) {
  const uint32_t slot = TRIPOD_XDP_CFG_NO_SOCKET_PASS;
  const uint32_t value = pass ? 1 : 0;
  const int err = bpf_map_update_elem(cfg_fd_, &slot, &value, BPF_ANY);
  if (err != 0) fail("cannot set the no-socket policy", -err);
  config_.pass_without_socket = pass;
}

XdpSteeringStats XdpSteering::stats() const {
  XdpSteeringStats s;
  const int ncpu = libbpf_num_possible_cpus();
  if (ncpu <= 0 || stats_fd_ < 0) return s;
  std::vector<uint64_t> per_cpu(static_cast<size_t>(ncpu));
  uint64_t sums[TRIPOD_XDP_STAT_COUNT] = {};
  for (uint32_t slot = 0; slot < TRIPOD_XDP_STAT_COUNT; ++slot) {
    if (bpf_map_lookup_elem(stats_fd_, &slot, per_cpu.data()) != 0) continue;
    for (const uint64_t v : per_cpu)
      sums[slot] += v;
  }
  s.redirected = sums[TRIPOD_XDP_STAT_REDIRECTED];
  s.passed = sums[TRIPOD_XDP_STAT_PASSED];
  s.no_socket = sums[TRIPOD_XDP_STAT_NO_SOCKET];
  s.egress = sums[TRIPOD_XDP_STAT_EGRESS];
  return s;
}

void XdpSteering::export_counters(const CounterFn& fn) const {
  const XdpSteeringStats s = stats();
  fn("redirected", s.redirected);
  fn("passed", s.passed);
  fn("no_socket", s.no_socket);
  fn("egress", s.egress);
  fn("native_mode", attached_mode_ == XdpAttachMode::kNative ? 1 : 0);
  fn("dispatcher", dispatcher_ ? 1 : 0);
}

}  // namespace tripod
