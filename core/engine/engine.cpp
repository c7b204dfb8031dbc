#include "core/engine/engine.h"

#include <algorithm>
#include <climits>
#include <cmath>

#include "core/engine/debug_stall.h"
#include "core/engine/graph_buckets.h"
#include "core/engine/percentile.h"
#include "core/text/stream_decoder.h"
#include "kernels/common/check.h"
#include "kernels/common/split.h"

namespace qwen3moe {

using Clock = std::chrono::steady_clock;

struct Engine::Sequence {
  uint64_t handle = 0;
  GenerationRequest req;
  EventSink sink;
  std::unique_ptr<SequenceKv> kv;
  int64_t blocks_needed = 0;  // reserved at admission for prompt + max_new_tokens
  int64_t prefilled = 0;      // prompt tokens already in the cache
  int32_t generated = 0;      // tokens sampled so far
  int32_t last_token = -1;    // fed at the next decode step
  int group = -1;             // the DP group it runs in (from admission; -1 while queued)
  std::optional<Sampler> sampler;
  std::optional<StreamDecoder> decoder;
  std::string held;                         // decoded text held back: it may begin a stop string
  std::vector<int32_t> ids_out;             // ids of this step's message
  std::vector<TokenLogprobs> logprobs_out;  // and their logprobs (when asked for)
  bool done = false;
  Clock::time_point submitted = Clock::now(), first_token{}, last_token_at{};
};

// One DP group as the scheduler sees it: its KV blocks (rank 0's own cache for group 0, the
// bookkeeping of the group's cache for the others) and its running sequences.
struct Engine::Group {
  KvCache* cache = nullptr;
  std::unique_ptr<KvCache> blocks_only;  // groups other than rank 0's
  std::vector<std::unique_ptr<Sequence>> running;
};

namespace {

int64_t blocks_for(int64_t tokens, int64_t block_size) {
  return ceil_div(tokens, block_size);
}

// Length of the longest suffix of text that is a proper prefix of some stop string: those
// bytes may still become a stop string, so they are not streamed yet.
size_t stop_prefix_suffix(const std::string& text, const std::vector<std::string>& stops) {
  size_t best = 0;
  for (const std::string& s : stops)
    for (size_t n = std::min(text.size(), s.size() - 1); n > best; --n)
      if (text.compare(text.size() - n, n, s, 0, n) == 0) {
        best = n;
        break;
      }
  return best;
}

void keep_last(std::vector<double>& v, double x, size_t n) {
  v.push_back(x);
  if (v.size() > n) v.erase(v.begin(), v.begin() + int64_t(v.size() - n));
}

}  // namespace

Engine::Engine(Model& model, KvCache& cache, Communicator& comm, const Tokenizer* tokenizer,
               const EngineOptions& options)
    : model_(model), cache_(cache), comm_(comm), tokenizer_(tokenizer), options_(options) {
  const Topology& topo = model.topology();
  QWEN3MOE_CHECK(comm.size() == topo.world() && comm.rank() == topo.rank(),
                 "the engine's communicator (rank ", comm.rank(), " of ", comm.size(),
                 ") is not the model's world");
  cache_.enable_prefix_cache(options.prefix_cache);
  // Every group's cache has rank 0's size (serve sizes all ranks' caches alike).
  for (int g = 0; g < topo.dp(); ++g) {
    auto grp = std::make_unique<Group>();
    if (g == 0) {
      grp->cache = &cache;
    } else {
      grp->blocks_only =
          std::make_unique<KvCache>(model.config(), topo, model.backend(), cache.num_blocks(),
                                    cache.block_size(), cache.dtype(), /*blocks_only=*/true);
      grp->blocks_only->enable_prefix_cache(options.prefix_cache);
      grp->cache = grp->blocks_only.get();
    }
    groups_.push_back(std::move(grp));
  }
  group_stats_.resize(size_t(topo.dp()));
  for (DpGroupStats& gs : group_stats_) gs.free_blocks = gs.total_blocks = cache.num_blocks();
  QWEN3MOE_CHECK(options.max_batch > 0, "max_batch must be positive, got ", options.max_batch);
  QWEN3MOE_CHECK(options.max_queue >= 0, "max_queue must be >= 0, got ", options.max_queue);
  QWEN3MOE_CHECK(options.prefill_budget > 0, "prefill_budget must be positive, got ",
                 options.prefill_budget);
}

Engine::~Engine() = default;

void Engine::validate(const GenerationRequest& r) const {
  const ModelConfig& c = model_.config();
  QWEN3MOE_CHECK(!r.prompt.empty(), "prompt: the prompt is empty");
  for (size_t i = 0; i < r.prompt.size(); ++i)
    QWEN3MOE_CHECK(r.prompt[i] >= 0 && r.prompt[i] < c.vocab_size, "token_ids: id ", r.prompt[i],
                   " at index ", i, " is outside the vocabulary [0, ", c.vocab_size, ")");
  QWEN3MOE_CHECK(r.max_new_tokens > 0, "max_new_tokens must be positive, got ", r.max_new_tokens);
  const int64_t total = int64_t(r.prompt.size()) + r.max_new_tokens;
  QWEN3MOE_CHECK(total <= c.max_position_embeddings, "max_new_tokens: prompt of ", r.prompt.size(),
                 " tokens + max_new_tokens ", r.max_new_tokens, " exceeds the context of ",
                 c.max_position_embeddings);
  qwen3moe::validate(r.sampling);
  QWEN3MOE_CHECK(r.logprobs >= -1 && r.logprobs <= kMaxTopLogprobs, "top_logprobs must be in [0, ",
                 kMaxTopLogprobs, "], got ", r.logprobs);
  QWEN3MOE_CHECK(int32_t(r.stop.size()) <= options_.max_stop_strings, "stop: ", r.stop.size(),
                 " stop strings, at most ", options_.max_stop_strings);
  for (const std::string& s : r.stop) {
    QWEN3MOE_CHECK(!s.empty() && int32_t(s.size()) <= options_.max_stop_length,
                   "stop: stop string of ", s.size(), " bytes, must be 1..",
                   options_.max_stop_length);
  }
  QWEN3MOE_CHECK(r.stop.empty() || tokenizer_, "stop: stop strings need a tokenizer");
  QWEN3MOE_CHECK(int32_t(r.stop_token_ids.size()) <= options_.max_stop_token_ids,
                 "stop_token_ids: ", r.stop_token_ids.size(), " ids, at most ",
                 options_.max_stop_token_ids);
  for (size_t i = 0; i < r.stop_token_ids.size(); ++i)
    QWEN3MOE_CHECK(r.stop_token_ids[i] >= 0 && r.stop_token_ids[i] < c.vocab_size,
                   "stop_token_ids[", i, "] = ", r.stop_token_ids[i],
                   " is outside the vocabulary [0, ", c.vocab_size, ")");
  const int64_t need = blocks_for(total, cache_.block_size());
  QWEN3MOE_CHECK(need <= cache_.num_blocks(), "max_new_tokens: the request needs ", need,
                 " KV blocks, the cache has ", cache_.num_blocks());
}

uint64_t Engine::submit(GenerationRequest request, EventSink sink) {
  validate(request);
  auto s = std::make_unique<Sequence>();
  s->req = std::move(request);
  s->sink = std::move(sink);
  s->blocks_needed =
      blocks_for(int64_t(s->req.prompt.size()) + s->req.max_new_tokens, cache_.block_size());
  s->sampler.emplace(s->req.sampling);
  s->sampler->set_prompt(s->req.prompt);
  if (tokenizer_) s->decoder.emplace(*tokenizer_);
  std::lock_guard<std::mutex> lock(mu_);
  QWEN3MOE_CHECK(!stopping_, "the server is shutting down");
  if (int32_t(queue_.size()) >= options_.max_queue)
    throw QueueFull("the queue is full (" + std::to_string(queue_.size()) + " requests waiting)");
  s->handle = next_handle_++;
  const uint64_t handle = s->handle;
  // Work after an idle spell: the stall clock starts now, not at the last step before it.
  if (queue_.empty() && running_count_ == 0) work_since_ = Clock::now();
  queue_.push_back(std::move(s));
  wake_.notify_one();
  return handle;
}

void Engine::cancel(uint64_t handle) {
  std::lock_guard<std::mutex> lock(mu_);
  cancelled_.push_back(handle);
  wake_.notify_one();
}

void Engine::shutdown() {
  std::lock_guard<std::mutex> lock(mu_);
  stopping_ = true;
  wake_.notify_one();
}

bool Engine::idle() const {
  std::lock_guard<std::mutex> lock(mu_);
  return queue_.empty() && running_count_ == 0;
}

EngineMetrics Engine::metrics() const {
  std::lock_guard<std::mutex> lock(mu_);
  EngineMetrics m = metrics_;
  m.prefix_query_tokens = prefix_query_tokens_;
  m.prefix_hit_tokens = prefix_hit_tokens_;
  return m;
}

EngineStats Engine::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  EngineStats st;
  st.running = running_count_;
  st.queued = int32_t(queue_.size());
  st.groups = group_stats_;
  for (const DpGroupStats& gs : group_stats_) {  // the engine's blocks: its groups' sums
    st.free_blocks += gs.free_blocks;
    st.total_blocks += gs.total_blocks;
    st.cached_blocks += gs.cached_blocks;
  }
  st.tokens_generated = tokens_generated_;
  st.requests_finished = requests_finished_;
  st.steps = steps_;
  st.prefix_query_tokens = prefix_query_tokens_;
  st.prefix_hit_tokens = prefix_hit_tokens_;
  st.evictable_blocks = evictable_blocks_;
  if (recent_tokens_.size() >= 2) {
    const double secs =
        std::chrono::duration<double>(recent_tokens_.back().first - recent_tokens_.front().first)
            .count();
    int64_t n = 0;
    for (size_t i = 1; i < recent_tokens_.size(); ++i) n += recent_tokens_[i].second;
    st.tokens_per_second = secs > 0 ? double(n) / secs : 0;
  }
  st.ttft_p50_ms = percentile(ttft_ms_, 0.5);
  st.ttft_p90_ms = percentile(ttft_ms_, 0.9);
  st.ttft_p99_ms = percentile(ttft_ms_, 0.99);
  st.e2e_p50_ms = percentile(e2e_ms_, 0.5);
  st.e2e_p90_ms = percentile(e2e_ms_, 0.9);
  st.e2e_p99_ms = percentile(e2e_ms_, 0.99);
  const bool has_work = !queue_.empty() || running_count_ > 0;
  st.seconds_since_step =
      has_work
          ? std::chrono::duration<double>(Clock::now() - std::max(last_step_, work_since_)).count()
          : 0.0;
  return st;
}

