#include "tests/data/test_data.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <string>

namespace nvdra::testdata {
namespace {

namespace fs = std::filesystem;

// An environment of the test's own, so the real one (CI sets NVDRA_REQUIRE_DATA) plays no part.
struct Env {
  std::map<std::string, std::string> vars;
  Getenv getenv() const {
    return [this](const char* name) -> const char* {
      auto it = vars.find(name);
      return it == vars.end() ? nullptr : it->second.c_str();
    };
  }
};

class TestDataTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("nvdra-test-data-" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) +
            "-" + ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  // dir_ holding the marker file of `set`, as a copy of the data would.
  void hold(const DataSet& set) {
    fs::create_directories((dir_ / set.marker).parent_path());
    std::ofstream(dir_ / set.marker) << "x";
  }
  fs::path dir_;
};

TEST_F(TestDataTest, TheEnvironmentVariableWins) {
  hold(kCompat);
  Env env{{{"NVDRA_COMPAT_DIR", dir_.string()}}};
  Resolved r = resolve(kCompat, env.getenv());
  EXPECT_TRUE(r.found) << r.message;
  EXPECT_EQ(r.dir, dir_.lexically_normal());
  EXPECT_TRUE(r.message.empty());
}

TEST_F(TestDataTest, UnsetOrEmptyMeansTheConfiguredFolder) {
  for (const DataSet* set : {&kCompat, &kFixtures}) {
    for (const Env& env : {Env{}, Env{{{std::string(set->setting), ""}}}}) {
      Resolved r = resolve(*set, env.getenv());
      EXPECT_EQ(r.dir, fs::path(set->configured).lexically_normal()) << set->setting;
    }
  }
}

TEST_F(TestDataTest, RelativeFoldersStartAtTheRepository) {
  Env env{{{"NVDRA_FIXTURES_DIR", "examples/../examples"}}};
  EXPECT_EQ(resolve(kFixtures, env.getenv()).dir, fs::path(NVDRA_SOURCE_DIR) / "examples");
}

TEST_F(TestDataTest, MissingDataIsASkipThatSaysWhereToGetIt) {
  Env env{{{"NVDRA_COMPAT_DIR", "/nonexistent/specs"}, {"NVDRA_FIXTURES_DIR", "/nonexistent/api"}}};
  Resolved compat = resolve(kCompat, env.getenv());
  EXPECT_FALSE(compat.found);
  EXPECT_FALSE(compat.required);
  EXPECT_EQ(compat.message.find('\n'), std::string::npos) << "one line";
  for (const char* part : {"NVDRA_COMPAT_DIR", "/nonexistent/specs", "NVIDIA's demo specs",
                           "demo/specs", "github.com/kubernetes-sigs/dra-driver-nvidia-gpu"})
    EXPECT_NE(compat.message.find(part), std::string::npos) << part << " not in " << compat.message;
  Resolved fixtures = resolve(kFixtures, env.getenv());
  EXPECT_FALSE(fixtures.found);
  for (const char* part :
       {"NVDRA_FIXTURES_DIR", "/nonexistent/api", "serialized Kubernetes API", "testdata/HEAD"})
    EXPECT_NE(fixtures.message.find(part), std::string::npos)
        << part << " not in " << fixtures.message;
}

TEST_F(TestDataTest, AFolderWithoutTheDataIsNotTheData) {
  hold(kFixtures);  // a folder that exists, holding the other data set
  Env env{{{"NVDRA_COMPAT_DIR", dir_.string()}}};
  Resolved r = resolve(kCompat, env.getenv());
  EXPECT_FALSE(r.found);
  EXPECT_NE(r.message.find(std::string(kCompat.marker)), std::string::npos) << r.message;
}

TEST_F(TestDataTest, RequireDataMakesMissingDataAFailure) {
  Env env{{{"NVDRA_COMPAT_DIR", "/nonexistent"}, {"NVDRA_REQUIRE_DATA", "1"}}};
  Resolved r = resolve(kCompat, env.getenv());
  EXPECT_FALSE(r.found);
  EXPECT_TRUE(r.required);
  EXPECT_NE(r.message.find("NVDRA_REQUIRE_DATA=1"), std::string::npos) << r.message;
  for (const char* off : {"0", ""}) {
    env.vars["NVDRA_REQUIRE_DATA"] = off;
    EXPECT_FALSE(resolve(kCompat, env.getenv()).required) << "NVDRA_REQUIRE_DATA=" << off;
  }
  hold(kCompat);  // present data is fine either way
  env.vars = {{"NVDRA_COMPAT_DIR", dir_.string()}, {"NVDRA_REQUIRE_DATA", "1"}};
  EXPECT_TRUE(resolve(kCompat, env.getenv()).found);
}

TEST(TestDataFind, BySettingName) {
  EXPECT_EQ(find("NVDRA_COMPAT_DIR"), &kCompat);
  EXPECT_EQ(find("NVDRA_FIXTURES_DIR"), &kFixtures);
  EXPECT_EQ(find("NVDRA_OTHER_DIR"), nullptr);
}

}  // namespace
}  // namespace nvdra::testdata
