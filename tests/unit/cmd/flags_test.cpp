// The programs' flags accept the forms Kubernetes components and manifests use (klog's "-v=2").
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "cmd/common/process.h"

namespace nvdra::cmd {
namespace {

namespace po = boost::program_options;

// parse_flags over ARGS (after the program name); the exit code, and the verbosity it read.
std::pair<std::optional<int>, int> parse(std::vector<std::string> args,
                                         std::string* name = nullptr) {
  args.insert(args.begin(), "prog");
  std::vector<char*> argv;
  for (auto& a : args)
    argv.push_back(a.data());
  po::options_description d("test");
  d.add_options()("name", po::value<std::string>()->default_value(""), "a string flag");
  po::variables_map vm;
  auto rc = parse_flags(static_cast<int>(argv.size()), argv.data(), d, "prog", vm);
  if (name && !rc && vm.count("name")) *name = vm["name"].as<std::string>();
  return {rc, !rc && vm.count("v") ? vm["v"].as<int>() : -1};
}

TEST(Flags, VerbosityInEveryFormKubernetesUses) {
  for (const auto& form : std::vector<std::vector<std::string>>{
           {"-v=2"}, {"--v=2"}, {"-v", "2"}, {"--v", "2"}, {"-v2"}}) {
    auto [rc, v] = parse(form);
    EXPECT_FALSE(rc) << form[0];
    EXPECT_EQ(v, 2) << form[0];
  }
}

TEST(Flags, OnlyTheShorthandFormIsRewritten) {
  std::string name;
  auto [rc, v] = parse({"--name=-v=3", "-v=1"}, &name);
  EXPECT_FALSE(rc);
  EXPECT_EQ(name, "-v=3");  // a value that looks like the shorthand is a value
  EXPECT_EQ(v, 1);
  EXPECT_EQ(
      kubernetes_flag_forms(3, std::vector<char*>{const_cast<char*>("p"), const_cast<char*>("--"),
                                                  const_cast<char*>("-v=2")}
                                   .data())[2],
      "-v=2");  // after "--" everything is an operand
}

TEST(Flags, ABadValueIsAnErrorNotACrash) {
  EXPECT_EQ(parse({"-v=abc"}).first, 2);
  EXPECT_EQ(parse({"--unknown=1"}).first, 2);
}

}  // namespace
}  // namespace nvdra::cmd