void Engine::finish(Sequence& s, const std::string& reason, const std::string& error,
                    bool flush_decoder) {
  if (s.done) return;
  s.done = true;
  GenerationEvent ev;
  ev.token_ids = std::move(s.ids_out);
  s.ids_out.clear();
  ev.logprobs = std::move(s.logprobs_out);
  s.logprobs_out.clear();
  // Text held back for a possible stop string is text after all; bytes still in the decoder
  // too, unless a stop string cut the text before them.
  ev.text = std::move(s.held);
  if (flush_decoder && s.decoder) ev.text += s.decoder->finish();
  s.held.clear();
  ev.finish_reason = reason;
  ev.error = error;
  ev.prompt_tokens = int32_t(s.req.prompt.size());
  ev.completion_tokens = s.generated;
  if (s.kv) s.kv->release();
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++requests_finished_;
    if (s.group >= 0) ++group_stats_[size_t(s.group)].requests_finished;
    const double e2e = std::chrono::duration<double>(Clock::now() - s.submitted).count();
    keep_last(e2e_ms_, e2e * 1e3, 1000);
    metrics_.e2e.observe(e2e);
    ++metrics_.finished[reason];
  }
  if (s.sink) s.sink(ev);
}

void Engine::emit_token(Sequence& s, int32_t token) {
  ++s.generated;
  s.last_token = token;
  s.ids_out.push_back(token);
  const Clock::time_point now = Clock::now();
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++metrics_.generation_tokens;
    if (s.generated == 1) {
      s.first_token = now;
      const double ttft = std::chrono::duration<double>(now - s.submitted).count();
      keep_last(ttft_ms_, ttft * 1e3, 1000);
      metrics_.ttft.observe(ttft);
      metrics_.prompt_tokens += int64_t(s.req.prompt.size());
    } else {
      metrics_.itl.observe(std::chrono::duration<double>(now - s.last_token_at).count());
    }
  }
  s.last_token_at = now;
  const ModelConfig& c = model_.config();
  const auto& extra = s.req.stop_token_ids;
  const bool eos =
      std::find(c.eos_token_ids.begin(), c.eos_token_ids.end(), token) != c.eos_token_ids.end() ||
      std::find(extra.begin(), extra.end(), token) != extra.end();
  if (eos && !s.req.ignore_eos) return finish(s, "stop");
  if (s.decoder) s.held += s.decoder->push(token);
  // A stop string ends the text exactly before it, also when it spans tokens.
  size_t cut = std::string::npos;
  for (const std::string& stop : s.req.stop) cut = std::min(cut, s.held.find(stop));
  if (cut != std::string::npos) {
    s.held.resize(cut);
    return finish(s, "stop", "", /*flush_decoder=*/false);
  }
  const int64_t pos = int64_t(s.req.prompt.size()) + s.generated;
  if (s.generated >= s.req.max_new_tokens || pos >= c.max_position_embeddings)
    return finish(s, "length");
  const size_t hold = stop_prefix_suffix(s.held, s.req.stop);
  GenerationEvent ev;
  ev.token_ids = std::move(s.ids_out);
  s.ids_out.clear();
  ev.logprobs = std::move(s.logprobs_out);
  s.logprobs_out.clear();
  ev.text = s.held.substr(0, s.held.size() - hold);
  s.held.erase(0, s.held.size() - hold);
  if (s.sink) s.sink(ev);
}

