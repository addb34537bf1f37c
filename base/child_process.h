// A long-running child process started from an argv vector (never a shell): the IMEX daemon the
// compute-domain daemon supervises, the containers nvdra-sim runs for real. Output goes to a log
// file (or is inherited), the environment is given whole. Not thread-safe: one owner drives it.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "base/result.h"

namespace nvdra {

struct ChildSpec {
  std::vector<std::string> argv;  // argv[0]: a path, or a name looked up in PATH
  std::vector<std::string> env;   // "K=V"; empty = the parent's environment
  std::string log_file;           // stdout and stderr appended here; empty = inherited
  std::string working_dir;        // empty = the parent's
  // Run in a process group of its own, and signal that whole group (what a container runtime's
  // cgroup gives: stopping the container also stops what it started).
  bool own_process_group = false;
  // Sent to the child when the thread that started it ends, the parent process's death
  // included (prctl PR_SET_PDEATHSIG): what keeps a simulator's containers from outliving a
  // simulator that was killed. 0 = none. Start such children from a thread that lives as long
  // as they should.
  int parent_death_signal = 0;
};

class ChildProcess {
 public:
  ChildProcess() = default;
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;
  ChildProcess(ChildProcess&& o) noexcept : pid_(o.pid_), status_(o.status_) { o.pid_ = -1; }
  ChildProcess& operator=(ChildProcess&& o) noexcept;
  ~ChildProcess();  // stops a running child (SIGKILL) and reaps it

  Status start(const ChildSpec& spec);
  bool running();  // reaps the child when it has exited
  pid_t pid() const { return pid_; }
  // The wait status of the last child that exited (see WIFEXITED …).
  std::optional<int> exit_status() const { return status_; }
  bool signal(int sig) const;
  // SIGTERM, then SIGKILL once `grace` has passed; returns once the child is reaped.
  void stop(std::chrono::milliseconds grace);

 private:
  pid_t pid_ = -1;
  bool group_ = false;  // signals go to the process group pid_ leads
  std::optional<int> status_;
};

// Starts a process as `spec` says and returns its pid; the caller reaps it (waitpid). ChildProcess
// is this plus the reaping and stopping.
Result<pid_t> spawn_process(const ChildSpec& spec);

// The current process's environment as "K=V" strings.
std::vector<std::string> current_environment();

}  // namespace nvdra
