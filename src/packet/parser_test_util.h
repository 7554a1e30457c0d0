// Table-driven parser tests (Katran's habit): each case is a description, a
// frame from the builder (possibly damaged on purpose), the expected
// ParseError and the meta fields that must hold exactly.
#pragma once

#include <gtest/gtest.h>

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "common/byte_order.h"
#include "packet/builder.h"
#include "packet/meta_check.h"
#include "packet/parser.h"

namespace tripod::testing {

// Fields left unset are not checked. Declaration order matters for the
// designated initialisers in the tables; the `{}` initialisers keep GCC's
// -Wmissing-field-initializers quiet about the fields a case leaves out.
struct Expect {
  std::optional<uint16_t> flags{};  // exact set of kMeta* flags
  std::optional<Family> family{};
  std::optional<uint8_t> proto{};
  std::optional<uint16_t> l3_off{};
  std::optional<uint16_t> l4_off{};
  std::optional<uint16_t> payload_off{};
  std::optional<uint16_t> l3_end{};
  std::optional<std::string> src{};
  std::optional<std::string> dst{};
  std::optional<uint16_t> sport{};
  std::optional<uint16_t> dport{};
  std::optional<uint16_t> vlan_tci{};
  std::optional<uint16_t> ethertype{};
  std::optional<uint8_t> ttl{};
  std::optional<uint32_t> tcp_seq{};
  std::optional<uint32_t> tcp_ack{};
  std::optional<uint8_t> tcp_flags{};
  std::optional<uint8_t> tcp_hdr_len{};
  std::optional<uint16_t> tcp_window{};
  std::optional<uint16_t> frag_offset{};
  std::optional<uint16_t> ip_frag_id_lo{};
  std::optional<uint8_t> icmp_type{};
  std::optional<uint8_t> icmp_code{};
  // The quote of an ICMP error.
  std::optional<uint16_t> in_l3_off{};
  std::optional<uint16_t> in_l4_off{};
  std::optional<uint8_t> in_proto{};
  std::optional<std::string> in_src{};
  std::optional<std::string> in_dst{};
  std::optional<uint16_t> in_sport{};
  std::optional<uint16_t> in_dport{};
  std::optional<uint8_t> in_l4_quoted{};
};

struct ParseCase {
  std::string name;
  Bytes pkt;
  ParseError err;
  Expect expect = {};
  // Extra assertions on the frame (e.g. the MTU field of an ICMP error).
  std::function<void(const Bytes&, const PacketMeta&)> extra = nullptr;
};

std::vector<ParseCase> l2l3_cases();  // parser_test.cc
std::vector<ParseCase> l4_cases();    // parser_l4_test.cc

inline void PrintTo(const ParseCase& c, std::ostream* os) {
  *os << c.name;
}

inline Bytes cut(Bytes b, size_t n) {
  b.resize(n);
  return b;
}
inline Bytes poke(Bytes b, size_t off, uint8_t v) {
  b.at(off) = v;
  return b;
}
inline Bytes poke16(Bytes b, size_t off, uint16_t v) {
  b.at(off + 1);  // bounds check
  store_be16(b.data() + off, v);
  return b;
}
inline Bytes pad_to(Bytes b, size_t n) {
  if (b.size() < n) b.resize(n, 0);
  return b;
}
inline Bytes bytes(size_t n, uint8_t fill = 0xAB) {
  return Bytes(n, fill);
}

// Default endpoints used throughout the tables.
inline PacketBuilder v4() {
  return PacketBuilder().ipv4("10.0.0.1", "192.0.2.10");
}
inline PacketBuilder v6() {
  return PacketBuilder().ipv6("2001:db8::1", "2001:db8:ffff::10");
}

inline std::string addr_at(const Bytes& b, Family f, uint16_t off) {
  return format_ip(f, b.data() + off);
}

inline void check_case(const ParseCase& c) {
  SCOPED_TRACE(c.name);
  PacketMeta m;
  const ParseError err = parse_packet(c.pkt.data(), static_cast<uint32_t>(c.pkt.size()), &m);
  ASSERT_EQ(to_string(err), to_string(c.err));
  if (err == ParseError::kOk) {
    const char* why = meta_problem(m, static_cast<uint32_t>(c.pkt.size()));
    EXPECT_EQ(why, nullptr) << why;
  }
  const Expect& e = c.expect;
#define TRIPOD_EXPECT_FIELD(field, actual) \
  if (e.field) {                           \
    EXPECT_EQ(*e.field, actual) << #field; \
  }
  TRIPOD_EXPECT_FIELD(flags, m.flags);
  TRIPOD_EXPECT_FIELD(family, m.family);
  TRIPOD_EXPECT_FIELD(proto, m.proto);
  TRIPOD_EXPECT_FIELD(l3_off, m.l3_off);
  TRIPOD_EXPECT_FIELD(l4_off, m.l4_off);
  TRIPOD_EXPECT_FIELD(payload_off, m.payload_off);
  TRIPOD_EXPECT_FIELD(l3_end, m.l3_end);
  TRIPOD_EXPECT_FIELD(src, addr_at(c.pkt, m.family, m.src_off));
  TRIPOD_EXPECT_FIELD(dst, addr_at(c.pkt, m.family, m.dst_off));
  TRIPOD_EXPECT_FIELD(sport, m.sport);
  TRIPOD_EXPECT_FIELD(dport, m.dport);
  TRIPOD_EXPECT_FIELD(vlan_tci, m.vlan_tci);
  TRIPOD_EXPECT_FIELD(ethertype, m.ethertype);
  TRIPOD_EXPECT_FIELD(ttl, m.ttl);
  TRIPOD_EXPECT_FIELD(tcp_seq, m.tcp_seq);
  TRIPOD_EXPECT_FIELD(tcp_ack, m.tcp_ack);
  TRIPOD_EXPECT_FIELD(tcp_flags, m.tcp_flags);
  TRIPOD_EXPECT_FIELD(tcp_hdr_len, m.tcp_hdr_len);
  TRIPOD_EXPECT_FIELD(tcp_window, m.tcp_window);
  TRIPOD_EXPECT_FIELD(frag_offset, m.frag_offset);
  TRIPOD_EXPECT_FIELD(ip_frag_id_lo, m.ip_frag_id_lo);
  TRIPOD_EXPECT_FIELD(icmp_type, m.icmp_type);
  TRIPOD_EXPECT_FIELD(icmp_code, m.icmp_code);
  TRIPOD_EXPECT_FIELD(in_l3_off, m.inner.l3_off);
  TRIPOD_EXPECT_FIELD(in_l4_off, m.inner.l4_off);
  TRIPOD_EXPECT_FIELD(in_proto, m.inner.proto);
  TRIPOD_EXPECT_FIELD(in_src, addr_at(c.pkt, m.inner.family, m.inner.src_off));
  TRIPOD_EXPECT_FIELD(in_dst, addr_at(c.pkt, m.inner.family, m.inner.dst_off));
  TRIPOD_EXPECT_FIELD(in_sport, m.inner.sport);
  TRIPOD_EXPECT_FIELD(in_dport, m.inner.dport);
  TRIPOD_EXPECT_FIELD(in_l4_quoted, m.inner.l4_quoted);
#undef TRIPOD_EXPECT_FIELD
  if (c.extra) c.extra(c.pkt, m);
}

}  // namespace tripod::testing
