#include "pipeline/handoff.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>

#include "common/eventfd.h"

namespace tripod {

HandoffMesh::HandoffMesh(uint32_t workers, uint32_t ring_capacity)
    : n_(workers), peers_(std::make_unique<PeerState[]>(workers)) {
  rings_.resize(size_t{n_} * n_);
  for (uint32_t f = 0; f < n_; ++f)
    for (uint32_t t = 0; t < n_; ++t)
      if (f != t) rings_[size_t{f} * n_ + t] = std::make_unique<PacketRing>(ring_capacity);
  for (uint32_t w = 0; w < n_; ++w) {
    peers_[w].fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (peers_[w].fd < 0) {
      const std::string e = std::strerror(errno);
      for (uint32_t k = 0; k < w; ++k)
        ::close(peers_[k].fd);
      throw std::runtime_error("worker handoff: eventfd: " + e);
    }
  }
}

HandoffMesh::~HandoffMesh() {
  for (uint32_t w = 0; w < n_; ++w)
    ::close(peers_[w].fd);
}

bool HandoffMesh::pending(uint32_t self) const {
  for (uint32_t f = 0; f < n_; ++f)
    if (f != self && !rings_[size_t{f} * n_ + self]->empty()) return true;
  return false;
}

// A lost wake-up would leave packets waiting a whole sleep (up to 10 ms).
// Every operation on `sleeping` and `posted` is seq_cst, so in their single
// total order either the sender's load of `sleeping` comes after the
// receiver's store (the sender signals), or the sender's increment of
// `posted`, before that load, comes before the receiver's load of `posted`
// (the receiver sees it and does not sleep).
bool HandoffMesh::may_sleep(uint32_t self) {
  PeerState& me = peers_[self];
  me.sleeping.store(true, std::memory_order_seq_cst);
  const uint64_t posted = me.posted.load(std::memory_order_seq_cst);
  if (posted == me.seen && !pending(self)) return true;
  me.seen = posted;
  me.sleeping.store(false, std::memory_order_relaxed);
  return false;
}

void HandoffMesh::notify(uint32_t to) {
  PeerState& peer = peers_[to];
  peer.posted.fetch_add(1, std::memory_order_seq_cst);
  if (peer.sleeping.load(std::memory_order_seq_cst)) {
    peer.sleeping.store(false, std::memory_order_relaxed);
    signal_eventfd(peer.fd);
  }
}

}  // namespace tripod
