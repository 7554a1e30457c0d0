// Proves the sharing model of shard.h under real threads (and ThreadSanitizer
// in CI): producers hand operations to shard owners through SPSC rings, owners
// mutate their tables and expire entries, a monitor reads counters the whole
// time. The final contents must equal the per-key last operation.
#include "table/shard.h"

#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <thread>
#include <vector>

#include "common/random.h"
#include "common/siphash.h"
#include "common/spsc_ring.h"
#include "table/conn_table.h"

namespace tripod {
namespace {

struct Key {
  uint64_t id;
  uint64_t salt;
};
struct Val {
  uint64_t last_seq;
  uint64_t touches;
};
using Table = ConnTable<Key, Val>;

struct Op {
  Key key;
  uint64_t hash;
  uint64_t seq;
  uint32_t kind;  // 0 insert-or-touch, 1 erase, 2 stop
  uint32_t pad;
};

const SipKey kHashKey{42, 43};
uint64_t hash_of(const Key& k) {
  return siphash13(kHashKey, reinterpret_cast<const uint8_t*>(&k), sizeof k);
}

TEST(ShardedTables, OwnersHandoffAndConcurrentReaders) {
  constexpr uint32_t kShards = 3, kProducers = 2, kKeysPerProducer = 20000;
  constexpr uint64_t kOpsPerProducer = 300000;
  constexpr uint32_t kTimeout = 1'000'000;  // ticks; at most ~600k rounds of work happen
  std::vector<std::unique_ptr<Table>> tables;
  for (uint32_t s = 0; s < kShards; ++s) {
    ConnTableConfig c;
    c.capacity = kKeysPerProducer * kProducers;
    c.huge_pages = false;
    tables.push_back(std::make_unique<Table>(c));
  }
  // rings[p][s]: producer p -> shard owner s.
  std::vector<std::vector<std::unique_ptr<SpscRing<Op>>>> rings(kProducers);
  for (auto& r : rings) {
    for (uint32_t s = 0; s < kShards; ++s)
      r.push_back(std::make_unique<SpscRing<Op>>(1024));
  }
  // Expected final state, computed by the producers (each key belongs to one
  // producer, so its operations arrive in order through one ring).
  std::vector<std::vector<int8_t>> present(kProducers, std::vector<int8_t>(kKeysPerProducer, 0));

  std::atomic<bool> done{false};
  std::vector<std::thread> threads;
  for (uint32_t p = 0; p < kProducers; ++p) {
    threads.emplace_back([&, p] {
      SplitMix64 rng(100 + p);
      auto send = [&](uint32_t s, const Op& op) {
        while (rings[p][s]->push(&op, 1) == 0)
          std::this_thread::yield();
      };
      for (uint64_t i = 0; i < kOpsPerProducer; ++i) {
        const uint64_t k = rng.below(kKeysPerProducer);
        Op op{};
        op.key = Key{k * kProducers + p, 7};
        op.hash = hash_of(op.key);
        op.seq = i;
        op.kind = rng.below(4) == 0 ? 1 : 0;
        present[p][k] = op.kind == 0 ? 1 : 0;
        send(shard_of(op.hash, kShards), op);
      }
      for (uint32_t s = 0; s < kShards; ++s) {
        Op stop{};
        stop.kind = 2;
        send(s, stop);
      }
    });
  }
  for (uint32_t s = 0; s < kShards; ++s) {
    threads.emplace_back([&, s] {
      Table& t = *tables[s];
      uint32_t stopped = 0;
      uint32_t tick = 0;
      Op burst[32];
      Key keys[32];
      uint64_t hashes[32];
      Table::Ref refs[32];
      while (stopped < kProducers) {
        bool did_work = false;
        for (uint32_t p = 0; p < kProducers; ++p) {
          const uint32_t n = rings[p][s]->pop(burst, 32);
          did_work |= n > 0;
          for (uint32_t i = 0; i < n; ++i) {
            keys[i] = burst[i].key;
            hashes[i] = burst[i].hash;
          }
          t.lookup_bulk(keys, hashes, n, refs);
          for (uint32_t i = 0; i < n; ++i) {
            const Op& op = burst[i];
            if (op.kind == 2) {
              ++stopped;
              continue;
            }
            ASSERT_EQ(shard_of(op.hash, kShards), s) << "op reached the wrong shard";
            // refs from the bulk lookup go stale after an insert/erase in
            // this burst: look up again for all but the first mutation.
            Table::Ref r = i == 0 ? refs[i] : t.lookup(op.key, op.hash);
            if (op.kind == 1) {
              if (r.found()) t.erase(r);
            } else {
              if (!r.found()) {
                auto ins = t.insert(op.key, op.hash, tick + kTimeout);
                ASSERT_EQ(ins.status, InsertStatus::kInserted);
                r = ins.ref;
              } else {
                t.set_deadline(r, tick + kTimeout);
              }
              t.value(r.idx).last_seq = op.seq;
              ++t.value(r.idx).touches;
            }
          }
        }
        if (did_work) t.advance(++tick);  // one tick per round of work: nothing comes due
      }
    });
  }
  std::thread monitor([&] {
    uint64_t seen = 0;
    while (!done.load(std::memory_order_acquire)) {
      for (const auto& t : tables)
        seen += t->counters().get(ConnTableCounter::kInserted);
      std::this_thread::yield();
    }
    EXPECT_GT(seen, 0u);
  });
  for (auto& th : threads)
    th.join();
  done.store(true, std::memory_order_release);
  monitor.join();

  uint64_t expected_live = 0;
  for (uint32_t p = 0; p < kProducers; ++p) {
    for (uint32_t k = 0; k < kKeysPerProducer; ++k) {
      const Key key{k * kProducers + p, 7};
      const uint64_t h = hash_of(key);
      const bool found = tables[shard_of(h, kShards)]->lookup(key, h).found();
      EXPECT_EQ(found, present[p][k] == 1) << "key " << key.id << " shard " << shard_of(h, kShards);
      expected_live += present[p][k];
    }
  }
  uint64_t live = 0;
  for (const auto& t : tables)
    live += t->size();
  EXPECT_EQ(live, expected_live);
  for (const auto& t : tables)
    EXPECT_EQ(t->counters().get(ConnTableCounter::kExpired), 0u);
}

}  // namespace
}  // namespace tripod
