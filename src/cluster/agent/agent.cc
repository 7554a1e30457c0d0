#include "cluster/agent/agent.h"

#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>

#include "common/byte_order.h"
#include "common/eventfd.h"

namespace tripod::cluster {

static_assert(kSlots == tripod::kSlots, "the ring's slots are the gateway's");
static_assert(kMaxHolders == kViewHolders);
static_assert(kMaxNodes == kMaxClusterNodes);

namespace {

uint64_t mono_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return uint64_t(ts.tv_sec) * 1'000'000'000 + uint64_t(ts.tv_nsec);
}

// Grows across restarts of this node (the wire and membership need that).
uint64_t new_incarnation() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return uint64_t(ts.tv_sec) * 1'000'000'000 + uint64_t(ts.tv_nsec);
}

constexpr int kSocketBufferBytes = 4 << 20;
constexpr size_t kMaxWakeLinks = 64;

MembershipConfig membership_config(const AgentConfig& c) {
  MembershipConfig m;
  m.self = c.self;
  NodeSet all = node_bit(c.self);
  for (const auto& p : c.peers)
    all |= node_bit(p.id);
  m.members = all;
  m.heartbeat_interval_ns = c.heartbeat_interval_ns;
  m.dead_after_ns = c.dead_after_ns;
  m.rise = c.rise;
  return m;
}

RingConfig ring_config(const AgentConfig& c) {
  RingConfig r;
  r.key = c.ring_key;
  r.members = membership_config(c).members;
  return r;
}

}  // namespace

// ---- worker side ----

FlowLink::FlowLink(uint32_t capacity, uint64_t checkpoint_ns, bool output_commit)
    : to_agent_(capacity), to_worker_(capacity), checkpoint_ns_(checkpoint_ns) {
  if (!output_commit) return;
  worker_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  agent_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (worker_fd_ < 0 || agent_fd_ < 0) {
    const int e = errno;
    if (worker_fd_ >= 0) ::close(worker_fd_);
    if (agent_fd_ >= 0) ::close(agent_fd_);
    throw std::runtime_error(std::string("cluster: eventfd: ") + std::strerror(e));
  }
  batch_end_ = std::make_unique<uint64_t[]>(kBatches);
}

FlowLink::~FlowLink() {
  if (worker_fd_ >= 0) ::close(worker_fd_);
  if (agent_fd_ >= 0) ::close(agent_fd_);
}

void FlowLink::set_committed(uint64_t n) {
  if (committed_.load(std::memory_order_relaxed) == n) return;
  committed_.store(n, std::memory_order_release);
  if (worker_fd_ >= 0) signal_eventfd(worker_fd_);
}

void FlowLink::post(const ViewChange& change) {
  std::lock_guard<std::mutex> lock(mu_);
  next_view_ = change.view;
  next_down_.insert(next_down_.end(), change.down.begin(), change.down.end());
  next_restarted_.insert(next_restarted_.end(), change.restarted.begin(), change.restarted.end());
  next_resync_ |= change.resync;
  next_rescan_ |= change.rescan;
  has_view_.store(true, std::memory_order_release);
}

