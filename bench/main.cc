// tripod_bench: runs every registered Google Benchmark, then prints the
// `figure` summary lines built from the runs' counters.
#include <benchmark/benchmark.h>

#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "figures.h"

namespace tripod::bench {
namespace {

std::vector<Figure>& registry() {
  static std::vector<Figure> figures;
  return figures;
}

// Console output as usual, plus a copy of every run's counters.
class CollectingReporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const auto& r : runs) {
      if (r.error_occurred) continue;
      for (const auto& [name, c] : r.counters)
        values_[r.benchmark_name()][name] = c.value;
    }
  }
  bool find(const Term& t, double* v) const {
    auto it = values_.find(t.run_name);
    if (it == values_.end()) return false;
    auto jt = it->second.find(t.counter);
    if (jt == it->second.end()) return false;
    *v = jt->second;
    return true;
  }

 private:
  std::map<std::string, std::map<std::string, double>> values_;
};

}  // namespace

int declare_figure(Figure f) {
  registry().push_back(std::move(f));
  return 0;
}

}  // namespace tripod::bench

int main(int argc, char** argv) {
  using namespace tripod::bench;
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  CollectingReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();

  std::printf("\n");
  int missing = 0;
  for (const auto& f : registry()) {
    std::string line = "figure " + f.name;
    bool complete = true;
    for (const auto& t : f.terms) {
      double v = 0;
      if (!reporter.find(t, &v)) {
        complete = false;
        break;
      }
      char buf[64];
      std::snprintf(buf, sizeof buf, " %.*f %s", f.precision, v, f.unit.c_str());
      line += (t.peer.empty() ? "" : " vs " + t.peer) + buf;
    }
    // A figure whose runs were filtered out is simply not printed.
    if (complete) {
      std::printf("%s\n", line.c_str());
    } else {
      ++missing;
    }
  }
  if (missing > 0)
    std::printf("(%d figure(s) not printed: their benchmarks did not run)\n", missing);
  return 0;
}
