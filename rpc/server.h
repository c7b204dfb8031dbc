// The gRPC server of rank 0: the Inference service, grpc.health.v1.Health and server
// reflection on one listening address. Health is SERVING from start() on, and NOT_SERVING
// while the engine has work but has made no step for stall_timeout seconds: a hung
// collective must not look healthy.
#pragma once

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "core/engine/engine.h"
#include "rpc/service.h"

namespace qwen3moe::rpc {

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 50051;           // 0: any free port (port() tells which)
  double stall_timeout = 30;  // seconds
};

class InferenceServer {
 public:
  // Binds and starts serving; Error when the address cannot be bound.
  InferenceServer(Engine& engine, const ServedModel& model, const ServerOptions& options);
  ~InferenceServer();
  InferenceServer(const InferenceServer&) = delete;
  InferenceServer& operator=(const InferenceServer&) = delete;

  int port() const { return port_; }
  // The health status (what grpc.health.v1 answers); the HTTP /health reads it too.
  bool serving() {
    std::lock_guard<std::mutex> lock(mu_);
    return serving_ && !stopping_;
  }
  // Stops accepting calls (new ones get UNAVAILABLE) and marks health NOT_SERVING; in-flight
  // streams go on until the engine ends them.
  void start_draining();
  // Waits up to grace for in-flight calls to finish, then cancels the rest. Idempotent.
  void shutdown(std::chrono::milliseconds grace);

 private:
  void watch_stalls();
  void set_health(bool serving);

  Engine& engine_;
  ServerOptions options_;
  InferenceService service_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;

  std::mutex mu_;
  std::condition_variable stop_cv_;
  bool stopping_ = false;
  bool serving_ = false;
  bool shut_down_ = false;
  std::thread watcher_;
};

}  // namespace qwen3moe::rpc
