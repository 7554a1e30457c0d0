// Shared by the SYN proxy tests: endpoints, packet shorthands, and a minimal
// SYN-proxy stage over a ConnTable (the pipeline's future stage, reduced to
// what the tests assert on).
#pragma once

#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "common/clock.h"
#include "nf/synproxy/handshake.h"
#include "nf/synproxy/translate.h"
#include "packet/builder.h"
#include "packet/checksum.h"
#include "packet/flow_key.h"
#include "packet/parser.h"
#include "table/conn_table.h"

namespace tripod::sptest {

inline constexpr const char* kClientMac = "02:00:00:00:00:01";  // router on the client side
inline constexpr const char* kGatewayMac = "02:00:00:00:00:02";
inline constexpr const char* kBackendMac = "02:00:00:00:00:03";  // router on the backend side
inline constexpr uint16_t kClientPort = 40000;
inline constexpr uint16_t kVipPort = 443;

inline const char* client_ip(Family f) {
  return f == Family::kIpv6 ? "2001:db8:c::7" : "198.51.100.7";
}
inline const char* vip_ip(Family f) {
  return f == Family::kIpv6 ? "2001:db8:f::10" : "192.0.2.10";
}

inline PacketBuilder ip(PacketBuilder b, Family f, const char* src, const char* dst) {
  if (f == Family::kIpv6) return b.ipv6(src, dst);
  return b.ipv4(src, dst).dont_fragment();
}
// client -> VIP, as it reaches the gateway.
inline PacketBuilder from_client(Family f) {
  return ip(PacketBuilder().eth(kClientMac, kGatewayMac), f, client_ip(f), vip_ip(f))
      .tcp(kClientPort, kVipPort);
}
// VIP -> client, as the gateway sends it back out.
inline PacketBuilder to_client(Family f) {
  return ip(PacketBuilder().eth(kGatewayMac, kClientMac), f, vip_ip(f), client_ip(f))
      .tcp(kVipPort, kClientPort);
}
// backend (seen as the VIP at this stage) -> client, as it reaches the gateway.
inline PacketBuilder from_backend(Family f) {
  return ip(PacketBuilder().eth(kBackendMac, kGatewayMac), f, vip_ip(f), client_ip(f))
      .tcp(kVipPort, kClientPort);
}
// client -> backend, as the gateway sends it on (ACK replies to the backend).
inline PacketBuilder to_backend(Family f) {
  return ip(PacketBuilder().eth(kGatewayMac, kBackendMac), f, client_ip(f), vip_ip(f))
      .tcp(kClientPort, kVipPort);
}

inline PacketMeta parse_ok(const Bytes& b) {
  PacketMeta m;
  EXPECT_EQ(parse_packet(b.data(), static_cast<uint32_t>(b.size()), &m), ParseError::kOk);
  return m;
}

inline TcpOptions options_of(const Bytes& b) {
  const PacketMeta m = parse_ok(b);
  TcpOptions o;
  EXPECT_EQ(parse_tcp_options(b.data(), m, &o), ParseError::kOk);
  return o;
}

inline SipKey test_master(uint64_t seed = 1) {
  return SipKey{0x0706050403020100ULL ^ seed, 0x0F0E0D0C0B0A0908ULL + seed};
}

// A minimal SYN-proxy stage: ConnTable of SynProxyState keyed by the
// canonical flow key; everything else is the library's.
class Gateway {
 public:
  using Table = ConnTable<FlowKey, SynProxyState>;
  struct Out {
    std::vector<Bytes> to_client;
    std::vector<Bytes> to_backend;
    uint32_t created = 0;  // connections created by this packet
  };

  explicit Gateway(ManualClock* clock, const SynProxyVip& vip = {})
      : clock_(clock),
        vip_(vip),
        table_(ConnTableConfig{.capacity = 1024, .huge_pages = false}),
        proxy_(test_master(), CookieConfig{}, clock->now_ns()) {}

