// Replication datagrams: a fixed 64-byte header in network byte order, a
// payload, and a 16-byte keyed BLAKE2b MAC over both (README.md beside this
// file). Pure logic: no socket, no clock, no allocation after construction.
//
// Contract of Codec::open(): every read is bounded by the datagram length;
// a datagram is either accepted whole (header, MAC and every record checked
// before anything is handed out) or dropped and counted by WireDrop. Nothing
// an outside datagram can contain makes it crash or throw.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <span>
#include <string_view>
#include <utility>

#include "common/byte_order.h"
#include "common/counters.h"

namespace tripod::cluster::wire {

inline constexpr uint8_t kMagic[4] = {'T', 'P', 'R', '1'};
// 2: a flow's slot is its canonical key's hash (flow_sync.h): nodes of
// version 1 put the same flows in other slots, so they must not mix.
inline constexpr uint8_t kVersion = 2;
inline constexpr size_t kHeaderSize = 64;
inline constexpr size_t kMacSize = 16;  // BLAKE2b truncated to 128 bits
inline constexpr size_t kKeySize = 32;  // crypto_generichash_KEYBYTES
// Fits a 1500-byte MTU under IPv6 + UDP with room for a tunnel header, so
// replication never depends on fragmentation.
inline constexpr size_t kMaxDatagram = 1400;
inline constexpr size_t kMaxPayload = kMaxDatagram - kHeaderSize - kMacSize;
inline constexpr size_t kRecordHeaderSize = 4;  // type u8, reserved u8, length u16
inline constexpr size_t kMaxRecords = 255;      // the header's count is a u8
static_assert(kMaxPayload == 1320);

// Byte offsets of the header fields (all multi-byte fields big-endian).
namespace off {
inline constexpr size_t kMagic = 0;
inline constexpr size_t kVersion = 4;
inline constexpr size_t kType = 5;
inline constexpr size_t kFlags = 6;
inline constexpr size_t kCount = 7;
inline constexpr size_t kClusterId = 8;
inline constexpr size_t kSender = 12;
inline constexpr size_t kReceiver = 14;
inline constexpr size_t kSenderInc = 16;
inline constexpr size_t kReceiverInc = 24;
inline constexpr size_t kEpoch = 32;
inline constexpr size_t kReserved = 36;
inline constexpr size_t kSeq = 40;
inline constexpr size_t kAck = 48;
inline constexpr size_t kSack = 56;
}  // namespace off
static_assert(off::kSack + 8 == kHeaderSize);

enum class MsgType : uint8_t {
  kHeartbeat = 1,  // unreliable: node state for the failure detector
  kData = 2,       // reliable: records
  kAck = 3,        // unreliable: only the ack fields
};

// Host-order view of the header.
struct Header {
  MsgType type = MsgType::kAck;
  uint8_t flags = 0;  // none defined in version 1: must be 0
  uint8_t count = 0;  // records in a DATA payload; 0 otherwise
  uint32_t cluster_id = 0;
  uint16_t sender = 0;
  uint16_t receiver = 0;
  uint64_t sender_inc = 0;    // changes (grows) when the sender restarts
  uint64_t receiver_inc = 0;  // the sender's view of the receiver's incarnation; 0 = unknown
  uint32_t epoch = 0;         // membership epoch of the sender (carried, not checked here)
  uint64_t seq = 0;           // DATA: >= 1; unreliable messages: 0
  uint64_t ack = 0;           // all of the receiver's seqs <= ack were received
  uint64_t sack = 0;          // bit i: seq ack+1+i was received too
};

void write_header(const Header& h, uint8_t* out);  // kHeaderSize bytes
Header read_header(const uint8_t* in);             // kHeaderSize bytes, unchecked

// HEARTBEAT body. A failure detector needs the sender's liveness (arrival
// time, taken by the caller), its announced interval (to scale a timeout or a
// phi-accrual estimate), its readiness and its view of the members; hb_seq
// grows per heartbeat so a replayed one is recognised.
inline constexpr uint32_t kStateReady = 1u << 0;
inline constexpr uint32_t kStateDraining = 1u << 1;
struct Heartbeat {
  uint64_t hb_seq = 0;       // set by the channel
  uint64_t members = 0;      // bit n: the sender sees node n as live
  uint32_t state = 0;        // kState*
  uint32_t interval_us = 0;  // the sender's heartbeat period
};
inline constexpr size_t kHeartbeatSize = 24;
static_assert(kHeartbeatSize == 2 * sizeof(uint64_t) + 2 * sizeof(uint32_t));
void write_heartbeat(const Heartbeat& hb, uint8_t* out);  // kHeartbeatSize bytes
Heartbeat read_heartbeat(const uint8_t* in);

// The record types a cluster uses and the fixed size of each body. The
// transport treats bodies as opaque bytes; a fixed size per type makes a
// length mismatch (a version skew or a bug) a counted drop, never a misparse.
class RecordTable {
 public:
  // Throws std::invalid_argument for a size of 0, a body that could not fit
  // a datagram, or a type given twice.
  RecordTable(std::initializer_list<std::pair<uint8_t, uint16_t>> types);
  uint16_t size_of(uint8_t type) const { return size_[type]; }  // 0: unknown type

