// libFuzzer target: tokenizer.json text; what loads is also asked to encode and decode a little.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "core/text/tokenizer.h"
#include "kernels/common/check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    const qwen3moe::Tokenizer tok = qwen3moe::Tokenizer::from_json(text, "fuzz/tokenizer.json");
    const std::vector<int32_t> ids = tok.encode("Hello, world! 123 <|im_end|> ñ");
    tok.decode(ids);
  } catch (const qwen3moe::Error&) {
  }
  return 0;
}
