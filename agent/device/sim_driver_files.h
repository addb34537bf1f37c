// The files a loaded NVIDIA kernel driver provides, made for the simulated backend on a node with
// no NVIDIA driver (the real test cluster): character device nodes /dev/nvidia<minor>,
// /dev/nvidiactl, /dev/nvidia-uvm(-tools) and /dev/nvidia-caps/nvidia-cap<N> with NVIDIA's
// majors, /proc/devices naming them, and the MIG access capabilities under
// /proc/driver/nvidia/capabilities. Everything lives under one root (<root>/dev, <root>/proc),
// so a container runtime injects real device nodes from the CDI specs the agent writes for
// simulated GPUs. Opening the nodes fails (no driver answers them); listing and stat work.
#pragma once

#include <string>

#include "base/result.h"

namespace nvdra::agent {

class SimDriverFiles {
 public:
  // The majors this simulated driver registers (195 is fixed for NVIDIA's GPUs; the others are
  // dynamic on a real node and chosen here from the range the kernel hands out).
  static constexpr int kGpuMajor = 195;
  static constexpr int kCtlMinor = 255;
  static constexpr int kImexChannelsMajor = 509;
  static constexpr int kUvmMajor = 510;
  static constexpr int kCapsMajor = 511;

  explicit SimDriverFiles(std::string root) : root_(std::move(root)) {}

  // /proc/devices, the control nodes and one node per GPU minor (existing ones are kept).
  Status create_driver(int gpu_count_or_max_minor_plus_one);
  // The access capabilities of a MIG device's GPU instance and its compute instance 0.
  Status create_mig(int parent_minor, int gi);
  void remove_mig(int parent_minor, int gi);  // best effort: nothing depends on the files

  // The capability minors of a GPU instance and of its compute instance ci.
  static int gi_capability_minor(int parent_minor, int gi) {
    return 1000 + parent_minor * 128 + gi * 8;
  }
  static int ci_capability_minor(int parent_minor, int gi, int ci) {
    return gi_capability_minor(parent_minor, gi) + 1 + ci;
  }

 private:
  Status make_node(const std::string& path, int major, int minor, unsigned mode);
  std::string root_;
};

}  // namespace nvdra::agent
