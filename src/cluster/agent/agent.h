// The cluster agent: one thread per node that speaks to the peers over UDP on
// the control network. It sends and hears heartbeats (membership), keeps the
// slot ring of the live members, carries flow records between the workers'
// gateway stages and the flows' holders (wire channels), and tells the
// workers what they need of all this (ClusterView).
//
//   worker --export_sync()--> FlowLink.to_agent --> agent --> holders' channels
//   peers' channels --> agent --> FlowLink.to_worker --import_sync()--> worker
//
// The worker side of the link (FlowLink::worker_poll) runs on the worker
// thread between bursts; the agent never touches a gateway stage itself.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "cluster/membership/membership.h"
#include "cluster/membership/ring.h"
#include "cluster/wire/channel.h"
#include "common/counters.h"
#include "common/spsc_ring.h"
#include "nf/gateway/flow_sync.h"
#include "nf/gateway/gateway_stage.h"
#include "pipeline/output_commit.h"

namespace tripod::cluster {

// Node information, sent once per channel session (record kRecordNodeInfo):
// the data-plane MAC that redirected packets are sent to.
inline constexpr uint8_t kRecordNodeInfo = 16;
inline constexpr uint16_t kNodeInfoSize = 8;        // MAC (6), capabilities (1), zero (1)
inline constexpr uint8_t kNodeCapSynced = 1u << 0;  // knows kRecordSynced
// Synced (record kRecordSynced): every flow this node processes has gone to
// its holders among the nodes named (NodeSet, 8 bytes, network order), in
// full, ahead of this record on the same channel. A joining node waits for
// one from each ready peer before it says it is ready.
inline constexpr uint8_t kRecordSynced = 17;
inline constexpr uint16_t kSyncedSize = 8;

// What the agent tells the workers (FlowLink::post(); the sink gets it too,
// for the logs): a new view, the peers that went down since the last one
// (their pulls end; their copies here take over when a packet comes, unless
// they were only thought dead and are back), those that restarted (their
// flows' copies lose their processor), and whether the holders changed
// (every flow goes out again in full).
struct ViewChange {
  std::shared_ptr<const ClusterView> view;
  std::vector<uint16_t> down;       // died (or, falsely declared dead, will be back)
  std::vector<uint16_t> restarted;  // back with a new incarnation: its flows are gone
  bool resync = false;
  bool rescan = false;  // a suspect's death is believed: GatewayStage::take_orphans()
};
using ViewSink = std::function<void(const ViewChange&)>;

// The rings between one worker and the agent. Records are plain data.
//
// Output commit (`sync` VIPs, pipeline/output_commit.h): the worker numbers
// the records it pushes and groups them into batches (a batch closes when
// an export has handed out everything queued); the agent publishes how many
// records, in push order, every holder has acknowledged (committed()), and
// the worker turns that into its gateway's CommitPoint. Two eventfds wake
// each side: the worker's export that packets wait for, the agent's news
// of acknowledgements.
class FlowLink {
 public:
  explicit FlowLink(uint32_t capacity = 1u << 16, uint64_t checkpoint_ns = 1'000'000,
                    bool output_commit = false);
  ~FlowLink();
  FlowLink(const FlowLink&) = delete;
  FlowLink& operator=(const FlowLink&) = delete;

  // Worker thread, between bursts: takes a new view if one was posted,
  // applies what peers sent, and once per checkpoint interval hands the
  // stage's changed flows to the agent (no more than the ring has room
  // for: nothing is lost to a full ring, it waits in the stage's queue).
  void worker_poll(GatewayStage& gw, uint64_t now_ns);
  // Agent thread: a new view for the worker, taken at its next poll. Never
  // waits for the worker (heartbeats must go on); views posted meanwhile
  // merge (the latest view, every down peer, any resync).
  void post(const ViewChange& change);
  // The view the worker runs with (worker thread, or after it stopped).
  const ClusterView& view() const { return view_; }

  SpscRing<FlowSync>& to_agent() { return to_agent_; }
  SpscRing<FlowSync>& to_worker() { return to_worker_; }

