// Streaming detokenisation: for every fixture line, pushing the ids one by one gives only whole
// characters per chunk and the chunks concatenate to decode(ids); also for id sequences that
// cut characters or carry invalid bytes.
#include <gtest/gtest.h>

#include <random>

#include "core/text/stream_decoder.h"
#include "core/text/utf8.h"
#include "tokenizer_test_util.h"

namespace qwen3moe {
namespace {

using testing::fixture;
using testing::read_jsonl;

// Streams ids; checks every chunk is valid UTF-8 and the whole equals decode(ids).
void check_stream(const Tokenizer& tok, const std::vector<int32_t>& ids, const std::string& what) {
  StreamDecoder stream(tok);
  std::string all;
  for (int32_t id : ids) {
    const std::string chunk = stream.push(id);
    EXPECT_EQ(utf8::first_invalid(chunk), std::string::npos) << what;
    all += chunk;
  }
  all += stream.finish();
  EXPECT_EQ(all, tok.decode(ids)) << what;
}

TEST(StreamDecoderReal, EveryFixtureLine) {
  QWEN3MOE_REAL_TOKENIZER_DIR(dir);
  const Tokenizer tok = Tokenizer::load(dir);
  size_t lines = 0;
  for (const char* name : {"tokenizer_visible.jsonl", "tokenizer_extra.jsonl"}) {
    for (const auto& l : read_jsonl(fixture(name))) {
      const auto ids = l["ids"].get<std::vector<int32_t>>();
      check_stream(tok, ids, l["text"].get<std::string>());
      ++lines;
    }
  }
  EXPECT_GT(lines, 800u);
}

TEST(StreamDecoderReal, MultiTokenCharacterComesOutOnceComplete) {
  QWEN3MOE_REAL_TOKENIZER_DIR(dir);
  const Tokenizer tok = Tokenizer::load(dir);
  // Byte tokens of U+1F600 (F0 9F 98 80) pushed one at a time: nothing until the last byte.
  std::vector<int32_t> ids;
  const std::string emoji = "\xF0\x9F\x98\x80";
  for (unsigned char b : emoji) {
    // Find the one-byte token whose bytes are b.
    int32_t found = -1;
    for (int32_t id = 0; id < tok.vocab_size() && found < 0; ++id) {
      if (tok.token_bytes(id) == std::string(1, static_cast<char>(b))) found = id;
    }
    ASSERT_GE(found, 0);
    ids.push_back(found);
  }
  StreamDecoder stream(tok);
  EXPECT_EQ(stream.push(ids[0]), "");
  EXPECT_EQ(stream.push(ids[1]), "");
  EXPECT_EQ(stream.push(ids[2]), "");
  EXPECT_EQ(stream.push(ids[3]), emoji);
  EXPECT_EQ(stream.finish(), "");
  // Cut off before the end: the held bytes come out as one U+FFFD, as decode gives.
  StreamDecoder cut(tok);
  EXPECT_EQ(cut.push(ids[0]), "");
  EXPECT_EQ(cut.push(ids[1]), "");
  EXPECT_EQ(cut.finish(), "\xEF\xBF\xBD");
}

TEST(StreamDecoderReal, RandomIdSequences) {
  QWEN3MOE_REAL_TOKENIZER_DIR(dir);
  const Tokenizer tok = Tokenizer::load(dir);
  std::mt19937 rng(7);
  // Byte tokens (ids < 256 cover every byte, many of them partial characters) mixed with
  // ordinary and special tokens: the worst case for holding back and replacing bytes.
  std::uniform_int_distribution<int32_t> small(0, 255), any(0, tok.vocab_size() - 1);
  for (int round = 0; round < 300; ++round) {
    std::vector<int32_t> ids;
    const int n = 1 + round % 23;
    for (int i = 0; i < n; ++i) ids.push_back(rng() % 3 == 0 ? any(rng) : small(rng));
    check_stream(tok, ids, "round " + std::to_string(round));
  }
}

}  // namespace
}  // namespace qwen3moe
