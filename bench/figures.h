// `make bench` ends with one line per figure:
//   figure <name> <value> <unit> [vs <peer> <value> <unit>]...
// A figure is declared next to the benchmarks that feed it, by naming the
// Google Benchmark runs (full run name) and the counter to read from each.
// Every value is measured in the same run as its peers.
#pragma once

#include <string>
#include <vector>

namespace tripod::bench {

struct Term {
  std::string peer;      // "" for tripod's own value
  std::string run_name;  // e.g. "BM_ConnTableLookup/10000000/real_time"
  std::string counter;   // counter name in that run
};

struct Figure {
  std::string name;
  std::string unit;
  int precision = 1;
  std::vector<Term> terms;
};

// Registers a figure; called from static initialisers (see TRIPOD_FIGURE).
int declare_figure(Figure f);

}  // namespace tripod::bench

#define TRIPOD_FIGURE_CAT2_(a, b) a##b
#define TRIPOD_FIGURE_CAT_(a, b) TRIPOD_FIGURE_CAT2_(a, b)
#define TRIPOD_FIGURE(...)                                                            \
  [[maybe_unused]] static const int TRIPOD_FIGURE_CAT_(tripod_figure_, __COUNTER__) = \
      ::tripod::bench::declare_figure(::tripod::bench::Figure __VA_ARGS__)