  bool output_commit() const { return agent_fd_ >= 0; }
  // Readable when the agent has news of acknowledgements (-1: no output
  // commit); the worker sleeps on it with held packets. Port::wait drains it.
  int worker_wake_fd() const { return worker_fd_; }
  // Readable when the worker exported records that packets wait for.
  int agent_wake_fd() const { return agent_fd_; }
  // Agent thread: the first `n` records taken from to_agent() are held by
  // every holder they went to (or their holder is gone).
  void set_committed(uint64_t n);
  uint64_t committed() const { return committed_.load(std::memory_order_acquire); }
  // Worker thread: records pushed so far, and the commit point posted to the
  // gateway at the last poll.
  uint64_t pushed() const { return pushed_; }
  const CommitPoint& commit_point() const { return point_; }
  uint64_t import_drops() const { return import_drops_.load(std::memory_order_relaxed); }
  // The last holders' generation (ClusterView::gen) whose resync this
  // worker has pushed in full, and how many records it had pushed then
  // (the agent tells the holders once it has taken that many).
  uint32_t synced_gen() const { return synced_gen_.load(std::memory_order_acquire); }
  uint64_t synced_count() const { return synced_count_.load(std::memory_order_relaxed); }
  void count_import_drop() { import_drops_.fetch_add(1, std::memory_order_relaxed); }

 private:
  void export_records(GatewayStage& gw, uint64_t now_ns);

