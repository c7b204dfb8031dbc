// A plain float64 forward of Qwen3 / Qwen3-MoE, written from the Hugging Face definition with
// no regard for speed, to check the engine on checkpoints that have no stored reference:
// embedding -> per layer x += o(attn(qk-normed, RoPE'd, GQA causal)), x += mlp(rmsnorm(x)) ->
// final norm -> lm_head (or the embedding when tied). Weights are read through WeightStore and
// widened to double.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "core/checkpoint/config.h"
#include "core/checkpoint/safetensors.h"
#include "kernels/common/check.h"

namespace qwen3moe::testing {

class ReferenceForward {
 public:
  // config is taken by value so a test can flip a flag (norm_topk_prob, attention_bias) and
  // show that the checks notice.
  ReferenceForward(ModelConfig config, const WeightStore& weights)
      : c_(std::move(config)), ws_(weights) {}

  // Logits of every position, [T, V].
  std::vector<double> logits(const std::vector<int32_t>& ids) const {
    const int64_t T = int64_t(ids.size()), H = c_.hidden_size, V = c_.vocab_size;
    const std::vector<double>& embed = w("model.embed_tokens.weight");
    std::vector<double> x(size_t(T * H));
    for (int64_t t = 0; t < T; ++t)
      std::copy_n(&embed[size_t(ids[size_t(t)] * H)], H, &x[size_t(t * H)]);
    for (int64_t l = 0; l < c_.num_hidden_layers; ++l) {
      const std::string p = "model.layers." + std::to_string(l) + ".";
      add(x, attention(rmsnorm(x, T, H, w(p + "input_layernorm.weight")), T, p));
      const std::vector<double> h = rmsnorm(x, T, H, w(p + "post_attention_layernorm.weight"));
      add(x, c_.is_moe_layer(l) ? moe(h, T, p) : swiglu(h, T, p + "mlp."));
    }
    const std::vector<double> h = rmsnorm(x, T, H, w("model.norm.weight"));
    const std::string head =
        c_.tie_word_embeddings ? "model.embed_tokens.weight" : "lm_head.weight";
    return linear(h, T, w(head), V, H, nullptr);
  }

 private:
  // A tensor widened to double (BF16 by its bit layout, F32 as is), cached by name.
  const std::vector<double>& w(const std::string& name) const {
    auto it = cache_.find(name);
    if (it != cache_.end()) return it->second;
    const TensorView& t = ws_.get(name);
    std::vector<double> out(static_cast<size_t>(t.numel()));
    for (size_t i = 0; i < out.size(); ++i) {
      float f = 0;
      if (t.dtype == DType::BF16) {
        uint16_t h;
        std::memcpy(&h, t.data + 2 * i, 2);
        const uint32_t bits = uint32_t(h) << 16;
        std::memcpy(&f, &bits, 4);
      } else {
        QWEN3MOE_CHECK(t.dtype == DType::F32, "reference: unsupported dtype for ", name);
        std::memcpy(&f, t.data + 4 * i, 4);
      }
      out[i] = f;
    }
    return cache_.emplace(name, std::move(out)).first->second;
  }

  static void add(std::vector<double>& y, const std::vector<double>& x) {
    for (size_t i = 0; i < y.size(); ++i) y[i] += x[i];
  }

  // y[T, out] = x[T, in] · W[out, in]^T (+ b)
  static std::vector<double> linear(const std::vector<double>& x, int64_t T,
                                    const std::vector<double>& W, int64_t out, int64_t in,
                                    const std::vector<double>* b) {
    std::vector<double> y(size_t(T * out));
    for (int64_t t = 0; t < T; ++t)
      for (int64_t o = 0; o < out; ++o) {
        double s = b ? (*b)[size_t(o)] : 0.0;
        for (int64_t i = 0; i < in; ++i) s += x[size_t(t * in + i)] * W[size_t(o * in + i)];
        y[size_t(t * out + o)] = s;
      }
    return y;
  }

  std::vector<double> rmsnorm(const std::vector<double>& x, int64_t rows, int64_t dim,
                              const std::vector<double>& g) const {
    std::vector<double> y(x.size());
    for (int64_t r = 0; r < rows; ++r) {
      double ss = 0;
      for (int64_t i = 0; i < dim; ++i) ss += x[size_t(r * dim + i)] * x[size_t(r * dim + i)];
      const double inv = 1.0 / std::sqrt(ss / double(dim) + c_.rms_norm_eps);
      for (int64_t i = 0; i < dim; ++i)
        y[size_t(r * dim + i)] = g[size_t(i)] * x[size_t(r * dim + i)] * inv;
    }
    return y;
  }

  // Rotate-half RoPE on x[T, heads, D] at positions 0..T-1, inv_freq = theta^(-2i/D).
  void rope(std::vector<double>& x, int64_t T, int64_t heads) const {
    const int64_t D = c_.head_dim, half = D / 2;
    for (int64_t t = 0; t < T; ++t)
      for (int64_t h = 0; h < heads; ++h)
        for (int64_t i = 0; i < half; ++i) {
          const double angle = double(t) * std::pow(c_.rope_theta, -2.0 * double(i) / double(D));
          double* v = &x[size_t((t * heads + h) * D)];
          const double a = v[i], b = v[i + half];
          v[i] = a * std::cos(angle) - b * std::sin(angle);
          v[i + half] = b * std::cos(angle) + a * std::sin(angle);
        }
  }

