// A reliable, authenticated, per-peer channel of replication records over
// datagrams (README.md beside this file). One Channel per peer, owned by the
// cluster agent thread, which moves datagrams between it and a UDP socket and
// passes the time in. No socket, no thread, no clock of its own.
//
// Sending: push() packs records into the open DATA datagram (as many as fit)
// and says which seq each one ended up in; flush() seals and sends it. Up to
// `window` (<= 64) datagrams are unacknowledged at once, kept in buffers
// allocated at construction; beyond that push() reports backpressure.
// Unacked datagrams are retransmitted after an RTO that doubles up to a cap.
// acked_through() is the output-commit point: every seq <= it is acked.
//
// Receiving: each DATA datagram's records are delivered exactly once, in seq
// order, as TCP does: a flow's update must not overtake the full record it
// builds on. A datagram beyond a gap (up to 64 ahead) is copied into a reorder
// buffer allocated at construction, sacked (the sender does not resend it)
// and delivered when the gap fills. Acks ride on every outgoing datagram to
// the peer, or go alone after ack_delay (at once after kAckEvery datagrams,
// a duplicate or a gap).
//
// Sessions: the seq space of each direction belongs to the pair of
// incarnations (sender's, receiver's); every datagram carries both. When the
// peer's incarnation changes (it restarted), both directions restart at seq 1,
// unacked data is discarded (the restarted peer lost its state anyway: the
// caller resends what it needs, told by ChannelSink::peer_restarted) and
// session() grows, so an output-commit wait can be keyed by (session, seq).
// The reorder buffer is discarded with the old session.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>

#include "cluster/wire/format.h"

namespace tripod::cluster::wire {

// The channel's way out: the socket and the consumers of what arrives.
class ChannelSink {
 public:
  virtual ~ChannelSink() = default;
  // A sealed datagram for the peer (the span is valid during the call).
  virtual void transmit(std::span<const uint8_t> datagram) = 0;
  // One record of DATA datagram `seq`; called once per record, in seq order.
  // It may push() and flush() on the channel, not receive() on it.
  virtual void deliver(uint64_t seq, const Record& r) = 0;
  // An authentic, fresh heartbeat; `h` carries the peer's epoch.
  virtual void heartbeat(const Header& h, const Heartbeat& hb) {
    (void)h;
    (void)hb;
  }
  // The peer restarted: unacked data of session `old_session` was discarded.
  virtual void peer_restarted(uint32_t old_session) { (void)old_session; }
};

struct ChannelConfig {
  uint16_t peer = 0;
  uint64_t incarnation = 0;  // this node's; nonzero, grows across restarts
  uint32_t window = 64;      // unacked DATA datagrams, 1..64 (the sack's reach)
  uint64_t rto_ns = 5'000'000;
  uint64_t rto_max_ns = 200'000'000;
  uint64_t ack_delay_ns = 200'000;
};

#define TRIPOD_WIRE_CHANNEL_COUNTERS(X)                       \
  X(kDataSent, "data_sent")                                   \
  X(kRetransmits, "retransmits")                              \
  X(kFastRetransmits, "fast_retransmits") /* a sack beyond */ \
  X(kAcksSent, "acks_sent")                                   \
  X(kHeartbeatsSent, "heartbeats_sent")                       \
  X(kRecordsQueued, "records_queued")                         \
  X(kBackpressure, "backpressure")                            \
  X(kBadRecord, "bad_record")                                 \
  X(kDataReceived, "data_received")                           \
  X(kReordered, "reordered")                                  \
  X(kRecordsDelivered, "records_delivered")                   \
  X(kHeartbeatsReceived, "heartbeats_received")               \
  X(kDuplicates, "duplicates")                                \
  X(kOutOfWindow, "out_of_window")                            \
  X(kWrongSender, "wrong_sender")                             \
  X(kStaleIncarnation, "stale_incarnation")                   \
  X(kStaleReceiverIncarnation, "stale_receiver_incarnation")  \
  X(kHeartbeatReplay, "heartbeat_replay")                     \
  X(kBadAck, "bad_ack")                                       \
  X(kPeerRestarts, "peer_restarts")

TRIPOD_DECLARE_REASONS(ChannelCounter, TRIPOD_WIRE_CHANNEL_COUNTERS)

enum class PushStatus : uint8_t {
  kOk,
  kBackpressure,  // `window` datagrams unacked: retry after acks arrive
  kBadRecord,     // type not registered, or body not of its registered size
};

struct PushResult {
  PushStatus status = PushStatus::kOk;
  uint64_t seq = 0;  // the DATA datagram carrying the record (this session)
};

class Channel {
 public:
  using CounterFn = Codec::CounterFn;
  static constexpr uint32_t kMaxWindow = 64;

