// qwen3moe inspect: what a checkpoint (or a bare config) holds and how it splits over ranks.
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>

#include "core/checkpoint/config.h"
#include "core/checkpoint/layout.h"
#include "core/checkpoint/safetensors.h"
#include "core/model/kv_cache.h"
#include "core/model/model.h"
#include "core/model/rank_plan.h"
#include "core/model/workspace.h"
#include "kernels/common/check.h"
#include "launcher/commands.h"
#include "parallel/moe/expert_dispatch.h"
#include "parallel/topology.h"

namespace qwen3moe::launcher {
namespace {

struct InspectFlags {
  std::string model_dir, config;
  int dp = 1, tp = 1, ep = 0;  // ep: the world (dp x tp); 0: from dp and tp
  int64_t decode_batch = 256;  // sequences of one decode step over the whole deployment
  double gpu_memory_gb = 0;    // > 0: does the plan fit GPUs of this size, and the KV left
  double gpu_memory_utilization = 0.9;
  int64_t step_tokens = 32 + 256;  // the largest step the workspace is sized for
};

std::string human_bytes(double b) {
  const char* units[] = {"B", "KB", "MB", "GB", "TB"};
  int u = 0;
  while (b >= 1000 && u < 4) {
    b /= 1000;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.2f %s", b, units[u]);
  return buf;
}

std::string layer_kinds(const ModelConfig& c) {
  std::string out;
  int64_t start = 0;
  for (int64_t l = 1; l <= c.num_hidden_layers; ++l) {
    if (l < c.num_hidden_layers && c.is_moe_layer(l) == c.is_moe_layer(start)) continue;
    if (!out.empty()) out += ", ";
    out += std::to_string(start);
    if (l - 1 > start) out += "-" + std::to_string(l - 1);
    out += c.is_moe_layer(start) ? " moe" : " dense";
    start = l;
  }
  return out;
}

// Expected ranks other than a token's own that hold at least one of its k experts, when the
// router picks k distinct experts uniformly: (W-1) * (1 - C(E - E/W, k) / C(E, k)).
double expected_remote_ranks(int64_t E, int64_t k, int W) {
  const double per = double(E) / W;
  double none = 1;  // a given other rank holds none of the k
  for (int64_t j = 0; j < k; ++j) none *= (double(E) - per - double(j)) / (double(E) - double(j));
  return (W - 1) * (1 - none);
}

// Bytes one rank sends in one decode step of `batch` sequences over the whole deployment (split
// evenly over the DP groups), f32 payloads: the MoE all-to-all (uniform routing) and the
// group's tensor-parallel collectives (ring algorithms: (tp-1)/tp of the buffer per
// reduce-scatter or all-gather, twice that per all-reduce).
void print_step_traffic(const ModelConfig& c, const Topology& topo, int64_t batch) {
  const int dp = topo.dp(), tp = topo.tp(), W = topo.world();
  const double per_group = double(batch) / dp, per_rank = per_group / tp;
  const double H = double(c.hidden_size), row = H * 4;
  const int64_t moe_layers = c.moe_layer_count();
  const int64_t dense_layers = c.num_hidden_layers - moe_layers;
  double a2a = 0, remote = 0;
  if (c.is_moe() && W > 1) {
    remote = expected_remote_ranks(c.num_experts, c.num_experts_per_tok, W);
    a2a = per_rank * remote * double(moe_layers) *
          double(
              ExpertDispatch::dispatch_row_bytes(c.hidden_size, c.num_experts_per_tok, DType::F32) +
              ExpertDispatch::combine_row_bytes(c.hidden_size, DType::F32));
  }
  const double ring = double(tp - 1) / tp;
  // Embedding all-reduce; per dense layer two all-reduces (attention, MLP); per MoE layer the
  // attention's reduce-scatter and the all-gather after the experts; the logits' all-gather.
  const double tp_bytes =
      tp == 1
          ? 0
          : ring * per_group * row * (2.0 + 4.0 * double(dense_layers) + 2.0 * double(moe_layers)) +
                ring * per_group * double(c.vocab_size) * 4;
  std::printf(
      "\ndecode step of %lld sequences (%.0f per DP group, %.1f tokens per rank into the "
      "MoE), bytes each rank sends, f32:\n",
      (long long)batch, per_group, per_rank);
  if (c.is_moe())
    std::printf(
        "  all-to-all  %s  (dispatch + combine over %lld MoE layers; %.2f of %d peers per "
        "token, uniform routing)\n",
        human_bytes(a2a).c_str(), (long long)moe_layers, remote, W - 1);
  std::printf("  tp group    %s  (embedding, attention and MLP reductions, logits gather)\n",
              human_bytes(tp_bytes).c_str());
  // With DP groups rank 0 samples every group: each other group's first rank sends it the
  // group's logits, f32 [sequences, vocab].
  const double logits = dp > 1 ? per_group * double(c.vocab_size) * 4 : 0;
  if (dp > 1)
    std::printf(
        "  logits      %s  (the first rank of each group but rank 0's, to rank 0, which "
        "receives %s and samples them all)\n",
        human_bytes(logits).c_str(), human_bytes(logits * (dp - 1)).c_str());
  std::printf("  total       %s%s\n", human_bytes(a2a + tp_bytes + logits).c_str(),
              dp > 1 ? " (a group's first rank)" : "");
}

void run_inspect(const InspectFlags& f) {
  QWEN3MOE_CHECK(!f.model_dir.empty() || !f.config.empty(), "give --model DIR or --config FILE");
  const ModelConfig c = ModelConfig::load(f.model_dir.empty() ? f.config : f.model_dir);
  QWEN3MOE_CHECK(f.tp > 0, "--tp must be positive, got ", f.tp);
  QWEN3MOE_CHECK(f.dp > 0 && f.dp <= 65536, "--dp must be in [1, 65536], got ", f.dp);
  QWEN3MOE_CHECK(f.ep >= 0 && f.ep <= 65536, "--ep must be in [0, 65536], got ", f.ep);
  QWEN3MOE_CHECK(f.decode_batch > 0 && f.decode_batch <= (1 << 20),
                 "--decode-batch must be in [1, 1048576], got ", f.decode_batch);
  // The world: --ep when given (--dp then follows), else dp x tp.
  QWEN3MOE_CHECK(f.ep == 0 || f.dp == 1 || f.ep == f.dp * f.tp, "--ep ", f.ep, " is not --dp ",
                 f.dp, " x --tp ", f.tp);
  const int ep = f.ep > 0 ? f.ep : f.dp * f.tp;
  QWEN3MOE_CHECK(f.gpu_memory_gb >= 0 && f.gpu_memory_gb < 1e6,
                 "--gpu-memory must be a size in "
                 "GB, got ",
                 f.gpu_memory_gb);
  QWEN3MOE_CHECK(f.gpu_memory_utilization > 0 && f.gpu_memory_utilization <= 1,
                 "--gpu-memory-utilization must be in (0, 1], got ", f.gpu_memory_utilization);
  QWEN3MOE_CHECK(f.step_tokens > 0 && f.step_tokens <= (1 << 20),
                 "--step-tokens must be in [1, "
                 "1048576], got ",
                 f.step_tokens);
  QWEN3MOE_CHECK(ep % f.tp == 0, "--tp=", f.tp, " does not divide --ep=", ep,
                 " (EP spans the world; tp groups divide it)");
  const int world = ep, dp = world / f.tp;
  const Topology topo(0, world, f.tp,
                      {c.num_attention_heads, c.num_key_value_heads, c.num_experts, c.vocab_size});

  std::unique_ptr<WeightStore> store;
  if (!f.model_dir.empty() &&
      (std::filesystem::exists(std::filesystem::path(f.model_dir) / "model.safetensors") ||
       std::filesystem::exists(std::filesystem::path(f.model_dir) /
                               "model.safetensors.index.json")))
    store = std::make_unique<WeightStore>(WeightStore::open(f.model_dir));

  const RankPlan plan = plan_rank(c, topo, store.get());
  const Quantization& q = c.quantization;
  const double attn = plan.attention, experts = plan.experts, dense = plan.dense,
               vocab = plan.vocab, replicated = plan.replicated;

  const int64_t moe_layers = c.moe_layer_count();
  std::printf("architecture   %s (%s)\n", c.architecture.c_str(), c.model_type.c_str());
  std::printf("layers         %lld (%lld moe, %lld dense): %s\n", (long long)c.num_hidden_layers,
              (long long)moe_layers, (long long)(c.num_hidden_layers - moe_layers),
              layer_kinds(c).c_str());
  std::printf(
      "hidden         %lld, heads %lld q / %lld kv, head_dim %lld, vocab %lld, context %lld\n",
      (long long)c.hidden_size, (long long)c.num_attention_heads, (long long)c.num_key_value_heads,
      (long long)c.head_dim, (long long)c.vocab_size, (long long)c.max_position_embeddings);
  if (c.is_moe())
    std::printf("experts        %lld, top-%lld, moe_intermediate %lld, norm_topk_prob %s\n",
                (long long)c.num_experts, (long long)c.num_experts_per_tok,
                (long long)c.moe_intermediate_size, c.norm_topk_prob ? "true" : "false");
  std::printf("parameters     total %.3f B, active per token %.3f B\n", plan.params_total / 1e9,
              plan.params_active / 1e9);
  if (store)
    std::printf("weights        ");
  else if (q.fp8())
    std::printf(
        "weights        (no checkpoint: FP8 projections with %lldx%lld-block scales, the "
        "rest BF16) ",
        (long long)q.block_rows, (long long)q.block_cols);
  else
    std::printf("weights        (no checkpoint: assuming BF16) ");
  for (const auto& [dt, b] : plan.bytes_by_dtype)
    std::printf("%s %s  ", dt.c_str(), human_bytes(b).c_str());
  std::printf("\n");
  const double kv_per_token = double(KvCache::bytes_per_token(c, topo));
  std::printf("\nplan: world %d = dp %d x tp %d, ep %d  (per rank)\n", world, dp, f.tp, ep);
  std::printf("  attention   %s  (%lld q heads, %lld kv heads%s%s)\n", human_bytes(attn).c_str(),
              (long long)topo.heads_per_rank(), (long long)topo.kv_heads_per_rank(),
              f.tp > c.num_key_value_heads ? ", replicated" : "",
              dp > 1 ? "; a whole copy per DP group" : "");
  if (c.is_moe())
    std::printf("  experts     %s  (%lld of %lld per MoE layer)\n", human_bytes(experts).c_str(),
                (long long)topo.experts_per_rank(), (long long)c.num_experts);
  std::printf("  dense mlp   %s\n", human_bytes(dense).c_str());
  std::printf("  vocab       %s  (embedding%s, rows [%lld, %lld))\n", human_bytes(vocab).c_str(),
              c.tie_word_embeddings ? ", tied lm_head" : " + lm_head",
              (long long)topo.vocab_begin(), (long long)topo.vocab_end());
  std::printf("  replicated  %s  (norms, routers)\n", human_bytes(replicated).c_str());
  std::printf("  total       %s\n", human_bytes(plan.total()).c_str());
  std::printf("  kv cache    %s per token (f32), %s (bf16), %s (fp8)%s\n",
              human_bytes(kv_per_token).c_str(), human_bytes(kv_per_token / 2).c_str(),
              human_bytes(kv_per_token / 4).c_str(),
              dp > 1 ? "; a token lives in its DP group only" : "");
  // Over the deployment: each token's KV on every rank of its group.
  std::printf("  kv per token, whole deployment: %s (bf16) on %d rank%s\n",
              human_bytes(kv_per_token / 2 * f.tp).c_str(), f.tp, f.tp > 1 ? "s" : "");
  print_step_traffic(c, topo, f.decode_batch);
  if (f.gpu_memory_gb > 0) {
    // serve's budget on such a GPU: the utilization's share, less weights and the workspace
    // of the largest step (serve's defaults: --max-batch 32 + --prefill-budget 256 tokens).
    const double workspace = double(Workspace::arena_bytes(
        Model::workspace_shape(c, topo, Model::workspace_tokens(topo, f.step_tokens), 0)));
    const double usable = f.gpu_memory_gb * 1e9 * f.gpu_memory_utilization;
    const double left = usable - plan.total() - workspace;
    std::printf("\ngpu %.0f GB x %.2f = %s per rank: weights %s + workspace %s (%lld-token steps)",
                f.gpu_memory_gb, f.gpu_memory_utilization, human_bytes(usable).c_str(),
                human_bytes(plan.total()).c_str(), human_bytes(workspace).c_str(),
                (long long)f.step_tokens);
    if (left <= 0) {
      std::printf(" do NOT fit (short by %s)\n", human_bytes(-left).c_str());
    } else {
      std::printf(" fit; KV cache %s: %lld tokens in bf16, %lld in fp8, %lld in f32\n",
                  human_bytes(left).c_str(), (long long)(left / (kv_per_token / 2)),
                  (long long)(left / (kv_per_token / 4)), (long long)(left / kv_per_token));
      // Each DP group holds its own tokens: the deployment holds dp times a group's.
      std::printf("deployment     %lld tokens in bf16 over %d DP group%s of %d rank%s\n",
                  (long long)(double(dp) * std::floor(left / (kv_per_token / 2))), dp,
                  dp > 1 ? "s" : "", f.tp, f.tp > 1 ? "s" : "");
    }
  }
}

}  // namespace

void register_inspect(CLI::App& app) {
  auto* cmd = app.add_subcommand("inspect", "Describe a model and plan its memory per rank");
  auto f = std::make_shared<InspectFlags>();
  cmd->add_option("--model", f->model_dir, "Hugging Face model folder");
  cmd->add_option("--config", f->config, "A config.json (when there are no weights)");
  cmd->add_option("--dp", f->dp,
                  "Attention data-parallel groups for the plan (world = dp x tp; experts over "
                  "the whole world)")
      ->capture_default_str();
  cmd->add_option("--tp", f->tp, "Tensor-parallel size within a DP group for the plan")
      ->capture_default_str();
  cmd->add_option("--ep", f->ep,
                  "Expert-parallel size = world size for the plan (default: dp x tp)");
  cmd->add_option("--decode-batch", f->decode_batch,
                  "Sequences of one decode step over the whole deployment, for the per-step "
                  "traffic")
      ->capture_default_str();
  cmd->add_option("--gpu-memory", f->gpu_memory_gb,
                  "GB per GPU: whether weights + workspace fit and how many KV tokens remain");
  cmd->add_option("--gpu-memory-utilization", f->gpu_memory_utilization,
                  "With --gpu-memory: the share serve may use (as serve's flag)")
      ->capture_default_str();
  cmd->add_option("--step-tokens", f->step_tokens,
                  "With --gpu-memory: the largest step's tokens (serve: --max-batch + "
                  "--prefill-budget)")
      ->capture_default_str();
  cmd->callback([f] { run_inspect(*f); });
}

}  // namespace qwen3moe::launcher