  SpscRing<FlowSync> to_agent_;
  SpscRing<FlowSync> to_worker_;
  uint64_t checkpoint_ns_;
  uint64_t last_export_ns_ = 0;
  uint64_t last_due_ns_ = 0;  // the last export that packets waited for
  // Output commit. Batches (point_.committed, point_.open) are closed and
  // wait for their acks; batch_end_[b % kBatches] is pushed_ when b closed.
  static constexpr uint32_t kBatches = 1024;
  int worker_fd_ = -1;
  int agent_fd_ = -1;
  uint64_t pushed_ = 0;
  bool batch_used_ = false;  // records went into the open batch
  CommitPoint point_;
  std::unique_ptr<uint64_t[]> batch_end_;
  std::atomic<uint64_t> committed_{0};
  // Waking the agent: exports packets wait for, and whether it sleeps.
  std::atomic<uint64_t> exports_{0};
  std::atomic<bool> agent_sleeps_{false};
  friend class Agent;
  std::atomic<uint64_t> import_drops_{0};
  // Resync done (worker writes, agent reads): count first, then gen (release).
  bool resync_owed_ = false;
  std::atomic<uint64_t> synced_count_{0};
  std::atomic<uint32_t> synced_gen_{0};
  // The mailbox (post()); the lock is taken once per view, never per packet.
  std::atomic<bool> has_view_{false};
  std::mutex mu_;
  std::shared_ptr<const ClusterView> next_view_;
  std::vector<uint16_t> next_down_;
  std::vector<uint16_t> next_restarted_;
  bool next_resync_ = false;
  bool next_rescan_ = false;
  ClusterView view_;  // the worker's copy, which the stage reads
};

struct AgentPeer {
  uint16_t id = 0;
  sockaddr_storage addr{};
  socklen_t addr_len = 0;
};

struct AgentConfig {
  uint16_t self = 0;
  uint32_t cluster_id = 0;
  std::array<uint8_t, 32> key{};
  sockaddr_storage bind{};
  socklen_t bind_len = 0;
  std::vector<AgentPeer> peers;  // every node but this one
  uint64_t heartbeat_interval_ns = 10'000'000;
  uint64_t dead_after_ns = 50'000'000;
  // A peer silent for silent_after (at least 1 s and 4 x dead_after) gets
  // a heartbeat every probe_interval (at least heartbeat_interval), and no
  // retransmissions, until it speaks again (answered at once). A dead
  // peer's address stops resolving, and the kernel holds what is sent to it
  // in the neighbour queue, charged to our one socket's send buffer: at full
  // rate that filled the buffer and the heartbeats to the live peers failed
  // (a false death, seconds after the real one). A short silence keeps the
  // full rate, so a one-way loss does not become a two-way one.
  uint64_t probe_interval_ns = 100'000'000;
  uint64_t silent_after_ns = 1'000'000'000;
  uint32_t rise = 3;
  uint32_t replicas = 1;
  // Joining: the node holds copies from the start, but says it is ready
  // (and the router should send it traffic) only once every ready peer has
  // sent it its flows (kRecordSynced), or after join_timeout. A cluster's
  // first node waits only to hear whether anyone is up (dead_after plus
  // rise + 1 heartbeats).
  uint64_t join_timeout_ns = 3'000'000'000;
  // How long a peer's data waits for our ack to ride on a datagram of ours.
  // The daemon sets one checkpoint interval (at most 1 ms): peers send every
  // checkpoint, so acks nearly always ride along, where at 200 us a third of
  // all datagrams were acks alone (the agent's cost is per datagram). With
  // the socket read in 1 ms rounds (async: Agent::loop) an ack still gets
  // back well under the retransmission timeout (5 ms); the channel acks at
  // once after 8 datagrams, a duplicate or a gap. Output commit: 0.
  uint64_t ack_delay_ns = 200'000;
  SipKey slot_key;  // the gateways' (GatewayClusterConfig::slot_key)
  // How the node's workers split its flows (GatewayStage::slot_layout()):
  // a peer's record goes to link record_slot() % links, the worker whose
  // flow it is. Unused with one link.
  SlotLayout worker_layout;
  SipKey ring_key;
  uint8_t data_mac[6] = {};  // this node's data-plane interface
};

#define TRIPOD_AGENT_COUNTERS(X)                                                           \
  X(kRecordsSent, "records_sent")                                                          \
  X(kRecordsNoHolder, "records_no_holder")        /* no live holder but this node */       \
  X(kRecordsBackpressure, "records_backpressure") /* a channel's window is full */         \
  X(kRecordsDeadHolder, "records_dead_holder")    /* waited for a holder that died */      \
  X(kRecordsReceived, "records_received")                                                  \
  X(kRecordsBad, "records_bad") /* failed flow_sync decoding */                            \
  X(kImportRingFull, "import_ring_full")                                                   \
  X(kDatagramsIn, "datagrams_in")                                                          \
  X(kDatagramsOut, "datagrams_out")                                                        \
  X(kBytesOut, "bytes_out") /* UDP payload sent: heartbeats, records, acks */              \
  X(kSendErrors, "send_errors")                                                            \
  X(kHeartbeatProbes, "heartbeat_probes") /* to silent peers: slow rate */                 \
  X(kUnknownSender, "unknown_sender")                                                      \
  X(kViewsPublished, "views_published")                                                    \
  X(kSyncedSent, "synced_sent")                /* told a holder it has all our flows */    \
  X(kSyncedReceived, "synced_received")        /* a peer's flows are all here */           \
  X(kSyncedIncomplete, "synced_incomplete")    /* a peer's, after its records were lost */ \
  X(kJoinTimeouts, "join_timeouts")            /* ready without every peer's flows */      \
  X(kRecordsToPrevious, "records_to_previous") /* also to a joining holder's predecessor */

TRIPOD_DECLARE_REASONS(AgentCounter, TRIPOD_AGENT_COUNTERS)

class Agent {
 public:
  // Binds the socket; throws std::runtime_error (bind, config) with a message.
  Agent(const AgentConfig& cfg, std::vector<FlowLink*> links, ViewSink sink);
  ~Agent();
  Agent(const Agent&) = delete;
  Agent& operator=(const Agent&) = delete;

  void start();
  void stop();  // idempotent; joins

  // Any thread: a consistent-enough snapshot for status.
  NodeSet live_set() const { return live_.load(std::memory_order_relaxed); }
  // This node has its copies (or waited join_timeout): it may take traffic.
  bool ready() const { return ready_.load(std::memory_order_relaxed); }
  uint32_t epoch() const { return epoch_.load(std::memory_order_relaxed); }
  // Whether the thread got real-time priority (needs CAP_SYS_NICE).
  bool realtime() const { return realtime_; }
  using CounterFn = std::function<void(std::string_view, uint64_t)>;
  void export_counters(const CounterFn& fn) const;

