#include "rpc/load_generator.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>
#include <vector>

#include "core/engine/percentile.h"
#include "kernels/common/check.h"
#include "kernels/common/rng.h"
#include "rpc/qwen3moe.grpc.pb.h"

namespace qwen3moe::rpc {
namespace {

namespace pb = ::qwen3moe::v1;
using Clock = std::chrono::steady_clock;

double ms_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

}  // namespace

LoadResult run_load(const LoadOptions& o) {
  QWEN3MOE_CHECK(o.requests > 0, "--load must be positive, got ", o.requests);
  QWEN3MOE_CHECK(o.concurrency > 0, "--concurrency must be positive, got ", o.concurrency);
  QWEN3MOE_CHECK(o.prompt_len > 0, "--prompt-len must be positive, got ", o.prompt_len);
  QWEN3MOE_CHECK(o.shared_prefix >= 0 && o.shared_prefix <= (1 << 20),
                 "--shared-prefix must be in [0, 1048576], got ", o.shared_prefix);
  QWEN3MOE_CHECK(o.max_new_tokens > 0, "--max-new-tokens must be positive, got ", o.max_new_tokens);
  auto channel = grpc::CreateChannel(o.addr, grpc::InsecureChannelCredentials());
  auto stub = pb::Inference::NewStub(channel);
  pb::ModelInfo info;
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    const grpc::Status st = stub->GetModelInfo(&ctx, pb::ModelInfoRequest(), &info);
    QWEN3MOE_CHECK(st.ok(), "GetModelInfo on ", o.addr, ": ", st.error_message());
  }

  // Every prompt is drawn up front so the timing covers only the serving.
  Rng rng(o.seed);
  std::vector<int32_t> prefix(static_cast<size_t>(o.shared_prefix));
  for (int32_t& t : prefix) t = int32_t(rng.next() % uint64_t(info.vocab_size()));
  std::vector<pb::GenerateRequest> requests(static_cast<size_t>(o.requests));
  for (size_t i = 0; i < requests.size(); ++i) {
    pb::GenerateRequest& r = requests[i];
    auto* ids = r.mutable_token_ids()->mutable_ids();
    for (int32_t t : prefix) ids->Add(t);
    for (int t = 0; t < o.prompt_len; ++t)
      ids->Add(int32_t(rng.next() % uint64_t(info.vocab_size())));
    pb::SamplingParams* s = r.mutable_sampling();
    s->set_temperature(o.temperature);
    s->set_seed(o.seed + i);
    s->set_max_new_tokens(o.max_new_tokens);
    s->set_ignore_eos(true);
    r.set_request_id("load-" + std::to_string(i));
  }

  std::mutex mu;
  std::vector<double> ttft, itl;
  LoadResult result;
  result.requests = o.requests;
  std::atomic<size_t> next{0};
  auto worker = [&] {
    for (size_t i = next++; i < requests.size(); i = next++) {
      grpc::ClientContext ctx;
      if (o.timeout_ms > 0)
        ctx.set_deadline(std::chrono::system_clock::now() +
                         std::chrono::milliseconds(o.timeout_ms));
      const auto start = Clock::now();
      auto last = start;
      std::vector<double> my_itl;
      double my_ttft = -1;
      int64_t tokens = 0;
      auto reader = stub->Generate(&ctx, requests[i]);
      pb::GenerateResponse r;
      while (reader->Read(&r)) {
        const int n = r.token_ids_size();
        if (n == 0) continue;
        const auto now = Clock::now();
        if (my_ttft < 0) {
          my_ttft = ms_between(start, now);
          // Tokens that came together with the first share no measurable gap.
          for (int k = 1; k < n; ++k) my_itl.push_back(0);
        } else {
          for (int k = 0; k < n; ++k) my_itl.push_back(ms_between(last, now) / n);
        }
        last = now;
        tokens += n;
      }
      const grpc::Status st = reader->Finish();
      std::lock_guard<std::mutex> lock(mu);
      if (!st.ok()) {
        if (result.failed++ == 0) result.first_error = st.error_message();
        continue;
      }
      if (my_ttft >= 0) ttft.push_back(my_ttft);
      itl.insert(itl.end(), my_itl.begin(), my_itl.end());
      result.output_tokens += tokens;
    }
  };
  const auto t0 = Clock::now();
  std::vector<std::thread> threads;
  for (int c = 0; c < std::min(o.concurrency, o.requests); ++c) threads.emplace_back(worker);
  for (auto& t : threads) t.join();
  result.seconds = ms_between(t0, Clock::now()) / 1000;
  const int done = result.requests - result.failed;
  result.requests_per_second = double(done) / result.seconds;
  result.output_tokens_per_second = double(result.output_tokens) / result.seconds;
  result.ttft_p50_ms = percentile(ttft, 0.5);
  result.ttft_p90_ms = percentile(ttft, 0.9);
  result.ttft_p99_ms = percentile(ttft, 0.99);
  result.itl_p50_ms = percentile(itl, 0.5);
  result.itl_p90_ms = percentile(itl, 0.9);
  result.itl_p99_ms = percentile(itl, 0.99);
  return result;
}

}  // namespace qwen3moe::rpc
