// The qwen3moe tokenize and chat-template subcommands, run as the executable (QWEN3MOE_BINARY):
// on a tiny handmade tokenizer (always) and on the visible fixtures with the real files.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "tokenizer_test_util.h"

namespace qwen3moe {
namespace {

namespace fs = std::filesystem;
using testing::fixture;
using testing::read_jsonl;

struct CliResult {
  int status;
  std::string out;
};

CliResult run(const std::string& args) {
  const std::string cmd = std::string(QWEN3MOE_BINARY) + " " + args + " 2>&1";
  std::FILE* p = popen(cmd.c_str(), "r");
  EXPECT_NE(p, nullptr);
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  const int status = pclose(p);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

class TinyDir : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("qwen3moe_tok_cli_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
    std::ofstream(dir_ / "tokenizer.json") << testing::tiny_tokenizer_json().dump();
    const nlohmann::json config = {
        {"chat_template",
         "{% for m in messages %}<{{ m.role }}>{{ m.content }}<|end|>{% endfor %}"
         "{% if add_generation_prompt %}<assistant>{% endif %}"},
        {"eos_token", "<|end|>"}};
    std::ofstream(dir_ / "tokenizer_config.json") << config.dump();
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string write(const std::string& name, const std::string& text) {
    std::ofstream(dir_ / name) << text;
    return (dir_ / name).string();
  }
  fs::path dir_;
};

TEST_F(TinyDir, TokenizeOneLinePerInputLine) {
  const std::string in = write("in.jsonl",
                               "{\"text\": \"abc ab\"}\n"
                               "\n"
                               "{\"text\": \"\"}\n"
                               "{\"text\": \"x<|end|>\\n\\\"q\\\"\"}\n");
  const CliResult r = run("tokenize --tokenizer " + dir_.string() + " --jsonl " + in);
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_EQ(r.out,
            "{\"ids\":[257,258],\"decoded\":\"abc ab\"}\n"
            "{\"ids\":[],\"decoded\":\"\"}\n"
            "{\"ids\":[120,259,10,34,113,34],\"decoded\":\"x<|end|>\\n\\\"q\\\"\"}\n");
}

TEST_F(TinyDir, ChatTemplateRendersAndEncodes) {
  const std::string in = write(
      "chat.jsonl",
      "{\"messages\": [{\"role\": \"user\", \"content\": \"ab\"}], \"enable_thinking\": true, "
      "\"add_generation_prompt\": false}\n");
  const CliResult r = run("chat-template --tokenizer " + dir_.string() + " --jsonl " + in);
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_EQ(r.out, "{\"text\":\"<user>ab<|end|>\",\"ids\":[60,117,115,101,114,62,256,259]}\n");
}

TEST_F(TinyDir, BadInputNamesTheLine) {
  const std::string in = write("bad.jsonl", "{\"text\": \"ok\"}\n{\"txt\": \"no\"}\n");
  CliResult r = run("tokenize --tokenizer " + dir_.string() + " --jsonl " + in);
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.out.find("bad.jsonl line 2: missing field \"text\""), std::string::npos) << r.out;
  const std::string utf = write("utf.jsonl", "{\"text\": \"ab\xC3\"}\n");
  r = run("tokenize --tokenizer " + dir_.string() + " --jsonl " + utf);
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.out.find("utf.jsonl line 1: tokenize: invalid UTF-8 at byte offset 2"),
            std::string::npos)
      << r.out;
  r = run("tokenize --tokenizer " + (dir_ / "nowhere").string() + " --jsonl " + in);
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.out.find("cannot open"), std::string::npos) << r.out;
}

TEST(TokenizeCli, HelpWorks) {
  for (const char* sub : {"tokenize", "chat-template"}) {
    const CliResult r = run(std::string(sub) + " --help");
    EXPECT_EQ(r.status, 0) << r.out;
    EXPECT_NE(r.out.find("--tokenizer"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("--jsonl"), std::string::npos) << r.out;
  }
}

TEST(TokenizeCliReal, VisibleFixturesEndToEnd) {
  QWEN3MOE_REAL_TOKENIZER_DIR(dir);
  const fs::path tmp =
      fs::temp_directory_path() / ("qwen3moe_tok_cli_real_" + std::to_string(::getpid()));
  fs::create_directories(tmp);
  const auto lines = read_jsonl(fixture("tokenizer_visible.jsonl"));
  {
    std::ofstream in(tmp / "in.jsonl");
    for (const auto& l : lines) in << nlohmann::json{{"text", l["text"]}}.dump() << "\n";
  }
  const CliResult r =
      run("tokenize --tokenizer " + dir + " --jsonl " + (tmp / "in.jsonl").string());
  ASSERT_EQ(r.status, 0) << r.out.substr(0, 500);
  std::istringstream out(r.out);
  std::string line;
  size_t i = 0;
  for (; std::getline(out, line); ++i) {
    ASSERT_LT(i, lines.size());
    const auto got = nlohmann::json::parse(line);
    EXPECT_EQ(got["ids"], lines[i]["ids"]) << "line " << i + 1;
    EXPECT_EQ(got["decoded"], lines[i]["decoded"]) << "line " << i + 1;
  }
  EXPECT_EQ(i, lines.size());

  const auto chats = read_jsonl(fixture("chat_visible.jsonl"));
  {
    std::ofstream in(tmp / "chat.jsonl");
    for (const auto& c : chats) {
      in << nlohmann::ordered_json{{"messages", c["messages"]},
                                   {"enable_thinking", c["enable_thinking"]},
                                   {"add_generation_prompt", c["add_generation_prompt"]}}
                .dump()
         << "\n";
    }
  }
  const CliResult rc =
      run("chat-template --tokenizer " + dir + " --jsonl " + (tmp / "chat.jsonl").string());
  ASSERT_EQ(rc.status, 0) << rc.out.substr(0, 500);
  std::istringstream chat_out(rc.out);
  for (i = 0; std::getline(chat_out, line); ++i) {
    ASSERT_LT(i, chats.size());
    const auto got = nlohmann::json::parse(line);
    EXPECT_EQ(got["text"], chats[i]["text"]) << "line " << i + 1;
    EXPECT_EQ(got["ids"], chats[i]["ids"]) << "line " << i + 1;
  }
  EXPECT_EQ(i, chats.size());
  fs::remove_all(tmp);
}

}  // namespace
}  // namespace qwen3moe
