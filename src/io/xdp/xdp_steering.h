// Attaches tripod's XDP program (tripod_xdp.bpf.c, embedded in the library)
// to one interface and keeps its maps: the AF_XDP socket of each RX queue,
// the set of steered destination addresses (VIPs, SNAT addresses) and the
// egress source prefixes. Packets to a steered address, or from an egress
// prefix to a unicast address outside them, go to the queue's socket; all
// others to the kernel.
//
// Loaded through libxdp, so with a bpffs at /sys/fs/bpf the program runs
// behind libxdp's dispatcher and coexists with other XDP programs (without
// one, libxdp attaches it alone). Detached on destruction.
//
// Control-plane object: not for the packet path, not thread-safe. The maps it
// updates are read by the kernel concurrently, which is safe.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "packet/packet_meta.h"

struct xdp_program;
struct bpf_object;

namespace tripod {

class XdpPort;

enum class XdpAttachMode : uint8_t {
  kAuto,    // native (driver) mode, falling back to skb (generic) mode
  kNative,  // driver mode only
  kSkb,     // generic mode only (any interface, slower)
};

struct XdpSteeringConfig {
  std::string interface;
  XdpAttachMode mode = XdpAttachMode::kAuto;
  // Steered packet on an RX queue without a socket: false drops it (fail
  // closed, so VIP traffic never bypasses the firewall), true passes it to
  // the kernel. Can be changed later with set_pass_without_socket().
  bool pass_without_socket = false;
  uint32_t max_queues = 256;      // XSKMAP size: RX queue ids 0 .. max_queues-1
  uint32_t max_addresses = 4096;  // steered addresses (both families)
};

struct XdpSteeringStats {
  uint64_t redirected = 0;  // to an AF_XDP socket
  uint64_t passed = 0;      // not steered: to the kernel
  uint64_t no_socket = 0;   // steered, but no socket on the RX queue
  uint64_t egress = 0;      // steered as egress (internal source, outside destination)
};

class XdpSteering {
 public:
  using CounterFn = std::function<void(std::string_view name, uint64_t value)>;

  // Loads and attaches the program. Throws std::runtime_error naming the
  // interface and the errno text.
  explicit XdpSteering(const XdpSteeringConfig& config);
  ~XdpSteering();
  XdpSteering(const XdpSteering&) = delete;
  XdpSteering& operator=(const XdpSteering&) = delete;

  // Puts an AF_XDP socket in the queue's slot (replacing any previous one).
  // The kernel removes it by itself when the socket is closed.
  void register_socket(uint32_t queue, int xsk_fd);
  void register_port(const XdpPort& port);
  void unregister_socket(uint32_t queue);

  // `addr`: 4 (IPv4) or 16 (IPv6) network-order bytes. add: false if already
  // steered; remove: false if it was not. Throw std::runtime_error on map
  // errors (e.g. the map is full).
  bool add_address(Family family, const uint8_t* addr);
  bool remove_address(Family family, const uint8_t* addr);
  // Text forms ("192.0.2.1", "2001:db8::1"); throw std::invalid_argument on
  // an unparsable address.
  bool add_address(std::string_view text);
  bool remove_address(std::string_view text);

  // Egress SNAT: packets from these internal prefixes to a unicast
  // destination outside all of them are steered too. `addr`: the prefix's
  // 4 or 16 network-order bytes; `len` its length in bits. Throws
  // std::runtime_error on map errors, std::invalid_argument on a bad length.
  void add_egress_prefix(Family family, const uint8_t* addr, int len);
  // The node's own address: packets to it are never egress (the kernel's),
  // whether or not it lies inside the egress prefixes.
  void add_local_address(Family family, const uint8_t* addr);
  // The address is no longer the node's (false if it was not in the map).
  bool remove_local_address(Family family, const uint8_t* addr);

  void set_pass_without_socket(bool pass);

  // Sums of the program's per-CPU counters.
  XdpSteeringStats stats() const;
  void export_counters(const CounterFn& fn) const;

  const std::string& interface() const { return config_.interface; }
  int ifindex() const { return ifindex_; }
  // kNative or kSkb: the mode the program ended up attached in.
  XdpAttachMode attached_mode() const { return attached_mode_; }
  // True if libxdp attached through its multi-program dispatcher.
  bool uses_dispatcher() const { return dispatcher_; }

 private:
  [[noreturn]] void fail(std::string_view what, int err) const;
  // Deletes an address's key from a map (false if absent); `what` names it in errors.
  bool remove_key(int fd, Family family, const uint8_t* addr, const char* what);
  void detach();
  uint32_t xdp_flags() const;  // XDP_FLAGS_*_MODE of attached_mode_

  XdpSteeringConfig config_;
  int ifindex_ = 0;
  bpf_object* obj_ = nullptr;
  xdp_program* prog_ = nullptr;
  bool attached_ = false;
  XdpAttachMode attached_mode_ = XdpAttachMode::kAuto;
  bool dispatcher_ = false;
  int netns_fd_ = -1;  // network namespace the program was attached in
  int xsks_fd_ = -1;
  int steer_fd_ = -1;
  int stats_fd_ = -1;
  int cfg_fd_ = -1;
  int egress_fd_ = -1;
  int local_fd_ = -1;
};

}  // namespace tripod
