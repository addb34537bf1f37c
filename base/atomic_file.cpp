#include "base/atomic_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>

namespace nvdra {
namespace {

Error io(const std::string& what) {
  return Error(ErrorCode::kIo, what + ": " + std::strerror(errno));
}

int timed_fsync(int fd) {
  const auto start = std::chrono::steady_clock::now();
  const int rc = ::fsync(fd);
  fsync_nanoseconds() +=
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - start)
          .count();
  return rc;
}

}  // namespace

Result<std::string> read_file(const std::string& path) {
  // Only ENOENT means "not there": callers take kNotFound as "nothing recorded yet", and a file
  // that exists but cannot be opened (EACCES, EMFILE, ELOOP, EIO) must not look like that.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return unexpected(ErrorCode::kNotFound, "cannot read " + path);
    return unexpected(io("cannot open " + path));
  }
  std::string out;
  char buf[65536];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n == 0) break;
    if (n < 0) {
      if (errno == EINTR) continue;
      const Error e = io("error reading " + path);
      ::close(fd);
      return unexpected(e);
    }
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return out;
}

std::atomic<int64_t>& fsync_nanoseconds() {
  static std::atomic<int64_t> total{0};
  return total;
}

Status fsync_dir(const std::string& dir) {
  const int d = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (d < 0) return unexpected(io("open " + dir));
  const int rc = timed_fsync(d);
  ::close(d);
  if (rc != 0) return unexpected(io("fsync " + dir));
  return ok();
}

Status write_file_atomic(const std::string& path, std::string_view data,
                         const AtomicWriteOptions& options) {
  const std::filesystem::path target(path);
  const std::string dir =
      target.has_parent_path() ? target.parent_path().string() : std::string(".");
  // A leading dot keeps runtimes that watch the folder (CDI) from reading the partial file.
  const std::string tmp =
      dir + "/." + target.filename().string() + ".tmp" + std::to_string(::getpid());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, options.mode);
  if (fd < 0) return unexpected(io("create " + tmp));
  Status s;
  ::fchmod(fd, options.mode);  // the umask must not loosen or tighten what was asked for
  size_t off = 0;
  while (s && off < data.size()) {
    const ssize_t n = ::write(fd, data.data() + off, data.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      s = unexpected(io("write " + tmp));
      break;
    }
    off += static_cast<size_t>(n);
  }
  if (s && options.durable && timed_fsync(fd) != 0) s = unexpected(io("fsync " + tmp));
  ::close(fd);
  if (s && ::rename(tmp.c_str(), path.c_str()) != 0) s = unexpected(io("rename to " + path));
  if (!s) {
    ::unlink(tmp.c_str());
    return s;
  }
  if (options.durable) return fsync_dir(dir);
  return ok();
}

}  // namespace nvdra
