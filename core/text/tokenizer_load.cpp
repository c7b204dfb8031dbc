// Reads a Hugging Face tokenizer.json into Tokenizer::Impl. The vocabulary and merges (most of
// the 11 MB) go through the pull parser; the small configuration objects through nlohmann.
// Every setting that changes the ids is read from the file and anything this implementation
// does not support is an error that names it, never a silent difference.
#include <nlohmann/json.hpp>

#include "core/text/json_cursor.h"
#include "core/text/tokenizer_impl.h"
#include "kernels/common/check.h"
#include "kernels/common/json_depth.h"

namespace qwen3moe {
namespace {

using nlohmann::json;

// Where a string lives in an arena: views into a growing std::string would dangle.
struct Span {
  uint32_t offset;
  uint32_t size;
};

Span append(std::string& arena, std::string_view s) {
  const Span span{static_cast<uint32_t>(arena.size()), static_cast<uint32_t>(s.size())};
  arena.append(s);
  return span;
}

std::string_view view(const std::string& arena, Span s) {
  return std::string_view(arena).substr(s.offset, s.size);
}

int normalizer_options(const json& n, const std::string& source) {
  if (n.is_null()) return 0;
  QWEN3MOE_CHECK(n.is_object() && n.contains("type"), source, ": normalizer has no type");
  const std::string type = n["type"].get<std::string>();
  if (type == "NFC") return UTF8PROC_STABLE | UTF8PROC_COMPOSE;
  if (type == "NFD") return UTF8PROC_STABLE | UTF8PROC_DECOMPOSE;
  if (type == "NFKC") return UTF8PROC_STABLE | UTF8PROC_COMPOSE | UTF8PROC_COMPAT;
  if (type == "NFKD") return UTF8PROC_STABLE | UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT;
  if (type == "Sequence" && n.contains("normalizers") && n["normalizers"].size() <= 1) {
    return n["normalizers"].empty() ? 0 : normalizer_options(n["normalizers"][0], source);
  }
  QWEN3MOE_FAIL(source, ": unsupported normalizer ", n.dump());
}

// Accepts Sequence[Split(Regex, Isolated), ByteLevel(use_regex=false)], the Qwen2 layout.
PreTokenizer pre_tokenizer_from(const json& p, const std::string& source) {
  auto unsupported = [&](const json& what) -> PreTokenizer {
    QWEN3MOE_FAIL(source, ": unsupported pre_tokenizer ", what.dump());
  };
  if (!p.is_object() || p.value("type", "") != "Sequence" || !p.contains("pretokenizers") ||
      p["pretokenizers"].size() != 2) {
    return unsupported(p);
  }
  const json& split = p["pretokenizers"][0];
  const json& byte_level = p["pretokenizers"][1];
  if (split.value("type", "") != "Split" || split.value("behavior", "") != "Isolated" ||
      split.value("invert", false) || !split.contains("pattern") ||
      !split["pattern"].contains("Regex")) {
    return unsupported(split);
  }
  if (byte_level.value("type", "") != "ByteLevel" || byte_level.value("use_regex", true) ||
      byte_level.value("add_prefix_space", false)) {
    return unsupported(byte_level);
  }
  return PreTokenizer::from_pattern(split["pattern"]["Regex"].get<std::string>());
}

void check_decoder(const json& d, const std::string& source) {
  QWEN3MOE_CHECK(d.is_object() && d.value("type", "") == "ByteLevel", source,
                 ": unsupported decoder ", d.dump(), " (only ByteLevel is implemented)");
}

// Bytes a token decodes to under the ByteLevel decoder: each character mapped back to its
// byte, or the token's own UTF-8 when some character is not a byte's image.
void append_token_bytes(std::string& out, std::string_view token) {
  const size_t start = out.size();
  for (size_t i = 0; i < token.size();) {
    const size_t len = utf8::valid_char_length(token, i);
    const int b = len == 0 ? -1 : byte_of_char(utf8::decode(token, i, len));
    if (b < 0) {
      out.resize(start);
      out.append(token);
      return;
    }
    out.push_back(static_cast<char>(b));
    i += len;
  }
}

struct ModelData {
  std::string arena;
  std::vector<std::pair<Span, int32_t>> vocab;
  std::vector<std::pair<Span, Span>> merges;
  bool has_vocab = false;
  bool has_merges = false;
  json settings = json::object();  // the model's other fields
};

void read_model(JsonCursor& cur, ModelData& m, const std::string& source) {
  QWEN3MOE_CHECK(cur.peek() == JsonCursor::Kind::kObject, source, ": model is not an object");
  cur.begin_object();
  std::string_view key;
  std::string scratch;
  while (cur.next_key(key)) {
    if (key == "vocab") {
      m.has_vocab = true;
      QWEN3MOE_CHECK(cur.peek() == JsonCursor::Kind::kObject, source,
                     ": model.vocab is not an object");
      cur.begin_object();
      std::string_view token;
      m.vocab.reserve(200000);
      m.arena.reserve(4 << 20);
      while (cur.next_key(token)) {
        const Span span = append(m.arena, token);
        const int64_t id = cur.read_int();
        QWEN3MOE_CHECK(id >= 0 && id < (int64_t{1} << 30), source, ": bad id ", id,
                       " in model.vocab");
        m.vocab.emplace_back(span, static_cast<int32_t>(id));
      }
    } else if (key == "merges") {
      m.has_merges = true;
      cur.begin_array();
      m.merges.reserve(200000);
      while (cur.next_element()) {
        if (cur.peek() == JsonCursor::Kind::kArray) {  // ["a", "b"]
          cur.begin_array();
          QWEN3MOE_CHECK(cur.next_element(), source, ": empty merge in model.merges");
          const Span a = append(m.arena, cur.read_string(scratch));
          QWEN3MOE_CHECK(cur.next_element(), source, ": merge with one part in model.merges");
          const Span b = append(m.arena, cur.read_string(scratch));
          QWEN3MOE_CHECK(!cur.next_element(), source, ": merge with three parts in model.merges");
          m.merges.emplace_back(a, b);
        } else {  // "a b", the older format
          const std::string_view both = cur.read_string(scratch);
          const size_t space = both.find(' ', 1);
          QWEN3MOE_CHECK(space != std::string_view::npos, source, ": bad merge \"", both,
                         "\" in model.merges");
          const Span a = append(m.arena, both.substr(0, space));
          const Span b = append(m.arena, both.substr(space + 1));
          m.merges.emplace_back(a, b);
        }
      }
    } else {
      m.settings[std::string(key)] = parse_json_nested_at_most<json>(cur.raw_value(), source);
    }
  }
}

void check_model_settings(const json& s, const std::string& source) {
  auto bad = [&](const char* field) {
    QWEN3MOE_FAIL(source, ": unsupported model.", field, " = ", s[field].dump());
  };
  if (s.contains("type") && s["type"] != "BPE") bad("type");
  if (s.contains("dropout") && !s["dropout"].is_null()) bad("dropout");
  if (s.contains("continuing_subword_prefix") && !s["continuing_subword_prefix"].is_null() &&
      s["continuing_subword_prefix"] != "")
    bad("continuing_subword_prefix");
  if (s.contains("end_of_word_suffix") && !s["end_of_word_suffix"].is_null() &&
      s["end_of_word_suffix"] != "")
    bad("end_of_word_suffix");
  if (s.contains("byte_fallback") && s["byte_fallback"] == true) bad("byte_fallback");
}

}  // namespace

Tokenizer Tokenizer::from_json(std::string_view text, const std::string& source) {
  // Every section is read with its types checked; a value of a wrong type that reaches
  // nlohmann's own accessors anyway is one error naming the file too, never an escape.
  try {
    return parse_json(text, source);
  } catch (const nlohmann::json::exception& e) {
    QWEN3MOE_FAIL(source, ": ", e.what());
  }
}

Tokenizer Tokenizer::parse_json(std::string_view text, const std::string& source) {
  auto impl = std::make_shared<Impl>();
  Impl& im = *impl;
  JsonCursor cur(text, source);
  ModelData model;
  json normalizer, pre_tokenizer, decoder;
  bool has_model = false, has_pre_tokenizer = false, has_decoder = false;
  std::vector<AddedToken> added;

  QWEN3MOE_CHECK(cur.peek() == JsonCursor::Kind::kObject, source, ": not a JSON object");
  cur.begin_object();
  std::string_view key;
  while (cur.next_key(key)) {
    if (key == "model") {
      has_model = true;
      read_model(cur, model, source);
    } else if (key == "added_tokens") {
      const json list = parse_json_nested_at_most<json>(cur.raw_value(), source);
      QWEN3MOE_CHECK(list.is_array(), source, ": added_tokens is not an array");
      for (const json& t : list) {
        QWEN3MOE_CHECK(t.is_object() && t.contains("id") && t.contains("content"), source,
                       ": an entry of added_tokens lacks id or content");
        const json& id = t["id"];
        QWEN3MOE_CHECK(
            id.is_number_integer() && (id.is_number_unsigned() || id.get<int64_t>() >= 0), source,
            ": added_tokens id ", id.is_number() ? id.dump() : "(not a number)",
            " is not a token id");
        const uint64_t raw =
            id.is_number_unsigned() ? id.get<uint64_t>() : uint64_t(id.get<int64_t>());
        QWEN3MOE_CHECK(raw < (uint64_t{1} << 30), source, ": bad id ", raw, " in added_tokens");
        QWEN3MOE_CHECK(t["content"].is_string(), source, ": added_tokens id ", raw,
                       ": content is not a string");
        AddedToken a;
        a.id = int32_t(raw);
        a.content = t["content"].get<std::string>();
        auto flag = [&](const char* name, bool fallback) {
          if (!t.contains(name) || t[name].is_null()) return fallback;
          QWEN3MOE_CHECK(t[name].is_boolean(), source, ": added_tokens id ", raw, ": ", name,
                         " is not true or false");
          return t[name].get<bool>();
        };
        a.special = flag("special", false);
        a.single_word = flag("single_word", false);
        a.lstrip = flag("lstrip", false);
        a.rstrip = flag("rstrip", false);
        a.normalized = flag("normalized", !a.special);
        added.push_back(std::move(a));
      }
    } else if (key == "normalizer") {
      normalizer = parse_json_nested_at_most<json>(cur.raw_value(), source);
    } else if (key == "pre_tokenizer") {
      has_pre_tokenizer = true;
      pre_tokenizer = parse_json_nested_at_most<json>(cur.raw_value(), source);
    } else if (key == "decoder") {
      has_decoder = true;
      decoder = parse_json_nested_at_most<json>(cur.raw_value(), source);
    } else {
      cur.skip_value();
    }
  }
  cur.expect_end();

  QWEN3MOE_CHECK(has_model, source, ": missing field model");
  QWEN3MOE_CHECK(model.has_vocab, source, ": missing field model.vocab");
  QWEN3MOE_CHECK(model.has_merges, source, ": missing field model.merges");
  QWEN3MOE_CHECK(has_pre_tokenizer, source, ": missing field pre_tokenizer");
  QWEN3MOE_CHECK(has_decoder, source, ": missing field decoder");
  check_model_settings(model.settings, source);
  im.ignore_merges = model.settings.value("ignore_merges", false);
  im.normalize_options = normalizer_options(normalizer, source);
  im.nfc = im.normalize_options == (UTF8PROC_STABLE | UTF8PROC_COMPOSE);
  im.pre_tokenizer = pre_tokenizer_from(pre_tokenizer, source);
  check_decoder(decoder, source);

  // Ids: the vocabulary and the added tokens together. The tables are sized by the largest id,
  // so ids far past the number of tokens (a gap of a billion) are refused, not allocated.
  int64_t size = 0;
  for (const auto& [span, id] : model.vocab) size = std::max<int64_t>(size, int64_t(id) + 1);
  for (const AddedToken& a : added) size = std::max<int64_t>(size, int64_t(a.id) + 1);
  const int64_t entries = int64_t(model.vocab.size() + added.size());
  QWEN3MOE_CHECK(size <= 2 * entries + 4096, source, ": token id ", size - 1, " is far past the ",
                 entries, " tokens defined (the tables would hold ", size, " ids)");
  std::vector<int32_t> vocab_span_of(size, -1);
  for (size_t i = 0; i < model.vocab.size(); ++i) {
    const int32_t id = model.vocab[i].second;
    QWEN3MOE_CHECK(vocab_span_of[id] < 0, source, ": id ", id, " appears twice in model.vocab");
    vocab_span_of[id] = static_cast<int32_t>(i);
  }
  std::vector<const AddedToken*> added_of(size, nullptr);
  for (const AddedToken& a : added) added_of[a.id] = &a;

  im.has_token.assign(size, 0);
  im.special.assign(size, 0);
  im.offsets.assign(size + 1, 0);
  im.bytes.reserve(model.arena.size());
  for (int32_t id = 0; id < size; ++id) {
    im.offsets[id] = static_cast<uint32_t>(im.bytes.size());
    if (added_of[id] != nullptr) {
      append_token_bytes(im.bytes, added_of[id]->content);
      im.has_token[id] = 1;
      im.special[id] = added_of[id]->special;
    } else if (vocab_span_of[id] >= 0) {
      append_token_bytes(im.bytes, view(model.arena, model.vocab[vocab_span_of[id]].first));
      im.has_token[id] = 1;
    }
  }
  im.offsets[size] = static_cast<uint32_t>(im.bytes.size());

  // Names for token_id() and the merges; added tokens shadow vocab entries of the same text.
  im.names = std::move(model.arena);
  im.name_to_id.reserve(model.vocab.size() + added.size());
  for (const auto& [span, id] : model.vocab) im.name_to_id.insert(view(im.names, span), id);
  if (im.ignore_merges) {
    for (const auto& [span, id] : model.vocab) {
      const std::string_view b =
          std::string_view(im.bytes).substr(im.offsets[id], im.offsets[id + 1] - im.offsets[id]);
      if (added_of[id] == nullptr) im.vocab_bytes_to_id.insert(b, id);
    }
  }
  for (int b = 0; b < 256; ++b) {
    std::string name;
    utf8::append(name, byte_to_char()[b]);
    const int32_t id = im.name_to_id.find(name);
    QWEN3MOE_CHECK(id >= 0, source, ": model.vocab lacks the byte token \"", name, "\" of byte ",
                   b);
    im.byte_ids[b] = id;
  }

  im.merges.reserve(model.merges.size());
  const size_t first_merged_id = 256;
  std::string joined;
  for (size_t rank = 0; rank < model.merges.size(); ++rank) {
    const std::string_view a = view(im.names, model.merges[rank].first);
    const std::string_view b = view(im.names, model.merges[rank].second);
    const int32_t ia = im.name_to_id.find(a);
    const int32_t ib = im.name_to_id.find(b);
    QWEN3MOE_CHECK(ia >= 0, source, ": merge ", rank, " uses \"", a,
                   "\", which is not in model.vocab");
    QWEN3MOE_CHECK(ib >= 0, source, ": merge ", rank, " uses \"", b,
                   "\", which is not in model.vocab");
    joined.assign(a).append(b);
    // Trained vocabularies number tokens in merge order; checking that guess first saves a
    // random memory access per merge. Any other layout takes the lookup.
    const int32_t guess = static_cast<int32_t>(first_merged_id + rank);
    const bool guessed = guess < size && vocab_span_of[guess] >= 0 &&
                         view(im.names, model.vocab[vocab_span_of[guess]].first) == joined;
    const int32_t ij = guessed ? guess : im.name_to_id.find(joined);
    QWEN3MOE_CHECK(ij >= 0, source, ": merge ", rank, " makes \"", joined,
                   "\", which is not in model.vocab");
    im.merges.insert(ia, ib, {static_cast<int32_t>(rank), ij});
  }

  // Added tokens: matched on the raw text, or on the normalized text when `normalized`.
  for (const AddedToken& a : added) {
    AddedToken t = a;
    if (t.normalized && im.normalize_options != 0) t.content = im.normalize(t.content);
    (t.normalized ? im.normalized_added : im.raw_added).add(t);
  }
  im.raw_added.build();
  im.normalized_added.build();
  for (const AddedToken& a : added) {
    im.added_names.push_back(a.content);
  }
  for (size_t i = 0; i < added.size(); ++i) {
    im.name_to_id.set(im.added_names[i], added[i].id);
  }
  return Tokenizer(std::move(impl));
}

}  // namespace qwen3moe
