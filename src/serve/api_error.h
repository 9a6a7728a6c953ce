// Errors as OpenAI's API reports them: an HTTP status plus {"error": {message, type, param, code}}.
// Request handling returns these instead of brisk::Error because the client needs the status and
// the offending field, not just a message.
#pragma once

#include <string>
#include <utility>
#include <variant>

#include "core/error.h"
#include "formats/json_file.h"

namespace brisk::serve {

struct ApiError {
  int status = 400;
  std::string message;
  std::string type = "invalid_request_error";
  std::string param;  // the request field at fault; empty: null
  std::string code;   // a machine-readable reason; empty: null
};

inline ApiError invalid_field(std::string param, std::string message) {
  return ApiError{400, std::move(message), "invalid_request_error", std::move(param), ""};
}

Json error_json(const ApiError& error);

// A value or the ApiError that prevented it (Result<T> with an HTTP status).
template <class T>
class [[nodiscard]] ApiResult {
 public:
  ApiResult(T value) : state_(std::move(value)) {}        // NOLINT: implicit by design
  ApiResult(ApiError error) : state_(std::move(error)) {}  // NOLINT

  bool ok() const { return std::holds_alternative<T>(state_); }
  explicit operator bool() const { return ok(); }
  T& value() & {
    BRISK_CHECK(ok(), "ApiResult::value() on an error: " + std::get<ApiError>(state_).message);
    return std::get<T>(state_);
  }
  T&& value() && {
    BRISK_CHECK(ok(), "ApiResult::value() on an error: " + std::get<ApiError>(state_).message);
    return std::get<T>(std::move(state_));
  }
  T* operator->() { return &value(); }
  const ApiError& error() const { return std::get<ApiError>(state_); }

 private:
  std::variant<T, ApiError> state_;
};

}  // namespace brisk::serve
