// The gateway stage: firewall + SYN proxy + L4 LB + FullNAT composed over one
// connection table per worker (src/nf/README.md "How they compose").
//
// - One ConnRecord per connection, by index in a fixed pool (free list, no
//   allocation after construction).
// - Keys are directional FlowKeys mapping to ConnLink{record, direction}. A
//   FullNAT connection (to a VIP) has two keys: original (client -> VIP) and
//   reply (DIP -> SNAT:port). A connection without NAT has one canonical key.
// - Each packet refreshes its own key and the record's deadline. When a key
//   expires, its callback re-arms it from the record's deadline if that is
//   still ahead, else frees the record (SNAT lease, LB reference) and erases
//   the partner key.
//
// Threading: one GatewayStage per worker; not thread-safe. SNAT ports come
// from partition 0 (single worker for now).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/counters.h"
#include "common/siphash.h"
#include "nf/firewall/conntrack.h"
#include "nf/gateway/flow_sync.h"
#include "nf/lb/lb.h"
#include "nf/nat/port_alloc.h"
#include "nf/synproxy/handshake.h"
#include "pipeline/burst.h"
#include "pipeline/output_commit.h"
#include "table/conn_table.h"
#include "table/internal/huge_alloc.h"

namespace tripod {

// ConnRecord::flags
inline constexpr uint8_t kRecLive = 1u << 0;
inline constexpr uint8_t kRecNat = 1u << 1;       // FullNAT: two directional keys
inline constexpr uint8_t kRecSynProxy = 1u << 2;  // sp is in use
inline constexpr uint8_t kRecEgress = 1u << 3;    // with kRecNat: egress SNAT (source only)
inline constexpr uint8_t kRecDsr = 1u << 4;       // DSR: one original key, MAC rewrite only
// Cluster: a copy held for the flow's processor (lb.spare), not processed
// here unless promoted; kRecForeign: lease.address indexes the cluster's
// SNAT address list (GatewayClusterConfig), not this node's pool.
inline constexpr uint8_t kRecStandby = 1u << 5;
inline constexpr uint8_t kRecForeign = 1u << 6;
// With kRecForeign: the address is this node's own (a flow it had before a
// restart, processed elsewhere since); the port is reserved in its pool.
inline constexpr uint8_t kRecReserved = 1u << 7;

// ConnRecord::seen (DSR).
inline constexpr uint8_t kSeenFin = 1u << 0;
inline constexpr uint8_t kSeenRst = 1u << 1;
// ConnRecord::seen, cluster: the holders have the full record; the record
// is in the export queue.
inline constexpr uint8_t kSyncSent = 1u << 2;
inline constexpr uint8_t kSyncQueued = 1u << 3;
// Output commit: queued, and packets wait for it (export_sync() takes it
// ahead of the queue).
inline constexpr uint8_t kSyncUrgent = 1u << 4;
// The record has an entry in the export queue (kSyncQueued: it needs
// export). Separate: an urgent export leaves the entry behind, and a change
// before the queue reaches it reuses it rather than adding another.
inline constexpr uint8_t kSyncInQueue = 1u << 5;
// A close under way (FIN_WAIT, CLOSE_WAIT, LAST_ACK) waits in the close
// queue: most connections are over (TIME_WAIT: a delete, or nothing if
// never sent) before it is due, and then it never travels.
inline constexpr uint8_t kSyncLazy = 1u << 6;
// Never exported: its VIP's replication is off (GatewayVipConfig::replicated).
inline constexpr uint8_t kSyncLocal = 1u << 7;

// Two cache lines, aligned: the per-packet path touches exactly two lines of
// state besides the table. The VIP is not stored: it is the VIP's key
// (lb.vip), and for egress the destination (dip_*).
struct alignas(64) ConnRecord {
  FwConnState fw;           // 48
  SynProxyState sp;         // 16; no SYN proxy: the client's SYN (client_syn.h)
  LbConn lb;                // 12
  SnatLease lease;          // 8
  uint8_t client_addr[16];  // original source (network order)
  uint8_t dip_addr[16];     // backend the LB chose; egress: the outside host
  uint16_t client_port;     // host order
  uint16_t dip_port;        // egress echo: the translated id
  uint8_t flags;            // kRec*
  Family family;
  uint8_t proto;
  uint8_t seen;       // kSeen*: what a DSR connection's client has sent (no FSM there)
  uint32_t deadline;  // tick: the connection's deadline, followed by both keys
};
static_assert(sizeof(ConnRecord) == 128);
static_assert(std::is_trivially_copyable_v<ConnRecord>);

inline constexpr uint8_t kLinkOriginal = 0;
inline constexpr uint8_t kLinkReply = 1;
inline constexpr uint8_t kLinkCanonical = 2;  // no NAT: the one canonical key

struct ConnLink {
  uint32_t record;
  uint8_t direction;  // kLink*
  uint8_t reserved[3];
};
static_assert(sizeof(ConnLink) == 8);

#define TRIPOD_GATEWAY_COUNTERS(X)                                                                 \
  X(kPackets, "packets")                                                                           \
  X(kHits, "hits")                                                                                 \
  X(kNotIp, "not_ip")                                                                              \
  X(kConnsCreated, "conns_created")                                                                \
  X(kConnsCreatedNat, "conns_created_nat")                                                         \
  X(kConnsFreed, "conns_freed")                                                                    \
  X(kConnsReused, "conns_reused") /* SYN on a finished LB connection: rescheduled */               \
  X(kKeysRearmed, "keys_rearmed")                                                                  \
  X(kUntracked, "untracked")                                                                       \
  X(kIcmpTranslated, "icmp_translated")                                                            \
  X(kMssClamped, "mss_clamped")                                                                    \
  X(kSynProxySynAck, "synproxy_synack_sent")                                                       \
  X(kSynProxyBackendSyn, "synproxy_backend_syn")                                                   \
  X(kSynProxyBackendSynAgain, "synproxy_backend_syn_again") /* client spoke, backend not open */   \
  X(kSynProxyAckRequested, "synproxy_client_ack_requested") /* backend turned our SYN away */      \
  X(kSynProxyBackendAck, "synproxy_backend_ack")                                                   \
  X(kSynProxyWindowUpdate, "synproxy_window_update")                                               \
  X(kConnsCreatedEgress, "conns_created_egress")                                                   \
  X(kConnsCreatedDsr, "conns_created_dsr")                                                         \
  X(kBackendKilledResets, "backend_killed_resets") /* connections reset both ways */               \
  X(kCreatedNoFrame, "created_no_frame")           /* a packet we made found no free frame */      \
  X(kDropFirewall, "drop_firewall")                /* reason in fw_* */                            \
  X(kDropNoBackend, "drop_no_backend")             /* VIP without a usable pool */                 \
  X(kDropBackendKilled, "drop_backend_killed")     /* killed DIP, not TCP (or a RST) */            \
  X(kDropUnknownBackend, "drop_unknown_backend")   /* recorded version gone */                     \
  X(kSnatRekeyed, "snat_rekeyed")        /* the backend held the 4-tuple: another port */          \
  X(kClientSynAgain, "client_syn_again") /* ... and the client's SYN sent from there */            \
  X(kDropBackendTupleBusy, "drop_backend_tuple_busy") /* its bare ACK to our SYN */                \
  X(kDropSnatExhausted, "drop_snat_exhausted")                                                     \
  X(kDropEgressUntranslatable,                                                                     \
    "drop_egress_untranslatable") /* outward, no ports/id, or a fragment */                        \
  X(kDropRecordPoolFull, "drop_record_pool_full")                                                  \
  X(kDropTableFull, "drop_table_full")                                                             \
  X(kDropKeyCollision, "drop_key_collision")     /* reply key already taken */                     \
  X(kDropNatUnsupported, "drop_nat_unsupported") /* fragments */                                   \
  X(kDropIcmpNoConn, "drop_icmp_no_conn")        /* ICMP error about no connection */              \
  X(kDropSynProxy, "drop_synproxy")              /* reason in synproxy_* */                        \
  /* cluster (flow_sync.h) */                                                                      \
  X(kSyncExported, "sync_exported")                                                                \
  X(kSyncLazyDue, "sync_lazy_due")     /* a close under way lasted 1 s: its state travels */       \
  X(kSyncLazyFull, "sync_lazy_full")   /* close queue full: the change travels at once */          \
  X(kSyncDelayed, "sync_delayed")      /* a change waits for its VIP's checkpoint interval */      \
  X(kSyncDelayFull, "sync_delay_full") /* delay queue full: the change travels at once */          \
  X(kSyncImported, "sync_imported")    /* standby records created */                               \
  X(kSyncUpdated, "sync_updated")      /* standby records updated */                               \
  X(kSyncDeleted, "sync_deleted")      /* standby records the processor closed */                  \
  X(kSyncPromoted, "sync_promoted")    /* standby taken over: processor gone */                    \
  X(kSyncTakeoverWait, "sync_takeover_wait")      /* dropped: its processor died only just now */  \
  X(kSyncOrphanTaken, "sync_orphan_taken")        /* no processor, a new first holder: resync */   \
  X(kSyncRedirected, "sync_redirected")           /* handed to the live processor */               \
  X(kSyncMissRedirected, "sync_miss_redirected")  /* no record: handed to a holder */              \
  X(kSyncHandedToHolder, "sync_handed_to_holder") /* an older copy: to the slot's holder */        \
  X(kSyncUpdateUnknown, "sync_update_unknown")    /* update or delete of no standby record */      \
  X(kSyncIgnoredLive, "sync_ignored_live")        /* about a flow processed here */                \
  X(kSyncSuperseded, "sync_superseded") /* a closed flow here, reopened on another node */         \
  X(kSyncStale, "sync_stale") /* update or delete from another processor than the copy's */        \
  X(kSyncUnknownVip, "sync_unknown_vip")                                                           \
  X(kSyncUnknownSnat, "sync_unknown_snat")                                                         \
  X(kSyncUnknownBackend, "sync_unknown_backend") /* DSR backend not in any version here */         \
  X(kSyncDeleteOverflow, "sync_delete_overflow") /* holders' copies expire on their own */         \
  X(kSyncQueueOverflow, "sync_queue_overflow")   /* export queue full: all flows resent */         \
  X(kSyncPullSent, "sync_pull_sent")             /* a miss asked the slot's holder */              \
  X(kSyncPullParked, "sync_pull_parked")         /* packets that waited for an answer */           \
  X(kSyncPullGranted, "sync_pull_granted")       /* flows taken over from a holder's copy */       \
  X(kSyncPullAnswered, "sync_pull_answered")     /* pulls this node answered */                    \
  X(kSyncPullGiven, "sync_pull_given")           /* ... with its copy: the asker has the flow */   \
  X(kSyncPullReferred, "sync_pull_referred")     /* packets sent to the flow's processor */        \
  X(kSyncPullNone, "sync_pull_none")             /* no one had the flow: the firewall decides */   \
  X(kSyncPullTimeout, "sync_pull_timeout")       /* no answer in time: handed over */              \
  X(kSyncPullBusy, "sync_pull_busy")             /* no room to ask or park: handed over */         \
  X(kSyncPullOverflow, "sync_pull_overflow")     /* dropped: a pull parks 64 already */            \
  X(kSyncPullLate, "sync_pull_late")             /* an answer after its pull ended: ignored */     \
  X(kSyncPullDeclined, "sync_pull_declined")     /* a late grant of a flow not here: given back */ \
  X(kSyncPullReturned, "sync_pull_returned") /* a grant given back: the copy has no processor */   \
  X(kDropSyncNoState, "drop_sync_no_state")  /* reply to a cluster SNAT address, no flow */

TRIPOD_DECLARE_REASONS(GatewayCounter, TRIPOD_GATEWAY_COUNTERS)

// How a VIP's packets reach the backend.
enum class VipMode : uint8_t {
  kFullNat,  // client -> VIP becomes SNAT:port -> DIP; replies come back through us
  kDsr,      // L2 direct server return: only the destination MAC changes (to the
             // backend's, Backend::mac); the backend owns the VIP and replies directly
};

// What a new connection's backend is hashed from.
enum class LbHash : uint8_t {
  kFlow,    // the whole 5-tuple: connections spread evenly
  kSource,  // the client's address: all its connections meet the same backend
            // (protocols with several connections per session, e.g. iperf3, FTP)
};

struct GatewayVipConfig {
  VipKey key;
  VipMode mode = VipMode::kFullNat;
  LbHash hash = LbHash::kFlow;
  PoolSpec pool;
  uint16_t mss_clamp = 0;  // 0: off; else SYN / SYN-ACK MSS lowered to this
  bool synproxy = false;
  SynProxyVip synproxy_options;
  // Cluster, `sync` replication (output commit): a flow's packets wait until
  // the holders have acknowledged its latest state (pipeline/output_commit.h).
  bool output_commit = false;
  // Cluster: its flows are checkpointed to their holders (replication `off`:
  // they stay on their node and break with it).
  bool replicated = true;
  // Cluster, async: a flow's changes travel at most this often, coalesced,
  // the first one this long after the flow opened (a shorter flow never
  // travels, nor survives its node). 0: every checkpoint.
  uint64_t checkpoint_ns = 0;
};

// Egress SNAT: connections that internal hosts open to the outside (not to a
// VIP) leave with one of the gateway's public addresses as their source.
struct EgressConfig {
  // Internal source prefixes, in the ACL's address syntax ("10.0.0.0/8",
  // "2001:db8::/32", "any"). Empty: egress SNAT off.
  std::vector<std::string> sources;
  SnatPoolConfig snat;  // the public addresses (either family or both)
};

// Distinct VIP checkpoint intervals a node supports (config.cc checks).
inline constexpr size_t kMaxCheckpointClasses = 4;

// Cluster replication (src/cluster/README.md). Off while node_id is 0.
struct GatewayClusterConfig {
  uint16_t node_id = 0;   // this node, 1..kMaxClusterNodes
  SipKey slot_key{7, 8};  // cluster-wide: a flow's slot (the same on every node)
  // Every node's FullNAT SNAT addresses, this node's included: the reply
  // key of a flow taken over from another node names one of them.
  std::vector<SnatAddress> snat_addresses;
  // Every node's egress SNAT addresses, this node's included (the same
  // port range as this node's egress pool).
  std::vector<SnatAddress> egress_addresses;
  uint32_t delete_queue = 4096;   // closed flows awaiting export
  uint32_t standby_grace_s = 10;  // a copy outlives its processor's deadline by this
  // A packet of a flow this node does not have (the router moved it here)
  // parks while the slot's holder is asked for the state (pull), at most
  // this long; then it is handed over. 0: handed over at once, no pull.
  uint32_t pull_timeout_ms = 0;
};

struct GatewayConfig {
  FirewallConfig firewall;
  std::vector<GatewayVipConfig> vips;
  // FullNAT's source addresses towards the backends. Both families may be
  // listed; each gets its own allocator (same port range and partitions).
  SnatPoolConfig snat;
  EgressConfig egress;
  uint32_t max_connections = 1 << 16;  // records; the table holds twice as many keys
  bool huge_pages = true;
  TrafficDir non_vip_dir = TrafficDir::kOut;  // ACL direction of traffic not to a VIP
  SipKey table_hash_key{1, 2};                // per-process secret of the table
  SipKey lb_hash_key{3, 4};                   // cluster-wide secret of Maglev's flow hash
  SipKey synproxy_master{5, 6};
  CookieConfig cookies;
  // Added to the bursts' (monotonic) time for SYN cookies. The daemon sets
  // wall clock minus monotonic, so that the nodes of a cluster, whose
  // monotonic clocks differ, mint and check cookies on one (NTP's) time.
  uint64_t cookie_clock_offset_ns = 0;
  GatewayClusterConfig cluster;
  // Workers that split this node's flows between them by slot (a flow is
  // worker slot % shards's; flow_sync.h SlotLayout). Above 1, FullNAT ports
  // are laid out by slot, as in a cluster, so a reply names its worker.
  uint32_t shards = 1;
};

class GatewayStage final : public Stage {
 public:
  using Table = ConnTable<FlowKey, ConnLink>;
  using Tick = Table::Tick;
  static constexpr uint64_t kTickNs = 100'000'000;  // 100 ms

