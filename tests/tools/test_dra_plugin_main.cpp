// nvdra-test-dra-plugin: a stand-in node agent for nvdra-sim until nvdra-agent exists. It takes the
// agent's command line (kubelet-plugin --root R --node-name N …), serves the kubelet plugin
// registration and DRA services for gpu.nvidia.com (and compute-domain.nvidia.com on NVLink clique
// members) under R/var/lib/kubelet, answers every prepare with one CDI device per claim, and logs
// each call. It publishes no ResourceSlices (run nvdra-sim up with --sim-slices).
#include <signal.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "support/test_dra_plugin.h"

namespace {

std::atomic<bool> stop{false};

std::string flag(int argc, char** argv, const std::string& name) {
  for (int i = 1; i + 1 < argc; ++i) {
    if (argv[i] == name) return argv[i + 1];
  }
  return {};
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || std::string(argv[1]) != "kubelet-plugin") {
    std::cerr << "usage: nvdra-test-dra-plugin kubelet-plugin --root DIR --node-name NAME "
                 "[--sim-node-config FILE]\n";
    return 2;
  }
  const std::string root = flag(argc, argv, "--root");
  const std::string node = flag(argc, argv, "--node-name");
  if (root.empty() || node.empty()) {
    std::cerr << "nvdra-test-dra-plugin: --root and --node-name are required\n";
    return 2;
  }
  std::ifstream cfg(flag(argc, argv, "--sim-node-config"));
  std::stringstream ss;
  ss << cfg.rdbuf();
  const bool clique = ss.str().find("cliqueID:") != std::string::npos;
  ::signal(SIGTERM, [](int) { stop = true; });
  ::signal(SIGINT, [](int) { stop = true; });
  const std::string kubelet = root + "/var/lib/kubelet";
  std::vector<std::unique_ptr<nvdra::testing::TestDraPlugin>> plugins;
  plugins.push_back(std::make_unique<nvdra::testing::TestDraPlugin>(
      kubelet, "gpu.nvidia.com", std::vector<std::string>{"v1.DRAPlugin", "v1beta1.DRAPlugin"}));
  if (clique) {
    plugins.push_back(std::make_unique<nvdra::testing::TestDraPlugin>(
        kubelet, "compute-domain.nvidia.com",
        std::vector<std::string>{"v1.DRAPlugin", "v1beta1.DRAPlugin"}));
  }
  std::cout << "nvdra-test-dra-plugin: serving on node " << node << std::endl;
  size_t logged = 0;
  while (!stop) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    std::vector<nvdra::testing::TestDraPlugin::Call> calls;
    for (auto& p : plugins) {
      auto c = p->calls();
      calls.insert(calls.end(), c.begin(), c.end());
    }
    for (; logged < calls.size(); ++logged) {
      const auto& c = calls[logged];
      std::cout << c.method << " (" << c.version << ") claim " << c.ns << "/" << c.name << " "
                << c.uid << std::endl;
    }
  }
  for (auto& p : plugins)
    p->stop();
  std::cout << "nvdra-test-dra-plugin: stopped" << std::endl;
  return 0;
}
