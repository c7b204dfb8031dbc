// The qwen3moe.v1.Inference service on rank 0: each Generate call is checked and translated
// (rpc/request.h), submitted to the Engine, and streamed back from the engine thread through a
// per-call EventQueue. Client cancellation and deadlines end the sequence in the engine, which
// frees its KV blocks on every rank at the next step.
#pragma once

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>

#include "core/engine/engine.h"
#include "rpc/qwen3moe.grpc.pb.h"
#include "rpc/request.h"
#include "rpc/served_model.h"

namespace qwen3moe::rpc {

class InferenceService final : public ::qwen3moe::v1::Inference::Service {
 public:
  InferenceService(Engine& engine, const ServedModel& model);

  grpc::Status Generate(grpc::ServerContext* ctx, const ::qwen3moe::v1::GenerateRequest* in,
                        grpc::ServerWriter<::qwen3moe::v1::GenerateResponse>* out) override;
  grpc::Status Tokenize(grpc::ServerContext* ctx, const ::qwen3moe::v1::TokenizeRequest* in,
                        ::qwen3moe::v1::TokenizeResponse* out) override;
  grpc::Status GetModelInfo(grpc::ServerContext* ctx, const ::qwen3moe::v1::ModelInfoRequest* in,
                            ::qwen3moe::v1::ModelInfo* out) override;
  grpc::Status GetStats(grpc::ServerContext* ctx, const ::qwen3moe::v1::StatsRequest* in,
                        ::qwen3moe::v1::Stats* out) override;

  // From shutdown on, new Generate calls get UNAVAILABLE, and calls the engine cancels end
  // with UNAVAILABLE rather than a plain "cancelled".
  void start_draining() { draining_ = true; }
  // The health status, mirrored into GetStats.
  void set_serving(bool serving) { serving_ = serving; }
  // Generate calls in their handler now, and when the last one began (steady clock): the
  // server's shutdown waits for both to settle, so a call that arrives during the drain gets
  // its UNAVAILABLE from the handler rather than gRPC's own CANCELLED.
  int calls_in_flight() const { return in_flight_; }
  std::chrono::steady_clock::time_point last_call() const {
    return std::chrono::steady_clock::time_point(
        std::chrono::steady_clock::duration(last_call_ns_.load()));
  }

 private:
  Engine& engine_;
  ServedModel model_;
  RequestLimits limits_;
  std::atomic<bool> draining_{false};
  std::atomic<bool> serving_{true};
  std::atomic<int> in_flight_{0};
  std::atomic<int64_t> last_call_ns_{0};
};

}  // namespace qwen3moe::rpc
