// The compiled XDP program (tripod_xdp.bpf.c), embedded in the library at
// build time (embed_file.cmake) so the daemon opens it from memory.
#pragma once

#include <cstddef>
#include <cstdint>

namespace tripod {

extern const uint8_t kTripodXdpObject[];
extern const size_t kTripodXdpObjectSize;

}  // namespace tripod