 private:
  std::array<uint16_t, 256> size_{};
};

struct Record {
  uint8_t type = 0;
  std::span<const uint8_t> body;
};

#define TRIPOD_WIRE_DROPS(X)                   \
  X(kOk, "ok")                                 \
  X(kTruncated, "truncated")                   \
  X(kTooLong, "too_long")                      \
  X(kBadMagic, "bad_magic")                    \
  X(kBadVersion, "bad_version")                \
  X(kWrongCluster, "wrong_cluster")            \
  X(kWrongReceiver, "wrong_receiver")          \
  X(kBadMac, "bad_mac")                        \
  X(kBadType, "bad_type")                      \
  X(kBadFlags, "bad_flags")                    \
  X(kBadSeq, "bad_seq")                        \
  X(kBadBody, "bad_body")                      \
  X(kUnknownRecordType, "unknown_record_type") \
  X(kBadRecordLength, "bad_record_length")     \
  X(kTruncatedRecord, "truncated_record")      \
  X(kBadRecordCount, "bad_record_count")

TRIPOD_DECLARE_REASONS(WireDrop, TRIPOD_WIRE_DROPS)

// An accepted datagram; `payload` points into the caller's buffer.
struct Datagram {
  Header header;
  std::span<const uint8_t> payload;
};

struct CodecConfig {
  uint32_t cluster_id = 0;
  uint16_t self = 0;  // this node's id
  std::array<uint8_t, kKeySize> key{};
};

// Seals and opens datagrams of one node. One per agent thread: open() counts.
class Codec {
 public:
  using CounterFn = std::function<void(std::string_view name, uint64_t value)>;

  // Throws std::runtime_error if libsodium cannot initialise.
  Codec(const CodecConfig& cfg, const RecordTable& records);

  // Writes the MAC of buf[0, len) at buf + len; returns len + kMacSize.
  // The caller provides kMacSize bytes of room.
  size_t seal(uint8_t* buf, size_t len) const;
  // Constant-time check of the MAC at buf + len - kMacSize (len >= kMacSize).
  bool verify(const uint8_t* buf, size_t len) const;

  // Checks and parses one datagram as received. kOk fills `out`; any other
  // result is a drop, already counted.
  WireDrop open(const uint8_t* buf, size_t len, Datagram* out);

  // The records of an accepted DATA datagram, in order.
  template <typename Fn>
  void for_each_record(const Datagram& d, Fn&& fn) const {
    const uint8_t* p = d.payload.data();
    for (unsigned i = 0; i < d.header.count; ++i) {
      const uint16_t n = load_be16(p + 2);
      fn(Record{p[0], {p + kRecordHeaderSize, n}});
      p += kRecordHeaderSize + n;
    }
  }

  uint32_t cluster_id() const { return cfg_.cluster_id; }
  uint16_t self() const { return cfg_.self; }
  const RecordTable& records() const { return records_; }
  const CounterSet<WireDrop, size_t(WireDrop::kCount)>& counters() const { return counters_; }
  void export_counters(const CounterFn& fn) const;

 private:
  WireDrop check(const uint8_t* buf, size_t len, Datagram* out) const;
  WireDrop check_records(const Header& h, std::span<const uint8_t> payload) const;

  CodecConfig cfg_;
  RecordTable records_;
  CounterSet<WireDrop, size_t(WireDrop::kCount)> counters_;
};

}  // namespace tripod::cluster::wire
