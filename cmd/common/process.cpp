#include "cmd/common/process.h"

#include <boost/asio/signal_set.hpp>

#include <csignal>
#include <iostream>

#include "base/log.h"

namespace nvdra::cmd {

namespace po = boost::program_options;

void add_logging_flags(po::options_description& d) {
  d.add_options()("v,v", po::value<int>()->default_value(0), "log verbosity (klog -v)")(
      "logging-format", po::value<std::string>()->default_value("text"),
      "log format: text or json");
}

bool init_logging(const po::variables_map& vm) {
  log::Options o;
  o.verbosity = vm["v"].as<int>();
  if (!log::parse_format(vm["logging-format"].as<std::string>(), &o.format)) {
    std::cerr << "invalid --logging-format \"" << vm["logging-format"].as<std::string>()
              << "\" (want text or json)\n";
    return false;
  }
  log::init(o);
  return true;
}

void run_until_signal(net::io_context& io, std::function<void()> on_stop) {
  net::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](const boost::system::error_code& ec, int sig) {
    if (ec) return;
    NVDRA_INFO("received signal {}, shutting down", sig);
    on_stop();
  });
  io.run();
}

}  // namespace nvdra::cmd
