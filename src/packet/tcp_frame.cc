#include "packet/tcp_frame.h"

#include <cstring>
#include <utility>

namespace tripod {

uint32_t write_tcp_frame(const TcpFrameSpec& s, uint8_t* out, uint32_t cap) {
  const bool v4 = s.family == Family::kIpv4;
  const uint32_t alen = v4 ? 4 : 16;
  const uint32_t ip_len = v4 ? 20 : 40;
  const uint32_t opt_len = s.opts != nullptr ? s.opts->size() : 0;
  const uint32_t tcp_len = 20 + opt_len;
  const uint32_t len = s.l2_len + ip_len + tcp_len;
  if (len > cap || (opt_len & 3) != 0) return 0;

  std::memcpy(out, s.l2, s.l2_len);
  if (s.swap_macs) {
    std::memcpy(out, s.l2 + 6, 6);
    std::memcpy(out + 6, s.l2, 6);
  }

  uint8_t* ip = out + s.l2_len;
  const uint8_t tos = s.dscp_tos & 0xFC;  // SYN and pure ACKs are Not-ECT (RFC 3168 6.1.1)
  if (v4) {
    ip[0] = 0x45;
    ip[1] = tos;
    store_be16(ip + 2, static_cast<uint16_t>(ip_len + tcp_len));
    store_be16(ip + 4, 0);       // id: atomic datagram (RFC 6864)
    store_be16(ip + 6, 0x4000);  // DF
    ip[8] = s.ttl;
    ip[9] = kProtoTcp;
    store_be16(ip + 10, 0);
    std::memcpy(ip + 12, s.src, 4);
    std::memcpy(ip + 16, s.dst, 4);
    store_be16(ip + 10, ipv4_header_checksum(ip, 20));
  } else {
    store_be32(ip, 6u << 28 | static_cast<uint32_t>(tos) << 20 | (s.flow_label & 0xFFFFF));
    store_be16(ip + 4, static_cast<uint16_t>(tcp_len));
    ip[6] = kProtoTcp;
    ip[7] = s.ttl;
    std::memcpy(ip + 8, s.src, 16);
    std::memcpy(ip + 24, s.dst, 16);
  }

  uint8_t* tcp = ip + ip_len;
  store_be16(tcp, s.sport);
  store_be16(tcp + 2, s.dport);
  store_be32(tcp + 4, s.seq);
  store_be32(tcp + 8, s.ack);
  tcp[12] = static_cast<uint8_t>(tcp_len / 4 << 4);
  tcp[13] = s.flags;
  store_be16(tcp + 14, s.window);
  store_be32(tcp + 16, 0);  // checksum, urgent pointer
  if (opt_len != 0) std::memcpy(tcp + 20, s.opts->data(), opt_len);

  // RFC 9293 3.1 / RFC 8200 8.1 pseudo-header.
  uint64_t sum = csum_add_bytes(0, s.src, alen);
  sum = csum_add_bytes(sum, s.dst, alen);
  uint8_t tail[4] = {0, kProtoTcp, 0, 0};
  store_be16(tail + 2, static_cast<uint16_t>(tcp_len));
  sum = csum_add_bytes(sum, tail, 4);
  sum = csum_add_bytes(sum, tcp, tcp_len);
  store_be16(tcp + 16, csum_finish(sum));
  return len;
}

TcpFrameSpec tcp_frame_forward(const uint8_t* frame, const PacketMeta& m) {
  TcpFrameSpec s;
  s.l2 = frame;
  s.l2_len = m.l3_off;
  s.family = m.family;
  s.src = frame + m.src_off;
  s.dst = frame + m.dst_off;
  s.sport = m.sport;
  s.dport = m.dport;
  return s;
}

TcpFrameSpec tcp_frame_reply(const uint8_t* frame, const PacketMeta& m) {
  TcpFrameSpec s = tcp_frame_forward(frame, m);
  s.swap_macs = true;
  std::swap(s.src, s.dst);
  std::swap(s.sport, s.dport);
  return s;
}

uint32_t write_tcp_reset(const uint8_t* frame, const PacketMeta& m, bool to_sender, uint8_t* out,
                         uint32_t cap) {
  if (!is_tcp_segment(m)) return 0;
  const uint32_t data = m.l3_end > m.payload_off ? uint32_t{m.l3_end} - m.payload_off : 0;
  const uint32_t end =
      m.tcp_seq + data + ((m.tcp_flags & kTcpSyn) ? 1 : 0) + ((m.tcp_flags & kTcpFin) ? 1 : 0);
  TcpFrameSpec s = to_sender ? tcp_frame_reply(frame, m) : tcp_frame_forward(frame, m);
  s.flags = kTcpRst | kTcpAck;
  if (to_sender) {
    s.seq = (m.tcp_flags & kTcpAck) ? m.tcp_ack : 0;
    s.ack = end;
  } else {
    s.seq = m.tcp_seq;
    s.ack = m.tcp_ack;
    if ((m.tcp_flags & kTcpAck) == 0) s.flags = kTcpRst;
  }
  return write_tcp_frame(s, out, cap);
}

}  // namespace tripod
