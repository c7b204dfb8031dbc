#include "rpc/service.h"

#include <atomic>
#include <chrono>
#include <deque>
#include <memory>
#include <optional>
#include <utility>

#include "core/text/chat_output_parser.h"
#include "kernels/common/check.h"
#include "rpc/event_queue.h"

namespace qwen3moe::rpc {
namespace {

namespace pb = ::qwen3moe::v1;
using Clock = std::chrono::steady_clock;

// How often a waiting Generate call looks at its ServerContext for a client cancellation.
constexpr std::chrono::milliseconds kCancelPoll{20};

// The gRPC deadline is on the system clock; the engine's on the steady clock.
Clock::time_point engine_deadline(const grpc::ServerContext& ctx) {
  const auto deadline = ctx.deadline();
  if (deadline == std::chrono::system_clock::time_point::max()) return Clock::time_point::max();
  const auto left = deadline - std::chrono::system_clock::now();
  // Anything beyond a day is as good as none (and would overflow the steady clock's range).
  if (left > std::chrono::hours(24)) return Clock::time_point::max();
  return Clock::now() + std::chrono::duration_cast<Clock::duration>(left);
}

// e's text goes through the chat parser (reasoning, answer, tool calls) for chat input; the
// last event also flushes what the parser held.
void fill(pb::GenerateResponse& r, const GenerationEvent& e, ChatOutputParser* parser) {
  r.mutable_token_ids()->Add(e.token_ids.begin(), e.token_ids.end());
  for (size_t i = 0; i < e.logprobs.size() && i < e.token_ids.size(); ++i) {
    pb::TokenLogprob* lp = r.add_logprobs();
    lp->set_id(e.token_ids[i]);
    lp->set_logprob(e.logprobs[i].logprob);
    for (const auto& [id, logprob] : e.logprobs[i].top) {
      pb::TopLogprob* top = lp->add_top();
      top->set_id(id);
      top->set_logprob(logprob);
    }
  }
  if (parser) {
    ChatDelta d = parser->push(e.text);
    if (!e.finish_reason.empty()) {
      ChatDelta rest = parser->finish();
      d.reasoning += rest.reasoning;
      d.content += rest.content;
      for (ToolCall& c : rest.tool_calls) d.tool_calls.push_back(std::move(c));
    }
    r.set_text(d.content);
    r.set_reasoning_text(d.reasoning);
    for (const ToolCall& c : d.tool_calls) {
      pb::ToolCall* t = r.add_tool_calls();
      t->set_id(c.id);
      t->set_name(c.name);
      t->set_arguments_json(c.arguments);
    }
  } else {
    r.set_text(e.text);
  }
  r.set_finish_reason(e.finish_reason);
  if (!e.finish_reason.empty()) {
    r.mutable_usage()->set_prompt_tokens(e.prompt_tokens);
    r.mutable_usage()->set_completion_tokens(e.completion_tokens);
  }
}

}  // namespace

InferenceService::InferenceService(Engine& engine, const ServedModel& model)
    : engine_(engine), model_(model), limits_(model.limits()) {}

grpc::Status InferenceService::Generate(grpc::ServerContext* ctx, const pb::GenerateRequest* in,
                                        grpc::ServerWriter<pb::GenerateResponse>* out) {
  last_call_ns_ = Clock::now().time_since_epoch().count();
  ++in_flight_;
  struct Leave {
    std::atomic<int>& n;
    ~Leave() { --n; }
  } leave{in_flight_};
  if (draining_) return {grpc::StatusCode::UNAVAILABLE, "the server is shutting down"};
  ParsedRequest parsed;
  try {
    parsed = to_generation_request(*in, limits_);
  } catch (const std::exception& e) {
    return {grpc::StatusCode::INVALID_ARGUMENT, e.what()};
  }
  GenerationRequest request = std::move(parsed.generation);
  request.deadline = engine_deadline(*ctx);
  std::optional<ChatOutputParser> parser;
  if (parsed.chat)
    parser.emplace(parsed.thinking, parsed.starts_in_reasoning, parsed.tools, fresh_seed());

  // Shared with the sink: the engine may still hold the sink after this call has returned.
  auto queue = std::make_shared<EventQueue>();
  uint64_t handle = 0;
  try {
    handle =
        engine_.submit(std::move(request), [queue](const GenerationEvent& e) { queue->push(e); });
  } catch (const QueueFull& e) {
    return {grpc::StatusCode::RESOURCE_EXHAUSTED, e.what()};
  } catch (const std::exception& e) {
    if (draining_) return {grpc::StatusCode::UNAVAILABLE, "the server is shutting down"};
    return {grpc::StatusCode::INVALID_ARGUMENT, e.what()};
  }

  std::deque<GenerationEvent> events;
  for (;;) {
    if (ctx->IsCancelled()) {
      engine_.cancel(handle);
      // A passed deadline also shows as a cancelled context; the client sees its own status.
      return {grpc::StatusCode::CANCELLED, "cancelled by the client"};
    }
    if (!queue->drain(events, kCancelPoll)) continue;
    while (!events.empty()) {
      const GenerationEvent e = std::move(events.front());
      events.pop_front();
      pb::GenerateResponse message;
      fill(message, e, parser ? &*parser : nullptr);
      const std::string& reason = e.finish_reason;
      if (reason.empty()) {
        if (!out->Write(message)) {
          engine_.cancel(handle);
          return {grpc::StatusCode::CANCELLED, "the stream to the client broke"};
        }
        continue;
      }
      if (reason == "deadline")
        return {grpc::StatusCode::DEADLINE_EXCEEDED,
                "the deadline passed after " + std::to_string(e.completion_tokens) + " tokens"};
      if (reason == "error") return {grpc::StatusCode::INTERNAL, e.error};
      out->Write(message);
      if (reason == "cancelled" && draining_)
        return {grpc::StatusCode::UNAVAILABLE, "the server shut down during the request"};
      return grpc::Status::OK;
    }
  }
}

grpc::Status InferenceService::Tokenize(grpc::ServerContext*, const pb::TokenizeRequest* in,
                                        pb::TokenizeResponse* out) {
  if (model_.tokenizer == nullptr)
    return {grpc::StatusCode::FAILED_PRECONDITION, "this server has no tokenizer"};
  try {
    const std::vector<int32_t> ids = model_.tokenizer->encode(in->text());
    out->mutable_ids()->Add(ids.begin(), ids.end());
  } catch (const std::exception& e) {
    return {grpc::StatusCode::INVALID_ARGUMENT, std::string("text: ") + e.what()};
  }
  return grpc::Status::OK;
}

grpc::Status InferenceService::GetModelInfo(grpc::ServerContext*, const pb::ModelInfoRequest*,
                                            pb::ModelInfo* out) {
  const ModelConfig& c = model_.config;
  out->set_architecture(c.architecture);
  out->set_vocab_size(c.vocab_size);
  out->set_hidden_size(c.hidden_size);
  out->set_num_hidden_layers(c.num_hidden_layers);
  out->set_num_attention_heads(c.num_attention_heads);
  out->set_num_key_value_heads(c.num_key_value_heads);
  out->set_head_dim(c.head_dim);
  out->set_num_experts(c.num_experts);
  out->set_num_experts_per_tok(c.num_experts_per_tok);
  out->set_max_position_embeddings(c.max_position_embeddings);
  out->set_world_size(model_.world);
  out->set_dp(model_.dp);
  out->set_tp(model_.tp);
  out->set_ep(model_.ep);
  out->set_has_tokenizer(model_.tokenizer != nullptr);
  out->set_kv_block_size(model_.kv_block_size);
  out->set_kv_total_blocks(model_.kv_total_blocks);
  out->set_max_batch(model_.engine.max_batch);
  out->set_max_queue(model_.engine.max_queue);
  return grpc::Status::OK;
}

grpc::Status InferenceService::GetStats(grpc::ServerContext*, const pb::StatsRequest*,
                                        pb::Stats* out) {
  const EngineStats s = engine_.stats();
  out->set_running(s.running);
  out->set_queued(s.queued);
  out->set_free_kv_blocks(s.free_blocks);
  out->set_total_kv_blocks(s.total_blocks);
  out->set_tokens_generated(s.tokens_generated);
  out->set_requests_finished(s.requests_finished);
  out->set_steps(s.steps);
  out->set_tokens_per_second(s.tokens_per_second);
  out->set_ttft_p50_ms(s.ttft_p50_ms);
  out->set_ttft_p90_ms(s.ttft_p90_ms);
  out->set_ttft_p99_ms(s.ttft_p99_ms);
  out->set_e2e_p50_ms(s.e2e_p50_ms);
  out->set_e2e_p90_ms(s.e2e_p90_ms);
  out->set_e2e_p99_ms(s.e2e_p99_ms);
  out->set_seconds_since_step(s.seconds_since_step);
  out->set_serving(serving_);
  out->set_prefix_query_tokens(s.prefix_query_tokens);
  out->set_prefix_hit_tokens(s.prefix_hit_tokens);
  out->set_cached_kv_blocks(s.cached_blocks);
  out->set_evictable_kv_blocks(s.evictable_blocks);
  for (size_t g = 0; g < s.groups.size(); ++g) {
    const DpGroupStats& gs = s.groups[g];
    pb::DpGroupStats* o = out->add_groups();
    o->set_group(int32_t(g));
    o->set_running(gs.running);
    o->set_free_kv_blocks(gs.free_blocks);
    o->set_total_kv_blocks(gs.total_blocks);
    o->set_cached_kv_blocks(gs.cached_blocks);
    o->set_tokens_generated(gs.tokens_generated);
    o->set_requests_finished(gs.requests_finished);
  }
  return grpc::Status::OK;
}

}  // namespace qwen3moe::rpc
