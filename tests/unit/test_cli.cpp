// The qwen3moe executable end to end: every bad input ends with a non-zero exit and exactly one
// stderr line naming the problem; logits / generate reproduce the fixture references; inspect,
// init-random and --help work.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "core/checkpoint/npy.h"
#include "core/checkpoint/safetensors.h"
#include "core/engine/generate.h"
#include "model_fixture.h"
#include "test_util.h"

namespace qwen3moe {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using testing::fixture;
using testing::fresh_dir;
using testing::read_file;
using testing::tensor_values;
using testing::write_file;

using Result = testing::CliResult;
Result run(const std::string& args) {
  return testing::run_cli(args, "run");
}

std::string sh_quote(const std::string& s) {
  return "'" + s + "'";
}

// A failed run: non-zero exit (not a crash), exactly one line on stderr, naming every needle.
void expect_one_line_error(const Result& r, const std::vector<std::string>& needles) {
  EXPECT_NE(r.code, 0) << "stderr: " << r.err;
  EXPECT_LT(r.code, 128) << "killed by a signal; stderr: " << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << "stderr: " << r.err;
  EXPECT_TRUE(!r.err.empty() && r.err.back() == '\n') << "stderr: " << r.err;
  for (const std::string& n : needles)
    EXPECT_NE(r.err.find(n), std::string::npos) << "stderr does not name '" << n << "': " << r.err;
}

const std::string kDense = fixture("hf-tiny/dense_a");
const std::string kMoe = fixture("hf-tiny/moe_a");

// A model folder with dense_a's config (or `config`) and the given weights file contents.
std::string model_dir(const std::string& tag, const std::string& safetensors,
                      const std::string& config = read_file(kDense + "/config.json")) {
  const std::string dir = fresh_dir(tag);
  write_file(dir + "/config.json", config);
  write_file(dir + "/model.safetensors", safetensors);
  return dir;
}

std::string le64(uint64_t v) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[size_t(i)] = char((v >> (8 * i)) & 0xff);
  return s;
}

std::string raw_safetensors(const std::string& header, size_t data_bytes) {
  return le64(header.size()) + header + std::string(data_bytes, '\0');
}

// dense_a's weights rewritten with `edit` applied to the tensor list.
std::string rewritten_dense(const std::string& tag,
                            const std::function<void(std::vector<TensorToWrite>&)>& edit) {
  const WeightStore ws = WeightStore::open(kDense);
  std::vector<TensorToWrite> tensors;
  for (const auto& [name, t] : ws.all()) tensors.push_back({name, t->dtype, t->shape, t->data});
  edit(tensors);
  const std::string dir = fresh_dir(tag);
  fs::copy_file(kDense + "/config.json", dir + "/config.json");
  write_safetensors(dir + "/model.safetensors", tensors);
  return dir;
}

std::string logits_cmd(const std::string& dir, const std::string& ids = "1,2,3") {
  return "logits --model " + sh_quote(dir) + " --ids " + ids + " --out " +
         sh_quote(fresh_dir("npy") + "/l.npy");
}

// ---- bad inputs -----------------------------------------------------------------------------

TEST(CliErrors, TruncatedSafetensors) {
  expect_one_line_error(run(logits_cmd(model_dir("trunc", std::string("\x08\x00\x00", 3)))),
                        {"truncated"});
}

TEST(CliErrors, HeaderLengthPastTheEnd) {
  expect_one_line_error(run(logits_cmd(model_dir("past", le64(5000) + "{}"))),
                        {"header length 5000", "past the end"});
}

TEST(CliErrors, HeaderOver100MB) {
  expect_one_line_error(run(logits_cmd(model_dir("huge", le64(300'000'000)))), {"100 MB"});
}

TEST(CliErrors, OverlappingRanges) {
  const std::string h = R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},)"
                        R"("b":{"dtype":"F32","shape":[4],"data_offsets":[8,24]}})";
  expect_one_line_error(run(logits_cmd(model_dir("overlap", raw_safetensors(h, 24)))), {"overlap"});
}

TEST(CliErrors, UnknownDtype) {
  const std::string h =
      R"({"model.norm.weight":{"dtype":"F8_E9","shape":[4],"data_offsets":[0,4]}})";
  expect_one_line_error(run(logits_cmd(model_dir("dtype", raw_safetensors(h, 4)))),
                        {"unknown dtype 'F8_E9'"});
}

