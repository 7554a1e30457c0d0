// Versioned backend pools with two-phase updates, for per-connection
// consistency (PCC) as in SilkRoad (Miao et al., SIGCOMM'17, section 4.2):
// a pool change never moves an established connection, because the
// connection records the (version, backend index) it started with and
// resolves every later packet through that version, not the current one.
//
//   (VIP, version) -> BuiltPool (backends + Maglev table), immutable
//   VIP -> active version: where NEW connections go
//
// Update: prepare(vip, pool) installs a new version beside the active one
// (the Maglev table is built before, off the data path), commit(vip, v)
// switches new connections to it in one store, abort(vip, v) drops it. In a
// cluster every node prepares the same version (explicit version number),
// then every node commits: a node that has not committed yet still serves new
// connections from the old version, and both versions resolve everywhere.
//
// Lifetime: a version lives while it is active, prepared, or referenced by a
// connection. The data plane counts references (conn_opened / conn_closed);
// collect_garbage() frees retired versions whose count is zero.
//
// Threading: a PoolTable has one owner thread, the worker whose connections
// it counts, like a ConnTable shard: the counts are plain integers. Building
// a pool (build_pool, milliseconds) is pure and runs on the control thread;
// the result is immutable and may be shared by every worker's PoolTable.
// install/commit/abort/kill/collect are cheap and are applied by the owner
// between bursts ("the control plane prepares, the data plane switches").
// Data-plane calls are noexcept, allocation-free and lock-free; control calls
// may allocate and throw std::invalid_argument / std::runtime_error.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <vector>

#include "nf/lb/maglev.h"
#include "nf/lb/vip.h"

namespace tripod {

using VipId = uint32_t;
inline constexpr VipId kNoVip = 0xFFFFFFFF;
inline constexpr uint32_t kNoVersion = 0;
// Live versions per VIP (SilkRoad keeps 6 version bits in the switch). A VIP
// whose old versions are all still referenced cannot take a 65th: prepare()
// fails rather than break connections.
inline constexpr uint32_t kMaxVersionsPerVip = 64;

// One pool version, immutable once built.
struct BuiltPool {
  std::vector<Backend> backends;
  MaglevTable maglev;
};

// Validates the spec (backend count, weights, empty or duplicate endpoints)
// and builds its Maglev table. Throws std::invalid_argument. Pure: callable
// from any thread.
std::shared_ptr<const BuiltPool> build_pool(const PoolSpec& spec, const MaglevConfig& cfg = {});

// A new connection's choice (data plane). backend == nullptr: no choice.
struct Selection {
  const Backend* backend = nullptr;
  uint32_t version = kNoVersion;
  uint16_t index = 0;
};

class PoolTable {
 public:
  // ---- control side (owner thread; may allocate and throw) ----
  VipId add_vip();
  // New connections stop (no active version); existing ones drain through
  // their versions, which collect_garbage() frees when unreferenced.
  void remove_vip(VipId vip);
  // Installs `pool` as a prepared version and returns its number. `version`
  // kNoVersion: the next local number; otherwise the cluster-chosen number,
  // which must not be live.
  uint32_t prepare(VipId vip, std::shared_ptr<const BuiltPool> pool, uint32_t version = kNoVersion);
  void commit(VipId vip, uint32_t version);  // version must be prepared
  void abort(VipId vip, uint32_t version);   // version must be prepared
  // "Remove now": marks the endpoint killed in every live version of the VIP
  // that contains it, so the data plane resets its connections (is_killed).
  // The endpoint must not have a weight in the active or a prepared version
  // (it would keep getting new connections). Returns the versions marked.
  size_t kill_backend(VipId vip, const IpAddress& addr, uint16_t port);
  // Frees retired versions no connection references. O(retired versions).
  size_t collect_garbage();

