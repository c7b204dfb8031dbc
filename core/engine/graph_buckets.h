// The step shapes a serving engine pads decode steps to, so that a few captured graphs cover
// every batch (CUDA graphs replay fixed sizes): batch sizes 1, 2, 4, 8, then multiples of 8 up
// to the largest batch; block-table widths in powers of two. Padding a batch of B tokens costs
// at most 8 or B-1 idle tokens; a width at most doubles the table the step uploads.
#pragma once

#include <cstdint>

namespace qwen3moe {

// The batch size a decode step of `tokens` tokens (1 <= tokens <= max_batch) is padded to.
int64_t graph_batch_bucket(int64_t tokens, int64_t max_batch);
// The block-table width (blocks per sequence) a step whose longest sequence holds `blocks`
// blocks is padded to.
int graph_table_width(int blocks);

}  // namespace qwen3moe
