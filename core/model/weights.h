// The model's weights on the backend, this rank's slices of them: loaded from a checkpoint's
// tensors (mapped where the backend can read host memory, copied where it cannot) or, for
// benchmarks of models too large for a file, made on the backend itself (RandomWeights). The
// sharding lives here: TP slices of the attention heads and the dense MLP's intermediate
// dimension, vocabulary-parallel embedding and lm_head, the experts Topology places here.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/checkpoint/config.h"
#include "core/checkpoint/layout.h"
#include "core/checkpoint/progress.h"
#include "core/checkpoint/safetensors.h"
#include "kernels/backend.h"
#include "parallel/topology.h"

namespace qwen3moe {

// One decoder layer's weights on the backend: this rank's slices (TP over heads and the dense
// intermediate dimension, EP over experts); norms and biases in f32.
struct LayerWeights {
  float *input_norm = nullptr, *post_norm = nullptr, *q_norm = nullptr, *k_norm = nullptr;
  Weight q, k, v, o;
  float *q_bias = nullptr, *k_bias = nullptr, *v_bias = nullptr, *o_bias = nullptr;
  bool moe = false;
  Weight gate, up, down;  // dense MLP, this rank's slice of the intermediate dimension
  Weight router;          // [E, H], replicated
  std::vector<Weight> expert_gate, expert_up, expert_down;  // this rank's experts
  ExpertWeights gate_table, up_table, down_table;           // the same, as device tables (world 1)
};

class ModelWeights {
 public:
  // store: the checkpoint; null: weights made on the backend from random_seed.
  // progress: a bar on stderr of this rank's bytes as they load (rank 0 of an interactive run).
  ModelWeights(const ModelConfig& config, const WeightStore* store, uint64_t random_seed,
               Backend& backend, const Topology& topo, bool progress = false);
  ~ModelWeights() = default;
  ModelWeights(const ModelWeights&) = delete;
  ModelWeights& operator=(const ModelWeights&) = delete;

  std::vector<LayerWeights> layers;
  Weight embed, lm_head;           // [vocab slice, H] each (the same when tied)
  float* final_norm = nullptr;     // [H]
  float* rope_inv_freq = nullptr;  // [head_dim / 2] (core/model/rope_table.h)
  float rope_scale = 1;            // cos and sin scale (YaRN's attention factor)

  // Bytes of the weights this rank reads through the backend (its slices only).
  size_t resident_bytes() const { return resident_bytes_; }
  // Bytes one decode token reads on this rank: attention, dense MLPs, top-k of the local
  // experts on average, the lm_head slice.
  size_t active_bytes_per_token() const;

 private:
  // From the checkpoint (store_) or, without one, made on the backend.
  float* upload_vector(const std::string& name, const std::vector<int64_t>& shape, int64_t begin,
                       int64_t count);
  Weight slice(const std::string& name, const std::vector<int64_t>& shape, int64_t row_begin,
               int64_t rows, int64_t col_begin, int64_t cols);
  ExpertWeights expert_table(const std::vector<Weight>& experts);
  void attach_scales(Weight& w, const TensorView& t, int64_t row_begin, int64_t col_begin);
  std::vector<Weight> random_experts(int64_t layer, const char* proj, int64_t rows, int64_t cols);
  // Random weights (in the dtype Quantization::stored_dtype gives): the matrix w (rows, cols,
  // dtype and data set) filled, its fp8 block scales at `scales` (scale_blocks() floats).
  void fill_random_matrix(Weight& w, float* scales, uint64_t seed, const RandomInit& init);
  size_t random_scale_bytes(DType dtype, int64_t rows, int64_t cols) const;

  const ModelConfig& config_;
  const WeightStore* store_;  // null: made on the backend
  uint64_t random_seed_;
  Backend& backend_;
  const Topology& topo_;
  // The backend buffers these weights own, freed when the weights go, and also when loading
  // fails half-way (a member, so the constructor's unwinding frees them).
  struct OwnedBuffers {
    Backend& backend;
    std::vector<void*> buffers;
    void push_back(void* p) { buffers.push_back(p); }
    ~OwnedBuffers() {
      for (void* p : buffers) backend.free(p);
    }
  };
  OwnedBuffers owned_{backend_, {}};
  size_t resident_bytes_ = 0;
  std::unique_ptr<Progress> progress_;  // while loading
  void loaded(size_t bytes);            // counts resident bytes and advances the bar
};

}  // namespace qwen3moe
