#include "base/child_process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fmt/format.h>

#include <cerrno>
#include <cstring>
#include <thread>

extern char** environ;

namespace nvdra {

std::vector<std::string> current_environment() {
  std::vector<std::string> out;
  for (char** e = environ; *e; ++e)
    out.emplace_back(*e);
  return out;
}

ChildProcess::~ChildProcess() {
  if (pid_ > 0) {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
}

ChildProcess& ChildProcess::operator=(ChildProcess&& o) noexcept {
  if (this != &o) {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    pid_ = o.pid_;
    status_ = o.status_;
    o.pid_ = -1;
  }
  return *this;
}

Result<pid_t> spawn_process(const ChildSpec& spec) {
  if (spec.argv.empty()) return unexpected(ErrorCode::kInvalidArgument, "empty command");
  // Everything the child needs is built before fork (only async-signal-safe calls after it).
  std::vector<std::string> args = spec.argv;
  std::vector<char*> argv;
  for (auto& a : args)
    argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<std::string> env = spec.env.empty() ? current_environment() : spec.env;
  std::vector<char*> envp;
  for (auto& e : env)
    envp.push_back(e.data());
  envp.push_back(nullptr);
  int log = -1;
  if (!spec.log_file.empty()) {
    log = ::open(spec.log_file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (log < 0)
      return unexpected(ErrorCode::kIo,
                        fmt::format("cannot open {}: {}", spec.log_file, std::strerror(errno)));
  }
  const char* dir = spec.working_dir.empty() ? nullptr : spec.working_dir.c_str();
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) {
    if (log >= 0) ::close(log);
    return unexpected(ErrorCode::kIo, fmt::format("fork: {}", std::strerror(errno)));
  }
  if (pid == 0) {
    if (log >= 0) {
      ::dup2(log, STDOUT_FILENO);
      ::dup2(log, STDERR_FILENO);
    }
    // Nothing of the parent's but stdio: an inherited listening socket would keep the parent's
    // port bound after it exits (asio does not open sockets close-on-exec).
    ::close_range(3, ~0U, 0);
    if (spec.own_process_group) ::setpgid(0, 0);
    if (spec.parent_death_signal != 0) {
      ::prctl(PR_SET_PDEATHSIG, spec.parent_death_signal);
      if (::getppid() != parent) ::_exit(126);  // the parent died before prctl took effect
    }
    ::signal(SIGPIPE, SIG_DFL);
    if (dir && ::chdir(dir) != 0) ::_exit(126);
    ::execvpe(argv[0], argv.data(), envp.data());
    ::_exit(127);
  }
  if (log >= 0) ::close(log);
  return pid;
}

Status ChildProcess::start(const ChildSpec& spec) {
  if (running()) return unexpected(ErrorCode::kInternal, "the process is still running");
  auto pid = spawn_process(spec);
  if (!pid) return unexpected(pid.error());
  if (spec.own_process_group) ::setpgid(*pid, *pid);  // also here: no race with signal()
  pid_ = *pid;
  group_ = spec.own_process_group;
  status_.reset();
  return ok();
}

bool ChildProcess::running() {
  if (pid_ <= 0) return false;
  int st = 0;
  const pid_t r = ::waitpid(pid_, &st, WNOHANG);
  if (r == 0) return true;
  if (r == pid_) status_ = st;
  // As when a container's first process exits: whatever it left in its group dies with it.
  if (group_) ::kill(-pid_, SIGKILL);
  pid_ = -1;
  return false;
}

bool ChildProcess::signal(int sig) const {
  return pid_ > 0 && ::kill(group_ ? -pid_ : pid_, sig) == 0;
}

void ChildProcess::stop(std::chrono::milliseconds grace) {
  if (!running()) return;
  signal(SIGTERM);
  const auto deadline = std::chrono::steady_clock::now() + grace;
  while (running()) {
    if (std::chrono::steady_clock::now() >= deadline) {
      signal(SIGKILL);
      int st = 0;
      if (::waitpid(pid_, &st, 0) == pid_) status_ = st;
      pid_ = -1;  // the group went with the SIGKILL
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

}  // namespace nvdra
