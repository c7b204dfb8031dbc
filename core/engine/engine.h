// The serving engine: continuous batching over the paged KV cache, driven by rank 0 and
// followed in lockstep by every other rank (README "Across ranks").
//
// Rank 0 owns the scheduler: requests join a FIFO queue from any thread (submit), and each
// step it (1) drops cancelled and expired sequences, freeing their blocks, (2) admits waiting
// requests while the batch has room and the free blocks cover the whole request (prompt +
// max_new_tokens, reserved at admission so a running sequence never waits for memory),
// (3) builds one batch of every running sequence's next decode token plus prefill chunks of
// admitted prompts up to a token budget (chunked prefill), (4) broadcasts it as a step plan,
// (5) runs the forward, samples on rank 0, and streams events (whole UTF-8 text, stop strings
// cut exactly) to each request's sink. Other ranks run follow(): receive a plan, forward,
// repeat, until the shutdown plan.
//
// With DP groups (the model's topology has dp > 1) rank 0 schedules every group: each has its
// own running sequences, KV blocks (rank 0 keeps the bookkeeping of the other groups' caches)
// and batch limits; a request goes to the group with the most free KV blocks, ties to the one
// running fewest sequences. One step runs every group's batch at once (a group without work
// joins the MoE exchanges with none); every rank learns every group's sizes (the plan's header)
// and receives only its own group's plan, and the first rank of each other group sends its
// logits to rank 0 for sampling.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "core/engine/histogram.h"
#include "core/engine/sampling.h"
#include "core/model/kv_cache.h"
#include "core/model/model.h"
#include "core/text/tokenizer.h"
#include "parallel/comm/communicator.h"

namespace qwen3moe {

// The most top logprobs a request may ask for per token (OpenAI's limit).
inline constexpr int32_t kMaxTopLogprobs = 20;

struct EngineOptions {
  int32_t max_batch = 32;        // sequences running at once
  int32_t max_queue = 256;       // waiting requests; beyond: QueueFull
  int64_t prefill_budget = 256;  // prompt tokens per step (chunked prefill)
  int32_t max_stop_strings = 8;
  int32_t max_stop_length = 64;  // bytes per stop string
  // A request's own stop ids (64 through the APIs) and the model's extra eos ids (at most 16).
  int32_t max_stop_token_ids = 80;
  // Pad steps of one token per sequence (decode) to graph shapes (core/engine/graph_buckets.h)
  // with tokens that write no KV and whose logits are dropped, so a graph-capable backend
  // replays a few captured steps instead of capturing every batch size and table width.
  bool graph_padding = false;
  // Reuse the KV blocks of prompt prefixes already computed (KvCache's prefix cache).
  bool prefix_cache = true;
};

struct GenerationRequest {
  std::string request_id;
  std::vector<int32_t> prompt;
  SamplingParams sampling;
  int32_t max_new_tokens = 64;
  std::vector<std::string> stop;  // text stop strings (not included in the output)
  // Token ids that end the sequence like the model's eos (finish_reason "stop"), e.g. the extra
  // eos ids of generation_config.json; ignore_eos covers them too.
  std::vector<int32_t> stop_token_ids;
  bool ignore_eos = false;
  // -1: no logprobs; 0..kMaxTopLogprobs: each token's logprob and that many of the most likely.
  int32_t logprobs = -1;
  // Past this point the sequence ends with finish_reason "deadline" and frees its blocks.
  std::chrono::steady_clock::time_point deadline = std::chrono::steady_clock::time_point::max();
};

// One message of a request's stream. finish_reason is "" until the last message, then
// "stop" | "length" | "cancelled" | "deadline" | "error" (error carries the message).
struct GenerationEvent {
  std::vector<int32_t> token_ids;
  std::vector<TokenLogprobs> logprobs;  // [token_ids] when the request asked for them
  std::string text;                     // whole UTF-8 characters only
  std::string finish_reason;
  std::string error;
  int32_t prompt_tokens = 0;
  int32_t completion_tokens = 0;
};
using EventSink = std::function<void(const GenerationEvent&)>;

// submit() when the queue is full.
class QueueFull : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// One DP group's share of the engine (GetStats per group).
struct DpGroupStats {
  int32_t running = 0;
  int64_t free_blocks = 0, total_blocks = 0, cached_blocks = 0;
  int64_t tokens_generated = 0, requests_finished = 0;
};

struct EngineStats {
  int32_t running = 0, queued = 0;  // running: over every DP group
  int64_t free_blocks = 0, total_blocks = 0;
  int64_t tokens_generated = 0, requests_finished = 0, steps = 0;
  double tokens_per_second = 0;                              // over the last 10 s of steps
  double ttft_p50_ms = 0, ttft_p90_ms = 0, ttft_p99_ms = 0;  // time to first token
  double e2e_p50_ms = 0, e2e_p90_ms = 0, e2e_p99_ms = 0;     // whole request
  double seconds_since_step = 0;                             // for health: work waiting but no step
  // Prefix caching: prompt tokens admitted, and of those found in the cache; cached blocks,
  // and those no running sequence holds (evicted first when blocks run out).
  int64_t prefix_query_tokens = 0, prefix_hit_tokens = 0;
  int64_t cached_blocks = 0, evictable_blocks = 0;
  std::vector<DpGroupStats> groups;  // [dp]; free/total/cached blocks above are their sums
};

// Running totals for monitoring (Prometheus /metrics): counters since start and latency
// histograms in seconds, with vLLM's bucket bounds so its dashboards read them alike.
struct EngineMetrics {
  int64_t prompt_tokens = 0;      // prompt tokens of requests that reached their first token
  int64_t generation_tokens = 0;  // tokens sampled
  int64_t prefix_query_tokens = 0, prefix_hit_tokens = 0;
  std::map<std::string, int64_t> finished;  // requests by finish_reason
  Histogram ttft{{0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1,  0.25,  0.5,   0.75,
                  1.0,   2.5,   5.0,  7.5,  10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0}};
  Histogram itl{{0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5,
                 10.0, 20.0, 40.0, 80.0}};
  Histogram e2e{{0.3,  0.5,  0.8,  1.0,  1.5,   2.0,   2.5,   5.0,   10.0,   15.0,  20.0,
                 30.0, 40.0, 50.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0}};
};

class Engine {
 public:
  // tokenizer may be null (then events carry ids only and stop strings are rejected).
  Engine(Model& model, KvCache& cache, Communicator& comm, const Tokenizer* tokenizer,
         const EngineOptions& options);
  ~Engine();

