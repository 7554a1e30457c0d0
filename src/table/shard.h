// How worker threads share flow state: sharding with one writer per shard.
//
// A flow's shard is a function of its key hash; the worker that owns the
// shard is the only thread that touches that ConnTable. A packet that arrives
// on another worker's queue is handed over through an SpscRing (VPP's worker
// handoff). No lock or atomic on the table itself, and a flow's packets are
// processed in order by one thread. See README.md for why not lock-free
// readers.
#pragma once

#include <cstdint>

namespace tripod {

// Uses hash bits [14, 32), disjoint from the table's tag [0, 14) and bucket
// [32, 64) bits, so that sharding does not skew bucket occupancy.
inline uint32_t shard_of(uint64_t hash, uint32_t num_shards) {
  return static_cast<uint32_t>((((hash >> 14) & 0x3FFFF) * num_shards) >> 18);
}

}  // namespace tripod
