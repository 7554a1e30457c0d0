#include "table/internal/bucket_wheel.h"

namespace tripod::internal {

BucketWheel::BucketWheel(uint32_t num_buckets)
    : n_(num_buckets), nodes_(new Node[num_buckets + kLists]) {
  for (uint32_t i = 0; i < n_ + kLists; ++i) {
    nodes_[i] = Node{i, i, kNone};  // heads are empty circles; buckets unlinked
  }
}

}  // namespace tripod::internal
