// TCP option walk (RFC 9293 3.2, RFC 7323, RFC 2018). Bounded by the header
// length the parser already validated against the datagram.
#include <algorithm>

#include "common/byte_order.h"
#include "packet/parser.h"

namespace tripod {
namespace {

constexpr uint8_t kOptEol = 0;
constexpr uint8_t kOptNop = 1;
constexpr uint8_t kOptMss = 2;
constexpr uint8_t kOptWscale = 3;
constexpr uint8_t kOptSackPermitted = 4;
constexpr uint8_t kOptSack = 5;
constexpr uint8_t kOptTimestamps = 8;
constexpr uint8_t kMaxWscale = 14;  // RFC 7323 2.3

}  // namespace

ParseError parse_tcp_options(const uint8_t* data, const PacketMeta& meta, TcpOptions* out) {
  *out = TcpOptions{};
  // Only meaningful for a parsed TCP header; anything else is a caller bug,
  // reported rather than read.
  if (!meta.has(kMetaHasL4) || meta.proto != kProtoTcp || meta.tcp_hdr_len < 20) {
    return ParseError::kBadTcpOptions;
  }
  const uint32_t base = meta.l4_off;
  const uint32_t end = base + meta.tcp_hdr_len;
  uint32_t i = base + 20;
  while (i < end) {
    const uint8_t kind = data[i];
    if (kind == kOptEol) break;
    if (kind == kOptNop) {
      ++i;
      continue;
    }
    if (end - i < 2) return ParseError::kBadTcpOptions;
    const uint8_t olen = data[i + 1];
    if (olen < 2 || olen > end - i) return ParseError::kBadTcpOptions;
    const uint8_t* o = data + i;
    switch (kind) {
      case kOptMss:
        if (olen != 4) return ParseError::kBadTcpOptions;
        out->has_mss = true;
        out->mss = load_be16(o + 2);
        break;
      case kOptWscale:
        if (olen != 3) return ParseError::kBadTcpOptions;
        out->has_wscale = true;
        out->wscale = std::min(o[2], kMaxWscale);
        break;
      case kOptSackPermitted:
        if (olen != 2) return ParseError::kBadTcpOptions;
        out->sack_permitted = true;
        break;
      case kOptSack: {
        const uint32_t n = (olen - 2u) / 8;
        if ((olen - 2u) % 8 != 0 || n < 1 || n > 4) return ParseError::kBadTcpOptions;
        out->num_sack = static_cast<uint8_t>(n);
        out->sack_off = static_cast<uint16_t>(i + 2);
        for (uint32_t b = 0; b < n; ++b) {
          out->sack[b].left = load_be32(o + 2 + 8 * b);
          out->sack[b].right = load_be32(o + 6 + 8 * b);
        }
        break;
      }
      case kOptTimestamps:
        if (olen != 10) return ParseError::kBadTcpOptions;
        out->has_timestamps = true;
        out->ts_val = load_be32(o + 2);
        out->ts_ecr = load_be32(o + 6);
        out->ts_off = static_cast<uint16_t>(i + 2);
        break;
      default:
        break;  // unknown: skipped by its length
    }
    i += olen;
  }
  return ParseError::kOk;
}

}  // namespace tripod
