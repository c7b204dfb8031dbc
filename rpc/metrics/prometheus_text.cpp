#include "rpc/metrics/prometheus_text.h"

#include <cmath>
#include <cstdio>

namespace qwen3moe::rpc {
namespace {

// Label values escape backslash, double quote and newline.
std::string escaped(const std::string& v) {
  std::string out;
  for (const char c : v) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

std::string number(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[40];
  std::snprintf(buf, sizeof(buf), "%.17g", v);
  return buf;
}

class Writer {
 public:
  explicit Writer(const std::string& model)
      : model_label_("model_name=\"" + escaped(model) + "\"") {}

  void header(const std::string& name, const char* type, const char* help) {
    out_ += "# HELP " + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
  }
  void sample(const std::string& name, double v, const std::string& labels = "") {
    out_ +=
        name + "{" + model_label_ + (labels.empty() ? "" : "," + labels) + "} " + number(v) + "\n";
  }
  void gauge(const std::string& name, const char* help, double v) {
    header(name, "gauge", help);
    sample(name, v);
  }
  void counter(const std::string& name, const char* help, double v) {
    header(name, "counter", help);
    sample(name, v);
  }
  void histogram(const std::string& name, const char* help, const Histogram& h) {
    header(name, "histogram", help);
    uint64_t cumulative = 0;
    for (size_t b = 0; b < h.bounds.size(); ++b) {
      cumulative += h.counts[b];
      sample(name + "_bucket", double(cumulative), "le=\"" + number(h.bounds[b]) + "\"");
    }
    sample(name + "_bucket", double(h.count), "le=\"+Inf\"");
    sample(name + "_sum", h.sum);
    sample(name + "_count", double(h.count));
  }
  std::string take() { return std::move(out_); }

 private:
  std::string model_label_, out_;
};

}  // namespace

std::string prometheus_text(const std::string& model_name, const EngineStats& s,
                            const EngineMetrics& m, const ExchangeCounters* exchange) {
  Writer w(model_name);
  const std::string p = "qwen3moe:";
  w.gauge(p + "num_requests_running", "Requests in the running batch.", s.running);
  w.gauge(p + "num_requests_waiting", "Requests waiting to be admitted.", s.queued);
  w.gauge(p + "kv_cache_usage_perc", "Fraction of KV cache blocks in use (1 = full).",
          s.total_blocks > 0 ? 1.0 - double(s.free_blocks) / double(s.total_blocks) : 0.0);
  w.gauge(p + "kv_cache_total_blocks",
          "KV cache blocks, summed over the DP groups (each rank of a group holds its blocks).",
          double(s.total_blocks));
  w.counter(p + "prompt_tokens_total", "Prompt tokens of requests that began generating.",
            double(m.prompt_tokens));
  w.counter(p + "generation_tokens_total", "Tokens generated.", double(m.generation_tokens));
  w.counter(p + "prefix_cache_queries_total", "Prompt tokens looked up in the prefix cache.",
            double(m.prefix_query_tokens));
  w.counter(p + "prefix_cache_hits_total", "Prompt tokens found in the prefix cache.",
            double(m.prefix_hit_tokens));
  w.counter(p + "num_engine_steps_total", "Engine steps (forward passes) run.", double(s.steps));
  w.histogram(p + "time_to_first_token_seconds", "Time from arrival to the first token.", m.ttft);
  w.histogram(p + "inter_token_latency_seconds", "Time between two tokens of a request.", m.itl);
  w.histogram(p + "e2e_request_latency_seconds", "Time from arrival to the last token.", m.e2e);
  const std::string success = p + "request_success_total";
  w.header(success, "counter", "Requests finished, by finish reason.");
  for (const char* reason : {"stop", "length", "cancelled", "deadline", "error"}) {
    const auto it = m.finished.find(reason);
    w.sample(success, it == m.finished.end() ? 0.0 : double(it->second),
             std::string("finished_reason=\"") + reason + "\"");
  }
  if (exchange) {
    const std::vector<LayerExchangeTotals> layers = exchange->snapshot();
    const std::string bytes = p + "a2a_bytes_total", secs = p + "a2a_seconds_total",
                      experts = p + "expert_tokens_total";
    auto label = [](size_t l, const char* phase) {
      return "layer=\"" + std::to_string(l) + "\",phase=\"" + phase + "\"";
    };
    w.header(bytes, "counter",
             "All-to-all bytes rank 0 sent to other ranks, per MoE layer and phase.");
    for (size_t l = 0; l < layers.size(); ++l) {
      if (layers[l].exchanges == 0) continue;
      w.sample(bytes, double(layers[l].dispatch_bytes), label(l, "dispatch"));
      w.sample(bytes, double(layers[l].combine_bytes), label(l, "combine"));
    }
    if (exchange->timed()) {
      w.header(secs, "counter", "All-to-all wall seconds on rank 0, per MoE layer and phase.");
      for (size_t l = 0; l < layers.size(); ++l) {
        if (layers[l].exchanges == 0) continue;
        w.sample(secs, layers[l].dispatch_seconds, label(l, "dispatch"));
        w.sample(secs, layers[l].combine_seconds, label(l, "combine"));
      }
    }
    w.header(experts, "counter",
             "Token-expert pairs each of rank 0's experts received, per layer.");
    for (size_t l = 0; l < layers.size(); ++l) {
      for (size_t e = 0; e < layers[l].expert_tokens.size(); ++e)
        if (layers[l].expert_tokens[e] > 0)
          w.sample(experts, double(layers[l].expert_tokens[e]),
                   "layer=\"" + std::to_string(l) + "\",expert=\"" + std::to_string(e) + "\"");
    }
  }
  return w.take();
}

}  // namespace qwen3moe::rpc