  std::vector<double> attention(const std::vector<double>& h, int64_t T,
                                const std::string& p) const {
    const int64_t H = c_.hidden_size, D = c_.head_dim, nq = c_.num_attention_heads,
                  nkv = c_.num_key_value_heads;
    const bool bias = c_.attention_bias;
    std::vector<double> q = linear(h, T, w(p + "self_attn.q_proj.weight"), nq * D, H,
                                   bias ? &w(p + "self_attn.q_proj.bias") : nullptr);
    std::vector<double> k = linear(h, T, w(p + "self_attn.k_proj.weight"), nkv * D, H,
                                   bias ? &w(p + "self_attn.k_proj.bias") : nullptr);
    const std::vector<double> v = linear(h, T, w(p + "self_attn.v_proj.weight"), nkv * D, H,
                                         bias ? &w(p + "self_attn.v_proj.bias") : nullptr);
    q = rmsnorm(q, T * nq, D, w(p + "self_attn.q_norm.weight"));
    k = rmsnorm(k, T * nkv, D, w(p + "self_attn.k_norm.weight"));
    rope(q, T, nq);
    rope(k, T, nkv);
    std::vector<double> out(size_t(T * nq * D), 0.0);
    const double scale = 1.0 / std::sqrt(double(D));
    for (int64_t t = 0; t < T; ++t)
      for (int64_t hh = 0; hh < nq; ++hh) {
        const int64_t kh = hh / (nq / nkv);
        std::vector<double> s(size_t(t + 1));
        double mx = -INFINITY, sum = 0;
        for (int64_t u = 0; u <= t; ++u) {
          double dot = 0;
          for (int64_t i = 0; i < D; ++i)
            dot += q[size_t((t * nq + hh) * D + i)] * k[size_t((u * nkv + kh) * D + i)];
          s[size_t(u)] = dot * scale;
          mx = std::max(mx, s[size_t(u)]);
        }
        for (double& e : s) sum += (e = std::exp(e - mx));
        for (int64_t u = 0; u <= t; ++u)
          for (int64_t i = 0; i < D; ++i)
            out[size_t((t * nq + hh) * D + i)] +=
                s[size_t(u)] / sum * v[size_t((u * nkv + kh) * D + i)];
      }
    return linear(out, T, w(p + "self_attn.o_proj.weight"), H, nq * D,
                  bias ? &w(p + "self_attn.o_proj.bias") : nullptr);
  }

  // down(silu(gate(x)) * up(x)); prefix ends in "mlp." or "mlp.experts.E.".
  std::vector<double> swiglu(const std::vector<double>& h, int64_t T, const std::string& prefix,
                             int64_t inter = 0) const {
    const int64_t H = c_.hidden_size, I = inter ? inter : c_.intermediate_size;
    const std::vector<double> g = linear(h, T, w(prefix + "gate_proj.weight"), I, H, nullptr);
    const std::vector<double> u = linear(h, T, w(prefix + "up_proj.weight"), I, H, nullptr);
    std::vector<double> a(g.size());
    for (size_t i = 0; i < a.size(); ++i) a[i] = g[i] / (1.0 + std::exp(-g[i])) * u[i];
    return linear(a, T, w(prefix + "down_proj.weight"), H, I, nullptr);
  }

  // Softmax router over all experts, top-k (ties to the lower id), renormalised iff
  // norm_topk_prob, each token through its k experts.
  std::vector<double> moe(const std::vector<double>& h, int64_t T, const std::string& p) const {
    const int64_t H = c_.hidden_size, E = c_.num_experts, K = c_.num_experts_per_tok;
    const std::vector<double> logits = linear(h, T, w(p + "mlp.gate.weight"), E, H, nullptr);
    std::vector<double> out(size_t(T * H), 0.0);
    for (int64_t t = 0; t < T; ++t) {
      std::vector<double> prob(&logits[size_t(t * E)], &logits[size_t(t * E)] + E);
      const double mx = *std::max_element(prob.begin(), prob.end());
      double sum = 0;
      for (double& e : prob) sum += (e = std::exp(e - mx));
      for (double& e : prob) e /= sum;
      std::vector<int64_t> chosen;
      std::vector<bool> taken(static_cast<size_t>(E), false);
      double top = 0;
      for (int64_t j = 0; j < K; ++j) {
        int64_t best = -1;
        for (int64_t e = 0; e < E; ++e)
          if (!taken[size_t(e)] && (best < 0 || prob[size_t(e)] > prob[size_t(best)])) best = e;
        taken[size_t(best)] = true;
        chosen.push_back(best);
        top += prob[size_t(best)];
      }
      const std::vector<double> row(&h[size_t(t * H)], &h[size_t(t * H)] + H);
      for (int64_t e : chosen) {
        const double weight = c_.norm_topk_prob ? prob[size_t(e)] / top : prob[size_t(e)];
        const std::vector<double> y =
            swiglu(row, 1, p + "mlp.experts." + std::to_string(e) + ".", c_.moe_intermediate_size);
        for (int64_t i = 0; i < H; ++i) out[size_t(t * H + i)] += weight * y[size_t(i)];
      }
    }
    return out;
  }

  ModelConfig c_;
  const WeightStore& ws_;
  mutable std::map<std::string, std::vector<double>> cache_;
};

}  // namespace qwen3moe::testing
