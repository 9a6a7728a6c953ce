// Two tiers of errors (GUIDE rule 6):
//  - BRISK_CHECK: a broken invariant inside brisk; stays on in release builds and aborts with file:line.
//  - Result<T>: a user-facing failure (a file, a flag, a request); the message names the thing at
//    fault and travels up to the CLI, which prints it and exits non-zero.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <string>
#include <utility>
#include <variant>

namespace brisk {

[[noreturn]] void check_failed(const char* file, int line, const char* cond, const std::string& msg);

#define BRISK_CHECK(cond, msg)                                                  \
  do {                                                                          \
    if (!(cond)) ::brisk::check_failed(__FILE__, __LINE__, #cond, (msg));       \
  } while (0)

struct Error {
  std::string message;
};

inline Error make_error(std::string message) { return Error{std::move(message)}; }

template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : state_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Error error) : state_(std::move(error)) {}  // NOLINT

  bool ok() const { return std::holds_alternative<T>(state_); }
  explicit operator bool() const { return ok(); }
  T& value() & {
    BRISK_CHECK(ok(), "Result::value() on an error: " + std::get<Error>(state_).message);
    return std::get<T>(state_);
  }
  T&& value() && {
    BRISK_CHECK(ok(), "Result::value() on an error: " + std::get<Error>(state_).message);
    return std::get<T>(std::move(state_));
  }
  T* operator->() { return &value(); }
  T& operator*() { return value(); }
  const Error& error() const { return std::get<Error>(state_); }

 private:
  std::variant<T, Error> state_;
};

// Result<void>: success or an error.
struct Ok {};
using Status = Result<Ok>;
inline Status ok_status() { return Ok{}; }

// Propagates an error from an expression yielding Result<...>.
#define BRISK_TRY(expr)                                   \
  do {                                                    \
    auto brisk_try_result_ = (expr);                      \
    if (!brisk_try_result_.ok()) return brisk_try_result_.error(); \
  } while (0)

// Binds the value of a Result<...> expression or propagates its error.
#define BRISK_ASSIGN(lhs, expr)                           \
  auto lhs##_result_ = (expr);                            \
  if (!lhs##_result_.ok()) return lhs##_result_.error();  \
  auto lhs = std::move(lhs##_result_).value()

}  // namespace brisk