void Engine::pad_to_graph_shape(StepBatch& b) const {
  const int64_t T = int64_t(b.tokens.size()), S = T;  // one token per sequence
  const int64_t B = graph_batch_bucket(T, options_.max_batch);
  const int width = graph_table_width(b.max_blocks_per_seq), old_width = b.max_blocks_per_seq;
  // The tables re-laid at the padded width, plus one all-zero row the padding tokens share:
  // each attends to one key (position 0, in block 0) and keeps nothing (kPaddingSlot).
  std::vector<int32_t> tables(size_t((S + 1) * width), 0);
  for (int64_t s = 0; s < S; ++s)
    std::copy_n(b.block_tables.begin() + s * old_width, old_width, tables.begin() + s * width);
  b.block_tables = std::move(tables);
  b.max_blocks_per_seq = width;
  b.replayable = true;
  for (int64_t t = T; t < B; ++t) {
    b.tokens.push_back(0);
    b.positions.push_back(0);
    b.token_seq.push_back(int32_t(S));
    b.slots.push_back(kPaddingSlot);
    b.logit_rows.push_back(int32_t(t));  // every row, so the logit count is the bucket too
  }
}

void Engine::broadcast_plan(const std::vector<StepBatch>& plans, bool stop) {
  if (comm_.size() == 1) return;
  comm_.set_phase(-1, "step plan");
  // [stop, the step's number, then per DP group: tokens, table entries, blocks per sequence,
  // logit rows, whether the step has a graph shape]
  const size_t dp = size_t(model_.topology().dp());
  std::vector<int64_t> header(2 + 5 * dp, 0);
  header[0] = stop ? 1 : 0;
  header[1] = steps_;
  for (size_t g = 0; g < plans.size() && g < dp; ++g) {
    const StepBatch& b = plans[g];
    int64_t* h = header.data() + 2 + 5 * g;
    h[0] = int64_t(b.tokens.size());
    h[1] = int64_t(b.block_tables.size());
    h[2] = b.max_blocks_per_seq;
    h[3] = int64_t(b.logit_rows.size());
    h[4] = b.replayable ? 1 : 0;
  }
  comm_.broadcast(header.data(), header.size() * sizeof(int64_t), 0);
  if (stop) return;
  // The payload: each group's vectors in turn; at dp > 1 each rank gets only its group's.
  std::vector<int32_t> payload;
  std::vector<size_t> begin(dp + 1, 0);  // [dp + 1] each group's first element
  for (size_t g = 0; g < dp; ++g) {
    begin[g] = payload.size();
    if (g < plans.size())
      for (const auto* v : {&plans[g].tokens, &plans[g].positions, &plans[g].token_seq,
                            &plans[g].slots, &plans[g].block_tables, &plans[g].logit_rows})
        payload.insert(payload.end(), v->begin(), v->end());
  }
  begin[dp] = payload.size();
  if (payload.empty()) return;  // a keep-alive: the followers expect no payload
  if (dp == 1) {
    comm_.broadcast(payload.data(), payload.size() * sizeof(int32_t), 0);
    return;
  }
  // Rank 0 runs plans[0] itself; every other rank receives its group's part (the parts a
  // group's ranks are sent are one region of the send buffer, read by each).
  const int W = comm_.size(), tp = model_.topology().tp();
  std::vector<size_t> send_bytes(size_t(W), 0), send_offsets(size_t(W), 0), none(size_t(W), 0);
  for (int r = 1; r < W; ++r) {
    const size_t g = size_t(r / tp);
    send_offsets[size_t(r)] = begin[g] * sizeof(int32_t);
    send_bytes[size_t(r)] = (begin[g + 1] - begin[g]) * sizeof(int32_t);
  }
  comm_.all_to_all_v(payload.data(), send_bytes.data(), send_offsets.data(), nullptr, none.data(),
                     none.data());
}

