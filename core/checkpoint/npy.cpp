#include "core/checkpoint/npy.h"

#include <fstream>
#include <sstream>

#include "kernels/common/check.h"

namespace qwen3moe {

void write_npy_f32(const std::string& path, const float* data, const std::vector<int64_t>& shape) {
  std::ostringstream dict;
  dict << "{'descr': '<f4', 'fortran_order': False, 'shape': (";
  int64_t n = 1;
  for (size_t i = 0; i < shape.size(); ++i) {
    dict << shape[i] << (shape.size() == 1 || i + 1 < shape.size() ? "," : "");
    if (i + 1 < shape.size()) dict << " ";
    n *= shape[i];
  }
  dict << "), }";
  std::string header = dict.str();
  // magic(6) + version(2) + length(2) + header + '\n' is a multiple of 64.
  const size_t total = 10 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header.push_back('\n');
  std::ofstream out(path, std::ios::binary);
  QWEN3MOE_CHECK(out.good(), "cannot write ", path);
  out.write("\x93NUMPY\x01\x00", 8);
  const uint16_t len = uint16_t(header.size());
  const char len_bytes[2] = {char(len & 0xff), char(len >> 8)};
  out.write(len_bytes, 2);
  out.write(header.data(), std::streamsize(header.size()));
  out.write(reinterpret_cast<const char*>(data), std::streamsize(size_t(n) * sizeof(float)));
  QWEN3MOE_CHECK(out.good(), "failed writing ", path);
}

std::vector<float> read_npy_f32(const std::string& path, std::vector<int64_t>& shape) {
  std::ifstream in(path, std::ios::binary);
  QWEN3MOE_CHECK(in.good(), "cannot open ", path);
  char magic[10];
  in.read(magic, 10);
  QWEN3MOE_CHECK(in.good() && std::string(magic, 6) == "\x93NUMPY" && magic[6] == 1, path,
                 ": not a .npy 1.0 file");
  const size_t len = size_t(uint8_t(magic[8])) | (size_t(uint8_t(magic[9])) << 8);
  std::string header(len, '\0');
  in.read(header.data(), std::streamsize(len));
  QWEN3MOE_CHECK(header.find("'descr': '<f4'") != std::string::npos &&
                     header.find("'fortran_order': False") != std::string::npos,
                 path, ": not a C-order <f4 array: ", header);
  const size_t open = header.find('('), close = header.find(')');
  QWEN3MOE_CHECK(open != std::string::npos && close != std::string::npos, path, ": no shape");
  shape.clear();
  std::stringstream dims(header.substr(open + 1, close - open - 1));
  std::string item;
  int64_t n = 1;
  while (std::getline(dims, item, ',')) {
    if (item.find_first_not_of(' ') == std::string::npos) continue;
    shape.push_back(std::stoll(item));
    n *= shape.back();
  }
  std::vector<float> data(static_cast<size_t>(n));
  in.read(reinterpret_cast<char*>(data.data()), std::streamsize(data.size() * sizeof(float)));
  QWEN3MOE_CHECK(in.good(), path, ": truncated data");
  return data;
}

}  // namespace qwen3moe
