#include "core/text/stream_decoder.h"

#include "core/text/utf8.h"

namespace qwen3moe {

std::string StreamDecoder::push(int32_t id) {
  pending_.append(tok_.token_bytes(id));
  const size_t ready = utf8::stable_prefix_length(pending_);
  std::string out;
  utf8::append_lossy(out, std::string_view(pending_).substr(0, ready));
  pending_.erase(0, ready);
  return out;
}

std::string StreamDecoder::finish() {
  std::string out;
  utf8::append_lossy(out, pending_);
  pending_.clear();
  return out;
}

}  // namespace qwen3moe