void Engine::gather_group_logits(const std::vector<int64_t>& logit_rows,
                                 std::vector<std::vector<float>>* group_logits) {
  const Topology& topo = model_.topology();
  const int dp = topo.dp(), tp = topo.tp(), W = comm_.size();
  const size_t V = size_t(model_.config().vocab_size);
  int64_t others = 0;
  for (int g = 1; g < dp; ++g) others += logit_rows[size_t(g)];
  if (others == 0) return;
  // Checked on every rank alike (the counts come from the plan), so none enters the exchange
  // alone: MPI counts and offsets are ints.
  QWEN3MOE_CHECK(double(others) * double(V) * sizeof(float) <= double(INT_MAX),
                 "the other DP groups' logits (", others, " rows x ", V,
                 " f32) exceed one exchange's 2 GiB; lower --max-batch");
  // Only the first rank of each group g > 0 sends, and only rank 0 receives.
  std::vector<size_t> send_bytes(size_t(W), 0), send_offsets(size_t(W), 0);
  std::vector<size_t> recv_bytes(size_t(W), 0), recv_offsets(size_t(W), 0);
  const int me = comm_.rank();
  if (me != 0 && topo.tp_rank() == 0) send_bytes[0] = logits_.size() * sizeof(float);
  std::vector<float> recv;
  if (me == 0) {
    size_t at = 0;
    for (int g = 1; g < dp; ++g) {
      recv_offsets[size_t(g * tp)] = at;
      recv_bytes[size_t(g * tp)] = size_t(logit_rows[size_t(g)]) * V * sizeof(float);
      at += recv_bytes[size_t(g * tp)];
    }
    recv.resize(at / sizeof(float));
  }
  comm_.set_phase(-1, "group logits");
  comm_.all_to_all_v(logits_.data(), send_bytes.data(), send_offsets.data(), recv.data(),
                     recv_bytes.data(), recv_offsets.data());
  if (me != 0) return;
  group_logits->assign(size_t(dp), {});  // [dp]; group 0's stay in logits_
  for (int g = 1; g < dp; ++g) {
    const float* from = recv.data() + recv_offsets[size_t(g * tp)] / sizeof(float);
    (*group_logits)[size_t(g)].assign(from, from + recv_bytes[size_t(g * tp)] / sizeof(float));
  }
}

