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

#include "core/text/bpe.h"
#include "core/text/utf8.h"

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

// A tokenizer.json in the Qwen2 layout with the 256 byte tokens, a few merges and added tokens.
inline nlohmann::ordered_json tiny_tokenizer_json() {
  nlohmann::ordered_json vocab = nlohmann::ordered_json::object();
  auto name = [](int byte) {
    std::string s;
    utf8::append(s, byte_to_char()[byte]);
    return s;
  };
  for (int b = 0; b < 256; ++b) vocab[name(b)] = b;
  vocab["ab"] = 256;
  vocab["abc"] = 257;
  vocab["Ġab"] = 258;
  const std::string pattern =
      R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
  nlohmann::ordered_json j = {
      {"version", "1.0"},
      {"added_tokens",
       {{{"id", 259}, {"content", "<|end|>"}, {"special", true}, {"normalized", false}},
        {{"id", 260}, {"content", "<x>"}, {"special", false}, {"normalized", false}}}},
      {"normalizer", {{"type", "NFC"}}},
      {"pre_tokenizer",
       {{"type", "Sequence"},
        {"pretokenizers",
         {{{"type", "Split"},
           {"pattern", {{"Regex", pattern}}},
           {"behavior", "Isolated"},
           {"invert", false}},
          {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}}}}}},
      {"decoder", {{"type", "ByteLevel"}}},
      {"model",
       {{"type", "BPE"},
        {"vocab", vocab},
        {"merges", nlohmann::ordered_json::array({nlohmann::ordered_json::array({"a", "b"}),
                                                  nlohmann::ordered_json::array({"ab", "c"}),
                                                  nlohmann::ordered_json::array({"Ġ", "ab"})})}}}};
  return j;
}

}  // namespace qwen3moe::testing
