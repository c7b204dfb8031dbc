// Safetensors loading: every malformed file is an Error naming the problem (never a crash or a
// read past the mapping), and good files, single or sharded, resolve every tensor.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/checkpoint/safetensors.h"
#include "test_util.h"

namespace qwen3moe {
namespace {

using testing::error_of;
using testing::fresh_dir;
using testing::write_file;

std::string le64(uint64_t v) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[size_t(i)] = char((v >> (8 * i)) & 0xff);
  return s;
}

// A safetensors file from a header text and a data section of data_bytes bytes.
std::string raw_file(const std::string& header, size_t data_bytes) {
  return le64(header.size()) + header + std::string(data_bytes, '\x01');
}

// Writes bytes to a file in a fresh folder and returns the Error that opening it throws.
std::string open_error(const std::string& bytes) {
  const std::string path = fresh_dir("st") + "/model.safetensors";
  write_file(path, bytes);
  return error_of([&] { SafetensorsFile f(path); });
}

TEST(Safetensors, TruncatedFileShorterThanTheLength) {
  EXPECT_ERROR_NAMES(open_error(std::string("\x10\0\0\0\0", 5)), "truncated", "5 bytes");
  EXPECT_ERROR_NAMES(open_error(""), "truncated", "0 bytes");
}

TEST(Safetensors, HeaderLengthPastTheEnd) {
  const std::string header = R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})";
  // The length claims 1000 bytes; the file holds the header and 4 data bytes.
  const std::string bytes = le64(1000) + header + std::string(4, '\0');
  EXPECT_ERROR_NAMES(open_error(bytes), "header length 1000", "past the end");
}

TEST(Safetensors, HeaderOver100MB) {
  // Only the 8-byte length: the size check must come before any use of it.
  EXPECT_ERROR_NAMES(open_error(le64(200'000'000)), "header length 200000000", "100 MB");
  EXPECT_ERROR_NAMES(open_error(le64(~uint64_t(0))), "100 MB");
}

TEST(Safetensors, MalformedJson) {
  EXPECT_ERROR_NAMES(open_error(raw_file(R"({"a":{"dtype":"F32",)", 0)), "not valid JSON");
  EXPECT_ERROR_NAMES(open_error(raw_file("[1,2]", 0)), "not a JSON object");
  EXPECT_ERROR_NAMES(open_error(raw_file(R"({"a":{"dtype":"F32"}})", 0)), "'a'", "malformed");
}

TEST(Safetensors, OverlappingRanges) {
  const std::string header = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                             R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})";
  EXPECT_ERROR_NAMES(open_error(raw_file(header, 12)), "overlap", "[0, 8)", "[4, 12)");
}

TEST(Safetensors, UnknownDtype) {
  const std::string header = R"({"w":{"dtype":"Q4_K","shape":[2],"data_offsets":[0,2]}})";
  EXPECT_ERROR_NAMES(open_error(raw_file(header, 2)), "'w'", "unknown dtype 'Q4_K'");
}

TEST(Safetensors, ShapeTimesDtypeDiffersFromByteRange) {
  const std::string header = R"({"w":{"dtype":"BF16","shape":[3,2],"data_offsets":[0,8]}})";
  EXPECT_ERROR_NAMES(open_error(raw_file(header, 8)), "'w'", "[3, 2]", "needs 12 bytes", "holds 8");
}

TEST(Safetensors, RangeOutsideTheFile) {
  const std::string header = R"({"w":{"dtype":"F32","shape":[250],"data_offsets":[0,1000]}})";
  EXPECT_ERROR_NAMES(open_error(raw_file(header, 16)), "'w'", "[0, 1000)", "outside", "16 bytes");
  const std::string reversed = R"({"w":{"dtype":"F32","shape":[0],"data_offsets":[8,4]}})";
  EXPECT_ERROR_NAMES(open_error(raw_file(reversed, 16)), "'w'", "[8, 4)");
}

TEST(Safetensors, InvalidDimensions) {
  const std::string header = R"({"w":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})";
  EXPECT_ERROR_NAMES(open_error(raw_file(header, 8)), "'w'", "invalid dimension -2");
  // A shape whose byte count overflows 64 bits must not wrap around to match a small range.
  const std::string huge =
      R"({"w":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,0]}})";
  EXPECT_ERROR_NAMES(open_error(raw_file(huge, 8)), "'w'", "too large");
}

TEST(Safetensors, WriteAndReadBack) {
  const std::string path = fresh_dir("rt") + "/t.safetensors";
  const std::vector<float> a = {1.5f, -2.0f, 3.25f, 0.0f, 7.0f, -1e-3f};
  const std::vector<uint16_t> b = {0x3f80, 0xc000, 0x7f80};
  const std::vector<int32_t> c = {7, -9};
  write_safetensors(path, {{"a", DType::F32, {2, 3}, a.data()},
                           {"b.weight", DType::BF16, {3}, b.data()},
                           {"c", DType::I32, {2, 1}, c.data()}});
  const WeightStore ws = WeightStore::open_file(path);
  ASSERT_EQ(ws.all().size(), 3u);
  const TensorView& ta = ws.expect("a", {2, 3});
  EXPECT_EQ(ta.dtype, DType::F32);
  EXPECT_EQ(0, std::memcmp(ta.data, a.data(), sizeof(float) * a.size()));
  EXPECT_EQ(uintptr_t(ta.data) % 8, 0u) << "data section should stay 8-byte aligned";
  const TensorView& tb = ws.expect("b.weight", {3});
  EXPECT_EQ(tb.dtype, DType::BF16);
  EXPECT_EQ(0, std::memcmp(tb.data, b.data(), 6));
  EXPECT_EQ(ws.expect("c", {2, 1}).dtype, DType::I32);
  EXPECT_EQ(0, std::memcmp(ws.get("c").data, c.data(), 8));
}

