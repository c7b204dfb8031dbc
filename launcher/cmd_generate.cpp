// qwen3moe generate: prefill a prompt (ids, text or chat), then sample up to --max-new-tokens
// tokens, streaming text (whole UTF-8 characters) or ids as they come.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>

#include "core/checkpoint/generation_config.h"
#include "core/engine/generate.h"
#include "core/text/stream_decoder.h"
#include "core/text/tokenizer.h"
#include "kernels/common/check.h"
#include "launcher/commands.h"
#include "launcher/process.h"
#include "launcher/profile.h"
#include "launcher/prompt_input.h"
#include "launcher/runtime.h"

namespace qwen3moe::launcher {
namespace {

struct GenerateFlags {
  RuntimeOptions runtime;
  PromptInput input;
  std::string tokenizer_dir;  // default: the model folder
  GenerationOptions gen;
  // Unset: the model's generation_config.json, then the built-in default (as the servers do).
  std::optional<float> temperature, top_p;
  std::optional<int32_t> top_k;
  bool json = false;
  ProfileOptions profile;
};

void run_generate(const GenerateFlags& flags) {
  GenerateFlags f = flags;
  std::vector<int32_t> prompt;
  std::optional<Tokenizer> tokenizer;
  const std::string tok_dir = f.tokenizer_dir.empty() ? f.runtime.model_dir : f.tokenizer_dir;
  run_collectively([&] {
    const GenerationConfig g = GenerationConfig::load(f.runtime.model_dir);
    SamplingParams& s = f.gen.sampling;
    s.temperature = f.temperature ? *f.temperature : g.temperature.value_or(1.0f);
    s.top_p = f.top_p ? *f.top_p : g.top_p.value_or(1.0f);
    s.top_k = f.top_k ? *f.top_k : g.top_k.value_or(0);
    s.min_p = g.min_p.value_or(0.0f);
    s.repetition_penalty = g.repetition_penalty.value_or(1.0f);
    f.gen.stop_token_ids = g.eos_token_ids;
    validate(f.gen.sampling);
    QWEN3MOE_CHECK(f.gen.max_new_tokens > 0, "--max-new-tokens must be positive, got ",
                   f.gen.max_new_tokens);
    if (std::filesystem::exists(std::filesystem::path(tok_dir) / "tokenizer.json"))
      tokenizer = Tokenizer::load(tok_dir);
    prompt = prompt_ids(f.input, tokenizer, tok_dir);
  });
  auto rt = load_runtime(f.runtime);
  set_a2a_capacity(*rt, f.runtime, 1);  // one sequence decodes
  std::unique_ptr<KvCache> cache;
  run_collectively([&] {
    validate_prompt(rt->config, prompt);
    cache = cache_for(*rt, int64_t(prompt.size()) + f.gen.max_new_tokens);
  });
  const bool root = rt->comm->rank() == 0;
  const bool stream = root && !f.json;
  std::optional<StreamDecoder> decoder;
  if (tokenizer) decoder.emplace(*tokenizer);
  std::vector<int32_t> eos = rt->config.eos_token_ids;
  eos.insert(eos.end(), f.gen.stop_token_ids.begin(), f.gen.stop_token_ids.end());
  A2aProfileScope profile(f.profile, *rt->model, *rt->comm);
  GenerationOptions gen = f.gen;
  gen.profiler = profile.get();
  GenerationResult r = generate(*rt->model, *rt->comm, *cache, prompt, gen, [&](int32_t id) {
    if (!stream) return;
    const bool is_eos = std::find(eos.begin(), eos.end(), id) != eos.end();
    if (decoder && !(is_eos && !f.gen.ignore_eos)) {
      std::fputs(decoder->push(id).c_str(), stdout);
    } else if (!decoder) {
      std::printf("%d ", id);
    }
    std::fflush(stdout);
  });
  profile.finish();
  if (!root) return;
  // The text leaves out the EOS that stopped generation, as OpenAI-style servers do.
  std::vector<int32_t> text_ids = r.output_ids;
  if (r.finish_reason == "stop" && !text_ids.empty()) text_ids.pop_back();
  const std::string text = tokenizer ? tokenizer->decode(text_ids) : "";
  const double prefill_tps = double(prompt.size()) / r.prefill_seconds;
  const double decode_steps = double(r.output_ids.size() > 0 ? r.output_ids.size() - 1 : 0);
  const double decode_tps = r.decode_seconds > 0 ? decode_steps / r.decode_seconds : 0.0;
  if (f.json) {
    nlohmann::json j = {{"prompt_ids", prompt},
                        {"output_ids", r.output_ids},
                        {"text", text},
                        {"finish_reason", r.finish_reason},
                        {"timing",
                         {{"prefill_s", r.prefill_seconds},
                          {"decode_s", r.decode_seconds},
                          {"prefill_tok_s", prefill_tps},
                          {"decode_tok_s", decode_tps}}}};
    std::printf("%s\n", j.dump().c_str());
  } else {
    if (decoder) std::fputs(decoder->finish().c_str(), stdout);
    std::printf("\n");
    std::fflush(stdout);
    std::fprintf(stderr,
                 "finish_reason=%s prompt=%zu tokens (%.1f tok/s prefill), generated=%zu "
                 "tokens (%.1f tok/s decode)\n",
                 r.finish_reason.c_str(), prompt.size(), prefill_tps, r.output_ids.size(),
                 decode_tps);
  }
}

}  // namespace

void register_generate(CLI::App& app) {
  auto* cmd = app.add_subcommand("generate", "Generate tokens from a prompt");
  auto f = std::make_shared<GenerateFlags>();
  cmd->add_option("--model", f->runtime.model_dir, "Hugging Face model folder")->required();
  cmd->add_option("--ids", f->input.ids, "Prompt as comma-separated token ids");
  cmd->add_option("--prompt", f->input.text, "Prompt text (no chat template)");
  cmd->add_option("--chat", f->input.chat_file,
                  "JSON file: [{\"role\",\"content\"}...] or {\"messages\": [...], "
                  "\"enable_thinking\": bool}; rendered with the chat template");
  cmd->add_flag("--no-thinking", f->input.no_thinking, "Chat with enable_thinking=false");
  cmd->add_option("--tokenizer", f->tokenizer_dir,
                  "Folder with tokenizer.json and tokenizer_config.json (default: --model)");
  cmd->add_option("--max-new-tokens", f->gen.max_new_tokens, "Tokens to generate at most")
      ->capture_default_str();
  cmd->add_option("--temperature", f->temperature,
                  "0 is greedy (default: the model's generation_config.json, else 1)");
  cmd->add_option("--top-p", f->top_p, "Nucleus mass in (0, 1] (default: the model's, else 1)");
  cmd->add_option("--top-k", f->top_k,
                  "Keep the k most likely tokens (0: all; default: the model's, else all)");
  cmd->add_option("--seed", f->gen.sampling.seed, "Sampling seed")->capture_default_str();
  cmd->add_flag("--ignore-eos", f->gen.ignore_eos, "Keep generating past EOS");
  cmd->add_flag("--json", f->json, "Print one JSON object as the last stdout line");
  add_runtime_flags(*cmd, f->runtime);
  add_profile_flags(*cmd, f->profile);
  cmd->callback([f] { run_generate(*f); });
}

}  // namespace qwen3moe::launcher
