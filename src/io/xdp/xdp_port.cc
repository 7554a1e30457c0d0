#include "io/xdp/xdp_port.h"

#include <linux/ethtool.h>
#include <linux/if_xdp.h>
#include <linux/sockios.h>
#include <net/if.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>
#include <xdp/xsk.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <stdexcept>

#include "common/compiler.h"
#include "common/eventfd.h"

namespace tripod {

namespace {

// The fill ring is refilled only when this many slots are free: one
// reserve/submit (two shared cache lines) per batch, not per packet.
constexpr uint32_t kFillBatch = kBurstSize;
constexpr size_t kHugePage = size_t{2} << 20;

uint64_t monotonic_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ULL + static_cast<uint64_t>(ts.tv_nsec);
}

bool is_power_of_two(uint32_t v) {
  return v != 0 && (v & (v - 1)) == 0;
}

// Number of RX queue ids of the interface, or -1 if the driver does not say.
// ethtool rather than sysfs: it answers for the caller's network namespace.
int count_rx_queues(const std::string& ifname) {
  const int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) return -1;
  ethtool_channels ch{};
  ch.cmd = ETHTOOL_GCHANNELS;
  ifreq ifr{};
  std::strncpy(ifr.ifr_name, ifname.c_str(), IFNAMSIZ - 1);
  ifr.ifr_data = reinterpret_cast<char*>(&ch);
  const int rc = ioctl(s, SIOCETHTOOL, &ifr);
  close(s);
  if (rc != 0) return -1;
  // Drivers report separate RX channels, combined ones, or both; the sum is
  // an upper bound on valid queue ids, so the check never rejects a good one.
  const uint32_t n = ch.rx_count + ch.combined_count;
  return n == 0 ? -1 : static_cast<int>(n);
}

}  // namespace

struct XdpPort::Rings {
  xsk_ring_prod fill{};
  xsk_ring_cons comp{};
  xsk_ring_cons rx{};
  xsk_ring_prod tx{};
  xsk_umem* umem = nullptr;
  xsk_socket* xsk = nullptr;
};

void XdpPort::fail(std::string_view what, int err) const {
  std::string msg = "AF_XDP port on interface '" + config_.interface + "' queue " +
                    std::to_string(config_.queue) + ": " + std::string(what);
  if (err != 0) msg += ": " + std::string(std::strerror(err));
  throw std::runtime_error(msg);
}