  // ---- introspection (owner thread) ----
  size_t versions_live() const { return versions_live_; }
  uint64_t connections() const { return connections_; }
  uint32_t active_version(VipId vip) const;
  bool is_live(VipId vip, uint32_t version) const { return find(vip, version) != nullptr; }
  uint32_t refs(VipId vip, uint32_t version) const;
  // Live connections of a VIP, over all its versions (status; O(versions)).
  uint64_t vip_connections(VipId vip) const;
  const BuiltPool* pool(VipId vip, uint32_t version) const;
  // A committed version holding the endpoint (the active one first): where
  // a replicated connection's backend lives on this node. `port` is the
  // port connections go to (a backend port 0 means `vip_port`). backend ==
  // nullptr: none. O(versions x backends); control path (replication).
  Selection find_backend(VipId vip, const IpAddress& addr, uint16_t port, uint16_t vip_port) const;

  // ---- data plane (owner thread; noexcept, no allocation) ----
  // NEW connection: the active version's Maglev choice for `flow_hash`.
  Selection select(VipId vip, uint64_t flow_hash) const noexcept {
    const Vip* v = vip < vips_.size() ? vips_[vip].get() : nullptr;
    if (v == nullptr || v->active == nullptr || !v->active->pool->maglev.has_backends()) return {};
    const Slot& s = *v->active;
    const uint16_t i = s.pool->maglev.lookup(flow_hash);
    return Selection{&s.pool->backends[i], s.version, i};
  }
  // An established connection's backend; nullptr if (vip, version, index) is
  // not live (a pipeline bug, or replicated state this node never prepared).
  const Backend* backend(VipId vip, uint32_t version, uint16_t index) const noexcept {
    const Slot* s = find(vip, version);
    return s != nullptr && index < s->pool->backends.size() ? &s->pool->backends[index] : nullptr;
  }
  // True if that backend was killed (reset the connection). False for
  // anything not live: backend() already reports those.
  bool is_killed(VipId vip, uint32_t version, uint16_t index) const noexcept {
    const Slot* s = find(vip, version);
    return s != nullptr && index < s->pool->backends.size() && s->killed[index] != 0;
  }
  // Reference counting; false (and no change) for a version that is not
  // committed, or on underflow.
  bool conn_opened(VipId vip, uint32_t version) noexcept;
  bool conn_closed(VipId vip, uint32_t version) noexcept;

 private:
  enum class State : uint8_t { kFree, kPrepared, kCommitted };
  struct Slot {
    std::shared_ptr<const BuiltPool> owner;
    const BuiltPool* pool = nullptr;  // owner.get(), read on the data path
    std::unique_ptr<uint8_t[]> killed;
    uint32_t version = kNoVersion;
    uint32_t refs = 0;
    State state = State::kFree;
  };
  struct Vip {
    const Slot* active = nullptr;  // first: the one field select() needs
    uint32_t next_version = 1;
    uint32_t live = 0;
    bool removed = false;
    std::array<Slot, kMaxVersionsPerVip> slots;
  };
  struct Retired {
    VipId vip;
    uint32_t version;
  };

  // Slot of a live version; version v lives in slots[v % kMaxVersionsPerVip].
  const Slot* find(VipId vip, uint32_t version) const noexcept {
    const Vip* v = vip < vips_.size() ? vips_[vip].get() : nullptr;
    if (v == nullptr) return nullptr;
    const Slot& s = v->slots[version % kMaxVersionsPerVip];
    return s.state != State::kFree && s.version == version ? &s : nullptr;
  }
  Slot* find_mut(VipId vip, uint32_t version) noexcept {
    return const_cast<Slot*>(find(vip, version));  // NOLINT: same object, non-const this
  }
  Vip& vip_or_throw(VipId vip, const char* op);
  Slot& prepared_or_throw(VipId vip, uint32_t version, const char* op);
  void free_slot(Vip& v, Slot& s);

  // unique_ptr: slots never move, so Selection/backend pointers stay valid
  // while their version lives, and add_vip() can grow the vector.
  std::vector<std::unique_ptr<Vip>> vips_;
  std::vector<Retired> retired_;  // committed, no longer active, maybe referenced
  size_t versions_live_ = 0;
  uint64_t connections_ = 0;
};

}  // namespace tripod
