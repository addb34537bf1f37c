// WatchDecoder turns the bytes of a watch response into events, whatever the chunk boundaries.
// Pure: push bytes in, pop events out; no I/O. One instance per stream.
//
// Framing follows JSON itself (a brace scanner that knows strings and escapes), not newlines or
// HTTP chunks: the API server writes one object per event, but nothing promises where a read
// ends.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "base/result.h"
#include "k8sclient/object.h"

namespace nvdra::k8s {

enum class EventType { kAdded, kModified, kDeleted, kBookmark, kError };
const char* to_string(EventType t);

struct WatchEvent {
  EventType type = EventType::kAdded;
  ObjectPtr object;  // the object (for BOOKMARK only metadata.resourceVersion is meaningful)
  Error error;       // for kError: the Status the server sent (410 Expired, ...)
};

class WatchDecoder {
 public:
  static constexpr size_t kDefaultMaxEventBytes = 64 << 20;
  explicit WatchDecoder(DecodeOptions options = {}, size_t max_event_bytes = kDefaultMaxEventBytes)
      : options_(std::move(options)), max_event_bytes_(max_event_bytes) {}

  void push(std::string_view bytes);

  // The next complete event; nullopt when more bytes are needed. A malformed event yields an
  // Error; after that the stream cannot be trusted and the decoder stays failed.
  std::optional<Result<WatchEvent>> next();

  // Bytes of an event that has begun but not ended (a stream that stops here was truncated).
  bool has_partial_event() const;
  bool failed() const { return failed_.has_value(); }

 private:
  std::optional<Result<WatchEvent>> fail(Error e);
  void compact();

  DecodeOptions options_;
  size_t max_event_bytes_;
  std::string buf_;
  size_t consumed_ = 0;               // bytes of buf_ already returned as events
  size_t scan_ = 0;                   // scan position (>= consumed_)
  size_t start_ = std::string::npos;  // start of the event being scanned
  int depth_ = 0;
  bool in_string_ = false;
  bool escape_ = false;
  std::optional<Error> failed_;
};

// Decodes one complete event JSON (used by the decoder and by tests).
Result<WatchEvent> decode_watch_event(std::string_view json, const DecodeOptions& options);

}  // namespace nvdra::k8s