  // Throws std::invalid_argument on a bad configuration.
  GatewayStage(const GatewayConfig& cfg, uint64_t now_ns);
  const char* name() const override { return "gateway"; }
  void process(Burst& burst) override;
  void export_counters(const CounterFn& fn) const override;

  // Expires connections up to `now_ns` (also done by process()).
  void advance_to(uint64_t now_ns);

  // ---- control plane: on the owner thread, between bursts (the daemon
  // posts them to its workers); throw std::invalid_argument on bad input,
  // leaving the stage as it was ----
  VipId add_vip(const GatewayVipConfig& v);
  // No new connections; existing ones drain on the version they hold.
  // Returns the VIP's id (its connections: lb().pools().vip_connections()).
  VipId remove_vip(const VipKey& key);
  // A new pool version, prepared then committed (two-phase): connections
  // keep the backend they started with.
  void update_pool(const VipKey& key, const PoolSpec& pool);
  // The same with the pool built elsewhere (build_pool() takes milliseconds
  // for the Maglev table: the daemon builds it on its control thread, once
  // for all workers). `spec` is what `built` was built from.
  void update_pool(const VipKey& key, const PoolSpec& spec, std::shared_ptr<const BuiltPool> built);
  // MSS clamp and SYN-proxy options (for new connections). The mode cannot
  // change in place (remove and add).
  void update_vip_options(const GatewayVipConfig& v);
  // Rules, timeouts, liberal mode, the direction of traffic not to a VIP:
  // for what comes next.
  void set_firewall(const FirewallConfig& cfg, TrafficDir non_vip_dir);
  const GatewayVipConfig* vip_config(VipId id) const {
    return id < vip_cfg_.size() && !vip_removed_[id] ? &vip_cfg_[id] : nullptr;
  }

