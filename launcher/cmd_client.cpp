// qwen3moe client: talks to `qwen3moe serve`. One request (--prompt, --chat or --ids) prints
// the text as it streams and a summary line on stderr; --load N runs the load generator;
// --stats, --info and --health print what the server reports.
#ifdef QWEN3MOE_HAVE_GRPC

#include <google/protobuf/descriptor.h>
#include <google/protobuf/message.h>
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "kernels/common/check.h"
#include "launcher/commands.h"
#include "launcher/prompt_input.h"
#include "launcher/runtime.h"
#include "rpc/grpc_health.grpc.pb.h"
#include "rpc/load_generator.h"
#include "rpc/qwen3moe.grpc.pb.h"

namespace qwen3moe::launcher {
namespace {

namespace pb = ::qwen3moe::v1;
using Clock = std::chrono::steady_clock;

struct ClientFlags {
  std::string addr = "127.0.0.1:50051";
  std::optional<std::string> prompt, chat_file, ids;  // given, even empty, or not
  bool no_thinking = false;
  // Unset: the server's defaults (the model's generation_config.json, then the built-in ones),
  // the same a raw gRPC or OpenAI request gets.
  std::optional<int> max_new_tokens;
  std::optional<float> temperature, top_p, min_p, presence_penalty, frequency_penalty,
      repetition_penalty;
  std::optional<int> top_k;
  std::optional<uint64_t> seed;  // unset: the server draws one per request
  std::vector<std::string> stop;
  bool ignore_eos = false;
  int timeout_ms = 0;
  int load = 0, concurrency = 1, prompt_len = 32, shared_prefix = 0;
  std::string http;  // load mode over the OpenAI HTTP API at this base URL
  bool json = false;
  bool stats = false, info = false, health = false;
  double wait_s = 0;
};

std::shared_ptr<grpc::Channel> channel_to(const std::string& addr) {
  return grpc::CreateChannel(addr, grpc::InsecureChannelCredentials());
}

void set_timeout(grpc::ClientContext& ctx, int timeout_ms) {
  if (timeout_ms > 0)
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(timeout_ms));
}

[[noreturn]] void fail_rpc(const char* what, const grpc::Status& st) {
  static const char* const kCodes[] = {"OK",
                                       "CANCELLED",
                                       "UNKNOWN",
                                       "INVALID_ARGUMENT",
                                       "DEADLINE_EXCEEDED",
                                       "NOT_FOUND",
                                       "ALREADY_EXISTS",
                                       "PERMISSION_DENIED",
                                       "RESOURCE_EXHAUSTED",
                                       "FAILED_PRECONDITION",
                                       "ABORTED",
                                       "OUT_OF_RANGE",
                                       "UNIMPLEMENTED",
                                       "INTERNAL",
                                       "UNAVAILABLE",
                                       "DATA_LOSS",
                                       "UNAUTHENTICATED"};
  const int code = int(st.error_code());
  QWEN3MOE_FAIL(what, ": ", code >= 0 && code <= 16 ? kCodes[code] : "code " + std::to_string(code),
                ": ", st.error_message());
}

// A reply as JSON with the proto field names and every number a JSON number (protobuf's own
// JSON printer writes 64-bit integers as strings, which scripts then have to convert).
nlohmann::ordered_json to_json_value(const google::protobuf::Message& m) {
  using FD = google::protobuf::FieldDescriptor;
  const google::protobuf::Reflection* r = m.GetReflection();
  const google::protobuf::Descriptor* d = m.GetDescriptor();
  nlohmann::ordered_json out = nlohmann::ordered_json::object();
  for (int i = 0; i < d->field_count(); ++i) {
    const FD* f = d->field(i);
    if (f->is_repeated()) {
      // Stats' per-group entries: messages of scalars.
      nlohmann::ordered_json list = nlohmann::ordered_json::array();
      if (f->cpp_type() == FD::CPPTYPE_MESSAGE)
        for (int k = 0; k < r->FieldSize(m, f); ++k)
          list.push_back(to_json_value(r->GetRepeatedMessage(m, f, k)));
      out[f->name()] = std::move(list);
      continue;
    }
    switch (f->cpp_type()) {
      case FD::CPPTYPE_INT32:
        out[f->name()] = r->GetInt32(m, f);
        break;
      case FD::CPPTYPE_INT64:
        out[f->name()] = r->GetInt64(m, f);
        break;
      case FD::CPPTYPE_UINT32:
        out[f->name()] = r->GetUInt32(m, f);
        break;
      case FD::CPPTYPE_UINT64:
        out[f->name()] = r->GetUInt64(m, f);
        break;
      case FD::CPPTYPE_DOUBLE:
        out[f->name()] = r->GetDouble(m, f);
        break;
      case FD::CPPTYPE_FLOAT:
        out[f->name()] = r->GetFloat(m, f);
        break;
      case FD::CPPTYPE_BOOL:
        out[f->name()] = r->GetBool(m, f);
        break;
      case FD::CPPTYPE_STRING:
        out[f->name()] = r->GetString(m, f);
        break;
      case FD::CPPTYPE_ENUM:
        out[f->name()] = r->GetEnum(m, f)->name();
        break;
      case FD::CPPTYPE_MESSAGE:
        if (r->HasField(m, f)) out[f->name()] = to_json_value(r->GetMessage(m, f));
        break;
    }
  }
  return out;
}

std::string to_json(const google::protobuf::Message& m) {
  return to_json_value(m).dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

// SERVING: true. With wait_s > 0, asks again until SERVING or the time is up (for scripts
// that start a server and wait for it).
bool check_health(const ClientFlags& f) {
  auto stub = grpc::health::v1::Health::NewStub(channel_to(f.addr));
  const auto until = Clock::now() + std::chrono::duration<double>(f.wait_s);
  for (;;) {
    grpc::ClientContext ctx;
    set_timeout(ctx, f.timeout_ms > 0 ? f.timeout_ms : 2000);
    grpc::health::v1::HealthCheckResponse reply;
    const grpc::Status st = stub->Check(&ctx, grpc::health::v1::HealthCheckRequest(), &reply);
    const bool serving =
        st.ok() && reply.status() == grpc::health::v1::HealthCheckResponse::SERVING;
    if (serving || Clock::now() >= until) {
      std::printf(
          "%s\n",
          st.ok()
              ? grpc::health::v1::HealthCheckResponse::ServingStatus_Name(reply.status()).c_str()
              : "UNREACHABLE");
      return serving;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
}

void run_one(const ClientFlags& f) {
  const int inputs =
      int(f.prompt.has_value()) + int(f.chat_file.has_value()) + int(f.ids.has_value());
  QWEN3MOE_CHECK(inputs == 1, "give exactly one of --prompt, --chat, --ids (got ", inputs, ")");
  QWEN3MOE_CHECK(!f.prompt || !f.prompt->empty(), "--prompt is empty");
  QWEN3MOE_CHECK(!f.ids || !f.ids->empty(), "--ids is empty");
  QWEN3MOE_CHECK(!f.chat_file || !f.chat_file->empty(), "--chat names no file");
  pb::GenerateRequest req;
  if (f.prompt) {
    req.set_prompt(*f.prompt);
  } else if (f.ids) {
    for (int32_t id : parse_ids(*f.ids)) req.mutable_token_ids()->add_ids(id);
  } else {
    const ChatInput chat = read_chat_file(*f.chat_file);
    for (const ChatMessage& m : chat.messages) {
      auto* out = req.mutable_chat()->add_messages();
      out->set_role(m.role);
      out->set_content(m.content);
      out->set_reasoning_content(m.reasoning_content);
    }
    req.mutable_chat()->set_enable_thinking(chat.enable_thinking && !f.no_thinking);
  }
  pb::SamplingParams* s = req.mutable_sampling();
  if (f.temperature) s->set_temperature(*f.temperature);
  if (f.top_p) s->set_top_p(*f.top_p);
  if (f.top_k) s->set_top_k(*f.top_k);
  if (f.min_p) s->set_min_p(*f.min_p);
  if (f.presence_penalty) s->set_presence_penalty(*f.presence_penalty);
  if (f.frequency_penalty) s->set_frequency_penalty(*f.frequency_penalty);
  if (f.repetition_penalty) s->set_repetition_penalty(*f.repetition_penalty);
  if (f.seed) s->set_seed(*f.seed);
  if (f.max_new_tokens) s->set_max_new_tokens(*f.max_new_tokens);
  for (const std::string& stop : f.stop) s->add_stop(stop);
  s->set_ignore_eos(f.ignore_eos);

  auto stub = pb::Inference::NewStub(channel_to(f.addr));
  grpc::ClientContext ctx;
  set_timeout(ctx, f.timeout_ms);
  const auto start = Clock::now();
  double ttft_ms = -1;
  auto reader = stub->Generate(&ctx, req);
  pb::GenerateResponse r;
  std::vector<int32_t> ids;
  std::string text, reasoning, finish;
  nlohmann::json tool_calls = nlohmann::json::array();
  pb::Usage usage;
  bool in_reasoning = false;  // the terminal shows the reasoning dimmed, then the answer
  while (reader->Read(&r)) {
    if (ttft_ms < 0 && r.token_ids_size() > 0)
      ttft_ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
    ids.insert(ids.end(), r.token_ids().begin(), r.token_ids().end());
    text += r.text();
    reasoning += r.reasoning_text();
    for (const pb::ToolCall& c : r.tool_calls())
      tool_calls.push_back({{"id", c.id()}, {"name", c.name()}, {"arguments", c.arguments_json()}});
    if (!f.json) {
      if (!r.reasoning_text().empty()) {
        if (!in_reasoning) std::fputs("\033[2m", stdout);
        in_reasoning = true;
        std::fputs(r.reasoning_text().c_str(), stdout);
      }
      if (in_reasoning && (!r.text().empty() || !r.finish_reason().empty())) {
        std::fputs("\033[0m\n\n", stdout);
        in_reasoning = false;
      }
      std::fputs(r.text().c_str(), stdout);
      for (const pb::ToolCall& c : r.tool_calls())
        std::printf("[tool call %s: %s(%s)]\n", c.id().c_str(), c.name().c_str(),
                    c.arguments_json().c_str());
      std::fflush(stdout);
    }
    if (!r.finish_reason().empty()) {
      finish = r.finish_reason();
      usage = r.usage();
    }
  }
  const grpc::Status st = reader->Finish();
  if (!f.json) std::printf("\n");
  std::fflush(stdout);
  if (!st.ok()) fail_rpc("Generate", st);
  const double total_ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
  if (f.json) {
    nlohmann::json j = {{"output_ids", ids},
                        {"text", text},
                        {"reasoning_text", reasoning},
                        {"tool_calls", tool_calls},
                        {"finish_reason", finish},
                        {"prompt_tokens", usage.prompt_tokens()},
                        {"completion_tokens", usage.completion_tokens()}};
    std::printf("%s\n", j.dump().c_str());
  } else if (text.empty() && !ids.empty()) {
    // A server without a tokenizer streams ids only.
    std::string line;
    for (int32_t id : ids) line += (line.empty() ? "" : ",") + std::to_string(id);
    std::printf("%s\n", line.c_str());
  }
  std::fprintf(stderr,
               "finish_reason=%s prompt_tokens=%d completion_tokens=%d ttft=%.1f ms total=%.1f "
               "ms\n",
               finish.c_str(), usage.prompt_tokens(), usage.completion_tokens(),
               ttft_ms < 0 ? 0.0 : ttft_ms, total_ms);
}

void run_load(const ClientFlags& f) {
  rpc::LoadOptions o;
  o.addr = f.addr;
  o.requests = f.load;
  o.concurrency = f.concurrency;
  o.prompt_len = f.prompt_len;
  o.shared_prefix = f.shared_prefix;
  o.max_new_tokens = f.max_new_tokens.value_or(32);
  o.seed = f.seed.value_or(0);
  o.temperature = 0;
  o.timeout_ms = f.timeout_ms;
  o.http = f.http;
  const rpc::LoadResult r = rpc::run_load(o);
  if (f.json) {
    nlohmann::json j = {{"api", f.http.empty() ? "grpc" : "http"},
                        {"requests", r.requests},
                        {"failed", r.failed},
                        {"concurrency", f.concurrency},
                        {"seconds", r.seconds},
                        {"output_tokens", r.output_tokens},
                        {"requests_per_second", r.requests_per_second},
                        {"output_tokens_per_second", r.output_tokens_per_second},
                        {"ttft_ms", {r.ttft_p50_ms, r.ttft_p90_ms, r.ttft_p99_ms}},
                        {"itl_ms", {r.itl_p50_ms, r.itl_p90_ms, r.itl_p99_ms}}};
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::printf(
        "requests %d (failed %d), concurrency %d, prompt %d + %d shared tokens, %d new tokens "
        "each\n"
        "%.2f s: %.2f requests/s, %.1f output tokens/s\n"
        "TTFT ms: p50 %.1f  p90 %.1f  p99 %.1f\n"
        "ITL  ms: p50 %.1f  p90 %.1f  p99 %.1f\n",
        r.requests, r.failed, f.concurrency, o.prompt_len, o.shared_prefix, o.max_new_tokens,
        r.seconds, r.requests_per_second, r.output_tokens_per_second, r.ttft_p50_ms, r.ttft_p90_ms,
        r.ttft_p99_ms, r.itl_p50_ms, r.itl_p90_ms, r.itl_p99_ms);
  }
  QWEN3MOE_CHECK(r.failed == 0, r.failed, " of ", r.requests,
                 " requests failed, the first: ", r.first_error);
}

void run_client(const ClientFlags& f) {
  const int modes = int(f.load > 0) + int(f.stats) + int(f.info) + int(f.health);
  QWEN3MOE_CHECK(modes <= 1, "give at most one of --load, --stats, --info, --health");
  if (f.health) {
    QWEN3MOE_CHECK(check_health(f), "the server at ", f.addr, " is not SERVING");
    return;
  }
  if (f.stats || f.info) {
    auto stub = pb::Inference::NewStub(channel_to(f.addr));
    grpc::ClientContext ctx;
    set_timeout(ctx, f.timeout_ms > 0 ? f.timeout_ms : 10000);
    if (f.stats) {
      pb::Stats reply;
      const grpc::Status st = stub->GetStats(&ctx, pb::StatsRequest(), &reply);
      if (!st.ok()) fail_rpc("GetStats", st);
      std::printf("%s\n", to_json(reply).c_str());
    } else {
      pb::ModelInfo reply;
      const grpc::Status st = stub->GetModelInfo(&ctx, pb::ModelInfoRequest(), &reply);
      if (!st.ok()) fail_rpc("GetModelInfo", st);
      std::printf("%s\n", to_json(reply).c_str());
    }
    return;
  }
  if (f.load > 0) return run_load(f);
  run_one(f);
}

}  // namespace

void register_client(CLI::App& app) {
  auto* cmd = app.add_subcommand("client", "Send requests to a qwen3moe serve");
  auto f = std::make_shared<ClientFlags>();
  cmd->add_option("--addr", f->addr, "Server address HOST:PORT")->capture_default_str();
  cmd->add_option("--prompt", f->prompt, "Prompt text (no chat template)");
  cmd->add_option("--chat", f->chat_file,
                  "JSON file: [{\"role\",\"content\"}...] or {\"messages\": [...], "
                  "\"enable_thinking\": bool}; rendered by the server's chat template");
  cmd->add_option("--ids", f->ids, "Prompt as comma-separated token ids");
  cmd->add_flag("--no-thinking", f->no_thinking, "Chat with enable_thinking=false");
  cmd->add_option("--max-new-tokens", f->max_new_tokens,
                  "Tokens to generate at most (default: the server's, 256 or the model's "
                  "generation_config.json; load mode: 32)");
  cmd->add_option("--temperature", f->temperature,
                  "0 is greedy (default: the model's generation_config.json, else 1)");
  cmd->add_option("--top-p", f->top_p, "Nucleus mass in (0, 1] (default: the model's, else 1)");
  cmd->add_option("--top-k", f->top_k,
                  "Keep the k most likely tokens (0: all; default: the model's, else all)");
  cmd->add_option("--min-p", f->min_p, "Keep tokens of at least this share of the top one");
  cmd->add_option("--presence-penalty", f->presence_penalty, "In [-2, 2], over the output");
  cmd->add_option("--frequency-penalty", f->frequency_penalty, "In [-2, 2], over the output");
  cmd->add_option("--repetition-penalty", f->repetition_penalty,
                  "> 0 (1: off), over prompt and output, as transformers applies it");
  cmd->add_option("--seed", f->seed,
                  "Sampling seed (default: a fresh one per request; load mode: also the prompts' "
                  "seed, default 0)");
  cmd->add_option("--stop", f->stop, "Stop string (repeatable); the text ends before it");
  cmd->add_flag("--ignore-eos", f->ignore_eos, "Keep generating past EOS");
  cmd->add_option("--timeout-ms", f->timeout_ms, "Deadline of each request (0: none)")
      ->capture_default_str();
  cmd->add_flag("--json", f->json, "Print one JSON object instead of the streamed text");
  cmd->add_option("--load", f->load, "Load mode: send N requests of random token ids");
  cmd->add_option("--concurrency", f->concurrency, "Load mode: requests in flight")
      ->capture_default_str();
  cmd->add_option("--shared-prefix", f->shared_prefix,
                  "Load mode: tokens every prompt starts with, before its own --prompt-len "
                  "(shows prefix caching in TTFT)")
      ->capture_default_str();
  cmd->add_option("--http", f->http,
                  "Load mode: send the requests as streamed OpenAI /v1/completions calls to this "
                  "base URL (http://HOST:PORT, the serve's http line) instead of gRPC Generate");
  cmd->add_option("--prompt-len", f->prompt_len, "Load mode: prompt tokens per request")
      ->capture_default_str();
  cmd->add_flag("--stats", f->stats, "Print GetStats as JSON");
  cmd->add_flag("--info", f->info, "Print GetModelInfo as JSON");
  cmd->add_flag("--health", f->health, "Print the health status; exit 1 unless SERVING");
  cmd->add_option("--wait", f->wait_s, "With --health: keep asking up to this many seconds")
      ->capture_default_str();
  cmd->callback([f] { run_client(*f); });
}

}  // namespace qwen3moe::launcher

#endif  // QWEN3MOE_HAVE_GRPC