  SynProxyCounter client_packet(Bytes pkt, Out* out) {
    PacketMeta m = parse_ok(pkt);
    const FlowKey key = flow_key_of(pkt.data(), m, true);
    const uint64_t h = hash_flow_key(key, hash_key_);
    const auto ref = table_.lookup(key, h);
    SynProxyCounter ev;
    if (!ref.found()) {
      if ((m.tcp_flags & kTcpSyn) != 0) {
        uint8_t buf[256];
        uint32_t len = 0;
        ev = proxy_.answer_syn(pkt.data(), m, vip_, clock_->now_ns(), buf, sizeof buf, &len);
        if (ev == SynProxyCounter::kSynCookieSent) out->to_client.emplace_back(buf, buf + len);
      } else {
        CookieAck ack;
        ev = proxy_.check_ack(pkt.data(), m, clock_->now_ns(), &ack);
        if (ev == SynProxyCounter::kCookieValid) {
          const auto ins = table_.insert(key, h, 1000);
          EXPECT_EQ(ins.status, InsertStatus::kInserted);
          table_.value(ins.ref.idx) = synproxy_begin(ack, vip_);
          ++out->created;
          ++created_;
          last_ack_ = ack;
          proxy_.count(ev);
          uint8_t buf[256];
          BuiltFrame f;
          ev = build_backend_syn(pkt.data(), m, ack, buf, sizeof buf, &f);
          if (ev == SynProxyCounter::kBackendSynBuilt)
            out->to_backend.emplace_back(buf, buf + f.len);
        }
      }
    } else {
      ev = synproxy_to_backend(table_.value(ref.idx), pkt.data(), m);
      if (ev == SynProxyCounter::kTranslatedToBackend) out->to_backend.push_back(pkt);
    }
    proxy_.count(ev);
    return ev;
  }

  SynProxyCounter backend_packet(Bytes pkt, Out* out) {
    PacketMeta m = parse_ok(pkt);
    const FlowKey key = flow_key_of(pkt.data(), m, true);
    const auto ref = table_.lookup(key, hash_flow_key(key, hash_key_));
    if (!ref.found()) return SynProxyCounter::kDropNotOpen;
    SynProxyState& st = table_.value(ref.idx);
    SynProxyCounter ev;
    if ((m.tcp_flags & (kTcpSyn | kTcpAck)) == (kTcpSyn | kTcpAck)) {
      ev = synproxy_backend_synack(&st, pkt.data(), m);
      if (ev == SynProxyCounter::kBackendOpen || ev == SynProxyCounter::kBackendSynAckRetransmit) {
        uint8_t buf[256];
        BuiltFrame f;
        proxy_.count(build_backend_ack(st, pkt.data(), m, buf, sizeof buf, &f));
        out->to_backend.emplace_back(buf, buf + f.len);
        if (ev == SynProxyCounter::kBackendOpen) {
          proxy_.count(build_client_window_update(st, pkt.data(), m, buf, sizeof buf, &f));
          out->to_client.emplace_back(buf, buf + f.len);
        }
      }
    } else {
      ev = synproxy_to_client(st, pkt.data(), m);
      if (ev == SynProxyCounter::kTranslatedToClient) out->to_client.push_back(pkt);
    }
    proxy_.count(ev);
    return ev;
  }

  const Table& table() const { return table_; }
  const SynProxy& proxy() const { return proxy_; }
  SynProxy& proxy() { return proxy_; }
  uint32_t created() const { return created_; }
  const CookieAck& last_ack() const { return last_ack_; }
  const SynProxyState* state_of(const Bytes& pkt) const {
    const PacketMeta m = parse_ok(pkt);
    const FlowKey key = flow_key_of(pkt.data(), m, true);
    const auto ref = table_.lookup(key, hash_flow_key(key, hash_key_));
    return ref.found() ? &table_.value(ref.idx) : nullptr;
  }

 private:
  ManualClock* clock_;
  SynProxyVip vip_;
  SipKey hash_key_{11, 22};
  Table table_;
  SynProxy proxy_;
  uint32_t created_ = 0;
  CookieAck last_ack_;
};

}  // namespace tripod::sptest
