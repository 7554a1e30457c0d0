// Cookie layout (README.md has the diagram):
//
//   ISN, client with timestamps:     [31:5] MAC (27 bits) | slot:2 | key:1 | mss:2
//   ISN, client without timestamps:  [31:10] MAC (22)  | wscale:4 | sack:1 | slot:2 | key:1 | mss:2
//     (with options_without_timestamps off: the first layout, no options)
//   TSval (timestamps only):         [31:6] MAC (26 bits) | ecn:1 | sack:1 | wscale:4
//
// The MAC is one SipHash-2-4 over (family, mss index, options, full slot,
// client ISN, ports, addresses): every field the cookie claims is under it,
// the TSval's option bits included (Linux leaves those unauthenticated).
#include "nf/synproxy/cookie.h"

#include <algorithm>
#include <cstring>

#include "common/byte_order.h"

namespace tripod {
namespace {

constexpr uint32_t kMetaBits = 5;     // slot:2 | key:1 | mss:2
constexpr uint32_t kNoTsOptBits = 5;  // wscale:4 | sack:1, in the ISN without timestamps
constexpr uint32_t kTsOptBits = 6;    // ecn:1 | sack:1 | wscale:4, in the TSval
constexpr uint32_t kTsOptMask = (1u << kTsOptBits) - 1;
constexpr uint32_t kMaxAge = 3;  // what 2 slot bits can tell apart

// The options byte under the MAC: ts:1 | ecn:1 | sack:1 | 0 | wscale:4.
uint8_t opts_byte(const CookieOptions& o) {
  return static_cast<uint8_t>((o.timestamps ? 0x80 : 0) | (o.ecn ? 0x40 : 0) |
                              (o.sack_permitted ? 0x20 : 0) | (o.wscale & 0xF));
}

uint64_t cookie_mac(const SipKey& key, const CookieTuple& t, uint32_t client_isn, uint32_t slot,
                    uint8_t mss_index, uint8_t opts) {
  // Fixed layout: 24 bytes for IPv4, 48 for IPv6. The family byte keeps a
  // v4 tuple from ever colliding with a v6 one.
  uint8_t in[48];
  const size_t alen = t.family == Family::kIpv6 ? 16 : 4;
  in[0] = static_cast<uint8_t>(t.family);
  in[1] = mss_index;
  in[2] = opts;
  in[3] = 0;
  store_be32(in + 4, slot);
  store_be32(in + 8, client_isn);
  store_be16(in + 12, t.sport);
  store_be16(in + 14, t.dport);
  std::memcpy(in + 16, t.saddr, alen);
  std::memcpy(in + 16 + alen, t.daddr, alen);
  return siphash<2, 4>(key, in, 16 + 2 * alen);
}

// Generation keys are derived, not drawn: a worker that rotates needs no
// randomness on its thread, and workers (or nodes) holding the same master
// derive the same key for the same generation.
SipKey derive_key(const SipKey& master, uint64_t gen) {
  uint8_t in[16];
  store_be<uint64_t>(in, gen);
  std::memcpy(in + 8, "tpd-cook", 8);
  SipKey k;
  k.k0 = siphash<2, 4>(master, in, sizeof in);
  in[15] ^= 1;
  k.k1 = siphash<2, 4>(master, in, sizeof in);
  return k;
}

}  // namespace

uint8_t cookie_mss_index(Family family, uint16_t mss) {
  const uint16_t* tab = family == Family::kIpv6 ? kCookieMssV6 : kCookieMssV4;
  uint8_t i = 3;
  while (i > 0 && mss < tab[i])
    --i;
  return i;
}

uint16_t cookie_mss(Family family, uint8_t index) {
  return (family == Family::kIpv6 ? kCookieMssV6 : kCookieMssV4)[index & 3];
}

CookieKeyring::CookieKeyring(const SipKey& master, const CookieConfig& cfg, uint64_t now_ns)
    : cfg_(cfg), master_(master) {
  cfg_.slot_ns = std::max<uint64_t>(cfg_.slot_ns, 1);
  cfg_.max_age_slots = std::min(cfg_.max_age_slots, kMaxAge);
  // A key must outlive every cookie it signs: rotating more often than the
  // age limit would retire keys of cookies that are still young enough.
  // A key's generation is the rotation epoch of the time itself, not a count
  // of this process's rotations: every node of a cluster (same master, same
  // clock) holds the same keys, and one node's cookie opens on another.
  if (cfg_.rotate_every_slots != 0) {
    cfg_.rotate_every_slots = std::max(cfg_.rotate_every_slots, cfg_.max_age_slots);
    epoch_ = slot(now_ns) / cfg_.rotate_every_slots;
  }
  install(epoch_ - 1);  // the previous epoch's (UINT64_MAX at epoch 0: signs nothing)
  install(epoch_);
}

void CookieKeyring::install(uint64_t gen) {
  keys_[gen & 1] = derive_key(master_, gen);
  gen_ = gen;
}

void CookieKeyring::rotate() {
  install(gen_ + 1);
}

void CookieKeyring::rotate(const SipKey& new_master) {
  master_ = new_master;
  rotate();
}

uint32_t CookieKeyring::advance(uint64_t now_ns) {
  if (cfg_.rotate_every_slots == 0) return 0;
  const uint64_t e = slot(now_ns) / cfg_.rotate_every_slots;
  if (e <= epoch_) return 0;
  const uint32_t n = e - epoch_ >= 2 ? 2 : 1;
  epoch_ = e;
  if (n == 2) install(e - 1);
  install(e);
  return n;
}

CookieOptions CookieKeyring::carried(const CookieOptions& o) const {
  CookieOptions c = o;
  c.mss_index &= 3;
  if (c.wscale > 14) c.wscale = kNoWscale;
  if (!c.timestamps) {
    c.ecn = false;  // nowhere to carry it
    if (!cfg_.options_without_timestamps) {
      c.wscale = kNoWscale;
      c.sack_permitted = false;
    }
  }
  return c;
}

Cookie CookieKeyring::mint(const CookieTuple& t, uint32_t client_isn, const CookieOptions& o,
                           uint64_t now_ns) const {
  const CookieOptions opt = carried(o);
  const uint32_t s = slot(now_ns);
  const uint32_t parity = gen_ & 1;
  const uint64_t mac = cookie_mac(keys_[parity], t, client_isn, s, opt.mss_index, opts_byte(opt));
  const uint32_t meta = (s & 3) << 3 | parity << 2 | opt.mss_index;
  Cookie c;
  if (opt.timestamps || !cfg_.options_without_timestamps) {
    c.isn = static_cast<uint32_t>(mac) << kMetaBits | meta;
    if (!opt.timestamps) return c;
    c.tsval = (static_cast<uint32_t>(mac >> 32) & ~kTsOptMask) | (opt.ecn ? 0x20u : 0) |
              (opt.sack_permitted ? 0x10u : 0) | opt.wscale;
  } else {
    c.isn = static_cast<uint32_t>(mac) << (kMetaBits + kNoTsOptBits) |
            static_cast<uint32_t>(opt.wscale) << 6 | (opt.sack_permitted ? 0x20u : 0) | meta;
  }
  return c;
}

CookieStatus CookieKeyring::verify(const CookieTuple& t, uint32_t client_isn, uint32_t cookie_isn,
                                   bool has_ts, uint32_t tsecr, uint64_t now_ns,
                                   CookieOptions* out) const {
  CookieOptions o;
  o.mss_index = cookie_isn & 3;
  const uint32_t parity = (cookie_isn >> 2) & 1;
  const uint32_t cur = slot(now_ns);
  const uint32_t age = (cur - (cookie_isn >> 3)) & 3;
  o.timestamps = has_ts;
  if (has_ts) {
    o.wscale = tsecr & 0xF;
    o.sack_permitted = (tsecr & 0x10) != 0;
    o.ecn = (tsecr & 0x20) != 0;
  } else if (cfg_.options_without_timestamps) {
    o.wscale = (cookie_isn >> 6) & 0xF;
    o.sack_permitted = (cookie_isn & 0x20) != 0;
  }
  // Every 4-bit wscale is meaningful (0..14, or kNoWscale), so any option
  // bits decode; whether they were minted is the MAC's to say.
  const uint64_t mac =
      cookie_mac(keys_[parity], t, client_isn, cur - age, o.mss_index, opts_byte(o));
  bool ok;
  if (has_ts || !cfg_.options_without_timestamps) {
    ok = (static_cast<uint32_t>(mac) << kMetaBits) == (cookie_isn & ~((1u << kMetaBits) - 1)) &&
         (!has_ts || (static_cast<uint32_t>(mac >> 32) & ~kTsOptMask) == (tsecr & ~kTsOptMask));
  } else {
    constexpr uint32_t kLow = (1u << (kMetaBits + kNoTsOptBits)) - 1;
    ok = (static_cast<uint32_t>(mac) << (kMetaBits + kNoTsOptBits)) == (cookie_isn & ~kLow);
  }
  if (!ok) return CookieStatus::kBad;
  // The MAC was computed over the slot the 2 bits name; an older cookie
  // whose slot wrapped past them simply fails the MAC above (kBad).
  if (age > cfg_.max_age_slots) return CookieStatus::kExpired;
  *out = o;
  return CookieStatus::kValid;
}

}  // namespace tripod