TEST(CliErrors, WrongShape) {
  const std::string dir = rewritten_dense("shape", [](std::vector<TensorToWrite>& t) {
    for (auto& x : t)
      if (x.name == "model.norm.weight") x.shape = {64, 2};  // same bytes, wrong shape
  });
  expect_one_line_error(run(logits_cmd(dir)), {"model.norm.weight", "[64, 2]", "[128]"});
}

TEST(CliErrors, MissingTensor) {
  const std::string dir = rewritten_dense("missing", [](std::vector<TensorToWrite>& t) {
    std::erase_if(t, [](const TensorToWrite& x) {
      return x.name == "model.layers.1.self_attn.k_norm.weight";
    });
  });
  expect_one_line_error(run(logits_cmd(dir)), {"model.layers.1.self_attn.k_norm.weight"});
}

TEST(CliErrors, BadConfigValue) {
  json c = json::parse(read_file(kDense + "/config.json"));
  c["num_attention_heads"] = 3;  // not a multiple of the kv heads
  c["num_key_value_heads"] = 2;
  const std::string dir = fresh_dir("cfg");
  write_file(dir + "/config.json", c.dump());
  fs::create_symlink(kDense + "/model.safetensors", dir + "/model.safetensors");
  expect_one_line_error(run(logits_cmd(dir)), {"num_attention_heads=3", "num_key_value_heads=2"});
  c = json::parse(read_file(kDense + "/config.json"));
  c["vocab_size"] = -400;
  write_file(dir + "/config.json", c.dump());
  expect_one_line_error(run("generate --model " + sh_quote(dir) + " --ids 1,2"),
                        {"vocab_size", "-400"});
}

TEST(CliErrors, IdsNotIntegers) {
  expect_one_line_error(run("generate --model " + sh_quote(kDense) + " --ids 1,x,3"), {"'x'"});
  expect_one_line_error(run(logits_cmd(kDense, "1,2,")), {"position 2"});
}

TEST(CliErrors, IdOutsideTheVocabulary) {
  expect_one_line_error(run("generate --model " + sh_quote(kDense) + " --ids 1,400,2"),
                        {"400", "vocabulary"});
  expect_one_line_error(run(logits_cmd(kDense, "-1")), {"-1", "vocabulary"});
}

// A tiny random model whose context is 8 tokens.
std::string short_context_model() {
  json c = json::parse(read_file(kDense + "/config.json"));
  c["max_position_embeddings"] = 8;
  c["num_hidden_layers"] = 1;
  const std::string dir = fresh_dir("ctx8");
  write_file(dir + "/config.json", c.dump());
  const Result r = run("init-random --config " + sh_quote(dir + "/config.json") + " --out " +
                       sh_quote(dir + "/model") + " --seed 1");
  EXPECT_EQ(r.code, 0) << r.err;
  return dir + "/model";
}

TEST(CliErrors, PromptLongerThanContext) {
  const std::string model = short_context_model();
  expect_one_line_error(run("generate --model " + sh_quote(model) + " --ids 1,2,3,4,5,6,7,8,9"),
                        {"9 tokens", "max_position_embeddings=8"});
  expect_one_line_error(run(logits_cmd(model, "1,2,3,4,5,6,7,8,9")),
                        {"9 tokens", "max_position_embeddings=8"});
  // Exactly the context is fine, and generation stops at its end.
  const Result ok = run("generate --model " + sh_quote(model) +
                        " --ids 1,2,3,4,5 --max-new-tokens 20 --ignore-eos --json");
  ASSERT_EQ(ok.code, 0) << ok.err;
  const json j = json::parse(ok.out.substr(ok.out.rfind('\n', ok.out.size() - 2) + 1));
  EXPECT_LE(j["prompt_ids"].size() + j["output_ids"].size(), 9u)
      << "a token at position >= 8 cannot have been computed";
}

TEST(CliErrors, NegativeTemperature) {
  expect_one_line_error(run("generate --model " + sh_quote(kDense) + " --ids 1,2 --temperature -1"),
                        {"temperature", "-1"});
  expect_one_line_error(run("generate --model " + sh_quote(kDense) + " --ids 1,2 --top-p 1.5"),
                        {"top_p", "1.5"});
}

