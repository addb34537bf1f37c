// Runs the host tools the agent needs (nvidia-smi, nvidia-cuda-mps-control, nvidia-imex) from
// argv vectors — never through a shell — so no claim field can inject a command.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "base/result.h"

namespace nvdra::agent {

struct Command {
  std::vector<std::string> argv;  // argv[0] is looked up in PATH when it has no '/'
  std::vector<std::string> env;   // "K=V" added to the agent's environment
  std::string stdin_data;
  std::chrono::seconds timeout{30};
};

struct CommandResult {
  int exit_code = 0;
  std::string output;  // stdout and stderr together
};

class Executor {
 public:
  virtual ~Executor() = default;
  // An error when the program could not be started or timed out; a non-zero exit is a result.
  virtual Result<CommandResult> run(const Command& command) = 0;
};

// fork + execvpe with pipes. The process must ignore SIGPIPE (nvdra-agent does): a tool that
// exits without reading its stdin would otherwise kill it.
class ProcessExecutor final : public Executor {
 public:
  Result<CommandResult> run(const Command& command) override;
};

// "nvidia-smi -i X -c DEFAULT" for messages and logs (quoted where needed; display only).
std::string describe(const Command& command);
// The command's failure as an Error naming the tool and its output.
Status check_result(const Command& command, const Result<CommandResult>& r);

}  // namespace nvdra::agent
