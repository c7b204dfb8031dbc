#include "core/engine/graph_buckets.h"

#include <algorithm>

#include "kernels/common/check.h"
#include "kernels/common/split.h"

namespace qwen3moe {

int64_t graph_batch_bucket(int64_t tokens, int64_t max_batch) {
  QWEN3MOE_CHECK(tokens >= 1 && tokens <= max_batch, "graph_batch_bucket: ", tokens,
                 " tokens outside 1..", max_batch);
  int64_t bucket = 8;
  if (tokens <= 8)
    for (bucket = 1; bucket < tokens;) bucket *= 2;
  else
    bucket = ceil_div(tokens, int64_t(8)) * 8;
  return std::min(bucket, max_batch);
}

int graph_table_width(int blocks) {
  QWEN3MOE_CHECK(blocks >= 0 && blocks <= (1 << 24), "graph_table_width: ", blocks, " blocks");
  int width = 1;
  while (width < blocks) width *= 2;
  return width;
}

}  // namespace qwen3moe
