// Connection tracking entry points: the functions the firewall pipeline stage
// calls, and the Firewall facade that adds counters.
//
// The stage owns the connection table and keeps an FwConnState in each
// connection's value. Per packet (after parse; `key_reversed` is the
// FlowKey's `reversed` bit, `dir` where the packet came from):
//
//   if (m.has(kMetaIcmpError)) {              // about another connection
//     look up flow_key_of_quote(frame, m, true, &qrev);
//     v = fw.related(found ? &value.fw : nullptr, frame, m, qrev);
//   } else if (found) {
//     v = fw.track(value.fw, frame, m, key_reversed);
//   } else {
//     FwConnState st;
//     v = fw.new_connection(&st, frame, m, dir, key_reversed);
//     if (v.reason == FwReason::kCreated) insert(key, st);   // kUntracked: insert nothing
//   }
//   drop unless v.accepted(); if (v.timeout_s) set the entry's deadline to now + timeout_s.
//
// Every call is noexcept, allocation-free and lock-free; time never enters
// (the verdict carries a relative timeout, the table owns deadlines). A
// dropped packet never changes the record.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string_view>

#include "common/counters.h"
#include "nf/firewall/acl.h"
#include "nf/firewall/fw_state.h"
#include "packet/packet_meta.h"

namespace tripod {

struct FirewallConfig {
  AclConfig acl;
  FwTimeouts timeouts;
  // netfilter's nf_conntrack_tcp_be_liberal: accept (and count as
  // accepted_out_of_window) TCP segments that fail the window check.
  bool tcp_be_liberal = false;
};

// Immutable compiled configuration, shared by the workers' Firewalls.
struct FwPolicy {
  // The connection table keeps deadlines in 24-bit ticks of 100 ms compared
  // modulo 2^24 (table/README.md): timeouts must stay below 2^23 ticks.
  static constexpr uint32_t kMaxTimeoutS = 838860;

  // Validates and compiles; throws std::invalid_argument.
  explicit FwPolicy(const FirewallConfig& cfg);

  Acl acl;
  FwTimeouts timeouts;
  bool tcp_be_liberal;
};

// First packet of a flow with no record. kCreated: *out is the new record, to
// be inserted with timeout_s. kUntracked: forward, insert nothing (ICMP
// informational messages other than echo). Drops leave *out untouched.
// `dir` is where the packet travels, for the ACL's in/out rules; the record
// remembers it so that a reopen from the other side is checked the right way.
FwVerdict fw_new_connection(const FwPolicy& p, FwConnState* out, const uint8_t* frame,
                            const PacketMeta& m, TrafficDir dir, bool key_reversed) noexcept;

// A packet of a flow that has a record (either direction). May turn the record
// into a new connection (reason kReopened, ACL re-checked) when a SYN reopens
// a TIME_WAIT/CLOSE one.
FwVerdict fw_track(const FwPolicy& p, FwConnState& st, const uint8_t* frame, const PacketMeta& m,
                   bool key_reversed) noexcept;

// An ICMP/ICMPv6 error (kMetaIcmpError). `quoted` is the record of the flow
// it quotes (flow_key_of_quote), nullptr if there is none; `quote_key_reversed`
// is that key's `reversed` bit. kRelated when the error is about a packet the
// connection could have sent, and is addressed to that packet's sender. The
// record is not changed and the ACL is not consulted (netfilter's RELATED).
FwVerdict fw_related(const FwConnState* quoted, const uint8_t* frame, const PacketMeta& m,
                     bool quote_key_reversed) noexcept;

// Per-worker facade: the shared policy plus this worker's counters (one
// writer, relaxed atomics, readable from any thread).
class Firewall {
 public:
  using CounterFn = std::function<void(std::string_view name, uint64_t value)>;

  explicit Firewall(const FirewallConfig& cfg);  // throws std::invalid_argument
  explicit Firewall(std::shared_ptr<const FwPolicy> policy);

  FwVerdict new_connection(FwConnState* out, const uint8_t* frame, const PacketMeta& m,
                           TrafficDir dir, bool key_reversed) noexcept {
    return counted(fw_new_connection(*policy_, out, frame, m, dir, key_reversed));
  }
  FwVerdict track(FwConnState& st, const uint8_t* frame, const PacketMeta& m,
                  bool key_reversed) noexcept {
    return counted(fw_track(*policy_, st, frame, m, key_reversed));
  }
  FwVerdict related(const FwConnState* quoted, const uint8_t* frame, const PacketMeta& m,
                    bool quote_key_reversed) noexcept {
    return counted(fw_related(quoted, frame, m, quote_key_reversed));
  }

  // Control plane, owner thread: new rules and timeouts for what comes next
  // (existing connections keep their state; rule hit counts restart).
  void set_policy(std::shared_ptr<const FwPolicy> policy);

  const FwPolicy& policy() const { return *policy_; }
  const std::shared_ptr<const FwPolicy>& shared_policy() const { return policy_; }
  uint64_t count(FwReason r) const { return counters_.get(r); }
  // Connections created (or denied) by rule `i` (0-based).
  uint64_t rule_hits(size_t i) const { return rule_hits_[i].load(std::memory_order_relaxed); }
  // Every reason by its name, then "acl_rule_<n>" (1-based, as in config errors).
  void export_counters(const CounterFn& fn) const;

 private:
  FwVerdict counted(const FwVerdict& v) noexcept {
    counters_.inc(v.reason);
    if (v.rule >= 0) {
      auto& h = rule_hits_[static_cast<size_t>(v.rule)];
      h.store(h.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    }
    return v;
  }

  std::shared_ptr<const FwPolicy> policy_;
  CounterSet<FwReason, static_cast<size_t>(FwReason::kCount)> counters_;
  std::unique_ptr<std::atomic<uint64_t>[]> rule_hits_;
};

}  // namespace tripod
