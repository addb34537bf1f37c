// What every nvdra binary's main shares: klog-style logging flags and a signal-driven stop.
#pragma once

#include <boost/program_options.hpp>

#include <functional>
#include <string>

#include "base/asio.h"

namespace nvdra::cmd {

// -v/--v N and --logging-format text|json, as Kubernetes components spell them.
void add_logging_flags(boost::program_options::options_description& d);
// Applies them; returns false (after printing why) on a bad value.
bool init_logging(const boost::program_options::variables_map& vm);

// Runs `io` on the calling thread until SIGINT or SIGTERM, then calls `on_stop` and lets the
// io_context finish the work that stop leaves.
void run_until_signal(net::io_context& io, std::function<void()> on_stop);

}  // namespace nvdra::cmd
