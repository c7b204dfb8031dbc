// Helpers for the tokenizer, chat template and streaming decoder tests: where the real Qwen3
// tokenizer files are (QWEN3MOE_TOKENIZER_DIR, set by the test script to the fetch-tokenizer
// cache) and how to read the JSONL fixtures.
#pragma once

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace qwen3moe::testing {

// The folder holding the real tokenizer.json and tokenizer_config.json, or "" with the reason
// in `why` when the tests that need them must be skipped.
inline std::string real_tokenizer_dir(std::string& why) {
  const char* dir = std::getenv("QWEN3MOE_TOKENIZER_DIR");
  if (dir == nullptr || *dir == '\0') {
    why = "QWEN3MOE_TOKENIZER_DIR is not set (scripts/fetch-tokenizer.sh prints the folder)";
    return "";
  }
  for (const char* name : {"tokenizer.json", "tokenizer_config.json"}) {
    if (!std::filesystem::exists(std::filesystem::path(dir) / name)) {
      why = std::string("QWEN3MOE_TOKENIZER_DIR=") + dir + " has no " + name;
      return "";
    }
  }
  return dir;
}

#define QWEN3MOE_REAL_TOKENIZER_DIR(var)                 \
  std::string var;                                       \
  {                                                      \
    std::string why_;                                    \
    var = ::qwen3moe::testing::real_tokenizer_dir(why_); \
    if (var.empty()) GTEST_SKIP() << why_;               \
  }

inline std::vector<nlohmann::ordered_json> read_jsonl(const std::string& path) {
  std::ifstream in(path);
  EXPECT_TRUE(in.good()) << "cannot open " << path;
  std::vector<nlohmann::ordered_json> lines;
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty()) lines.push_back(nlohmann::ordered_json::parse(line));
  }
  return lines;
}

inline std::string fixture(const std::string& name) {
  return std::string(QWEN3MOE_FIXTURES) + "/tokenizer/" + name;
}

}  // namespace qwen3moe::testing
