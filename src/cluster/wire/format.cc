#include "cluster/wire/format.h"

#include <sodium.h>

#include <cstring>
#include <stdexcept>
#include <string>

namespace tripod::cluster::wire {

static_assert(kKeySize == crypto_generichash_KEYBYTES);
static_assert(kMacSize >= crypto_generichash_BYTES_MIN && kMacSize <= crypto_generichash_BYTES_MAX);

void write_header(const Header& h, uint8_t* out) {
  std::memcpy(out + off::kMagic, kMagic, sizeof kMagic);
  out[off::kVersion] = kVersion;
  out[off::kType] = static_cast<uint8_t>(h.type);
  out[off::kFlags] = h.flags;
  out[off::kCount] = h.count;
  store_be32(out + off::kClusterId, h.cluster_id);
  store_be16(out + off::kSender, h.sender);
  store_be16(out + off::kReceiver, h.receiver);
  store_be<uint64_t>(out + off::kSenderInc, h.sender_inc);
  store_be<uint64_t>(out + off::kReceiverInc, h.receiver_inc);
  store_be32(out + off::kEpoch, h.epoch);
  store_be32(out + off::kReserved, 0);
  store_be<uint64_t>(out + off::kSeq, h.seq);
  store_be<uint64_t>(out + off::kAck, h.ack);
  store_be<uint64_t>(out + off::kSack, h.sack);
}

Header read_header(const uint8_t* in) {
  Header h;
  h.type = static_cast<MsgType>(in[off::kType]);
  h.flags = in[off::kFlags];
  h.count = in[off::kCount];
  h.cluster_id = load_be32(in + off::kClusterId);
  h.sender = load_be16(in + off::kSender);
  h.receiver = load_be16(in + off::kReceiver);
  h.sender_inc = load_be<uint64_t>(in + off::kSenderInc);
  h.receiver_inc = load_be<uint64_t>(in + off::kReceiverInc);
  h.epoch = load_be32(in + off::kEpoch);
  h.seq = load_be<uint64_t>(in + off::kSeq);
  h.ack = load_be<uint64_t>(in + off::kAck);
  h.sack = load_be<uint64_t>(in + off::kSack);
  return h;
}

void write_heartbeat(const Heartbeat& hb, uint8_t* out) {
  store_be<uint64_t>(out, hb.hb_seq);
  store_be<uint64_t>(out + 8, hb.members);
  store_be32(out + 16, hb.state);
  store_be32(out + 20, hb.interval_us);
}

Heartbeat read_heartbeat(const uint8_t* in) {
  Heartbeat hb;
  hb.hb_seq = load_be<uint64_t>(in);
  hb.members = load_be<uint64_t>(in + 8);
  hb.state = load_be32(in + 16);
  hb.interval_us = load_be32(in + 20);
  return hb;
}

RecordTable::RecordTable(std::initializer_list<std::pair<uint8_t, uint16_t>> types) {
  for (const auto& [type, size] : types) {
    if (size == 0 || size > kMaxPayload - kRecordHeaderSize) {
      throw std::invalid_argument("record size must be in [1, " +
                                  std::to_string(kMaxPayload - kRecordHeaderSize) + "]");
    }
    if (size_[type] != 0) throw std::invalid_argument("record type registered twice");
    size_[type] = size;
  }
}

Codec::Codec(const CodecConfig& cfg, const RecordTable& records) : cfg_(cfg), records_(records) {
  if (sodium_init() < 0) throw std::runtime_error("sodium_init failed");
}

size_t Codec::seal(uint8_t* buf, size_t len) const {
  crypto_generichash(buf + len, kMacSize, buf, len, cfg_.key.data(), cfg_.key.size());
  return len + kMacSize;
}

bool Codec::verify(const uint8_t* buf, size_t len) const {
  uint8_t mac[kMacSize];
  const size_t body = len - kMacSize;
  crypto_generichash(mac, kMacSize, buf, body, cfg_.key.data(), cfg_.key.size());
  return crypto_verify_16(mac, buf + body) == 0;
}

WireDrop Codec::open(const uint8_t* buf, size_t len, Datagram* out) {
  const WireDrop r = check(buf, len, out);
  counters_.inc(r);
  return r;
}

// Cheap checks first (a stray or misaddressed datagram costs no MAC), then
// the MAC, then the contents: a body error after the MAC is an authentic
// peer's version skew or bug, worth its own counter.
WireDrop Codec::check(const uint8_t* buf, size_t len, Datagram* out) const {
  if (len < kHeaderSize + kMacSize) return WireDrop::kTruncated;
  if (len > kMaxDatagram) return WireDrop::kTooLong;
  if (std::memcmp(buf + off::kMagic, kMagic, sizeof kMagic) != 0) return WireDrop::kBadMagic;
  if (buf[off::kVersion] != kVersion) return WireDrop::kBadVersion;
  const Header h = read_header(buf);
  if (h.cluster_id != cfg_.cluster_id) return WireDrop::kWrongCluster;
  if (h.receiver != cfg_.self || h.sender == cfg_.self) return WireDrop::kWrongReceiver;
  if (!verify(buf, len)) return WireDrop::kBadMac;

  const std::span<const uint8_t> payload(buf + kHeaderSize, len - kHeaderSize - kMacSize);
  if (h.flags != 0 || load_be32(buf + off::kReserved) != 0) return WireDrop::kBadFlags;
  switch (h.type) {
    case MsgType::kHeartbeat:
      if (h.seq != 0) return WireDrop::kBadSeq;
      if (h.count != 0 || payload.size() != kHeartbeatSize) return WireDrop::kBadBody;
      break;
    case MsgType::kAck:
      if (h.seq != 0) return WireDrop::kBadSeq;
      if (h.count != 0 || !payload.empty()) return WireDrop::kBadBody;
      break;
    case MsgType::kData: {
      if (h.seq == 0) return WireDrop::kBadSeq;
      const WireDrop r = check_records(h, payload);
      if (r != WireDrop::kOk) return r;
      break;
    }
    default:
      return WireDrop::kBadType;
  }
  out->header = h;
  out->payload = payload;
  return WireDrop::kOk;
}

// Walks every record before any is delivered, so a datagram is accepted or
// dropped whole.
WireDrop Codec::check_records(const Header& h, std::span<const uint8_t> payload) const {
  if (h.count == 0) return WireDrop::kBadRecordCount;
  size_t pos = 0;
  for (unsigned i = 0; i < h.count; ++i) {
    if (payload.size() - pos < kRecordHeaderSize) return WireDrop::kTruncatedRecord;
    const uint8_t* p = payload.data() + pos;
    const uint16_t size = records_.size_of(p[0]);
    if (size == 0) return WireDrop::kUnknownRecordType;
    if (p[1] != 0) return WireDrop::kBadFlags;
    const uint16_t n = load_be16(p + 2);
    if (n != size) return WireDrop::kBadRecordLength;
    if (payload.size() - pos - kRecordHeaderSize < n) return WireDrop::kTruncatedRecord;
    pos += kRecordHeaderSize + n;
  }
  // Trailing bytes mean the count and the payload disagree.
  if (pos != payload.size()) return WireDrop::kBadRecordCount;
  return WireDrop::kOk;
}

void Codec::export_counters(const CounterFn& fn) const {
  for (size_t i = 0; i < counters_.size(); ++i) {
    fn(std::string("wire_") + std::string(kWireDropNames[i]), counters_.get(i));
  }
}

}  // namespace tripod::cluster::wire
