#include "agent/exec/executor.h"

#include "base/child_process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fmt/format.h>

#include <cerrno>
#include <cstring>

namespace nvdra::agent {

Result<CommandResult> ProcessExecutor::run(const Command& command) {
  if (command.argv.empty()) return unexpected(ErrorCode::kInvalidArgument, "empty command");
  int in[2], out[2];
  if (::pipe2(in, O_CLOEXEC) != 0) return unexpected(ErrorCode::kIo, "pipe failed");
  if (::pipe2(out, O_CLOEXEC) != 0) {
    ::close(in[0]);
    ::close(in[1]);
    return unexpected(ErrorCode::kIo, "pipe failed");
  }
  // Everything the child needs is built before fork (only async-signal-safe calls after it).
  std::vector<std::string> args = command.argv;
  std::vector<char*> argv;
  for (auto& a : args)
    argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<std::string> env_store = current_environment();
  for (const auto& e : command.env)
    env_store.push_back(e);
  std::vector<char*> envp;
  for (auto& e : env_store)
    envp.push_back(e.data());
  envp.push_back(nullptr);

  const pid_t pid = ::fork();
  if (pid < 0) return unexpected(ErrorCode::kIo, fmt::format("fork: {}", std::strerror(errno)));
  if (pid == 0) {
    ::dup2(in[0], STDIN_FILENO);
    ::dup2(out[1], STDOUT_FILENO);
    ::dup2(out[1], STDERR_FILENO);
    ::execvpe(argv[0], argv.data(), envp.data());
    ::_exit(127);
  }
  ::close(in[0]);
  ::close(out[1]);
  // Small inputs (MPS control commands) fit the pipe buffer.
  if (!command.stdin_data.empty()) [[maybe_unused]]
    auto n = ::write(in[1], command.stdin_data.data(), command.stdin_data.size());
  ::close(in[1]);
  CommandResult r;
  const auto deadline = std::chrono::steady_clock::now() + command.timeout;
  bool timed_out = false;
  char buf[4096];
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      timed_out = true;
      break;
    }
    pollfd p{out[0], POLLIN, 0};
    const int rc = ::poll(&p, 1, static_cast<int>(left.count()));
    if (rc < 0 && errno == EINTR) continue;
    if (rc <= 0) {
      timed_out = rc == 0;
      break;
    }
    const ssize_t n = ::read(out[0], buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    if (r.output.size() < (1 << 20)) r.output.append(buf, static_cast<size_t>(n));
  }
  ::close(out[0]);
  if (timed_out) ::kill(pid, SIGKILL);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (timed_out)
    return unexpected(ErrorCode::kTimeout, fmt::format("{} did not finish within {} s",
                                                       command.argv[0], command.timeout.count()));
  if (WIFEXITED(status) && WEXITSTATUS(status) == 127 && r.output.empty())
    return unexpected(ErrorCode::kNotFound, fmt::format("cannot run {}", command.argv[0]));
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return r;
}

std::string describe(const Command& command) {
  std::string out;
  for (const auto& a : command.argv) {
    if (!out.empty()) out += ' ';
    if (a.find_first_of(" \t'\"") != std::string::npos) {
      out += '\'' + a + '\'';
    } else {
      out += a;
    }
  }
  return out;
}

Status check_result(const Command& command, const Result<CommandResult>& r) {
  if (!r) return unexpected(r.error().wrap(describe(command)));
  if (r->exit_code != 0) {
    std::string output = r->output;
    while (!output.empty() && (output.back() == '\n' || output.back() == ' '))
      output.pop_back();
    return unexpected(ErrorCode::kIo, fmt::format("{} failed (exit {}): {}", describe(command),
                                                  r->exit_code, output));
  }
  return ok();
}

}  // namespace nvdra::agent
