// Prefix caching (KvCache's published blocks, Engine::prefix_cache): a request whose prompt
// starts with blocks already computed adopts them and prefills only the rest, and every
// request's tokens equal those with the cache off, for identical prompts, prompts sharing part
// of a block, diverging inside a block, a request sharing a prefix still being prefilled,
// eviction under pressure, cancellation mid-prefill, and seeded sampling; thousands of random
// join / cancel / finish events over shared prefixes end with every block free and unheld.
#include <gtest/gtest.h>

#include <map>
#include <random>
#include <vector>

#include "core/engine/engine.h"
#include "model_fixture.h"

namespace qwen3moe {
namespace {

using testing::fixture;
using testing::LoadedModel;

struct Outcome {
  std::vector<int32_t> ids;
  std::string finish;
};

GenerationRequest request(std::vector<int32_t> prompt, int32_t n, float temperature = 0,
                          uint64_t seed = 0) {
  GenerationRequest r;
  r.prompt = std::move(prompt);
  r.max_new_tokens = n;
  r.sampling.temperature = temperature;
  r.sampling.seed = seed;
  r.ignore_eos = true;
  return r;
}

std::vector<int32_t> tokens(int64_t n, int salt) {
  std::vector<int32_t> p;
  for (int64_t i = 0; i < n; ++i) p.push_back(int32_t((salt * 97 + i * 31 + 5) % 512));
  return p;
}

std::vector<int32_t> concat(std::vector<int32_t> a, const std::vector<int32_t>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

// Runs `waves` of requests through one engine (each wave submitted after the previous one
// finished, so later waves can hit what earlier ones cached; `cancel` requests are cancelled
// after two steps) and returns every request's outcome, plus the engine's stats at the end.
struct RunResult {
  std::vector<Outcome> out;
  EngineStats stats;
};
RunResult run(bool prefix_cache, const std::vector<std::vector<GenerationRequest>>& waves,
              int64_t kv_blocks = 64, const std::vector<size_t>& cancel = {}) {
  LoadedModel m(fixture("hf-tiny/moe_a"));
  KvCache cache(m.config, m.topo, *m.backend, kv_blocks, 16);
  EngineOptions o;
  o.max_batch = 4;
  o.prefill_budget = 24;  // long prompts prefill over several steps
  o.prefix_cache = prefix_cache;
  Engine e(m.model, cache, *m.comm, nullptr, o);
  RunResult r;
  size_t index = 0;
  for (const auto& wave : waves) {
    std::vector<uint64_t> handles;
    for (const GenerationRequest& req : wave) {
      const size_t i = index++;
      r.out.emplace_back();
      handles.push_back(e.submit(req, [&r, i](const GenerationEvent& ev) {
        Outcome& got = r.out[i];
        got.ids.insert(got.ids.end(), ev.token_ids.begin(), ev.token_ids.end());
        if (!ev.finish_reason.empty()) got.finish = ev.finish_reason;
      }));
    }
    for (int step = 0; step < 5000 && !e.idle(); ++step) {
      if (step == 2)
        for (size_t c : cancel)
          if (c >= index - wave.size() && c < index) e.cancel(handles[c - (index - wave.size())]);
      e.step();
    }
    EXPECT_TRUE(e.idle());
  }
  r.stats = e.stats();
  EXPECT_EQ(cache.free_blocks(), cache.num_blocks()) << "a block is still held";
  return r;
}

void expect_same(const RunResult& off, const RunResult& on) {
  ASSERT_EQ(off.out.size(), on.out.size());
  for (size_t i = 0; i < off.out.size(); ++i) {
    EXPECT_EQ(on.out[i].ids, off.out[i].ids) << "request " << i;
    EXPECT_EQ(on.out[i].finish, off.out[i].finish) << "request " << i;
  }
}

TEST(PrefixCache, IdenticalAndPartlySharedPromptsKeepTheirTokens) {
  const std::vector<int32_t> shared = tokens(40, 1);  // two full blocks and 8 tokens
  std::vector<int32_t> diverged = shared;             // differs inside block 1, not at its start
  diverged[20] = (diverged[20] + 1) % 512;
  const std::vector<std::vector<GenerationRequest>> waves = {
      {request(shared, 6)},
      {request(diverged, 5)},                             // block 0 only
      {request(shared, 6),                                // identical: 2 blocks reused
       request(concat(shared, tokens(20, 2)), 5),         // diverges inside block 3
       request(concat(tokens(16, 1), tokens(30, 3)), 4),  // shares the first block only
       request(concat({7}, shared), 4)}};                 // shifted: nothing to reuse
  const RunResult off = run(false, waves), on = run(true, waves);
  expect_same(off, on);
  EXPECT_EQ(off.stats.prefix_hit_tokens, 0);
  // 16 for the diverged prompt, then 32 + 32 + 16 (whole blocks, never a prompt's last token).
  EXPECT_EQ(on.stats.prefix_hit_tokens, 16 + 32 + 32 + 16);
  EXPECT_GT(on.stats.cached_blocks, 0);
}

TEST(PrefixCache, WholePromptCachedStillComputesItsLastToken) {
  const std::vector<int32_t> p = tokens(48, 4);  // exactly three blocks
  const std::vector<std::vector<GenerationRequest>> waves = {{request(p, 3)}, {request(p, 3)}};
  const RunResult off = run(false, waves), on = run(true, waves);
  expect_same(off, on);
  EXPECT_EQ(on.stats.prefix_hit_tokens, 32);  // the third block holds the last prompt token
}

TEST(PrefixCache, GeneratedBlocksAreCachedToo) {
  // The second request's prompt is the first's prompt and output: its generated block hits.
  const std::vector<int32_t> p = tokens(10, 5);
  const RunResult first = run(false, {{request(p, 30)}});
  const std::vector<int32_t> continued = concat(p, first.out[0].ids);
  const std::vector<std::vector<GenerationRequest>> waves = {{request(p, 30)},
                                                             {request(continued, 4)}};
  const RunResult off = run(false, waves), on = run(true, waves);
  expect_same(off, on);
  EXPECT_EQ(on.stats.prefix_hit_tokens, 32);  // 40 tokens: two full blocks, the rest computed
}

TEST(PrefixCache, SharedPrefixStillBeingPrefilledIsComputedNotReused) {
  // Submitted together: the second cannot reuse blocks the first has not finished computing,
  // and both keep their tokens.
  const std::vector<int32_t> shared = tokens(64, 6);
  const std::vector<std::vector<GenerationRequest>> waves = {
      {request(concat(shared, tokens(3, 7)), 5), request(concat(shared, tokens(5, 8)), 5),
       request(shared, 5)}};
  expect_same(run(false, waves), run(true, waves));
}

// A request arriving while another is still prefilling their shared prefix adopts exactly the
// blocks already computed (the first one here), computes the rest, and keeps its tokens.
TEST(PrefixCache, ArrivalDuringASharedPrefillAdoptsOnlyComputedBlocks) {
  const std::vector<int32_t> shared = tokens(64, 9);
  const std::vector<int32_t> a = concat(shared, tokens(3, 1)), b = concat(shared, tokens(5, 2));
  std::vector<int32_t> ids[2][2];
  int64_t hits[2] = {0, 0};
  for (const bool on : {false, true}) {
    LoadedModel m(fixture("hf-tiny/moe_a"));
    KvCache cache(m.config, m.topo, *m.backend, 64, 16);
    EngineOptions o;
    o.max_batch = 4;
    o.prefill_budget = 24;  // one step: 24 of a's 67 tokens, block 0 full
    o.prefix_cache = on;
    Engine e(m.model, cache, *m.comm, nullptr, o);
    int done = 0;
    auto sink = [&](int r) {
      return [&, r](const GenerationEvent& ev) {
        ids[on][r].insert(ids[on][r].end(), ev.token_ids.begin(), ev.token_ids.end());
        done += !ev.finish_reason.empty();
      };
    };
    e.submit(request(a, 5), sink(0));
    e.step();  // a: 24 tokens, block 0 published
    e.submit(request(b, 5), sink(1));
    for (int i = 0; i < 1000 && done < 2; ++i) e.step();
    hits[on] = e.stats().prefix_hit_tokens;
    EXPECT_EQ(cache.free_blocks(), cache.num_blocks());
  }
  EXPECT_EQ(ids[1][0], ids[0][0]);
  EXPECT_EQ(ids[1][1], ids[0][1]);
  EXPECT_EQ(hits[0], 0);
  EXPECT_EQ(hits[1], 16);
}

// Released blocks go last first, so eviction takes a cached prompt's tail before its head and
// what is left stays reachable: 3 cached blocks, 2 evicted, the first still hits.
TEST(PrefixCache, EvictionKeepsAPromptsLeadingBlocks) {
  LoadedModel m(fixture("hf-tiny/moe_a"));
  KvCache cache(m.config, m.topo, *m.backend, 4, 16);
  cache.enable_prefix_cache(true);
  const std::vector<int32_t> p = tokens(49, 3);  // 3 full blocks + 1 token
  std::vector<int32_t> slots;
  {
    SequenceKv s(cache);
    s.append(49, slots, p.data());  // publishes blocks 0-2
  }
  EXPECT_EQ(cache.evictable_blocks(), 3);
  {
    SequenceKv other(cache);
    other.append(40, slots);  // 3 blocks: the free one and two evicted
  }
  SequenceKv again(cache);
  EXPECT_EQ(again.adopt_prefix(p), 16);
}

TEST(PrefixCache, EvictionUnderPressureAndCancellationMidPrefill) {
  // 12 blocks in all: later waves evict what earlier ones left cached (least recently used
  // first); a request cancelled while prefilling a shared prefix leaves the others' blocks.
  std::vector<std::vector<GenerationRequest>> waves;
  for (int w = 0; w < 6; ++w)
    waves.push_back({request(concat(tokens(32, 10 + w % 3), tokens(9, w)), 4),
                     request(concat(tokens(32, 10 + w % 3), tokens(4, 20 + w)), 3, 0.8f, 11)});
  const RunResult off = run(false, waves, 12, {1, 4}), on = run(true, waves, 12, {1, 4});
  expect_same(off, on);
  EXPECT_GT(on.stats.prefix_hit_tokens, 0);
}

TEST(PrefixCache, RandomChurnOverSharedPrefixesLeavesEveryBlockFree) {
  LoadedModel m(fixture("hf-tiny/moe_a"));
  KvCache cache(m.config, m.topo, *m.backend, 24, 16);
  EngineOptions o;
  o.max_batch = 5;
  o.prefill_budget = 13;
  o.prefix_cache = true;
  Engine e(m.model, cache, *m.comm, nullptr, o);
  std::mt19937 rng(17);
  std::vector<uint64_t> live;
  std::map<uint64_t, std::string> finish;
  for (int event = 0; event < 3000; ++event) {
    const int what = int(rng() % 10);
    if (what < 4 && e.stats().queued < 16) {
      // One of four shared prefixes (0 to 3 blocks and a bit), then own tokens.
      const std::vector<int32_t> prefix =
          tokens(int64_t(rng() % 4) * 16 + rng() % 5, int(rng() % 4));
      std::vector<int32_t> p = concat(prefix, tokens(1 + rng() % 12, int(rng() % 1000)));
      GenerationRequest r = request(p, int32_t(1 + rng() % 10), rng() % 3 ? 0.0f : 0.7f);
      const uint64_t h = e.submit(std::move(r), [&finish, event](const GenerationEvent& ev) {
        if (!ev.finish_reason.empty()) finish[uint64_t(event)] = ev.finish_reason;
      });
      live.push_back(h);
    } else if (what == 4 && !live.empty()) {
      e.cancel(live[rng() % live.size()]);
    } else {
      e.step();
    }
  }
  for (int i = 0; i < 10000 && !e.idle(); ++i) e.step();
  ASSERT_TRUE(e.idle());
  EXPECT_EQ(cache.free_blocks(), cache.num_blocks());
  EXPECT_EQ(cache.evictable_blocks(), cache.cached_blocks());  // cached, but nobody holds one
  EXPECT_GT(e.stats().prefix_hit_tokens, 0);
  for (const auto& [k, f] : finish) EXPECT_TRUE(f == "length" || f == "cancelled") << f;
}

}  // namespace
}  // namespace qwen3moe