void Engine::follow() {
  QWEN3MOE_CHECK(comm_.rank() != 0, "follow() runs on ranks other than 0");
  const Topology& topo = model_.topology();
  const size_t dp = size_t(topo.dp()), mine = size_t(topo.dp_rank());
  std::vector<int64_t> header(2 + 5 * dp);
  for (;;) {
    comm_.set_phase(-1, "step plan");
    comm_.broadcast(header.data(), header.size() * sizeof(int64_t), 0);
    if (header[0]) return;
    // Every group's sizes (the MoE exchange needs them all); the payload is this rank's group's.
    size_t total = 0;
    std::vector<int32_t> group_tokens(dp), logit_rows_of(dp);
    for (size_t g = 0; g < dp; ++g) {
      const int64_t* h = header.data() + 2 + 5 * g;
      total += size_t(4 * h[0] + h[1] + h[3]);
      group_tokens[g] = int32_t(h[0]);
      logit_rows_of[g] = int32_t(h[3]);
    }
    if (total == 0) continue;  // a keep-alive from an idle scheduler
    const int64_t* h = header.data() + 2 + 5 * mine;
    const size_t T = size_t(h[0]), tables = size_t(h[1]), L = size_t(h[3]);
    std::vector<int32_t> payload(4 * T + tables + L);
    if (dp == 1) {
      comm_.broadcast(payload.data(), payload.size() * sizeof(int32_t), 0);
    } else {
      // Only this rank's group's plan, from rank 0.
      std::vector<size_t> recv_bytes(size_t(comm_.size()), 0), zeros(size_t(comm_.size()), 0);
      recv_bytes[0] = payload.size() * sizeof(int32_t);
      comm_.all_to_all_v(nullptr, zeros.data(), zeros.data(), payload.data(), recv_bytes.data(),
                         zeros.data());
    }
    StepBatch b;
    size_t at = 0;
    auto take = [&](std::vector<int32_t>& v, size_t n) {
      v.assign(payload.begin() + int64_t(at), payload.begin() + int64_t(at + n));
      at += n;
    };
    take(b.tokens, T);
    take(b.positions, T);
    take(b.token_seq, T);
    take(b.slots, T);
    take(b.block_tables, tables);
    take(b.logit_rows, L);
    b.max_blocks_per_seq = int(h[2]);
    b.replayable = h[4] != 0;
    if (dp > 1) b.group_tokens = group_tokens;
    model_.set_step(header[1]);
    model_.forward(b, cache_, logits_);
    if (dp > 1) {
      std::vector<int64_t> rows(logit_rows_of.begin(), logit_rows_of.end());
      gather_group_logits(rows, nullptr);
    }
  }
}

