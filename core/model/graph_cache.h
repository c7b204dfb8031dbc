// Backend graphs of whole steps, one per step shape: the first step of a shape runs eagerly (so
// workspaces grow outside any capture), the second is captured, and later ones replay it.
// The shape is what fixes every pointer and size a step's ops use (tokens, block-table width,
// logit rows, the KV cache). A backend without graphs (the CPU) just runs the ops.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <set>
#include <tuple>

#include "kernels/backend.h"

namespace qwen3moe {

class GraphCache {
 public:
  struct Shape {
    int64_t tokens = 0;
    int blocks_per_seq = 0;
    int64_t logit_rows = 0;
    const void* cache = nullptr;
    // The most tokens one rank holds for the MoE (with DP groups it depends on the other
    // groups' batches): it sizes the exchange and the experts' launches.
    int64_t most_per_rank = 0;
    bool operator<(const Shape& o) const {
      return std::tie(tokens, blocks_per_seq, logit_rows, cache, most_per_rank) <
             std::tie(o.tokens, o.blocks_per_seq, o.logit_rows, o.cache, o.most_per_rank);
    }
  };

  explicit GraphCache(Backend& backend) : backend_(backend) {}

  // Runs `step` (the ops of one step, inputs uploaded already) for `shape`: eagerly, by
  // capturing it, or by replaying the capture, as above.
  void run(const Shape& shape, const std::function<void()>& step);
  // Distinct shapes run since construction (clear() keeps this count).
  size_t shapes() const { return shapes_ever_.size(); }
  // Forgets and destroys every graph (they hold workspace addresses that just moved).
  void clear() {
    seen_.clear();
    for (const auto& [shape, id] : graph_) backend_.release_graph(id);
    graph_.clear();
  }

 private:
  Backend& backend_;
  std::map<Shape, int> seen_;   // steps run per shape
  std::map<Shape, int> graph_;  // the backend's graph id per captured shape
  std::set<Shape> shapes_ever_;
};

}  // namespace qwen3moe
