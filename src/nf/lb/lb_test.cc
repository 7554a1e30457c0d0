#include "nf/lb/lb.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "common/random.h"
#include "packet/flow_key.h"

namespace tripod {
namespace {

VipKey vip_key(const char* addr, uint8_t proto, uint16_t port) {
  VipKey k;
  k.addr = IpAddress::parse(addr);
  k.proto = proto;
  k.port = port;
  return k;
}

Backend be(const IpAddress& addr, uint32_t weight, uint16_t port = 8080) {
  Backend b;
  b.addr = addr;
  b.port = port;
  b.weight = weight;
  return b;
}

IpAddress dip(uint32_t n) {
  return IpAddress::parse(
      ("10.1." + std::to_string(n / 256) + "." + std::to_string(n % 256)).c_str());
}

TEST(Lb, VipValidation) {
  Lb lb;
  lb.add_vip(vip_key("192.0.2.1", kProtoTcp, 80));
  auto msg = [&](const VipKey& k) {
    try {
      lb.add_vip(k);
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_EQ(msg(vip_key("192.0.2.1", kProtoTcp, 80)),
            "add_vip: duplicate VIP 192.0.2.1 proto 6 port 80");
  EXPECT_EQ(msg(VipKey{}), "add_vip: empty VIP address");
  EXPECT_EQ(msg(vip_key("::", kProtoTcp, 80)), "add_vip: empty VIP address");
  EXPECT_EQ(msg(vip_key("192.0.2.1", kProtoIcmp, 80)),
            "add_vip: protocol 1 (only TCP 6 and UDP 17 are balanced)");
  EXPECT_EQ(msg(vip_key("192.0.2.1", kProtoUdp, 0)),
            "add_vip: port 0 for 192.0.2.1 proto 17 port 0");
  VipKey junk = vip_key("192.0.2.1", kProtoUdp, 53);
  junk.addr.bytes[9] = 1;
  EXPECT_EQ(msg(junk), "add_vip: IPv4 address with bytes set past the first 4");
  EXPECT_THROW(lb.remove_vip(vip_key("192.0.2.9", kProtoTcp, 80)), std::invalid_argument);
  EXPECT_THROW(lb.prepare(7, PoolSpec{}), std::invalid_argument);
  EXPECT_THROW(Lb(MaglevConfig{100}), std::invalid_argument);
  EXPECT_EQ(lb.gauge(LbGauge::kVips), 1u);
}

TEST(Lb, LookupByAddressProtocolPortBothFamilies) {
  Lb lb;
  const VipId a = lb.add_vip(vip_key("192.0.2.1", kProtoTcp, 80));
  const VipId b = lb.add_vip(vip_key("192.0.2.1", kProtoUdp, 80));
  const VipId c = lb.add_vip(vip_key("192.0.2.1", kProtoTcp, 443));
  const VipId d = lb.add_vip(vip_key("2001:db8::80", kProtoTcp, 80));
  EXPECT_EQ(std::set<VipId>({a, b, c, d}).size(), 4u);
  const IpAddress v4 = IpAddress::parse("192.0.2.1"), v6 = IpAddress::parse("2001:db8::80");
  EXPECT_EQ(lb.lookup_vip(Family::kIpv4, v4.bytes, kProtoTcp, 80), a);
  EXPECT_EQ(lb.lookup_vip(Family::kIpv4, v4.bytes, kProtoUdp, 80), b);
  EXPECT_EQ(lb.lookup_vip(Family::kIpv4, v4.bytes, kProtoTcp, 443), c);
  EXPECT_EQ(lb.lookup_vip(Family::kIpv6, v6.bytes, kProtoTcp, 80), d);
  EXPECT_EQ(lb.counter(LbCounter::kVipMiss), 0u);
  EXPECT_EQ(lb.lookup_vip(Family::kIpv4, v4.bytes, kProtoTcp, 81), kNoVip);
  EXPECT_EQ(lb.lookup_vip(Family::kIpv6, v6.bytes, kProtoUdp, 80), kNoVip);
  EXPECT_EQ(lb.lookup_vip(Family::kNone, v4.bytes, kProtoTcp, 80), kNoVip);
  EXPECT_EQ(lb.counter(LbCounter::kVipMiss), 3u);
  // Many VIPs, removals in between: the map keeps finding the rest.
  std::vector<VipKey> keys;
  for (uint16_t p = 1000; p < 1400; ++p)
    keys.push_back(vip_key("198.51.100.7", kProtoUdp, p));
  std::map<uint16_t, VipId> ids;
  for (const VipKey& k : keys)
    ids[k.port] = lb.add_vip(k);
  for (size_t i = 0; i < keys.size(); i += 3)
    lb.remove_vip(keys[i]);
  const IpAddress v = IpAddress::parse("198.51.100.7");
  for (size_t i = 0; i < keys.size(); ++i) {
    const VipId got = lb.lookup_vip(Family::kIpv4, v.bytes, kProtoUdp, keys[i].port);
    EXPECT_EQ(got, i % 3 == 0 ? kNoVip : ids[keys[i].port]) << i;
  }
  EXPECT_EQ(lb.gauge(LbGauge::kVips), 4u + 400 - 134);
  // Re-added: found again, under a new id.
  const VipId again = lb.add_vip(keys[0]);
  EXPECT_NE(again, ids[keys[0].port]);
  EXPECT_EQ(lb.lookup_vip(Family::kIpv4, v.bytes, kProtoUdp, keys[0].port), again);
}

TEST(Lb, CountersAndDrainedBackends) {
  Lb lb;
  const VipId vip = lb.add_vip(vip_key("192.0.2.1", kProtoTcp, 80));
  EXPECT_EQ(lb.select(vip, 1).backend, nullptr);  // no version yet
  const uint32_t v1 = lb.prepare(vip, PoolSpec{{be(dip(1), 1), be(dip(2), 0), be(dip(3), 1)}});
  lb.commit(vip, v1);
  SplitMix64 rng(3);
  for (int i = 0; i < 10000; ++i) {
    const Selection s = lb.select(vip, rng.next());
    ASSERT_NE(s.backend, nullptr);
    EXPECT_NE(s.index, 1);  // drained: no new connections
  }
  lb.commit(vip, lb.prepare(vip, PoolSpec{{be(dip(1), 0), be(dip(2), 0)}}));
  EXPECT_EQ(lb.select(vip, 1).backend, nullptr);  // all drained
  EXPECT_EQ(lb.counter(LbCounter::kSelected), 10000u);
  EXPECT_EQ(lb.counter(LbCounter::kNoBackend), 2u);
  EXPECT_EQ(lb.vip_counter(vip, LbVipCounter::kSelected), 10000u);
  EXPECT_EQ(lb.vip_counter(vip, LbVipCounter::kNoBackend), 2u);
  lb.conn_opened(vip, v1);
  lb.conn_closed(vip, v1);
  lb.conn_closed(vip, v1);      // underflow
  lb.conn_opened(vip, v1 + 5);  // unknown
  EXPECT_EQ(lb.backend(vip, 999, 0), nullptr);
  EXPECT_EQ(lb.counter(LbCounter::kRefUnderflow), 1u);
  EXPECT_EQ(lb.counter(LbCounter::kUnknownVersion), 2u);
  EXPECT_EQ(lb.gauge(LbGauge::kVersionsLive), 2u);
  EXPECT_EQ(lb.collect_garbage(), 1u);
  EXPECT_EQ(lb.gauge(LbGauge::kVersionsLive), 1u);
  std::map<std::string, uint64_t> exported;
  lb.export_counters([&](std::string_view n, uint64_t v) { exported[std::string(n)] = v; });
  EXPECT_EQ(exported.size(), size_t(LbCounter::kCount) + size_t(LbGauge::kCount));
  EXPECT_EQ(exported["selected"], 10000u);
  EXPECT_EQ(exported["no_vip"], 0u);
  EXPECT_EQ(exported["versions_live"], 1u);
  EXPECT_EQ(exported["versions_collected"], 1u);
}

// The PCC test: 20k connections over a trace in which the pool
// changes 80 times (adds, removes, weight changes, drains, kills, aborted and
// delayed commits). Every packet of every connection must reach the DIP its
// first packet went to; versions must be collected exactly when their last
// connection has closed; killed backends' connections (and only those) are
// reset; new connections on the final pool spread by weight.
TEST(Lb, PerConnectionConsistencyAcrossPoolChanges) {
  constexpr int kConns = 20000, kSteps = 2000, kChangeEvery = 25;
  const SipKey hash_key{0x1122334455667788ULL, 0x99aabbccddeeff00ULL};
  SplitMix64 rng(2026);
  Lb lb;
  const IpAddress vip_addr = IpAddress::parse("192.0.2.10");
  const VipId vip = lb.add_vip(VipKey{vip_addr, kProtoTcp, 80});

  std::vector<Backend> cur;  // the pool the control plane last committed
  uint32_t next_dip = 1;
  for (; next_dip <= 8; ++next_dip)
    cur.push_back(be(dip(next_dip), 1 + next_dip % 3));
  lb.commit(vip, lb.prepare(vip, PoolSpec{cur}));

  struct Conn {
    uint64_t hash;
    uint32_t version;
    uint16_t index;
    Backend first;  // the DIP of the first packet
    int packets_left;
  };
  std::vector<Conn> open;
  std::map<uint32_t, uint32_t> model_refs;  // version -> open connections (our own count)
  std::set<uint32_t> seen_versions;
  std::set<uint32_t> collected;
  std::vector<Backend> killed;
  auto is_dead = [&](const Backend& b) {
    return std::any_of(killed.begin(), killed.end(),
                       [&](const Backend& k) { return k.same_endpoint(b); });
  };
  uint32_t pending = kNoVersion;  // prepared, commit delayed
  int pending_commit_at = 0;
  uint64_t packets = 0, violations = 0, resets = 0, wrong_resets = 0, missed_resets = 0;
  int opened = 0, changes = 0;

  auto close = [&](size_t i) {
    lb.conn_closed(vip, open[i].version);
    --model_refs[open[i].version];
    open[i] = open.back();
    open.pop_back();
  };
  auto check_gc = [&] {
    const size_t freed = lb.collect_garbage();
    const uint32_t active = lb.pools().active_version(vip);
    size_t expect_freed = 0;
    for (auto it = model_refs.begin(); it != model_refs.end();) {
      const auto [v, n] = *it;
      if (v != active && n == 0) {
        // Unreferenced and retired: must be gone now.
        EXPECT_FALSE(lb.pools().is_live(vip, v)) << v;
        collected.insert(v);
        ++expect_freed;
        it = model_refs.erase(it);
        continue;
      }
      EXPECT_TRUE(lb.pools().is_live(vip, v)) << v;
      EXPECT_EQ(lb.pools().refs(vip, v), n) << v;
      ++it;
    }
    EXPECT_EQ(freed, expect_freed);
  };
  auto change_pool = [&] {
    ++changes;
    std::vector<Backend> next = cur;
    const uint64_t kind = rng.below(6);
    if (kind == 0 || next.size() < 3) {  // add
      next.insert(next.begin() + static_cast<long>(rng.below(next.size() + 1)),
                  be(dip(next_dip++), 1 + static_cast<uint32_t>(rng.below(4))));
    } else if (kind == 1) {  // remove (connections drain)
      next.erase(next.begin() + static_cast<long>(rng.below(next.size())));
    } else if (kind == 2) {  // weight change
      next[rng.below(next.size())].weight = 1 + static_cast<uint32_t>(rng.below(8));
    } else if (kind == 3) {  // drain
      next[rng.below(next.size())].weight = 0;
    }
    // Keep the VIP serving: a pool with no weight at all gets a new backend.
    if (std::none_of(next.begin(), next.end(), [](const Backend& b) { return b.weight > 0; }))
      next.push_back(be(dip(next_dip++), 1));
    const uint32_t v = lb.prepare(vip, PoolSpec{next});
    if (kind == 4) {  // prepared, then thought better of
      lb.abort(vip, v);
      EXPECT_FALSE(lb.pools().is_live(vip, v));
      return;
    }
    if (kind == 5) {  // remove now: commit without it, then kill it
      const Backend gone = cur[rng.below(cur.size())];  // serving in the active version
      std::erase_if(next, [&](const Backend& b) { return b.same_endpoint(gone); });
      if (std::none_of(next.begin(), next.end(), [](const Backend& b) { return b.weight > 0; }))
        next.push_back(be(dip(next_dip++), 1));
      lb.abort(vip, v);
      lb.commit(vip, lb.prepare(vip, PoolSpec{next}));
      EXPECT_GE(lb.kill_backend(vip, gone.addr, gone.port), 1u);
      killed.push_back(gone);
      cur = next;
      return;
    }
    cur = next;
    if (rng.below(2) == 0) {
      lb.commit(vip, v);
    } else {
      pending = v;  // commit later; new connections keep the old version meanwhile
      pending_commit_at = 1 + static_cast<int>(rng.below(kChangeEvery - 2));
    }
  };

  for (int step = 0; step < kSteps || !open.empty(); ++step) {
    if (step < kSteps && step % kChangeEvery == 0 && step > 0 && pending == kNoVersion)
      change_pool();
    if (pending != kNoVersion && --pending_commit_at == 0) {
      lb.commit(vip, pending);
      pending = kNoVersion;
    }
    // New connections: first packet.
    for (int k = 0; k < kConns / kSteps && step < kSteps; ++k, ++opened) {
      uint8_t client[4];
      const uint64_t r = rng.next();
      std::memcpy(client, &r, 4);
      const FlowKey fk = make_flow_key(Family::kIpv4, kProtoTcp, client, vip_addr.bytes,
                                       static_cast<uint16_t>(r >> 32), 80, true);
      const uint64_t h = hash_flow_key(fk, hash_key);
      const Selection s = lb.select(vip, h);
      ASSERT_NE(s.backend, nullptr);
      ASSERT_NE(s.version, pending);  // prepared is not active
      ASSERT_EQ(s.version, lb.pools().active_version(vip));
      ASSERT_GT(s.backend->weight, 0u);
      lb.conn_opened(vip, s.version);
      ++model_refs[s.version];
      seen_versions.insert(s.version);
      open.push_back(Conn{h, s.version, s.index, *s.backend, 2 + static_cast<int>(rng.below(60))});
      ++packets;
    }
    // Later packets: each open connection sends with probability 1/4.
    for (size_t i = 0; i < open.size();) {
      Conn& c = open[i];
      if (rng.below(4) != 0) {
        ++i;
        continue;
      }
      ++packets;
      const Backend* b = lb.backend(vip, c.version, c.index);
      if (b == nullptr || !b->same_endpoint(c.first)) ++violations;
      if (lb.is_killed(vip, c.version, c.index)) {
        ++resets;
        wrong_resets += !is_dead(c.first);
        close(i);
        continue;
      }
      missed_resets += is_dead(c.first);
      if (--c.packets_left == 0) {
        close(i);
        continue;
      }
      ++i;
    }
    if (step % 10 == 0) check_gc();
  }
  EXPECT_EQ(opened, kConns);
  EXPECT_GE(packets, 200000u);
  EXPECT_EQ(violations, 0u);
  EXPECT_EQ(wrong_resets, 0u);
  EXPECT_EQ(missed_resets, 0u);
  EXPECT_GT(resets, 0u);
  EXPECT_EQ(changes, kSteps / kChangeEvery - 1);
  EXPECT_GT(seen_versions.size(), 40u);  // connections really spanned many versions
  EXPECT_EQ(lb.counter(LbCounter::kUnknownVersion), 0u);
  EXPECT_EQ(lb.counter(LbCounter::kRefUnderflow), 0u);
  EXPECT_EQ(lb.counter(LbCounter::kConnectionsOpened), uint64_t{kConns});
  EXPECT_EQ(lb.counter(LbCounter::kConnectionsClosed), uint64_t{kConns});
  EXPECT_EQ(lb.gauge(LbGauge::kConnectionsLive), 0u);
  check_gc();
  EXPECT_EQ(lb.pools().versions_live(), 1u);  // only the active version is left
  EXPECT_EQ(lb.gauge(LbGauge::kVersionsLive), 1u);
  EXPECT_GE(collected.size(), seen_versions.size() - 1);

  // New connections on a final pool with weights 1, 2, 3, 4 (and a drained one).
  std::vector<Backend> final_pool = {be(dip(900), 1), be(dip(901), 2), be(dip(902), 0),
                                     be(dip(903), 3), be(dip(904), 4)};
  lb.commit(vip, lb.prepare(vip, PoolSpec{final_pool}));
  std::map<uint16_t, int> hits;
  constexpr int kNew = 200000;
  for (int i = 0; i < kNew; ++i) {
    uint8_t client[4];
    const uint64_t r = rng.next();
    std::memcpy(client, &r, 4);
    const FlowKey fk = make_flow_key(Family::kIpv4, kProtoTcp, client, vip_addr.bytes,
                                     static_cast<uint16_t>(r >> 48), 80, true);
    const Selection s = lb.select(vip, hash_flow_key(fk, hash_key));
    ASSERT_NE(s.backend, nullptr);
    ++hits[s.index];
  }
  EXPECT_EQ(hits.count(2), 0u);  // drained
  const std::map<uint16_t, double> want = {{0, 10.0}, {1, 20.0}, {3, 30.0}, {4, 40.0}};
  for (const auto& [idx, pct] : want) {
    const double got = 100.0 * hits[idx] / kNew;
    EXPECT_NEAR(got, pct, 2.0) << "backend " << idx;
  }
}

}  // namespace
}  // namespace tripod
