#include "sim/persistence.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "base/atomic_file.h"
#include "base/json.h"

namespace nvdra::sim {
namespace {

Error io(const std::string& what) {
  return Error(ErrorCode::kIo, fmt::format("{}: {}", what, std::strerror(errno)));
}

Status write_all(int fd, const std::string& data) {
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::write(fd, data.data() + off, data.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      return unexpected(io("write"));
    }
    off += static_cast<size_t>(n);
  }
  return ok();
}


// Applies one log or snapshot record; false when it is not a valid record.
bool apply(const json::Value& rec, PersistedState* state) {
  auto op = json::get_string(rec, "op");
  auto rv = json::get_int(rec, "rv");
  auto sk = json::get_string(rec, "k");
  auto key = json::get_string(rec, "key");
  if (!op || !rv || !sk || !key) return false;
  if (*op == "put") {
    const json::Value* obj = json::find(rec, "obj");
    if (obj == nullptr || !obj->IsObject()) return false;
    state->objects[std::string(*sk)][std::string(*key)] = json::write(*obj);
  } else if (*op == "del") {
    state->objects[std::string(*sk)].erase(std::string(*key));
  } else {
    return false;
  }
  state->resource_version = std::max(state->resource_version, *rv);
  return true;
}

Status load_lines(const std::string& path, PersistedState* state, bool tolerate_torn_tail) {
  std::ifstream in(path);
  if (!in) return ok();  // nothing yet
  std::string line;
  std::vector<std::string> lines;
  while (std::getline(in, line))
    lines.push_back(std::move(line));
  for (size_t i = 0; i < lines.size(); ++i) {
    if (lines[i].empty()) continue;
    auto doc = json::parse(lines[i]);
    if (doc && doc->IsObject() && json::get_string(*doc, "op") == "rv") {
      state->resource_version =
          std::max(state->resource_version, json::get_int(*doc, "rv").value_or(1));
      continue;
    }
    if (!doc || !apply(*doc, state)) {
      if (tolerate_torn_tail && i + 1 == lines.size()) break;  // a crash cut the last write
      return unexpected(ErrorCode::kInvalidArgument,
                        fmt::format("{}: line {} is corrupt", path, i + 1));
    }
  }
  return ok();
}

std::string put_line(int64_t rv, const std::string& sk, const std::string& key,
                     const std::string& obj) {
  return fmt::format(R"({{"op":"put","rv":{},"k":{},"key":{},"obj":{}}})", rv, json::quote(sk),
                     json::quote(key), obj) +
         "\n";
}

}  // namespace

Result<std::unique_ptr<Wal>> Wal::open(const std::string& dir, PersistedState* state) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return unexpected(ErrorCode::kIo, fmt::format("cannot create {}: {}", dir, ec.message()));
  ::chmod(dir.c_str(), 0700);  // the store holds secrets
  if (auto s = load_lines(dir + "/snapshot.jsonl", state, false); !s) return unexpected(s.error());
  if (auto s = load_lines(dir + "/wal.jsonl", state, true); !s) return unexpected(s.error());
  // Start a fresh log from a snapshot of what was loaded: a torn tail never stays behind.
  int fd = ::open((dir + "/wal.jsonl").c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (fd < 0) return unexpected(io("open " + dir + "/wal.jsonl"));
  std::unique_ptr<Wal> wal(new Wal(dir, fd, 1));
  if (auto s = wal->maybe_snapshot(*state, 0); !s) return unexpected(s.error());
  return wal;
}

Wal::~Wal() {
  if (fd_ >= 0) ::close(fd_);
}

Status Wal::append(const std::string& line) {
  if (auto s = write_all(fd_, line); !s) return s;
  if (::fdatasync(fd_) != 0) return unexpected(io("fdatasync wal"));
  size_ += line.size();
  return ok();
}

Status Wal::put(int64_t rv, const std::string& sk, const std::string& key,
                const std::string& json) {
  return append(put_line(rv, sk, key, json));
}

Status Wal::remove(int64_t rv, const std::string& sk, const std::string& key) {
  return append(fmt::format(R"({{"op":"del","rv":{},"k":{},"key":{}}})", rv, json::quote(sk),
                            json::quote(key)) +
                "\n");
}

Status Wal::maybe_snapshot(const PersistedState& state, size_t limit) {
  if (size_ <= limit) return ok();
  const std::string tmp = dir_ + "/snapshot.jsonl.tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return unexpected(io("open " + tmp));
  std::string out = fmt::format(R"({{"op":"rv","rv":{}}})", state.resource_version) + "\n";
  for (const auto& [sk, objs] : state.objects) {
    for (const auto& [key, obj] : objs)
      out += put_line(0, sk, key, obj);
  }
  Status s = write_all(fd, out);
  if (s && ::fsync(fd) != 0) s = unexpected(io("fsync snapshot"));
  ::close(fd);
  if (!s) return s;
  if (::rename(tmp.c_str(), (dir_ + "/snapshot.jsonl").c_str()) != 0)
    return unexpected(io("rename snapshot"));
  if (auto d = fsync_dir(dir_); !d) return d;
  // The snapshot holds everything: empty the log.
  if (::ftruncate(fd_, 0) != 0) return unexpected(io("truncate wal"));
  if (::fsync(fd_) != 0) return unexpected(io("fsync wal"));
  size_ = 0;
  return ok();
}

}  // namespace nvdra::sim
