// bench --backend cuda (one GPU, world 1). Weights are a checkpoint or made on the GPU by
// fill_random (a 60 GB model needs neither a file nor a host copy). Figures:
// - prefill: one sequence of --prompt-len tokens; tok/s and TFLOP/s (2 per active weight per
//   token + attention's causal QK^T and PV), as a share of the measured bf16 GEMM rate;
// - decode at each --decode-batches size B: B sequences of --decode-context tokens, then timed
//   steps of B tokens; tok/s, and the bytes one step must read: attention and router weights,
//   the experts the step's tokens actually selected (counted on an untimed step), lm_head, the
//   embedding rows and the KV cache; as GB/s and a share of the measured HBM copy bandwidth.
#include "bench/cuda_bench.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>

#include "bench/bench_common.h"
#include "core/checkpoint/config.h"
#include "core/checkpoint/safetensors.h"
#include "core/model/kv_cache.h"
#include "core/model/model.h"
#include "kernels/backend.h"
#include "kernels/common/check.h"
#include "kernels/common/rng.h"
#include "kernels/common/split.h"
#include "parallel/comm/communicator.h"
#include "parallel/topology.h"

// A build without CUDA has no kernels/cuda (nor the device communicator): the bench then only
// says so (below).
#ifdef QWEN3MOE_HAVE_CUDA
#include "kernels/cuda/peaks.h"
#include "parallel/comm/local_device_communicator.h"
namespace qwen3moe::bench {
namespace {

// Bytes of weights one step reads outside the experts, and per expert: bf16, the projections of
// an fp8 config one byte each and a 4-byte scale per block.
struct StepBytes {
  double attention = 0, router = 0, per_expert = 0, lm_head = 0, embed_row = 0;
  double kv_per_token = 0;  // K and V of one cached position, all layers, in the cache's dtype
  double proj = 2;          // bytes per projection weight
};

StepBytes step_bytes(const ModelConfig& c, DType kv_dtype) {
  StepBytes b;
  const Quantization& q = c.quantization;
  if (q.fp8()) b.proj = 1.0 + 4.0 / double(q.block_rows * q.block_cols);
  const double H = double(c.hidden_size), L = double(c.num_hidden_layers);
  b.attention = L * b.proj * H * (2.0 * double(c.q_dim()) + 2.0 * double(c.kv_dim()));
  const int64_t moe = c.moe_layer_count();
  b.router = double(moe) * 2.0 * double(c.num_experts) * H;
  b.per_expert = b.proj * 3.0 * double(c.moe_intermediate_size) * H;
  // Dense layers read their whole MLP every step.
  b.attention += double(c.num_hidden_layers - moe) * b.proj * 3.0 * double(c.intermediate_size) * H;
  b.lm_head = 2.0 * double(c.vocab_size) * H;
  b.embed_row = 2.0 * H;
  b.kv_per_token = L * 2.0 * double(c.kv_dim()) * double(dtype_size(kv_dtype));
  return b;
}

// Weights one prefill token uses, as parameters, the lm_head included.
double active_params(const ModelConfig& c) {
  const StepBytes b = step_bytes(c, DType::F32);
  const double moe = double(c.moe_layer_count());
  return (b.attention + moe * double(c.num_experts_per_tok) * b.per_expert) / b.proj +
         (b.router + b.lm_head) / 2.0;
}

// A batch of one new token for each sequence (or a run of prompt tokens for one).
struct Seq {
  std::unique_ptr<SequenceKv> kv;
  int32_t length = 0;
};

void append(StepBatch& b, Seq& s, int seq_index, int64_t n, Rng& rng, const ModelConfig& c) {
  std::vector<int32_t> slots;
  s.kv->append(n, slots);
  for (int64_t i = 0; i < n; ++i) {
    b.tokens.push_back(int32_t(rng.next() % uint64_t(c.vocab_size)));
    b.positions.push_back(s.length + int32_t(i));
    b.token_seq.push_back(seq_index);
    b.slots.push_back(slots[size_t(i)]);
  }
  s.length += int32_t(n);
}

// width: the block-table width; 0 for the longest sequence's. A fixed width keeps decode
// steps one graph shape while the sequences grow.
void finish_tables(StepBatch& b, const std::vector<Seq*>& seqs, int width = 0) {
  b.max_blocks_per_seq = width;
  for (const Seq* s : seqs)
    b.max_blocks_per_seq = std::max(b.max_blocks_per_seq, int(s->kv->blocks().size()));
  b.block_tables.assign(seqs.size() * size_t(b.max_blocks_per_seq), 0);
  for (size_t i = 0; i < seqs.size(); ++i)
    std::copy(seqs[i]->kv->blocks().begin(), seqs[i]->kv->blocks().end(),
              b.block_tables.begin() + int64_t(i) * b.max_blocks_per_seq);
}

}  // namespace

void run_cuda_bench(const CudaBenchOptions& o) {
  QWEN3MOE_CHECK(o.prompt_len > 0 && o.decode_tokens > 0 && o.decode_context > 0,
                 "--prompt-len, --decode-tokens and --decode-context must be positive");
  for (int b : o.decode_batches)
    QWEN3MOE_CHECK(b > 0 && b <= 4096, "--decode-batches: batch size ", b, " outside 1..4096");
  const bool random = o.model_dir.empty();
  const ModelConfig c = ModelConfig::load(random ? o.config_path : o.model_dir);
  QWEN3MOE_CHECK(
      o.prompt_len + 1 <= c.max_position_embeddings &&
          o.decode_context + 2 * o.decode_tokens + 6 <= c.max_position_embeddings,
      "--prompt-len / --decode-context + --decode-tokens exceed max_position_embeddings=",
      c.max_position_embeddings);
  print_model_line(c);
  // The ceilings first, while the card's memory is still free.
  const double hbm = cuda::measure_copy_bandwidth();
  const double gemm = cuda::measure_bf16_gemm_peak();
  std::printf(
      "gpu            %s; HBM %.0f GB/s (measured: 1 GiB cudaMemcpy device to device, "
      "read + write, median of 10), bf16 GEMM %.0f TFLOP/s (measured: cublasGemmEx "
      "8192^3 bf16 in, f32 out and compute, median of 10)\n",
      cuda::device_name().c_str(), hbm, gemm);

  auto backend = make_cuda_backend(0);
  auto host_comm = make_local_communicator();
  auto comm = make_local_device_communicator(*backend);
  const Topology topo(0, 1, 1,
                      {c.num_attention_heads, c.num_key_value_heads, c.num_experts, c.vocab_size});
  double t0 = bench_now();
  WeightStore store;
  std::unique_ptr<Model> model;
  if (random) {
    model = std::make_unique<Model>(c, RandomWeights{o.seed}, *backend, *comm, *host_comm, topo);
  } else {
    store = WeightStore::open(o.model_dir);
    model = std::make_unique<Model>(c, store, *backend, *comm, *host_comm, topo);
  }
  backend->synchronize();
  std::printf(
      "weights        %.2f GB %s%s in %.1f s\n", double(model->resident_weight_bytes()) / 1e9,
      random ? "made on the GPU (fill_random: hash of seed and index, uniform)"
             : "copied from the checkpoint",
      c.quantization.fp8() ? ", projections fp8 e4m3 with block scales (1 byte a weight)" : "",
      bench_now() - t0);

  // KV: the prefill sequence plus the largest decode batch, in 16-token blocks.
  constexpr int64_t kBlock = 16;
  const int max_b = *std::max_element(o.decode_batches.begin(), o.decode_batches.end());
  // Context, the timed steps twice (eager, graph) and 4 untimed steps.
  const int64_t per_seq = ceil_div(o.decode_context + 2 * o.decode_tokens + 6, kBlock);
  const int64_t blocks = (o.prompt_len + kBlock) / kBlock + int64_t(max_b) * per_seq + 1;
  KvCache cache(c, topo, *backend, blocks, kBlock, o.kv_dtype);
  std::printf("kv cache       %lld blocks of %lld tokens, %.2f GB (%s)\n", (long long)blocks,
              (long long)kBlock,
              double(blocks * kBlock) * double(KvCache::bytes_per_token(c, topo, o.kv_dtype)) / 1e9,
              dtype_name(o.kv_dtype));
  Rng rng(o.seed + 1);
  std::vector<float> logits;

  // ---- prefill ----
  {
    Seq s{std::make_unique<SequenceKv>(cache), 0};
    StepBatch b;
    append(b, s, 0, o.prompt_len, rng, c);
    finish_tables(b, {&s});
    b.logit_rows = {int32_t(o.prompt_len - 1)};
    std::vector<double> secs;
    for (int rep = 0; rep < 4; ++rep) {  // the first grows the workspaces: untimed
      const double a = bench_now();
      model->forward(b, cache, logits);  // ends with the logits' download: synchronous
      if (rep > 0) secs.push_back(bench_now() - a);
    }
    std::sort(secs.begin(), secs.end());
    const double t = secs[secs.size() / 2];
    const double tflops = prefill_flops(c, active_params(c), o.prompt_len) / t / 1e12;
    std::printf(
        "prefill        %d tokens in %.1f ms (median of 3): %.0f tok/s, %.1f TFLOP/s = "
        "%.1f%% of the measured bf16 GEMM rate\n",
        o.prompt_len, t * 1e3, o.prompt_len / t, tflops, 100.0 * tflops / gemm);
  }

  // ---- decode at each batch size ----
  const StepBytes sb = step_bytes(c, o.kv_dtype);
  for (int B : o.decode_batches) {
    std::vector<Seq> seqs(static_cast<size_t>(B));
    std::vector<Seq*> ptrs;
    for (auto& s : seqs) {
      s.kv = std::make_unique<SequenceKv>(cache);
      ptrs.push_back(&s);
    }
    // Context: prefill the sequences a few at a time (at most prompt_len tokens a forward).
    for (int i = 0; i < B;) {
      StepBatch b;
      std::vector<Seq*> group;
      for (; i < B && (group.empty() || int64_t(group.size() + 1) * o.decode_context <=
                                            std::max(o.prompt_len, o.decode_context));
           ++i) {
        append(b, seqs[size_t(i)], int(group.size()), o.decode_context, rng, c);
        group.push_back(&seqs[size_t(i)]);
      }
      finish_tables(b, group);
      b.logit_rows = {int32_t(b.tokens.size() - 1)};
      model->forward(b, cache, logits);
    }
    auto step = [&] {
      StepBatch b;
      for (int i = 0; i < B; ++i) {
        append(b, seqs[size_t(i)], i, 1, rng, c);
        b.logit_rows.push_back(i);
      }
      finish_tables(b, ptrs, int(per_seq));
      model->forward(b, cache, logits);
    };
    step();  // grows the workspace for B rows: untimed
    model->count_active_experts(true);
    step();
    model->count_active_experts(false);
    const double touched = model->active_experts_counted();  // over all MoE layers, one step
    const int64_t moe_layers = c.moe_layer_count();
    // Eager (every kernel a launch), then CUDA graphs (a step one replay after one capture).
    for (const bool graphs : {false, true}) {
      model->set_graphs(graphs);
      double t = 0;
      const int64_t ctx0 = seqs[0].length;
      try {
        if (graphs) {  // untimed: the shape's first step runs eagerly, the second is captured
          step();
          step();
        }
        const double a = bench_now();
        for (int s = 0; s < o.decode_tokens; ++s) step();
        t = (bench_now() - a) / o.decode_tokens;
      } catch (const std::exception& e) {
        std::printf("decode b=%-4d  %s: FAILED: %s\n", B, graphs ? "graph" : "eager", e.what());
        model->set_graphs(false);
        continue;
      }
      const double kv = double(B) * (double(ctx0) + 0.5 * (o.decode_tokens + 1)) * sb.kv_per_token;
      const double experts = touched * sb.per_expert;
      const double bytes = sb.attention + sb.router + experts + sb.lm_head + B * sb.embed_row + kv;
      const double gbs = bytes / t / 1e9;
      std::printf(
          "decode b=%-4d  %s, %d steps: %.2f ms/step, %.0f tok/s; reads %.3f GB/step "
          "(attention %.2f, router %.3f, experts %.2f = %.1f of %lld per layer, lm_head "
          "%.2f, KV %.3f): %.0f GB/s = %.1f%% of measured HBM\n",
          B, graphs ? "graph" : "eager", o.decode_tokens, t * 1e3, B / t, bytes / 1e9,
          sb.attention / 1e9, sb.router / 1e9, experts / 1e9,
          touched / double(std::max<int64_t>(1, moe_layers)), (long long)c.num_experts,
          sb.lm_head / 1e9, kv / 1e9, gbs, 100.0 * gbs / hbm);
    }
    model->set_graphs(false);
  }
  std::printf(
      "kernels        prefill: dense projections and lm_head cuBLAS GemmEx on split-bf16 "
      "activations (hi + lo: twice the tensor work the TFLOP/s above counts), experts moe_matmul "
      "wmma (split-bf16 WMMA 64x64 tiles, one launch per projection), attention attention.cu "
      "(one block per token and head, f32). decode: projections and lm_head the gemv kernel "
      "(m <= 8; cuBLAS split-bf16 above), experts moe_align + moe_swiglu gemv (gate, up and "
      "silu in one launch over the active experts only) + moe_matmul gemv (down) + moe_combine, "
      "router router.cu (a warp per token), attention attention.cu; 'eager' launches "
      "every kernel, 'graph' replays one captured CUDA graph per step. fp8 projections: the "
      "same gemv widening 16 codes a load, prefill the wmma kernel on exact bf16 tiles of "
      "the codes with each block's product scaled (dense ones too)\n");
}

}  // namespace qwen3moe::bench
#else
#include "kernels/common/check.h"
namespace qwen3moe::bench {
void run_cuda_bench(const CudaBenchOptions&) {
  QWEN3MOE_FAIL("bench --backend cuda: this build has no CUDA (configure with nvcc present)");
}
}  // namespace qwen3moe::bench
#endif
