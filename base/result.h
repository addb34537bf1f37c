// Result<T>: a value or an Error, the one error convention across nvdra's module boundaries.
//
// The member names follow std::expected (C++23) so that moving to it later is a `using`; g++ 12
// offers std::expected only with -std=c++2b. Parsers, codecs and I/O return Result and never throw.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

namespace nvdra {

enum class ErrorCode {
  kInvalidArgument,  // bad input from a user, a file or a peer (parsers, validators)
  kNotFound,         // a file, key or object that is not there
  kIo,               // network or disk failure
  kTimeout,          // a deadline passed
  kCancelled,        // stopped on purpose (shutdown, cancel())
  kTls,              // handshake or certificate verification failed
  kApi,              // the API server answered with a non-2xx Status (see http_status/reason)
  kInternal,         // a broken invariant that was handled instead of crashing
};

const char* to_string(ErrorCode code);

// One cause of an Invalid (422) answer or any other Status with details.causes.
struct ErrorCause {
  std::string reason;  // e.g. FieldValueInvalid
  std::string message;
  std::string field;  // e.g. spec.numNodes
  bool operator==(const ErrorCause&) const = default;
};

// An error as a value. API errors carry the Kubernetes Status fields; other errors only
// code+message.
struct Error {
  ErrorCode code = ErrorCode::kInternal;
  std::string message;
  // Filled for ErrorCode::kApi (and for transport failures where an HTTP status is known).
  int http_status = 0;
  std::string reason;  // Status.reason: NotFound, Conflict, Expired, TooManyRequests, ...
  std::string details_name, details_group, details_kind, details_uid;
  std::vector<ErrorCause> causes;
  std::optional<std::chrono::seconds>
      retry_after;  // Retry-After header or details.retryAfterSeconds

  Error() = default;
  Error(ErrorCode c, std::string msg) : code(c), message(std::move(msg)) {}

  // "prefix: message" - adds context while keeping the code and details (the cause chain).
  Error wrap(std::string_view prefix) const;
  std::string to_string() const;
};

template <class E = Error>
struct Unexpected {
  E error;
};
inline Unexpected<Error> unexpected(Error e) {
  return {std::move(e)};
}
inline Unexpected<Error> unexpected(ErrorCode c, std::string msg) {
  return {Error(c, std::move(msg))};
}

template <class T>
class [[nodiscard]] Result {
 public:
  // An error until assigned (Asio's use_future needs a default-constructible result).
  Result() : v_(std::in_place_index<1>, ErrorCode::kInternal, "no result") {}
  Result(T value) : v_(std::in_place_index<0>, std::move(value)) {}  // NOLINT: implicit by design
  Result(Unexpected<Error> e) : v_(std::in_place_index<1>, std::move(e.error)) {}  // NOLINT
  template <class U>
  requires std::is_constructible_v<T, U&&> &&(!std::is_same_v<std::decay_t<U>, Result>)&&(
      !std::is_same_v<std::decay_t<U>, Unexpected<Error>>)Result(U&& u)
      : v_(std::in_place_index<0>, T(std::forward<U>(u))) {}  // NOLINT

  bool has_value() const { return v_.index() == 0; }
  explicit operator bool() const { return has_value(); }
  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  const Error& error() const { return std::get<1>(v_); }
  Error& error() { return std::get<1>(v_); }
  template <class U>
  T value_or(U&& def) const& {
    return has_value() ? value() : T(std::forward<U>(def));
  }

 private:
  std::variant<T, Error> v_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Unexpected<Error> e) : err_(std::move(e.error)) {}  // NOLINT
  bool has_value() const { return !err_.has_value(); }
  explicit operator bool() const { return has_value(); }
  void value() const {}
  const Error& error() const { return *err_; }
  Error& error() { return *err_; }

 private:
  std::optional<Error> err_;
};

using Status = Result<void>;
inline Status ok() {
  return {};
}

}  // namespace nvdra