void FlowLink::worker_poll(GatewayStage& gw, uint64_t now_ns) {
  // Read before the view: the agent posts a view before the commit that
  // gives up on a dead holder, so a commit seen here comes with its view
  // (and the resync that sends the flows to their new holders).
  const uint64_t acked = output_commit() ? committed() : 0;
  if (has_view_.load(std::memory_order_acquire)) {
    std::shared_ptr<const ClusterView> v;
    std::vector<uint16_t> down;
    std::vector<uint16_t> restarted;
    bool resync;
    bool rescan;
    {
      std::lock_guard<std::mutex> lock(mu_);
      v = std::move(next_view_);
      down.swap(next_down_);
      restarted.swap(next_restarted_);
      resync = next_resync_;
      next_resync_ = false;
      rescan = next_rescan_;
      next_rescan_ = false;
      has_view_.store(false, std::memory_order_relaxed);
    }
    if (v) view_ = *v;
    gw.set_cluster_view(&view_);
    for (uint16_t d : down)
      gw.peer_down(d);
    for (uint16_t r : restarted)
      gw.peer_restarted(r);
    if (resync) {
      gw.resync();
      resync_owed_ = true;
    } else if (rescan) {
      gw.take_orphans();
    }
  }
  FlowSync buf[64];
  for (int round = 0; round < 16; ++round) {
    const uint32_t n = to_worker_.pop(buf, 64);
    for (uint32_t i = 0; i < n; ++i)
      gw.import_sync(buf[i], now_ns);
    if (n < 64) break;
  }
  if (output_commit()) {
    // Batches whose every record is acknowledged.
    while (static_cast<uint16_t>(point_.committed + 1) != point_.open &&
           batch_end_[static_cast<uint16_t>(point_.committed + 1) % kBatches] <= acked)
      ++point_.committed;
    gw.set_commit_point(point_);
  }
  // Packets wait for the open batch: it goes at once, or, if another went
  // for waiting packets less than commit_gap ago, when that has passed
  // (at most 500 us, half a checkpoint). Not after every burst under load:
  // every such export costs a datagram to each holder, its ack and four
  // thread wake-ups, and in the lab (3 nodes, 2 cores) it made fewer
  // connections per second and a worse p99 (11.0k, 15.3 ms) than half a
  // checkpoint (13.0k, 8.7 ms).
  const uint64_t gap = std::min<uint64_t>(checkpoint_ns_ / 2, 500'000);
  const bool due = gw.export_due() && now_ns - last_due_ns_ >= gap;
  // A pull, or a peer's pull's answer: packets wait for it; the agent takes
  // it at its next round (woken at once under output commit).
  if (!due && !gw.pull_pending() && now_ns - last_export_ns_ < checkpoint_ns_) return;
  last_export_ns_ = now_ns;
  if (due) last_due_ns_ = now_ns;
  export_records(gw, now_ns);
}

void FlowLink::export_records(GatewayStage& gw, uint64_t now_ns) {
  FlowSync buf[64];
  const uint64_t before = pushed_;
  const bool pulls = gw.pull_pending();
  for (;;) {
    const uint32_t room = std::min<uint32_t>(to_agent_.room(), 64);
    if (room == 0) break;
    const uint32_t n = gw.export_sync(buf, room, now_ns);
    if (n == 0) break;
    to_agent_.push(buf, n);  // fits: this thread is the only producer
    pushed_ += n;
  }
  if (resync_owed_ && gw.resync_exported()) {
    synced_count_.store(pushed_, std::memory_order_relaxed);
    synced_gen_.store(view_.gen, std::memory_order_release);
    resync_owed_ = false;
  }
  if (!output_commit()) return;
  batch_used_ |= pushed_ != before;
  // The open batch closes once it has handed out everything queued (what
  // its held packets wait for), unless too many wait for acks already.
  const bool due = gw.export_due();
  bool closed = false;
  if ((batch_used_ || due) && gw.export_drained() &&
      static_cast<uint16_t>(point_.open - point_.committed) < kBatches - 1) {
    batch_end_[point_.open % kBatches] = pushed_;
    ++point_.open;
    batch_used_ = false;
    gw.set_commit_point(point_);
    closed = true;
  }
  // Packets wait: the agent takes the batch now. Only a sleeping agent
  // needs the syscall (Dekker's pattern, all seq_cst: the agent sets its
  // flag, then reads the count; we count, then read its flag: one of us
  // sees the other).
  if ((due || pulls) && (pushed_ != before || closed)) {
    exports_.fetch_add(1, std::memory_order_seq_cst);
    if (agent_sleeps_.load(std::memory_order_seq_cst)) signal_eventfd(agent_fd_);
  }
}

// ---- agent ----

struct Agent::Peer {
  AgentPeer addr;
  std::unique_ptr<PeerSink> sink;
  std::unique_ptr<wire::Channel> ch;
  uint32_t info_session = 0;   // session in which our node info went out
  uint64_t last_heard_ns = 0;  // its last authentic heartbeat (0: never)
  uint64_t next_hb_ns = 0;
  uint64_t synced_inc = 0;   // its incarnation when it said all its flows are here
  NodeSet synced_basis = 0;  // the ring those flows were sent for
  bool synced_owed = false;  // we owe it a kRecordSynced
  bool import_lost = false;  // a record of its found the worker's ring full
  uint8_t caps = 0;          // kNodeCap* of its node info, in session caps_session
  uint32_t caps_session = 0;
  bool heard(uint64_t now, uint64_t within) const {
    return last_heard_ns != 0 && now - last_heard_ns < within;
  }
};

class Agent::PeerSink final : public wire::ChannelSink {
 public:
  PeerSink(Agent* a, Peer* p) : a_(a), p_(p) {}
  void transmit(std::span<const uint8_t> d) override {
    const ssize_t r =
        ::sendto(a_->fd_, d.data(), d.size(), MSG_DONTWAIT,
                 reinterpret_cast<const sockaddr*>(&p_->addr.addr), p_->addr.addr_len);
    a_->counters_.inc(r < 0 ? AgentCounter::kSendErrors : AgentCounter::kDatagramsOut);
    if (r > 0) a_->counters_.inc(AgentCounter::kBytesOut, static_cast<uint64_t>(r));
  }
  void deliver(uint64_t seq, const wire::Record& r) override {
    (void)seq;
    a_->on_record(p_->addr.id, r);
  }
  void heartbeat(const wire::Header& h, const wire::Heartbeat& hb) override {
    // A silent peer speaks again: full rate from now on, and at once.
    if (!p_->heard(a_->now_, a_->silent_after_ns_)) p_->next_hb_ns = a_->now_;
    p_->last_heard_ns = a_->now_;
    a_->on_events(a_->membership_.on_heartbeat(p_->addr.id, h.sender_inc,
                                               (hb.state & wire::kStateReady) != 0, a_->now_));
  }

 private:
  Agent* a_;
  Peer* p_;
};

Agent::Agent(const AgentConfig& cfg, std::vector<FlowLink*> links, ViewSink sink)
    : cfg_(cfg),
      links_(std::move(links)),
      sink_(std::move(sink)),
      incarnation_(new_incarnation()),
      records_({{kRecordFlowFull, uint16_t{kFlowFullSize}},
                {kRecordFlowUpdate, uint16_t{kFlowUpdateSize}},
                {kRecordFlowDelete, uint16_t{kFlowDeleteSize}},
                {kRecordFlowPull, uint16_t{kFlowPullSize}},
                {kRecordFlowGrant, uint16_t{kFlowGrantSize}},
                {kRecordFlowRefer, uint16_t{kFlowReferSize}},
                {kRecordNodeInfo, kNodeInfoSize},
                {kRecordSynced, kSyncedSize}}),
      codec_(wire::CodecConfig{cfg.cluster_id, cfg.self, cfg.key}, records_),
      membership_(membership_config(cfg)),
      ring_(ring_config(cfg)),
      silent_after_ns_(
          std::max({cfg.silent_after_ns, uint64_t{1'000'000'000}, 4 * cfg.dead_after_ns})),
      probe_ns_(std::max(cfg.probe_interval_ns, cfg.heartbeat_interval_ns)) {
  if (cfg_.replicas < 1 || cfg_.replicas >= kMaxHolders)
    throw std::runtime_error("cluster: replicas must be in 1.." + std::to_string(kMaxHolders - 1));
  fd_ = ::socket(cfg_.bind.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd_ < 0) throw std::runtime_error(std::string("cluster: socket: ") + std::strerror(errno));
  // Room for a full window to every peer and for bursts from all of them:
  // a send that finds the buffer full loses the datagram (heartbeats too).
  // FORCE needs CAP_NET_ADMIN; without it the sysctl caps apply.
  for (const auto& [force, plain] :
       {std::pair{SO_SNDBUFFORCE, SO_SNDBUF}, std::pair{SO_RCVBUFFORCE, SO_RCVBUF}}) {
    const int bytes = kSocketBufferBytes;
    if (::setsockopt(fd_, SOL_SOCKET, force, &bytes, sizeof bytes) != 0)
      ::setsockopt(fd_, SOL_SOCKET, plain, &bytes, sizeof bytes);
  }
  if (::bind(fd_, reinterpret_cast<const sockaddr*>(&cfg_.bind), cfg_.bind_len) != 0) {
    const int e = errno;
    ::close(fd_);
    throw std::runtime_error(std::string("cluster: bind to the node's control address: ") +
                             std::strerror(e));
  }
  for (const AgentPeer& ap : cfg_.peers) {
    auto p = std::make_unique<Peer>();
    p->addr = ap;
    p->sink = std::make_unique<PeerSink>(this, p.get());
    wire::ChannelConfig cc;
    cc.peer = ap.id;
    cc.incarnation = incarnation_;
    cc.ack_delay_ns = cfg_.ack_delay_ns;
    p->ch = std::make_unique<wire::Channel>(codec_, cc, p->sink.get());
    peers_.push_back(std::move(p));
  }
  std::memcpy(macs_[cfg_.self].data(), cfg_.data_mac, 6);
  pending_.reserve(64 * kMaxHolders);  // one batch's worth: route_exports() stops there
  commits_.resize(links_.size());
  for (const FlowLink* l : links_)
    wake_on_datagrams_ |= l->output_commit();
  // Long enough to hear a peer that took us for silent (it probes every
  // probe_ns_) and to see it rise.
  listen_ns_ = std::max(cfg_.dead_after_ns, probe_ns_) +
               (uint64_t{cfg_.rise} + 1) * cfg_.heartbeat_interval_ns;
  // Not ready yet: the node holds copies at once, and says it is ready once
  // it has them (join()).
  refresh_ring();
}

Agent::~Agent() {
  stop();
  if (fd_ >= 0) ::close(fd_);
}

void Agent::start() {
  thread_ = std::thread([this] { loop(); });
  pthread_setname_np(thread_.native_handle(), "tripod:agent");
  // Heartbeats must not wait behind busy workers and servers: a node that
  // misses dead_after (50 ms) of them is declared dead. Real-time round
  // robin at the lowest priority, as corosync's heartbeat thread; the thread
  // sleeps between heartbeats, so it never starves the others.
  sched_param sp{};
  sp.sched_priority = 1;
  realtime_ = pthread_setschedparam(thread_.native_handle(), SCHED_RR, &sp) == 0;
}

void Agent::stop() {
  stop_.store(true, std::memory_order_relaxed);
  if (thread_.joinable()) thread_.join();
}

Agent::Peer* Agent::peer(uint16_t id) {
  for (auto& p : peers_)
    if (p->addr.id == id) return p.get();
  return nullptr;
}

void Agent::on_record(uint16_t from, const wire::Record& r) {
  counters_.inc(AgentCounter::kRecordsReceived);
  Peer* const p = peer(from);
  if (p == nullptr) return;
  if (r.type == kRecordNodeInfo) {
    std::memcpy(macs_[from].data(), r.body.data(), 6);
    p->caps = r.body[6];
    p->caps_session = p->ch->session();
    dirty_ = true;
    return;
  }
  if (r.type == kRecordSynced) {
    // Lost imports: this peer's flows are not all here (join_timeout decides).
    if (p->import_lost) {
      p->import_lost = false;
      counters_.inc(AgentCounter::kSyncedIncomplete);
      return;
    }
    p->synced_inc = p->ch->peer_incarnation();
    p->synced_basis = load_be<uint64_t>(r.body.data());
    counters_.inc(AgentCounter::kSyncedReceived);
    return;
  }
  FlowSync s;
  // A peer speaks only for the flows it processes.
  if (decode_flow_sync(r.type, r.body.data(), r.body.size(), &s) != FlowSyncError::kOk ||
      s.processor != from) {
    counters_.inc(AgentCounter::kRecordsBad);
    return;
  }
  s.peer = from;  // a pull is answered to its sender
  // To the worker whose flow it is (the one its packets are steered to).
  const size_t li = links_.size() > 1 ? record_slot(s, cfg_.worker_layout) % links_.size() : 0;
  if (links_.empty() || links_[li]->to_worker().push(&s, 1) != 1) {
    counters_.inc(AgentCounter::kImportRingFull);
    p->import_lost = true;
    p->synced_inc = 0;  // a synced record counted before no longer holds
  }
}

void Agent::on_events(std::span<const MemberEvent> events) {
  for (const MemberEvent& e : events) {
    switch (e.kind) {
      case MemberEventKind::kStatus:
        if (e.from != PeerStatus::kDead && e.to == PeerStatus::kDead) {
          down_.push_back(e.node);
          // (Not when it restarted: its flows are gone for sure.)
          if (e.incarnation == membership_.incarnation(e.node))
            died_at_[e.node] = std::max<uint64_t>(now_, 1);
        }
        break;
      case MemberEventKind::kRestarted:
        restarted_nodes_.push_back(e.node);
        died_at_[e.node] = 0;  // its flows are gone for sure
        restarted_ = true;     // a new ring generation even if the set looks the same (rise: 1)
        break;
      case MemberEventKind::kEpoch:
        live_.store(e.live, std::memory_order_relaxed);
        epoch_.store(e.epoch, std::memory_order_relaxed);
        break;
    }
    dirty_ = true;
  }
  refresh_ring();
}

void Agent::refresh_ring() {
  const NodeSet basis = membership_.reachable_set();
  if (basis == ring_basis_ && !restarted_) return;
  restarted_ = false;
  ring_basis_ = basis;
  ring_.update(basis, ++ring_gen_);
  // A joining node's misses get no traffic to answer (it is not ready),
  // and its own boot-time tables (itself alone, then each peer as it was
  // heard) name no one who had the flows: join() sets the right one.
  if (!membership_.self_ready()) ring_.drop_previous();
  resync_ = true;
  dirty_ = true;
}

NodeSet Agent::suspects(uint64_t now) const {
  NodeSet s = 0;
  for (uint16_t n = 1; n <= kMaxNodes; ++n)
    if (died_at_[n] != 0 && !contains(ring_basis_, n) && now - died_at_[n] < cfg_.dead_after_ns)
      s |= node_bit(n);
  return s;
}

void Agent::join(uint64_t now) {
  if (membership_.self_ready()) return;
  if (join_start_ns_ == 0) join_start_ns_ = now;
  const uint64_t waited = now - join_start_ns_;
  // First listen long enough to hear every peer that is up.
  if (waited < listen_ns_) return;
  bool all = true;
  for (const auto& p : peers_) {
    const uint16_t n = p->addr.id;
    const PeerStatus st = membership_.status(n);
    const uint64_t heard = membership_.last_heard_ns(n);
    // Still rising (heard, not yet `rise` heartbeats): wait to see it up.
    const bool rising = st == PeerStatus::kDead && heard != 0 && now - heard < cfg_.dead_after_ns;
    const bool synced =
        p->synced_inc == membership_.incarnation(n) && p->synced_basis == ring_basis_;
    if (rising || (st == PeerStatus::kUp && !synced)) {
      all = false;
      break;
    }
  }
  if (!all) {
    if (waited < cfg_.join_timeout_ns) return;
    counters_.inc(AgentCounter::kJoinTimeouts);
  }
  on_events(membership_.set_self_ready(true));
  ready_.store(true, std::memory_order_relaxed);
  // Misses now consult, after the holders, the table the ready nodes had
  // before this one joined: the copies that no one sent here (a flow whose
  // processor died and that has not sent since) are there.
  ring_.set_previous(ring_basis_ & ~node_bit(cfg_.self));
  dirty_ = true;
}

void Agent::send_synced(uint64_t now) {
  // Every worker pushed the current generation's resync in full, and every
  // record of it has left this agent (ahead, on each channel).
  if (synced_gen_ != ring_gen_ && pending_.empty()) {
    bool done = true;
    for (uint32_t li = 0; li < links_.size(); ++li)
      done &=
          links_[li]->synced_gen() == ring_gen_ && commits_[li].taken >= links_[li]->synced_count();
    if (done) {
      synced_gen_ = ring_gen_;
      for (auto& p : peers_)
        p->synced_owed = contains(ring_basis_, p->addr.id);
    }
  }
  // Owed for an older generation: the current one's resync is under way,
  // and its own synced record follows it.
  if (synced_gen_ != ring_gen_) return;
  uint8_t body[kSyncedSize];
  store_be<uint64_t>(body, ring_basis_);
  for (auto& p : peers_) {
    // A node that does not know the record (an older version, in a rolling
    // upgrade) would drop the whole datagram: it waits for join_timeout.
    if (!p->synced_owed || p->caps_session != p->ch->session() || (p->caps & kNodeCapSynced) == 0)
      continue;
    if (p->ch->push(kRecordSynced, body, now).status == wire::PushStatus::kOk) {
      p->synced_owed = false;
      counters_.inc(AgentCounter::kSyncedSent);
    }
  }
}

void Agent::publish() {
  auto v = std::make_shared<ClusterView>();
  v->live = ring_basis_;
  v->joining = ring_basis_ & ~membership_.live_set();
  v->gen = ring_gen_;
  v->suspect = suspects(now_);
  published_suspect_ = v->suspect;
  for (uint32_t n = 1; n <= kMaxNodes; ++n)
    std::memcpy(v->mac[n], macs_[n].data(), 6);
  auto copy = [](const SlotTable& t, uint8_t(&out)[kSlots][kViewHolders]) {
    for (uint32_t s = 0; s < kSlots; ++s) {
      const auto h = t.holders(s);
      for (size_t i = 0; i < h.size() && i < kViewHolders; ++i)
        out[s][i] = static_cast<uint8_t>(h[i]);
    }
  };
  copy(ring_.current(), v->holders);
  if (const SlotTable* prev = ring_.previous()) copy(*prev, v->prev_holders);
  ViewChange c;
  c.view = std::move(v);
  c.down.swap(down_);
  c.restarted.swap(restarted_nodes_);
  c.rescan = rescan_;
  rescan_ = false;
  c.resync = resync_;
  for (FlowLink* l : links_)
    l->post(c);
  if (sink_) sink_(c);
  resync_ = false;
  dirty_ = false;
  counters_.inc(AgentCounter::kViewsPublished);
}

uint64_t Agent::send_record(Peer* p, const FlowSync& s, uint64_t now) {
  uint8_t bytes[kFlowMaxSize];
  encode_flow_sync(s, bytes);
  const wire::PushResult r =
      p->ch->push(record_type(s.op), std::span<const uint8_t>(bytes, record_size(s.op)), now);
  if (r.status != wire::PushStatus::kOk) {
    counters_.inc(AgentCounter::kRecordsBackpressure);
    return 0;
  }
  counters_.inc(AgentCounter::kRecordsSent);
  return r.seq;
}

void Agent::note_sent(uint32_t link, uint64_t rec, const Peer& p, uint64_t seq) {
  if (!links_[link]->output_commit()) return;
  std::deque<Outstanding>& q = commits_[link].sent;
  const Outstanding o{rec, seq, p.ch->session(), p.addr.id};
  // In record order: a record that waited for a full window goes in
  // behind later ones sent to other holders meanwhile.
  if (q.empty() || q.back().rec <= rec) {
    q.push_back(o);
  } else {
    q.insert(std::upper_bound(q.begin(), q.end(), rec,
                              [](uint64_t r, const Outstanding& x) { return r < x.rec; }),
             o);
  }
}

void Agent::update_commits() {
  const NodeSet live = ring_basis_;
  for (uint32_t li = 0; li < links_.size(); ++li) {
    if (!links_[li]->output_commit()) continue;
    LinkCommit& lc = commits_[li];
    // Acknowledged, or its holder died or restarted (the new epoch's
    // resync sends the flow to whoever holds it now).
    while (!lc.sent.empty()) {
      const Outstanding& o = lc.sent.front();
      const Peer* p = peer(o.peer);
      if (p != nullptr && (live & node_bit(o.peer)) != 0 && p->ch->session() == o.session &&
          p->ch->acked_through() < o.seq)
        break;
      lc.sent.pop_front();
    }
    uint64_t c = lc.taken;
    if (!lc.sent.empty()) c = std::min(c, lc.sent.front().rec);
    for (const Pending& w : pending_) {
      if (w.link == li) {
        c = std::min(c, w.rec);
        break;
      }
    }
    links_[li]->set_committed(c);
  }
}

void Agent::route_exports(uint64_t now) {
  // First what a full window refused before, in order; while anything still
  // waits, the workers' records stay in their rings (and, behind them, in
  // the stages' queues): backpressure, never a lost record.
  // A holder that died meanwhile is skipped: its window would never open
  // (no acks) and hold back every peer's records; the new epoch's resync
  // sends those flows to their new holders.
  const NodeSet live = ring_basis_;
  const NodeSet ready = membership_.live_set();
  size_t kept = 0;
  for (const Pending& w : pending_) {
    if ((live & node_bit(w.peer)) == 0) {
      counters_.inc(AgentCounter::kRecordsDeadHolder);
      continue;
    }
    Peer* p = peer(w.peer);
    if (p == nullptr) continue;
    if (const uint64_t seq = send_record(p, w.s, now); seq != 0) {
      note_sent(w.link, w.rec, *p, seq);
    } else {
      pending_[kept++] = w;
    }
  }
  pending_.resize(kept);
  if (!pending_.empty()) return;
  FlowSync buf[64];
  for (uint32_t li = 0; li < links_.size(); ++li) {
    FlowLink* l = links_[li];
    for (int round = 0; round < 64 && pending_.empty(); ++round) {
      const uint32_t n = l->to_agent().pop(buf, 64);
      for (uint32_t i = 0; i < n; ++i) {
        const FlowSync& s = buf[i];
        const uint64_t rec = commits_[li].taken++;
        auto send_to = [&](uint16_t h) {
          if (const uint64_t seq = send_record(peer(h), s, now); seq != 0) {
            note_sent(li, rec, *peer(h), seq);
          } else {
            pending_.push_back(Pending{s, h, li, rec});
          }
        };
        if (is_pull_op(s.op)) {  // to one node (a dead one: the asker times out)
          if ((live & node_bit(s.peer)) == 0 || peer(s.peer) == nullptr) {
            counters_.inc(AgentCounter::kRecordsNoHolder);
          } else {
            send_to(s.peer);
          }
          continue;
        }
        // The first `replicas` holders of its slot that are not this node.
        const uint32_t slot = flow_slot(s, cfg_.slot_key);
        uint32_t sent = 0;
        NodeSet to = 0;
        for (NodeId h : ring_.current().holders(slot)) {
          if (sent == cfg_.replicas) break;
          if (h == cfg_.self || peer(h) == nullptr) continue;
          send_to(h);
          to |= node_bit(h);
          ++sent;
        }
        if (sent == 0) counters_.inc(AgentCounter::kRecordsNoHolder);
        // A holder still joining: the misses for its slot go to the slot's
        // previous first ready holder meanwhile (GatewayStage::slot_holder),
        // which must not fall behind.
        if ((to & ~ready) != 0 && ring_.previous() != nullptr) {
          for (NodeId h : ring_.previous()->holders(slot)) {
            if (h == cfg_.self || !contains(ready, h)) continue;
            if (!contains(to, h) && peer(h) != nullptr) {
              send_to(h);
              counters_.inc(AgentCounter::kRecordsToPrevious);
            }
            break;
          }
        }
      }
      if (n < 64) break;
    }
  }
}

void Agent::receive(uint64_t now) {
  uint8_t buf[2048];
  for (;;) {
    const ssize_t n = ::recv(fd_, buf, sizeof buf, MSG_DONTWAIT);
    if (n < 0) return;  // EAGAIN (or an error the next round sees again)
    counters_.inc(AgentCounter::kDatagramsIn);
    wire::Datagram d;
    if (codec_.open(buf, static_cast<size_t>(n), &d) != wire::WireDrop::kOk) continue;
    Peer* p = peer(d.header.sender);
    if (p == nullptr) {
      counters_.inc(AgentCounter::kUnknownSender);
      continue;
    }
    p->ch->receive(d, now);
  }
}

void Agent::tick(uint64_t now) {
  now_ = now;
  receive(now);
  send_heartbeats(now);
  on_events(membership_.tick(now));
  // Our data-plane MAC, once per session with each peer (a restarted peer
  // starts a new one).
  for (auto& p : peers_) {
    if (p->ch->peer_incarnation() != 0 && p->info_session != p->ch->session()) {
      uint8_t info[kNodeInfoSize] = {};
      std::memcpy(info, cfg_.data_mac, 6);
      info[6] = kNodeCapSynced;
      if (p->ch->push(kRecordNodeInfo, info, now).status == wire::PushStatus::kOk)
        p->info_session = p->ch->session();
    }
  }
  join(now);
  if (published_suspect_ != 0) {
    const NodeSet s = suspects(now);
    // A death now believed: copies that waited for it may be taken over.
    if ((published_suspect_ & ~s & ~ring_basis_) != 0) rescan_ = true;
    if (s != published_suspect_) dirty_ = true;
  }
  route_exports(now);
  send_synced(now);
  for (auto& p : peers_) {
    p->ch->flush(now);
    if (p->heard(now, silent_after_ns_)) p->ch->poll(now);  // (see silent_after_ns)
  }
  // A view first: when a holder died, the resync it carries reaches the
  // worker no later than the commit that gives up on that holder.
  if (dirty_) publish();
  update_commits();
}

void Agent::send_heartbeats(uint64_t now) {
  wire::Heartbeat hb;
  hb.members = membership_.live_set();
  hb.state = membership_.self_ready() ? wire::kStateReady : 0;
  hb.interval_us = static_cast<uint32_t>(cfg_.heartbeat_interval_ns / 1000);
  next_heartbeat_ = UINT64_MAX;
  for (auto& p : peers_) {
    if (now >= p->next_hb_ns) {
      const bool live = p->heard(now, silent_after_ns_);
      p->ch->set_epoch(membership_.epoch());
      p->ch->send_heartbeat(hb, now);
      if (!live) counters_.inc(AgentCounter::kHeartbeatProbes);
      p->next_hb_ns = now + (live ? cfg_.heartbeat_interval_ns : probe_ns_);
    }
    next_heartbeat_ = std::min(next_heartbeat_, p->next_hb_ns);
  }
}

void Agent::loop() {
  while (!stop_.load(std::memory_order_relaxed)) {
    const uint64_t now = mono_ns();
    tick(now);
    // Sleep until a datagram, the next heartbeat or retransmission, or 1 ms
    // (the workers' checkpoints wait in their rings meanwhile).
    uint64_t until = std::min(next_heartbeat_, now + 1'000'000);
    until = std::min(until, membership_.next_expiry_ns());
    for (auto& p : peers_)
      if (p->heard(now, silent_after_ns_)) until = std::min(until, p->ch->next_deadline());
    const uint64_t wait = until > now ? until - now : 0;
    // Output commit: the socket (acks let held packets go) and the workers'
    // exports that packets wait for, taken at once, not at the next 1 ms
    // round. Otherwise the rounds alone: waking for each peer's datagram
    // tripled the wake-ups of this real-time thread, each one taking a
    // core from a worker (async copies and acks can wait for the round).
    pollfd pfd[1 + kMaxWakeLinks];
    nfds_t nfd = 0;
    if (wake_on_datagrams_) pfd[nfd++] = pollfd{fd_, POLLIN, 0};
    const nfds_t first_link = nfd;
    for (FlowLink* l : links_)
      if (l->agent_wake_fd() >= 0 && nfd < std::size(pfd))
        pfd[nfd++] = pollfd{l->agent_wake_fd(), POLLIN, 0};
    bool ready = false;  // an export that packets wait for came before the flag was seen
    for (size_t li = 0; li < links_.size(); ++li) {
      FlowLink* l = links_[li];
      if (!l->output_commit()) continue;
      l->agent_sleeps_.store(true, std::memory_order_seq_cst);
      const uint64_t e = l->exports_.load(std::memory_order_seq_cst);
      ready |= e != commits_[li].exports_seen;
      commits_[li].exports_seen = e;
    }
    const uint64_t nap = ready ? 0 : wait;
    const timespec ts{static_cast<time_t>(nap / 1'000'000'000),
                      static_cast<long>(nap % 1'000'000'000)};
    if (::ppoll(pfd, nfd, &ts, nullptr) > 0)
      for (nfds_t i = first_link; i < nfd; ++i)
        if (pfd[i].revents & POLLIN) clear_eventfd(pfd[i].fd);
    for (FlowLink* l : links_)
      l->agent_sleeps_.store(false, std::memory_order_seq_cst);
  }
}

void Agent::export_counters(const CounterFn& fn) const {
  for (size_t i = 0; i < counters_.size(); ++i)
    fn(kAgentCounterNames[i], counters_.get(i));
  codec_.export_counters(fn);
  const auto& mc = membership_.counters();
  for (size_t i = 0; i < mc.size(); ++i)
    fn(kMembershipCounterNames[i], mc.get(i));
  for (const auto& p : peers_) {
    const std::string pre = "peer" + std::to_string(p->addr.id) + "_";
    p->ch->export_counters([&](std::string_view n, uint64_t v) { fn(pre + std::string(n), v); });
  }
  for (size_t i = 0; i < links_.size(); ++i)
    fn("import_drops", links_[i]->import_drops());
}

}  // namespace tripod::cluster
