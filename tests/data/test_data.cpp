#include "tests/data/test_data.h"

#include <cstdlib>
#include <string>

namespace nvdra::testdata {

const DataSet kCompat{
    .setting = "NVDRA_COMPAT_DIR",
    .what = "NVIDIA's demo specs",
    .where = "a copy of the demo/specs folder of github.com/kubernetes-sigs/dra-driver-nvidia-gpu",
    .marker = "quickstart/v1/gpu-test1.yaml",
    .configured = NVDRA_COMPAT_DIR_CONFIGURED,
};

const DataSet kFixtures{
    .setting = "NVDRA_FIXTURES_DIR",
    .what = "serialized Kubernetes API objects",
    .where =
        "a folder of Kubernetes API objects serialized with every field set, one file per "
        "group.version.Kind (core.v1.Pod.json, ...), such as "
        "staging/src/k8s.io/api/testdata/HEAD of github.com/kubernetes/kubernetes",
    .marker = "core.v1.Pod.json",
    .configured = NVDRA_FIXTURES_DIR_CONFIGURED,
};

const DataSet* find(std::string_view setting) {
  for (const DataSet* s : {&kCompat, &kFixtures})
    if (s->setting == setting) return s;
  return nullptr;
}

Resolved resolve(const DataSet& set, const Getenv& getenv) {
  Resolved r;
  const char* env = getenv(std::string(set.setting).c_str());
  const bool from_env = env && *env;
  std::filesystem::path dir =
      from_env ? std::filesystem::path(env) : std::filesystem::path(set.configured);
  if (dir.is_relative()) dir = std::filesystem::path(NVDRA_SOURCE_DIR) / dir;
  r.dir = dir.lexically_normal();
  std::error_code ec;
  r.found = std::filesystem::is_regular_file(r.dir / set.marker, ec);
  const char* require = getenv("NVDRA_REQUIRE_DATA");
  r.required = require && std::string_view(require) == "1";
  if (!r.found) {
    r.message = "test data missing: " + std::string(set.what) + " not at " + r.dir.string() + " (" +
                (from_env ? "from " : "default of ") + std::string(set.setting) + "; no " +
                std::string(set.marker) + "); set " + std::string(set.setting) + " to " +
                std::string(set.where);
    if (r.required) r.message += " [NVDRA_REQUIRE_DATA=1: a failure, not a skip]";
  }
  return r;
}

Resolved resolve(const DataSet& set) {
  return resolve(set, [](const char* name) { return std::getenv(name); });
}

}  // namespace nvdra::testdata
