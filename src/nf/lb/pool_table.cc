#include "nf/lb/pool_table.h"

#include <algorithm>
#include <stdexcept>
#include <string>

namespace tripod {
namespace {

std::string endpoint(const Backend& b) {
  return b.addr.to_string() + " port " + std::to_string(b.port);
}

}  // namespace

std::shared_ptr<const BuiltPool> build_pool(const PoolSpec& spec, const MaglevConfig& cfg) {
  const auto& bs = spec.backends;
  if (bs.size() > kMaxBackends)
    throw std::invalid_argument("pool of " + std::to_string(bs.size()) +
                                " backends exceeds the limit of " + std::to_string(kMaxBackends));
  for (size_t i = 0; i < bs.size(); ++i) {
    if (bs[i].addr.empty())
      throw std::invalid_argument("backend " + std::to_string(i) + ": empty address");
    if (bs[i].weight > kMaxWeight)
      throw std::invalid_argument("backend " + std::to_string(i) + " (" + endpoint(bs[i]) +
                                  "): weight " + std::to_string(bs[i].weight) +
                                  " out of range 0.." + std::to_string(kMaxWeight));
  }
  // Two entries for one endpoint would share one Maglev permutation and make
  // a connection's backend ambiguous across versions.
  std::vector<uint16_t> order(bs.size());
  for (size_t i = 0; i < bs.size(); ++i)
    order[i] = static_cast<uint16_t>(i);
  auto key_less = [&](uint16_t a, uint16_t b) {
    const int c = std::memcmp(&bs[a].addr, &bs[b].addr, sizeof(IpAddress));
    return c != 0 ? c < 0 : bs[a].port < bs[b].port;
  };
  std::sort(order.begin(), order.end(), key_less);
  for (size_t k = 1; k < order.size(); ++k) {
    if (bs[order[k - 1]].same_endpoint(bs[order[k]]))
      throw std::invalid_argument(
          "backend " + std::to_string(std::max(order[k - 1], order[k])) + " duplicates backend " +
          std::to_string(std::min(order[k - 1], order[k])) + " (" + endpoint(bs[order[k]]) + ")");
  }
  auto pool = std::make_shared<BuiltPool>();
  pool->backends = bs;
  pool->maglev = MaglevTable::build(bs, maglev_table_size(bs.size(), cfg.min_table_size));
  return pool;
}

VipId PoolTable::add_vip() {
  if (vips_.size() >= kNoVip) throw std::runtime_error("VIP ids exhausted");
  vips_.push_back(std::make_unique<Vip>());
  return static_cast<VipId>(vips_.size() - 1);
}

PoolTable::Vip& PoolTable::vip_or_throw(VipId vip, const char* op) {
  if (vip >= vips_.size() || vips_[vip] == nullptr)
    throw std::invalid_argument(std::string(op) + ": unknown VIP id " + std::to_string(vip));
  return *vips_[vip];
}

PoolTable::Slot& PoolTable::prepared_or_throw(VipId vip, uint32_t version, const char* op) {
  Vip& v = vip_or_throw(vip, op);
  Slot& s = v.slots[version % kMaxVersionsPerVip];
  if (s.state != State::kPrepared || s.version != version)
    throw std::invalid_argument(std::string(op) + ": version " + std::to_string(version) +
                                " of VIP " + std::to_string(vip) + " is not prepared");
  return s;
}

void PoolTable::free_slot(Vip& v, Slot& s) {
  s = Slot{};
  --v.live;
  --versions_live_;
}

void PoolTable::remove_vip(VipId vip) {
  Vip& v = vip_or_throw(vip, "remove_vip");
  if (v.removed)
    throw std::invalid_argument("remove_vip: VIP " + std::to_string(vip) + " already removed");
  if (v.active != nullptr) retired_.push_back({vip, v.active->version});  // may throw: first
  v.active = nullptr;
  v.removed = true;
  for (Slot& s : v.slots)
    if (s.state == State::kPrepared) free_slot(v, s);
  if (v.live == 0) vips_[vip].reset();
}

uint32_t PoolTable::prepare(VipId vip, std::shared_ptr<const BuiltPool> pool, uint32_t version) {
  Vip& v = vip_or_throw(vip, "prepare");
  if (v.removed) throw std::invalid_argument("prepare: VIP " + std::to_string(vip) + " is removed");
  if (pool == nullptr) throw std::invalid_argument("prepare: null pool");
  if (version == kNoVersion) {
    // Next unused number whose slot is free; numbers are not reused until the
    // 32-bit counter wraps, so a stale reference can never match a new pool.
    for (uint32_t tries = 0; tries < kMaxVersionsPerVip && version == kNoVersion; ++tries) {
      const uint32_t candidate = v.next_version++;
      if (candidate != kNoVersion && v.slots[candidate % kMaxVersionsPerVip].state == State::kFree)
        version = candidate;
    }
    if (version == kNoVersion)
      throw std::runtime_error("prepare: VIP " + std::to_string(vip) + " already has " +
                               std::to_string(kMaxVersionsPerVip) +
                               " live versions; old ones are still referenced by connections");
  } else {
    const Slot& s = v.slots[version % kMaxVersionsPerVip];
    if (s.state != State::kFree)
      throw std::invalid_argument("prepare: version " + std::to_string(version) + " of VIP " +
                                  std::to_string(vip) + " collides with live version " +
                                  std::to_string(s.version));
    v.next_version = std::max(v.next_version, version + 1);
  }
  Slot& s = v.slots[version % kMaxVersionsPerVip];
  s.killed = std::make_unique<uint8_t[]>(pool->backends.size());  // zeroed
  s.pool = pool.get();
  s.owner = std::move(pool);
  s.version = version;
  s.refs = 0;
  s.state = State::kPrepared;
  ++v.live;
  ++versions_live_;
  return version;
}

void PoolTable::commit(VipId vip, uint32_t version) {
  Slot& s = prepared_or_throw(vip, version, "commit");
  Vip& v = *vips_[vip];
  if (v.active != nullptr) retired_.push_back({vip, v.active->version});  // may throw: first
  s.state = State::kCommitted;
  v.active = &s;
}

void PoolTable::abort(VipId vip, uint32_t version) {
  Slot& s = prepared_or_throw(vip, version, "abort");
  free_slot(*vips_[vip], s);
}

size_t PoolTable::kill_backend(VipId vip, const IpAddress& addr, uint16_t port) {
  Vip& v = vip_or_throw(vip, "kill_backend");
  auto index_of = [&](const Slot& s) -> size_t {
    const auto& bs = s.pool->backends;
    for (size_t i = 0; i < bs.size(); ++i)
      if (bs[i].addr == addr && bs[i].port == port) return i;
    return bs.size();
  };
  // Check every version first so that a refused kill marks nothing.
  for (const Slot& s : v.slots) {
    if (s.state == State::kFree) continue;
    const size_t i = index_of(s);
    const bool takes_new = &s == v.active || s.state == State::kPrepared;
    if (i < s.pool->backends.size() && takes_new && s.pool->backends[i].weight > 0)
      throw std::invalid_argument("kill_backend: " + addr.to_string() + " port " +
                                  std::to_string(port) + " still has weight in version " +
                                  std::to_string(s.version) + " of VIP " + std::to_string(vip) +
                                  "; commit a pool without it first");
  }
  size_t marked = 0;
  for (Slot& s : v.slots) {
    if (s.state == State::kFree) continue;
    const size_t i = index_of(s);
    if (i == s.pool->backends.size()) continue;
    s.killed[i] = 1;
    ++marked;
  }
  return marked;
}

size_t PoolTable::collect_garbage() {
  size_t freed = 0;
  size_t keep = 0;
  for (const Retired& r : retired_) {
    Vip& v = *vips_[r.vip];  // a VIP with retired versions is never reset
    Slot& s = v.slots[r.version % kMaxVersionsPerVip];
    if (s.refs > 0) {
      retired_[keep++] = r;
      continue;
    }
    free_slot(v, s);
    ++freed;
    if (v.removed && v.live == 0) vips_[r.vip].reset();
  }
  retired_.resize(keep);
  return freed;
}

Selection PoolTable::find_backend(VipId vip, const IpAddress& addr, uint16_t port,
                                  uint16_t vip_port) const {
  const Vip* v = vip < vips_.size() ? vips_[vip].get() : nullptr;
  if (v == nullptr) return {};
  auto in = [&](const Slot& s) -> Selection {
    if (s.state != State::kCommitted) return {};
    for (size_t i = 0; i < s.pool->backends.size(); ++i) {
      const Backend& b = s.pool->backends[i];
      if (b.addr == addr && (b.port != 0 ? b.port : vip_port) == port)
        return Selection{&b, s.version, static_cast<uint16_t>(i)};
    }
    return {};
  };
  if (v->active != nullptr) {
    const Selection a = in(*v->active);
    if (a.backend != nullptr) return a;
  }
  for (const Slot& s : v->slots) {
    const Selection o = in(s);
    if (o.backend != nullptr) return o;
  }
  return {};
}

uint32_t PoolTable::active_version(VipId vip) const {
  const Vip* v = vip < vips_.size() ? vips_[vip].get() : nullptr;
  return v != nullptr && v->active != nullptr ? v->active->version : kNoVersion;
}

uint32_t PoolTable::refs(VipId vip, uint32_t version) const {
  const Slot* s = find(vip, version);
  return s != nullptr ? s->refs : 0;
}

uint64_t PoolTable::vip_connections(VipId vip) const {
  const Vip* v = vip < vips_.size() ? vips_[vip].get() : nullptr;
  if (v == nullptr) return 0;
  uint64_t n = 0;
  for (const Slot& s : v->slots)
    if (s.state != State::kFree) n += s.refs;
  return n;
}

const BuiltPool* PoolTable::pool(VipId vip, uint32_t version) const {
  const Slot* s = find(vip, version);
  return s != nullptr ? s->pool : nullptr;
}

bool PoolTable::conn_opened(VipId vip, uint32_t version) noexcept {
  Slot* s = find_mut(vip, version);
  if (s == nullptr || s->state != State::kCommitted) return false;
  ++s->refs;
  ++connections_;
  return true;
}

bool PoolTable::conn_closed(VipId vip, uint32_t version) noexcept {
  Slot* s = find_mut(vip, version);
  if (s == nullptr || s->state != State::kCommitted || s->refs == 0) return false;
  --s->refs;
  --connections_;
  return true;
}

}  // namespace tripod
