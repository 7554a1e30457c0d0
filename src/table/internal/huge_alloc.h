// Large arrays for tables (zero-filled on request), 2 MiB-aligned and advised to use
// transparent huge pages: a 10M-entry table is ~1 GB of random accesses, and
// with 4 KiB pages nearly every lookup would also miss the TLB.
// Allocated with aligned_alloc so malloc statistics (the benchmark's memory
// accounting) see it like any other allocation.
#pragma once

#include <sys/mman.h>

#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <new>

namespace tripod::internal {

template <typename T>
class HugeArray {
 public:
  // zero: fill with zeros now (and so fault every page in); otherwise pages
  // are faulted in on first write, as any allocator's are.
  HugeArray(size_t n, bool huge_pages, bool zero) : n_(n) {
    constexpr size_t kAlign = size_t{2} << 20;
    bytes_ = (n * sizeof(T) + kAlign - 1) / kAlign * kAlign;
    void* p = std::aligned_alloc(kAlign, bytes_);
    if (p == nullptr) throw std::bad_alloc();
    if (huge_pages) madvise(p, bytes_, MADV_HUGEPAGE);  // advisory: ignore failure
    if (zero) std::memset(p, 0, bytes_);
    p_ = static_cast<T*>(p);
  }
  ~HugeArray() { std::free(p_); }
  HugeArray(const HugeArray&) = delete;
  HugeArray& operator=(const HugeArray&) = delete;

  T& operator[](size_t i) { return p_[i]; }
  const T& operator[](size_t i) const { return p_[i]; }
  size_t size() const { return n_; }
  size_t bytes() const { return bytes_; }

 private:
  T* p_ = nullptr;
  size_t n_;
  size_t bytes_;
};

}  // namespace tripod::internal
