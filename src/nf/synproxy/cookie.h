// SYN cookies: the SYN-ACK's ISN (and, when the client uses timestamps, the
// SYN-ACK's TSval) is a MAC over the client's SYN, so the proxy answers a SYN
// without keeping anything and recognises the client's ACK by the echo.
// Layout, key rotation and what survives: README.md.
//
// Contract
// - mint()/verify() are pure functions of the keyring, the tuple and the
//   time: no allocation, no lock, one SipHash-2-4 each.
// - The keyring is owned by one worker (like a ConnTable shard): advance()
//   and rotate() are called by that worker, between bursts; other threads
//   ask it to rotate through its ring.
// - verify() accepts a cookie minted with the current or the previous key,
//   in the current slot or up to max_age_slots before it.
#pragma once

#include <cstdint>

#include "common/siphash.h"
#include "nf/synproxy/state.h"
#include "packet/packet_meta.h"

namespace tripod {

// MSS values a cookie can carry (2 bits), Linux's tables
// (net/ipv4/syncookies.c msstab, net/ipv6/syncookies.c msstab): the client's
// MSS is rounded down to one of them.
inline constexpr uint16_t kCookieMssV4[4] = {536, 1300, 1440, 1460};
inline constexpr uint16_t kCookieMssV6[4] = {1220, 1420, 1440, 8940};

struct CookieConfig {
  uint64_t slot_ns = 64ull * 1'000'000'000;  // one time slot (Linux: 64 s)
  uint32_t max_age_slots = 2;                // accepted up to this many slots later (<= 3)
  uint32_t rotate_every_slots = 2;           // time-based rotation; 0 = on demand only
  // Without timestamps, carry window scale and SACK-permitted in 5 ISN bits
  // (a 22-bit MAC) rather than drop them as Linux does (27-bit MAC).
  bool options_without_timestamps = true;
};

// The connection as the client's SYN and ACK carry it (client -> VIP).
// Addresses are network order, addr_len(family) bytes.
struct CookieTuple {
  Family family = Family::kNone;
  const uint8_t* saddr = nullptr;
  const uint8_t* daddr = nullptr;
  uint16_t sport = 0;
  uint16_t dport = 0;
};

// What a cookie carries besides its MAC.
struct CookieOptions {
  uint8_t mss_index = 0;        // into kCookieMssV4 / kCookieMssV6
  uint8_t wscale = kNoWscale;   // the client's window shift (0..14) or none
  bool sack_permitted = false;  // the client's SACK-permitted
  bool timestamps = false;      // timestamps negotiated: the TSval carries the options
  bool ecn = false;             // ECN agreed (only with timestamps)

  friend bool operator==(const CookieOptions&, const CookieOptions&) = default;
};

struct Cookie {
  uint32_t isn = 0;    // ISN of the SYN-ACK
  uint32_t tsval = 0;  // TSval of the SYN-ACK (only with options.timestamps)
};

enum class CookieStatus : uint8_t { kValid, kBad, kExpired };

// Index of the largest table MSS <= mss (0 if mss is below them all).
uint8_t cookie_mss_index(Family family, uint16_t mss);
uint16_t cookie_mss(Family family, uint8_t index);

class CookieKeyring {
 public:
  // `master`: the secret the generation keys are derived from
  // (secure_random_bytes in production, fixed in tests).
  CookieKeyring(const SipKey& master, const CookieConfig& cfg, uint64_t now_ns);

  // Time-based rotation: call once per burst. Returns the rotations done
  // (0, 1, or 2 after a long idle gap, which retires both keys).
  uint32_t advance(uint64_t now_ns);
  // On demand: the current key becomes the previous one (still accepted);
  // the old previous key is dropped. Per node: until the next time-based
  // rotation, this node's cookies do not open on its cluster peers.
  void rotate();
  // Same, and later keys are derived from `new_master`.
  void rotate(const SipKey& new_master);

  // What a cookie minted from `o` carries (and what the SYN-ACK may offer):
  // wscale > 14 is none, ECN needs timestamps, and without timestamps window
  // scale and SACK need options_without_timestamps.
  CookieOptions carried(const CookieOptions& o) const;
  Cookie mint(const CookieTuple& t, uint32_t client_isn, const CookieOptions& o,
              uint64_t now_ns) const;
  // cookie_isn = ACK.ack_seq - 1, client_isn = ACK.seq - 1; has_ts/tsecr
  // from the ACK's timestamp option. On kValid, *out holds what was minted.
  CookieStatus verify(const CookieTuple& t, uint32_t client_isn, uint32_t cookie_isn, bool has_ts,
                      uint32_t tsecr, uint64_t now_ns, CookieOptions* out) const;

  uint64_t generation() const { return gen_; }
  uint32_t slot(uint64_t now_ns) const { return static_cast<uint32_t>(now_ns / cfg_.slot_ns); }
  const CookieConfig& config() const { return cfg_; }

 private:
  void install(uint64_t gen);

  CookieConfig cfg_;
  SipKey master_;
  SipKey keys_[2];  // keys_[g & 1] is the key of generation g
  uint64_t gen_ = 0;
  uint64_t epoch_ = 0;  // slot / rotate_every_slots at the last time-based rotation
};

}  // namespace tripod
