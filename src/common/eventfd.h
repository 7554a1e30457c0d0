// The two things done with an eventfd used as a wake-up: signal it, and
// clear it after waking (non-blocking fds; errors are harmless here).
#pragma once

#include <unistd.h>

#include <cstdint>

namespace tripod {

inline void signal_eventfd(int fd) {
  const uint64_t one = 1;
  // EAGAIN only when the counter would overflow: it is already signalled.
  [[maybe_unused]] const ssize_t n = ::write(fd, &one, sizeof one);
}

inline void clear_eventfd(int fd) {
  uint64_t v;
  [[maybe_unused]] const ssize_t n = ::read(fd, &v, sizeof v);
}

}  // namespace tripod