  Lb& lb() { return lb_; }
  const Firewall& firewall() const { return fw_; }
  // The allocator of a family's FullNAT / egress addresses (nullptr: none).
  const SnatPortAllocator* snat(Family f = Family::kIpv4) const { return snat_[fam(f)].get(); }
  const SnatPortAllocator* egress_snat(Family f = Family::kIpv4) const {
    return egress_[fam(f)].get();
  }
  const Table& table() const { return table_; }
  const SynProxy& synproxy() const { return proxy_; }
  uint32_t live_connections() const { return live_; }
  uint64_t count(GatewayCounter c) const { return counters_.get(c); }
  VipId vip_id(const VipKey& k) const { return lb_.find_vip(k); }

  // ---- cluster (owner thread, between bursts) ----
  // What the data plane reads of the cluster; the caller keeps it alive and
  // updates it between bursts. nullptr (the default): every peer is
  // unknown, nothing is redirected, standby copies are promoted on use.
  void set_cluster_view(const ClusterView* v) { view_ = v; }
  // Up to `max` records for the holders: closed flows first, then flows
  // created or changed since the last call (full the first time).
  uint32_t export_sync(FlowSync* out, uint32_t max, uint64_t now_ns);
  // Applies a record from a flow's processor. Returns the counter it hit.
  GatewayCounter import_sync(const FlowSync& s, uint64_t now_ns);
  // The slot of a flow (either direction's packet names it: FullNAT ports
  // come from partition `slot`).
  uint32_t slot_of(const FlowKey& k) const { return flow_slot(k, cluster_.slot_key); }
  // The slot of packet i's flow from its bytes (after the parse stage), by
  // which a node's workers split the flows; kNoSlot: no flow (not IP).
  static constexpr uint32_t kNoSlot = UINT32_MAX;
  uint32_t packet_slot(const Burst& b, uint32_t i) const;
  static SlotLayout slot_layout(const GatewayConfig& cfg);
  uint32_t standby_connections() const { return standby_; }
  // A peer is gone (or thought so): its pulls end. Its copies here keep
  // naming it; while it is not live (and no longer a suspect), the first
  // packet of each promotes it.
  void peer_down(uint16_t node);
  // A peer is back with a new incarnation: its flows are gone, and its
  // copies here have no processor (whoever sees a packet first takes the
  // flow over). Not on a death: a node only thought dead (a stall) comes
  // back with its flows, and its copies must follow it again.
  void peer_restarted(uint16_t node);
  // The holders changed (a new epoch): every flow goes out in full again
  // (O(records)). A copy with no processor (it died) in a slot this node
  // no longer holds first is promoted here, so that it goes out to the new
  // holder too (a joining node would not get it otherwise).
  void resync();
  // The orphan takeover of resync() alone (once a suspect's death is
  // believed), O(records).
  void take_orphans();
  // Every record queued by the last resync() has been handed out by
  // export_sync() (the cluster agent then tells the new holders).
  bool resync_exported() const { return !resync_pending_ && dirty_head_ >= resync_end_; }
  // Output commit (GatewayVipConfig::output_commit): export_sync() fills
  // batch `open`; the caller (FlowLink) moves the point as batches close and
  // are acknowledged. A forwarded packet of such a flow is marked held
  // (Burst::held) with the batch its flow's latest change travels in.
  void set_commit_point(const CommitPoint& c) {
    if (c.open != commit_.open) export_due_ = false;
    commit_ = c;
  }
  const CommitPoint& commit_point() const { return commit_; }
  // Packets wait for the open batch: export now, not at the next checkpoint.
  bool export_due() const { return export_due_; }
  // Whether export_sync() has handed out every record that held packets
  // wait for (the open batch may close).
  // Pulling (GatewayClusterConfig::pull_timeout_ms): a packet that waits
  // for a flow's state leaves the burst as Verdict::kPark with its pull's
  // tag (Burst::hold_tag); the pipeline runs it through the stages again
  // once pull_ready(tag). pull_news() changes whenever a pull is answered,
  // times out or is given up. Pulls and their answers leave through
  // export_sync(), first; pull_pending(): some wait to go.
  uint64_t pull_news() const { return pull_news_; }
  bool pull_ready(uint16_t tag) const {
    if (tag % kPulls >= pulls_.size()) return true;
    const Pull& e = pulls_[tag % kPulls];
    return e.gen != tag / kPulls || e.state != PullState::kWaiting;
  }
  bool pull_pending() const { return out_head_ != out_tail_; }
  bool export_drained() const {
    return del_head_ == del_tail_ && urgent_head_ == urgent_tail_ && !resync_pending_ &&
           (!urgent_overflow_ || dirty_head_ == dirty_tail_);
  }

