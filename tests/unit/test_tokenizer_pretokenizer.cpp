// The hand-written pre-tokenizer scanner against Oniguruma, the regex engine of Hugging Face
// `tokenizers`: pretokenizer_onig.jsonl holds random strings over characters picked to hit every
// alternative and class boundary of the Qwen2 regex (odd whitespace, combining marks, long s,
// digits of other scripts, emoji joiners), with the match ends Oniguruma finds (onig_split.py).
#include <gtest/gtest.h>

#include "core/text/pretokenizer.h"
#include "kernels/common/check.h"
#include "tokenizer_test_util.h"

namespace qwen3moe {
namespace {

const char* kQwen2 =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

std::vector<std::string> pieces(const PreTokenizer& p, const std::string& text) {
  std::vector<size_t> ends;
  p.split(text, ends);
  std::vector<std::string> out;
  size_t begin = 0;
  for (size_t end : ends) {
    out.push_back(text.substr(begin, end - begin));
    begin = end;
  }
  return out;
}

TEST(PreTokenizer, MatchesOniguruma) {
  const PreTokenizer p = PreTokenizer::from_pattern(kQwen2);
  const auto lines = testing::read_jsonl(testing::fixture("pretokenizer_onig.jsonl"));
  ASSERT_GT(lines.size(), 1000u);
  int failures = 0;
  for (const auto& l : lines) {
    const std::string text = l["text"];
    std::vector<size_t> ends;
    p.split(text, ends);
    if (ends != l["ends"].get<std::vector<size_t>>() && ++failures <= 10) {
      ADD_FAILURE() << "text " << nlohmann::json(text).dump() << " ends "
                    << nlohmann::json(ends).dump() << " want " << l["ends"].dump();
    }
  }
  EXPECT_EQ(failures, 0);
}

TEST(PreTokenizer, Alternatives) {
  const PreTokenizer p = PreTokenizer::from_pattern(kQwen2);
  using V = std::vector<std::string>;
  EXPECT_EQ(pieces(p, "I'M fine"), (V{"I", "'M", " fine"}));
  EXPECT_EQ(pieces(p, "x'\xC5\xBF"), (V{"x", "'\xC5\xBF"}));  // long s folds to s
  EXPECT_EQ(pieces(p, "a   b"), (V{"a", "  ", " b"}));
  EXPECT_EQ(pieces(p, "a \n\n b"), (V{"a", " \n\n", " b"}));
  EXPECT_EQ(pieces(p, "123"), (V{"1", "2", "3"}));
  EXPECT_EQ(pieces(p, " ...\n\nx"), (V{" ...\n\n", "x"}));
  EXPECT_EQ(pieces(p, "end  "), (V{"end", "  "}));
  const PreTokenizer llama3 = PreTokenizer::from_pattern(
      R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)");
  EXPECT_EQ(pieces(llama3, "1234567"), (V{"123", "456", "7"}));
}

TEST(PreTokenizer, UnknownPatternIsNamed) {
  try {
    PreTokenizer::from_pattern("\\w+");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("unsupported pre-tokenizer regex"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("\\w+"), std::string::npos);
  }
}

}  // namespace
}  // namespace qwen3moe
