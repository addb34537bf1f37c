#include "cmd/common/private_files.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

namespace nvdra {
namespace {

std::string fresh_dir(const std::string& name) {
  auto dir = std::filesystem::temp_directory_path() /
             ("nvdra-private-" + std::to_string(::getpid()) + "-" + name);
  std::filesystem::remove_all(dir);
  return dir.string();
}

mode_t mode_of(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(::lstat(path.c_str(), &st), 0) << path;
  return st.st_mode & 07777;
}

TEST(PrivateFiles, FoldersAre0700AndOnlyOurOwn) {
  const std::string dir = fresh_dir("a");
  ASSERT_TRUE(private_dir(dir));
  EXPECT_EQ(mode_of(dir), 0700u);
  EXPECT_TRUE(private_dir(dir));  // again: it is ours and closed
  ::chmod(dir.c_str(), 0755);
  EXPECT_FALSE(private_dir(dir));  // open to others: refused, not reused
  const std::string link = fresh_dir("link");
  std::filesystem::create_directory_symlink(dir, link);
  ::chmod(dir.c_str(), 0700);
  EXPECT_FALSE(private_dir(link));  // a link planted in its place
  std::filesystem::remove(link);
  std::filesystem::remove_all(dir);
}

TEST(PrivateFiles, CredentialsAre0600EvenUnderAPermissiveUmask) {
  const std::string dir = fresh_dir("b");
  ASSERT_TRUE(private_dir(dir));
  const mode_t old = ::umask(0);
  auto st = write_private(dir + "/kubeconfig", "token: x\n");
  ::umask(old);
  ASSERT_TRUE(st) << st.error().message;
  EXPECT_EQ(mode_of(dir + "/kubeconfig"), 0600u);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace nvdra
