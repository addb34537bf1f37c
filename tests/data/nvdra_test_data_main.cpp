// nvdra-test-data SETTING: the end-to-end scripts' way to the data sets of test_data.h, so that
// bash resolves them exactly as the C++ tests do. Prints the folder and exits 0; without the data
// prints why on stderr and exits 77 (ctest's skip code for the scripts) or, under
// NVDRA_REQUIRE_DATA=1, 1.
#include <cstdio>

#include "tests/data/test_data.h"

int main(int argc, char** argv) {
  const nvdra::testdata::DataSet* set = argc == 2 ? nvdra::testdata::find(argv[1]) : nullptr;
  if (!set) {
    std::fprintf(stderr, "usage: nvdra-test-data NVDRA_COMPAT_DIR|NVDRA_FIXTURES_DIR\n");
    return 2;
  }
  const nvdra::testdata::Resolved r = nvdra::testdata::resolve(*set);
  if (!r.found) {
    std::fprintf(stderr, "%s\n", r.message.c_str());
    return r.required ? 1 : 77;
  }
  std::printf("%s\n", r.dir.c_str());
  return 0;
}
