// libFuzzer target: config.json and generation_config.json text. Any input must either parse or
// throw qwen3moe::Error (a clear message); a crash, a hang, a leak or UB fails the run.
#include <cstddef>
#include <cstdint>
#include <string>

#include "core/checkpoint/config.h"
#include "core/checkpoint/generation_config.h"
#include "kernels/common/check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    qwen3moe::ModelConfig::from_json_text(text, "fuzz/config.json");
  } catch (const qwen3moe::Error&) {
  }
  try {
    qwen3moe::GenerationConfig::from_json_text(text, "fuzz/generation_config.json");
  } catch (const qwen3moe::Error&) {
  }
  return 0;
}
