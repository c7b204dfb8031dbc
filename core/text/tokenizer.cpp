#include "core/text/tokenizer.h"

#include <utf8proc.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>

#include "core/text/tokenizer_impl.h"
#include "core/text/utf8.h"
#include "kernels/common/check.h"

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

void Tokenizer::Impl::encode_word(std::string_view word, std::vector<int32_t>& out,
                                  WordCache* word_cache) const {
  const uint64_t hash = StringIdMap::hash(word);
  if (word_cache != nullptr && word_cache->find(word, hash, out)) return;
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
  if (word_cache != nullptr) {
    word_cache->insert(word, hash, std::span<const int32_t>(out).subspan(first));
  }
}

void Tokenizer::Impl::encode_text(std::string_view text, std::vector<int32_t>& out,
                                  WordCache* word_cache) const {
  static thread_local std::vector<size_t> ends;
  ends.clear();
  pre_tokenizer.split(text, ends);
  size_t begin = 0;
  for (size_t end : ends) {
    encode_word(text.substr(begin, end - begin), out, word_cache);
    begin = end;
  }
}

namespace {

// A character NFC leaves alone whatever surrounds it: no canonical decomposition, combining
// class 0, and never the second half of a canonical composition (utf8proc marks those with
// comb_index >= 0x8000; Hangul vowel and trailing jamo compose algorithmically). A text made of
// such characters is already NFC.
bool nfc_inert(char32_t cp) {
  if (cp < 0x80) return true;
  if ((cp >= 0x1160 && cp <= 0x11FF) || (cp >= 0xD7B0 && cp <= 0xD7FF)) return false;
  const utf8proc_property_t* p = utf8proc_get_property(static_cast<utf8proc_int32_t>(cp));
  if (p->combining_class != 0) return false;
  if (p->comb_index != UINT16_MAX && p->comb_index >= 0x8000) return false;
  const bool canonical_decomposition = p->decomp_seqindex != UINT16_MAX && p->decomp_type == 0;
  return !canonical_decomposition;
}

}  // namespace

bool Tokenizer::Impl::normalize_into(std::string_view text, std::string& out) const {
  if (normalize_options == 0) return false;
  size_t i = 0;
  while (i < text.size() && static_cast<unsigned char>(text[i]) < 0x80) ++i;
  if (i == text.size()) return false;  // ASCII is invariant under every normal form
  if (!nfc) {
    out = normalize(text);
    return true;
  }
  // NFC never looks across an inert character, so only the runs of other characters, each with
  // the inert character before it (a starter they may compose with), need normalizing.
  size_t copied = 0;  // text[0, copied) is in out
  // Start of the last inert character: the ASCII one just before i, if any.
  size_t last_inert = i > 0 ? i - 1 : std::string_view::npos;
  bool changed = false;
  while (i < text.size()) {
    size_t len = utf8::valid_char_length(text, i);
    if (nfc_inert(utf8::decode(text, i, len))) {
      last_inert = i;
      i += len;
      continue;
    }
    const size_t begin = last_inert != std::string_view::npos ? last_inert : i;
    size_t end = i + len;
    while (end < text.size()) {
      len = utf8::valid_char_length(text, end);
      if (nfc_inert(utf8::decode(text, end, len))) break;
      end += len;
    }
    if (!changed) {
      out.clear();
      changed = true;
    }
    out.append(text.substr(copied, begin - copied));
    out += normalize(text.substr(begin, end - begin));
    copied = end;
    last_inert = std::string_view::npos;
    i = end;
  }
  if (!changed) return false;
  out.append(text.substr(copied));
  return true;
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
  // Hold the word cache for the whole call; if another thread holds it, go without.
  std::unique_lock<std::mutex> lock(im.cache_mutex, std::try_to_lock);
  WordCache* cache = lock.owns_lock() ? &im.cache : nullptr;
  for (const Piece& piece : pieces) {
    if (piece.id >= 0) {
      out.push_back(piece.id);
      continue;
    }
    std::string_view segment = text.substr(piece.begin, piece.end - piece.begin);
    std::string normalized;
    if (im.normalize_into(segment, normalized)) segment = normalized;
    if (im.normalized_added.empty()) {
      im.encode_text(segment, out, cache);
      continue;
    }
    std::vector<Piece> inner;
    im.normalized_added.split(segment, 0, inner);
    for (const Piece& p : inner) {
      if (p.id >= 0) {
        out.push_back(p.id);
      } else {
        im.encode_text(segment.substr(p.begin, p.end - p.begin), out, cache);
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
  const Impl& im = *impl_;
  std::string raw;
  raw.reserve(ids.size() * 4);
  for (int32_t id : ids) {
    if (id >= 0 && static_cast<size_t>(id) < im.has_token.size()) {
      raw.append(im.bytes, im.offsets[id], im.offsets[id + 1] - im.offsets[id]);
    }
  }
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
