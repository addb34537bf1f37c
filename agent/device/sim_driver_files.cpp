#include "agent/device/sim_driver_files.h"

#include <fmt/format.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "base/atomic_file.h"

namespace nvdra::agent {
namespace fs = std::filesystem;

Status SimDriverFiles::make_node(const std::string& path, int major, int minor, unsigned mode) {
  std::error_code ec;
  fs::create_directories(fs::path(path).parent_path(), ec);
  struct stat st {};
  if (::lstat(path.c_str(), &st) == 0) {
    if (S_ISCHR(st.st_mode) && ::major(st.st_rdev) == static_cast<unsigned>(major) &&
        ::minor(st.st_rdev) == static_cast<unsigned>(minor))
      return ok();
    fs::remove(path, ec);  // something else in its place (an earlier layout): replaced
  }
  if (::mknod(path.c_str(), S_IFCHR | mode, makedev(major, minor)) != 0 && errno != EEXIST)
    return unexpected(ErrorCode::kIo,
                      fmt::format("cannot create the simulated device node {} ({}:{}): {} (the "
                                  "simulated driver's device nodes need CAP_MKNOD)",
                                  path, major, minor, std::strerror(errno)));
  ::chmod(path.c_str(), mode);  // mknod applies the umask
  return ok();
}

Status SimDriverFiles::create_driver(int gpus) {
  const std::string devices = fmt::format(
      "Character devices:\n  1 mem\n{} nvidia-frontend\n{} nvidia-caps-imex-channels\n"
      "{} nvidia-uvm\n{} nvidia-caps\n\nBlock devices:\n",
      kGpuMajor, kImexChannelsMajor, kUvmMajor, kCapsMajor);
  std::error_code ec;
  fs::create_directories(root_ + "/proc", ec);
  if (auto s = write_file_atomic(root_ + "/proc/devices", devices); !s) return s;
  for (int minor = 0; minor < gpus; ++minor) {
    if (auto s = make_node(fmt::format("{}/dev/nvidia{}", root_, minor), kGpuMajor, minor, 0666);
        !s)
      return s;
  }
  for (const auto& [name, major, minor] :
       {std::tuple{"nvidiactl", kGpuMajor, kCtlMinor}, std::tuple{"nvidia-uvm", kUvmMajor, 0},
        std::tuple{"nvidia-uvm-tools", kUvmMajor, 1}}) {
    if (auto s = make_node(fmt::format("{}/dev/{}", root_, name), major, minor, 0666); !s) return s;
  }
  return ok();
}

Status SimDriverFiles::create_mig(int parent_minor, int gi) {
  const std::string dir =
      fmt::format("{}/proc/driver/nvidia/capabilities/gpu{}/mig/gi{}", root_, parent_minor, gi);
  std::error_code ec;
  fs::create_directories(dir + "/ci0", ec);
  if (ec) return unexpected(ErrorCode::kIo, fmt::format("cannot create {}: {}", dir, ec.message()));
  const int gi_cap = gi_capability_minor(parent_minor, gi),
            ci_cap = ci_capability_minor(parent_minor, gi, 0);
  for (const auto& [file, cap] :
       {std::pair{dir + "/access", gi_cap}, std::pair{dir + "/ci0/access", ci_cap}}) {
    if (auto s =
            write_file_atomic(file, fmt::format("DeviceFileMinor: {}\nDeviceFileMode: 292\n", cap));
        !s)
      return s;
    if (auto s = make_node(fmt::format("{}/dev/nvidia-caps/nvidia-cap{}", root_, cap), kCapsMajor,
                           cap, 0444);
        !s)
      return s;
  }
  return ok();
}

void SimDriverFiles::remove_mig(int parent_minor, int gi) {
  std::error_code ec;
  fs::remove_all(
      fmt::format("{}/proc/driver/nvidia/capabilities/gpu{}/mig/gi{}", root_, parent_minor, gi),
      ec);
  for (int cap : {gi_capability_minor(parent_minor, gi), ci_capability_minor(parent_minor, gi, 0)})
    fs::remove(fmt::format("{}/dev/nvidia-caps/nvidia-cap{}", root_, cap), ec);
}

}  // namespace nvdra::agent
