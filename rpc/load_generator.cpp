#include "rpc/load_generator.h"

#include <grpcpp/grpcpp.h>
#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <mutex>
#include <nlohmann/json.hpp>
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

// One request's timings: when its first output arrived, the gaps after that, its tokens.
struct Timing {
  double ttft = -1;
  std::vector<double> itl;
  int64_t tokens = 0;
};

// A streamed /v1/completions call with the request's ids and sampling; false and error set on
// failure.
bool http_generate(httplib::Client& client, const pb::GenerateRequest& r, Timing& t,
                   std::string& error) {
  const pb::SamplingParams& s = r.sampling();
  nlohmann::json body = {
      {"prompt", std::vector<int32_t>(r.token_ids().ids().begin(), r.token_ids().ids().end())},
      {"max_tokens", s.max_new_tokens()},
      {"temperature", s.temperature()},
      {"seed", s.seed()},
      {"ignore_eos", true},
      {"stream", true},
      {"stream_options", {{"include_usage", true}}}};
  httplib::Request req;
  req.method = "POST";
  req.path = "/v1/completions";
  req.set_header("Content-Type", "application/json");
  req.body = body.dump();
  const auto start = Clock::now();
  auto last = start;
  std::string pending;
  bool done = false;
  req.content_receiver = [&](const char* data, size_t n, uint64_t, uint64_t) {
    pending.append(data, n);
    for (size_t end; (end = pending.find("\n\n")) != std::string::npos;) {
      const std::string event = pending.substr(0, end);
      pending.erase(0, end + 2);
      if (event.rfind("data: ", 0) != 0) continue;
      const std::string payload = event.substr(6);
      if (payload == "[DONE]") {
        done = true;
        continue;
      }
      const nlohmann::json j = nlohmann::json::parse(payload, nullptr, false);
      if (j.is_discarded()) continue;
      if (j.contains("error")) {
        error = j["error"].value("message", "error");
        return false;
      }
      if (j.contains("usage") && j["usage"].is_object())
        t.tokens = j["usage"].value("completion_tokens", int64_t(0));
      if (!j.contains("choices") || j["choices"].empty()) continue;
      const auto now = Clock::now();
      if (t.ttft < 0)
        t.ttft = ms_between(start, now);
      else
        t.itl.push_back(ms_between(last, now));
      last = now;
    }
    return true;
  };
  httplib::Response res;
  httplib::Error err = httplib::Error::Success;
  if (!client.send(req, res, err) || res.status != 200 || !done) {
    if (error.empty())
      error = res.status > 0 ? "http " + std::to_string(res.status) + ": " + res.body
                             : "http: " + httplib::to_string(err);
    return false;
  }
  return true;
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
  auto http_worker = [&] {
    httplib::Client client(o.http);
    client.set_read_timeout(o.timeout_ms > 0 ? o.timeout_ms / 1000 + 1 : 3600, 0);
    client.set_keep_alive(true);
    client.set_tcp_nodelay(true);
    for (size_t i = next++; i < requests.size(); i = next++) {
      Timing t;
      std::string error;
      const bool ok = http_generate(client, requests[i], t, error);
      std::lock_guard<std::mutex> lock(mu);
      if (!ok) {
        if (result.failed++ == 0) result.first_error = error;
        continue;
      }
      if (t.ttft >= 0) ttft.push_back(t.ttft);
      itl.insert(itl.end(), t.itl.begin(), t.itl.end());
      result.output_tokens += t.tokens;
    }
  };
  auto worker = [&] {
    if (!o.http.empty()) return http_worker();
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
