// bench --backend cuda: the engine on one GPU, in hardware units against what the bench
// measures on the card itself (HBM copy bandwidth, bf16 cuBLAS GEMM rate).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kernels/common/dtype.h"

namespace qwen3moe::bench {

struct CudaBenchOptions {
  std::string model_dir;    // a checkpoint, or
  std::string config_path;  // random weights made on the GPU for this config
  uint64_t seed = 0;
  int prompt_len = 512;
  int decode_tokens = 32;              // timed steps per batch size
  std::vector<int> decode_batches{1};  // sequences decoded together
  int decode_context = 128;            // tokens each decode sequence holds before the timed steps
  DType kv_dtype = DType::BF16;        // --kv-dtype (auto: bf16 on CUDA)
};

void run_cuda_bench(const CudaBenchOptions& options);

}  // namespace qwen3moe::bench
