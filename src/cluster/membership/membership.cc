#include "cluster/membership/membership.h"

#include <stdexcept>
#include <string>

namespace tripod::cluster {

void validate(const MembershipConfig& cfg) {
  if (!valid_node(cfg.self))
    throw std::invalid_argument("membership: self " + std::to_string(cfg.self) +
                                " is not a node id (1.." + std::to_string(kMaxNodes) + ")");
  if (!contains(cfg.members, cfg.self))
    throw std::invalid_argument("membership: members must include self (node " +
                                std::to_string(cfg.self) + ")");
  if (cfg.heartbeat_interval_ns == 0)
    throw std::invalid_argument("membership: heartbeat_interval must be positive");
  if (cfg.dead_after_ns <= cfg.heartbeat_interval_ns)
    throw std::invalid_argument(
        "membership: dead_after (" + std::to_string(cfg.dead_after_ns) +
        " ns) must be greater than heartbeat_interval (" +
        std::to_string(cfg.heartbeat_interval_ns) +
        " ns): a peer would be declared dead between two of its heartbeats");
  if (cfg.rise == 0) throw std::invalid_argument("membership: rise must be at least 1");
}

Membership::Membership(const MembershipConfig& cfg) : cfg_(cfg) {
  validate(cfg_);
}

void Membership::emit(const MemberEvent& e) {
  // kMaxEvents bounds what one call can cause; the check keeps a future
  // mistake from writing out of bounds.
  if (n_events_ < events_.size()) events_[n_events_++] = e;
}

void Membership::set_status(NodeId n, Peer& p, PeerStatus to) {
  if (p.status == to) return;
  MemberEvent e;
  e.kind = MemberEventKind::kStatus;
  e.node = n;
  e.from = p.status;
  e.to = to;
  e.incarnation = p.incarnation;
  p.status = to;
  if (to == PeerStatus::kDead) {
    p.run = 0;
    counters_.inc(MembershipCounter::kDeaths);
  }
  emit(e);
}

void Membership::commit_epoch() {
  NodeSet live = self_ready_ ? node_bit(cfg_.self) : 0;
  for (NodeSet r = cfg_.members & ~node_bit(cfg_.self); r != 0; r &= r - 1) {
    const NodeId n = lowest_node(r);
    if (peer(n).status == PeerStatus::kUp) live |= node_bit(n);
  }
  if (live == live_) return;
  live_ = live;
  ++epoch_;
  counters_.inc(MembershipCounter::kEpochs);
  MemberEvent e;
  e.kind = MemberEventKind::kEpoch;
  e.epoch = epoch_;
  e.live = live_;
  emit(e);
}

std::span<const MemberEvent> Membership::on_heartbeat(NodeId node, uint64_t incarnation, bool ready,
                                                      uint64_t now_ns) {
  clear_events();
  if (node == cfg_.self) {
    counters_.inc(MembershipCounter::kFromSelf);
    return events();
  }
  if (!contains(cfg_.members, node)) {
    counters_.inc(MembershipCounter::kUnknownNode);
    return events();
  }
  counters_.inc(MembershipCounter::kHeartbeats);
  Peer& p = peer(node);
  const bool was_silent = !p.heard || silent(p, now_ns);

  if (p.heard && incarnation != p.incarnation) {
    if (incarnation < p.incarnation && !was_silent) {
      counters_.inc(MembershipCounter::kStaleIncarnation);
      return events();
    }
    counters_.inc(MembershipCounter::kRestarts);
    MemberEvent e;
    e.kind = MemberEventKind::kRestarted;
    e.node = node;
    e.incarnation = incarnation;
    emit(e);
  }
  // A silent peer is dead whether or not tick() has run since: the outcome
  // does not depend on how the agent interleaves ticks and heartbeats.
  if (was_silent || incarnation != p.incarnation) {
    set_status(node, p, PeerStatus::kDead);
    p.run = 0;
    commit_epoch();
  }

  p.heard = true;
  p.incarnation = incarnation;
  p.ready = ready;
  if (now_ns > p.last_heard_ns) p.last_heard_ns = now_ns;
  if (p.status == PeerStatus::kDead) {
    if (p.run < cfg_.rise) ++p.run;
    if (p.run < cfg_.rise) return events();
  }
  set_status(node, p, ready ? PeerStatus::kUp : PeerStatus::kJoining);
  commit_epoch();
  return events();
}

std::span<const MemberEvent> Membership::tick(uint64_t now_ns) {
  clear_events();
  for (NodeSet r = cfg_.members & ~node_bit(cfg_.self); r != 0; r &= r - 1) {
    const NodeId n = lowest_node(r);
    Peer& p = peer(n);
    if (!p.heard || !silent(p, now_ns)) continue;
    set_status(n, p, PeerStatus::kDead);
    p.run = 0;  // a run of heartbeats towards `rise` is broken too
  }
  commit_epoch();
  return events();
}

std::span<const MemberEvent> Membership::set_self_ready(bool ready) {
  clear_events();
  self_ready_ = ready;
  commit_epoch();
  return events();
}

NodeSet Membership::reachable_set() const {
  NodeSet s = node_bit(cfg_.self);
  for (NodeSet r = cfg_.members & ~s; r != 0; r &= r - 1) {
    const NodeId n = lowest_node(r);
    if (peer(n).status != PeerStatus::kDead) s |= node_bit(n);
  }
  return s;
}

PeerStatus Membership::status(NodeId node) const {
  if (node == cfg_.self) return self_ready_ ? PeerStatus::kUp : PeerStatus::kJoining;
  return contains(cfg_.members, node) ? peer(node).status : PeerStatus::kDead;
}

uint64_t Membership::incarnation(NodeId node) const {
  return contains(cfg_.members, node) ? peer(node).incarnation : 0;
}

uint64_t Membership::last_heard_ns(NodeId node) const {
  return contains(cfg_.members, node) ? peer(node).last_heard_ns : 0;
}

uint64_t Membership::next_expiry_ns() const {
  uint64_t t = UINT64_MAX;
  for (NodeSet r = cfg_.members & ~node_bit(cfg_.self); r != 0; r &= r - 1) {
    const Peer& p = peer(lowest_node(r));
    if (p.status == PeerStatus::kDead) continue;
    const uint64_t at = p.last_heard_ns + cfg_.dead_after_ns;
    if (at < t) t = at;
  }
  return t;
}

}  // namespace tripod::cluster
