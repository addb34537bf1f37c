#include "cmd/common/private_files.h"

#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>

#include <cerrno>
#include <cstring>

#include "base/atomic_file.h"

namespace nvdra {

Status write_private(const std::string& path, const std::string& content) {
  return write_file_atomic(path, content, AtomicWriteOptions{.mode = 0600, .durable = false});
}

Status private_dir(const std::string& dir) {
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return unexpected(ErrorCode::kIo,
                      fmt::format("cannot create {}: {}", dir, std::strerror(errno)));
  }
  struct stat st {};
  if (::lstat(dir.c_str(), &st) != 0)
    return unexpected(ErrorCode::kIo, fmt::format("cannot stat {}: {}", dir, std::strerror(errno)));
  if (!S_ISDIR(st.st_mode) || st.st_uid != ::geteuid() || (st.st_mode & 077) != 0) {
    return unexpected(
        ErrorCode::kInvalidArgument,
        fmt::format("{} is not a private folder (a directory of this user with mode 0700)", dir));
  }
  return ok();
}

}  // namespace nvdra
