// Handing packets between the workers of one node. A node's workers split
// its flows by slot (GatewayConfig::shards), but the NIC spreads packets over
// the queues by its own hash, and a FullNAT flow's two directions, or a flow
// taken over from a peer, land on different queues. The worker that receives
// a packet of another worker's flow copies it into a ring to that worker,
// which takes it in as if received, ahead of its own RX (VPP's NAT handoff,
// DPVS's redirect ring).
//
// Why a copy: each worker's port owns its UMEM frames (single-threaded
// frame stacks). A shared UMEM would move frame indices instead, but then
// frames drift between the workers' stacks and must be handed back; a copy
// of at most kMaxFrameLen bytes costs less than that bookkeeping's cache
// misses at the rates one core reaches. (Revisit with zero-copy NICs.)
//
// One ring per (from, to) pair: single producer, single consumer, fixed
// slots, no allocation after construction. A full ring drops the packet
// (counted; TCP resends). A worker about to sleep says so, and a sender
// that handed it packets wakes it through its eventfd; otherwise no
// syscall is made.
#pragma once

#include <atomic>
#include <cstdint>
#include <cstring>
#include <memory>
#include <type_traits>
#include <vector>

#include "common/compiler.h"
#include "common/spsc_ring.h"
#include "io/packet.h"
#include "packet/flow_key.h"
#include "packet/packet_meta.h"

namespace tripod {

class PacketRing {
 public:
  // Capacity is rounded up to a power of two.
  explicit PacketRing(uint32_t capacity) {
    cap_ = spsc_capacity(capacity);
    mask_ = cap_ - 1;
    slots_ = std::make_unique_for_overwrite<Slot[]>(cap_);  // pages committed as used
  }

  // Producer: copies the packet in, with its parse (the receiver does not
  // parse it again); false when the ring is full (or the packet longer than
  // a frame holds: never from an RX frame).
  bool push(const Packet& p, const PacketMeta& meta, const FlowKey& key, bool reversed) {
    if (p.len > kMaxFrameLen) return false;
    const uint32_t tail = prod_.tail.load(std::memory_order_relaxed);
    if (tail - prod_.cached_head == cap_) {
      prod_.cached_head = cons_.head.load(std::memory_order_acquire);
      if (tail - prod_.cached_head == cap_) return false;
    }
    Slot& s = slots_[tail & mask_];
    s.len = p.len;
    s.ts_ns = p.ts_ns;
    std::memcpy(s.meta, &meta, sizeof meta);
    std::memcpy(s.key, &key, sizeof key);
    s.reversed = reversed;
    std::memcpy(s.data, p.data, s.len);
    prod_.tail.store(tail + 1, std::memory_order_release);
    return true;
  }

  // Consumer: takes up to `max` packets into frames from `frames` (a
  // packet stays in the ring while no frame is free), with their parse.
  // Returns how many.
  template <typename Frames>
  uint32_t pop(Packet* out, PacketMeta* meta, FlowKey* key, bool* reversed, uint32_t max,
               Frames& frames) {
    const uint32_t head = cons_.head.load(std::memory_order_relaxed);
    if (cons_.cached_tail - head < max)
      cons_.cached_tail = prod_.tail.load(std::memory_order_acquire);
    const uint32_t avail = cons_.cached_tail - head;
    uint32_t n = 0;
    while (n < max && n < avail) {
      Packet& p = out[n];
      if (!frames.alloc_frame(&p)) break;
      const Slot& s = slots_[(head + n) & mask_];
      std::memcpy(p.data, s.data, s.len);
      p.len = s.len;
      p.ts_ns = s.ts_ns;
      std::memcpy(&meta[n], s.meta, sizeof(PacketMeta));
      std::memcpy(&key[n], s.key, sizeof(FlowKey));
      reversed[n] = s.reversed;
      ++n;
    }
    cons_.head.store(head + n, std::memory_order_release);
    return n;
  }

  // Consumer: whether a packet waits (an acquire load).
  bool empty() const {
    return cons_.head.load(std::memory_order_relaxed) == prod_.tail.load(std::memory_order_acquire);
  }
  uint32_t capacity() const { return cap_; }

 private:
  // Plain bytes (the parse as raw copies): no constructor writes the slots,
  // so a ring's pages are committed only as it fills.
  struct Slot {
    uint8_t data[kMaxFrameLen];
    uint32_t len;
    bool reversed;
    uint64_t ts_ns;
    alignas(8) unsigned char meta[sizeof(PacketMeta)];
    alignas(8) unsigned char key[sizeof(FlowKey)];
  };
  static_assert(std::is_trivially_default_constructible_v<Slot>);
  static_assert(std::is_trivially_copyable_v<PacketMeta> && std::is_trivially_copyable_v<FlowKey>);
  SpscProducer prod_;
  SpscConsumer cons_;
  uint32_t cap_;
  uint32_t mask_;
  std::unique_ptr<Slot[]> slots_;
};

// Every ring between `workers` workers, and each worker's wake-up.
class HandoffMesh {
 public:
  // Throws std::runtime_error when an eventfd cannot be made.
  HandoffMesh(uint32_t workers, uint32_t ring_capacity);
  ~HandoffMesh();
  HandoffMesh(const HandoffMesh&) = delete;
  HandoffMesh& operator=(const HandoffMesh&) = delete;

  uint32_t workers() const { return n_; }
  PacketRing& ring(uint32_t from, uint32_t to) { return *rings_[size_t{from} * n_ + to]; }
  // The eventfd that ends worker `w`'s sleep when packets are handed to it.
  int wake_fd(uint32_t w) const { return peers_[w].fd; }

  // Worker `self`: takes up to `max` handed packets (each sender's ring in
  // turn, so none starves the others).
  template <typename Frames>
  uint32_t receive(uint32_t self, Packet* out, PacketMeta* meta, FlowKey* key, bool* reversed,
                   uint32_t max, Frames& frames) {
    uint32_t n = 0;
    for (uint32_t k = 0; k < n_ && n < max; ++k) {
      const uint32_t from = (peers_[self].next_from + k) % n_;
      if (from != self)
        n += ring(from, self).pop(out + n, meta + n, key + n, reversed + n, max - n, frames);
    }
    peers_[self].next_from = (peers_[self].next_from + 1) % n_;
    return n;
  }
  bool pending(uint32_t self) const;

  // Worker `self` is about to sleep: true if it may (nothing is handed to
  // it); a sender that hands it a packet from now on wakes it. awake() once
  // the sleep ends.
  bool may_sleep(uint32_t self);
  void awake(uint32_t self) { peers_[self].sleeping.store(false, std::memory_order_relaxed); }
  // A sender handed packets to `to`: wakes it if it sleeps.
  void notify(uint32_t to);

 private:
  struct alignas(kCacheLine) PeerState {
    std::atomic<bool> sleeping{false};
    std::atomic<uint64_t> posted{0};  // notify() calls: senders' news
    int fd = -1;
    uint64_t seen = 0;       // the receiver's: `posted` when it last looked
    uint32_t next_from = 0;  // the receiver's own
  };
  uint32_t n_;
  std::vector<std::unique_ptr<PacketRing>> rings_;  // [from * n + to]; null on the diagonal
  std::unique_ptr<PeerState[]> peers_;
};

}  // namespace tripod