XdpPort::XdpPort(const XdpPortConfig& config) : config_(config) {
  if (config_.interface.empty() || config_.interface.size() >= IFNAMSIZ)
    fail("invalid interface name", 0);
  if (!is_power_of_two(config_.ring_size) || config_.ring_size < kBurstSize)
    fail("ring_size must be a power of two >= " + std::to_string(kBurstSize), 0);
  if (config_.num_frames < 2 * kBurstSize || config_.num_frames > (1u << 24))
    fail("num_frames must be in [" + std::to_string(2 * kBurstSize) + ", 2^24]", 0);

  ifindex_ = static_cast<int>(if_nametoindex(config_.interface.c_str()));
  if (ifindex_ == 0) fail("interface not found", errno);
  const int queues = count_rx_queues(config_.interface);
  if (queues > 0 && config_.queue >= static_cast<uint32_t>(queues))
    fail("queue out of range (the interface has " + std::to_string(queues) + " RX queues)", 0);

  try {
    umem_len_ = size_t{config_.num_frames} * kFrameSize;
    void* mem = MAP_FAILED;
    if (config_.huge_pages && umem_len_ % kHugePage == 0) {
      mem = mmap(nullptr, umem_len_, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB | MAP_POPULATE, -1, 0);
    }
    if (mem == MAP_FAILED) {
      mem = mmap(nullptr, umem_len_, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    }
    if (mem == MAP_FAILED) fail("cannot map the UMEM", errno);
    umem_area_ = static_cast<uint8_t*>(mem);

    free_ = std::make_unique<uint32_t[]>(config_.num_frames);
    // Low frame indices on top: they are handed out first, so a lightly
    // loaded port keeps touching the same few pages.
    for (uint32_t i = 0; i < config_.num_frames; ++i)
      free_[i] = config_.num_frames - 1 - i;
    free_top_ = config_.num_frames;

    switch (config_.bind_mode) {
      case XdpBindMode::kCopy:
        setup(false);
        break;
      case XdpBindMode::kZeroCopy:
        setup(true);
        break;
      case XdpBindMode::kAuto:
        try {
          setup(true);
        } catch (const std::runtime_error& zc_error) {
          try {
            setup(false);
          } catch (const std::runtime_error& copy_error) {
            throw std::runtime_error(std::string(copy_error.what()) +
                                     " (zero-copy attempt: " + zc_error.what() + ")");
          }
        }
        break;
    }
  } catch (...) {
    teardown();
    if (umem_area_ != nullptr) munmap(umem_area_, umem_len_);
    throw;
  }
}

XdpPort::~XdpPort() {
  teardown();
  if (umem_area_ != nullptr) munmap(umem_area_, umem_len_);
}

void XdpPort::setup(bool zero_copy) {
  teardown();  // a failed zero-copy attempt leaves nothing behind
  rings_ = std::make_unique<Rings>();
  Rings& r = *rings_;

  xsk_umem_config ucfg{};
  ucfg.fill_size = config_.ring_size;
  ucfg.comp_size = config_.ring_size;
  ucfg.frame_size = kFrameSize;
  // The kernel already puts XDP_PACKET_HEADROOM (256 = kHeadroom) before the
  // packet; extra UMEM headroom would only shrink the frame.
  ucfg.frame_headroom = 0;
  ucfg.flags = 0;
  int err = xsk_umem__create(&r.umem, umem_area_, umem_len_, &r.fill, &r.comp, &ucfg);
  if (err != 0) {
    r.umem = nullptr;
    fail("cannot register the UMEM", -err);
  }

  xsk_socket_config scfg{};
  scfg.rx_size = config_.ring_size;
  scfg.tx_size = config_.ring_size;
  // XdpSteering owns the XDP program and the XSKMAP: libxdp must not load
  // its default program.
  scfg.libxdp_flags = XSK_LIBXDP_FLAGS__INHIBIT_PROG_LOAD;
  scfg.xdp_flags = 0;
  scfg.bind_flags =
      static_cast<uint16_t>(XDP_USE_NEED_WAKEUP | (zero_copy ? XDP_ZEROCOPY : XDP_COPY));
  err = xsk_socket__create(&r.xsk, config_.interface.c_str(), config_.queue, r.umem, &r.rx, &r.tx,
                           &scfg);
  if (err != 0) {
    r.xsk = nullptr;
    fail(zero_copy ? "cannot bind the AF_XDP socket in zero-copy mode"
                   : "cannot bind the AF_XDP socket in copy mode",
         -err);
  }
  fd_ = xsk_socket__fd(r.xsk);

  // What the kernel actually did (kAuto reports it; a driver may refuse).
  xdp_options opts{};
  socklen_t optlen = sizeof(opts);
  zero_copy_ = getsockopt(fd_, SOL_XDP, XDP_OPTIONS, &opts, &optlen) == 0 &&
               (opts.flags & XDP_OPTIONS_ZEROCOPY) != 0;

  // Half the frames go to the fill ring up front; the rest cover frames held
  // by the worker and in flight on TX.
  const uint32_t initial = std::min(config_.ring_size, config_.num_frames / 2);
  uint32_t idx = 0;
  if (xsk_ring_prod__reserve(&r.fill, initial, &idx) != initial)
    fail("cannot populate the fill ring", EAGAIN);
  for (uint32_t i = 0; i < initial; ++i)
    *xsk_ring_prod__fill_addr(&r.fill, idx + i) = uint64_t{free_[--free_top_]} * kFrameSize;
  xsk_ring_prod__submit(&r.fill, initial);
  in_fill_or_rx_ = initial;
}

void XdpPort::teardown() {
  if (!rings_) return;
  Rings& r = *rings_;
  if (r.xsk != nullptr) {
    // Also unmaps the fill and completion rings, and the kernel drops the
    // socket from any XSKMAP when it is closed.
    xsk_socket__delete(r.xsk);
    r.xsk = nullptr;
  } else if (r.umem != nullptr && r.fill.ring != nullptr) {
    // libxdp leaves the fill/completion rings mapped after a failed socket
    // creation; the mappings would keep the UMEM registered (and its pages
    // pinned) after the fd is closed.
    xdp_mmap_offsets off{};
    socklen_t optlen = sizeof(off);
    if (getsockopt(xsk_umem__fd(r.umem), SOL_XDP, XDP_MMAP_OFFSETS, &off, &optlen) == 0 &&
        optlen == sizeof(off)) {
      munmap(static_cast<uint8_t*>(r.fill.ring) - off.fr.desc,
             off.fr.desc + size_t{config_.ring_size} * sizeof(uint64_t));
      munmap(static_cast<uint8_t*>(r.comp.ring) - off.cr.desc,
             off.cr.desc + size_t{config_.ring_size} * sizeof(uint64_t));
    }
  }
  if (r.umem != nullptr) xsk_umem__delete(r.umem);
  rings_.reset();
  fd_ = -1;
  // Every frame is ours again.
  for (uint32_t i = 0; i < config_.num_frames; ++i)
    free_[i] = config_.num_frames - 1 - i;
  free_top_ = config_.num_frames;
  in_fill_or_rx_ = 0;
  outstanding_tx_ = 0;
}

void XdpPort::refill_fill_ring() {
  Rings& r = *rings_;
  uint32_t n = xsk_prod_nb_free(&r.fill, config_.ring_size);
  if (n < kFillBatch) return;
  if (free_top_ == 0) {
    counters_.inc(XdpPortCounter::kFillStarved);
    return;
  }
  n = std::min(n, free_top_);
  uint32_t idx = 0;
  xsk_ring_prod__reserve(&r.fill, n, &idx);  // cannot fail: n slots are free
  for (uint32_t i = 0; i < n; ++i)
    *xsk_ring_prod__fill_addr(&r.fill, idx + i) = uint64_t{free_[--free_top_]} * kFrameSize;
  xsk_ring_prod__submit(&r.fill, n);
  in_fill_or_rx_ += n;
}

void XdpPort::kick_tx() {
  counters_.inc(XdpPortCounter::kTxWakeups);
  if (sendto(fd_, nullptr, 0, MSG_DONTWAIT, nullptr, 0) >= 0) return;
  // Busy/again: the kernel is still sending or hit its per-call budget; the
  // next kick continues. ENETDOWN: link down, the frames complete later.
  if (errno != EAGAIN && errno != EBUSY && errno != ENOBUFS && errno != ENETDOWN)
    counters_.inc(XdpPortCounter::kTxWakeupErrors);
}

void XdpPort::reap_completions() {
  if (outstanding_tx_ == 0) return;
  Rings& r = *rings_;
  // Copy mode sends only from sendto(), a bounded batch per call: kick again
  // while descriptors are still waiting in the TX ring.
  if (xsk_prod_nb_free(&r.tx, config_.ring_size) < config_.ring_size &&
      xsk_ring_prod__needs_wakeup(&r.tx))
    kick_tx();
  uint32_t idx = 0;
  const uint32_t n = xsk_ring_cons__peek(&r.comp, config_.ring_size, &idx);
  if (n == 0) return;
  for (uint32_t i = 0; i < n; ++i) {
    const uint64_t addr = *xsk_ring_cons__comp_addr(&r.comp, idx + i);
    free_frame(static_cast<uint32_t>(addr / kFrameSize));
  }
  xsk_ring_cons__release(&r.comp, n);
  outstanding_tx_ -= std::min(n, outstanding_tx_);
  counters_.inc(XdpPortCounter::kTxCompleted, n);
}

uint32_t XdpPort::rx_burst(Packet* pkts, uint32_t max) {
  Rings& r = *rings_;
  reap_completions();
  refill_fill_ring();

  uint32_t idx = 0;
  const uint32_t n = xsk_ring_cons__peek(&r.rx, max, &idx);
  if (n == 0) {
    // need_wakeup: a zero-copy driver stopped polling because the fill ring
    // ran dry; it resumes only when told so.
    if (xsk_ring_prod__needs_wakeup(&r.fill)) {
      counters_.inc(XdpPortCounter::kRxWakeups);
      recvfrom(fd_, nullptr, 0, MSG_DONTWAIT, nullptr, nullptr);
    }
    return 0;
  }

  const uint64_t now = monotonic_ns();
  uint32_t out = 0;
  uint64_t bytes = 0;
  for (uint32_t i = 0; i < n; ++i) {
    const xdp_desc* d = xsk_ring_cons__rx_desc(&r.rx, idx + i);
    // Aligned mode: addr is the frame base plus the packet's offset in it.
    const uint64_t frame = d->addr / kFrameSize;
    const uint64_t offset = d->addr % kFrameSize;
    if (TRIPOD_UNLIKELY(frame >= config_.num_frames || offset + d->len > kFrameSize)) {
      counters_.inc(XdpPortCounter::kRxInvalidDesc);
      if (frame < config_.num_frames) free_frame(static_cast<uint32_t>(frame));
      continue;
    }
    Packet& p = pkts[out++];
    p.data = umem_area_ + d->addr;
    p.len = d->len;
    p.frame = static_cast<uint32_t>(frame);
    p.ts_ns = now;
    bytes += d->len;
  }
  xsk_ring_cons__release(&r.rx, n);
  in_fill_or_rx_ -= n;
  counters_.inc(XdpPortCounter::kRxPackets, out);
  counters_.inc(XdpPortCounter::kRxBytes, bytes);
  return out;
}

void XdpPort::tx_burst(const Packet* pkts, uint32_t n) {
  if (n == 0) return;
  Rings& r = *rings_;
  reap_completions();

  // A packet may have grown into the headroom or been rewritten, but it must
  // stay inside its own frame: that is all the kernel checks too.
  const uintptr_t base = reinterpret_cast<uintptr_t>(umem_area_);
  auto valid = [&](const Packet& p) {
    const uintptr_t addr = reinterpret_cast<uintptr_t>(p.data) - base;  // wraps if below
    return p.frame < config_.num_frames && p.len != 0 && addr < umem_len_ &&
           addr / kFrameSize == p.frame && addr % kFrameSize + p.len <= kFrameSize;
  };
  uint32_t num_valid = 0;
  for (uint32_t i = 0; i < n; ++i)
    num_valid += valid(pkts[i]) ? 1 : 0;

  uint32_t idx = 0;
  const uint32_t room = std::min(num_valid, xsk_prod_nb_free(&r.tx, num_valid));
  if (room > 0) xsk_ring_prod__reserve(&r.tx, room, &idx);

  uint32_t used = 0;
  uint64_t bytes = 0;
  for (uint32_t i = 0; i < n; ++i) {
    const Packet& p = pkts[i];
    if (TRIPOD_UNLIKELY(!valid(p))) {
      counters_.inc(XdpPortCounter::kTxInvalid);
      if (p.frame < config_.num_frames) free_frame(p.frame);
      continue;
    }
    if (TRIPOD_UNLIKELY(used == room)) {
      counters_.inc(XdpPortCounter::kTxRingFull);
      free_frame(p.frame);
      continue;
    }
    xdp_desc* d = xsk_ring_prod__tx_desc(&r.tx, idx + used++);
    d->addr = reinterpret_cast<uintptr_t>(p.data) - base;
    d->len = p.len;
    d->options = 0;
    bytes += p.len;
  }
  if (used == 0) return;
  xsk_ring_prod__submit(&r.tx, used);
  outstanding_tx_ += used;
  counters_.inc(XdpPortCounter::kTxPackets, used);
  counters_.inc(XdpPortCounter::kTxBytes, bytes);
  // need_wakeup: copy mode always wants the kick; zero-copy only when the
  // driver has gone idle, which saves a syscall per burst under load.
  if (xsk_ring_prod__needs_wakeup(&r.tx)) kick_tx();
}

void XdpPort::release(const Packet* pkts, uint32_t n) {
  for (uint32_t i = 0; i < n; ++i) {
    if (TRIPOD_LIKELY(pkts[i].frame < config_.num_frames)) free_frame(pkts[i].frame);
  }
}

bool XdpPort::wait(int timeout_ms) {
  Rings& r = *rings_;
  reap_completions();
  refill_fill_ring();
  if (xsk_cons_nb_avail(&r.rx, 1) > 0) return true;
  // poll() also wakes a zero-copy driver that set need_wakeup on the fill
  // ring, and drives pending copy-mode TX.
  pollfd pfd[1 + kMaxWakeFds] = {{fd_, POLLIN, 0}};
  for (int k = 0; k < num_wake_fds_; ++k)
    pfd[1 + k] = {wake_fds_[k], POLLIN, 0};
  const int rc = poll(pfd, static_cast<nfds_t>(1 + num_wake_fds_), timeout_ms);
  for (int k = 0; rc > 0 && k < num_wake_fds_; ++k)
    if (pfd[1 + k].revents & POLLIN) clear_eventfd(wake_fds_[k]);
  return rc > 0 && (pfd[0].revents & POLLIN) != 0;
}

XdpPort::FrameAccount XdpPort::frame_account() const {
  FrameAccount a;
  a.free = free_top_;
  a.kernel_rx = in_fill_or_rx_;
  a.kernel_tx = outstanding_tx_;
  a.application = config_.num_frames - free_top_ - in_fill_or_rx_ - outstanding_tx_;
  return a;
}

void XdpPort::export_counters(const CounterFn& fn) const {
  for (size_t i = 0; i < counters_.size(); ++i)
    fn(kXdpPortCounterNames[i], counters_.get(i));
  fn("zero_copy", zero_copy_ ? 1 : 0);
  xdp_statistics st{};
  socklen_t optlen = sizeof(st);
  if (fd_ >= 0 && getsockopt(fd_, SOL_XDP, XDP_STATISTICS, &st, &optlen) == 0) {
    fn("kernel_rx_dropped", st.rx_dropped);
    fn("kernel_rx_invalid_descs", st.rx_invalid_descs);
    fn("kernel_tx_invalid_descs", st.tx_invalid_descs);
    fn("kernel_rx_ring_full", st.rx_ring_full);
    fn("kernel_rx_fill_ring_empty", st.rx_fill_ring_empty_descs);
    fn("kernel_tx_ring_empty", st.tx_ring_empty_descs);
  }
}

}  // namespace tripod
