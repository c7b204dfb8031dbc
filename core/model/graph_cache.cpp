#include "core/model/graph_cache.h"

namespace qwen3moe {

void GraphCache::run(const Shape& shape, const std::function<void()>& step) {
  shapes_ever_.insert(shape);
  if (seen_[shape]++ == 0) return step();  // the first step of a shape grows the workspaces
  auto it = graph_.find(shape);
  if (it == graph_.end() && backend_.begin_capture()) {
    try {
      step();
    } catch (...) {
      try {
        backend_.end_capture();
      } catch (...) {
      }
      throw;
    }
    it = graph_.emplace(shape, backend_.end_capture()).first;
  }
  if (it != graph_.end())
    backend_.replay(it->second);
  else
    step();
}

}  // namespace qwen3moe
