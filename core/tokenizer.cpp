#include "core/tokenizer.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>

#include "core/tokenizer_impl.h"
#include "core/utf8.h"
#include "kernels/check.h"

namespace qwen3moe {
namespace {

std::string read_file(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  QWEN3MOE_CHECK(f != nullptr, "cannot open ", path);
  std::string data;
  std::fseek(f, 0, SEEK_END);
  const long size = std::ftell(f);
  std::fseek(f, 0, SEEK_SET);
  data.resize(size > 0 ? static_cast<size_t>(size) : 0);
  const size_t got = std::fread(data.data(), 1, data.size(), f);
  std::fclose(f);
  QWEN3MOE_CHECK(got == data.size(), "cannot read ", path);
  return data;
}

}  // namespace

std::string Tokenizer::Impl::normalize(std::string_view text) const {
  utf8proc_uint8_t* result = nullptr;
  const auto n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(text.data()),
                              static_cast<utf8proc_ssize_t>(text.size()), &result,
                              static_cast<utf8proc_option_t>(normalize_options));
  QWEN3MOE_CHECK(n >= 0, "normalizer failed: ", utf8proc_errmsg(n));
  std::string out(reinterpret_cast<const char*>(result), static_cast<size_t>(n));
  std::free(result);
  return out;
}

void Tokenizer::Impl::encode_word(std::string_view word, std::vector<int32_t>& out) const {
  {
    std::lock_guard<std::mutex> lock(cache_mutex);
    if (auto it = cache.find(word); it != cache.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  const size_t first = out.size();
  const int32_t whole = ignore_merges ? vocab_bytes_to_id.find(word) : -1;
  if (whole >= 0) {
    out.push_back(whole);
  } else {
    static thread_local std::vector<int32_t> byte_id_buffer;
    byte_id_buffer.clear();
    for (char c : word) byte_id_buffer.push_back(byte_ids[static_cast<unsigned char>(c)]);
    bpe_merge(merges, byte_id_buffer, out);
  }
  std::lock_guard<std::mutex> lock(cache_mutex);
  if (cache.size() >= kCacheLimit) cache.clear();
  cache.emplace(std::string(word), std::vector<int32_t>(out.begin() + first, out.end()));
}

void Tokenizer::Impl::encode_text(std::string_view text, std::vector<int32_t>& out) const {
  static thread_local std::vector<size_t> ends;
  ends.clear();
  pre_tokenizer.split(text, ends);
  size_t begin = 0;
  for (size_t end : ends) {
    encode_word(text.substr(begin, end - begin), out);
    begin = end;
  }
}

std::vector<int32_t> Tokenizer::encode(std::string_view text) const {
  utf8::check_valid(text, "tokenize");
  const Impl& im = *impl_;
  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 4);
  std::vector<Piece> pieces;
  if (im.raw_added.empty()) {
    pieces.push_back({0, text.size(), -1});
  } else {
    im.raw_added.split(text, 0, pieces);
  }
  for (const Piece& piece : pieces) {
    if (piece.id >= 0) {
      out.push_back(piece.id);
      continue;
    }
    std::string_view segment = text.substr(piece.begin, piece.end - piece.begin);
    std::string normalized;
    const bool ascii = std::all_of(segment.begin(), segment.end(),
                                   [](char c) { return static_cast<unsigned char>(c) < 0x80; });
    if (im.normalize_options != 0 && !ascii) {
      normalized = im.normalize(segment);
      segment = normalized;
    }
    if (im.normalized_added.empty()) {
      im.encode_text(segment, out);
      continue;
    }
    std::vector<Piece> inner;
    im.normalized_added.split(segment, 0, inner);
    for (const Piece& p : inner) {
      if (p.id >= 0) {
        out.push_back(p.id);
      } else {
        im.encode_text(segment.substr(p.begin, p.end - p.begin), out);
      }
    }
  }
  return out;
}

std::string_view Tokenizer::token_bytes(int32_t id) const {
  const Impl& im = *impl_;
  if (id < 0 || static_cast<size_t>(id) >= im.has_token.size() || !im.has_token[id]) return {};
  return std::string_view(im.bytes).substr(im.offsets[id], im.offsets[id + 1] - im.offsets[id]);
}

std::string Tokenizer::decode(std::span<const int32_t> ids) const {
  std::string raw;
  raw.reserve(ids.size() * 4);
  for (int32_t id : ids) raw.append(token_bytes(id));
  std::string out;
  out.reserve(raw.size());
  utf8::append_lossy(out, raw);
  return out;
}

int32_t Tokenizer::vocab_size() const {
  return static_cast<int32_t>(impl_->has_token.size());
}

std::optional<int32_t> Tokenizer::token_id(std::string_view token) const {
  const int32_t id = impl_->name_to_id.find(token);
  if (id < 0) return std::nullopt;
  return id;
}

bool Tokenizer::is_special(int32_t id) const {
  return id >= 0 && static_cast<size_t>(id) < impl_->special.size() && impl_->special[id];
}

Tokenizer Tokenizer::load(const std::string& dir) {
  const std::string path = dir + "/tokenizer.json";
  return from_json(read_file(path), path);
}

}  // namespace qwen3moe
