#include "table/internal/bucket_wheel.h"

namespace tripod::internal {

BucketWheel::BucketWheel(uint32_t num_buckets)
    : n_(num_buckets),
      next_(new uint32_t[num_buckets + kLists]),
      prev_(new uint32_t[num_buckets + kLists]),
      due_(new uint32_t[num_buckets + kLists]) {
  for (uint32_t i = 0; i < n_ + kLists; ++i) {
    next_[i] = prev_[i] = i;  // heads are empty circles; buckets unlinked
    due_[i] = kNone;
  }
}

}  // namespace tripod::internal
