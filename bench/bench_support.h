// Shared pieces of the benchmarks: fixture loading and a reporter that keeps each benchmark's
// figures so main() can print ratios against the baseline measured in the same run.
#pragma once

#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>

#include "base/json.h"
#include "tests/data/test_data.h"

namespace nvdra::bench {

inline std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The folder of the serialized API objects (NVDRA_FIXTURES_DIR). Without them a benchmark cannot
// measure anything: it says why and exits 77 (skipped), or 1 under NVDRA_REQUIRE_DATA=1.
inline const std::filesystem::path& fixtures_dir() {
  static const std::filesystem::path dir = [] {
    const testdata::Resolved r = testdata::resolve(testdata::kFixtures);
    if (!r.found) {
      std::fprintf(stderr, "%s\n", r.message.c_str());
      std::exit(r.required ? 1 : 77);
    }
    return r.dir;
  }();
  return dir;
}

// A fixture re-serialized compactly, as the API server sends it.
inline std::string compact_fixture(const std::string& name) {
  auto doc = json::parse(read_file(fixtures_dir() / name));
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
