#include "rpc/api_request.h"

#include <atomic>
#include <chrono>
#include <cmath>
#include <random>
#include <sstream>
#include <utility>

#include "kernels/common/random_hash.h"

namespace qwen3moe::rpc {
namespace {

using ojson = nlohmann::ordered_json;

bool known_role(const std::string& role) {
  return role == "system" || role == "user" || role == "assistant" || role == "tool";
}

// Throws FieldError(field, the parts written together) unless cond.
template <typename... Parts>
void check(bool cond, const std::string& field, const Parts&... parts) {
  if (cond) return;
  std::ostringstream message;
  (message << ... << parts);
  throw FieldError(field, message.str());
}

template <typename T>
T pick(const std::optional<T>& request, const std::optional<float>& model, T builtin) {
  if (request) return *request;
  if (model) return T(*model);
  return builtin;
}

}  // namespace

std::string shown(const std::string& s) {
  constexpr size_t kMax = 40;
  return s.size() <= kMax
             ? "'" + s + "'"
             : "'" + s.substr(0, kMax) + "...' (" + std::to_string(s.size()) + " bytes)";
}

GenerationRequest make_generation_request(const SamplingInput& in, std::vector<int32_t> prompt,
                                          const RequestLimits& limits, const FieldNames& names) {
  const std::string& p = names.prefix;
  const GenerationConfig& g = limits.generation;
  GenerationRequest out;
  SamplingParams& s = out.sampling;
  auto finite = [](float v) { return std::isfinite(v); };

  // Each value as sent is checked with the API's name for it; the model's defaults were checked
  // when generation_config.json loaded.
  if (in.temperature)
    check(finite(*in.temperature) && *in.temperature >= 0, p + "temperature", p,
          "temperature must be >= 0 and finite, got ", *in.temperature);
  s.temperature = pick(in.temperature, g.temperature, 1.0f);
  if (in.top_p)
    check(finite(*in.top_p) && *in.top_p > 0 && *in.top_p <= 1, p + "top_p", p,
          "top_p must be in (0, 1], got ", *in.top_p);
  s.top_p = pick(in.top_p, g.top_p, 1.0f);
  // -1 is how vLLM and OpenAI-style clients say "all".
  if (in.top_k)
    check(*in.top_k >= -1 && *in.top_k <= 1'000'000'000, p + "top_k", p,
          "top_k must be >= 0, or -1 or 0 for all, got ", *in.top_k);
  const int64_t top_k = in.top_k ? *in.top_k : (g.top_k ? int64_t(*g.top_k) : int64_t(0));
  s.top_k = top_k < 0 ? 0 : int32_t(top_k);
  if (in.min_p)
    check(finite(*in.min_p) && *in.min_p >= 0 && *in.min_p <= 1, p + "min_p", p,
          "min_p must be in [0, 1], got ", *in.min_p);
  s.min_p = pick(in.min_p, g.min_p, 0.0f);
  if (in.presence_penalty)
    check(finite(*in.presence_penalty) && std::fabs(*in.presence_penalty) <= 2,
          p + "presence_penalty", p, "presence_penalty must be in [-2, 2], got ",
          *in.presence_penalty);
  s.presence_penalty = in.presence_penalty.value_or(0.0f);
  if (in.frequency_penalty)
    check(finite(*in.frequency_penalty) && std::fabs(*in.frequency_penalty) <= 2,
          p + "frequency_penalty", p, "frequency_penalty must be in [-2, 2], got ",
          *in.frequency_penalty);
  s.frequency_penalty = in.frequency_penalty.value_or(0.0f);
  if (in.repetition_penalty)
    check(finite(*in.repetition_penalty) && *in.repetition_penalty > 0, p + "repetition_penalty", p,
          "repetition_penalty must be > 0 and finite, got ", *in.repetition_penalty);
  s.repetition_penalty = pick(in.repetition_penalty, g.repetition_penalty, 1.0f);
  s.seed = in.seed ? *in.seed : fresh_seed();

  const std::string length = p + names.max_new_tokens;
  if (in.max_new_tokens)
    check(*in.max_new_tokens > 0 && *in.max_new_tokens <= limits.max_context, length, length,
          " must be in [1, ", limits.max_context, "] (the context), got ", *in.max_new_tokens);
  out.ignore_eos = in.ignore_eos;

  check(!in.top_logprobs || in.logprobs, p + "top_logprobs", p, "top_logprobs needs logprobs set");
  check(in.top_logprobs >= 0 && in.top_logprobs <= kMaxTopLogprobs, p + "top_logprobs", p,
        "top_logprobs must be in [0, ", kMaxTopLogprobs, "], got ", in.top_logprobs);
  out.logprobs = in.logprobs ? int32_t(in.top_logprobs) : -1;

  const std::string stop = p + "stop";
  check(int64_t(in.stop.size()) <= limits.max_stop_strings, stop, stop, ": ", in.stop.size(),
        " stop strings, at most ", limits.max_stop_strings, " allowed");
  for (size_t i = 0; i < in.stop.size(); ++i) {
    const std::string& text = in.stop[i];
    check(!text.empty(), stop, stop, "[", i, "] is empty");
    check(int64_t(text.size()) <= limits.max_stop_length, stop, stop, "[", i, "] is ", text.size(),
          " bytes, at most ", limits.max_stop_length, " allowed: ", shown(text));
    check(limits.tokenizer != nullptr, stop, stop,
          ": this server has no tokenizer, so no stop strings");
    out.stop.push_back(text);
  }
  const std::string stop_ids = p + "stop_token_ids";
  check(int64_t(in.stop_token_ids.size()) <= limits.max_stop_token_ids, stop_ids, stop_ids, ": ",
        in.stop_token_ids.size(), " ids, at most ", limits.max_stop_token_ids, " allowed");
  for (size_t i = 0; i < in.stop_token_ids.size(); ++i) {
    const int64_t id = in.stop_token_ids[i];
    check(id >= 0 && id < limits.vocab_size, stop_ids, stop_ids, "[", i, "] = ", id,
          " is outside the vocabulary [0, ", limits.vocab_size, ")");
    out.stop_token_ids.push_back(int32_t(id));
  }
  // The model's extra end-of-sequence ids, always (Qwen3 instruct models end turns with
  // <|im_end|>, which generation_config.json adds to config.json's eos); at most
  // kMaxModelEosIds, beyond the request's own.
  int32_t eos = 0;
  for (const int32_t id : g.eos_token_ids)
    if (id < limits.vocab_size && eos < kMaxModelEosIds) {
      out.stop_token_ids.push_back(id);
      ++eos;
    }

  for (size_t i = 0; i < prompt.size(); ++i) {
    const int32_t id = prompt[i];
    check(id >= 0 && id < limits.vocab_size, names.input, names.input, "[", i, "] = ", id,
          " is outside the vocabulary [0, ", limits.vocab_size, ")");
  }
  const int64_t P = int64_t(prompt.size());
  check(P < limits.max_context, names.input, "the prompt is ", P, " tokens, the context holds ",
        limits.max_context, " (max_position_embeddings) with room for one more");
  if (in.max_new_tokens) {
    const int64_t total = P + *in.max_new_tokens;
    check(total <= limits.max_context, length, length, " = ", *in.max_new_tokens,
          " with a prompt of ", P, " tokens makes ", total, " tokens, beyond the context of ",
          limits.max_context, " (max_position_embeddings)");
    out.max_new_tokens = int32_t(*in.max_new_tokens);
  } else {
    // Unset: the default, cut to what the context leaves.
    const int64_t want = g.max_new_tokens ? *g.max_new_tokens : limits.default_max_new_tokens;
    out.max_new_tokens = int32_t(std::min<int64_t>(want, limits.max_context - P));
  }
  out.prompt = std::move(prompt);
  return out;
}

uint64_t fresh_seed() {
  static std::atomic<uint64_t> counter{[] {
    std::random_device rd;
    return (uint64_t(rd()) << 32) ^ uint64_t(rd()) ^
           uint64_t(std::chrono::steady_clock::now().time_since_epoch().count());
  }()};
  // splitmix64 of a counter: distinct per call, well mixed.
  return splitmix64(counter.fetch_add(0x9e3779b97f4a7c15ull));
}

nlohmann::ordered_json parse_bounded_json(const std::string& text, const std::string& field) {
  using ojson = nlohmann::ordered_json;
  std::vector<int> keys;  // per open object: keys so far
  int64_t values = 0;
  const std::string where = field.empty() ? "the body" : field;
  auto bound = [&](int depth, ojson::parse_event_t event, ojson&) {
    switch (event) {
      case ojson::parse_event_t::object_start:
      case ojson::parse_event_t::array_start:
        check(depth < kMaxJsonDepth, field, where, ": JSON nested deeper than ", kMaxJsonDepth,
              " levels");
        if (event == ojson::parse_event_t::object_start) keys.push_back(0);
        break;
      case ojson::parse_event_t::object_end:
        if (!keys.empty()) keys.pop_back();
        break;
      case ojson::parse_event_t::key:
        check(keys.empty() || ++keys.back() <= kMaxJsonKeysPerObject, field, where,
              ": a JSON object with more than ", kMaxJsonKeysPerObject, " keys");
        break;
      case ojson::parse_event_t::value:
        check(++values <= kMaxJsonValues, field, where, ": more than ", kMaxJsonValues,
              " JSON values");
        break;
      default:
        break;
    }
    return true;
  };
  try {
    return ojson::parse(text, bound);
  } catch (const ojson::exception& e) {  // parse_error, and out_of_range for 1e999
    throw FieldError(field, where + " is not valid JSON: " + e.what());
  }
}

ChatPrompt render_chat(const ojson& messages, const ojson& tools, bool enable_thinking,
                       const RequestLimits& limits, const std::string& field) {
  check(messages.is_array() && !messages.empty(), field, field, " is empty");
  check(messages.size() <= size_t(kMaxChatMessages), field, field, ": ", messages.size(),
        " messages, at most ", kMaxChatMessages, " allowed");
  for (size_t i = 0; i < messages.size(); ++i) {
    const ojson& m = messages[i];
    const std::string at = field + "[" + std::to_string(i) + "]";
    check(m.is_object(), at, at, " must be an object");
    const std::string role = m.contains("role") && m["role"].is_string() ? m["role"] : "";
    check(known_role(role), at + ".role", at, ".role: unknown role ", shown(role),
          " (expected system, user, assistant or tool)");
  }
  if (!tools.is_null())
    check(tools.is_array() && tools.size() <= size_t(kMaxTools), "tools", "tools: at most ",
          kMaxTools, " tools allowed, got ", tools.size());
  check(limits.chat != nullptr && limits.tokenizer != nullptr, field, field,
        ": this server has no chat template (send a prompt or token ids)");
  ChatPrompt out;
  std::string text;
  try {
    text = limits.chat->render_json(messages, /*add_generation_prompt=*/true, enable_thinking,
                                    tools.is_null() || tools.empty() ? ojson(nullptr) : tools);
    out.ids = limits.tokenizer->encode(text);
  } catch (const std::exception& e) {
    // The template's own checks (e.g. the order of roles) and text that is not UTF-8.
    throw FieldError(field, field + ": " + e.what());
  }
  // A template that opens the think block in the generation prompt (Qwen3 2507 thinking models)
  // leaves the model inside it; trailing newlines after the tag do not change that.
  const size_t end = text.find_last_not_of('\n');
  out.starts_in_reasoning =
      end != std::string::npos && end + 1 >= 7 && text.compare(end + 1 - 7, 7, "<think>") == 0;
  return out;
}

}  // namespace qwen3moe::rpc
