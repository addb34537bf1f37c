#include "cmd/common/process.h"

#include "base/atomic_file.h"

#include <boost/asio/signal_set.hpp>

#include <cctype>
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

std::vector<std::string> kubernetes_flag_forms(int argc, char** argv) {
  std::vector<std::string> out(argv, argv + argc);
  for (size_t i = 1; i < out.size(); ++i) {
    std::string& a = out[i];
    if (a == "--") break;  // operands from here on
    if (a.size() > 3 && a[0] == '-' && std::isalpha(static_cast<unsigned char>(a[1])) &&
        a[2] == '=')
      a.erase(2, 1);
  }
  return out;
}

std::optional<int> parse_flags(int argc, char** argv, po::options_description& d,
                               const std::string& program, po::variables_map& vm,
                               const po::positional_options_description* positional) {
  add_logging_flags(d);
  try {
    const std::vector<std::string> args = kubernetes_flag_forms(argc, argv);
    po::command_line_parser parser(std::vector<std::string>(args.begin() + 1, args.end()));
    parser.options(d);
    if (positional) parser.positional(*positional);
    po::store(parser.run(), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    std::cerr << program << ": " << e.what() << "\n";
    return 2;
  }
  if (vm.count("help")) {
    std::cout << d << "\n";
    return 0;
  }
  if (!init_logging(vm)) return 2;
  return std::nullopt;
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

IoThreads::IoThreads(net::io_context& io, int count) : io_(io), work_(net::make_work_guard(io)) {
  for (int i = 0; i < count; ++i)
    threads_.emplace_back([this] { io_.run(); });
}

void IoThreads::stop() {
  if (threads_.empty()) return;
  work_.reset();
  io_.stop();
  for (auto& t : threads_)
    t.join();
  threads_.clear();
}

Result<std::unique_ptr<metrics::Server>> serve_metrics(net::any_io_executor executor,
                                                       const std::string& bind,
                                                       metrics::Registry& registry,
                                                       metrics::HealthChecks& health,
                                                       const std::string& address_file) {
  if (bind.empty()) return std::unique_ptr<metrics::Server>();
  auto server = std::make_unique<metrics::Server>(executor, bind, registry, health);
  auto port = server->start();
  if (!port) return unexpected(port.error().wrap("metrics"));
  const std::string address = bind.substr(0, bind.rfind(':') + 1) + std::to_string(*port);
  NVDRA_INFO("serving metrics on http://{}/metrics", address);
  if (!address_file.empty()) (void)write_file_atomic(address_file, address + "\n");
  return server;
}

}  // namespace nvdra::cmd