TEST(CliErrors, UnknownBackend) {
  expect_one_line_error(run("generate --model " + sh_quote(kDense) + " --ids 1,2 --backend tpu"),
                        {"'tpu'"});
  expect_one_line_error(run(logits_cmd(kDense) + " --backend tpu"), {"'tpu'"});
}

TEST(CliErrors, BadA2aAndProfileFlags) {
  expect_one_line_error(run(logits_cmd(kDense) + " --a2a-capacity -3"), {"--a2a-capacity", "-3"});
  expect_one_line_error(run(logits_cmd(kDense) + " --kv-dtype int8"), {"--kv-dtype", "int8"});
  EXPECT_EQ(run(logits_cmd(kDense) + " --kv-dtype bf16").code, 0);
  EXPECT_EQ(run(logits_cmd(kDense) + " --kv-dtype fp8").code, 0);
  expect_one_line_error(
      run("generate --model " + sh_quote(kDense) + " --ids 1,2 --profile-a2a " +
          sh_quote(::testing::TempDir() + "qwen3moe_prof_bad") + " --profile-a2a-steps -1"),
      {"--profile-a2a-steps", "-1"});
}

TEST(CliErrors, MissingModelFolder) {
  expect_one_line_error(run(logits_cmd("/nonexistent/model")), {"/nonexistent/model"});
}

// ---- outputs --------------------------------------------------------------------------------

std::string join(const std::vector<int32_t>& ids) {
  std::string s;
  for (size_t i = 0; i < ids.size(); ++i) s += (i ? "," : "") + std::to_string(ids[i]);
  return s;
}

json last_line_json(const std::string& out) {
  std::string s = out;
  while (!s.empty() && s.back() == '\n') s.pop_back();
  return json::parse(s.substr(s.rfind('\n') == std::string::npos ? 0 : s.rfind('\n') + 1));
}

TEST(Cli, LogitsWritesNpyMatchingTheReference) {
  const WeightStore ref = WeightStore::open_file(kMoe + "/reference.safetensors");
  const auto tokens = tensor_values<int32_t>(ref.get("prompt_2.tokens"));
  const auto expected = tensor_values<float>(ref.get("prompt_2.logits"));
  const std::string out = fresh_dir("npy") + "/logits.npy";
  const Result r = run("logits --model " + sh_quote(kMoe) + " --ids " + join(tokens) + " --out " +
                       sh_quote(out));
  ASSERT_EQ(r.code, 0) << r.err;
  std::vector<int64_t> shape;
  const std::vector<float> got = read_npy_f32(out, shape);
  ASSERT_EQ(shape, (std::vector<int64_t>{int64_t(tokens.size()), 512}));
  float max_ref = 0, max_err = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    max_ref = std::max(max_ref, std::fabs(expected[i]));
    max_err = std::max(max_err, std::fabs(got[i] - expected[i]));
  }
  EXPECT_LE(max_err, 1e-3f * (1 + max_ref));
}

TEST(Cli, GenerateJsonGreedyMatchesReference) {
  const WeightStore ref = WeightStore::open_file(kMoe + "/reference.safetensors");
  const auto prompt = tensor_values<int32_t>(ref.get("greedy_0.prompt"));
  const auto expected = tensor_values<int32_t>(ref.get("greedy_0.output"));
  const auto scores = tensor_values<float>(ref.get("greedy_0.scores"));
  const Result r = run("generate --model " + sh_quote(kMoe) + " --ids " + join(prompt) +
                       " --ignore-eos --temperature 0 --max-new-tokens 40 --json");
  ASSERT_EQ(r.code, 0) << r.err;
  const json j = last_line_json(r.out);
  EXPECT_EQ(j["prompt_ids"].get<std::vector<int32_t>>(), prompt);
  EXPECT_EQ(j["finish_reason"], "length");
  ASSERT_TRUE(j["timing"].is_object());
  EXPECT_TRUE(j.contains("text"));
  const auto got = j["output_ids"].get<std::vector<int32_t>>();
  ASSERT_EQ(got.size(), expected.size());
  for (size_t s = 0; s < expected.size(); ++s) {
    if (got[s] == expected[s]) continue;
    // The parity rule: a different choice only where the reference's top-2 gap < 2e-3.
    std::vector<float> row(scores.begin() + int64_t(s) * 512,
                           scores.begin() + int64_t(s + 1) * 512);
    std::partial_sort(row.begin(), row.begin() + 2, row.end(), std::greater<float>());
    ASSERT_LT(row[0] - row[1], 2e-3f) << "step " << s << ": " << got[s] << " vs " << expected[s];
    break;
  }
}

