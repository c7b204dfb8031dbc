#include "rpc/request.h"

#include <string>
#include <vector>

#include "kernels/common/check.h"

namespace qwen3moe::rpc {
namespace {

namespace pb = ::qwen3moe::v1;
using ojson = nlohmann::ordered_json;

SamplingInput sampling_input(const pb::SamplingParams& s) {
  SamplingInput in;
  if (s.has_temperature()) in.temperature = s.temperature();
  if (s.has_top_p()) in.top_p = s.top_p();
  if (s.has_top_k()) in.top_k = s.top_k();
  if (s.has_min_p()) in.min_p = s.min_p();
  if (s.has_presence_penalty()) in.presence_penalty = s.presence_penalty();
  if (s.has_frequency_penalty()) in.frequency_penalty = s.frequency_penalty();
  if (s.has_repetition_penalty()) in.repetition_penalty = s.repetition_penalty();
  if (s.has_max_new_tokens()) in.max_new_tokens = s.max_new_tokens();
  if (s.has_seed()) in.seed = s.seed();
  in.stop.assign(s.stop().begin(), s.stop().end());
  in.stop_token_ids.assign(s.stop_token_ids().begin(), s.stop_token_ids().end());
  in.ignore_eos = s.ignore_eos();
  in.logprobs = s.logprobs();
  in.top_logprobs = s.top_logprobs();
  return in;
}

ojson parse_json_field(const std::string& text, const std::string& field) {
  if (text.empty()) return ojson::object();
  ojson j = parse_bounded_json(text, field);
  QWEN3MOE_CHECK(j.is_object(), field, " must hold a JSON object, got ", shown(text));
  return j;
}

// The proto chat in OpenAI's message shape, which the chat template reads.
ojson chat_messages(const pb::Chat& chat) {
  QWEN3MOE_CHECK(chat.messages_size() > 0, "chat.messages is empty");
  ojson list = ojson::array();
  for (int i = 0; i < chat.messages_size(); ++i) {
    const pb::ChatMessage& m = chat.messages(i);
    const std::string at = "chat.messages[" + std::to_string(i) + "]";
    ojson j = {{"role", m.role()}, {"content", m.content()}};
    if (!m.reasoning_content().empty()) j["reasoning_content"] = m.reasoning_content();
    if (m.tool_calls_size() > 0) {
      ojson calls = ojson::array();
      for (int c = 0; c < m.tool_calls_size(); ++c) {
        const pb::ToolCall& t = m.tool_calls(c);
        const std::string field = at + ".tool_calls[" + std::to_string(c) + "]";
        QWEN3MOE_CHECK(!t.name().empty(), field, ".name is empty");
        parse_json_field(t.arguments_json(), field + ".arguments_json");
        calls.push_back(
            {{"id", t.id()},
             {"type", "function"},
             {"function",
              {{"name", t.name()},
               {"arguments", t.arguments_json().empty() ? "{}" : t.arguments_json()}}}});
      }
      j["tool_calls"] = std::move(calls);
    }
    if (!m.tool_call_id().empty()) j["tool_call_id"] = m.tool_call_id();
    list.push_back(std::move(j));
  }
  return list;
}

ojson chat_tools(const pb::Chat& chat) {
  if (chat.tools_size() == 0) return nullptr;
  QWEN3MOE_CHECK(chat.tools_size() <= kMaxTools, "chat.tools: ", chat.tools_size(),
                 " tools, at most ", kMaxTools, " allowed");
  ojson list = ojson::array();
  for (int i = 0; i < chat.tools_size(); ++i) {
    const pb::Tool& t = chat.tools(i);
    const std::string at = "chat.tools[" + std::to_string(i) + "]";
    QWEN3MOE_CHECK(!t.name().empty(), at, ".name is empty");
    ojson function = {{"name", t.name()}};
    if (!t.description().empty()) function["description"] = t.description();
    function["parameters"] = parse_json_field(t.parameters_json(), at + ".parameters_json");
    list.push_back({{"type", "function"}, {"function", std::move(function)}});
  }
  return list;
}

}  // namespace

ParsedRequest to_generation_request(const pb::GenerateRequest& in, const RequestLimits& limits) {
  // Sampling first: it is cheap, and a bad value should not cost a tokenizer pass.
  const SamplingInput sampling = sampling_input(in.sampling());
  FieldNames names{"sampling.", "max_new_tokens", "prompt (encoded) id"};
  make_generation_request(sampling, {0}, limits, names);

  ParsedRequest out;
  std::vector<int32_t> prompt;
  switch (in.input_case()) {
    case pb::GenerateRequest::kPrompt:
      QWEN3MOE_CHECK(!in.prompt().empty(), "prompt is empty");
      QWEN3MOE_CHECK(limits.tokenizer != nullptr,
                     "prompt: this server has no tokenizer (send token_ids)");
      prompt = limits.tokenizer->encode(in.prompt());
      break;
    case pb::GenerateRequest::kTokenIds:
      QWEN3MOE_CHECK(!in.token_ids().ids().empty(), "token_ids.ids is empty");
      prompt.assign(in.token_ids().ids().begin(), in.token_ids().ids().end());
      names.input = "token_ids.ids";
      break;
    case pb::GenerateRequest::kChat: {
      const pb::Chat& chat = in.chat();
      out.chat = true;
      out.thinking = !chat.has_enable_thinking() || chat.enable_thinking();
      const ojson tools = chat_tools(chat);
      out.tools = !tools.is_null();
      ChatPrompt rendered =
          render_chat(chat_messages(chat), tools, out.thinking, limits, "chat.messages");
      prompt = std::move(rendered.ids);
      out.starts_in_reasoning = rendered.starts_in_reasoning;
      names.input = "chat (encoded) id";
      break;
    }
    case pb::GenerateRequest::INPUT_NOT_SET:
      QWEN3MOE_FAIL("input: none of prompt, token_ids or chat is set");
  }
  out.generation = make_generation_request(sampling, std::move(prompt), limits, names);
  out.generation.request_id = in.request_id();
  return out;
}

}  // namespace qwen3moe::rpc