int Engine::choose_group(const std::vector<int64_t>& committed) const {
  int best = -1;
  int64_t best_free = 0;
  size_t best_running = 0;
  for (size_t g = 0; g < groups_.size(); ++g) {
    const Group& grp = *groups_[g];
    const size_t running =
        size_t(std::count_if(grp.running.begin(), grp.running.end(),
                             [](const std::unique_ptr<Sequence>& s) { return !s->done; }));
    if (int32_t(grp.running.size()) >= options_.max_batch) continue;
    const int64_t free = grp.cache->free_blocks() - committed[g];
    if (best < 0 || free > best_free || (free == best_free && running < best_running)) {
      best = int(g);
      best_free = free;
      best_running = running;
    }
  }
  return best;
}

StepBatch Engine::build_batch(Group& g, std::vector<Sequence*>& sampled) {
  // Every decoding sequence's next token, then prompt chunks up to the budget. Only padded
  // decode steps repeat their shapes; the rest run eagerly, not as one graph each.
  StepBatch b;
  b.replayable = false;
  std::vector<Sequence*> in_batch;
  int64_t budget = options_.prefill_budget;
  for (auto& sp : g.running) {
    Sequence& s = *sp;
    if (s.done) continue;
    const int64_t P = int64_t(s.req.prompt.size());
    const int32_t seq = int32_t(in_batch.size());
    if (s.prefilled < P) {
      const int64_t n = std::min(budget, P - s.prefilled);
      if (n == 0) continue;
      for (int64_t i = 0; i < n; ++i) {
        b.tokens.push_back(s.req.prompt[size_t(s.prefilled + i)]);
        b.positions.push_back(int32_t(s.prefilled + i));
        b.token_seq.push_back(seq);
      }
      s.kv->append(n, b.slots, s.req.prompt.data() + s.prefilled);
      s.prefilled += n;
      budget -= n;
      if (s.prefilled == P) {
        b.logit_rows.push_back(int32_t(b.tokens.size() - 1));
        sampled.push_back(&s);
      }
    } else {
      b.tokens.push_back(s.last_token);
      b.positions.push_back(int32_t(P + s.generated - 1));
      b.token_seq.push_back(seq);
      s.kv->append(1, b.slots, &s.last_token);
      b.logit_rows.push_back(int32_t(b.tokens.size() - 1));
      sampled.push_back(&s);
    }
    in_batch.push_back(&s);
  }
  if (b.tokens.empty()) return b;
  int max_blocks = 0;
  for (Sequence* s : in_batch) max_blocks = std::max(max_blocks, int(s->kv->blocks().size()));
  b.max_blocks_per_seq = max_blocks;
  b.block_tables.assign(in_batch.size() * size_t(max_blocks), 0);
  for (size_t i = 0; i < in_batch.size(); ++i) {
    const auto& blocks = in_batch[i]->kv->blocks();
    std::copy(blocks.begin(), blocks.end(),
              b.block_tables.begin() + int64_t(i * size_t(max_blocks)));
  }
  // A decode step (one token and one logit row per sequence) in a graph's shape.
  if (options_.graph_padding && b.tokens.size() == in_batch.size() &&
      b.logit_rows.size() == b.tokens.size())
    pad_to_graph_shape(b);
  return b;
}

