#include "core/model/model.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "core/checkpoint/layout.h"
#include "kernels/common/check.h"
#include "kernels/common/split.h"

namespace qwen3moe {

struct Model::Layer {
  float *input_norm = nullptr, *post_norm = nullptr, *q_norm = nullptr, *k_norm = nullptr;
  Weight q, k, v, o;
  float *q_bias = nullptr, *k_bias = nullptr, *v_bias = nullptr, *o_bias = nullptr;
  bool moe = false;
  Weight gate, up, down;  // dense MLP, this rank's slice of the intermediate dimension
  Weight router;          // [E, H], replicated
  std::vector<Weight> expert_gate, expert_up, expert_down;  // this rank's experts
  ExpertWeights gate_table, up_table, down_table;           // the same, as device tables (world 1)
};

namespace {
std::string layer_name(int64_t l, const char* rest) {
  return "model.layers." + std::to_string(l) + "." + rest;
}
std::string expert_name(int64_t l, int64_t e, const char* proj) {
  return "model.layers." + std::to_string(l) + ".mlp.experts." + std::to_string(e) + "." + proj +
         ".weight";
}
}  // namespace

Weight Model::slice(const std::string& name, const std::vector<int64_t>& shape, int64_t row_begin,
                    int64_t rows, int64_t col_begin, int64_t cols) {
  if (!store_) {
    Weight w{nullptr, DType::BF16, rows, cols, cols};
    void* p = backend_.alloc(w.bytes());
    owned_.push_back(p);
    const RandomInit init =
        random_init(name.ends_with("mlp.gate.weight") ? TensorKind::kRouter : TensorKind::kMatrix,
                    shape.back());
    backend_.fill_random(
        p, DType::BF16, rows * cols,
        random_seed_ ^ tensor_name_hash(name) ^ uint64_t(row_begin * 7919 + col_begin),
        float(init.mean), float(init.std));
    w.data = p;
    resident_bytes_ += w.bytes();
    return w;
  }
  const TensorView& t = store_->expect(name, shape);
  QWEN3MOE_CHECK(t.shape.size() == 2, "tensor '", t.name, "' must be 2-D, has shape ",
                 t.shape_str());
  QWEN3MOE_CHECK(t.dtype == DType::BF16 || t.dtype == DType::F16 || t.dtype == DType::F32,
                 "tensor '", t.name, "' has dtype ", dtype_name(t.dtype),
                 "; weights must be BF16, F16 or F32");
  Weight w;
  w.dtype = t.dtype;
  w.rows = rows;
  w.cols = cols;
  w.ld = t.shape[1];
  w.data = t.data + (size_t(row_begin) * size_t(w.ld) + size_t(col_begin)) * dtype_size(t.dtype);
  resident_bytes_ += w.bytes();
  return backend_.map_weight(w);
}

float* Model::upload_vector(const std::string& name, const std::vector<int64_t>& shape,
                            int64_t begin, int64_t count) {
  if (!store_) {
    float* p = static_cast<float*>(backend_.alloc(size_t(count) * sizeof(float)));
    owned_.push_back(p);
    const RandomInit init =
        random_init(name.ends_with(".bias") ? TensorKind::kBias : TensorKind::kNorm, count);
    backend_.fill_random(p, DType::F32, count,
                         random_seed_ ^ tensor_name_hash(name) ^ uint64_t(begin), float(init.mean),
                         float(init.std));
    resident_bytes_ += size_t(count) * sizeof(float);
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
  resident_bytes_ += host.size() * sizeof(float);
  return dev;
}

std::vector<Weight> Model::random_experts(int64_t l, const char* proj, int64_t rows, int64_t cols) {
  // One allocation for all of this rank's experts: cudaMalloc rounds every allocation up to
  // 2 MiB pages, and a 3 MiB expert (30B-A3B) alone would take 4.
  const int64_t n = topo_.experts_per_rank();
  const size_t each = size_t(rows * cols) * 2;
  char* base = static_cast<char*>(backend_.alloc(each * size_t(n)));
  owned_.push_back(base);
  std::vector<Weight> out;
  for (int64_t i = 0; i < n; ++i) {
    const std::string name = expert_name(l, topo_.expert_begin() + i, proj);
    Weight w{base + each * size_t(i), DType::BF16, rows, cols, cols};
    const RandomInit init = random_init(TensorKind::kMatrix, cols);
    backend_.fill_random(base + each * size_t(i), DType::BF16, rows * cols,
                         random_seed_ ^ tensor_name_hash(name), float(init.mean), float(init.std));
    resident_bytes_ += w.bytes();
    out.push_back(w);
  }
  return out;
}

ExpertWeights Model::expert_table(const std::vector<Weight>& experts) {
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
  return t;
}

Model::Model(const ModelConfig& config, const WeightStore& ws, Backend& backend, Communicator& comm,
             Communicator& host_comm, const Topology& topo)
    : config_(config),
      store_(&ws),
      backend_(backend),
      comm_(comm),
      host_comm_(host_comm),
      topo_(topo),
      ws_(backend),
      graphs_cache_(backend) {
  load_weights();
}

Model::Model(const ModelConfig& config, const RandomWeights& random, Backend& backend,
             Communicator& comm, Communicator& host_comm, const Topology& topo)
    : config_(config),
      random_seed_(random.seed),
      backend_(backend),
      comm_(comm),
      host_comm_(host_comm),
      topo_(topo),
      ws_(backend),
      graphs_cache_(backend) {
  load_weights();
}

void Model::load_weights() {
  QWEN3MOE_CHECK(topo_.tp() == comm_.size(), "tp=", topo_.tp(), " is smaller than the world of ",
                 comm_.size(), " ranks; attention data parallelism is not supported yet");
  QWEN3MOE_CHECK(host_comm_.size() == comm_.size() && host_comm_.rank() == comm_.rank(),
                 "the host communicator (rank ", host_comm_.rank(), " of ", host_comm_.size(),
                 ") is not the device one's world (rank ", comm_.rank(), " of ", comm_.size(), ")");
  const ModelConfig& c = config_;
  const int64_t H = c.hidden_size, D = c.head_dim, V = c.vocab_size;
  const int64_t hq = topo_.heads_per_rank(), kvl = topo_.kv_heads_per_rank();
  const int tp = topo_.tp(), tpr = topo_.tp_rank();

  const int64_t vb = topo_.vocab_begin(), vn = topo_.vocab_end() - topo_.vocab_begin();
  embed_ = slice("model.embed_tokens.weight", {V, H}, vb, vn, 0, H);
  if (c.tie_word_embeddings) {
    lm_head_ = embed_;
  } else {
    lm_head_ = slice("lm_head.weight", {V, H}, vb, vn, 0, H);
  }
  final_norm_ = upload_vector("model.norm.weight", {H}, 0, H);

  layers_.resize(size_t(c.num_hidden_layers));
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    Layer& L = layers_[size_t(l)];
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
      // One dispatcher for every MoE layer and every world size (the identity at world 1).
      if (!moe_) moe_ = std::make_unique<MoeLayer>(config_, backend_, comm_, topo_);
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
}

std::vector<bool> Model::moe_layers() const {
  std::vector<bool> out;
  for (const Layer& L : layers_) out.push_back(L.moe);
  return out;
}

Model::~Model() {
  for (void* p : owned_) backend_.free(p);
}

size_t Model::active_weight_bytes_per_token() const {
  size_t bytes = lm_head_.bytes();
  for (const Layer& L : layers_) {
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

void Model::reserve(int64_t T, int64_t table_elems) {
  bool moved = false;  // buffers captured graphs point into were replaced
  if (T > ws_.tokens()) {
    const ModelConfig& c = config_;
    // A multiple of the world size, so token slices of a reduce-scatter are equal.
    const int64_t W = comm_.size();
    const int64_t N = ceil_div(std::max<int64_t>(T, 2 * ws_.tokens()), W) * W;
    const int64_t k = std::max<int64_t>(1, c.num_experts_per_tok);
    WorkspaceShape s;
    s.tokens = N;
    s.hidden = c.hidden_size;
    s.q_dim = topo_.heads_per_rank() * c.head_dim;
    s.kv_dim = topo_.kv_heads_per_rank() * c.head_dim;
    s.ffn = std::max(c.intermediate_size, k * c.moe_intermediate_size);
    s.top_k = k;
    s.experts = std::max<int64_t>(1, c.num_experts);
    s.vocab_local = topo_.vocab_end() - topo_.vocab_begin();
    // Expert input rows of one dispatch: own tokens, rows packed for the peers, the peers'
    // tokens (the dispatcher holds them; here: moe_align's pair slots, k per row).
    s.dispatch_rows = (2 * W - 1) * (N / W);
    ws_.allocate(s);
    if (moe_) moe_->reserve(N / W);
    moved = true;
  }
  moved |= ws_.reserve_tables(table_elems);
  if (moved) graphs_cache_.clear();
}

void Model::forward(const StepBatch& b, KvCache& cache, std::vector<float>& logits) {
  const ModelConfig& c = config_;
  const int64_t T = int64_t(b.tokens.size());
  QWEN3MOE_CHECK(T > 0, "forward: empty batch");
  QWEN3MOE_CHECK(b.positions.size() == size_t(T) && b.token_seq.size() == size_t(T) &&
                     b.slots.size() == size_t(T),
                 "forward: tokens, positions, token_seq and slots differ in length");
  for (int64_t t = 0; t < T; ++t) {
    QWEN3MOE_CHECK(b.tokens[t] >= 0 && b.tokens[t] < c.vocab_size, "token id ", b.tokens[t],
                   " is outside the vocabulary [0, ", c.vocab_size, ")");
    QWEN3MOE_CHECK(b.positions[t] >= 0 && b.positions[t] < c.max_position_embeddings, "position ",
                   b.positions[t],
                   " is beyond max_position_embeddings=", c.max_position_embeddings);
  }
  reserve(T, int64_t(b.block_tables.size()));
  batch_ = &b;
  backend_.upload(ws_.token_ids, b.tokens.data(), size_t(T) * 4);
  backend_.upload(ws_.positions, b.positions.data(), size_t(T) * 4);
  backend_.upload(ws_.token_seq, b.token_seq.data(), size_t(T) * 4);
  backend_.upload(ws_.slots, b.slots.data(), size_t(T) * 4);
  backend_.upload(ws_.tables, b.block_tables.data(), b.block_tables.size() * 4);

  const int64_t L = int64_t(b.logit_rows.size());
  const int64_t vl = topo_.vocab_end() - topo_.vocab_begin();
  for (int32_t r : b.logit_rows)
    QWEN3MOE_CHECK(r >= 0 && r < T, "forward: logit row ", r, " outside the batch of ", T);
  if (L > 0) backend_.upload(ws_.logit_rows, b.logit_rows.data(), size_t(L) * 4);
  logits.assign(size_t(L * c.vocab_size), 0.0f);

  // From the second step of a shape on, the step is one graph replay (world 1 only: the
  // multi-rank path reads each dispatch's counts on the host between layers).
  if (graphs_ && comm_.size() == 1 && !profiler_ && !(moe_ && moe_->counting()))
    graphs_cache_.run({T, b.max_blocks_per_seq, L, &cache}, [&] { run_layers(T, L, cache); });
  else
    run_layers(T, L, cache);
  if (L == 0) {
    batch_ = nullptr;
    return;
  }
  if (comm_.size() == 1) {
    backend_.download(logits.data(), ws_.logits, logits.size() * sizeof(float));
  } else {
    // Every rank's slice is padded to the largest slice for the gather.
    const int64_t per = ceil_div(c.vocab_size, topo_.tp());
    // Kept between steps: no allocation per step once the largest batch has been seen. The
    // padding of a short slice is never read.
    std::vector<float>& mine = host_logits_mine_;
    std::vector<float>& all = host_logits_all_;
    mine.resize(size_t(L * per));
    all.resize(size_t(L * per * comm_.size()));
    for (int64_t r = 0; r < L; ++r)
      backend_.download(mine.data() + r * per, ws_.logits + r * vl, size_t(vl) * sizeof(float));
    host_comm_.set_phase(-1, "logits");
    host_comm_.all_gather(mine.data(), all.data(), mine.size() * sizeof(float));
    for (int p = 0; p < topo_.tp(); ++p) {
      const int64_t v0 = std::min<int64_t>(c.vocab_size, p * per);
      const int64_t vn = std::min<int64_t>(c.vocab_size, v0 + per) - v0;
      for (int64_t r = 0; r < L; ++r)
        std::copy_n(all.data() + (size_t(p) * size_t(L) + size_t(r)) * size_t(per), vn,
                    logits.data() + r * c.vocab_size + v0);
    }
  }
  batch_ = nullptr;
}

void Model::run_layers(int64_t T, int64_t L, KvCache& cache) {
  const ModelConfig& c = config_;
  const int64_t H = c.hidden_size;
  // Vocabulary-parallel embedding: each rank fills the rows of its slice, the sum completes it.
  backend_.embedding(ws_.x, embed_, ws_.token_ids, T, topo_.vocab_begin());
  comm_.set_phase(-1, "embedding");
  if (comm_.size() > 1) comm_.all_reduce_sum(ws_.x, size_t(T * H));

  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    const bool moe = layers_[size_t(l)].moe;
    // Before a MoE layer across ranks, each rank keeps only its slice of the tokens.
    attention_block(l, T, cache, moe && comm_.size() > 1);
    if (moe)
      moe_block(l, T);
    else
      mlp_block(l, T);
  }
  if (L == 0) return;
  backend_.gather_rows(ws_.h, ws_.x, ws_.logit_rows, L, H);
  backend_.rmsnorm(ws_.h, ws_.h, final_norm_, L, H, float(c.rms_norm_eps));
  backend_.matmul(ws_.logits, ws_.h, lm_head_, L);
}

void Model::count_active_experts(bool on) {
  if (moe_) moe_->count_active_experts(on);
}

void Model::attention_block(int64_t l, int64_t T, KvCache& cache, bool scatter) {
  ProfileSpan span(profiler_, "attention", l);
  comm_.set_phase(l, "attention");
  const ModelConfig& c = config_;
  const Layer& L = layers_[size_t(l)];
  const int64_t H = c.hidden_size, D = c.head_dim;
  const int64_t hq = topo_.heads_per_rank(), kvl = topo_.kv_heads_per_rank();
  const float eps = float(c.rms_norm_eps);
  backend_.rmsnorm(ws_.h, ws_.x, L.input_norm, T, H, eps);
  backend_.matmul(ws_.query, ws_.h, L.q, T, L.q_bias);  // [T, hq*D]
  backend_.matmul(ws_.key, ws_.h, L.k, T, L.k_bias);    // [T, kvl*D]
  backend_.matmul(ws_.value, ws_.h, L.v, T, L.v_bias);  // [T, kvl*D]
  backend_.rmsnorm(ws_.query, ws_.query, L.q_norm, T * hq, D, eps);
  backend_.rmsnorm(ws_.key, ws_.key, L.k_norm, T * kvl, D, eps);
  backend_.rope(ws_.query, ws_.positions, T, hq, D, float(c.rope_theta));
  backend_.rope(ws_.key, ws_.positions, T, kvl, D, float(c.rope_theta));
  backend_.kv_cache_write(cache.k(l), cache.v(l), ws_.key, ws_.value, ws_.slots, T, kvl * D);
  AttentionBatch ab;
  ab.num_tokens = int(T);
  ab.positions = ws_.positions;
  ab.token_seq = ws_.token_seq;
  ab.block_tables = ws_.tables;
  ab.max_blocks_per_seq = batch_->max_blocks_per_seq;
  ab.block_size = int(cache.block_size());
  backend_.attention(ws_.attn, ws_.query, cache.k(l), cache.v(l), ab, hq, kvl, D,
                     float(1.0 / std::sqrt(double(D))));
  backend_.matmul(ws_.o, ws_.attn, L.o, T, L.o_bias);  // [T, H], partial over this rank's heads
  if (!scatter) {
    if (comm_.size() > 1) comm_.all_reduce_sum(ws_.o, size_t(T * H));
    backend_.add(ws_.x, ws_.o, T * H);
    return;
  }
  // Reduce-scatter: rank r gets the summed rows [r*per, (r+1)*per) (padding rows are zero),
  // and adds them to its slice of the residual.
  const int64_t W = comm_.size(), per = ceil_div(T, W);
  if (per * W > T) backend_.zero(ws_.o + T * H, size_t((per * W - T) * H) * sizeof(float));
  comm_.reduce_scatter_sum(ws_.o, ws_.xs, size_t(per * H));
  const int64_t r0 = comm_.rank() * per, mine = even_split(T, W, comm_.rank()).size;
  if (mine > 0) backend_.add(ws_.xs, ws_.x + r0 * H, mine * H);
}

void Model::mlp_block(int64_t l, int64_t T) {
  ProfileSpan span(profiler_, "dense_mlp", l);
  comm_.set_phase(l, "dense_mlp");
  const ModelConfig& c = config_;
  const Layer& L = layers_[size_t(l)];
  const int64_t H = c.hidden_size, I = L.gate.rows;
  backend_.rmsnorm(ws_.h, ws_.x, L.post_norm, T, H, float(c.rms_norm_eps));
  backend_.matmul(ws_.gate, ws_.h, L.gate, T);  // [T, I]
  backend_.matmul(ws_.up, ws_.h, L.up, T);      // [T, I]
  backend_.silu_mul(ws_.act, ws_.gate, ws_.up, T, I);
  backend_.matmul(ws_.o, ws_.act, L.down, T);  // [T, H]
  if (comm_.size() > 1) comm_.all_reduce_sum(ws_.o, size_t(T * H));
  backend_.add(ws_.x, ws_.o, T * H);
}

void Model::moe_block(int64_t l, int64_t T) {
  const Layer& L = layers_[size_t(l)];
  const int64_t W = comm_.size(), per = ceil_div(T, W);
  // This rank's tokens: all of them at world 1 (ws_.x), else its slice of the reduce-scattered
  // attention output (ws_.xs[0, mine)).
  const int64_t mine = W == 1 ? T : even_split(T, W, comm_.rank()).size;
  const MoeWeights w{L.post_norm, L.router, L.gate_table, L.up_table, L.down_table};
  moe_->forward(l, w, W == 1 ? ws_.x : ws_.xs, mine, T, ws_, profiler_);
  if (W == 1) return;
  // Every rank's slice back to every rank: x replicated for the next layer.
  comm_.set_phase(l, "moe all_gather");
  comm_.all_gather(ws_.xs, ws_.x, size_t(per * config_.hidden_size) * sizeof(float));
}

}  // namespace qwen3moe
