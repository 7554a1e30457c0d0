// Packet builder. Assembles L4, then wraps it in IP, then in Ethernet, and
// computes lengths and checksums from the real layout unless a malformation
// knob overrides them (the knobs only change what is written, never the
// layout, so the rest of the packet stays well formed).
#include "packet/builder.h"

#include <arpa/inet.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "common/byte_order.h"
#include "packet/checksum.h"

namespace tripod {
namespace {

[[noreturn]] void die(const char* what, std::string_view arg = {}) {
  std::fprintf(stderr, "PacketBuilder: %s '%.*s'\n", what, static_cast<int>(arg.size()),
               arg.data());
  std::abort();
}

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

void parse_mac(std::string_view text, uint8_t out[6]) {
  if (text.size() != 17) die("bad MAC", text);
  for (size_t i = 0; i < 6; ++i) {
    const int hi = hex_digit(text[3 * i]), lo = hex_digit(text[3 * i + 1]);
    if (hi < 0 || lo < 0 || (i < 5 && text[3 * i + 2] != ':')) die("bad MAC", text);
    out[i] = static_cast<uint8_t>(hi * 16 + lo);
  }
}

void put16(Bytes* b, uint16_t v) {
  b->push_back(static_cast<uint8_t>(v >> 8));
  b->push_back(static_cast<uint8_t>(v));
}
void put32(Bytes* b, uint32_t v) {
  put16(b, static_cast<uint16_t>(v >> 16));
  put16(b, static_cast<uint16_t>(v));
}
void append(Bytes* b, std::span<const uint8_t> s) {
  b->insert(b->end(), s.begin(), s.end());
}

uint16_t u16(size_t v) {
  if (v > 0xFFFF) die("packet longer than 64 KiB");
  return static_cast<uint16_t>(v);
}

}  // namespace

bool parse_ip(std::string_view text, Family* family, uint8_t out[16]) {
  const std::string s(text);
  if (inet_pton(AF_INET, s.c_str(), out) == 1) {
    *family = Family::kIpv4;
    return true;
  }
  if (inet_pton(AF_INET6, s.c_str(), out) == 1) {
    *family = Family::kIpv6;
    return true;
  }
  return false;
}

std::string format_ip(Family family, const uint8_t* addr) {
  char buf[INET6_ADDRSTRLEN] = {};
  const int af = family == Family::kIpv6 ? AF_INET6 : AF_INET;
  if (inet_ntop(af, addr, buf, sizeof buf) == nullptr) return "?";
  return buf;
}

PacketBuilder& PacketBuilder::eth(std::string_view src, std::string_view dst) {
  parse_mac(src, eth_src_);
  parse_mac(dst, eth_dst_);
  return *this;
}
PacketBuilder& PacketBuilder::vlan(uint16_t vid, uint8_t pcp) {
  vlan_tci_ = static_cast<uint16_t>((pcp & 7u) << 13 | (vid & 0xFFFu));
  return *this;
}
PacketBuilder& PacketBuilder::ethertype(uint16_t type) {
  raw_ethertype_ = type;
  return *this;
}

PacketBuilder& PacketBuilder::ipv4(std::string_view src, std::string_view dst) {
  Family fs, fd;
  if (!parse_ip(src, &fs, src_) || fs != Family::kIpv4) die("bad IPv4 address", src);
  if (!parse_ip(dst, &fd, dst_) || fd != Family::kIpv4) die("bad IPv4 address", dst);
  family_ = Family::kIpv4;
  return *this;
}
PacketBuilder& PacketBuilder::ipv6(std::string_view src, std::string_view dst) {
  Family fs, fd;
  if (!parse_ip(src, &fs, src_) || fs != Family::kIpv6) die("bad IPv6 address", src);
  if (!parse_ip(dst, &fd, dst_) || fd != Family::kIpv6) die("bad IPv6 address", dst);
  family_ = Family::kIpv6;
  return *this;
}
PacketBuilder& PacketBuilder::ttl(uint8_t t) {
  ttl_ = t;
  return *this;
}
PacketBuilder& PacketBuilder::tos(uint8_t t) {
  tos_ = t;
  return *this;
}
PacketBuilder& PacketBuilder::ip_id(uint16_t id) {
  ip_id_ = id;
  return *this;
}
PacketBuilder& PacketBuilder::dont_fragment() {
  df_ = true;
  return *this;
}
PacketBuilder& PacketBuilder::ipv4_options(std::span<const uint8_t> opts) {
  ip_opts_.assign(opts.begin(), opts.end());
  return *this;
}
PacketBuilder& PacketBuilder::fragment(uint16_t offset_bytes, bool more_fragments, uint32_t id) {
  if (family_ == Family::kIpv4) {
    frag_offset_ = offset_bytes;
    frag_more_ = more_fragments;
    frag_id_ = id;
    ip_id_ = static_cast<uint16_t>(id);
  } else if (family_ == Family::kIpv6) {
    Bytes body;
    put16(&body, static_cast<uint16_t>((offset_bytes & 0xFFF8u) | (more_fragments ? 1u : 0u)));
    put32(&body, id);
    exts_.push_back(Ext{44, std::move(body)});
  } else {
    die("fragment() before ipv4()/ipv6()");
  }
  return *this;
}
PacketBuilder& PacketBuilder::ipv6_ext(uint8_t type, std::span<const uint8_t> body) {
  exts_.push_back(Ext{type, Bytes(body.begin(), body.end())});
  return *this;
}
PacketBuilder& PacketBuilder::ip_proto(uint8_t proto) {
  raw_proto_ = proto;
  return *this;
}

PacketBuilder& PacketBuilder::tcp(uint16_t sport, uint16_t dport) {
  l4_ = L4::kTcp;
  sport_ = sport;
  dport_ = dport;
  return *this;
}
PacketBuilder& PacketBuilder::seq(uint32_t s) {
  seq_ = s;
  return *this;
}
PacketBuilder& PacketBuilder::ack_seq(uint32_t a) {
  ack_ = a;
  tcp_flags_ |= kTcpAck;
  return *this;
}
PacketBuilder& PacketBuilder::flags(uint8_t f) {
  tcp_flags_ = f;
  return *this;
}
PacketBuilder& PacketBuilder::syn() {
  return flags(tcp_flags_ | kTcpSyn);
}
PacketBuilder& PacketBuilder::fin() {
  return flags(tcp_flags_ | kTcpFin);
}
PacketBuilder& PacketBuilder::rst() {
  return flags(tcp_flags_ | kTcpRst);
}
PacketBuilder& PacketBuilder::psh() {
  return flags(tcp_flags_ | kTcpPsh);
}
PacketBuilder& PacketBuilder::window(uint16_t w) {
  window_ = w;
  return *this;
}
PacketBuilder& PacketBuilder::mss(uint16_t m) {
  tcp_opts_.insert(tcp_opts_.end(), {2, 4});
  put16(&tcp_opts_, m);
  return *this;
}
PacketBuilder& PacketBuilder::wscale(uint8_t shift) {
  tcp_opts_.insert(tcp_opts_.end(), {3, 3, shift});
  return *this;
}
PacketBuilder& PacketBuilder::sack_permitted() {
  tcp_opts_.insert(tcp_opts_.end(), {4, 2});
  return *this;
}
PacketBuilder& PacketBuilder::sack(std::span<const SackBlock> blocks) {
  tcp_opts_.push_back(5);
  tcp_opts_.push_back(static_cast<uint8_t>(2 + 8 * blocks.size()));
  for (const auto& b : blocks) {
    put32(&tcp_opts_, b.left);
    put32(&tcp_opts_, b.right);
  }
  return *this;
}
PacketBuilder& PacketBuilder::timestamps(uint32_t val, uint32_t ecr) {
  tcp_opts_.insert(tcp_opts_.end(), {8, 10});
  put32(&tcp_opts_, val);
  put32(&tcp_opts_, ecr);
  return *this;
}
PacketBuilder& PacketBuilder::tcp_raw_options(std::span<const uint8_t> opts) {
  append(&tcp_opts_, opts);
  return *this;
}

PacketBuilder& PacketBuilder::udp(uint16_t sport, uint16_t dport) {
  l4_ = L4::kUdp;
  sport_ = sport;
  dport_ = dport;
  return *this;
}
PacketBuilder& PacketBuilder::icmp_echo(bool request, uint16_t id, uint16_t s) {
  l4_ = L4::kIcmpEcho;
  echo_request_ = request;
  sport_ = id;
  seq_ = s;
  return *this;
}
PacketBuilder& PacketBuilder::icmp_error(uint8_t type, uint8_t code,
                                         std::span<const uint8_t> quoted, uint32_t info) {
  l4_ = L4::kIcmpError;
  icmp_type_ = type;
  icmp_code_ = code;
  icmp_info_ = info;
  quoted_.assign(quoted.begin(), quoted.end());
  return *this;
}

PacketBuilder& PacketBuilder::payload(std::span<const uint8_t> data) {
  append(&payload_, data);
  return *this;
}
PacketBuilder& PacketBuilder::payload(std::string_view text) {
  payload_.insert(payload_.end(), text.begin(), text.end());
  return *this;
}

PacketBuilder& PacketBuilder::ip_checksum(uint16_t forced) {
  forced_ip_csum_ = forced;
  return *this;
}
PacketBuilder& PacketBuilder::l4_checksum(uint16_t forced) {
  forced_l4_csum_ = forced;
  return *this;
}
PacketBuilder& PacketBuilder::ip_total_length(uint16_t forced) {
  forced_ip_len_ = forced;
  return *this;
}

Bytes PacketBuilder::build_l3() const {
  if (family_ == Family::kNone) die("build_l3() without ipv4()/ipv6()");
  const bool v4 = family_ == Family::kIpv4;

  // L4 header and payload, checksum field zero for now.
  Bytes l4;
  uint8_t l4_proto = 0;
  switch (l4_) {
    case L4::kTcp: {
      Bytes opts = tcp_opts_;
      while (opts.size() % 4 != 0)
        opts.push_back(1);  // NOP
      if (opts.size() > 40) die("TCP options longer than 40 bytes");
      l4_proto = kProtoTcp;
      put16(&l4, sport_);
      put16(&l4, dport_);
      put32(&l4, seq_);
      put32(&l4, ack_);
      l4.push_back(static_cast<uint8_t>((20 + opts.size()) / 4 << 4));
      l4.push_back(tcp_flags_);
      put16(&l4, window_);
      put32(&l4, 0);  // checksum, urgent pointer
      append(&l4, opts);
      break;
    }
    case L4::kUdp:
      l4_proto = kProtoUdp;
      put16(&l4, sport_);
      put16(&l4, dport_);
      put16(&l4, u16(8 + payload_.size()));
      put16(&l4, 0);
      break;
    case L4::kIcmpEcho:
    case L4::kIcmpError:
      l4_proto = v4 ? kProtoIcmp : kProtoIcmpv6;
      if (l4_ == L4::kIcmpEcho) {
        l4.push_back(echo_request_ ? (v4 ? 8 : 128) : (v4 ? 0 : 129));
        l4.push_back(0);
        put16(&l4, 0);
        put16(&l4, sport_);
        put16(&l4, static_cast<uint16_t>(seq_));
      } else {
        l4.push_back(icmp_type_);
        l4.push_back(icmp_code_);
        put16(&l4, 0);
        put32(&l4, icmp_info_);
        append(&l4, quoted_);
      }
      break;
    case L4::kNone:
      l4_proto = v4 ? 255 : 59;  // reserved / No Next Header unless ip_proto() says
      break;
  }
  append(&l4, payload_);
  const uint8_t proto = raw_proto_.value_or(l4_proto);

  Bytes out;
  PacketMeta m;  // the real layout, for the checksum helpers
  m.family = family_;
  m.proto = l4_proto;
  if (v4) {
    Bytes opts = ip_opts_;
    while (opts.size() % 4 != 0)
      opts.push_back(0);  // EOL
    if (opts.size() > 40) die("IPv4 options longer than 40 bytes");
    const size_t ihl = 20 + opts.size();
    const uint16_t fo = static_cast<uint16_t>((df_ ? 0x4000 : 0) | (frag_more_ ? 0x2000 : 0) |
                                              (frag_offset_.value_or(0) / 8 & 0x1FFF));
    out.push_back(static_cast<uint8_t>(0x40 | ihl / 4));
    out.push_back(tos_);
    put16(&out, forced_ip_len_.value_or(u16(ihl + l4.size())));
    put16(&out, ip_id_);
    put16(&out, fo);
    out.push_back(ttl_);
    out.push_back(proto);
    put16(&out, 0);
    out.insert(out.end(), src_, src_ + 4);
    out.insert(out.end(), dst_, dst_ + 4);
    append(&out, opts);
    store_be16(out.data() + 10, forced_ip_csum_.value_or(ipv4_header_checksum(out.data(), ihl)));
    m.src_off = 12;
    m.dst_off = 16;
  } else {
    size_t ext_len = 0;
    for (const auto& e : exts_)
      ext_len += e.type == 44 ? 8 : (2 + e.body.size() + 7) / 8 * 8;
    out.push_back(static_cast<uint8_t>(0x60 | tos_ >> 4));
    out.push_back(static_cast<uint8_t>(tos_ << 4));
    put16(&out, 0);  // flow label
    put16(&out, forced_ip_len_.value_or(u16(ext_len + l4.size())));
    out.push_back(exts_.empty() ? proto : exts_.front().type);
    out.push_back(ttl_);
    out.insert(out.end(), src_, src_ + 16);
    out.insert(out.end(), dst_, dst_ + 16);
    for (size_t i = 0; i < exts_.size(); ++i) {
      const Ext& e = exts_[i];
      const size_t start = out.size();
      const size_t total = e.type == 44 ? 8 : (2 + e.body.size() + 7) / 8 * 8;
      out.push_back(i + 1 < exts_.size() ? exts_[i + 1].type : proto);
      // AH counts 4-octet units minus 2 (RFC 4302); Fragment has a reserved
      // byte; the others count 8-octet units minus 1.
      out.push_back(static_cast<uint8_t>(e.type == 51   ? total / 4 - 2
                                         : e.type == 44 ? 0
                                                        : total / 8 - 1));
      append(&out, e.body);
      out.resize(start + total, 0);  // PadN-free zero padding (Pad1 options)
    }
    m.src_off = 8;
    m.dst_off = 24;
  }
  m.l4_off = u16(out.size());
  append(&out, l4);
  m.l3_end = u16(out.size());

  if (l4_ != L4::kNone) {
    const size_t cs = l4_ == L4::kTcp ? 16 : l4_ == L4::kUdp ? 6 : 2;
    uint16_t c;
    if (forced_l4_csum_) {
      c = *forced_l4_csum_;
    } else {
      m.flags = kMetaHasL4;
      c = tripod::l4_checksum(out.data(), m);
      if (l4_ == L4::kUdp && c == 0) c = 0xFFFF;  // RFC 768
    }
    store_be16(out.data() + m.l4_off + cs, c);
  }
  return out;
}

Bytes PacketBuilder::build() const {
  Bytes out(eth_dst_, eth_dst_ + 6);
  out.insert(out.end(), eth_src_, eth_src_ + 6);
  if (vlan_tci_) {
    put16(&out, kEtherTypeVlan);
    put16(&out, *vlan_tci_);
  }
  if (family_ == Family::kNone) {
    if (!raw_ethertype_) die("build() without L3 or ethertype()");
    put16(&out, *raw_ethertype_);
    append(&out, payload_);
    return out;
  }
  put16(&out, raw_ethertype_.value_or(family_ == Family::kIpv4 ? kEtherTypeIpv4 : kEtherTypeIpv6));
  append(&out, build_l3());
  return out;
}

}  // namespace tripod
