// Small helpers shared by the unit tests: temp paths, file writing, error-message matching and
// float comparison with atol + rtol that reports the worst element.
#pragma once

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "kernels/common/check.h"

namespace qwen3moe::testing {

// A fresh, empty directory under GoogleTest's temp dir, unique per test (and per process, so
// ctest -j running several test binaries never shares one).
inline std::string fresh_dir(const std::string& tag) {
  const ::testing::TestInfo* info = ::testing::UnitTest::GetInstance()->current_test_info();
  std::string name = info ? std::string(info->test_suite_name()) + "." + info->name() : "none";
  for (char& ch : name)
    if (ch == '/') ch = '_';
  const std::filesystem::path p =
      std::filesystem::path(::testing::TempDir()) /
      ("qwen3moe_" + std::to_string(::getpid()) + "_" + name + "_" + tag);
  std::filesystem::remove_all(p);
  std::filesystem::create_directories(p);
  return p.string();
}

inline void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), std::streamsize(bytes.size()));
  ASSERT_TRUE(out.good()) << "cannot write " << path;
}

inline std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// Runs fn, which must throw qwen3moe::Error; returns its message ("" and a failure otherwise).
inline std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "threw a non-qwen3moe exception: " << e.what();
    return "";
  }
  ADD_FAILURE() << "did not throw";
  return "";
}

// Every needle must appear in the message.
#define EXPECT_ERROR_NAMES(message, ...)                                     \
  do {                                                                       \
    const std::string msg_ = (message);                                      \
    for (const std::string& needle_ : std::vector<std::string>{__VA_ARGS__}) \
      EXPECT_NE(msg_.find(needle_), std::string::npos)                       \
          << "error message does not name '" << needle_ << "': " << msg_;    \
  } while (0)

// |got - want| <= atol + rtol * |want| elementwise; reports the worst element by name.
template <typename G, typename W>
::testing::AssertionResult all_close(const std::vector<G>& got, const std::vector<W>& want,
                                     double atol, double rtol) {
  if (got.size() != want.size())
    return ::testing::AssertionFailure() << "size " << got.size() << " != expected " << want.size();
  double worst = -1;
  size_t at = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const double g = double(got[i]), w = double(want[i]);
    const double excess = std::fabs(g - w) - (atol + rtol * std::fabs(w));
    if (!(excess <= 0) && (std::isnan(excess) || excess > worst || worst < 0)) {
      worst = std::isnan(excess) ? INFINITY : excess;
      at = i;
    }
  }
  if (worst < 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << "element " << at << ": got " << double(got[at]) << ", expected " << double(want[at])
         << " (atol " << atol << ", rtol " << rtol << ")";
}

// Exact equality of two vectors, naming the first differing element.
template <typename T>
::testing::AssertionResult all_equal(const std::vector<T>& got, const std::vector<T>& want) {
  if (got.size() != want.size())
    return ::testing::AssertionFailure() << "size " << got.size() << " != expected " << want.size();
  for (size_t i = 0; i < got.size(); ++i)
    if (!(got[i] == want[i]))
      return ::testing::AssertionFailure()
             << "element " << i << ": got " << got[i] << ", expected " << want[i];
  return ::testing::AssertionSuccess();
}

// What `qwen3moe ARGS` did: exit code (128 + signal when killed), stdout and stderr.
struct CliResult {
  int code = -1;
  std::string out, err;
};

// Runs the built qwen3moe (QWEN3MOE_BINARY) with stdout and stderr captured to files in a
// fresh directory named after `tag` and a counter.
inline CliResult run_cli(const std::string& args, const std::string& tag = "run") {
  static int counter = 0;
  const std::string dir = fresh_dir(tag + std::to_string(counter++));
  const std::string cmd = std::string("'") + QWEN3MOE_BINARY + "' " + args + " >'" + dir +
                          "/out' 2>'" + dir + "/err' </dev/null";
  const int status = std::system(cmd.c_str());
  CliResult r;
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.out = read_file(dir + "/out");
  r.err = read_file(dir + "/err");
  return r;
}

}  // namespace qwen3moe::testing
