// The serving engine on one rank: continuous batching must not change any sequence's tokens
// (each equals the same request run alone), chunked prefill, admission by free blocks, cancel,
// deadlines, the queue limit, validation, stop strings, and no leaked KV blocks after thousands
// of random join / cancel / finish events.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <random>

#include "core/engine/engine.h"
#include "core/engine/generate.h"
#include "core/engine/graph_buckets.h"
#include "kernels/common/check.h"
#include "model_fixture.h"

namespace qwen3moe {
namespace {

using testing::fixture;
using testing::LoadedModel;

struct Collected {
  std::vector<int32_t> ids;
  std::string text, finish;
  int32_t completion = 0;
  int messages = 0;
};

// Drives the engine on this thread until every request finished.
void run_to_completion(Engine& e, const std::map<uint64_t, Collected>& c, int max_steps = 100000) {
  for (int i = 0; i < max_steps; ++i) {
    bool all = true;
    for (const auto& [h, col] : c) all &= !col.finish.empty();
    if (all) return;
    e.step();
  }
  FAIL() << "requests did not finish";
}

EventSink collect(Collected& c) {
  return [&c](const GenerationEvent& ev) {
    c.ids.insert(c.ids.end(), ev.token_ids.begin(), ev.token_ids.end());
    c.text += ev.text;
    ++c.messages;
    if (!ev.finish_reason.empty()) {
      EXPECT_TRUE(c.finish.empty()) << "a second final message";
      c.finish = ev.finish_reason;
      c.completion = ev.completion_tokens;
    }
  };
}

std::vector<int32_t> solo_greedy(const std::vector<int32_t>& prompt, int32_t n) {
  LoadedModel m(fixture("hf-tiny/moe_a"));
  GenerationOptions o;
  o.max_new_tokens = n;
  o.sampling.temperature = 0;
  o.ignore_eos = true;
  return generate(m.model, *m.comm, m.cache, prompt, o).output_ids;
}

GenerationRequest greedy(std::vector<int32_t> prompt, int32_t n) {
  GenerationRequest r;
  r.prompt = std::move(prompt);
  r.max_new_tokens = n;
  r.sampling.temperature = 0;
  r.ignore_eos = true;
  return r;
}

TEST(Engine, BatchedRequestsEqualEachRunAlone) {
  LoadedModel m(fixture("hf-tiny/moe_a"));
  EngineOptions o;
  o.max_batch = 3;       // fewer slots than requests: some wait in the queue
  o.prefill_budget = 7;  // prompts longer than the budget prefill over several steps
  Engine e(m.model, m.cache, *m.comm, nullptr, o);
  std::vector<std::vector<int32_t>> prompts;
  for (int r = 0; r < 8; ++r) {
    std::vector<int32_t> p;
    for (int i = 0; i < 3 + 5 * r; ++i) p.push_back(int32_t((r * 131 + i * 17 + 3) % 512));
    prompts.push_back(p);
  }
  std::map<uint64_t, Collected> out;
  for (int r = 0; r < 8; ++r)
    e.submit(greedy(prompts[size_t(r)], 6 + r), collect(out[uint64_t(r)]));
  run_to_completion(e, out);
  for (int r = 0; r < 8; ++r) {
    const Collected& c = out[uint64_t(r)];
    EXPECT_EQ(c.finish, "length") << "request " << r;
    EXPECT_EQ(c.ids, solo_greedy(prompts[size_t(r)], 6 + r)) << "request " << r;
  }
  EXPECT_EQ(e.stats().requests_finished, 8);
}

// Graph padding: decode steps padded to batch buckets and power-of-two table widths change
// no sequence's tokens (padding tokens write no KV, their logits are dropped), and only they
// go through the graph cache, in at most 5 buckets (12, 8, 4, 2, 1) x 3 widths (1, 2, 4
// blocks); unpadded steps (and the prefill) never do.
TEST(Engine, GraphPaddingKeepsTokensInFewShapes) {
  std::vector<std::vector<int32_t>> prompts;
  for (int r = 0; r < 12; ++r) {
    std::vector<int32_t> p;
    for (int i = 0; i < 5; ++i) p.push_back(int32_t((r * 37 + i * 11 + 1) % 512));
    prompts.push_back(p);
  }
  size_t shapes[2] = {0, 0};
  for (const bool padding : {false, true}) {
    LoadedModel m(fixture("hf-tiny/moe_a"));
    m.model.set_graphs(true);  // on the CPU: the graph cache only counts the step shapes
    EngineOptions o;
    o.max_batch = 12;
    o.prefill_budget = 64;  // every prompt in the first step
    o.graph_padding = padding;
    Engine e(m.model, m.cache, *m.comm, nullptr, o);
    std::map<uint64_t, Collected> out;
    for (int r = 0; r < 12; ++r)
      e.submit(greedy(prompts[size_t(r)], 4 + 3 * r), collect(out[uint64_t(r)]));
    run_to_completion(e, out);
    for (int r = 0; r < 12; ++r) {
      EXPECT_EQ(out[uint64_t(r)].ids, solo_greedy(prompts[size_t(r)], 4 + 3 * r))
          << "request " << r << (padding ? " padded" : "");
    }
    EXPECT_EQ(m.cache.free_blocks(), m.cache.num_blocks());
    shapes[padding] = m.model.graph_shapes();
  }
  std::printf("graph shapes: %zu unpadded, %zu with graph padding\n", shapes[0], shapes[1]);
  EXPECT_EQ(shapes[0], 0u);  // one-off shapes run op by op, never as a graph each
  EXPECT_GE(shapes[1], 2u);
  EXPECT_LE(shapes[1], 5u * 3u);
}

TEST(Engine, GraphBucketsCoverEveryBatchOnce) {
  EXPECT_EQ(graph_batch_bucket(1, 64), 1);
  EXPECT_EQ(graph_batch_bucket(3, 64), 4);
  EXPECT_EQ(graph_batch_bucket(8, 64), 8);
  EXPECT_EQ(graph_batch_bucket(9, 64), 16);
  EXPECT_EQ(graph_batch_bucket(60, 64), 64);
  EXPECT_EQ(graph_batch_bucket(11, 12), 12);  // never past the largest batch
  EXPECT_EQ(graph_batch_bucket(3, 3), 3);
  EXPECT_THROW(graph_batch_bucket(0, 8), Error);
  EXPECT_THROW(graph_batch_bucket(9, 8), Error);
  EXPECT_EQ(graph_table_width(1), 1);
  EXPECT_EQ(graph_table_width(3), 4);
  EXPECT_EQ(graph_table_width(64), 64);
  for (int64_t t = 1; t <= 100; ++t) {
    const int64_t b = graph_batch_bucket(t, 100);
    EXPECT_GE(b, t);
    EXPECT_LE(b - t, 7) << t;  // at most 7 idle tokens a step
  }
}

TEST(Engine, CancelAndDeadlineFreeBlocks) {
  LoadedModel m(fixture("hf-tiny/moe_a"));
  Engine e(m.model, m.cache, *m.comm, nullptr, EngineOptions{});
  std::map<uint64_t, Collected> out;
  const uint64_t a = e.submit(greedy({1, 2, 3, 4}, 500), collect(out[0]));
  GenerationRequest late = greedy({5, 6, 7}, 50);
  late.deadline = std::chrono::steady_clock::now();
  e.submit(std::move(late), collect(out[1]));
  for (int i = 0; i < 5; ++i) e.step();
  EXPECT_LT(m.cache.free_blocks(), m.cache.num_blocks());
  e.cancel(a);
  run_to_completion(e, out);
  EXPECT_EQ(out[0].finish, "cancelled");
  EXPECT_GE(out[0].completion, 3);
  EXPECT_EQ(out[1].finish, "deadline");
  EXPECT_EQ(m.cache.free_blocks(), m.cache.num_blocks());
  EXPECT_EQ(e.stats().free_blocks, m.cache.num_blocks());
}

TEST(Engine, QueueLimitAndValidation) {
  LoadedModel m(fixture("hf-tiny/moe_a"));
  EngineOptions o;
  o.max_queue = 2;
  Engine e(m.model, m.cache, *m.comm, nullptr, o);
  e.submit(greedy({1}, 4), EventSink{});
  e.submit(greedy({1}, 4), EventSink{});
  EXPECT_THROW(e.submit(greedy({1}, 4), EventSink{}), QueueFull);
  auto message = [&](GenerationRequest r) {
    try {
      e.submit(std::move(r), EventSink{});
    } catch (const Error& err) {
      return std::string(err.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message(greedy({}, 4)).find("prompt"), std::string::npos);
  EXPECT_NE(message(greedy({1, 512}, 4)).find("512"), std::string::npos);
  EXPECT_NE(message(greedy({1}, 0)).find("max_new_tokens"), std::string::npos);
  EXPECT_NE(message(greedy({1}, 5000)).find("context"), std::string::npos);
  GenerationRequest bad = greedy({1}, 4);
  bad.sampling.top_p = 1.5f;
  EXPECT_NE(message(bad).find("top_p"), std::string::npos);
  bad = greedy({1}, 4);
  bad.stop = {"x"};
  EXPECT_NE(message(bad).find("stop"), std::string::npos);  // no tokenizer
}

// Thousands of random joins, cancels and finishes: every request ends exactly once and every
// block comes back.
TEST(Engine, NoBlockLeaksUnderRandomChurn) {
  LoadedModel m(fixture("hf-tiny/moe_a"));
  EngineOptions o;
  o.max_batch = 5;
  o.prefill_budget = 9;
  Engine e(m.model, m.cache, *m.comm, nullptr, o);
  std::mt19937 rng(7);
  std::map<uint64_t, Collected> out;
  std::vector<uint64_t> live;
  uint64_t key = 0;
  for (int event = 0; event < 2000; ++event) {
    const int what = int(rng() % 10);
    if (what < 4 && e.stats().queued < 32) {
      std::vector<int32_t> p(1 + rng() % 20);
      for (auto& t : p) t = int32_t(rng() % 512);
      GenerationRequest r = greedy(p, int32_t(1 + rng() % 12));
      if (rng() % 5 == 0) r.sampling.temperature = 0.9f;
      Collected& c = out[key++];
      live.push_back(e.submit(std::move(r), collect(c)));
    } else if (what == 4 && !live.empty()) {
      e.cancel(live[rng() % live.size()]);
    } else {
      e.step();
    }
  }
  run_to_completion(e, out);
  for (const auto& [k, c] : out) {
    EXPECT_TRUE(c.finish == "length" || c.finish == "cancelled") << c.finish;
    EXPECT_EQ(int64_t(c.ids.size()), c.completion);
  }
  EXPECT_TRUE(e.idle());
  EXPECT_EQ(m.cache.free_blocks(), m.cache.num_blocks());
}

// Stop strings end the text exactly before them, also across tokens (real tokenizer).
TEST(Engine, StopStringCutsTextExactly) {
  const char* dir = std::getenv("QWEN3MOE_TOKENIZER_DIR");
  if (!dir || !std::filesystem::exists(std::string(dir) + "/tokenizer.json"))
    GTEST_SKIP() << "QWEN3MOE_TOKENIZER_DIR not set (scripts/test.sh sets it)";
  const Tokenizer tok = Tokenizer::load(dir);
  LoadedModel m(fixture("hf-tiny/moe_a"));
  Engine e(m.model, m.cache, *m.comm, &tok, EngineOptions{});
  std::map<uint64_t, Collected> out;
  e.submit(greedy({1, 2, 3}, 24), collect(out[0]));
  run_to_completion(e, out);
  const std::string full = out[0].text;
  ASSERT_EQ(full, tok.decode(out[0].ids));
  ASSERT_GE(full.size(), 12u);
  // A stop string that starts inside one token's text and ends in a later one.
  const std::string stop = full.substr(5, 6);
  const size_t first = full.find(stop);
  GenerationRequest r = greedy({1, 2, 3}, 24);
  r.stop = {stop};
  e.submit(std::move(r), collect(out[1]));
  run_to_completion(e, out);
  EXPECT_EQ(out[1].finish, "stop");
  EXPECT_EQ(out[1].text, full.substr(0, first));
  EXPECT_EQ(m.cache.free_blocks(), m.cache.num_blocks());
}

}  // namespace
}  // namespace qwen3moe
