// Failure detector and membership epochs. Pure logic: no sockets, no threads,
// no clock reads; the cluster agent passes heartbeats and times in (ns, any
// monotonic origin) and reads back the live set and events.
//
// Peers are static config (MembershipConfig::members); every node sends a
// heartbeat (node id, incarnation, ready) every heartbeat_interval.
//
//  - A peer is declared dead when nothing was heard from it for dead_after:
//    dead at the first tick() (or heartbeat) with now - last_heard >=
//    dead_after, never before. Call tick() at least every heartbeat_interval;
//    detection then takes at most dead_after + one tick period.
//  - Incarnation: chosen by a node at start and increasing across its
//    restarts (e.g. CLOCK_REALTIME in ns at start). A heartbeat with a new
//    incarnation from a peer is a restart: its state is gone, so the peer goes
//    down at once (one epoch) and comes back like any returning peer (another
//    epoch). A lower incarnation from a peer heard within dead_after is a
//    stale datagram from before its restart: ignored and counted. Once a peer
//    has been silent for dead_after any incarnation is accepted, so a node
//    whose clock stepped back still rejoins.
//  - Rise: a peer that is dead (or new) comes back after `rise` heartbeats,
//    each less than dead_after after the previous one (default 3, about 20 ms
//    at the default interval). One stray datagram from a half-dead node does
//    not bring it back, and a flapping link costs at most one down/up pair per
//    dead_after + rise heartbeats. No damping beyond that: holding a healthy
//    node out costs capacity, and the router's BFD works on the same scale.
//  - Ready: a returning node is reachable (kJoining: send it state) but joins
//    the live set only once its heartbeats say ready. A peer that clears
//    ready with the same incarnation leaves the live set (a graceful drain).
//  - Live set: peers that are kUp, plus self once set_self_ready(true).
//    epoch() counts changes of the live set. Epochs are local numbers: nodes
//    agree on live sets (the ring is a function of the live set only), not
//    on epoch values.
//
// Events: every mutating call returns the events it caused as a span over a
// fixed array inside the Membership (valid until the next mutating call), so
// the per-heartbeat path neither allocates nor throws. Within one tick() all
// deaths make one epoch; a restart inside one heartbeat makes two.
//
// Threading: one thread (the cluster agent) calls everything. Counters may be
// read from any thread (relaxed snapshots).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

#include "cluster/membership/node_set.h"
#include "common/counters.h"

namespace tripod::cluster {

struct MembershipConfig {
  NodeId self = kNoNode;
  NodeSet members = 0;  // every node of the cluster, self included (node_set_of)
  uint64_t heartbeat_interval_ns = 10'000'000;
  uint64_t dead_after_ns = 50'000'000;  // > heartbeat_interval_ns
  uint32_t rise = 3;                    // heartbeats to come back; >= 1
};

// Throws std::invalid_argument naming the field.
void validate(const MembershipConfig& cfg);

enum class PeerStatus : uint8_t {
  kDead,     // silent for dead_after, never heard, or fewer than `rise` heartbeats since
  kJoining,  // heartbeats arrive, not ready: reachable, not in the live set
  kUp,       // heartbeats arrive and ready: in the live set
};

constexpr const char* to_string(PeerStatus s) {
  return s == PeerStatus::kUp ? "up" : s == PeerStatus::kJoining ? "joining" : "dead";
}

enum class MemberEventKind : uint8_t {
  kStatus,     // a peer changed status (from -> to); up: to == kUp, down: from == kUp
  kRestarted,  // a peer came back with a new incarnation: drop what it held
  kEpoch,      // the live set changed: rebuild the slot tables
};

struct MemberEvent {
  MemberEventKind kind = MemberEventKind::kEpoch;
  NodeId node = kNoNode;                // kStatus, kRestarted
  PeerStatus from = PeerStatus::kDead;  // kStatus
  PeerStatus to = PeerStatus::kDead;    // kStatus
  uint64_t incarnation = 0;             // kStatus, kRestarted: the peer's (new) incarnation
  uint32_t epoch = 0;                   // kEpoch: the new epoch
  NodeSet live = 0;                     // kEpoch: the new live set
};

#define TRIPOD_MEMBERSHIP_COUNTERS(X)                  \
  X(kHeartbeats, "heartbeats")                         \
  X(kUnknownNode, "heartbeats_unknown_node")           \
  X(kFromSelf, "heartbeats_from_self")                 \
  X(kStaleIncarnation, "heartbeats_stale_incarnation") \
  X(kRestarts, "peer_restarts")                        \
  X(kDeaths, "peer_deaths")                            \
  X(kEpochs, "epochs")
TRIPOD_DECLARE_REASONS(MembershipCounter, TRIPOD_MEMBERSHIP_COUNTERS)

using MembershipCounters = CounterSet<MembershipCounter, size_t(MembershipCounter::kCount)>;

class Membership {
 public:
  // At most one status event per peer plus one epoch per tick(); five per
  // heartbeat (down, epoch, restarted, up, epoch).
  static constexpr size_t kMaxEvents = kMaxNodes + 8;

