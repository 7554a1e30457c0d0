// Per-stage counters. Each stage declares its reasons once with an X-macro, so
// the enum, the names printed by `status` and the exported metric names never
// drift apart (STYLE.md habit 2).
//
// Threading: a CounterSet has exactly one writer (the worker that owns it);
// readers on other threads (status, metrics) see relaxed snapshots. A plain
// load+store on a relaxed atomic compiles to an ordinary add, no locked
// instruction, and is still race-free under TSan.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace tripod {

template <typename Enum, size_t N>
class CounterSet {
 public:
  void inc(Enum e, uint64_t by = 1) {
    auto& c = c_[static_cast<size_t>(e)];
    c.store(c.load(std::memory_order_relaxed) + by, std::memory_order_relaxed);
  }
  uint64_t get(Enum e) const { return c_[static_cast<size_t>(e)].load(std::memory_order_relaxed); }
  uint64_t get(size_t i) const { return c_[i].load(std::memory_order_relaxed); }
  static constexpr size_t size() { return N; }

 private:
  std::array<std::atomic<uint64_t>, N> c_{};
};

}  // namespace tripod

// Declares `enum class NAME : uint8_t { ... , kCount }`, a names table and
// `to_string(NAME)`. LIST is an X-macro taking X(identifier, "metric_name").
#define TRIPOD_DECLARE_REASONS(NAME, LIST)                                          \
  enum class NAME : uint8_t { LIST(TRIPOD_REASON_ENUM_) kCount };                   \
  inline constexpr std::string_view k##NAME##Names[] = {LIST(TRIPOD_REASON_NAME_)}; \
  inline constexpr std::string_view to_string(NAME e) {                             \
    return k##NAME##Names[static_cast<size_t>(e)];                                  \
  }
#define TRIPOD_REASON_ENUM_(id, name) id,
#define TRIPOD_REASON_NAME_(id, name) name,
