#include "base/result.h"

#include <fmt/format.h>

namespace nvdra {

const char* to_string(ErrorCode code) {
  switch (code) {
    case ErrorCode::kInvalidArgument:
      return "InvalidArgument";
    case ErrorCode::kNotFound:
      return "NotFound";
    case ErrorCode::kIo:
      return "Io";
    case ErrorCode::kTimeout:
      return "Timeout";
    case ErrorCode::kCancelled:
      return "Cancelled";
    case ErrorCode::kTls:
      return "Tls";
    case ErrorCode::kApi:
      return "Api";
    case ErrorCode::kInternal:
      return "Internal";
  }
  return "Unknown";
}

Error Error::wrap(std::string_view prefix) const {
  Error e = *this;
  e.message = fmt::format("{}: {}", prefix, message);
  return e;
}

std::string Error::to_string() const {
  if (code == ErrorCode::kApi) {
    return fmt::format("{} ({} {})", message, http_status, reason);
  }
  return message;
}

}  // namespace nvdra
