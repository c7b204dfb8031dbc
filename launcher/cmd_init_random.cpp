// qwen3moe init-random: a Hugging Face folder with random bf16 weights for a config.
#include <unistd.h>

#include "core/checkpoint/random_checkpoint.h"
#include "launcher/commands.h"

namespace qwen3moe::launcher {

void register_init_random(CLI::App& app) {
  auto* cmd =
      app.add_subcommand("init-random", "Write a model folder with random bf16 (or fp8) weights");
  auto config = std::make_shared<std::string>();
  auto out = std::make_shared<std::string>();
  auto o = std::make_shared<RandomCheckpointOptions>();
  cmd->add_option("--config", *config, "config.json of the model")->required();
  cmd->add_option("--out", *out, "Output folder")->required();
  cmd->add_option("--seed", o->seed, "Random seed")->capture_default_str();
  cmd->add_option("--max-shard-bytes", o->max_shard_bytes, "Shard above this size")
      ->capture_default_str();
  cmd->add_option("--dtype", o->dtype,
                  "bf16, or fp8: every projection F8_E4M3 with a weight_scale_inv per 128x128 "
                  "block and the config's quantization_config, as Qwen's FP8 releases")
      ->check(CLI::IsMember({"bf16", "fp8"}))
      ->capture_default_str();
  cmd->callback([config, out, o] {
    o->progress = isatty(STDERR_FILENO);
    write_random_checkpoint(*config, *out, *o);
  });
}

}  // namespace qwen3moe::launcher
