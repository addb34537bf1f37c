#include "k8sclient/watch/watch_decoder.h"

#include <fmt/format.h>

#include "base/json.h"
#include "k8sclient/rest/status.h"

namespace nvdra::k8s {

const char* to_string(EventType t) {
  switch (t) {
    case EventType::kAdded:
      return "ADDED";
    case EventType::kModified:
      return "MODIFIED";
    case EventType::kDeleted:
      return "DELETED";
    case EventType::kBookmark:
      return "BOOKMARK";
    case EventType::kError:
      return "ERROR";
  }
  return "UNKNOWN";
}

Result<WatchEvent> decode_watch_event(std::string_view json, const DecodeOptions& options) {
  auto raw = parse_watch_event(json, options);
  if (!raw) return unexpected(raw.error().wrap("watch event"));
  WatchEvent ev;
  ev.object = std::move(raw->object);
  const std::string& t = raw->type;
  if (t == "ADDED") {
    ev.type = EventType::kAdded;
  } else if (t == "MODIFIED") {
    ev.type = EventType::kModified;
  } else if (t == "DELETED") {
    ev.type = EventType::kDeleted;
  } else if (t == "BOOKMARK") {
    ev.type = EventType::kBookmark;
  } else if (t == "ERROR") {
    ev.type = EventType::kError;
    auto doc = ev.object->doc();
    ev.error = doc ? error_from_status(*doc, 500)
                   : Error(ErrorCode::kInvalidArgument, "watch ERROR event without a Status");
  } else {
    return unexpected(ErrorCode::kInvalidArgument,
                      fmt::format("watch event: unknown type {}", json::quote(t)));
  }
  return ev;
}

void WatchDecoder::push(std::string_view bytes) {
  if (failed_) return;
  compact();
  buf_.append(bytes);
}

void WatchDecoder::compact() {
  // Drop returned events once they are at least half the buffer: amortized O(1) per byte.
  if (consumed_ > 0 && consumed_ * 2 >= buf_.size()) {
    buf_.erase(0, consumed_);
    scan_ -= consumed_;
    if (start_ != std::string::npos) start_ -= consumed_;
    consumed_ = 0;
  }
}

bool WatchDecoder::has_partial_event() const {
  if (start_ != std::string::npos) return true;
  for (size_t i = scan_; i < buf_.size(); ++i) {
    char c = buf_[i];
    if (c != ' ' && c != '\n' && c != '\r' && c != '\t') return true;
  }
  return false;
}

std::optional<Result<WatchEvent>> WatchDecoder::fail(Error e) {
  failed_ = e;
  return Result<WatchEvent>(unexpected(std::move(e)));
}

std::optional<Result<WatchEvent>> WatchDecoder::next() {
  if (failed_) return Result<WatchEvent>(unexpected(*failed_));
  const char* data = buf_.data();
  const size_t size = buf_.size();
  size_t i = scan_;
  while (i < size) {
    char c = data[i];
    if (start_ == std::string::npos) {
      if (c == ' ' || c == '\n' || c == '\r' || c == '\t') {
        ++i;
        consumed_ = i;
        continue;
      }
      if (c != '{') {
        scan_ = i;
        return fail(Error(ErrorCode::kInvalidArgument,
                          fmt::format("watch stream: unexpected byte 0x{:02x} between events",
                                      static_cast<unsigned char>(c))));
      }
      start_ = i;
      depth_ = 1;
      ++i;
      continue;
    }
    if (in_string_) {
      // Fast path inside strings: only '"' and '\\' matter.
      if (escape_) {
        escape_ = false;
      } else if (c == '\\') {
        escape_ = true;
      } else if (c == '"') {
        in_string_ = false;
      }
      ++i;
      continue;
    }
    ++i;
    if (c == '"') {
      in_string_ = true;
    } else if (c == '{' || c == '[') {
      // Fails as soon as the event nests too deep, rather than buffering it first.
      if (++depth_ > json::kMaxDepth) {
        scan_ = i;
        return fail(Error(
            ErrorCode::kInvalidArgument,
            fmt::format("watch stream: event nested deeper than {} levels", json::kMaxDepth)));
      }
    } else if (c == '}' || c == ']') {
      if (--depth_ == 0) {
        std::string_view frame(data + start_, i - start_);
        start_ = std::string::npos;
        scan_ = i;
        consumed_ = i;
        auto ev = decode_watch_event(frame, options_);
        if (!ev) return fail(ev.error());
        return ev;
      }
    }
    if (i - start_ > max_event_bytes_) {
      scan_ = i;
      return fail(Error(ErrorCode::kInvalidArgument,
                        fmt::format("watch stream: event larger than {} bytes", max_event_bytes_)));
    }
  }
  scan_ = i;
  if (start_ != std::string::npos && i - start_ > max_event_bytes_) {
    return fail(Error(ErrorCode::kInvalidArgument,
                      fmt::format("watch stream: event larger than {} bytes", max_event_bytes_)));
  }
  return std::nullopt;
}

}  // namespace nvdra::k8s
