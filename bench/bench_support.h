// Shared pieces of the benchmarks: fixture loading and a reporter that keeps each benchmark's
// figures so main() can print ratios against the baseline measured in the same run.
#pragma once

#include <benchmark/benchmark.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>

#include "base/json.h"

namespace nvdra::bench {

inline std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A fixture re-serialized compactly, as the API server sends it.
inline std::string compact_fixture(const std::string& name) {
  auto doc = json::parse(read_file(std::filesystem::path(NVDRA_FIXTURES_DIR) / name));
  return doc ? json::write(*doc) : std::string();
}

class KeepingReporter : public benchmark::ConsoleReporter {
 public:
  struct Figures {
    double bytes_per_second = 0;
    double items_per_second = 0;
  };
  std::map<std::string, Figures> figures;

  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const auto& r : runs) {
      Figures f;
      auto b = r.counters.find("bytes_per_second");
      auto i = r.counters.find("items_per_second");
      if (b != r.counters.end()) f.bytes_per_second = b->second;
      if (i != r.counters.end()) f.items_per_second = i->second;
      figures[r.benchmark_name()] = f;
    }
  }
};

}  // namespace nvdra::bench