TEST(Cli, EosStopsWithFinishReasonStop) {
  const WeightStore ref = WeightStore::open_file(kMoe + "/reference.safetensors");
  const auto prompt = tensor_values<int32_t>(ref.get("greedy_0.prompt"));
  const auto expected = tensor_values<int32_t>(ref.get("greedy_0.output"));
  // Make a greedy token from step 2 on, one not produced before it, an end-of-sequence id (in a
  // list, as Qwen3 configs have it): generation must stop right after it.
  size_t stop_at = 2;
  while (stop_at < expected.size() &&
         std::find(expected.begin(), expected.begin() + int64_t(stop_at), expected[stop_at]) !=
             expected.begin() + int64_t(stop_at))
    ++stop_at;
  ASSERT_LT(stop_at, 10u) << "no fresh token early in the reference continuation";
  const int32_t eos = expected[stop_at];
  const std::vector<int32_t> want(expected.begin(), expected.begin() + int64_t(stop_at) + 1);
  int32_t other = 0;  // a second EOS id that the tokens before the stop do not hit
  while (std::find(want.begin(), want.end(), other) != want.end()) ++other;
  json c = json::parse(read_file(kMoe + "/config.json"));
  c["eos_token_id"] = {eos, other};
  const std::string dir = fresh_dir("eos");
  write_file(dir + "/config.json", c.dump());
  fs::create_symlink(kMoe + "/model.safetensors", dir + "/model.safetensors");
  const std::string base = "generate --model " + sh_quote(dir) + " --ids " + join(prompt) +
                           " --temperature 0 --max-new-tokens 12 --json";
  Result r = run(base);
  ASSERT_EQ(r.code, 0) << r.err;
  json j = last_line_json(r.out);
  EXPECT_EQ(j["finish_reason"], "stop");
  EXPECT_EQ(j["output_ids"].get<std::vector<int32_t>>(), want);
  // --ignore-eos runs on to the limit.
  r = run(base + " --ignore-eos");
  ASSERT_EQ(r.code, 0) << r.err;
  j = last_line_json(r.out);
  EXPECT_EQ(j["finish_reason"], "length");
  EXPECT_EQ(j["output_ids"].size(), 12u);
}

// "parameters     total X B, active per token Y B" -> X, Y.
std::pair<double, double> parameter_counts(const std::string& out) {
  const size_t at = out.find("parameters");
  EXPECT_NE(at, std::string::npos) << out;
  double total = -1, active = -1;
  if (at != std::string::npos)
    std::sscanf(out.c_str() + at, "parameters total %lf B, active per token %lf B", &total,
                &active);
  return {total, active};
}

TEST(Cli, InspectModelPrintsParameterCounts) {
  const Result r = run("inspect --model " + sh_quote(kMoe));
  ASSERT_EQ(r.code, 0) << r.err;
  double n = 0;
  const WeightStore ws = WeightStore::open(kMoe);
  for (const auto& [name, t] : ws.all()) n += double(t->numel());
  const auto [total, active] = parameter_counts(r.out);
  EXPECT_NEAR(total, n / 1e9, 0.0005 + 1e-9) << r.out;
  EXPECT_GT(active, 0.0) << r.out;
  EXPECT_LE(active, total) << r.out;
  EXPECT_NE(r.out.find("Qwen3MoeForCausalLM"), std::string::npos);
}

TEST(Cli, InspectConfigWithTp8) {
  // Qwen3-235B-A22B is 235 B parameters, 22 B active per token (its model card).
  std::string config = std::string(QWEN3MOE_SOURCE_DIR) + "/configs/qwen3-235b-a22b.json";
  if (!fs::exists(config)) GTEST_SKIP() << "no " << config;
  const Result r = run("inspect --config " + sh_quote(config) + " --tp 8");
  ASSERT_EQ(r.code, 0) << r.err;
  const auto [total, active] = parameter_counts(r.out);
  EXPECT_NEAR(total, 235.0, 0.5) << r.out;
  EXPECT_NEAR(active, 22.0, 0.5) << r.out;
  EXPECT_NE(r.out.find("tp 8"), std::string::npos) << r.out;
}

