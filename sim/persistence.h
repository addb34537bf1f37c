// Durable state for nvdra-sim --data-dir: a write-ahead log of every change (fdatasync'd before
// the write is acknowledged) plus a snapshot that the log is folded into when it grows. A crash
// can cut the last log line short; loading ignores a torn final line.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "base/result.h"

namespace nvdra::sim {

struct PersistedState {
  int64_t resource_version = 1;
  // storage key -> object key -> object JSON
  std::map<std::string, std::map<std::string, std::string>> objects;
};

class Wal {
 public:
  // Opens (creating) `dir`, loads snapshot + log into `state`.
  static Result<std::unique_ptr<Wal>> open(const std::string& dir, PersistedState* state);
  ~Wal();

  // One change; durable when this returns ok.
  Status put(int64_t rv, const std::string& storage_key, const std::string& key,
             const std::string& json);
  Status remove(int64_t rv, const std::string& storage_key, const std::string& key);
  // Folds the log into a new snapshot of `state` (atomically) once the log passed `limit` bytes.
  Status maybe_snapshot(const PersistedState& state, size_t limit = kSnapshotAfterBytes);
  bool wants_snapshot() const { return size_ > kSnapshotAfterBytes; }
  static constexpr size_t kSnapshotAfterBytes = 16u << 20;

 private:
  Wal(std::string dir, int fd, size_t size) : dir_(std::move(dir)), fd_(fd), size_(size) {}
  Status append(const std::string& line);
  std::string dir_;
  int fd_;
  size_t size_;
};

}  // namespace nvdra::sim
