// Shared by the wire tests, fuzz target, corpus generator and benchmark: a
// record table, keys, and hand-built datagrams.
#pragma once

#include <algorithm>
#include <cstdint>
#include <span>
#include <vector>

#include "cluster/wire/format.h"

namespace tripod::cluster::wire::testing {

inline constexpr uint32_t kClusterId = 0x7e570001;
inline constexpr uint8_t kFlowRecord = 1;   // a flow checkpoint's size
inline constexpr uint8_t kSmallRecord = 2;  // e.g. a flow's release
inline constexpr uint8_t kBigRecord = 3;
inline constexpr uint16_t kFlowRecordSize = 48;
inline constexpr uint16_t kSmallRecordSize = 8;
inline constexpr uint16_t kBigRecordSize = 200;

inline RecordTable test_records() {
  return RecordTable{{kFlowRecord, kFlowRecordSize},
                     {kSmallRecord, kSmallRecordSize},
                     {kBigRecord, kBigRecordSize}};
}

inline CodecConfig codec_config(uint16_t self, uint8_t key_seed = 3) {
  CodecConfig c;
  c.cluster_id = kClusterId;
  c.self = self;
  for (size_t i = 0; i < c.key.size(); ++i)
    c.key[i] = static_cast<uint8_t>(i * 7 + key_seed);
  return c;
}

// Appends one record (header + body) to `out`; the length written is the
// body's, so a wrong-size body makes a bad record on purpose.
inline void append_record(std::vector<uint8_t>* out, uint8_t type, std::span<const uint8_t> body,
                          uint8_t reserved = 0) {
  const size_t at = out->size();
  out->resize(at + kRecordHeaderSize + body.size());
  (*out)[at] = type;
  (*out)[at + 1] = reserved;
  store_be16(out->data() + at + 2, static_cast<uint16_t>(body.size()));
  std::copy(body.begin(), body.end(), out->begin() + static_cast<long>(at + kRecordHeaderSize));
}

// Header + payload, sealed with `sealer`'s key (or not sealed: MAC zero).
inline std::vector<uint8_t> build(const Codec& sealer, const Header& h,
                                  std::span<const uint8_t> payload, bool seal = true) {
  std::vector<uint8_t> d(kHeaderSize + payload.size() + kMacSize);
  write_header(h, d.data());
  std::copy(payload.begin(), payload.end(), d.begin() + kHeaderSize);
  if (seal) sealer.seal(d.data(), kHeaderSize + payload.size());
  return d;
}

inline Header data_header(uint16_t from, uint16_t to, uint64_t seq, uint8_t count) {
  Header h;
  h.type = MsgType::kData;
  h.count = count;
  h.cluster_id = kClusterId;
  h.sender = from;
  h.receiver = to;
  h.sender_inc = 1;
  h.receiver_inc = 1;
  h.seq = seq;
  return h;
}

}  // namespace tripod::cluster::wire::testing
