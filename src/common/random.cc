#include "common/random.h"

#include <sys/random.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>

namespace tripod {

void secure_random_bytes(void* out, size_t n) {
  auto* p = static_cast<unsigned char*>(out);
  while (n > 0) {
    ssize_t r = getrandom(p, n, 0);
    if (r < 0) {
      if (errno == EINTR) continue;
      std::perror("tripod: getrandom");
      std::abort();
    }
    p += r;
    n -= static_cast<size_t>(r);
  }
}

}  // namespace tripod
