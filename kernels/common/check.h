// The one error-check family of the project. Every failure becomes a qwen3moe::Error that
// carries file:line and a message naming the bad value; the CLI prints it as one line and
// exits non-zero, the gRPC boundary turns it into a Status.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

namespace qwen3moe {

class Error : public std::runtime_error {
 public:
  Error(const std::string& message, const char* file, int line)
      : std::runtime_error(message), where_(std::string(file) + ":" + std::to_string(line)) {}
  // file:line of the check that failed, for logs (the message itself is for users).
  const std::string& where() const { return where_; }

 private:
  std::string where_;
};

namespace detail {
template <typename... Args>
[[noreturn]] void fail(const char* file, int line, const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  throw Error(os.str(), file, line);
}
}  // namespace detail

}  // namespace qwen3moe

// QWEN3MOE_CHECK(cond, "message parts", value, ...): throws Error when cond is false.
#define QWEN3MOE_CHECK(cond, ...)                                           \
  do {                                                                      \
    if (!(cond)) ::qwen3moe::detail::fail(__FILE__, __LINE__, __VA_ARGS__); \
  } while (0)

// QWEN3MOE_FAIL("message parts", ...): throws Error unconditionally.
#define QWEN3MOE_FAIL(...) ::qwen3moe::detail::fail(__FILE__, __LINE__, __VA_ARGS__)
