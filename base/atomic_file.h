// Reading a whole file, and crash-safe file replacement: write a temporary file beside the target,
// fsync it, rename it over the target and fsync the folder, so a reader sees the old or the new
// content, never a mix, and the new content survives a power cut once this returns.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>

#include "base/result.h"

namespace nvdra {

struct AtomicWriteOptions {
  unsigned mode = 0644;
  bool durable = true;  // fsync file and folder (off only for caches that may be lost)
};

// The whole file; kNotFound only when it does not exist (ENOENT), kIo when it exists but cannot
// be opened or read (permissions, out of file descriptors, I/O error).
Result<std::string> read_file(const std::string& path);

Status write_file_atomic(const std::string& path, std::string_view data,
                         const AtomicWriteOptions& options = {});

// fsync of a folder, making renames and removals inside it durable.
Status fsync_dir(const std::string& dir);

// Time spent in fsync by this process, for benchmarks that report its share.
std::atomic<int64_t>& fsync_nanoseconds();

}  // namespace nvdra
