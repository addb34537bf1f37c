// Where the tests find the data kept outside the repository because it is not ours to
// redistribute: NVIDIA's demo specs and serialized Kubernetes API objects. One setting per data
// set, resolved here alone for the unit tests, the benchmarks and (through nvdra-test-data) the
// end-to-end scripts: the environment variable when set, else the folder CMake was configured
// with (by default ../shared/... beside the repository). Relative paths start at the repository.
#pragma once

#include <filesystem>
#include <functional>
#include <string>
#include <string_view>

namespace nvdra::testdata {

struct DataSet {
  std::string_view setting;     // the environment and CMake cache variable naming the folder
  std::string_view what;        // what the data is, for the message
  std::string_view where;       // where to get it, for the message
  std::string_view marker;      // a file every copy holds, relative to the folder
  std::string_view configured;  // the folder CMake was configured with
};

extern const DataSet kCompat;    // NVDRA_COMPAT_DIR: NVIDIA's demo specs
extern const DataSet kFixtures;  // NVDRA_FIXTURES_DIR: serialized Kubernetes API objects

// The data set a setting names (NVDRA_COMPAT_DIR, NVDRA_FIXTURES_DIR), or null.
const DataSet* find(std::string_view setting);

// The environment, replaceable for tests of this resolution.
using Getenv = std::function<const char*(const char*)>;

struct Resolved {
  std::filesystem::path dir;
  bool found = false;
  // NVDRA_REQUIRE_DATA=1 (CI): missing data is a failure, never a skip.
  bool required = false;
  // When not found: one line naming the setting, the folder looked at and where to get the data.
  std::string message;
};

Resolved resolve(const DataSet& set, const Getenv& getenv);
Resolved resolve(const DataSet& set);  // from the process environment

}  // namespace nvdra::testdata

// NVDRA_DATA_DIR(var, set) in a GoogleTest body: declares `const std::filesystem::path var`, the
// folder of `set`. Without the data the test is skipped (ctest reports it so) with the message,
// or fails with it under NVDRA_REQUIRE_DATA=1.
#define NVDRA_DATA_DIR(var, set)                                                   \
  const ::nvdra::testdata::Resolved var##_data_ = ::nvdra::testdata::resolve(set); \
  if (!var##_data_.found) {                                                        \
    if (var##_data_.required) FAIL() << var##_data_.message;                       \
    GTEST_SKIP() << var##_data_.message;                                           \
  }                                                                                \
  const std::filesystem::path& var = var##_data_.dir
