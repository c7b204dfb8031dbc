#include "core/checkpoint/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "kernels/common/check.h"
#include "kernels/common/json_depth.h"

namespace qwen3moe {

using json = nlohmann::json;

int64_t TensorView::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::string shape_to_string(const std::vector<int64_t>& shape) {
  std::ostringstream os;
  os << "[";
  for (size_t i = 0; i < shape.size(); ++i) os << (i ? ", " : "") << shape[i];
  os << "]";
  return os.str();
}

std::string TensorView::shape_str() const {
  return shape_to_string(shape);
}

SafetensorsFile::SafetensorsFile(const std::string& path) : path_(path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  QWEN3MOE_CHECK(fd >= 0, "cannot open ", path, ": ", std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    ::close(fd);
    QWEN3MOE_FAIL("cannot stat ", path, ": ", std::strerror(errno));
  }
  size_ = size_t(st.st_size);
  if (size_ < 8) {
    ::close(fd);
    QWEN3MOE_FAIL(path, ": truncated safetensors file (", size_, " bytes, no header length)");
  }
  map_ = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  QWEN3MOE_CHECK(map_ != MAP_FAILED, "cannot mmap ", path, ": ", std::strerror(errno));
  try {
    const uint8_t* base = static_cast<const uint8_t*>(map_);
    uint64_t header_len = 0;
    for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | base[i];  // little endian
    QWEN3MOE_CHECK(header_len <= kMaxHeaderBytes, path, ": header length ", header_len,
                   " bytes exceeds the 100 MB limit");
    QWEN3MOE_CHECK(header_len <= size_ - 8, path, ": header length ", header_len,
                   " runs past the end of the file (", size_, " bytes)");
    json header;
    try {
      header = parse_json_nested_at_most<json>(
          std::string_view(reinterpret_cast<const char*>(base + 8), header_len), path);
    } catch (const json::parse_error& e) {
      QWEN3MOE_FAIL(path, ": header is not valid JSON (", e.what(), ")");
    }
    QWEN3MOE_CHECK(header.is_object(), path, ": header is not a JSON object");
    const uint8_t* data = base + 8 + header_len;
    const size_t data_size = size_ - 8 - header_len;
    std::vector<std::pair<size_t, size_t>> ranges;
    for (auto it = header.begin(); it != header.end(); ++it) {
      if (it.key() == "__metadata__") continue;
      const json& e = it.value();
      const std::string& name = it.key();
      QWEN3MOE_CHECK(e.is_object() && e.contains("dtype") && e["dtype"].is_string() &&
                         e.contains("shape") && e["shape"].is_array() &&
                         e.contains("data_offsets") && e["data_offsets"].is_array() &&
                         e["data_offsets"].size() == 2,
                     path, ": tensor '", name, "' has a malformed header entry ", e.dump());
      TensorView t;
      t.name = name;
      const std::string dt = e["dtype"].get<std::string>();
      QWEN3MOE_CHECK(parse_dtype(dt, &t.dtype), path, ": tensor '", name, "' has unknown dtype '",
                     dt, "'");
      size_t numel = 1;
      for (const json& d : e["shape"]) {
        QWEN3MOE_CHECK(d.is_number_integer() && d.get<int64_t>() >= 0, path, ": tensor '", name,
                       "' has an invalid dimension ", d.dump());
        const uint64_t dim = d.get<uint64_t>();
        QWEN3MOE_CHECK(dim == 0 || numel <= (uint64_t(1) << 48) / dim, path, ": tensor '", name,
                       "' shape is too large");
        numel *= dim;
        t.shape.push_back(int64_t(dim));
      }
      const json& off = e["data_offsets"];
      QWEN3MOE_CHECK(off[0].is_number_unsigned() && off[1].is_number_unsigned(), path, ": tensor '",
                     name, "' has invalid data_offsets ", off.dump());
      const uint64_t begin = off[0].get<uint64_t>(), end = off[1].get<uint64_t>();
      QWEN3MOE_CHECK(begin <= end && end <= data_size, path, ": tensor '", name, "' byte range [",
                     begin, ", ", end, ") lies outside the data section (", data_size, " bytes)");
      t.bytes = size_t(end - begin);
      QWEN3MOE_CHECK(t.bytes == numel * dtype_size(t.dtype), path, ": tensor '", name, "' shape ",
                     t.shape_str(), " x ", dtype_name(t.dtype), " needs ",
                     numel * dtype_size(t.dtype), " bytes but its range holds ", t.bytes);
      t.data = data + begin;
      ranges.emplace_back(size_t(begin), size_t(end));
      tensors_.emplace(name, std::move(t));
    }
    std::sort(ranges.begin(), ranges.end());
    for (size_t i = 1; i < ranges.size(); ++i) {
      QWEN3MOE_CHECK(ranges[i].first >= ranges[i - 1].second, path,
                     ": tensor byte ranges overlap ([", ranges[i - 1].first, ", ",
                     ranges[i - 1].second, ") and [", ranges[i].first, ", ", ranges[i].second,
                     "))");
    }
  } catch (...) {
    ::munmap(map_, size_);
    map_ = nullptr;
    throw;
  }
}

SafetensorsFile::~SafetensorsFile() {
  if (map_) ::munmap(map_, size_);
}

WeightStore WeightStore::open_file(const std::string& path) {
  WeightStore ws;
  ws.where_ = path;
  auto f = std::make_shared<SafetensorsFile>(path);
  for (const auto& [name, view] : f->tensors()) ws.index_[name] = &view;
  ws.files_.push_back(std::move(f));
  return ws;
}

WeightStore WeightStore::open(const std::string& dir) {
  namespace fs = std::filesystem;
  const fs::path index_path = fs::path(dir) / "model.safetensors.index.json";
  const fs::path single = fs::path(dir) / "model.safetensors";
  if (!fs::exists(index_path)) {
    QWEN3MOE_CHECK(fs::exists(single), dir,
                   ": no model.safetensors or model.safetensors.index.json");
    return open_file(single.string());
  }
  std::ifstream in(index_path);
  json index;
  try {
    index = parse_json_nested_at_most<json>(in, index_path.string());
  } catch (const json::parse_error& e) {
    QWEN3MOE_FAIL(index_path.string(), ": not valid JSON (", e.what(), ")");
  }
  QWEN3MOE_CHECK(
      index.is_object() && index.contains("weight_map") && index["weight_map"].is_object(),
      index_path.string(), ": missing 'weight_map'");
  WeightStore ws;
  ws.where_ = dir;
  std::map<std::string, std::shared_ptr<SafetensorsFile>> shards;
  for (auto it = index["weight_map"].begin(); it != index["weight_map"].end(); ++it) {
    QWEN3MOE_CHECK(it.value().is_string(), index_path.string(), ": weight_map entry '", it.key(),
                   "' is not a file name");
    const std::string shard = it.value().get<std::string>();
    QWEN3MOE_CHECK(shard.find('/') == std::string::npos && shard != "..", index_path.string(),
                   ": shard name '", shard, "' must be a plain file name");
    auto& f = shards[shard];
    if (!f) f = std::make_shared<SafetensorsFile>((fs::path(dir) / shard).string());
    const auto found = f->tensors().find(it.key());
    QWEN3MOE_CHECK(found != f->tensors().end(), index_path.string(), ": tensor '", it.key(),
                   "' is not in shard ", shard);
    ws.index_[it.key()] = &found->second;
  }
  for (auto& [name, f] : shards) ws.files_.push_back(f);
  return ws;
}

const TensorView* WeightStore::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : it->second;
}

