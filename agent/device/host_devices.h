// What the NVIDIA kernel driver tells about its character devices: majors in /proc/devices and
// the capability device minors (MIG instances, IMEX management) under
// /proc/driver/nvidia/capabilities.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace nvdra::agent {

// The major of character device `name` in a /proc/devices file; -1 when absent.
int char_device_major(const std::string& proc_devices, std::string_view name);

// The "DeviceFileMinor: N" of a capability's access file; nullopt when absent or unreadable.
std::optional<int> capability_minor(const std::string& access_file);

}  // namespace nvdra::agent
