// qwen3moe generate: prefill a prompt, then sample up to --max-new-tokens tokens.
#include <cstdio>
#include <nlohmann/json.hpp>

#include "core/generate.h"
#include "kernels/check.h"
#include "launcher/commands.h"
#include "launcher/process.h"
#include "launcher/runtime.h"

namespace qwen3moe::launcher {
namespace {

struct GenerateFlags {
  RuntimeOptions runtime;
  std::string ids;
  GenerateOptions gen;
  bool json = false;
};

void run_generate(const GenerateFlags& f) {
  std::vector<int32_t> prompt;
  run_collectively([&] {
    validate(f.gen.sampling);
    QWEN3MOE_CHECK(f.gen.max_new_tokens > 0, "--max-new-tokens must be positive, got ",
                   f.gen.max_new_tokens);
    prompt = parse_ids(f.ids);
  });
  auto rt = load_runtime(f.runtime);
  std::unique_ptr<KvCache> cache;
  run_collectively([&] {
    validate_prompt(rt->config, prompt);
    cache = cache_for(*rt, int64_t(prompt.size()) + f.gen.max_new_tokens);
  });
  const bool root = rt->comm->rank() == 0;
  const bool stream = root && !f.json;
  GenerateResult r = generate(*rt->model, *rt->comm, *cache, prompt, f.gen, [&](int32_t id) {
    if (stream) {
      std::printf("%d ", id);
      std::fflush(stdout);
    }
  });
  if (!root) return;
  const double prefill_tps = double(prompt.size()) / r.prefill_seconds;
  const double decode_steps = double(r.output_ids.size() > 0 ? r.output_ids.size() - 1 : 0);
  const double decode_tps = r.decode_seconds > 0 ? decode_steps / r.decode_seconds : 0.0;
  if (f.json) {
    nlohmann::json j = {{"prompt_ids", prompt},
                        {"output_ids", r.output_ids},
                        {"text", ""},
                        {"finish_reason", r.finish_reason},
                        {"timing",
                         {{"prefill_s", r.prefill_seconds},
                          {"decode_s", r.decode_seconds},
                          {"prefill_tok_s", prefill_tps},
                          {"decode_tok_s", decode_tps}}}};
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::printf("\n");
    std::fflush(stdout);
    std::fprintf(stderr, "finish_reason=%s prompt=%zu tokens (%.1f tok/s prefill), generated=%zu "
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
  cmd->add_option("--ids", f->ids, "Prompt as comma-separated token ids")->required();
  cmd->add_option("--max-new-tokens", f->gen.max_new_tokens, "Tokens to generate at most")
      ->capture_default_str();
  cmd->add_option("--temperature", f->gen.sampling.temperature, "0 is greedy")
      ->capture_default_str();
  cmd->add_option("--top-p", f->gen.sampling.top_p, "Nucleus mass in (0, 1]")->capture_default_str();
  cmd->add_option("--top-k", f->gen.sampling.top_k, "Keep the k most likely tokens (0: all)")
      ->capture_default_str();
  cmd->add_option("--seed", f->gen.sampling.seed, "Sampling seed")->capture_default_str();
  cmd->add_flag("--ignore-eos", f->gen.ignore_eos, "Keep generating past EOS");
  cmd->add_flag("--json", f->json, "Print one JSON object as the last stdout line");
  add_runtime_flags(*cmd, f->runtime);
  cmd->callback([f] { run_generate(*f); });
}

}  // namespace qwen3moe::launcher