// Attention DP for the 235B model: dp 8 x tp 1 holds a whole attention copy (13.4 GB) and the
// whole vocabulary per rank, no TP collectives, and each token's KV on one rank only, against
// dp 1 x tp 8 (1.77 GB of attention, KV heads replicated twice); the all-to-all moves the same
// bytes per rank (32 tokens per rank either way). Bad splits name the numbers.
TEST(Cli, InspectDp8AgainstTp8) {
  const std::string config = std::string(QWEN3MOE_SOURCE_DIR) + "/configs/qwen3-235b-a22b.json";
  if (!fs::exists(config)) GTEST_SKIP() << "no " << config;
  const Result dp = run("inspect --config " + sh_quote(config) + " --dp 8 --tp 1 --gpu-memory 141");
  const Result tp = run("inspect --config " + sh_quote(config) + " --dp 1 --tp 8 --gpu-memory 141");
  ASSERT_EQ(dp.code, 0) << dp.err;
  ASSERT_EQ(tp.code, 0) << tp.err;
  EXPECT_NE(dp.out.find("world 8 = dp 8 x tp 1, ep 8"), std::string::npos) << dp.out;
  EXPECT_NE(
      dp.out.find("attention   13.40 GB  (64 q heads, 4 kv heads; a whole copy per DP group)"),
      std::string::npos)
      << dp.out;
  EXPECT_NE(tp.out.find("attention   1.77 GB  (8 q heads, 1 kv heads, replicated)"),
            std::string::npos)
      << tp.out;
  EXPECT_NE(dp.out.find("vocab       2.49 GB"), std::string::npos) << dp.out;
  EXPECT_NE(dp.out.find("kv per token, whole deployment: 192.51 KB (bf16) on 1 rank"),
            std::string::npos)
      << dp.out;
  EXPECT_NE(tp.out.find("kv per token, whole deployment: 385.02 KB (bf16) on 8 ranks"),
            std::string::npos)
      << tp.out;
  EXPECT_NE(dp.out.find("all-to-all  461.39 MB"), std::string::npos) << dp.out;
  EXPECT_NE(tp.out.find("all-to-all  461.39 MB"), std::string::npos) << tp.out;
  EXPECT_NE(dp.out.find("tp group    0.00 B"), std::string::npos) << dp.out;
  EXPECT_NE(tp.out.find("tp group    833.44 MB"), std::string::npos) << tp.out;
  // DP's price: rank 0 samples every group, so 7 groups' 32 x 151936 f32 logits travel to it.
  EXPECT_NE(dp.out.find("logits      19.45 MB"), std::string::npos) << dp.out;
  EXPECT_NE(dp.out.find("receives 136.13 MB"), std::string::npos) << dp.out;
  EXPECT_EQ(tp.out.find("logits      "), std::string::npos) << tp.out;
  // The deployment's KV tokens: 8 groups of one rank against one group of eight.
  auto deployment_tokens = [](const std::string& out) {
    const size_t at = out.find("deployment     ");
    return at == std::string::npos ? 0LL : std::atoll(out.c_str() + at + 15);
  };
  EXPECT_GT(deployment_tokens(dp.out), 2000000) << dp.out;
  // The residual, attention and logits buffers hold the group's 288 rows, the MoE pairs all 8
  // groups' (8 x 288 rows of logits alone would be 1.4 GB).
  EXPECT_NE(dp.out.find("workspace 1.16 GB (288-token steps)"), std::string::npos) << dp.out;
  EXPECT_LT(deployment_tokens(tp.out), 1500000) << tp.out;
  expect_one_line_error(run("inspect --config " + sh_quote(config) + " --dp 3 --tp 1 --ep 8"),
                        {"--ep 8", "--dp 3"});
  expect_one_line_error(run("inspect --config " + sh_quote(config) + " --dp 3 --tp 1"),
                        {"128 experts", "ep=3"});
  expect_one_line_error(run("inspect --config " + sh_quote(config) + " --dp 0"), {"--dp", "0"});
}

