#include "cluster/wire/channel.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>

namespace tripod::cluster::wire {

// One DATA datagram of the send window: filled in place, sealed in place
// (the MAC is recomputed at each transmission, since the piggybacked ack
// fields change), kept until acked.
struct Channel::Slot {
  uint64_t seq = 0;
  uint64_t next_tx_ns = 0;
  uint64_t rto_ns = 0;
  uint16_t len = 0;  // header + records, without the MAC
  uint8_t count = 0;
  bool sealed = false;  // flushed: no more records; sent once the peer is known
  bool sent = false;
  bool acked = false;
  bool fast = false;  // resent once on a sack beyond it (fast retransmit)
  uint8_t buf[kMaxDatagram];
};

// A DATA datagram received beyond a gap, waiting for it to fill. The
// Datagram handed to receive() points into the caller's buffer, so its
// header and payload are copied; Codec::open checked them on arrival (MAC and
// every record), so they are walked again without another check.
struct Channel::Held {
  Header header;
  uint16_t len = 0;
  uint8_t payload[kMaxPayload];
};

Channel::Channel(const Codec& codec, const ChannelConfig& cfg, ChannelSink* sink)
    : codec_(&codec), cfg_(cfg), sink_(sink) {
  if (cfg.window == 0 || cfg.window > kMaxWindow) {
    throw std::invalid_argument("channel window must be in [1, 64]");
  }
  if (cfg.incarnation == 0) throw std::invalid_argument("incarnation must be nonzero");
  if (cfg.rto_ns == 0 || cfg.rto_max_ns < cfg.rto_ns) {
    throw std::invalid_argument("need 0 < rto_ns <= rto_max_ns");
  }
  if (cfg.peer == codec.self()) throw std::invalid_argument("a channel to oneself");
  if (sink == nullptr) throw std::invalid_argument("channel without a sink");
  slots_ = std::make_unique<Slot[]>(cfg.window);
  // The peer's window may be larger than ours: hold as far as the sack reaches.
  held_ = std::make_unique<Held[]>(kMaxWindow);
}

Channel::~Channel() = default;

bool Channel::fits(const Slot& s, uint16_t size) {
  return s.count < kMaxRecords && s.len + kRecordHeaderSize + size <= kHeaderSize + kMaxPayload;
}

Channel::Slot& Channel::slot(uint64_t seq) {
  return slots_[seq % cfg_.window];
}

Header Channel::header(MsgType type, uint64_t seq, uint8_t count) const {
  Header h;
  h.type = type;
  h.count = count;
  h.cluster_id = codec_->cluster_id();
  h.sender = codec_->self();
  h.receiver = cfg_.peer;
  h.sender_inc = cfg_.incarnation;
  h.receiver_inc = peer_inc_;
  h.epoch = epoch_;
  h.seq = seq;
  h.ack = rcv_ack_;
  h.sack = rcv_bits_;
  return h;
}

bool Channel::open_batch(uint64_t now_ns) {
  (void)now_ns;
  if (in_flight() >= cfg_.window) return false;
  const uint64_t seq = snd_next_++;
  Slot& s = slot(seq);
  s.seq = seq;
  s.len = kHeaderSize;
  s.count = 0;
  s.sealed = s.sent = s.acked = s.fast = false;
  s.rto_ns = cfg_.rto_ns;
  open_seq_ = seq;
  return true;
}

PushResult Channel::push(uint8_t type, std::span<const uint8_t> body, uint64_t now_ns) {
  const uint16_t size = codec_->records().size_of(type);
  if (size == 0 || body.size() != size) {
    counters_.inc(ChannelCounter::kBadRecord);
    return {PushStatus::kBadRecord, 0};
  }
  // A smaller record may have left room that this one does not fit.
  if (open_seq_ != 0 && !fits(slot(open_seq_), size)) flush(now_ns);
  if (open_seq_ == 0 && !open_batch(now_ns)) {
    counters_.inc(ChannelCounter::kBackpressure);
    return {PushStatus::kBackpressure, 0};
  }
  Slot& s = slot(open_seq_);
  uint8_t* p = s.buf + s.len;
  p[0] = type;
  p[1] = 0;
  store_be16(p + 2, size);
  std::memcpy(p + kRecordHeaderSize, body.data(), size);
  s.len = static_cast<uint16_t>(s.len + kRecordHeaderSize + size);
  ++s.count;
  counters_.inc(ChannelCounter::kRecordsQueued);
  const uint64_t seq = s.seq;
  // Full (for another record of this size): send now rather than at flush().
  if (!fits(s, size)) flush(now_ns);
  return {PushStatus::kOk, seq};
}

void Channel::flush(uint64_t now_ns) {
  if (open_seq_ == 0) return;
  Slot& s = slot(open_seq_);
  open_seq_ = 0;
  s.sealed = true;
  if (peer_inc_ != 0) send_slot(s, now_ns);
}

void Channel::send_slot(Slot& s, uint64_t now_ns) {
  write_header(header(MsgType::kData, s.seq, s.count), s.buf);
  const size_t n = codec_->seal(s.buf, s.len);
  counters_.inc(s.sent ? ChannelCounter::kRetransmits : ChannelCounter::kDataSent);
  s.sent = true;
  s.next_tx_ns = now_ns + s.rto_ns;
  ack_pending_ = false;  // the ack rode along
  sink_->transmit({s.buf, n});
}

void Channel::send_unreliable(MsgType type, std::span<const uint8_t> body) {
  write_header(header(type, 0, 0), scratch_);
  if (!body.empty()) std::memcpy(scratch_ + kHeaderSize, body.data(), body.size());
  const size_t n = codec_->seal(scratch_, kHeaderSize + body.size());
  ack_pending_ = false;
  sink_->transmit({scratch_, n});
}

void Channel::send_heartbeat(const Heartbeat& hb, uint64_t now_ns) {
  (void)now_ns;
  Heartbeat out = hb;
  out.hb_seq = ++hb_seq_;
  uint8_t body[kHeartbeatSize];
  write_heartbeat(out, body);
  counters_.inc(ChannelCounter::kHeartbeatsSent);
  send_unreliable(MsgType::kHeartbeat, body);
}

void Channel::receive(const Datagram& d, uint64_t now_ns) {
  const Header& h = d.header;
  if (h.sender != cfg_.peer) {
    counters_.inc(ChannelCounter::kWrongSender);
    return;
  }
  // Replay of an earlier life of the peer.
  if (h.sender_inc == 0 || h.sender_inc < peer_inc_) {
    counters_.inc(ChannelCounter::kStaleIncarnation);
    return;
  }
  // Addressed to an earlier life of this node (a replay across our restart,
  // or a peer that has not heard of it yet). Data needs our exact
  // incarnation; other messages may not know it yet (0).
  if (h.receiver_inc != cfg_.incarnation && (h.type == MsgType::kData || h.receiver_inc != 0)) {
    counters_.inc(ChannelCounter::kStaleReceiverIncarnation);
    return;
  }
  bool first_contact = false;
  if (h.sender_inc > peer_inc_) {
    first_contact = peer_inc_ == 0;
    peer_inc_ = h.sender_inc;
    peer_hb_seq_ = 0;
    if (!first_contact) restart_session();
  }
  if (h.type == MsgType::kHeartbeat) {
    const Heartbeat hb = read_heartbeat(d.payload.data());
    if (hb.hb_seq <= peer_hb_seq_) {
      counters_.inc(ChannelCounter::kHeartbeatReplay);
      return;
    }
    peer_hb_seq_ = hb.hb_seq;
    counters_.inc(ChannelCounter::kHeartbeatsReceived);
    if (h.receiver_inc == cfg_.incarnation) on_ack(h.ack, h.sack);
    sink_->heartbeat(h, hb);
  } else {
    // Acks only count when they refer to this session of ours.
    if (h.receiver_inc == cfg_.incarnation) on_ack(h.ack, h.sack);
    if (h.type == MsgType::kData) on_data(d, now_ns);
  }
  // Data queued before the peer was known can go now.
  if (first_contact) poll(now_ns);
}

void Channel::on_ack(uint64_t ack, uint64_t sack) {
  // Nothing beyond the last sent datagram can be acked: such an ack is a bug
  // or a forgery by a key holder, and is ignored whole.
  const uint64_t sent_max = open_seq_ != 0 ? open_seq_ - 1 : snd_next_ - 1;
  const uint64_t sack_max =
      sack == 0 ? ack : ack + 64 - static_cast<uint64_t>(std::countl_zero(sack));
  if (ack > sent_max || sack_max > sent_max) {
    counters_.inc(ChannelCounter::kBadAck);
    return;
  }
  for (uint64_t seq = snd_acked_ + 1; seq <= ack; ++seq) {
    slot(seq).acked = true;
  }
  for (uint64_t bits = sack; bits != 0; bits &= bits - 1) {
    const uint64_t seq = ack + 1 + static_cast<uint64_t>(std::countr_zero(bits));
    if (seq > snd_acked_) slot(seq).acked = true;
  }
  while (snd_acked_ + 1 <= sent_max && slot(snd_acked_ + 1).acked) {
    ++snd_acked_;
  }
  // A hole below a sacked datagram was lost (the peer acks at once beyond a
  // gap): resent at the next poll, once, rather than after its RTO, since
  // delivery is in order and everything after it waits. Later losses of it
  // are the RTO's.
  for (uint64_t seq = snd_acked_ + 1; seq < sack_max; ++seq) {
    Slot& s = slot(seq);
    if (s.acked || !s.sent || s.fast) continue;
    s.fast = true;
    s.next_tx_ns = 0;
    counters_.inc(ChannelCounter::kFastRetransmits);
  }
}

void Channel::on_data(const Datagram& d, uint64_t now_ns) {
  const uint64_t seq = d.header.seq;
  if (seq > rcv_ack_ + kMaxWindow) {
    counters_.inc(ChannelCounter::kOutOfWindow);
    return;
  }
  if (!ack_pending_) {
    ack_pending_ = true;
    ack_due_ns_ = now_ns + cfg_.ack_delay_ns;
    unacked_rx_ = 0;
  }
  // Acked at once: every kAckEvery datagrams (the sender's window stays
  // open), and a duplicate (our ack was lost) or a datagram beyond a gap
  // (the sack tells the sender what to resend).
  if (++unacked_rx_ >= kAckEvery) ack_due_ns_ = now_ns;
  if (seq <= rcv_ack_ || ((rcv_bits_ >> (seq - rcv_ack_ - 1)) & 1) != 0) {
    counters_.inc(ChannelCounter::kDuplicates);
    ack_due_ns_ = now_ns;
    return;
  }
  rcv_bits_ |= uint64_t{1} << (seq - rcv_ack_ - 1);
  counters_.inc(ChannelCounter::kDataReceived);
  if (seq != rcv_ack_ + 1) {
    ack_due_ns_ = now_ns;
    // Beyond a gap: held until it fills (in order, so that an update never
    // overtakes the full record it builds on), and sacked meanwhile. Within
    // the window, seq % kMaxWindow is a slot of its own.
    Held& h = held_[seq % kMaxWindow];
    h.header = d.header;
    h.len = static_cast<uint16_t>(d.payload.size());  // <= kMaxPayload: Codec::open
    std::memcpy(h.payload, d.payload.data(), d.payload.size());
    counters_.inc(ChannelCounter::kReordered);
    return;
  }
  // The gap is closed: this one and the held ones that follow it.
  while ((rcv_bits_ & 1) != 0) {
    rcv_bits_ >>= 1;
    ++rcv_ack_;
  }
  // State is final before the sink runs, so it may push() from deliver()
  // (the send side only: held_ and the receive state stay as they are).
  const uint64_t last = rcv_ack_;
  deliver(d);
  for (uint64_t s = seq + 1; s <= last; ++s) {
    const Held& h = held_[s % kMaxWindow];
    deliver(Datagram{h.header, {h.payload, h.len}});
  }
}

void Channel::deliver(const Datagram& d) {
  counters_.inc(ChannelCounter::kRecordsDelivered, d.header.count);
  codec_->for_each_record(d, [&](const Record& r) { sink_->deliver(d.header.seq, r); });
}

void Channel::restart_session() {
  const uint32_t old = session_++;
  for (uint32_t i = 0; i < cfg_.window; ++i) {
    slots_[i].seq = 0;
    slots_[i].sealed = slots_[i].sent = slots_[i].acked = slots_[i].fast = false;
  }
  snd_next_ = 1;
  snd_acked_ = 0;
  open_seq_ = 0;
  rcv_ack_ = 0;
  rcv_bits_ = 0;  // and so the reorder buffer: a held slot is read only under its bit
  ack_pending_ = false;
  counters_.inc(ChannelCounter::kPeerRestarts);
  sink_->peer_restarted(old);
}

void Channel::poll(uint64_t now_ns) {
  if (peer_inc_ != 0) {
    const uint64_t end = snd_next_;
    for (uint64_t seq = snd_acked_ + 1; seq < end; ++seq) {
      Slot& s = slot(seq);
      if (!s.sealed || s.acked) continue;
      if (s.sent) {
        if (now_ns < s.next_tx_ns) continue;
        // Doubling, capped (and safe from overflow for any configured cap);
        // not for a fast retransmission (next_tx_ns 0: no timer expired).
        if (s.next_tx_ns != 0)
          s.rto_ns = s.rto_ns > cfg_.rto_max_ns / 2 ? cfg_.rto_max_ns : s.rto_ns * 2;
      }
      send_slot(s, now_ns);
    }
  }
  if (ack_pending_ && now_ns >= ack_due_ns_) {
    counters_.inc(ChannelCounter::kAcksSent);
    send_unreliable(MsgType::kAck, {});
  }
}

uint64_t Channel::next_deadline() const {
  uint64_t d = ack_pending_ ? ack_due_ns_ : std::numeric_limits<uint64_t>::max();
  if (peer_inc_ == 0) return d;
  for (uint64_t seq = snd_acked_ + 1; seq < snd_next_; ++seq) {
    const Slot& s = slots_[seq % cfg_.window];
    if (!s.sealed || s.acked) continue;
    d = std::min(d, s.sent ? s.next_tx_ns : 0);
  }
  return d;
}

void Channel::export_counters(const CounterFn& fn) const {
  for (size_t i = 0; i < counters_.size(); ++i) {
    fn(std::string("wire_peer_") + std::string(kChannelCounterNames[i]), counters_.get(i));
  }
}

}  // namespace tripod::cluster::wire
