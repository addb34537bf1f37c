// What every nvdra binary's main shares: klog-style logging flags and a signal-driven stop.
#pragma once

#include <boost/program_options.hpp>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "base/asio.h"
#include "base/result.h"
#include "metrics/registry.h"
#include "metrics/server.h"

namespace nvdra::cmd {

// -v/--v N and --logging-format text|json, as Kubernetes components spell them.
void add_logging_flags(boost::program_options::options_description& d);
// Applies them; returns false (after printing why) on a bad value.
bool init_logging(const boost::program_options::variables_map& vm);

// Kubernetes' flag forms that boost's parser reads differently: the klog shorthand "-v=2" (boost
// would take "=2" as the value) becomes "-v2". Other arguments are kept as they are.
std::vector<std::string> kubernetes_flag_forms(int argc, char** argv);

// Adds the logging flags to `d`, parses argv (in Kubernetes' flag forms) into `vm` (with
// `positional`, if given) and applies the logging flags. Returns the exit code when the program
// should stop now (2 after printing a bad flag, 0 after printing --help), nullopt when it goes on.
std::optional<int> parse_flags(
    int argc, char** argv, boost::program_options::options_description& d,
    const std::string& program, boost::program_options::variables_map& vm,
    const boost::program_options::positional_options_description* positional = nullptr);

// Runs `io` on the calling thread until SIGINT or SIGTERM, then calls `on_stop` and lets the
// io_context finish the work that stop leaves.
void run_until_signal(net::io_context& io, std::function<void()> on_stop);

// The threads that run a program's io_context; stop() (or the destructor) lets them finish.
class IoThreads {
 public:
  IoThreads(net::io_context& io, int count);
  ~IoThreads() { stop(); }
  void stop();

 private:
  net::io_context& io_;
  net::executor_work_guard<net::io_context::executor_type> work_;
  std::vector<std::thread> threads_;
};

// Serves /metrics, /healthz and /readyz on `bind` (host:port; empty: nothing, null result) and
// logs where; with `address_file` the bound address is written there (port 0 in tests).
Result<std::unique_ptr<metrics::Server>> serve_metrics(net::any_io_executor executor,
                                                       const std::string& bind,
                                                       metrics::Registry& registry,
                                                       metrics::HealthChecks& health,
                                                       const std::string& address_file);

}  // namespace nvdra::cmd
