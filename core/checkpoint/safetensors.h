// Safetensors checkpoints, memory-mapped: one file or model.safetensors.index.json + shards.
// The header is validated before anything in it is trusted (length, JSON, dtypes, shapes
// against byte ranges, ranges inside the file and disjoint), so no tensor view can reach past
// the mapping.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "kernels/common/dtype.h"

namespace qwen3moe {

struct TensorView {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  const uint8_t* data = nullptr;  // inside the mapping
  size_t bytes = 0;
  int64_t numel() const;
  std::string shape_str() const;
};

std::string shape_to_string(const std::vector<int64_t>& shape);

// One mmapped .safetensors file.
class SafetensorsFile {
 public:
  static constexpr uint64_t kMaxHeaderBytes = 100ull * 1000 * 1000;
  explicit SafetensorsFile(const std::string& path);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::string& path() const { return path_; }
  const std::map<std::string, TensorView>& tensors() const { return tensors_; }
  size_t file_bytes() const { return size_; }

 private:
  std::string path_;
  void* map_ = nullptr;
  size_t size_ = 0;
  std::map<std::string, TensorView> tensors_;
};

// All tensors of a model folder, whether in one file or in shards.
class WeightStore {
 public:
  // dir holds model.safetensors, or model.safetensors.index.json and the shards it names.
  static WeightStore open(const std::string& dir);
  // A single file (tests, reference outputs).
  static WeightStore open_file(const std::string& path);

  const TensorView* find(const std::string& name) const;
  const TensorView& get(const std::string& name) const;  // Error naming a missing tensor
  // get() and check the shape; the Error names the tensor, the expected and the found shape.
  const TensorView& expect(const std::string& name, const std::vector<int64_t>& shape) const;
  const std::map<std::string, const TensorView*>& all() const { return index_; }

 private:
  std::string where_;
  std::vector<std::shared_ptr<SafetensorsFile>> files_;
  std::map<std::string, const TensorView*> index_;
};

// Writes tensors to one safetensors file (init-random, tests). Data pointers are host memory.
struct TensorToWrite {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  const void* data;
};
void write_safetensors(const std::string& path, const std::vector<TensorToWrite>& tensors);

}  // namespace qwen3moe
