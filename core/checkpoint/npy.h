// NumPy .npy files, format 1.0, little-endian float32 ('<f4'), C order.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace qwen3moe {

void write_npy_f32(const std::string& path, const float* data, const std::vector<int64_t>& shape);
// Reads what write_npy_f32 writes (tests); shape is filled in.
std::vector<float> read_npy_f32(const std::string& path, std::vector<int64_t>& shape);

}  // namespace qwen3moe
