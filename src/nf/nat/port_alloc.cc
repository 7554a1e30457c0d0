#include "nf/nat/port_alloc.h"

#include <stdexcept>
#include <string>
#include <utility>

#include "common/random.h"

namespace tripod {

SnatPortAllocator::SnatPortAllocator(SnatPoolConfig cfg) : cfg_(std::move(cfg)) {
  if (cfg_.addresses.empty()) throw std::invalid_argument("snat pool: no addresses");
  if (cfg_.port_lo > cfg_.port_hi) {
    throw std::invalid_argument("snat pool: port range " + std::to_string(cfg_.port_lo) + "-" +
                                std::to_string(cfg_.port_hi) + " is empty");
  }
  for (const auto& a : cfg_.addresses) {
    if (a.family != cfg_.addresses[0].family) {
      throw std::invalid_argument("snat pool: addresses of both families in one pool");
    }
  }
  range_ = uint32_t{cfg_.port_hi} - cfg_.port_lo + 1;
  if (cfg_.partitions == 0 || cfg_.partitions > range_) {
    throw std::invalid_argument("snat pool: partitions must be in [1, ports in range]");
  }
  queues_.resize(cfg_.addresses.size() * cfg_.partitions);
  SplitMix64 rng(cfg_.shuffle_seed);
  for (uint32_t a = 0; a < cfg_.addresses.size(); ++a) {
    for (uint32_t p = 0; p < cfg_.partitions; ++p) {
      Queue& q = queue(a, p);
      const uint32_t n = (range_ - p + cfg_.partitions - 1) / cfg_.partitions;
      q.ports = std::make_unique<uint16_t[]>(n);
      for (uint32_t i = 0; i < n; ++i) {
        q.ports[i] = static_cast<uint16_t>(cfg_.port_lo + p + i * cfg_.partitions);
      }
      if (cfg_.shuffle_seed != 0) {  // Fisher-Yates
        for (uint32_t i = n; i > 1; --i) {
          std::swap(q.ports[i - 1], q.ports[rng.below(i)]);
        }
      }
      q.size = n;
      q.count = n;
    }
  }
  in_use_.assign((size_t{range_} * cfg_.addresses.size() + 63) / 64, 0);
  reserved_.assign(in_use_.size(), 0);
}

bool SnatPortAllocator::alloc(uint32_t partition, uint32_t hint, SnatLease* out) {
  if (partition >= cfg_.partitions) return false;
  const uint32_t n = num_addresses();
  for (uint32_t i = 0; i < n; ++i) {
    const uint32_t a = (hint + i) % n;
    Queue& q = queue(a, partition);
    // Reserved ports go round to the back (they stay queued, once each).
    for (uint32_t tries = q.count; tries > 0; --tries) {
      const uint16_t port = q.ports[q.head];
      q.head = q.head + 1 == q.size ? 0 : q.head + 1;
      const size_t bit = size_t{a} * range_ + (port - cfg_.port_lo);
      const uint64_t mask = uint64_t{1} << (bit % 64);
      if (in_use_[bit / 64] & mask) {
        const uint32_t tail = q.head + q.count - 1;
        q.ports[tail >= q.size ? tail - q.size : tail] = port;
        continue;
      }
      --q.count;
      in_use_[bit / 64] |= mask;
      *out = SnatLease{a, port};
      return true;
    }
  }
  return false;
}

void SnatPortAllocator::free(const SnatLease& lease) {
  if (lease.address >= num_addresses() || !in_range(lease.port)) {
    ++bad_frees_;
    return;
  }
  const size_t bit = size_t{lease.address} * range_ + (lease.port - cfg_.port_lo);
  const uint64_t mask = uint64_t{1} << (bit % 64);
  if ((in_use_[bit / 64] & mask) == 0) {  // not leased: a double free
    ++bad_frees_;
    return;
  }
  in_use_[bit / 64] &= ~mask;
  if (reserved_[bit / 64] & mask) {  // still queued: only the mark goes
    reserved_[bit / 64] &= ~mask;
    return;
  }
  Queue& q = queue(lease.address, partition_of(lease.port));
  // Never full here: the in-use bit proves this port is not queued.
  const uint32_t tail = q.head + q.count;
  q.ports[tail >= q.size ? tail - q.size : tail] = lease.port;
  ++q.count;
}

bool SnatPortAllocator::reserve(const SnatLease& lease) {
  if (lease.address >= num_addresses() || !in_range(lease.port)) return false;
  const size_t bit = size_t{lease.address} * range_ + (lease.port - cfg_.port_lo);
  const uint64_t mask = uint64_t{1} << (bit % 64);
  if (in_use_[bit / 64] & mask) return false;
  in_use_[bit / 64] |= mask;
  reserved_[bit / 64] |= mask;
  return true;
}

bool SnatPortAllocator::in_use(const SnatLease& lease) const {
  if (lease.address >= num_addresses() || !in_range(lease.port)) return false;
  const size_t bit = size_t{lease.address} * range_ + (lease.port - cfg_.port_lo);
  return (in_use_[bit / 64] >> (bit % 64) & 1) != 0;
}

uint32_t SnatPortAllocator::free_ports(uint32_t partition) const {
  uint32_t n = 0;
  for (uint32_t a = 0; a < num_addresses(); ++a)
    n += queue(a, partition).count;
  return n;
}

}  // namespace tripod
