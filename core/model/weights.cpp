#include "core/model/weights.h"

#include <string>

#include "core/checkpoint/layout.h"
#include "core/model/rank_plan.h"
#include "core/model/rope_table.h"
#include "kernels/common/check.h"
#include "kernels/common/split.h"

namespace qwen3moe {

namespace {
std::string layer_name(int64_t l, const char* rest) {
  return "model.layers." + std::to_string(l) + "." + rest;
}
std::string expert_name(int64_t l, int64_t e, const char* proj) {
  return "model.layers." + std::to_string(l) + ".mlp.experts." + std::to_string(e) + "." + proj +
         ".weight";
}

std::string shape_text(int64_t a, int64_t b) {
  return "[" + std::to_string(a) + ", " + std::to_string(b) + "]";
}
}  // namespace

// An F8_E4M3 tensor's weight_scale_inv beside it, checked against the config's blocks, and
// where this slice sits in it.
void ModelWeights::attach_scales(Weight& w, const TensorView& t, int64_t row_begin,
                                 int64_t col_begin) {
  const Quantization& q = config_.quantization;
  QWEN3MOE_CHECK(q.fp8(), "tensor '", t.name,
                 "' is F8_E4M3 but config.json has no fp8 quantization_config");
  const std::string module = t.name.substr(0, t.name.size() - std::string(".weight").size());
  const std::string scale_name = module + ".weight_scale_inv";
  const TensorView* sc = store_->find(scale_name);
  QWEN3MOE_CHECK(sc != nullptr, "FP8 tensor '", t.name, "' has no scale tensor '", scale_name, "'");
  const int64_t N = t.shape[0], K = t.shape[1], bn = q.block_rows, bk = q.block_cols;
  const int64_t br = ceil_div(N, bn), bc = ceil_div(K, bk);
  const std::vector<int64_t> want{br, bc};
  QWEN3MOE_CHECK(sc->dtype == DType::F32 && sc->shape == want, "scale tensor '", scale_name,
                 "' is ", dtype_name(sc->dtype), " ", sc->shape_str(), "; FP8 '", t.name, "' ",
                 shape_text(N, K), " with blocks ", shape_text(bn, bk),
                 " (weight_block_size) needs F32 ", shape_text(br, bc));
  // The kernels read 8 columns at a time within one block: a slice may start inside a block
  // (its scales are the block's), at a column that is a multiple of 8.
  QWEN3MOE_CHECK(col_begin % 8 == 0, "FP8 tensor '", t.name, "' ", shape_text(N, K),
                 ": this rank's slice starts at column ", col_begin,
                 ", not a multiple of 8; choose a --tp whose split of ", K, " columns is");
  w.scale = reinterpret_cast<const float*>(sc->data);
  w.scale_row0 = row_begin;
  w.scale_col0 = col_begin;
  w.block_rows = bn;
  w.block_cols = bk;
  w.scale_ld = bc;
}

size_t ModelWeights::random_scale_bytes(DType dtype, int64_t rows, int64_t cols) const {
  if (dtype != DType::F8E4M3) return 0;
  return size_t(config_.quantization.scale_blocks(rows, cols)) * sizeof(float);
}

// fp8: codes spread over e4m3's whole range (uniform in [-448, 448)) and every block's scale
// the same, so that code * scale has the bf16 matrix's spread (matrices have mean 0). Each
// slice is a tensor of its own (its blocks start at its first row and column).
void ModelWeights::fill_random_matrix(Weight& w, float* scales, uint64_t seed,
                                      const RandomInit& init) {
  if (w.dtype != DType::F8E4M3) {
    backend_.fill_random(const_cast<void*>(w.data), w.dtype, w.rows * w.cols, seed,
                         float(init.mean), float(init.std));
    return;
  }
  const Quantization& q = config_.quantization;
  constexpr double kSqrt3 = 1.7320508075688772;
  w.scale = scales;
  w.block_rows = q.block_rows;
  w.block_cols = q.block_cols;
  w.scale_ld = ceil_div(w.cols, q.block_cols);
  w.scale_row0 = w.scale_col0 = 0;
  backend_.fill_random(const_cast<void*>(w.data), DType::F8E4M3, w.rows * w.cols, seed, 0.0f,
                       float(448.0 / kSqrt3));
  backend_.fill_random(scales, DType::F32, w.scale_blocks(), 0, float(init.std * kSqrt3 / 448.0),
                       0.0f);
}

Weight ModelWeights::slice(const std::string& name, const std::vector<int64_t>& shape,
                           int64_t row_begin, int64_t rows, int64_t col_begin, int64_t cols) {
  if (!store_) {
    Weight w{nullptr, config_.quantization.stored_dtype(name), rows, cols, cols};
    // The matrix, then (fp8) its block scales on a 256-byte boundary: one allocation.
    const size_t data = (size_t(rows * cols) * dtype_size(w.dtype) + 255) / 256 * 256;
    char* p = static_cast<char*>(backend_.alloc(data + random_scale_bytes(w.dtype, rows, cols)));
    owned_.push_back(p);
    const RandomInit init =
        random_init(name.ends_with("mlp.gate.weight") ? TensorKind::kRouter : TensorKind::kMatrix,
                    shape.back());
    w.data = p;
    fill_random_matrix(
        w, reinterpret_cast<float*>(p + data),
        random_seed_ ^ tensor_name_hash(name) ^ uint64_t(row_begin * 7919 + col_begin), init);
    loaded(w.bytes());
    return w;
  }
  const TensorView& t = store_->expect(name, shape);
  QWEN3MOE_CHECK(t.shape.size() == 2, "tensor '", t.name, "' must be 2-D, has shape ",
                 t.shape_str());
  QWEN3MOE_CHECK(t.dtype == DType::BF16 || t.dtype == DType::F16 || t.dtype == DType::F32 ||
                     t.dtype == DType::F8E4M3,
                 "tensor '", t.name, "' has dtype ", dtype_name(t.dtype),
                 "; weights must be BF16, F16, F32 or F8_E4M3 (block-scaled)");
  Weight w;
  w.dtype = t.dtype;
  w.rows = rows;
  w.cols = cols;
  w.ld = t.shape[1];
  w.data = t.data + (size_t(row_begin) * size_t(w.ld) + size_t(col_begin)) * dtype_size(t.dtype);
  if (t.dtype == DType::F8E4M3) {
    attach_scales(w, t, row_begin, col_begin);
  } else {
    const std::string module = name.substr(0, name.size() - std::string(".weight").size());
    QWEN3MOE_CHECK(!config_.quantization.quantizes(module),
                   "config.json's quantization_config says fp8, but tensor '", name, "' is ",
                   dtype_name(t.dtype), " and modules_to_not_convert does not name '", module, "'");
  }
  loaded(w.bytes());
  return backend_.map_weight(w);
}

float* ModelWeights::upload_vector(const std::string& name, const std::vector<int64_t>& shape,
                                   int64_t begin, int64_t count) {
  if (!store_) {
    float* p = static_cast<float*>(backend_.alloc(size_t(count) * sizeof(float)));
    owned_.push_back(p);
    const RandomInit init =
        random_init(name.ends_with(".bias") ? TensorKind::kBias : TensorKind::kNorm, count);
    backend_.fill_random(p, DType::F32, count,
                         random_seed_ ^ tensor_name_hash(name) ^ uint64_t(begin), float(init.mean),
                         float(init.std));
    loaded(size_t(count) * sizeof(float));
    return p;
  }
  const TensorView& t = store_->expect(name, shape);
  std::vector<float> host(static_cast<size_t>(count));
  Weight w{t.data, t.dtype, 1, t.numel(), t.numel()};
  QWEN3MOE_CHECK(t.dtype == DType::BF16 || t.dtype == DType::F16 || t.dtype == DType::F32,
                 "tensor '", t.name, "' has dtype ", dtype_name(t.dtype),
                 "; weights must be BF16, F16 or F32");
  for (int64_t i = 0; i < count; ++i) {
    const int64_t j = begin + i;
    switch (w.dtype) {
      case DType::BF16:
        host[size_t(i)] = bf16_to_f32(reinterpret_cast<const uint16_t*>(t.data)[j]);
        break;
      case DType::F16:
        host[size_t(i)] = f16_to_f32(reinterpret_cast<const uint16_t*>(t.data)[j]);
        break;
      default:
        host[size_t(i)] = reinterpret_cast<const float*>(t.data)[j];
        break;
    }
  }
  float* dev = static_cast<float*>(backend_.alloc(host.size() * sizeof(float)));
  backend_.upload(dev, host.data(), host.size() * sizeof(float));
  owned_.push_back(dev);
  loaded(host.size() * sizeof(float));
  return dev;
}

std::vector<Weight> ModelWeights::random_experts(int64_t l, const char* proj, int64_t rows,
                                                 int64_t cols) {
  // One allocation for all of this rank's experts: cudaMalloc rounds every allocation up to
  // 2 MiB pages, and a 3 MiB expert (30B-A3B) alone would take 4.
  // Each expert is its matrix and then (fp8) its block scales, on 256-byte boundaries.
  const int64_t n = topo_.experts_per_rank();
  const DType dtype = config_.quantization.stored_dtype(expert_name(l, topo_.expert_begin(), proj));
  const size_t data = (size_t(rows * cols) * dtype_size(dtype) + 255) / 256 * 256;
  const size_t each = data + (random_scale_bytes(dtype, rows, cols) + 255) / 256 * 256;
  char* base = static_cast<char*>(backend_.alloc(each * size_t(n)));
  owned_.push_back(base);
  std::vector<Weight> out;
  for (int64_t i = 0; i < n; ++i) {
    const std::string name = expert_name(l, topo_.expert_begin() + i, proj);
    char* p = base + each * size_t(i);
    Weight w{p, dtype, rows, cols, cols};
    fill_random_matrix(w, reinterpret_cast<float*>(p + data), random_seed_ ^ tensor_name_hash(name),
                       random_init(TensorKind::kMatrix, cols));
    loaded(w.bytes());
    out.push_back(w);
  }
  return out;
}

ExpertWeights ModelWeights::expert_table(const std::vector<Weight>& experts) {
  ExpertWeights t;
  if (experts.empty()) return t;
  std::vector<const void*> ptrs;
  for (const Weight& w : experts) {
    QWEN3MOE_CHECK(w.dtype == experts[0].dtype && w.rows == experts[0].rows &&
                       w.cols == experts[0].cols && w.ld == w.cols,
                   "experts of one layer differ in dtype or shape");
    ptrs.push_back(w.data);
  }
  void* table = backend_.alloc(ptrs.size() * sizeof(void*));
  owned_.push_back(table);
  backend_.upload(table, ptrs.data(), ptrs.size() * sizeof(void*));
  t.table = static_cast<const void* const*>(table);
  t.dtype = experts[0].dtype;
  t.rows = experts[0].rows;
  t.cols = experts[0].cols;
  if (experts[0].scale) {  // fp8: each expert's block scales, whole experts (ld = cols)
    std::vector<const float*> scales;
    for (const Weight& w : experts) {
      QWEN3MOE_CHECK(
          w.scale && w.block_rows == experts[0].block_rows && w.block_cols == experts[0].block_cols,
          "experts of one layer differ in their fp8 blocks");
      scales.push_back(w.scale);
    }
    void* st = backend_.alloc(scales.size() * sizeof(float*));
    owned_.push_back(st);
    backend_.upload(st, scales.data(), scales.size() * sizeof(float*));
    t.scales = static_cast<const float* const*>(st);
    t.block_rows = experts[0].block_rows;
    t.block_cols = experts[0].block_cols;
  }
  return t;
}

void ModelWeights::loaded(size_t bytes) {
  resident_bytes_ += bytes;
  if (progress_) progress_->add(bytes);
}

ModelWeights::ModelWeights(const ModelConfig& config, const WeightStore* store,
                           uint64_t random_seed, Backend& backend, const Topology& topo,
                           bool progress)
    : config_(config), store_(store), random_seed_(random_seed), backend_(backend), topo_(topo) {
  if (progress)
    progress_ = std::make_unique<Progress>("weights",
                                           uint64_t(plan_rank(config, topo, store).total()), true);
  const ModelConfig& c = config_;
  const int64_t H = c.hidden_size, D = c.head_dim, V = c.vocab_size;
  const int64_t hq = topo_.heads_per_rank(), kvl = topo_.kv_heads_per_rank();
  const int tp = topo_.tp(), tpr = topo_.tp_rank();

  const int64_t vb = topo_.vocab_begin(), vn = topo_.vocab_end() - topo_.vocab_begin();
  embed = slice("model.embed_tokens.weight", {V, H}, vb, vn, 0, H);
  if (c.tie_word_embeddings) {
    lm_head = embed;
  } else {
    lm_head = slice("lm_head.weight", {V, H}, vb, vn, 0, H);
  }
  final_norm = upload_vector("model.norm.weight", {H}, 0, H);
  const RopeTable rope = rope_table(c);
  rope_inv_freq = static_cast<float*>(backend_.alloc(rope.inv_freq.size() * sizeof(float)));
  owned_.push_back(rope_inv_freq);
  backend_.upload(rope_inv_freq, rope.inv_freq.data(), rope.inv_freq.size() * sizeof(float));
  rope_scale = rope.scale;

  layers.resize(size_t(c.num_hidden_layers));
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    LayerWeights& L = layers[size_t(l)];
    L.input_norm = upload_vector(layer_name(l, "input_layernorm.weight"), {H}, 0, H);
    L.post_norm = upload_vector(layer_name(l, "post_attention_layernorm.weight"), {H}, 0, H);
    L.q_norm = upload_vector(layer_name(l, "self_attn.q_norm.weight"), {D}, 0, D);
    L.k_norm = upload_vector(layer_name(l, "self_attn.k_norm.weight"), {D}, 0, D);
    const int64_t q0 = topo_.head_begin() * D, kv0 = topo_.kv_head_begin() * D;
    L.q = slice(layer_name(l, "self_attn.q_proj.weight"), {c.q_dim(), H}, q0, hq * D, 0, H);
    L.k = slice(layer_name(l, "self_attn.k_proj.weight"), {c.kv_dim(), H}, kv0, kvl * D, 0, H);
    L.v = slice(layer_name(l, "self_attn.v_proj.weight"), {c.kv_dim(), H}, kv0, kvl * D, 0, H);
    L.o = slice(layer_name(l, "self_attn.o_proj.weight"), {H, c.q_dim()}, 0, H, q0, hq * D);
    if (c.attention_bias) {
      L.q_bias = upload_vector(layer_name(l, "self_attn.q_proj.bias"), {c.q_dim()}, q0, hq * D);
      L.k_bias = upload_vector(layer_name(l, "self_attn.k_proj.bias"), {c.kv_dim()}, kv0, kvl * D);
      L.v_bias = upload_vector(layer_name(l, "self_attn.v_proj.bias"), {c.kv_dim()}, kv0, kvl * D);
      // o_proj's bias is added once, by the first rank of the TP group.
      if (tpr == 0) L.o_bias = upload_vector(layer_name(l, "self_attn.o_proj.bias"), {H}, 0, H);
    }
    L.moe = c.is_moe_layer(l);
    if (L.moe) {
      const int64_t E = c.num_experts, I = c.moe_intermediate_size;
      L.router = slice(layer_name(l, "mlp.gate.weight"), {E, H}, 0, E, 0, H);
      if (!store_) {
        L.expert_gate = random_experts(l, "gate_proj", I, H);
        L.expert_up = random_experts(l, "up_proj", I, H);
        L.expert_down = random_experts(l, "down_proj", H, I);
      }
      for (int64_t e = topo_.expert_begin();
           store_ && e < topo_.expert_begin() + topo_.experts_per_rank(); ++e) {
        L.expert_gate.push_back(slice(expert_name(l, e, "gate_proj"), {I, H}, 0, I, 0, H));
        L.expert_up.push_back(slice(expert_name(l, e, "up_proj"), {I, H}, 0, I, 0, H));
        L.expert_down.push_back(slice(expert_name(l, e, "down_proj"), {H, I}, 0, H, 0, I));
      }
      L.gate_table = expert_table(L.expert_gate);
      L.up_table = expert_table(L.expert_up);
      L.down_table = expert_table(L.expert_down);
    } else {
      const int64_t I = c.intermediate_size;
      const Slice mine = even_split(I, tp, tpr);
      const int64_t i0 = mine.begin, in = mine.size;
      L.gate = slice(layer_name(l, "mlp.gate_proj.weight"), {I, H}, i0, in, 0, H);
      L.up = slice(layer_name(l, "mlp.up_proj.weight"), {I, H}, i0, in, 0, H);
      L.down = slice(layer_name(l, "mlp.down_proj.weight"), {H, I}, 0, H, i0, in);
    }
  }
  if (progress_) progress_->finish();
  progress_.reset();
}

size_t ModelWeights::active_bytes_per_token() const {
  size_t bytes = lm_head.bytes();
  for (const LayerWeights& L : layers) {
    bytes += L.q.bytes() + L.k.bytes() + L.v.bytes() + L.o.bytes();
    if (L.moe) {
      bytes += L.router.bytes();
      // Each token uses k of E experts; on average k/E of this rank's experts.
      size_t experts = 0;
      for (size_t e = 0; e < L.expert_gate.size(); ++e)
        experts += L.expert_gate[e].bytes() + L.expert_up[e].bytes() + L.expert_down[e].bytes();
      bytes += size_t(double(experts) * double(config_.num_experts_per_tok) /
                      double(config_.num_experts));
    } else {
      bytes += L.gate.bytes() + L.up.bytes() + L.down.bytes();
    }
  }
  return bytes;
}

}  // namespace qwen3moe
