#include "base/child_process.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <string>
#include <thread>

namespace nvdra {
namespace {

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

bool wait_for_file(const std::string& path) {
  for (int i = 0; i < 500; ++i) {
    if (!read_file(path).empty()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

std::string temp_path(const char* name) {
  return std::string(::testing::TempDir()) + "/" + name + std::to_string(::getpid());
}

TEST(ChildProcess, InheritsNoDescriptorButStdio) {
  // A descriptor without close-on-exec, as asio's sockets are.
  // A high number, so that it cannot be one ls opens itself.
  const int low = ::open("/dev/null", O_RDONLY);
  ASSERT_GE(low, 3);
  const int fd = ::fcntl(low, F_DUPFD, 100);
  ::close(low);
  ASSERT_GE(fd, 100);
  const std::string out = temp_path("fds");
  ChildProcess p;
  ASSERT_TRUE(p.start(ChildSpec{{"sh", "-c", "ls /proc/self/fd > " + out}, {}, "", ""}));
  while (p.running())
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  ::close(fd);
  std::string fds = read_file(out);
  EXPECT_EQ(fds.find("\n" + std::to_string(fd) + "\n"), std::string::npos) << fds;
  ::unlink(out.c_str());
}

TEST(ChildProcess, AParentDeathSignalEndsTheChildWithItsStarter) {
  // The starter here is a thread; its end is what a killed simulator is to its containers.
  ChildProcess p;
  ChildSpec spec{{"sleep", "300"}, {}, "", ""};
  spec.parent_death_signal = SIGKILL;
  std::thread([&] {
    ASSERT_TRUE(p.start(spec));
    // Long enough for the child to reach its prctl: a starter thread that ends before then is
    // a race this test is not about (the simulator's own death is checked with getppid()).
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
  }).join();
  bool running = true;
  for (int i = 0; i < 500 && running; ++i) {
    running = p.running();
    if (running) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_FALSE(running);
  ASSERT_TRUE(p.exit_status());
  EXPECT_TRUE(WIFSIGNALED(*p.exit_status()));
  EXPECT_EQ(WTERMSIG(*p.exit_status()), SIGKILL);
}

TEST(ChildProcess, StoppingAProcessGroupStopsWhatItStarted) {
  const std::string pid_file = temp_path("grandchild");
  ChildSpec spec{{"sh", "-c", "sleep 300 & echo $! > " + pid_file + "; wait"}, {}, "", ""};
  spec.own_process_group = true;
  ChildProcess p;
  ASSERT_TRUE(p.start(spec));
  ASSERT_TRUE(wait_for_file(pid_file));
  const pid_t grandchild = std::stoi(read_file(pid_file));
  EXPECT_EQ(::kill(grandchild, 0), 0);
  p.stop(std::chrono::milliseconds(0));
  EXPECT_FALSE(p.running());
  bool gone = false;
  for (int i = 0; i < 200 && !gone; ++i) {
    // The grandchild is reparented (to init or a subreaper) and reaped there; until then it
    // is a zombie, which counts as gone once its state says so.
    const std::string stat = read_file("/proc/" + std::to_string(grandchild) + "/stat");
    gone = stat.empty() || stat.find(") Z ") != std::string::npos;
    if (!gone) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_TRUE(gone) << "the grandchild outlived its group";
  ::unlink(pid_file.c_str());
}

}  // namespace
}  // namespace nvdra
