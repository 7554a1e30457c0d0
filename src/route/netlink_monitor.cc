#include "route/netlink_monitor.h"

#include <libmnl/libmnl.h>
#include <linux/neighbour.h>
#include <linux/rtnetlink.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <cerrno>
#include <cstring>
#include <system_error>

namespace tripod::route {
namespace {

constexpr size_t kBufSize = 1 << 16;  // > the 32 KiB a dump datagram may take
constexpr int kDumpAttempts = 4;      // NLM_F_DUMP_INTR: the table changed mid-dump

[[noreturn]] void fail(const char* what) {
  throw std::system_error(errno, std::generic_category(), what);
}

uint8_t af_of(Family f) {
  return f == Family::kIpv6 ? AF_INET6 : AF_INET;
}

// Appends a netlink header and a zeroed family header to `buf`.
template <typename Hdr>
nlmsghdr* put_request(uint8_t* buf, uint16_t type, uint16_t flags, uint32_t seq, Hdr** hdr) {
  nlmsghdr* nlh = mnl_nlmsg_put_header(buf);
  nlh->nlmsg_type = type;
  nlh->nlmsg_flags = flags;
  nlh->nlmsg_seq = seq;
  *hdr = static_cast<Hdr*>(mnl_nlmsg_put_extra_header(nlh, sizeof(Hdr)));
  return nlh;
}

}  // namespace

NetlinkMonitor::NetlinkMonitor(const MonitorOptions& opt)
    : opt_(opt),
      clock_(opt.clock != nullptr ? opt.clock : &default_clock_),
      buf_(kBufSize),
      domain_(opt.max_readers, NextHopTable::empty()) {
  ev_ = mnl_socket_open2(NETLINK_ROUTE, SOCK_NONBLOCK | SOCK_CLOEXEC);
  req_ = mnl_socket_open2(NETLINK_ROUTE, SOCK_CLOEXEC);
  if (ev_ == nullptr || req_ == nullptr) {
    const int e = errno;
    if (ev_ != nullptr) mnl_socket_close(ev_);
    if (req_ != nullptr) mnl_socket_close(req_);
    errno = e;
    fail("netlink socket");
  }
  try {
    int rcvbuf = opt.event_rcvbuf;
    // SO_RCVBUFFORCE passes net.core.rmem_max (needs CAP_NET_ADMIN, which a
    // data plane has anyway); plain SO_RCVBUF otherwise.
    if (setsockopt(mnl_socket_get_fd(ev_), SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof rcvbuf) !=
        0) {
      setsockopt(mnl_socket_get_fd(ev_), SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    }
    if (mnl_socket_bind(ev_, 0, MNL_SOCKET_AUTOPID) < 0) fail("netlink bind (events)");
    for (unsigned group : {RTNLGRP_LINK, RTNLGRP_NEIGH, RTNLGRP_IPV4_ROUTE, RTNLGRP_IPV6_ROUTE,
                           RTNLGRP_IPV4_IFADDR, RTNLGRP_IPV6_IFADDR}) {
      if (mnl_socket_setsockopt(ev_, NETLINK_ADD_MEMBERSHIP, &group, sizeof group) < 0) {
        fail("netlink add membership");
      }
    }
    timeval tv{};
    tv.tv_sec = opt.dump_timeout_ms / 1000;
    tv.tv_usec = (opt.dump_timeout_ms % 1000) * 1000;
    if (setsockopt(mnl_socket_get_fd(req_), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) != 0) {
      fail("netlink SO_RCVTIMEO");
    }
    if (mnl_socket_bind(req_, 0, MNL_SOCKET_AUTOPID) < 0) fail("netlink bind (requests)");
    if (!dump_all()) fail("netlink initial dump");
  } catch (...) {
    mnl_socket_close(ev_);
    mnl_socket_close(req_);
    throw;
  }
  publish();
}

NetlinkMonitor::~NetlinkMonitor() {
  mnl_socket_close(ev_);
  mnl_socket_close(req_);
}

int NetlinkMonitor::fd() const {
  return mnl_socket_get_fd(ev_);
}

bool NetlinkMonitor::dump(uint16_t type, uint8_t family, std::vector<DecodedMsg>* out) {
  for (int attempt = 0; attempt < kDumpAttempts; ++attempt) {
    if (attempt > 0) counters_.inc(MonitorCounter::kDumpRetries);
    counters_.inc(MonitorCounter::kDumps);
    out->clear();
    alignas(nlmsghdr) uint8_t req[256] = {};
    const uint32_t seq = ++seq_;
    const uint16_t flags = NLM_F_REQUEST | NLM_F_DUMP;
    nlmsghdr* nlh;
    if (type == RTM_GETLINK) {
      ifinfomsg* h;
      nlh = put_request(req, type, flags, seq, &h);
      h->ifi_family = family;
    } else if (type == RTM_GETNEIGH) {
      ndmsg* h;
      nlh = put_request(req, type, flags, seq, &h);
      h->ndm_family = family;
    } else {
      rtmsg* h;
      nlh = put_request(req, type, flags, seq, &h);
      h->rtm_family = family;
      h->rtm_table = RT_TABLE_MAIN;  // a hint only: filtering is ours
    }
    if (mnl_socket_sendto(req_, nlh, nlh->nlmsg_len) < 0) {
      counters_.inc(MonitorCounter::kSocketErrors);
      return false;
    }
    bool done = false, failed = false, interrupted = false;
    while (!done && !failed) {
      const ssize_t n = mnl_socket_recvfrom(req_, buf_.data(), buf_.size());
      if (n < 0) {
        if (errno == EINTR) continue;
        counters_.inc(MonitorCounter::kSocketErrors);  // timeout (EAGAIN) or worse
        return false;
      }
      const bool framed = for_each_message(buf_.data(), static_cast<size_t>(n),
                                           [&](const DecodedMsg& m, DecodeError e) {
                                             if (m.seq != seq) {
                                               // A late reply to an earlier request (resolution
                                               // error).
                                               if (m.kind == MsgKind::kError && m.error != 0) {
                                                 counters_.inc(MonitorCounter::kResolveErrors);
                                               }
                                               return;
                                             }
                                             if (m.nl_flags & NLM_F_DUMP_INTR) interrupted = true;
                                             if (e != DecodeError::kOk) {
                                               counters_.inc(MonitorCounter::kDecodeErrors);
                                               return;
                                             }
                                             if (m.kind == MsgKind::kDone) {
                                               done = true;
                                             } else if (m.kind == MsgKind::kError) {
                                               if (m.error != 0) failed = true;
                                             } else if (m.kind != MsgKind::kIgnored) {
                                               out->push_back(m);
                                             }
                                           });
      if (!framed) counters_.inc(MonitorCounter::kDecodeErrors);
    }
    if (failed) return false;
    if (!interrupted) return true;
  }
  return false;
}

bool NetlinkMonitor::dump_routes(Family f) {
  std::vector<DecodedMsg> msgs;
  if (!dump(RTM_GETROUTE, af_of(f), &msgs)) return false;
  // Replace only once the dump is complete: a failed one leaves the old view.
  model_.clear_routes(f);
  for (const DecodedMsg& m : msgs)
    model_.apply(m, true);
  return true;
}

bool NetlinkMonitor::dump_all() {
  std::vector<DecodedMsg> links, neigh4, neigh6;
  // Neighbours are dumped per family: AF_UNSPEC would add bridge FDB entries.
  if (!dump(RTM_GETLINK, AF_UNSPEC, &links) || !dump(RTM_GETNEIGH, AF_INET, &neigh4) ||
      !dump(RTM_GETNEIGH, AF_INET6, &neigh6)) {
    return false;
  }
  model_.clear_links();
  for (const DecodedMsg& m : links)
    model_.apply(m, true);
  model_.clear_neighbours(Family::kIpv4);
  model_.clear_neighbours(Family::kIpv6);
  for (const DecodedMsg& m : neigh4)
    model_.apply(m, true);
  for (const DecodedMsg& m : neigh6)
    model_.apply(m, true);
  return dump_routes(Family::kIpv4) && dump_routes(Family::kIpv6);
}

void NetlinkMonitor::publish() {
  domain_.publish(NextHopTable::build(model_.to_input(), ++generation_));
  counters_.inc(MonitorCounter::kSnapshots);
}

void NetlinkMonitor::resync() {
  if (dump_all()) {
    pending_full_ = pending_v4_ = pending_v6_ = false;
  } else {
    counters_.inc(MonitorCounter::kDumpFailures);
    pending_full_ = true;  // retried on the next process_events()
  }
  publish();
}

size_t NetlinkMonitor::process_events() {
  size_t handled = 0;
  ApplyResult acc;
  for (size_t i = 0; i < opt_.max_datagrams_per_call; ++i) {
    const ssize_t n = recv(fd(), buf_.data(), buf_.size(), MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      if (errno == ENOBUFS) {
        // The kernel dropped notifications: what is still queued is
        // consistent but incomplete. Keep draining, then re-dump it all.
        counters_.inc(MonitorCounter::kOverruns);
        pending_full_ = true;
        continue;
      }
      counters_.inc(MonitorCounter::kSocketErrors);
      break;
    }
    const bool framed = for_each_message(buf_.data(), static_cast<size_t>(n),
                                         [&](const DecodedMsg& m, DecodeError e) {
                                           ++handled;
                                           if (e != DecodeError::kOk) {
                                             counters_.inc(MonitorCounter::kDecodeErrors);
                                             return;
                                           }
                                           if (m.kind == MsgKind::kAddr)
                                             counters_.inc(MonitorCounter::kAddressEvents);
                                           acc.merge(model_.apply(m, false));
                                         });
    if (!framed) counters_.inc(MonitorCounter::kDecodeErrors);
  }
  counters_.inc(MonitorCounter::kMessages, handled);

  pending_v4_ |= acc.redump_v4;
  pending_v6_ |= acc.redump_v6;
  bool changed = acc.changed;
  if (pending_full_) {
    resync();
    return handled;
  }
  for (Family f : {Family::kIpv4, Family::kIpv6}) {
    bool& pending = f == Family::kIpv4 ? pending_v4_ : pending_v6_;
    if (!pending) continue;
    counters_.inc(MonitorCounter::kRouteRedumps);
    if (dump_routes(f)) {
      pending = false;
      changed = true;
    } else {
      counters_.inc(MonitorCounter::kDumpFailures);
    }
  }
  if (changed) publish();
  domain_.reclaim();
  return handled;
}

size_t NetlinkMonitor::poll_once(int timeout_ms) {
  pollfd p{fd(), POLLIN, 0};
  const int r = poll(&p, 1, timeout_ms);
  // A pending retry of a failed dump runs even without new events.
  if (r <= 0 && !pending_full_ && !pending_v4_ && !pending_v6_) {
    domain_.reclaim();
    return 0;
  }
  return process_events();
}

NetlinkMonitor::Resolve NetlinkMonitor::request_resolution(uint32_t ifindex, const Addr& addr) {
  if (addr.family != Family::kIpv4 && addr.family != Family::kIpv6) {
    counters_.inc(MonitorCounter::kResolveErrors);
    last_resolve_errno_ = EAFNOSUPPORT;
    return Resolve::kError;
  }
  const uint64_t now = clock_->now_ns();
  const auto key = std::make_pair(ifindex, addr);
  if (auto it = last_resolve_.find(key);
      it != last_resolve_.end() && now - it->second < opt_.resolve_interval_ns) {
    counters_.inc(MonitorCounter::kResolveRateLimited);
    return Resolve::kRateLimited;
  }
  if (last_resolve_.size() >= 4096) {
    // Bounded memory: forget addresses whose interval has passed.
    std::erase_if(last_resolve_,
                  [&](const auto& kv) { return now - kv.second >= opt_.resolve_interval_ns; });
  }
  last_resolve_[key] = now;

  alignas(nlmsghdr) uint8_t req[128] = {};
  const uint32_t seq = ++seq_;
  ndmsg* ndm;
  // NLM_F_CREATE: neigh_add() creates the missing entry; NTF_USE then makes
  // it call neigh_event_send() instead of setting a state, which starts
  // resolution exactly as an outgoing packet would. NLM_F_ACK: rtnetlink
  // handles the request inside sendto(), so the answer is already queued.
  nlmsghdr* nlh =
      put_request(req, RTM_NEWNEIGH, NLM_F_REQUEST | NLM_F_CREATE | NLM_F_ACK, seq, &ndm);
  ndm->ndm_family = af_of(addr.family);
  ndm->ndm_ifindex = static_cast<int>(ifindex);
  ndm->ndm_state = NUD_NONE;
  ndm->ndm_flags = NTF_USE;
  mnl_attr_put(nlh, NDA_DST, addr.len(), addr.bytes.data());
  if (mnl_socket_sendto(req_, nlh, nlh->nlmsg_len) < 0) {
    last_resolve_errno_ = errno;
    counters_.inc(MonitorCounter::kResolveErrors);
    return Resolve::kError;
  }
  for (;;) {
    const ssize_t n = recv(mnl_socket_get_fd(req_), buf_.data(), buf_.size(), MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR) continue;
      break;  // no answer queued (yet): count it as sent
    }
    int err = 0;
    bool mine = false;
    for_each_message(buf_.data(), static_cast<size_t>(n), [&](const DecodedMsg& m, DecodeError) {
      if (m.kind != MsgKind::kError) return;
      if (m.seq == seq) {
        mine = true;
        err = m.error;
      } else if (m.error != 0) {
        counters_.inc(MonitorCounter::kResolveErrors);
      }
    });
    if (!mine) continue;
    if (err != 0) {
      last_resolve_errno_ = -err;
      counters_.inc(MonitorCounter::kResolveErrors);
      return Resolve::kError;
    }
    break;
  }
  counters_.inc(MonitorCounter::kResolveSent);
  return Resolve::kSent;
}

}  // namespace tripod::route
