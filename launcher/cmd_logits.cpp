// qwen3moe logits: one prefill over --ids; rank 0 writes float32 [T, V] logits as .npy.
#include "core/checkpoint/npy.h"
#include "core/engine/generate.h"
#include "launcher/commands.h"
#include "launcher/process.h"
#include "launcher/runtime.h"

namespace qwen3moe::launcher {

void register_logits(CLI::App& app) {
  auto* cmd = app.add_subcommand("logits",
                                 "Prefill token ids and write the logits of every position (.npy)");
  auto o = std::make_shared<RuntimeOptions>();
  auto ids = std::make_shared<std::string>();
  auto out = std::make_shared<std::string>();
  cmd->add_option("--model", o->model_dir, "Hugging Face model folder")->required();
  cmd->add_option("--ids", *ids, "Comma-separated token ids, e.g. 1,2,3")->required();
  cmd->add_option("--out", *out, "Output .npy file (float32 [T, vocab])")->required();
  add_runtime_flags(*cmd, *o);
  cmd->callback([o, ids, out] {
    std::vector<int32_t> tokens;
    run_collectively([&] { tokens = parse_ids(*ids); });
    auto rt = load_runtime(*o);
    std::unique_ptr<KvCache> cache;
    run_collectively([&] {
      validate_prompt(rt->config, tokens);
      cache = cache_for(*rt, int64_t(tokens.size()));
    });
    const std::vector<float> logits = prefill_logits(*rt->model, *cache, tokens);
    if (rt->comm->rank() == 0)
      write_npy_f32(*out, logits.data(), {int64_t(tokens.size()), rt->config.vocab_size});
  });
}

}  // namespace qwen3moe::launcher
