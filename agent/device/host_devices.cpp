#include "agent/device/host_devices.h"

#include <fstream>
#include <sstream>

namespace nvdra::agent {

int char_device_major(const std::string& proc_devices, std::string_view name) {
  std::ifstream f(proc_devices);
  std::string line;
  bool chars = false;
  while (std::getline(f, line)) {
    if (line.starts_with("Character devices")) chars = true;
    if (line.starts_with("Block devices")) chars = false;
    std::istringstream in(line);
    int major;
    std::string dev;
    if (chars && in >> major >> dev && dev == name) return major;
  }
  return -1;
}

std::optional<int> capability_minor(const std::string& access_file) {
  std::ifstream f(access_file);
  std::string key;
  while (f >> key) {
    if (key == "DeviceFileMinor:") {
      int minor;
      if (f >> minor && minor >= 0) return minor;
      return std::nullopt;
    }
  }
  return std::nullopt;
}

}  // namespace nvdra::agent