bool Engine::step() {
  QWEN3MOE_CHECK(comm_.rank() == 0, "the scheduler runs on rank 0");
  std::vector<uint64_t> cancelled;
  bool stopping;
  {
    std::lock_guard<std::mutex> lock(mu_);
    cancelled.swap(cancelled_);
    stopping = stopping_;
  }
  const auto now = Clock::now();
  auto ended = [&](const Sequence& s) -> const char* {
    if (stopping || std::find(cancelled.begin(), cancelled.end(), s.handle) != cancelled.end())
      return "cancelled";
    if (now >= s.req.deadline) return "deadline";
    return nullptr;
  };
  // Queued requests that were cancelled or expired never run.
  std::vector<std::unique_ptr<Sequence>> dropped;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto it = queue_.begin(); it != queue_.end();) {
      if (ended(**it)) {
        dropped.push_back(std::move(*it));
        it = queue_.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (auto& s : dropped) finish(*s, ended(*s));
  for (auto& g : groups_)
    for (auto& s : g->running)
      if (const char* why = ended(*s)) finish(*s, why);

  // Admission: FIFO, each request to the group with the most free blocks after what its
  // running sequences may still take, while some group's batch has room and the chosen
  // group's free blocks cover the whole request.
  std::vector<int64_t> committed(groups_.size(), 0);
  for (size_t g = 0; g < groups_.size(); ++g)
    for (const auto& s : groups_[g]->running)
      if (!s->done) committed[g] += s->blocks_needed - int64_t(s->kv->blocks().size());
  {
    std::lock_guard<std::mutex> lock(mu_);
    while (!stopping && !queue_.empty()) {
      const int g = choose_group(committed);
      if (g < 0) break;
      Group& grp = *groups_[size_t(g)];
      Sequence& next = *queue_.front();
      // The cached blocks of the prompt's prefix first (prefix caching): they need no new
      // block and no prefill; the rest must fit what is free.
      auto kv = std::make_unique<SequenceKv>(*grp.cache);
      const int64_t reused = kv->adopt_prefix(next.req.prompt);
      const int64_t need = next.blocks_needed - int64_t(kv->blocks().size());
      if (grp.cache->free_blocks() - committed[size_t(g)] < need) {
        kv->release();
        break;
      }
      committed[size_t(g)] += need;
      next.kv = std::move(kv);
      next.prefilled = reused;
      next.group = g;
      prefix_query_tokens_ += int64_t(next.req.prompt.size());
      prefix_hit_tokens_ += reused;
      grp.running.push_back(std::move(queue_.front()));
      queue_.pop_front();
    }
    // Admitted work counts as running before its step: a step that hangs must show it.
    running_count_ = 0;
    for (size_t g = 0; g < groups_.size(); ++g) {
      const auto& run = groups_[g]->running;
      group_stats_[g].running = int32_t(std::count_if(
          run.begin(), run.end(), [](const std::unique_ptr<Sequence>& q) { return !q->done; }));
      running_count_ += group_stats_[g].running;
    }
  }

  // Every group's batch; the step runs when any has work.
  const size_t dp = groups_.size();
  std::vector<StepBatch> plans(dp);
  std::vector<std::vector<Sequence*>> sampled(dp);  // per group, in logit-row order
  bool worked = false;
  for (size_t g = 0; g < dp; ++g) {
    plans[g] = build_batch(*groups_[g], sampled[g]);
    worked |= !plans[g].tokens.empty();
  }
  int64_t sampled_count = 0;
  if (worked) {
    std::vector<int64_t> logit_rows(dp);
    if (dp > 1) {
      std::vector<int32_t> group_tokens(dp);
      for (size_t g = 0; g < dp; ++g) group_tokens[g] = int32_t(plans[g].tokens.size());
      for (size_t g = 0; g < dp; ++g) plans[g].group_tokens = group_tokens;
    }
    for (size_t g = 0; g < dp; ++g) logit_rows[g] = int64_t(plans[g].logit_rows.size());
    debug_stall_if_asked(comm_.rank(), steps_);
    broadcast_plan(plans, false);
    comm_.set_step(steps_);
    model_.set_step(steps_);
    model_.forward(plans[0], cache_, logits_);  // rank 0 is in group 0
    std::vector<std::vector<float>> group_logits(dp);
    if (dp > 1) gather_group_logits(logit_rows, &group_logits);
    const int64_t V = model_.config().vocab_size;
    for (size_t g = 0; g < dp; ++g) {
      const std::vector<float>& logits = g == 0 ? logits_ : group_logits[g];
      for (size_t r = 0; r < sampled[g].size(); ++r) {
        Sequence& s = *sampled[g][r];
        const float* row = logits.data() + int64_t(r) * V;
        const int32_t token = s.sampler->sample(row, V);
        if (s.req.logprobs >= 0)
          s.logprobs_out.push_back(token_logprobs(row, V, token, s.req.logprobs));
        emit_token(s, token);
      }
      sampled_count += int64_t(sampled[g].size());
    }
  }

  // Finished sequences leave the batch; their blocks went back in finish().
  for (auto& g : groups_)
    g->running.erase(std::remove_if(g->running.begin(), g->running.end(),
                                    [](const std::unique_ptr<Sequence>& s) { return s->done; }),
                     g->running.end());
  {
    std::lock_guard<std::mutex> lock(mu_);
    running_count_ = 0;
    evictable_blocks_ = 0;
    for (size_t g = 0; g < dp; ++g) {
      const Group& grp = *groups_[g];
      DpGroupStats& gs = group_stats_[g];
      gs.running = int32_t(grp.running.size());
      gs.free_blocks = grp.cache->free_blocks();
      gs.cached_blocks = grp.cache->cached_blocks();
      gs.tokens_generated += int64_t(sampled[g].size());
      running_count_ += gs.running;
      evictable_blocks_ += grp.cache->evictable_blocks();
    }
    if (worked) {
      ++steps_;
      last_step_ = Clock::now();
      tokens_generated_ += sampled_count;
      recent_tokens_.emplace_back(last_step_, sampled_count);
      while (!recent_tokens_.empty() &&
             last_step_ - recent_tokens_.front().first > std::chrono::seconds(10))
        recent_tokens_.pop_front();
    }
  }
  return worked || !dropped.empty();
}

void Engine::fail_all(const std::string& error) {
  std::deque<std::unique_ptr<Sequence>> queued;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;  // submit() refuses from now on
    queued.swap(queue_);
  }
  for (auto& s : queued) finish(*s, "error", error);
  for (auto& g : groups_) {
    for (auto& s : g->running) finish(*s, "error", error);
    g->running.clear();
  }
  std::lock_guard<std::mutex> lock(mu_);
  running_count_ = 0;
  for (DpGroupStats& gs : group_stats_) gs.running = 0;
}

void Engine::serve() {
  try {
    serve_steps();
  } catch (const std::exception& e) {
    // A failed step (a collective that timed out, a rank gone): every waiting client gets its
    // last message now instead of waiting for a step that never comes.
    fail_all(e.what());
    throw;
  }
}

void Engine::serve_steps() {
  // While idle, followers wait inside a broadcast for the next plan; an empty plan every
  // second keeps that wait short, so the collective watchdog only sees real hangs.
  auto last_plan = Clock::now();
  for (;;) {
    const bool worked = step();
    if (worked) {
      last_plan = Clock::now();
    } else if (comm_.size() > 1 && Clock::now() - last_plan > std::chrono::seconds(1)) {
      broadcast_plan({}, false);
      last_plan = Clock::now();
    }
    bool stop_now = false;
    {
      std::unique_lock<std::mutex> lock(mu_);
      if (stopping_ && queue_.empty() && running_count_ == 0)
        stop_now = true;
      else if (!worked && cancelled_.empty() && !stopping_)
        wake_.wait_for(lock, std::chrono::milliseconds(20));
    }
    if (stop_now) break;
  }
  broadcast_plan({}, true);
}

}  // namespace qwen3moe
