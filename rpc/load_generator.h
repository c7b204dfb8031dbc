// The client's load mode: N Generate calls of random token-id prompts (seeded, so two runs send
// the same requests), at most C in flight, measuring what a user of the server feels: requests
// and output tokens per second, time to first token and the gaps between tokens.
#pragma once

#include <cstdint>
#include <string>

namespace qwen3moe::rpc {

struct LoadOptions {
  std::string addr;
  int requests = 0;
  int concurrency = 1;
  int prompt_len = 32;
  int shared_prefix = 0;  // tokens every prompt starts with (prefix caching), then its own
  int max_new_tokens = 32;
  uint64_t seed = 0;
  float temperature = 0;  // greedy by default: the figures do not depend on luck
  int timeout_ms = 0;     // per request; 0: none
  // "" : gRPC Generate calls to addr. "http://HOST:PORT": the same requests as streamed OpenAI
  // /v1/completions calls (addr still answers GetModelInfo), to weigh the HTTP path against gRPC.
  std::string http;
};

struct LoadResult {
  int requests = 0, failed = 0;
  std::string first_error;
  double seconds = 0;
  int64_t output_tokens = 0;
  double requests_per_second = 0, output_tokens_per_second = 0;
  double ttft_p50_ms = 0, ttft_p90_ms = 0, ttft_p99_ms = 0;
  double itl_p50_ms = 0, itl_p90_ms = 0, itl_p99_ms = 0;  // inter-token latency
};

// Asks GetModelInfo for the vocabulary first; throws Error when the server cannot be reached.
// Requests ignore EOS, so every one produces max_new_tokens tokens. Over HTTP the output tokens
// are the usage chunk's counts and the gaps are between SSE chunks (a chunk is one engine step's
// text, so a step whose bytes end inside a UTF-8 character joins the next).
LoadResult run_load(const LoadOptions& options);

}  // namespace qwen3moe::rpc