// A bare config.json with Qwen's fp8 quantization_config plans FP8 bytes: Qwen3-235B-A22B-FP8
// is about 236 GB (234 GB of fp8 projections and their scales, 2.6 GB bf16), 29.7 GB per rank
// at tp 8.
TEST(Cli, InspectFp8ConfigPlansFp8Bytes) {
  const std::string config = std::string(QWEN3MOE_SOURCE_DIR) + "/configs/qwen3-235b-a22b.json";
  if (!fs::exists(config)) GTEST_SKIP() << "no " << config;
  json c = json::parse(read_file(config));
  c["quantization_config"] = {{"quant_method", "fp8"},
                              {"fmt", "e4m3"},
                              {"activation_scheme", "dynamic"},
                              {"weight_block_size", {128, 128}},
                              {"modules_to_not_convert", {"lm_head"}}};
  const std::string dir = fresh_dir("fp8cfg");
  testing::write_file(dir + "/config.json", c.dump());
  const Result r = run("inspect --config " + sh_quote(dir + "/config.json") + " --tp 8");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("F8_E4M3 233.86 GB"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("BF16 2.59 GB"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("total       29.69 GB"), std::string::npos) << r.out;
  // On 141 GB GPUs (H200) at 0.9 the rest is KV cache: 97 GB, two million bf16 tokens per rank;
  // the bf16 checkpoint at tp 4 does not fit 80 GB ones.
  const Result h200 =
      run("inspect --config " + sh_quote(dir + "/config.json") + " --tp 8 --gpu-memory 141");
  ASSERT_EQ(h200.code, 0) << h200.err;
  EXPECT_NE(h200.out.find("fit; KV cache 97.0"), std::string::npos) << h200.out;
  const Result small = run("inspect --config " + sh_quote(config) + " --tp 4 --gpu-memory 80");
  EXPECT_NE(small.out.find("do NOT fit"), std::string::npos) << small.out;
  expect_one_line_error(run("inspect --config " + sh_quote(config) + " --gpu-memory -1"),
                        {"--gpu-memory", "-1"});
  expect_one_line_error(
      run("inspect --config " + sh_quote(config) + " --gpu-memory 80 --gpu-memory-utilization 2"),
      {"--gpu-memory-utilization", "2"});
}

// bench --random-weights writes the layout its config describes: an fp8 quantization_config
// makes an fp8 checkpoint (fewer resident bytes than the same config without it), not an error.
TEST(Cli, BenchRandomWeightsOfAnFp8Config) {
  json c = json::parse(read_file(fixture("hf-tiny/moe_fp8") + "/config.json"));
  ASSERT_TRUE(c.contains("quantization_config"));
  const std::string dir = fresh_dir("benchfp8");
  write_file(dir + "/fp8.json", c.dump());
  c.erase("quantization_config");
  write_file(dir + "/bf16.json", c.dump());
  double resident[2] = {0, 0};
  for (int i = 0; i < 2; ++i) {
    const Result r =
        run("bench --random-weights --config " + sh_quote(dir + (i ? "/bf16.json" : "/fp8.json")) +
            " --prompt-len 8 --decode-tokens 4 --threads 1");
    ASSERT_EQ(r.code, 0) << r.err;
    const size_t at = r.out.find("weights ");
    ASSERT_NE(at, std::string::npos) << r.out;
    resident[i] = std::stod(r.out.substr(r.out.find_first_not_of(' ', at + 8)));
    EXPECT_NE(r.out.find("decode"), std::string::npos) << r.out;
  }
  EXPECT_LT(resident[0], resident[1]);
}

TEST(Cli, InitRandomWritesAFolderThatLoads) {
  const std::string dir = fresh_dir("init");
  const std::string cfg = kDense + "/config.json";
  auto init = [&](const std::string& out, const std::string& extra) {
    const Result r =
        run("init-random --config " + sh_quote(cfg) + " --out " + sh_quote(out) + extra);
    EXPECT_EQ(r.code, 0) << r.err;
  };
  init(dir + "/a", " --seed 3");
  init(dir + "/b", " --seed 3");
  init(dir + "/c", " --seed 4");
  init(dir + "/sharded", " --seed 3 --max-shard-bytes 200000");  // several shards
  ASSERT_TRUE(fs::exists(dir + "/a/config.json"));
  EXPECT_EQ(read_file(dir + "/a/model.safetensors"), read_file(dir + "/b/model.safetensors"))
      << "same seed, different weights";
  EXPECT_NE(read_file(dir + "/a/model.safetensors"), read_file(dir + "/c/model.safetensors"))
      << "different seeds, same weights";
  ASSERT_TRUE(fs::exists(dir + "/sharded/model.safetensors.index.json"));
  EXPECT_FALSE(fs::exists(dir + "/sharded/model.safetensors"));

  // The single-file and sharded folders load, hold the same tensors, and run.
  testing::LoadedModel single(dir + "/a");
  const WeightStore sharded = WeightStore::open(dir + "/sharded");
  ASSERT_EQ(sharded.all().size(), single.weights.all().size());
  for (const auto& [name, t] : single.weights.all()) {
    const TensorView& s = sharded.expect(name, t->shape);
    EXPECT_EQ(0, std::memcmp(s.data, t->data, t->bytes)) << name;
  }
  const std::vector<float> logits = prefill_logits(single.model, single.cache, {1, 2, 3});
  EXPECT_TRUE(std::all_of(logits.begin(), logits.end(), [](float v) { return std::isfinite(v); }));
  EXPECT_GT(*std::max_element(logits.begin(), logits.end()), 0.1f);
  const Result r = run(logits_cmd(dir + "/sharded"));
  EXPECT_EQ(r.code, 0) << r.err;
}

// init-random --dtype fp8 writes Qwen's FP8 layout: every projection F8_E4M3 with its
// weight_scale_inv (the block amax at 448), the rest bf16, a quantization_config; the folder
// loads and its logits stay near those of the bf16 folder of the same seed (e4m3 keeps 3
// mantissa bits: about 6% per weight, averaging out over the dot products).
TEST(Cli, InitRandomFp8WritesQwensLayout) {
  const std::string dir = fresh_dir("init8");
  const std::string cfg = kDense + "/config.json";
  for (const char* dtype : {"bf16", "fp8"}) {
    const Result r = run("init-random --config " + sh_quote(cfg) + " --out " +
                         sh_quote(dir + "/" + dtype) + " --seed 5 --dtype " + dtype);
    ASSERT_EQ(r.code, 0) << r.err;
  }
  testing::LoadedModel fp8(dir + "/fp8"), bf16(dir + "/bf16");
  EXPECT_TRUE(fp8.config.quantization.fp8());
  int quantized = 0;
  for (const auto& [name, t] : fp8.weights.all()) {
    if (name.ends_with("_proj.weight")) {
      EXPECT_EQ(t->dtype, DType::F8E4M3) << name;
      const std::string scale = name + "_scale_inv";
      ASSERT_NE(fp8.weights.find(scale), nullptr) << scale;
      ++quantized;
    } else if (!name.ends_with("_scale_inv")) {
      EXPECT_EQ(t->dtype, DType::BF16) << name;
    }
  }
  EXPECT_EQ(quantized, int(fp8.config.num_hidden_layers) * 7);
  const std::vector<float> a = prefill_logits(fp8.model, fp8.cache, {1, 2, 3});
  const std::vector<float> b = prefill_logits(bf16.model, bf16.cache, {1, 2, 3});
  double diff = 0, norm = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    diff += (a[i] - b[i]) * (a[i] - b[i]);
    norm += b[i] * b[i];
  }
  EXPECT_LT(std::sqrt(diff / norm), 0.2) << "fp8 logits far from the bf16 ones";
  EXPECT_GT(std::sqrt(diff / norm), 0.0) << "fp8 weights equal to bf16 ones";
  EXPECT_NE(run("init-random --config " + sh_quote(cfg) + " --out " + sh_quote(dir + "/x") +
                " --dtype int4")
                .code,
            0);
}

TEST(Cli, HelpOnEverySubcommand) {
  EXPECT_EQ(run("--help").code, 0);
  for (const char* sub : {"logits", "generate", "init-random", "inspect", "bench"}) {
    const Result r = run(std::string(sub) + " --help");
    EXPECT_EQ(r.code, 0) << sub << ": " << r.err;
    EXPECT_NE(r.out.find("--"), std::string::npos) << sub << " prints no options: " << r.out;
  }
}

}  // namespace
}  // namespace qwen3moe
