// Sampling: greedy is argmax, seeds reproduce, the draw follows Sampler::probabilities, and
// top-k / top-p / temperature shape that distribution exactly as specified.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <vector>

#include "core/engine/sampling.h"
#include "test_util.h"

namespace qwen3moe {
namespace {

using testing::all_close;

SamplingParams params(float temperature, float top_p = 1.0f, int32_t top_k = 0, uint64_t seed = 0) {
  SamplingParams p;
  p.temperature = temperature;
  p.top_p = top_p;
  p.top_k = top_k;
  p.seed = seed;
  return p;
}

// softmax(logits / T) over the ids in `keep` (all when empty), zero elsewhere, in double.
std::vector<double> softmax_over(const std::vector<float>& logits, double T,
                                 const std::vector<int32_t>& keep = {}) {
  std::vector<int32_t> ids = keep;
  if (ids.empty()) {
    ids.resize(logits.size());
    std::iota(ids.begin(), ids.end(), 0);
  }
  double mx = -INFINITY, sum = 0;
  for (int32_t i : ids) mx = std::max(mx, double(logits[size_t(i)]) / T);
  std::vector<double> p(logits.size(), 0.0);
  for (int32_t i : ids) sum += p[size_t(i)] = std::exp(double(logits[size_t(i)]) / T - mx);
  for (double& v : p) v /= sum;
  return p;
}

int nonzero(const std::vector<double>& p) {
  return int(std::count_if(p.begin(), p.end(), [](double v) { return v != 0.0; }));
}

TEST(Sampling, GreedyIsArgmax) {
  std::mt19937 rng(1);
  std::normal_distribution<float> d(0.0f, 3.0f);
  Sampler s(params(0.0f, 0.5f, 3, 99));  // top-k/top-p/seed do not matter when greedy
  for (int trial = 0; trial < 200; ++trial) {
    std::vector<float> logits(97);
    for (float& v : logits) v = d(rng);
    const int32_t want = int32_t(std::max_element(logits.begin(), logits.end()) - logits.begin());
    EXPECT_EQ(argmax(logits.data(), int64_t(logits.size())), want);
    EXPECT_EQ(s.sample(logits.data(), int64_t(logits.size())), want);
    const std::vector<double> p = s.probabilities(logits.data(), int64_t(logits.size()));
    EXPECT_EQ(p[size_t(want)], 1.0);
    EXPECT_EQ(nonzero(p), 1);
  }
  const std::vector<float> tie = {1.0f, 5.0f, 5.0f, -2.0f};
  EXPECT_EQ(argmax(tie.data(), 4), 1) << "ties go to the lower id";
}

// A flat-ish distribution over 10 tokens, so different seeds give visibly different draws.
const std::vector<float> kLogits = {0.1f, -0.3f, 0.7f, 0.0f, 0.2f, -0.5f, 0.4f, 0.3f, -0.1f, 0.6f};

std::vector<int32_t> draws(const SamplingParams& p, int n) {
  Sampler s(p);
  std::vector<int32_t> out;
  for (int i = 0; i < n; ++i) out.push_back(s.sample(kLogits.data(), int64_t(kLogits.size())));
  return out;
}

TEST(Sampling, SameSeedSameTokensDifferentSeedDifferentTokens) {
  const std::vector<int32_t> a = draws(params(1.0f, 1.0f, 0, 42), 2000);
  const std::vector<int32_t> b = draws(params(1.0f, 1.0f, 0, 42), 2000);
  const std::vector<int32_t> c = draws(params(1.0f, 1.0f, 0, 43), 2000);
  EXPECT_EQ(a, b);
  int differ = 0;
  for (size_t i = 0; i < a.size(); ++i) differ += a[i] != c[i];
  // Independent draws over ~10 near-equal tokens disagree about 90% of the time.
  EXPECT_GT(differ, 1500) << "seeds 42 and 43 agree on " << 2000 - differ << " of 2000 draws";
  // Also with top-k/top-p active (the sorted path).
  EXPECT_EQ(draws(params(0.8f, 0.9f, 6, 7), 500), draws(params(0.8f, 0.9f, 6, 7), 500));
  EXPECT_NE(draws(params(0.8f, 0.9f, 6, 7), 500), draws(params(0.8f, 0.9f, 6, 8), 500));
}

TEST(Sampling, RngIsUniformInUnitInterval) {
  Rng r(5);
  double sum = 0;
  const int n = 100000;
  for (int i = 0; i < n; ++i) {
    const double u = r.uniform();
    ASSERT_GE(u, 0.0);
    ASSERT_LT(u, 1.0);
    sum += u;
  }
  EXPECT_NEAR(sum / n, 0.5, 5 * std::sqrt(1.0 / 12 / n));
}

// 200k draws: each token's frequency within 5 sigma of the probability the sampler claims,
// and tokens it excluded never drawn.
void check_frequencies(const SamplingParams& p, const std::vector<float>& logits) {
  SCOPED_TRACE(::testing::Message()
               << "T=" << p.temperature << " top_p=" << p.top_p << " top_k=" << p.top_k);
  Sampler s(p);
  const std::vector<double> prob = s.probabilities(logits.data(), int64_t(logits.size()));
  EXPECT_NEAR(std::accumulate(prob.begin(), prob.end(), 0.0), 1.0, 1e-12);
  const int n = 200000;
  std::vector<int> count(logits.size(), 0);
  for (int i = 0; i < n; ++i) ++count[size_t(s.sample(logits.data(), int64_t(logits.size())))];
  for (size_t v = 0; v < logits.size(); ++v) {
    if (prob[v] == 0) {
      EXPECT_EQ(count[v], 0) << "token " << v << " is outside the kept set but was drawn";
      continue;
    }
    const double sigma = std::sqrt(prob[v] * (1 - prob[v]) / n);
    EXPECT_NEAR(double(count[v]) / n, prob[v], 5 * sigma + 1e-9) << "token " << v;
  }
}

TEST(Sampling, EmpiricalFrequenciesMatchProbabilities) {
  const std::vector<float> logits = {1.0f, 2.5f, 0.0f, -1.0f, 2.0f, 0.5f, 1.5f, -3.0f};
  check_frequencies(params(1.0f, 1.0f, 0, 1), logits);  // plain softmax path
  check_frequencies(params(0.7f, 0.9f, 5, 2), logits);  // temperature, top-k, top-p together
  check_frequencies(params(2.0f, 1.0f, 3, 3), logits);
}

TEST(Sampling, TopKKeepsExactlyKWithMassRenormalised) {
  std::mt19937 rng(3);
  std::normal_distribution<float> d(0.0f, 2.0f);
  std::vector<float> logits(50);
  for (float& v : logits) v = d(rng);
  std::vector<int32_t> order(logits.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(),
            [&](int32_t a, int32_t b) { return logits[a] > logits[b]; });
  for (int32_t k : {1, 3, 10, 50}) {
    Sampler s(params(1.0f, 1.0f, k));
    const std::vector<double> p = s.probabilities(logits.data(), int64_t(logits.size()));
    EXPECT_EQ(nonzero(p), k) << "top_k=" << k;
    const std::vector<int32_t> kept(order.begin(), order.begin() + k);
    EXPECT_TRUE(all_close(p, softmax_over(logits, 1.0, kept), 1e-12, 1e-12)) << "top_k=" << k;
  }
  // k above the vocabulary keeps everything.
  Sampler all(params(1.0f, 1.0f, 1000));
  EXPECT_TRUE(
      all_close(all.probabilities(logits.data(), 50), softmax_over(logits, 1.0), 1e-12, 1e-12));
}

TEST(Sampling, TopPKeepsTheSmallestPrefixReachingP) {
  // Probabilities 0.5, 0.3, 0.15, 0.05, scattered over the ids so the mapping back is tested.
  const std::vector<float> logits = {std::log(0.15f), std::log(0.5f), std::log(0.05f),
                                     std::log(0.3f)};
  const std::vector<double> base = softmax_over(logits, 1.0);
  struct Case {
    float top_p;
    std::vector<int32_t> kept;
  };
  // 0.4: the top token alone reaches it; 0.75: 0.5 does not, 0.5+0.3 does; 0.81: needs three;
  // 0.99 needs all four.
  for (const Case& c :
       {Case{0.4f, {1}}, Case{0.75f, {1, 3}}, Case{0.81f, {1, 3, 0}}, Case{0.99f, {1, 3, 0, 2}}}) {
    Sampler s(params(1.0f, c.top_p));
    const std::vector<double> p = s.probabilities(logits.data(), 4);
    EXPECT_TRUE(all_close(p, softmax_over(logits, 1.0, c.kept), 1e-9, 1e-9)) << "top_p=" << c.top_p;
    double mass = 0;
    for (int32_t i : c.kept) mass += base[size_t(i)];
    EXPECT_GE(mass, double(c.top_p) - 1e-7);
  }
}

TEST(Sampling, TemperatureScalesLogits) {
  const std::vector<float> logits = {1.0f, 2.5f, 0.0f, -1.0f, 2.0f};
  for (float t : {0.25f, 0.5f, 1.0f, 2.0f, 10.0f}) {
    // Through the plain softmax path and the sorted (top-k) path alike.
    Sampler plain(params(t));
    Sampler sorted(params(t, 1.0f, 5));
    EXPECT_TRUE(
        all_close(plain.probabilities(logits.data(), 5), softmax_over(logits, t), 1e-12, 1e-9))
        << "T=" << t;
    EXPECT_TRUE(
        all_close(sorted.probabilities(logits.data(), 5), softmax_over(logits, t), 1e-12, 1e-9))
        << "T=" << t;
  }
}

TEST(Sampling, ValidateRejectsBadParametersNamingTheValue) {
  EXPECT_ERROR_NAMES(testing::error_of([] { validate(params(-1.0f)); }), "temperature", "-1");
  EXPECT_ERROR_NAMES(testing::error_of([] { validate(params(NAN)); }), "temperature", "nan");
  EXPECT_ERROR_NAMES(testing::error_of([] { validate(params(INFINITY)); }), "temperature", "inf");
  EXPECT_ERROR_NAMES(testing::error_of([] { validate(params(1.0f, 0.0f)); }), "top_p", "got 0");
  EXPECT_ERROR_NAMES(testing::error_of([] { validate(params(1.0f, 1.5f)); }), "top_p", "1.5");
  EXPECT_ERROR_NAMES(testing::error_of([] { validate(params(1.0f, -0.5f)); }), "top_p", "-0.5");
  EXPECT_ERROR_NAMES(testing::error_of([] { validate(params(1.0f, NAN)); }), "top_p", "nan");
  EXPECT_ERROR_NAMES(testing::error_of([] { validate(params(1.0f, 1.0f, -3)); }), "top_k", "-3");
  // The Sampler refuses them too.
  EXPECT_ERROR_NAMES(testing::error_of([] { Sampler s(params(-2.0f)); }), "temperature", "-2");
  // The edges of the valid ranges are accepted.
  EXPECT_NO_THROW(validate(params(0.0f, 1.0f, 0)));
  EXPECT_NO_THROW(validate(params(100.0f, 1e-6f, 1)));
  auto with = [](auto set) {
    SamplingParams p;
    set(p);
    return p;
  };
  EXPECT_ERROR_NAMES(testing::error_of([&] { validate(with([](auto& p) { p.min_p = 1.5f; })); }),
                     "min_p", "1.5");
  EXPECT_ERROR_NAMES(
      testing::error_of([&] { validate(with([](auto& p) { p.presence_penalty = 2.5f; })); }),
      "presence_penalty", "2.5");
  EXPECT_ERROR_NAMES(
      testing::error_of([&] { validate(with([](auto& p) { p.frequency_penalty = -3.0f; })); }),
      "frequency_penalty", "-3");
  EXPECT_ERROR_NAMES(
      testing::error_of([&] { validate(with([](auto& p) { p.repetition_penalty = 0.0f; })); }),
      "repetition_penalty", "got 0");
}

TEST(Sampling, MinPKeepsTokensWithinItsShareOfTheTop) {
  // softmax of these at T = 1: ratios to the top are 1, e^-1, e^-2, e^-3, e^-4.
  const std::vector<float> logits = {0.0f, -1.0f, -2.0f, -3.0f, -4.0f};
  SamplingParams p = params(1.0f);
  p.min_p = 0.2f;  // e^-1 = 0.37 stays, e^-2 = 0.135 goes
  Sampler s(p);
  const std::vector<double> got = s.probabilities(logits.data(), 5);
  EXPECT_TRUE(all_close(got, softmax_over(logits, 1.0, {0, 1}), 1e-12, 1e-9));
  // With temperature 2 the ratios are e^-k/2: e^-1.5 = 0.22 (k = 3) passes 0.2, e^-2 does not.
  p.temperature = 2.0f;
  Sampler hot(p);
  EXPECT_TRUE(all_close(hot.probabilities(logits.data(), 5),
                        softmax_over(logits, 2.0, {0, 1, 2, 3}), 1e-12, 1e-9));
}

TEST(Sampling, PenaltiesFollowTheirDefinitions) {
  const std::vector<float> logits = {2.0f, 1.0f, -1.0f, 0.5f};
  // Repetition 2 over the prompt {0, 2}: 2 -> 1, -1 -> -2; output token 3 too: 0.5 -> 0.25.
  SamplingParams rep = params(1.0f);
  rep.repetition_penalty = 2.0f;
  Sampler r(rep);
  const std::vector<int32_t> prompt = {0, 2, 2};
  r.set_prompt(prompt);
  r.observe(3);
  EXPECT_TRUE(all_close(r.probabilities(logits.data(), 4),
                        softmax_over({1.0f, 1.0f, -2.0f, 0.25f}, 1.0), 1e-12, 1e-9));
  // Presence 0.5 and frequency 0.25 over the output {1, 1, 3}: 1 -> 1 - 0.5 - 0.5,
  // 3 -> 0.5 - 0.5 - 0.25; the prompt does not count for them.
  SamplingParams pf = params(1.0f);
  pf.presence_penalty = 0.5f;
  pf.frequency_penalty = 0.25f;
  Sampler f(pf);
  f.set_prompt(prompt);
  for (int32_t t : {1, 1, 3}) f.observe(t);
  EXPECT_TRUE(all_close(f.probabilities(logits.data(), 4),
                        softmax_over({2.0f, 0.0f, -1.0f, -0.25f}, 1.0), 1e-12, 1e-9));
}

TEST(Sampling, GreedyWithPenaltiesMovesOffARepeatedToken) {
  const std::vector<float> logits = {1.0f, 0.9f, 0.0f};
  SamplingParams p = params(0.0f);
  p.frequency_penalty = 0.2f;
  Sampler s(p);
  EXPECT_EQ(s.sample(logits.data(), 3), 0);  // observed: 0 now counts once
  EXPECT_EQ(s.sample(logits.data(), 3), 1);  // 1.0 - 0.2 < 0.9
  EXPECT_EQ(s.sample(logits.data(), 3), 0);  // 0.8 vs 0.7
  // Without penalties greedy never moves.
  Sampler plain(params(0.0f));
  for (int i = 0; i < 3; ++i) EXPECT_EQ(plain.sample(logits.data(), 3), 0);
}

TEST(Sampling, TokenLogprobsAreTheRawLogSoftmax) {
  const std::vector<float> logits = {1.0f, 3.0f, 3.0f, -2.0f};
  const std::vector<double> p = softmax_over(logits, 1.0);
  const TokenLogprobs lp = token_logprobs(logits.data(), 4, 0, 3);
  EXPECT_NEAR(lp.logprob, std::log(p[0]), 1e-6);
  ASSERT_EQ(lp.top.size(), 3u);
  EXPECT_EQ(lp.top[0].first, 1);  // the tie goes to the lower id first
  EXPECT_EQ(lp.top[1].first, 2);
  EXPECT_EQ(lp.top[2].first, 0);
  EXPECT_NEAR(lp.top[0].second, std::log(p[1]), 1e-6);
  EXPECT_NEAR(lp.top[2].second, std::log(p[0]), 1e-6);
  EXPECT_TRUE(token_logprobs(logits.data(), 4, 3, 0).top.empty());
  EXPECT_EQ(token_logprobs(logits.data(), 4, 3, 99).top.size(), 4u);
}

}  // namespace
}  // namespace qwen3moe