  // Throws std::invalid_argument on a bad config (validate()).
  explicit Membership(const MembershipConfig& cfg);

  // A heartbeat from `node`. Unknown ids and our own id are ignored and
  // counted. Never throws, never allocates.
  std::span<const MemberEvent> on_heartbeat(NodeId node, uint64_t incarnation, bool ready,
                                            uint64_t now_ns);
  // Declares dead the peers silent for dead_after.
  std::span<const MemberEvent> tick(uint64_t now_ns);
  // Self joins the live set once it has its state (or at once on a cold
  // start of the cluster); false takes it out (drain).
  std::span<const MemberEvent> set_self_ready(bool ready);

  // Members that are up and ready, self included when ready.
  NodeSet live_set() const { return live_; }
  // Peers that are joining or up, plus self: whom to send heartbeats and state.
  NodeSet reachable_set() const;
  uint32_t epoch() const { return epoch_; }

  NodeId self() const { return cfg_.self; }
  bool self_ready() const { return self_ready_; }
  // Self: kUp when ready, else kJoining. Unknown ids: kDead.
  PeerStatus status(NodeId node) const;
  uint64_t incarnation(NodeId node) const;  // 0 if never heard
  uint64_t last_heard_ns(NodeId node) const;
  // Earliest time at which a peer that is not dead may be declared dead;
  // UINT64_MAX when none is alive. The agent may sleep until then.
  uint64_t next_expiry_ns() const;

  const MembershipConfig& config() const { return cfg_; }
  const MembershipCounters& counters() const { return counters_; }

 private:
  struct Peer {
    uint64_t incarnation = 0;
    uint64_t last_heard_ns = 0;
    uint32_t run = 0;  // heartbeats in the current unbroken run, saturates at rise
    bool heard = false;
    bool ready = false;
    PeerStatus status = PeerStatus::kDead;
  };

  Peer& peer(NodeId n) { return peers_[n - 1u]; }
  const Peer& peer(NodeId n) const { return peers_[n - 1u]; }
  bool silent(const Peer& p, uint64_t now_ns) const {
    return now_ns >= p.last_heard_ns && now_ns - p.last_heard_ns >= cfg_.dead_after_ns;
  }
  void clear_events() { n_events_ = 0; }
  std::span<const MemberEvent> events() const { return {events_.data(), n_events_}; }
  void emit(const MemberEvent& e);
  void set_status(NodeId n, Peer& p, PeerStatus to);
  // Compares the live set with the peers' statuses; a change is a new epoch.
  void commit_epoch();

  MembershipConfig cfg_;
  std::array<Peer, kMaxNodes> peers_{};  // index id - 1
  std::array<MemberEvent, kMaxEvents> events_{};
  size_t n_events_ = 0;
  NodeSet live_ = 0;
  uint32_t epoch_ = 0;
  bool self_ready_ = false;
  MembershipCounters counters_;
};

}  // namespace tripod::cluster