TEST(Safetensors, MissingTensor) {
  const std::string path = fresh_dir("m") + "/t.safetensors";
  const float v = 1.0f;
  write_safetensors(path, {{"present", DType::F32, {1}, &v}});
  const WeightStore ws = WeightStore::open_file(path);
  EXPECT_EQ(ws.find("absent"), nullptr);
  EXPECT_ERROR_NAMES(error_of([&] { ws.get("model.layers.0.mlp.gate.weight"); }),
                     "missing tensor 'model.layers.0.mlp.gate.weight'");
}

TEST(Safetensors, WrongShapeNamesTensorExpectedAndFound) {
  const std::string path = fresh_dir("s") + "/t.safetensors";
  const std::vector<float> v(6, 0.5f);
  write_safetensors(path, {{"model.norm.weight", DType::F32, {2, 3}, v.data()}});
  const WeightStore ws = WeightStore::open_file(path);
  const std::string msg = error_of([&] { ws.expect("model.norm.weight", {3, 2}); });
  EXPECT_ERROR_NAMES(msg, "'model.norm.weight'", "has shape [2, 3]", "expected [3, 2]");
}

// Two shards and an index, as Hugging Face writes them.
std::string write_sharded(const nlohmann::json& weight_map, const std::vector<float>& a,
                          const std::vector<float>& b) {
  const std::string dir = fresh_dir("sh");
  write_safetensors(dir + "/model-00001-of-00002.safetensors",
                    {{"x.a", DType::F32, {2, 2}, a.data()}, {"x.b", DType::F32, {4}, b.data()}});
  write_safetensors(dir + "/model-00002-of-00002.safetensors",
                    {{"y.c", DType::F32, {1, 4}, b.data()}});
  write_file(
      dir + "/model.safetensors.index.json",
      nlohmann::json({{"metadata", {{"total_size", 48}}}, {"weight_map", weight_map}}).dump());
  return dir;
}

TEST(Safetensors, ShardedIndexResolvesEveryTensor) {
  const std::vector<float> a = {1, 2, 3, 4}, b = {5, 6, 7, 8};
  const std::string dir = write_sharded({{"x.a", "model-00001-of-00002.safetensors"},
                                         {"x.b", "model-00001-of-00002.safetensors"},
                                         {"y.c", "model-00002-of-00002.safetensors"}},
                                        a, b);
  const WeightStore ws = WeightStore::open(dir);
  EXPECT_EQ(ws.all().size(), 3u);
  EXPECT_EQ(0, std::memcmp(ws.expect("x.a", {2, 2}).data, a.data(), 16));
  EXPECT_EQ(0, std::memcmp(ws.expect("x.b", {4}).data, b.data(), 16));
  EXPECT_EQ(0, std::memcmp(ws.expect("y.c", {1, 4}).data, b.data(), 16));
  // A tensor in no shard is missing, by name.
  EXPECT_ERROR_NAMES(error_of([&] { ws.get("z"); }), "missing tensor 'z'");
}

TEST(Safetensors, ShardNamingATensorNotInIt) {
  const std::vector<float> a = {1, 2, 3, 4}, b = {5, 6, 7, 8};
  // y.c is in shard 2, but the index says shard 1.
  const std::string dir = write_sharded(
      {{"x.a", "model-00001-of-00002.safetensors"}, {"y.c", "model-00001-of-00002.safetensors"}}, a,
      b);
  EXPECT_ERROR_NAMES(error_of([&] { WeightStore::open(dir); }), "'y.c'",
                     "not in shard model-00001-of-00002.safetensors");
}

TEST(Safetensors, IndexProblems) {
  const std::vector<float> a = {1, 2, 3, 4}, b = {5, 6, 7, 8};
  // A shard file that does not exist.
  std::string dir = write_sharded({{"x.a", "model-00003-of-00002.safetensors"}}, a, b);
  EXPECT_ERROR_NAMES(error_of([&] { WeightStore::open(dir); }), "cannot open",
                     "model-00003-of-00002.safetensors");
  // A shard name that climbs out of the folder.
  dir = write_sharded({{"x.a", "../model-00001-of-00002.safetensors"}}, a, b);
  EXPECT_ERROR_NAMES(error_of([&] { WeightStore::open(dir); }), "plain file name");
  // Not JSON; no weight_map.
  write_file(dir + "/model.safetensors.index.json", "{oops");
  EXPECT_ERROR_NAMES(error_of([&] { WeightStore::open(dir); }), "model.safetensors.index.json",
                     "not valid JSON");
  write_file(dir + "/model.safetensors.index.json", R"({"metadata":{}})");
  EXPECT_ERROR_NAMES(error_of([&] { WeightStore::open(dir); }), "weight_map");
  // A folder with neither file.
  const std::string empty = fresh_dir("empty");
  EXPECT_ERROR_NAMES(error_of([&] { WeightStore::open(empty); }), "no model.safetensors");
}

}  // namespace
}  // namespace qwen3moe
