#include "rpc/openai/openai_request.h"

#include <cmath>
#include <limits>

#include "kernels/common/check.h"

namespace qwen3moe::rpc::openai {
namespace {

using ojson = nlohmann::ordered_json;

[[noreturn]] void bad(const std::string& param, const std::string& message) {
  throw ApiError(400, message, param);
}

std::string type_name(const ojson& v) {
  return v.is_string()    ? "a string"
         : v.is_boolean() ? "a boolean"
         : v.is_number()  ? "a number"
         : v.is_array()   ? "an array"
         : v.is_object()  ? "an object"
                          : "null";
}

// Typed readers of optional fields; null counts as unset, as the OpenAI API treats it.
struct Body {
  const ojson& j;

  const ojson* get(const char* key) const {
    const auto it = j.find(key);
    return it == j.end() || it->is_null() ? nullptr : &*it;
  }
  std::optional<double> number(const char* key) const {
    const ojson* v = get(key);
    if (!v) return std::nullopt;
    if (!v->is_number())
      bad(key, std::string("'") + key + "' must be a number, got " + type_name(*v));
    return v->get<double>();
  }
  std::optional<float> real(const char* key) const {
    const std::optional<double> v = number(key);
    if (!v) return std::nullopt;
    if (!std::isfinite(*v) || std::fabs(*v) > 1e30)
      bad(key, std::string("'") + key + "' must be a finite number, got " + std::to_string(*v));
    return float(*v);
  }
  std::optional<int64_t> integer(const char* key) const {
    const ojson* v = get(key);
    if (!v) return std::nullopt;
    if (v->is_number_float() && std::floor(v->get<double>()) == v->get<double>() &&
        std::fabs(v->get<double>()) < 9e15)
      return int64_t(v->get<double>());  // 16.0 is 16, as Python clients may send it
    if (!v->is_number_integer())
      bad(key, std::string("'") + key + "' must be an integer, got " + shown(v->dump()));
    if (v->is_number_unsigned() && v->get<uint64_t>() > uint64_t(INT64_MAX))
      bad(key, std::string("'") + key + "' is out of range: " + shown(v->dump()));
    return v->get<int64_t>();
  }
  std::optional<bool> boolean(const char* key) const {
    const ojson* v = get(key);
    if (!v) return std::nullopt;
    if (!v->is_boolean())
      bad(key, std::string("'") + key + "' must be true or false, got " + type_name(*v));
    return v->get<bool>();
  }
};

// The model field: absent is the served model (as vLLM takes it); another name is a 404.
void check_model(const Body& b, const std::string& served) {
  const ojson* m = b.get("model");
  if (!m) return;
  if (!m->is_string()) bad("model", "'model' must be a string, got " + type_name(*m));
  if (m->get<std::string>() != served)
    throw ApiError(404,
                   "The model '" + m->get<std::string>() +
                       "' does not exist; this server "
                       "serves '" +
                       served + "'",
                   "model", "invalid_request_error", "model_not_found");
}

SamplingInput sampling(const Body& b, Endpoint endpoint, std::string& length_field) {
  SamplingInput in;
  in.temperature = b.real("temperature");
  in.top_p = b.real("top_p");
  in.top_k = b.integer("top_k");
  in.min_p = b.real("min_p");
  in.presence_penalty = b.real("presence_penalty");
  in.frequency_penalty = b.real("frequency_penalty");
  in.repetition_penalty = b.real("repetition_penalty");
  length_field = "max_tokens";
  in.max_new_tokens = b.integer("max_tokens");
  if (endpoint == Endpoint::kChatCompletions) {
    if (const auto m = b.integer("max_completion_tokens")) {
      in.max_new_tokens = m;
      length_field = "max_completion_tokens";
    }
  }
  if (const auto seed = b.integer("seed")) in.seed = uint64_t(*seed);
  if (const ojson* stop = b.get("stop")) {
    if (stop->is_string()) {
      in.stop.push_back(stop->get<std::string>());
    } else if (stop->is_array()) {
      if (stop->size() > 64)
        bad("stop", "'stop' holds " + std::to_string(stop->size()) + " strings");
      for (const ojson& s : *stop) {
        if (!s.is_string()) bad("stop", "'stop' must be a string or a list of strings");
        in.stop.push_back(s.get<std::string>());
      }
    } else {
      bad("stop", "'stop' must be a string or a list of strings, got " + type_name(*stop));
    }
  }
  if (const ojson* ids = b.get("stop_token_ids")) {
    if (!ids->is_array() || ids->size() > 1024)
      bad("stop_token_ids", "'stop_token_ids' must be a list of token ids");
    for (const ojson& id : *ids) {
      if (!id.is_number_integer()) bad("stop_token_ids", "'stop_token_ids' must hold integers");
      in.stop_token_ids.push_back(
          id.is_number_unsigned() && id.get<uint64_t>() > uint64_t(INT64_MAX) ? INT64_MAX
                                                                              : id.get<int64_t>());
    }
  }
  in.ignore_eos = b.boolean("ignore_eos").value_or(false);
  if (endpoint == Endpoint::kChatCompletions) {
    in.logprobs = b.boolean("logprobs").value_or(false);
    in.top_logprobs = b.integer("top_logprobs").value_or(0);
  } else if (const auto n = b.integer("logprobs")) {
    // The legacy completions API: logprobs is the number of top tokens (0..5 at OpenAI).
    if (*n < 0 || *n > kMaxTopLogprobs)
      bad("logprobs", "'logprobs' must be in [0, " + std::to_string(kMaxTopLogprobs) + "], got " +
                          std::to_string(*n));
    in.logprobs = true;
    in.top_logprobs = *n;
  }
  return in;
}

// What this server does not do, refused by name.
void refuse_unsupported(const Body& b, Endpoint endpoint) {
  if (const auto n = b.integer("n"); n && *n != 1)
    bad("n", "'n' must be 1 (one choice per request), got " + std::to_string(*n));
  if (const auto best = b.integer("best_of"); best && *best != 1)
    bad("best_of", "'best_of' must be 1, got " + std::to_string(*best));
  if (b.boolean("echo").value_or(false)) bad("echo", "'echo' is not supported");
  if (const ojson* bias = b.get("logit_bias"); bias && !(bias->is_object() && bias->empty()))
    bad("logit_bias", "'logit_bias' is not supported");
  if (b.get("suffix")) bad("suffix", "'suffix' is not supported");
  if (endpoint == Endpoint::kChatCompletions) {
    if (const ojson* f = b.get("response_format")) {
      const bool text = f->is_object() && f->contains("type") && (*f)["type"] == "text";
      if (!text) bad("response_format", "only response_format {\"type\": \"text\"} is supported");
    }
  }
}

std::vector<int32_t> completion_prompt(const Body& b, const RequestLimits& limits) {
  const ojson* p = b.get("prompt");
  if (!p) bad("prompt", "'prompt' is required");
  auto text = [&](const std::string& s) {
    if (s.empty()) bad("prompt", "'prompt' is empty");
    if (!limits.tokenizer)
      bad("prompt", "this server has no tokenizer: send the prompt as token ids");
    try {
      return limits.tokenizer->encode(s);
    } catch (const std::exception& e) {
      bad("prompt", std::string("'prompt': ") + e.what());
    }
  };
  auto ids = [&](const ojson& list) {
    if (list.empty()) bad("prompt", "'prompt' is empty");
    std::vector<int32_t> out;
    for (const ojson& id : list) {
      if (!id.is_number_integer() || id.get<int64_t>() < 0 ||
          id.get<int64_t>() > std::numeric_limits<int32_t>::max())
        bad("prompt",
            "'prompt' token ids must be integers in [0, vocabulary), got " + shown(id.dump()));
      out.push_back(int32_t(id.get<int64_t>()));
    }
    return out;
  };
  if (p->is_string()) return text(p->get<std::string>());
  if (p->is_array() && !p->empty()) {
    const ojson& first = (*p)[0];
    if (first.is_number_integer()) return ids(*p);
    if (p->size() != 1)
      bad("prompt",
          "'prompt' holds " + std::to_string(p->size()) + " prompts; send one per request");
    if (first.is_string()) return text(first.get<std::string>());
    if (first.is_array()) return ids(first);
  }
  bad("prompt", "'prompt' must be a string, a list of token ids, or a list of one of them");
}

// OpenAI message content: a string, null, or a list of parts of which only text ones are
// supported here (a text model).
std::string content_text(const ojson& m, const std::string& at) {
  const auto it = m.find("content");
  if (it == m.end() || it->is_null()) return "";
  if (it->is_string()) return it->get<std::string>();
  if (!it->is_array())
    bad(at + ".content", "'" + at + ".content' must be a string or a list of parts");
  std::string out;
  for (const ojson& part : *it) {
    const bool is_text = part.is_object() && part.value("type", "") == "text" &&
                         part.contains("text") && part["text"].is_string();
    if (!is_text)
      bad(at + ".content", "'" + at + ".content': only text parts are supported by this model");
    out += part["text"].get<std::string>();
  }
  return out;
}

ojson chat_messages(const Body& b) {
  const ojson* list = b.get("messages");
  if (!list || !list->is_array() || list->empty())
    bad("messages", "'messages' must be a non-empty list");
  if (list->size() > size_t(kMaxChatMessages))
    bad("messages", "'messages' holds " + std::to_string(list->size()) + " messages, at most " +
                        std::to_string(kMaxChatMessages));
  ojson out = ojson::array();
  for (size_t i = 0; i < list->size(); ++i) {
    const ojson& m = (*list)[i];
    const std::string at = "messages[" + std::to_string(i) + "]";
    if (!m.is_object()) bad(at, "'" + at + "' must be an object");
    if (!m.contains("role") || !m["role"].is_string())
      bad(at + ".role", "'" + at + ".role' must be a string");
    const std::string role = m["role"];
    // "developer" is OpenAI's newer name for the system role.
    ojson msg = {{"role", role == "developer" ? "system" : role}, {"content", content_text(m, at)}};
    if (m.contains("reasoning_content") && m["reasoning_content"].is_string())
      msg["reasoning_content"] = m["reasoning_content"];
    if (const auto calls = m.find("tool_calls"); calls != m.end() && !calls->is_null()) {
      if (!calls->is_array()) bad(at + ".tool_calls", "'" + at + ".tool_calls' must be a list");
      ojson copied = ojson::array();
      for (size_t c = 0; c < calls->size(); ++c) {
        const ojson& call = (*calls)[c];
        const std::string cat = at + ".tool_calls[" + std::to_string(c) + "]";
        const bool ok = call.is_object() && call.contains("function") &&
                        call["function"].is_object() && call["function"].contains("name") &&
                        call["function"]["name"].is_string();
        if (!ok)
          bad(cat,
              "'" + cat +
                  "' must be {\"type\": \"function\", \"function\": {\"name\", \"arguments\"}}");
        ojson function = {{"name", call["function"]["name"]}};
        const auto args = call["function"].find("arguments");
        function["arguments"] =
            args == call["function"].end() || args->is_null() ? ojson("{}") : *args;
        copied.push_back(
            {{"id", call.value("id", "")}, {"type", "function"}, {"function", function}});
      }
      msg["tool_calls"] = std::move(copied);
    }
    if (m.contains("tool_call_id") && m["tool_call_id"].is_string())
      msg["tool_call_id"] = m["tool_call_id"];
    if (m.contains("name") && m["name"].is_string()) msg["name"] = m["name"];
    out.push_back(std::move(msg));
  }
  return out;
}

// tools, with tool_choice: "auto" (the default) renders and parses them, "none" does neither
// (as vLLM does by default); forcing a call needs constrained decoding, which this server lacks.
ojson chat_tools(const Body& b) {
  const ojson* tools = b.get("tools");
  std::string choice = "auto";
  if (const ojson* c = b.get("tool_choice")) {
    if (!c->is_string() || (*c != "auto" && *c != "none"))
      bad("tool_choice",
          "'tool_choice' must be \"auto\" or \"none\" (forcing a call is not "
          "supported), got " +
              shown(c->dump()));
    choice = c->get<std::string>();
  }
  if (!tools) return nullptr;
  if (!tools->is_array()) bad("tools", "'tools' must be a list");
  if (tools->size() > size_t(kMaxTools))
    bad("tools", "'tools' holds " + std::to_string(tools->size()) + " tools, at most " +
                     std::to_string(kMaxTools));
  for (size_t i = 0; i < tools->size(); ++i) {
    const ojson& t = (*tools)[i];
    const std::string at = "tools[" + std::to_string(i) + "]";
    const bool ok = t.is_object() && t.value("type", "") == "function" && t.contains("function") &&
                    t["function"].is_object() && t["function"].contains("name") &&
                    t["function"]["name"].is_string();
    if (!ok)
      bad(at, "'" + at + "' must be {\"type\": \"function\", \"function\": {\"name\", ...}}");
  }
  if (choice == "none" || tools->empty()) return nullptr;
  return *tools;
}

bool enable_thinking(const Body& b) {
  const ojson* kwargs = b.get("chat_template_kwargs");
  if (!kwargs) return true;  // Qwen3's template thinks unless told otherwise
  if (!kwargs->is_object()) bad("chat_template_kwargs", "'chat_template_kwargs' must be an object");
  const auto it = kwargs->find("enable_thinking");
  if (it == kwargs->end() || it->is_null()) return true;
  if (!it->is_boolean())
    bad("chat_template_kwargs.enable_thinking",
        "'chat_template_kwargs.enable_thinking' must be true or false");
  return it->get<bool>();
}

}  // namespace

ojson ApiError::body() const {
  return {{"error",
           {{"message", what()},
            {"type", type},
            {"param", param.empty() ? ojson(nullptr) : ojson(param)},
            {"code", code.empty() ? ojson(nullptr) : ojson(code)}}}};
}

OpenAiRequest parse_request(Endpoint endpoint, const std::string& text, const RequestLimits& limits,
                            const std::string& served_model) {
  ojson j;
  try {
    j = parse_bounded_json(text, "");
  } catch (const FieldError& e) {
    bad("", e.what());
  }
  if (!j.is_object()) bad("", "the body must be a JSON object");
  const Body b{j};
  check_model(b, served_model);
  refuse_unsupported(b, endpoint);

  OpenAiRequest out;
  out.endpoint = endpoint;
  out.stream = b.boolean("stream").value_or(false);
  if (const ojson* o = b.get("stream_options")) {
    if (!o->is_object()) bad("stream_options", "'stream_options' must be an object");
    const auto u = o->find("include_usage");
    if (u != o->end() && !u->is_null()) {
      if (!u->is_boolean())
        bad("stream_options.include_usage", "'stream_options.include_usage' must be true or false");
      out.include_usage = u->get<bool>();
    }
  }
  std::string length_field;
  const SamplingInput in = sampling(b, endpoint, length_field);
  FieldNames names{"", length_field, "prompt"};
  try {
    // The sampling values first: cheap, and a bad one should not cost a tokenizer pass.
    make_generation_request(in, {0}, limits, names);
    std::vector<int32_t> prompt;
    if (endpoint == Endpoint::kCompletions) {
      prompt = completion_prompt(b, limits);
    } else {
      const ojson messages = chat_messages(b);
      const ojson tools = chat_tools(b);
      ParsedRequest& p = out.parsed;
      p.chat = true;
      p.thinking = enable_thinking(b);
      p.tools = !tools.is_null();
      ChatPrompt rendered = render_chat(messages, tools, p.thinking, limits, "messages");
      p.starts_in_reasoning = rendered.starts_in_reasoning;
      prompt = std::move(rendered.ids);
      names.input = "messages";
    }
    out.parsed.generation = make_generation_request(in, std::move(prompt), limits, names);
  } catch (const ApiError&) {
    throw;
  } catch (const FieldError& e) {
    // The shared checks name the field as OpenAI spells it (no prefix); "messages[2].role" is
    // reported as messages[2].role, as OpenAI's own errors do.
    throw ApiError(400, e.what(), e.field);
  } catch (const std::exception& e) {
    throw ApiError(400, e.what());
  }
  if (const ojson* user = b.get("user"); user && user->is_string())
    out.parsed.generation.request_id = user->get<std::string>().substr(0, 64);
  return out;
}

}  // namespace qwen3moe::rpc::openai
