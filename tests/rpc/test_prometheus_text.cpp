// /metrics text: every line is a comment or a sample of the exposition format, each metric's
// HELP and TYPE come before its samples, histogram buckets are cumulative and end with +Inf =
// count, and the exchange totals appear per layer, phase and expert.
#include <gtest/gtest.h>

#include <map>
#include <regex>
#include <sstream>

#include "rpc/metrics/prometheus_text.h"

namespace qwen3moe::rpc {
namespace {

struct Sample {
  std::string name, labels;
  double value;
};

std::vector<Sample> parse(const std::string& text) {
  static const std::regex sample(R"(^([a-zA-Z_:][a-zA-Z0-9_:]*)\{([^}]*)\} (\S+)$)");
  static const std::regex comment(R"(^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) (.+)$)");
  std::vector<Sample> out;
  std::map<std::string, bool> typed;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    std::smatch m;
    if (std::regex_match(line, m, comment)) {
      if (m[1] == "TYPE") typed[m[2]] = true;
      continue;
    }
    EXPECT_TRUE(std::regex_match(line, m, sample)) << "not a sample: " << line;
    if (m.empty()) continue;
    std::string family = m[1];
    for (const char* suffix : {"_bucket", "_sum", "_count"})
      if (family.size() > strlen(suffix) && family.ends_with(suffix) && !typed.count(family))
        family.resize(family.size() - strlen(suffix));
    EXPECT_TRUE(typed.count(family)) << "a sample before its TYPE: " << line;
    out.push_back({m[1], m[2], std::stod(m[3].str() == "+Inf" ? "inf" : m[3].str())});
  }
  return out;
}

TEST(PrometheusText, ParsesAndHistogramsAreCumulative) {
  EngineStats s;
  s.running = 2;
  s.queued = 1;
  s.total_blocks = 100;
  s.free_blocks = 25;
  EngineMetrics m;
  m.generation_tokens = 40;
  m.finished["stop"] = 3;
  for (double v : {0.004, 0.03, 0.03, 5.0, 9999.0}) m.ttft.observe(v);
  const std::vector<Sample> samples = parse(prometheus_text("my \"model\"", s, m, nullptr));
  std::map<std::string, double> by;
  std::vector<double> buckets;
  for (const Sample& x : samples) {
    EXPECT_NE(x.labels.find("model_name=\"my \\\"model\\\"\""), std::string::npos) << x.labels;
    if (x.name == "qwen3moe:time_to_first_token_seconds_bucket")
      buckets.push_back(x.value);
    else if (x.name == "qwen3moe:request_success_total")
      by[x.name + x.labels.substr(x.labels.find("finished_reason"))] = x.value;
    else
      by[x.name] = x.value;
  }
  EXPECT_EQ(by["qwen3moe:num_requests_running"], 2);
  EXPECT_EQ(by["qwen3moe:num_requests_waiting"], 1);
  EXPECT_DOUBLE_EQ(by["qwen3moe:kv_cache_usage_perc"], 0.75);
  EXPECT_EQ(by["qwen3moe:generation_tokens_total"], 40);
  EXPECT_EQ(by["qwen3moe:request_success_totalfinished_reason=\"stop\""], 3);
  EXPECT_EQ(by["qwen3moe:request_success_totalfinished_reason=\"length\""], 0);
  EXPECT_EQ(by["qwen3moe:time_to_first_token_seconds_count"], 5);
  EXPECT_DOUBLE_EQ(by["qwen3moe:time_to_first_token_seconds_sum"], 0.004 + 0.03 + 0.03 + 5 + 9999);
  ASSERT_EQ(buckets.size(), m.ttft.bounds.size() + 1);
  for (size_t i = 1; i < buckets.size(); ++i) EXPECT_GE(buckets[i], buckets[i - 1]);
  EXPECT_EQ(buckets[0], 0);                   // <= 0.001
  EXPECT_EQ(buckets[1], 1);                   // <= 0.005
  EXPECT_EQ(buckets[4], 3);                   // <= 0.04
  EXPECT_EQ(buckets[buckets.size() - 2], 4);  // <= 2560: not the 9999 s one
  EXPECT_EQ(buckets.back(), 5);               // +Inf = count
}

TEST(PrometheusText, ExchangeTotalsPerLayerPhaseAndExpert) {
  ExchangeCounters c(/*layers=*/3, /*experts=*/4, /*timed=*/true);
  c.add_dispatch(1, 1000, 0.5);
  c.add_combine(1, 600, 0.25);
  c.add_expert_tokens(1, 2, 7);
  c.add_expert_tokens(1, 2, 1);
  c.add_dispatch(7, 1, 1);  // outside the model: ignored
  const std::string text = prometheus_text("m", {}, {}, &c);
  parse(text);
  EXPECT_NE(
      text.find("qwen3moe:a2a_bytes_total{model_name=\"m\",layer=\"1\",phase=\"dispatch\"} 1000"),
      std::string::npos)
      << text;
  EXPECT_NE(
      text.find("qwen3moe:a2a_bytes_total{model_name=\"m\",layer=\"1\",phase=\"combine\"} 600"),
      std::string::npos);
  EXPECT_NE(
      text.find("qwen3moe:a2a_seconds_total{model_name=\"m\",layer=\"1\",phase=\"combine\"} 0.25"),
      std::string::npos);
  EXPECT_NE(text.find("qwen3moe:expert_tokens_total{model_name=\"m\",layer=\"1\",expert=\"2\"} 8"),
            std::string::npos);
  EXPECT_EQ(text.find("layer=\"0\""), std::string::npos);  // a layer that exchanged nothing
  // Untimed (a device backend): bytes, no seconds.
  ExchangeCounters device(3, 4, false);
  device.add_dispatch(0, 10, 3.0);
  const std::string dtext = prometheus_text("m", {}, {}, &device);
  EXPECT_EQ(dtext.find("a2a_seconds_total"), std::string::npos);
  EXPECT_NE(dtext.find("a2a_bytes_total"), std::string::npos);
}

}  // namespace
}  // namespace qwen3moe::rpc
