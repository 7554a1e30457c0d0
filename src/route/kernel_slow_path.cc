#include "route/kernel_slow_path.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/byte_order.h"

#ifndef IPV6_HDRINCL
#define IPV6_HDRINCL 36  // linux/in6.h; older libc headers lack it
#endif

namespace tripod::route {

SlowPathReason slow_path_reason(int err) {
  switch (err) {
    case ENETUNREACH:
    case EHOSTUNREACH:
    case ENETDOWN:
    case EHOSTDOWN:
      return SlowPathReason::kErrUnreachable;
    case EMSGSIZE:
      return SlowPathReason::kErrTooBig;
    case ENOBUFS:
    case EAGAIN:
    case ENOMEM:
      return SlowPathReason::kErrNoBuffer;
    case EPERM:  // also a netfilter OUTPUT drop
    case EACCES:
      return SlowPathReason::kErrPermission;
    case EINVAL:
    case EDESTADDRREQ:
    case EAFNOSUPPORT:
      return SlowPathReason::kErrInvalid;
    default:
      return SlowPathReason::kErrOther;
  }
}

KernelSlowPath::KernelSlowPath() {
  fd4_ = socket(AF_INET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_RAW);
  if (fd4_ < 0) open_errno_ = errno;
  fd6_ = socket(AF_INET6, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_RAW);
  if (fd6_ < 0) {
    open_errno_ = errno;
  } else {
    // IPPROTO_RAW already implies it; explicit for kernels/readers that
    // expect the option (Linux >= 4.5). Failure is harmless.
    const int one = 1;
    setsockopt(fd6_, IPPROTO_IPV6, IPV6_HDRINCL, &one, sizeof one);
  }
}

KernelSlowPath::~KernelSlowPath() {
  if (fd4_ >= 0) close(fd4_);
  if (fd6_ >= 0) close(fd6_);
}

bool KernelSlowPath::send(const uint8_t* ip, size_t len, uint32_t oif) {
  if (len < 1) {
    counters_.inc(SlowPathReason::kBadPacket);
    return false;
  }
  const unsigned version = ip[0] >> 4;
  ssize_t r;
  if (version == 4) {
    if (len < 20 || (ip[0] & 0xF) < 5 || (ip[0] & 0xFu) * 4u > len || load_be16(ip + 2) > len ||
        load_be16(ip + 2) < (ip[0] & 0xFu) * 4u) {
      counters_.inc(SlowPathReason::kBadPacket);
      return false;
    }
    if (fd4_ < 0) {
      counters_.inc(SlowPathReason::kNoSocket);
      return false;
    }
    len = load_be16(ip + 2);  // drops L2 padding the caller may have included
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    std::memcpy(&sa.sin_addr, ip + 16, 4);
    r = sendto(fd4_, ip, len, MSG_DONTWAIT, reinterpret_cast<const sockaddr*>(&sa), sizeof sa);
  } else if (version == 6) {
    if (len < 40 || 40u + load_be16(ip + 4) > len) {
      counters_.inc(SlowPathReason::kBadPacket);
      return false;
    }
    if (fd6_ < 0) {
      counters_.inc(SlowPathReason::kNoSocket);
      return false;
    }
    len = 40u + load_be16(ip + 4);
    sockaddr_in6 sa{};
    sa.sin6_family = AF_INET6;
    std::memcpy(&sa.sin6_addr, ip + 24, 16);
    // fe80::/10 needs a scope; every other destination is routed normally.
    if (ip[24] == 0xFE && (ip[25] & 0xC0) == 0x80) sa.sin6_scope_id = oif;
    r = sendto(fd6_, ip, len, MSG_DONTWAIT, reinterpret_cast<const sockaddr*>(&sa), sizeof sa);
  } else {
    counters_.inc(SlowPathReason::kBadPacket);
    return false;
  }
  if (r < 0) {
    counters_.inc(slow_path_reason(errno));
    return false;
  }
  counters_.inc(SlowPathReason::kSent);
  return true;
}

}  // namespace tripod::route
