#include "core/engine/generate.h"

#include <algorithm>
#include <chrono>

#include "core/engine/debug_stall.h"
#include "kernels/common/check.h"

namespace qwen3moe {
namespace {

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// A batch of one sequence: the tokens from position `start` on. With DP groups the sequence
// is DP group 0's; the other groups run the step with no tokens.
StepBatch single_sequence_batch(const Topology& topo, const std::vector<int32_t>& tokens,
                                int64_t start, SequenceKv& seq, bool all_logits) {
  StepBatch b;
  const int64_t T = int64_t(tokens.size());
  if (topo.dp() > 1) {
    b.group_tokens.assign(size_t(topo.dp()), 0);
    b.group_tokens[0] = int32_t(T);
    if (topo.dp_rank() != 0) return b;
  }
  b.tokens = tokens;
  for (int64_t t = 0; t < T; ++t) {
    b.positions.push_back(int32_t(start + t));
    b.token_seq.push_back(0);
  }
  seq.append(T, b.slots);
  b.block_tables = seq.blocks();
  b.max_blocks_per_seq = int(seq.blocks().size());
  if (all_logits) {
    for (int64_t t = 0; t < T; ++t) b.logit_rows.push_back(int32_t(t));
  } else {
    b.logit_rows.push_back(int32_t(T - 1));
  }
  return b;
}

}  // namespace

void validate_prompt(const ModelConfig& config, const std::vector<int32_t>& prompt) {
  QWEN3MOE_CHECK(!prompt.empty(), "the prompt is empty");
  for (size_t i = 0; i < prompt.size(); ++i)
    QWEN3MOE_CHECK(prompt[i] >= 0 && prompt[i] < config.vocab_size, "token id ", prompt[i],
                   " at index ", i, " is outside the vocabulary [0, ", config.vocab_size, ")");
  QWEN3MOE_CHECK(int64_t(prompt.size()) <= config.max_position_embeddings, "prompt of ",
                 prompt.size(),
                 " tokens is longer than max_position_embeddings=", config.max_position_embeddings);
}

std::vector<float> prefill_logits(Model& model, KvCache& cache, const std::vector<int32_t>& ids) {
  validate_prompt(model.config(), ids);
  SequenceKv seq(cache);
  StepBatch b = single_sequence_batch(model.topology(), ids, 0, seq, true);
  std::vector<float> logits;
  model.forward(b, cache, logits);
  return logits;
}

GenerationResult generate(Model& model, Communicator& comm, KvCache& cache,
                          const std::vector<int32_t>& prompt, const GenerationOptions& options,
                          const std::function<void(int32_t)>& on_token) {
  const ModelConfig& config = model.config();
  validate_prompt(config, prompt);
  QWEN3MOE_CHECK(options.max_new_tokens > 0, "max_new_tokens must be positive, got ",
                 options.max_new_tokens);
  validate(options.sampling);
  Sampler sampler(options.sampling);
  sampler.set_prompt(prompt);
  SequenceKv seq(cache);
  GenerationResult result;
  result.finish_reason = "length";
  std::vector<float> logits;
  const int64_t V = config.vocab_size;

  double t0 = now_seconds();
  StepBatch b = single_sequence_batch(model.topology(), prompt, 0, seq, false);
  int64_t forward_step = 0;
  comm.set_step(forward_step);
  if (options.profiler) options.profiler->set_step(forward_step);
  ++forward_step;
  model.forward(b, cache, logits);
  result.prefill_seconds = now_seconds() - t0;

  t0 = now_seconds();
  int64_t pos = int64_t(prompt.size());
  for (int32_t step = 0; step < options.max_new_tokens; ++step) {
    int32_t next = comm.rank() == 0 ? sampler.sample(logits.data(), V) : 0;
    comm.set_phase(-1, "sampling");
    comm.broadcast(&next, sizeof(next), 0);
    result.output_ids.push_back(next);
    if (on_token) on_token(next);
    const auto& extra = options.stop_token_ids;
    const bool eos = std::find(config.eos_token_ids.begin(), config.eos_token_ids.end(), next) !=
                         config.eos_token_ids.end() ||
                     std::find(extra.begin(), extra.end(), next) != extra.end();
    if (eos && !options.ignore_eos) {
      result.finish_reason = "stop";
      break;
    }
    if (step + 1 == options.max_new_tokens || pos >= config.max_position_embeddings) break;
    b = single_sequence_batch(model.topology(), {next}, pos, seq, false);
    debug_stall_if_asked(comm.rank(), forward_step);
    comm.set_step(forward_step);
    if (options.profiler) options.profiler->set_step(forward_step);
    ++forward_step;
    model.forward(b, cache, logits);
    ++pos;
  }
  result.decode_seconds = now_seconds() - t0;
  return result;
}

}  // namespace qwen3moe
