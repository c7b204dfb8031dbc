// Encoding and decoding against Hugging Face `tokenizers` (golden JSONL made with the real Qwen3
// tokenizer.json), plus behaviour that needs no real files: errors and a tiny tokenizer.
#include <gtest/gtest.h>
#include <utf8proc.h>

#include <atomic>
#include <cstdlib>
#include <thread>

#include "core/text/tokenizer.h"
#include "core/text/utf8.h"
#include "kernels/common/check.h"
#include "tokenizer_test_util.h"

namespace qwen3moe {
namespace {

using testing::fixture;
using testing::read_jsonl;
using testing::tiny_tokenizer_json;

std::string ids_to_string(const std::vector<int32_t>& ids) {
  std::string s;
  for (int32_t id : ids) s += (s.empty() ? "" : ",") + std::to_string(id);
  return s;
}

// Every line of a golden file: ids exact and decode(ids) exact.
void check_golden(const Tokenizer& tok, const std::string& path) {
  const auto lines = read_jsonl(path);
  ASSERT_FALSE(lines.empty());
  int failures = 0;
  for (size_t i = 0; i < lines.size(); ++i) {
    const std::string text = lines[i]["text"];
    const auto want = lines[i]["ids"].get<std::vector<int32_t>>();
    const auto got = tok.encode(text);
    if (got != want && ++failures <= 20) {
      ADD_FAILURE() << path << " line " << i + 1 << ": text " << nlohmann::json(text).dump()
                    << "\n  want " << ids_to_string(want) << "\n  got  " << ids_to_string(got);
    }
    if (lines[i].contains("decoded")) {
      EXPECT_EQ(tok.decode(want), lines[i]["decoded"].get<std::string>())
          << path << " line " << i + 1;
    }
  }
  EXPECT_EQ(failures, 0) << "of " << lines.size() << " lines";
}

TEST(TokenizerReal, VisibleFixtureIsExact) {
  QWEN3MOE_REAL_TOKENIZER_DIR(dir);
  check_golden(Tokenizer::load(dir), fixture("tokenizer_visible.jsonl"));
}

TEST(TokenizerReal, ExtraCorpusIsExact) {
  QWEN3MOE_REAL_TOKENIZER_DIR(dir);
  check_golden(Tokenizer::load(dir), fixture("tokenizer_extra.jsonl"));
}

TEST(TokenizerReal, ConcurrentEncodesAgree) {
  QWEN3MOE_REAL_TOKENIZER_DIR(dir);
  const Tokenizer tok = Tokenizer::load(dir);
  const auto lines = read_jsonl(fixture("tokenizer_visible.jsonl"));
  // Threads share the word cache (one holds it, the others encode without): same ids.
  std::vector<std::thread> threads;
  std::atomic<int> mismatches{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (size_t i = t; i < lines.size() * 2; i += 2) {
        const auto& l = lines[i % lines.size()];
        if (tok.encode(l["text"].get<std::string>()) != l["ids"].get<std::vector<int32_t>>()) {
          ++mismatches;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(mismatches.load(), 0);
}

TEST(TokenizerReal, VocabAndSpecialTokens) {
  QWEN3MOE_REAL_TOKENIZER_DIR(dir);
  const Tokenizer tok = Tokenizer::load(dir);
  EXPECT_EQ(tok.vocab_size(), 151669);
  EXPECT_EQ(tok.token_id("<|im_end|>"), 151645);
  EXPECT_EQ(tok.token_id("<think>"), 151667);
  EXPECT_EQ(tok.token_id("Ġ"), 220);
  EXPECT_EQ(tok.token_id("no such token"), std::nullopt);
  EXPECT_TRUE(tok.is_special(151645));
  EXPECT_FALSE(tok.is_special(151667));
  const std::vector<int32_t> ids = {151644, 872, 198};
  EXPECT_EQ(tok.decode(ids), "<|im_start|>user\n");
  // Ids without a token (the model's padded rows) decode to nothing, as in Hugging Face.
  const std::vector<int32_t> padded = {9707, 151900, -1};
  EXPECT_EQ(tok.decode(padded), "Hello");
}

TEST(TokenizerReal, DecodeReplacesIncompleteCharacters) {
  QWEN3MOE_REAL_TOKENIZER_DIR(dir);
  const Tokenizer tok = Tokenizer::load(dir);
  // The byte token of 0xF0 (written "ð" in the vocabulary) starts a 4-byte character; alone,
  // or followed by an ASCII token, it is one maximal invalid subpart: one U+FFFD.
  const auto lead = tok.token_id("ð");
  ASSERT_TRUE(lead.has_value());
  const std::vector<int32_t> alone = {*lead};
  EXPECT_EQ(tok.decode(alone), "\xEF\xBF\xBD");
  const std::vector<int32_t> then_text = {*lead, 9707};
  EXPECT_EQ(tok.decode(then_text), "\xEF\xBF\xBDHello");
}

TEST(TokenizerReal, InvalidUtf8NamesTheOffset) {
  QWEN3MOE_REAL_TOKENIZER_DIR(dir);
  const Tokenizer tok = Tokenizer::load(dir);
  try {
    tok.encode(std::string("hello \xC3\x28 world", 14));
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("invalid UTF-8 at byte offset 6"), std::string::npos)
        << e.what();
  }
}

// ---- no real files needed ------------------------------------------------------------------

TEST(TokenizerTiny, EncodesWithMergesAndAddedTokens) {
  const Tokenizer tok = Tokenizer::from_json(tiny_tokenizer_json().dump(), "tiny");
  EXPECT_EQ(tok.vocab_size(), 261);
  EXPECT_EQ(tok.encode("abc ab<|end|>x<x>"), (std::vector<int32_t>{257, 258, 259, 'x', 260}));
  EXPECT_EQ(tok.encode(""), std::vector<int32_t>{});
  const std::vector<int32_t> ids = {257, 258, 259};
  EXPECT_EQ(tok.decode(ids), "abc ab<|end|>");
  // NFC: e + combining acute becomes U+00E9 (bytes C3 A9) before BPE.
  EXPECT_EQ(tok.encode("e\xCC\x81"), (std::vector<int32_t>{0xC3, 0xA9}));
}

// The normalizer only runs over the parts of a text that NFC can change; random strings of
// starters, combining marks (in and out of canonical order), precomposed letters, singletons and
// Hangul jamo must still come out exactly as utf8proc's NFC of the whole string.
TEST(TokenizerTiny, NfcOfPartsEqualsNfcOfWhole) {
  const Tokenizer tok = Tokenizer::from_json(tiny_tokenizer_json().dump(), "tiny");
  const std::vector<std::string> pool = {"e",
                                         "x",
                                         " ",
                                         "\xC3\xA9",
                                         "\xCC\x81",
                                         "\xCC\xA3",
                                         "\xCC\x88",
                                         "\xE2\x84\xAB",
                                         "\xE2\x84\xA6",
                                         "\xE1\x84\x80",
                                         "\xE1\x85\xA1",
                                         "\xE1\x86\xA8",
                                         "\xEA\xB0\x80",
                                         "\xE3\x81\x8B",
                                         "\xE3\x82\x99",
                                         "\xE4\xB8\xAD",
                                         "\xD9\x84",
                                         "\xD9\x93",
                                         "\xE0\xA4\x95",
                                         "\xE0\xA4\xBC",
                                         "\xEF\xAC\x81",
                                         "\xF0\x9F\x99\x82",
                                         "\xC5\xBF"};
  uint32_t state = 12345;
  for (int round = 0; round < 2000; ++round) {
    std::string text;
    const int n = 1 + round % 9;
    for (int i = 0; i < n; ++i) {
      state = state * 1103515245u + 12345u;
      text += pool[(state >> 16) % pool.size()];
    }
    utf8proc_uint8_t* nfc = utf8proc_NFC(reinterpret_cast<const utf8proc_uint8_t*>(text.c_str()));
    const std::string want(reinterpret_cast<const char*>(nfc));
    std::free(nfc);
    // The tiny vocabulary maps each byte to the id of its value and merges only "a","b","c".
    std::vector<int32_t> want_ids;
    for (unsigned char c : want) want_ids.push_back(c);
    ASSERT_EQ(tok.encode(text), want_ids) << "text " << nlohmann::json(text).dump();
  }
}

TEST(TokenizerTiny, MergesInOldStringFormat) {
  auto j = tiny_tokenizer_json();
  j["model"]["merges"] = {"a b", "ab c", "Ġ ab"};
  const Tokenizer tok = Tokenizer::from_json(j.dump(), "tiny");
  EXPECT_EQ(tok.encode("abc ab"), (std::vector<int32_t>{257, 258}));
}

void expect_error(const std::string& json, const std::string& needle) {
  try {
    Tokenizer::from_json(json, "tiny.json");
    ADD_FAILURE() << "no error, wanted one containing: " << needle;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

TEST(TokenizerTiny, MissingFieldsAreClearErrors) {
  auto j = tiny_tokenizer_json();
  j["model"].erase("merges");
  expect_error(j.dump(), "tiny.json: missing field model.merges");
  j = tiny_tokenizer_json();
  j["model"].erase("vocab");
  expect_error(j.dump(), "tiny.json: missing field model.vocab");
  j = tiny_tokenizer_json();
  j.erase("model");
  expect_error(j.dump(), "tiny.json: missing field model");
  j = tiny_tokenizer_json();
  j.erase("pre_tokenizer");
  expect_error(j.dump(), "tiny.json: missing field pre_tokenizer");
}

TEST(TokenizerTiny, UnsupportedSettingsAreNamed) {
  auto j = tiny_tokenizer_json();
  j["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = "\\w+";
  expect_error(j.dump(), "unsupported pre-tokenizer regex");
  j = tiny_tokenizer_json();
  j["normalizer"] = {{"type", "Lowercase"}};
  expect_error(j.dump(), "unsupported normalizer");
  j = tiny_tokenizer_json();
  j["model"]["merges"].push_back(nlohmann::ordered_json::array({"q", "zz"}));
  expect_error(j.dump(), "uses \"zz\", which is not in model.vocab");
}

TEST(TokenizerTiny, MalformedJsonNamesTheOffset) {
  expect_error("{\"model\": {\"vocab\": {\"a\": 1,}}}", "tiny.json: invalid JSON at byte offset");
  expect_error("", "tiny.json: invalid JSON at byte offset 0");
}

TEST(TokenizerTiny, InvalidUtf8IsAnErrorNotACrash) {
  const Tokenizer tok = Tokenizer::from_json(tiny_tokenizer_json().dump(), "tiny");
  const std::vector<std::pair<std::string, size_t>> cases = {
      {std::string("\x80"), 0},                         // lone continuation byte
      {std::string("ab\xE2\x82"), 2},                   // truncated 3-byte character
      {std::string("abc\xED\xA0\x80"), 3},              // UTF-16 surrogate
      {std::string("x\xC0\xAF"), 1},                    // overlong
      {std::string("0123456789\xF5\x80\x80\x80"), 10},  // beyond U+10FFFF
      {std::string("a\0b\xFF", 4), 3}};
  for (const auto& [text, offset] : cases) {
    try {
      tok.encode(text);
      ADD_FAILURE() << "no error for offset " << offset;
    } catch (const Error& e) {
      EXPECT_NE(
          std::string(e.what()).find("invalid UTF-8 at byte offset " + std::to_string(offset)),
          std::string::npos)
          << e.what();
    }
  }
}

TEST(Utf8, LossyDecodingReplacesMaximalSubparts) {
  auto lossy = [](std::string_view s) {
    std::string out;
    utf8::append_lossy(out, s);
    return out;
  };
  const std::string r = "\xEF\xBF\xBD";
  EXPECT_EQ(lossy("a\xF0\x9F\x98"
                  "b"),
            "a" + r + "b");                          // truncated emoji: one U+FFFD
  EXPECT_EQ(lossy("\xF0\x80\x80"), r + r + r);       // F0 80 is not a valid prefix
  EXPECT_EQ(lossy("\xED\xA0\x80"), r + r + r);       // surrogates: each byte
  EXPECT_EQ(lossy("\xE2\x82\xAC"), "\xE2\x82\xAC");  // valid euro sign
  EXPECT_EQ(utf8::stable_prefix_length("ab\xF0\x9F\x98"), 2u);
  EXPECT_EQ(utf8::stable_prefix_length("ab\x80"), 3u);
  EXPECT_EQ(utf8::stable_prefix_length("ab\xE2\x82\xAC"), 5u);
}

}  // namespace
}  // namespace qwen3moe
