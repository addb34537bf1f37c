// The process executor runs argv vectors: arguments reach the program verbatim (no shell), stdin
// is passed, a hung tool is killed at its timeout, a missing one is a clear error.
#include "agent/exec/executor.h"

#include <gtest/gtest.h>

#include <filesystem>

namespace nvdra::agent {
namespace {

TEST(ProcessExecutor, PassesArgumentsVerbatimWithoutAShell) {
  ProcessExecutor e;
  const std::string marker = "/tmp/nvdra-executor-must-not-exist";
  auto r = e.run(Command{{"echo", "$(touch " + marker + ")", "a;b", "`id`"}});
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->exit_code, 0);
  EXPECT_EQ(r->output, "$(touch " + marker + ") a;b `id`\n");
  EXPECT_FALSE(std::filesystem::exists(marker));
}

TEST(ProcessExecutor, StdinEnvironmentAndExitCodes) {
  ProcessExecutor e;
  auto cat = e.run(Command{{"cat"}, {}, "quit\n"});
  ASSERT_TRUE(cat);
  EXPECT_EQ(cat->output, "quit\n");
  auto env =
      e.run(Command{{"printenv", "CUDA_MPS_PIPE_DIRECTORY"}, {"CUDA_MPS_PIPE_DIRECTORY=/p"}});
  ASSERT_TRUE(env);
  EXPECT_EQ(env->output, "/p\n");
  Command fails{{"sh", "-c", "echo broken >&2; exit 3"}};
  auto r = e.run(fails);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->exit_code, 3);
  EXPECT_EQ(check_result(fails, r).error().message,
            "sh -c 'echo broken >&2; exit 3' failed (exit 3): broken");
}

TEST(ProcessExecutor, TimeoutsAndMissingTools) {
  ProcessExecutor e;
  Command slow{{"sleep", "30"}};
  slow.timeout = std::chrono::seconds(1);
  auto r = e.run(slow);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kTimeout);
  auto missing = e.run(Command{{"nvdra-no-such-tool"}});
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, ErrorCode::kNotFound);
  EXPECT_EQ(missing.error().message, "cannot run nvdra-no-such-tool");
  EXPECT_FALSE(e.run(Command{}));
}

}  // namespace
}  // namespace nvdra::agent
