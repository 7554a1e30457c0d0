// Invariant check for fuzz targets: trap (a crash libFuzzer reports, with the
// input saved) rather than assert, which release fuzz builds compile out.
#pragma once

#define FUZZ_CHECK(cond)           \
  do {                             \
    if (!(cond)) __builtin_trap(); \
  } while (0)