 private:
  class PeerSink;
  struct Peer;

  void loop();
  void on_record(uint16_t from, const wire::Record& r);
  void tick(uint64_t now);
  void receive(uint64_t now);
  void send_heartbeats(uint64_t now);
  void route_exports(uint64_t now);
  void on_events(std::span<const MemberEvent> events);
  // The holders are the nodes that run (ready or joining): a new set is a
  // new ring generation, and every flow goes to its holders again.
  void refresh_ring();
  void join(uint64_t now);
  // Peers declared dead less than dead_after ago (ClusterView::suspect).
  NodeSet suspects(uint64_t now) const;
  void send_synced(uint64_t now);
  void publish();
  Peer* peer(uint16_t id);
  // The datagram seq that carries it, or 0 (the window is full).
  uint64_t send_record(Peer* p, const FlowSync& s, uint64_t now);

  AgentConfig cfg_;
  std::vector<FlowLink*> links_;
  ViewSink sink_;
  int fd_ = -1;
  uint64_t incarnation_;
  wire::RecordTable records_;
  wire::Codec codec_;
  Membership membership_;
  RingView ring_;
  std::vector<std::unique_ptr<Peer>> peers_;
  std::array<std::array<uint8_t, 6>, kMaxClusterNodes + 1> macs_{};
  std::vector<uint16_t> down_;  // since the last publish
  std::vector<uint16_t> restarted_nodes_;
  std::array<uint64_t, kMaxNodes + 1> died_at_{};  // by node: when declared dead (0: not)
  NodeSet published_suspect_ = 0;
  // Records a holder's channel refused (its window full), retried first;
  // while any wait, nothing more is taken from the workers.
  struct Pending {
    FlowSync s;
    uint16_t peer;
    uint32_t link;  // whose record (links_ index), and its number there
    uint64_t rec;
  };
  std::vector<Pending> pending_;
  // Output commit: per link, the records taken and, in record order, the
  // sends not yet acknowledged (the channel's seq of the datagram).
  struct Outstanding {
    uint64_t rec;
    uint64_t seq;
    uint32_t session;
    uint16_t peer;
  };
  struct LinkCommit {
    uint64_t taken = 0;
    uint64_t exports_seen = 0;  // FlowLink::exports_ when the agent last looked
    std::deque<Outstanding> sent;
  };
  std::vector<LinkCommit> commits_;
  void note_sent(uint32_t link, uint64_t rec, const Peer& p, uint64_t seq);
  void update_commits();
  bool dirty_ = true;  // a view to publish
  // Output commit on some link: a datagram (an ack) wakes the thread at
  // once; otherwise it runs in rounds (loop()).
  bool wake_on_datagrams_ = false;
  bool resync_ = false;
  bool restarted_ = false;       // a peer restarted since the last refresh_ring()
  bool rescan_ = false;          // ViewChange::rescan, for the next publish
  uint64_t next_heartbeat_ = 0;  // the earliest of the peers' next_hb_ns
  uint64_t silent_after_ns_;     // effective (AgentConfig::silent_after_ns)
  uint64_t probe_ns_;            // effective (AgentConfig::probe_interval_ns)
  uint64_t now_ = 0;             // of the current tick (heartbeat callbacks)
  NodeSet ring_basis_ = 0;       // the nodes the ring is built over
  uint32_t ring_gen_ = 0;        // ClusterView::gen
  uint32_t synced_gen_ = 0;      // the last generation whose synced records went out
  uint64_t join_start_ns_ = 0;   // first tick (joining)
  uint64_t listen_ns_;           // how long a joining node listens for peers first
  std::atomic<bool> ready_{false};
  std::atomic<NodeSet> live_{0};
  std::atomic<uint32_t> epoch_{0};
  std::atomic<bool> stop_{false};
  bool realtime_ = false;
  std::thread thread_;
  CounterSet<AgentCounter, size_t(AgentCounter::kCount)> counters_;
};

}  // namespace tripod::cluster