  // `codec` and `sink` must outlive the channel. Throws std::invalid_argument
  // for a window outside 1..64, a zero incarnation or RTO, the peer being
  // this node, or rto_max < rto.
  Channel(const Codec& codec, const ChannelConfig& cfg, ChannelSink* sink);
  ~Channel();
  Channel(const Channel&) = delete;
  Channel& operator=(const Channel&) = delete;

  // Queues one record. A full datagram is sent at once; the open one waits
  // for flush(). Records are not sent before the peer's incarnation is known
  // (from any datagram of it, e.g. a heartbeat).
  PushResult push(uint8_t type, std::span<const uint8_t> body, uint64_t now_ns);
  // Seals and sends the open datagram, if it holds records.
  void flush(uint64_t now_ns);
  // Sends a heartbeat (hb.hb_seq is set here); it carries the acks too.
  void send_heartbeat(const Heartbeat& hb, uint64_t now_ns);
  // A datagram from this peer that Codec::open() accepted.
  void receive(const Datagram& d, uint64_t now_ns);
  // Retransmissions and the delayed ack that are due.
  void poll(uint64_t now_ns);
  // When poll() next has something to do; UINT64_MAX if nothing is pending.
  uint64_t next_deadline() const;

  void set_epoch(uint32_t epoch) { epoch_ = epoch; }

  uint64_t acked_through() const { return snd_acked_; }
  uint64_t last_seq() const { return snd_next_ - 1; }  // highest seq assigned
  uint32_t in_flight() const { return static_cast<uint32_t>(snd_next_ - 1 - snd_acked_); }
  uint32_t session() const { return session_; }
  uint64_t peer_incarnation() const { return peer_inc_; }
  uint64_t received_through() const { return rcv_ack_; }  // cumulative ack we send
  const ChannelConfig& config() const { return cfg_; }
  const CounterSet<ChannelCounter, size_t(ChannelCounter::kCount)>& counters() const {
    return counters_;
  }
  void export_counters(const CounterFn& fn) const;

 private:
  struct Slot;
  struct Held;

  Slot& slot(uint64_t seq);
  static bool fits(const Slot& s, uint16_t size);
  Header header(MsgType type, uint64_t seq, uint8_t count) const;
  bool open_batch(uint64_t now_ns);
  void send_slot(Slot& s, uint64_t now_ns);
  void send_unreliable(MsgType type, std::span<const uint8_t> body);
  void on_ack(uint64_t ack, uint64_t sack);
  void on_data(const Datagram& d, uint64_t now_ns);
  void deliver(const Datagram& d);
  void restart_session();

  const Codec* codec_;
  ChannelConfig cfg_;
  ChannelSink* sink_;
  std::unique_ptr<Slot[]> slots_;
  std::unique_ptr<Held[]> held_;   // kMaxWindow, indexed by seq % kMaxWindow
  uint8_t scratch_[kMaxDatagram];  // heartbeats and acks

  uint32_t epoch_ = 0;
  uint32_t session_ = 1;
  uint64_t peer_inc_ = 0;  // 0: not heard from yet

  // Send side: seqs [snd_acked_ + 1, snd_next_) are in flight or queued;
  // open_seq_ is the one still being filled (0: none).
  uint64_t snd_next_ = 1;
  uint64_t snd_acked_ = 0;
  uint64_t open_seq_ = 0;
  uint64_t hb_seq_ = 0;

  // Receive side: every seq <= rcv_ack_ received (and delivered, once
  // receive() returns); bit i of rcv_bits_: seq rcv_ack_ + 1 + i received and
  // waiting in held_. Exactly the ack/sack we send.
  uint64_t rcv_ack_ = 0;
  uint64_t rcv_bits_ = 0;
  uint64_t peer_hb_seq_ = 0;
  bool ack_pending_ = false;
  uint64_t ack_due_ns_ = 0;
  uint32_t unacked_rx_ = 0;  // DATA datagrams since ack_pending_ was set
  static constexpr uint32_t kAckEvery = 8;

  CounterSet<ChannelCounter, size_t(ChannelCounter::kCount)> counters_;
};

}  // namespace tripod::cluster::wire