 private:
  static Tick to_ticks(uint64_t ns) { return static_cast<Tick>(ns / kTickNs); }
  static Tick timeout_ticks(uint32_t s) {
    const uint64_t t = uint64_t{s} * (1'000'000'000 / kTickNs);
    return t > Table::kMaxTimeout ? Table::kMaxTimeout : static_cast<Tick>(t);
  }
  static size_t fam(Family f) { return f == Family::kIpv6 ? 1 : 0; }
  uint64_t hash(const FlowKey& k) const { return hash_flow_key(k, hash_key_); }
  SnatPortAllocator& pool_of(const ConnRecord& r) const {
    return *((r.flags & kRecEgress) ? egress_ : snat_)[fam(r.family)];
  }
  FlowKey original_key(const ConnRecord& r) const;
  // The key that names the record: the original key, or a firewall-only
  // flow's canonical key.
  FlowKey record_key(const ConnRecord& r) const;
  // The original destination: the VIP, or for egress the outside host.
  const uint8_t* vip_addr(const ConnRecord& r) const {
    return (r.flags & kRecEgress) ? r.dip_addr : vip_cfg_[r.lb.vip].key.addr.bytes;
  }
  uint16_t vip_port(const ConnRecord& r) const {
    if (r.flags & kRecEgress)
      return r.proto == kProtoTcp || r.proto == kProtoUdp ? r.dip_port : r.client_port;
    return vip_cfg_[r.lb.vip].key.port;
  }
  FlowKey reply_key(const ConnRecord& r) const;
  Tick on_expire(Tick now, const FlowKey& key, ConnLink& link);
  void free_record(uint32_t idx);
  // A client's SYN on the original key of a finished LB connection (TIME_WAIT
  // or CLOSE: the client reuses its port; or its backend was killed):
  // IPVS's conn_reuse_mode. The old connection ends and the SYN is
  // scheduled afresh, so it gets a live backend (the old one may be gone).
  // It keeps the old SNAT port (process()). With the SYN proxy the SYN is
  // answered without state and the closed connection stays; the ACK that
  // carries our cookie reopens it (kCookie), and takes its port.
  enum class Reopen : uint8_t { kNo, kSyn, kCookie };
  Reopen reopens(const Burst& b, uint32_t i, const ConnLink& link);
  bool synproxy_vip(const uint8_t* frame, const PacketMeta& m);
  bool is_closed(const ConnRecord& r) const;     // an LB connection that is over
  static bool sync_closed(const ConnRecord& r);  // a TCP flow not worth a copy
  bool take_orphan(uint32_t idx);
  static bool sync_closed_state(const FwConnState& fw);
  static bool handshake_pending(const ConnRecord& r);  // FullNAT TCP, backend not open
  // A frame the SYN proxy built in `out` replaces packet i (false: a counted drop).
  bool adopt_built(Burst& b, uint32_t i, SynProxyCounter ev, const uint8_t* out,
                   const BuiltFrame& f);
  // Another SNAT port of the flow's partition (the backend holds the 4-tuple).
  bool rekey_snat(uint32_t idx);
  // Packet i (the backend's bare ACK) becomes the client's SYN from the
  // flow's new port (client_syn.h); false if there is none to send.
  bool send_client_syn_again(Burst& b, uint32_t i, ConnRecord& r);
  // Erases its keys and frees it. With `kept`, a FullNAT connection's SNAT
  // lease is not freed but handed to the caller (true if so).
  bool end_connection(uint32_t idx, SnatLease* kept = nullptr);
  uint32_t alloc_record();

  // Per-packet paths; return false to drop (counted).
  bool on_hit(Burst& b, uint32_t i, Table::Ref ref, Tick now);
  bool on_miss(Burst& b, uint32_t i, const FlowKey& dkey, uint64_t dhash, Tick now, bool* mutated);
  bool on_icmp_error(Burst& b, uint32_t i);
  bool create(Burst& b, uint32_t i, const FlowKey& dkey, uint64_t dhash, VipId vip, Tick now,
              const SynProxyState* sp);
  uint64_t lb_hash(const FlowKey& dkey, VipId vip) const;
  bool create_egress(Burst& b, uint32_t i, const FlowKey& dkey, uint64_t dhash, Tick now,
                     const FwConnState& st, uint32_t timeout_s);
  // From an egress source to a destination outside them.
  bool is_outward(const uint8_t* frame, const PacketMeta& m) const;
  // Whether egress SNAT can translate it (TCP, UDP, ICMP echo; no fragment).
  static bool egress_translatable(const PacketMeta& m);
  bool insert_keys(const FlowKey& dkey, uint64_t dhash, uint32_t idx, ConnRecord& r);
  bool nat_forward(uint8_t* frame, PacketMeta& m, const ConnRecord& r, uint8_t dir);
  bool dsr_forward(Burst& b, uint32_t i, const ConnRecord& r);
  uint32_t dsr_timeout(const PacketMeta& m, ConnRecord& r) const;
  bool reset_killed(Burst& b, uint32_t i, Table::Ref ref, ConnRecord& r, uint8_t dir, Tick now);
  void send_window_update(Burst& b, uint32_t i, const ConnRecord& r);
  void maybe_clamp(uint8_t* frame, const PacketMeta& m, const ConnRecord& r);
  // Cluster.
  bool clustered() const { return cluster_.node_id != 0; }
  const uint8_t* snat_addr(const ConnRecord& r) const {
    return (r.flags & kRecForeign) ? cluster_.snat_addresses[r.lease.address].addr
                                   : pool_of(r).address(r.lease.address).addr;
  }
  // `now`: not held for the VIP's checkpoint interval (a resync, a
  // promotion: the holders must get the flow at once).
  void mark_dirty(uint32_t idx, bool now = false) {
    ConnRecord& r = records_[idx];
    if (!clustered() || (r.seen & (kSyncQueued | kSyncLocal)) || (r.flags & kRecStandby)) return;
    if (!now && has_delay(r) && delay(idx)) return;
    enqueue_dirty(idx);
  }
  bool has_delay(const ConnRecord& r) const {
    return (r.flags & (kRecNat | kRecDsr)) && !(r.flags & kRecEgress) &&
           r.lb.vip < vip_delay_.size() && vip_delay_[r.lb.vip] != kNoDelay;
  }
  // Into the export queue (the next checkpoint).
  void enqueue_dirty(uint32_t idx) {
    ConnRecord& r = records_[idx];
    if (r.seen & kSyncQueued) return;
    if (r.seen & kSyncInQueue) {  // its entry is still ahead
      r.seen |= kSyncQueued;
      return;
    }
    // Full (stale entries of freed records count too): the next export
    // sends everything again rather than lose this change.
    if (dirty_tail_ - dirty_head_ == dirty_.size()) {
      resync_pending_ = true;
      counters_.inc(GatewayCounter::kSyncQueueOverflow);
      return;
    }
    r.seen |= kSyncQueued | kSyncInQueue;
    dirty_[dirty_tail_++ % dirty_.size()] = idx;
  }
  // A TCP state change a holder's copy can do without until its close: the
  // copy stays ESTABLISHED (its firewall follows the FINs if promoted), and
  // the processor's delete comes at TIME_WAIT or CLOSE.
  static bool lazy_change(const FwConnState& fw, uint8_t old_state) {
    auto closing = [](uint8_t s) {
      const auto t = static_cast<TcpState>(s);
      return t == TcpState::kFinWait || t == TcpState::kCloseWait || t == TcpState::kLastAck;
    };
    return fw.kind == FwKind::kTcp && closing(fw.state) &&
           (closing(old_state) || static_cast<TcpState>(old_state) == TcpState::kEstablished);
  }
  // Exported after kLazyTicks unless exported (or closed) before.
  void mark_lazy(uint32_t idx, Tick now) {
    ConnRecord& r = records_[idx];
    if (!clustered() || (r.seen & (kSyncQueued | kSyncLazy | kSyncLocal)) ||
        (r.flags & kRecStandby))
      return;
    // Nothing sent to skip, or its VIP's interval coalesces changes anyway
    // (kSyncLazy would not tell the two queues apart): as any change.
    if (!(r.seen & kSyncSent) || has_delay(r)) {
      mark_dirty(idx);
      return;
    }
    if (lazy_tail_ - lazy_head_ == lazy_.size()) {
      counters_.inc(GatewayCounter::kSyncLazyFull);
      mark_dirty(idx);  // no room: as any change
      return;
    }
    r.seen |= kSyncLazy;
    lazy_[lazy_tail_++ % lazy_.size()] = LazyEntry{idx, now + kLazyTicks};
  }
  // Whether `node` is in one of the view's node sets (live, suspect, joining).
  bool in_view(uint64_t ClusterView::*set, uint16_t node) const {
    return view_ != nullptr && node >= 1 && node <= kMaxClusterNodes &&
           ((view_->*set) >> (node - 1) & 1) != 0;
  }
  bool node_live(uint16_t node) const { return in_view(&ClusterView::live, node); }
  bool node_suspect(uint16_t node) const { return in_view(&ClusterView::suspect, node); }
  bool node_joining(uint16_t node) const { return in_view(&ClusterView::joining, node); }
  bool redirect(Burst& b, uint32_t i, uint16_t node, GatewayCounter c);
  // Pulling. pull() parks packet i while `target` is asked for its flow
  // (kParked), or says where it goes instead.
  enum class PullStep : uint8_t { kParked, kRedirect, kUnknown, kDrop };
  PullStep pull(Burst& b, uint32_t i, uint16_t target, uint16_t* to);
  GatewayCounter answer_pull(const FlowSync& s, uint64_t now_ns);
  GatewayCounter on_refer(const FlowSync& s, uint64_t now_ns);
  void settle_pulls(uint64_t now_ns);           // waiting pulls whose flow arrived
  bool grant_awaited(const FlowSync& s) const;  // a pull waits for this grant
  void expire_pulls(uint64_t now_ns);
  bool send_out(const FlowSync& s);  // false: the outbox is full
  // A flow's record by a packet's directional key, or the canonical key of
  // a firewall-only flow.
  Table::Ref find_flow(const FlowKey& dkey) const;
  GatewayCounter import_copy(const FlowSync& s, uint64_t now_ns, uint32_t* idx);
  // A packet without a record: hand it to a holder of its slot (true, with
  // `*handled` set to the verdict) when this node is not one.
  bool miss_to_holder(Burst& b, uint32_t i, const FlowKey& dkey, bool* handled);
  uint16_t first_live(const uint8_t (&holders)[kViewHolders]) const;  // 0: none
  // Who takes over a copy whose processor is gone (0: this node decides).
  uint16_t takeover_node(const uint8_t* frame, const ConnRecord& r) const;
  uint16_t slot_holder(uint32_t slot) const;   // the first live holder with copies
  bool from_peer(const uint8_t* frame) const;  // its source MAC is a live peer's
  void promote(uint32_t idx);
  void fill_sync(const ConnRecord& r, FlowSync* s, FlowSyncOp op, Tick now) const;
  void hold_for_commit(Burst& b, uint32_t i, uint32_t appended_from);
  bool same_write_once(const ConnRecord& r, const FlowSync& s) const;
  static uint8_t sync_kind(const ConnRecord& r);  // FlowSync::kind of a record
  uint32_t find_cluster_snat(Family f, const uint8_t* addr) const;
  bool on_hit_inner(Burst& b, uint32_t i, Table::Ref ref, Tick now);

  bool drop(GatewayCounter c) {
    counters_.inc(c);
    return false;
  }

  Firewall fw_;
  Lb lb_;
  std::unique_ptr<SnatPortAllocator> snat_[2];    // FullNAT, by family (fam())
  std::unique_ptr<SnatPortAllocator> egress_[2];  // egress SNAT, by family
  std::unique_ptr<Acl> egress_match_;             // allows egress (internal -> outside) packets
  SnatLease reused_lease_;  // of a reused tuple's old connection, for its new one
  bool has_reused_lease_ = false;
  SynProxy proxy_;
  uint64_t cookie_offset_;                 // GatewayConfig::cookie_clock_offset_ns
  bool table_moved_ = false;               // an insert on the hit path: later refs are stale
  std::vector<GatewayVipConfig> vip_cfg_;  // by VipId (options, key; pool owned by the LB)
  std::vector<uint8_t> vip_removed_;       // by VipId
  Table table_;
  uint32_t capacity_ = 0;
  internal::HugeArray<ConnRecord> records_;
  internal::HugeArray<uint32_t> free_list_;
  uint32_t free_top_ = 0;
  uint32_t live_ = 0;
  TrafficDir non_vip_dir_;
  SipKey hash_key_;
  SipKey lb_hash_key_;
  GatewayClusterConfig cluster_;
  SlotLayout layout_;
  bool slotted_;  // FullNAT ports come from their flow's slot's partition
  const ClusterView* view_ = nullptr;
  // By cluster SNAT address: its index in this node's pool, or UINT32_MAX.
  std::vector<uint32_t> own_index_;
  // cluster_.snat_addresses holds the FullNAT addresses first, then (from
  // this index) the egress ones; own_index_ indexes the matching pool.
  uint32_t cluster_egress_from_ = 0;
  bool cluster_egress(uint32_t a) const { return a >= cluster_egress_from_; }
  internal::HugeArray<uint32_t> dirty_;  // ring of record indices; each queued at most once
  uint64_t dirty_head_ = 0;
  uint64_t dirty_tail_ = 0;
  uint64_t resync_end_ = 0;  // dirty_tail_ after the last resync()
  bool resync_pending_ = false;
  // Closes under way (kSyncLazy), in the order they became due. An entry
  // can outlive its record (freed, maybe reused): kSyncLazy tells.
  struct LazyEntry {
    uint32_t idx;
    Tick due;
  };
  static constexpr Tick kLazyTicks = 10;  // 1 s (kTickNs)
  internal::HugeArray<LazyEntry> lazy_;
  uint64_t lazy_head_ = 0;
  uint64_t lazy_tail_ = 0;
  // VIPs' checkpoint intervals (GatewayVipConfig::checkpoint_ns): one ring
  // per distinct interval, so each is in due order. A waiting record has
  // kSyncLazy (as in the close queue); its entry can outlive it too.
  struct DelayEntry {
    uint32_t idx;
    uint64_t due_ns;
  };
  struct DelayRing {
    DelayRing(uint64_t interval, size_t n, bool huge)
        : interval_ns(interval), ring(n, huge, false) {}
    uint64_t interval_ns;
    internal::HugeArray<DelayEntry> ring;
    uint64_t head = 0;
    uint64_t tail = 0;
  };
  static constexpr uint8_t kNoDelay = 0xff;
  std::vector<std::unique_ptr<DelayRing>> delays_;  // at most kMaxCheckpointClasses
  std::vector<uint8_t> vip_delay_;                  // by VipId: index into delays_, or kNoDelay
  bool huge_pages_ = true;
  uint64_t clock_ns_ = 0;  // the latest time seen (bursts, exports): delays count from it
  // Waits for its VIP's interval (false: the change travels at the next
  // checkpoint, the ring being full).
  bool delay(uint32_t idx);
  void set_vip_delay(VipId id, const GatewayVipConfig& v);
  CommitPoint commit_;
  bool export_due_ = false;
  bool any_output_commit_ = false;  // some VIP has it
  static constexpr uint32_t kNoRecord = UINT32_MAX;
  uint32_t touched_ = kNoRecord;   // the record the current packet went through
  std::vector<FlowSync> deletes_;  // ring, fixed size (cluster.delete_queue)
  uint64_t del_head_ = 0;
  uint64_t del_tail_ = 0;
  // Records that held packets wait for (kSyncUrgent), exported first; when
  // full, the open batch waits for the whole queue instead.
  static constexpr uint32_t kUrgentQueue = 4096;
  std::vector<uint32_t> urgent_;
  uint64_t urgent_head_ = 0;
  uint64_t urgent_tail_ = 0;
  bool urgent_overflow_ = false;
  uint32_t standby_ = 0;
  // Pulls: a fixed table (a tag is index + kPulls * generation, 16 bits).
  enum class PullState : uint8_t { kFree, kWaiting, kGranted, kReferred, kTimedOut };
  struct Pull {
    FlowKey key;          // the missed packet's directional key
    uint64_t hash = 0;    // of key (the table's)
    uint64_t due_ns = 0;  // waiting: gives up; answered: forgotten
    uint16_t target = 0;  // the node asked
    uint16_t node = 0;    // referred: where the flow's packets go (0: no one has it)
    uint16_t parked = 0;
    uint8_t gen = 0;
    PullState state = PullState::kFree;
  };
  void resolve(Pull& e, PullState to, uint64_t due_ns);  // its parked packets run again
  static constexpr uint32_t kPulls = 256;
  // A referral stands this long: the flow's packets go to its processor
  // without asking again (a rejoined node sees a share of long flows that
  // others process).
  static constexpr uint64_t kReferNs = 1'000'000'000;
  static constexpr uint16_t kMaxParkedPerPull = 64;
  // Packets parked in all (the pipeline's park queue has twice the room:
  // packets of answered pulls wait there until they run again).
  static constexpr uint32_t kMaxParked = 512;
  uint32_t parked_ = 0;
  static constexpr uint32_t kOutbox = 512;
  uint64_t pull_ns_ = 0;
  std::vector<Pull> pulls_;  // kPulls entries when clustered
  uint32_t pulls_active_ = 0;
  uint64_t pull_news_ = 0;
  std::vector<FlowSync> outbox_;  // pulls and answers, ring
  uint64_t out_head_ = 0;
  uint64_t out_tail_ = 0;
  CounterSet<GatewayCounter, size_t(GatewayCounter::kCount)> counters_;
};

}  // namespace tripod