const TensorView& WeightStore::get(const std::string& name) const {
  const TensorView* t = find(name);
  QWEN3MOE_CHECK(t != nullptr, where_, ": missing tensor '", name, "'");
  return *t;
}

const TensorView& WeightStore::expect(const std::string& name,
                                      const std::vector<int64_t>& shape) const {
  const TensorView& t = get(name);
  QWEN3MOE_CHECK(t.shape == shape, where_, ": tensor '", name, "' has shape ", t.shape_str(),
                 ", expected ", shape_to_string(shape));
  return t;
}

void write_safetensors(const std::string& path, const std::vector<TensorToWrite>& tensors) {
  json header = json::object();
  size_t offset = 0;
  for (const auto& t : tensors) {
    size_t n = dtype_size(t.dtype);
    for (int64_t d : t.shape) n *= size_t(d);
    header[t.name] = {
        {"dtype", dtype_name(t.dtype)}, {"shape", t.shape}, {"data_offsets", {offset, offset + n}}};
    offset += n;
  }
  std::string h = header.dump();
  h.append((8 - h.size() % 8) % 8, ' ');  // keeps the data section 8-byte aligned
  std::ofstream out(path, std::ios::binary);
  QWEN3MOE_CHECK(out.good(), "cannot write ", path);
  uint64_t len = h.size();
  char len_bytes[8];
  for (int i = 0; i < 8; ++i) len_bytes[i] = char((len >> (8 * i)) & 0xff);
  out.write(len_bytes, 8);
  out.write(h.data(), std::streamsize(h.size()));
  for (const auto& t : tensors) {
    size_t n = dtype_size(t.dtype);
    for (int64_t d : t.shape) n *= size_t(d);
    out.write(static_cast<const char*>(t.data), std::streamsize(n));
  }
  QWEN3MOE_CHECK(out.good(), "failed writing ", path);
}

}  // namespace qwen3moe