  // Rank 0, any thread. Validates (Error naming the field and value), queues, returns the
  // request's handle. Throws QueueFull when max_queue requests are waiting.
  uint64_t submit(GenerationRequest request, EventSink sink);
  // Rank 0, any thread: ends the request at the next step ("cancelled"), freeing its blocks.
  void cancel(uint64_t handle);
  EngineStats stats() const;
  EngineMetrics metrics() const;

  // Rank 0: runs steps until shutdown() (blocks; call from the engine thread), sending an
  // empty keep-alive plan each idle second. When a step throws, every request ends with
  // "error" before the exception leaves. Every other rank: follow() instead. Both return after
  // the shutdown plan has been run by all ranks.
  void serve();
  void follow();
  // Rank 0, any thread: stops admitting, ends running and queued requests with "cancelled",
  // and makes serve() send the shutdown plan and return.
  void shutdown();

  // One scheduler step on rank 0 (serve() loops on it); false when there was nothing to do.
  // Exposed for tests that drive the engine without a thread.
  bool step();
  bool idle() const;

 private:
  struct Sequence;
  struct Group;
  void validate(const GenerationRequest& r) const;
  // Sends the last message (held text, and unless a stop string cut it, the decoder's rest),
  // frees the blocks and marks the sequence done.
  void finish(Sequence& s, const std::string& reason, const std::string& error = "",
              bool flush_decoder = true);
  // After a failed step: ends every queued and running request with "error" and stops
  // admitting.
  void fail_all(const std::string& error);
  void serve_steps();
  void emit_token(Sequence& s, int32_t token);
  // Rank 0: the group a request joins (most free blocks after what its running sequences may
  // still take, then fewest running), -1 when every group's batch is full.
  int choose_group(const std::vector<int64_t>& committed) const;
  // Rank 0: the group's next batch (decode tokens, then prompt chunks up to the budget) and, in
  // logit-row order, the sequences it samples.
  StepBatch build_batch(Group& g, std::vector<Sequence*>& sampled);
  // The step plan of every group (one per group; empty ones too), or the shutdown plan: a
  // header of every group's sizes to all ranks, then each rank its own group's plan.
  void broadcast_plan(const std::vector<StepBatch>& plans, bool stop);
  // After the forward, on every rank: the first rank of each other DP group sends its group's
  // logits [logit rows, V] to rank 0, which gets them in group_logits (group 0's stay in
  // logits_). Collective; nothing moves when no other group sampled.
  void gather_group_logits(const std::vector<int64_t>& logit_rows,
                           std::vector<std::vector<float>>* group_logits);
  // Pads a one-token-per-sequence batch to its graph bucket (graph_padding).
  void pad_to_graph_shape(StepBatch& batch) const;

  Model& model_;
  KvCache& cache_;
  Communicator& comm_;
  const Tokenizer* tokenizer_;
  EngineOptions options_;

  mutable std::mutex mu_;  // guards queue_, cancelled_, stopping_, stats_ fields below
  std::condition_variable wake_;
  std::deque<std::unique_ptr<Sequence>> queue_;
  std::vector<uint64_t> cancelled_;
  bool stopping_ = false;
  uint64_t next_handle_ = 1;

  std::vector<std::unique_ptr<Group>> groups_;  // [dp]; the scheduler thread's (rank 0)
  std::vector<float> logits_;

  // Statistics (under mu_).
  int32_t running_count_ = 0;
  std::vector<DpGroupStats> group_stats_;  // [dp]; the engine's block counts are their sums
  int64_t tokens_generated_ = 0, requests_finished_ = 0, steps_ = 0;
  int64_t prefix_query_tokens_ = 0, prefix_hit_tokens_ = 0, evictable_blocks_ = 0;
  std::deque<std::pair<std::chrono::steady_clock::time_point, int64_t>> recent_tokens_;
  std::vector<double> ttft_ms_, e2e_ms_;
  EngineMetrics metrics_;
  std::chrono::steady_clock::time_point last_step_ = std::chrono::steady_clock::now();
  // When work arrived at an idle engine: health measures a stall from the later of the two.
  std::chrono::steady_clock::time_point work_since_ = last_step_;
};

}  // namespace qwen3moe
