// qwen3moe tokenize / chat-template: batch front ends of the tokenizer and the chat template
// over JSONL, one output line per input line, in order (the parity tests and the tokenizer
// benchmark drive them). Blank lines are skipped; any bad line stops with its line number.
#include <charconv>
#include <cstdio>
#include <memory>
#include <string>

#include "core/text/chat_template.h"
#include "core/text/json_cursor.h"
#include "core/text/json_string.h"
#include "core/text/tokenizer.h"
#include "kernels/common/check.h"
#include "kernels/common/json_depth.h"
#include "launcher/commands.h"

namespace qwen3moe::launcher {
namespace {

struct TokenizeFlags {
  std::string tokenizer_dir, jsonl;
};

std::string read_all(const std::string& path) {
  std::FILE* f = path == "-" ? stdin : std::fopen(path.c_str(), "rb");
  QWEN3MOE_CHECK(f != nullptr, "cannot open ", path);
  std::string data;
  char buf[1 << 16];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) data.append(buf, n);
  const bool failed = std::ferror(f) != 0;
  if (f != stdin) std::fclose(f);
  QWEN3MOE_CHECK(!failed, "cannot read ", path);
  return data;
}

// Calls fn(line_number, line) for every non-blank line.
template <typename Fn>
void for_each_line(const std::string& data, Fn&& fn) {
  size_t start = 0, number = 0;
  while (start < data.size()) {
    size_t end = data.find('\n', start);
    if (end == std::string::npos) end = data.size();
    ++number;
    std::string_view line(data.data() + start, end - start);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.find_first_not_of(" \t") != std::string_view::npos) fn(number, line);
    start = end + 1;
  }
}

void append_ids(std::string& out, const std::vector<int32_t>& ids) {
  out += '[';
  char buf[16];
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i) out += ',';
    const auto res = std::to_chars(buf, buf + sizeof buf, ids[i]);
    out.append(buf, res.ptr);
  }
  out += ']';
}

// Output goes out in large writes: the benchmark measures this command end to end.
class Output {
 public:
  std::string& buffer() { return buf_; }
  void line_done() {
    buf_ += '\n';
    if (buf_.size() > (1 << 20)) flush();
  }
  void flush() {
    if (!buf_.empty()) {
      QWEN3MOE_CHECK(std::fwrite(buf_.data(), 1, buf_.size(), stdout) == buf_.size(),
                     "cannot write to stdout");
    }
    buf_.clear();
    std::fflush(stdout);
  }

 private:
  std::string buf_;
};

void run_tokenize(const TokenizeFlags& f) {
  const Tokenizer tok = Tokenizer::load(f.tokenizer_dir);
  const std::string data = read_all(f.jsonl);
  Output out;
  std::string scratch;
  std::string text;
  std::vector<int32_t> ids;
  for_each_line(data, [&](size_t number, std::string_view line) {
    // Errors get the file and line prefixed here, so that good lines build no strings for it.
    try {
      JsonCursor cur(line, "");
      bool has_text = false;
      cur.begin_object();
      std::string_view key;
      while (cur.next_key(key)) {
        if (key == "text") {
          QWEN3MOE_CHECK(cur.peek() == JsonCursor::Kind::kString, "\"text\" must be a string");
          text = cur.read_string(scratch);
          has_text = true;
        } else {
          cur.skip_value();
        }
      }
      cur.expect_end();
      QWEN3MOE_CHECK(has_text, "missing field \"text\"");
      ids = tok.encode(text);
    } catch (const Error& e) {
      QWEN3MOE_FAIL(f.jsonl, " line ", number, ": ", e.what());
    }
    std::string& o = out.buffer();
    o += "{\"ids\":";
    append_ids(o, ids);
    o += ",\"decoded\":";
    append_json_string(o, tok.decode(ids));
    o += '}';
    out.line_done();
  });
  out.flush();
}

void run_chat_template(const TokenizeFlags& f) {
  const ChatTemplate tpl = ChatTemplate::load(f.tokenizer_dir);
  const Tokenizer tok = Tokenizer::load(f.tokenizer_dir);
  const std::string data = read_all(f.jsonl);
  Output out;
  for_each_line(data, [&](size_t number, std::string_view line) {
    const std::string where = f.jsonl + " line " + std::to_string(number);
    nlohmann::ordered_json j;
    try {
      j = parse_json_nested_at_most<nlohmann::ordered_json>(line, where);
    } catch (const nlohmann::json::exception& e) {
      QWEN3MOE_FAIL(where, ": invalid JSON: ", e.what());
    }
    QWEN3MOE_CHECK(j.is_object() && j.contains("messages"), where, ": missing field \"messages\"");
    auto flag = [&](const char* name, bool dflt) {
      if (!j.contains(name)) return dflt;
      QWEN3MOE_CHECK(j[name].is_boolean(), where, ": \"", name, "\" must be true or false, not ",
                     j[name].dump());
      return j[name].get<bool>();
    };
    // Defaults as apply_chat_template's: no generation prompt; thinking unless disabled.
    const bool add_generation_prompt = flag("add_generation_prompt", false);
    const bool enable_thinking = flag("enable_thinking", true);
    std::string text;
    std::vector<int32_t> ids;
    try {
      text = tpl.render_json(j["messages"], add_generation_prompt, enable_thinking,
                             j.contains("tools") ? j["tools"] : nlohmann::ordered_json());
      ids = tok.encode(text);
    } catch (const Error& e) {
      QWEN3MOE_FAIL(where, ": ", e.what());
    }
    std::string& o = out.buffer();
    o += "{\"text\":";
    append_json_string(o, text);
    o += ",\"ids\":";
    append_ids(o, ids);
    o += '}';
    out.line_done();
  });
  out.flush();
}

void add_flags(CLI::App* cmd, TokenizeFlags& f, const char* what) {
  cmd->add_option("--tokenizer", f.tokenizer_dir,
                  "Folder with tokenizer.json and tokenizer_config.json (e.g. a model folder)")
      ->required();
  cmd->add_option("--jsonl", f.jsonl, what)->required();
}

}  // namespace

void register_tokenize(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "tokenize", "Encode JSONL lines {\"text\"} to {\"ids\",\"decoded\"}, one line each");
  auto f = std::make_shared<TokenizeFlags>();
  add_flags(cmd, *f, "Input JSONL file ('-' for stdin), one {\"text\": ...} per line");
  cmd->callback([f] { run_tokenize(*f); });
}

void register_chat_template(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "chat-template",
      "Render JSONL lines {\"messages\",\"enable_thinking\",\"add_generation_prompt\"} to "
      "{\"text\",\"ids\"}");
  auto f = std::make_shared<TokenizeFlags>();
  add_flags(cmd, *f, "Input JSONL file ('-' for stdin), one chat per line");
  cmd->callback([f] { run_chat_template(*f); });
}

}  // namespace qwen3moe::launcher
