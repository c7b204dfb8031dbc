// The OpenAI-compatible HTTP server of rank 0, beside the gRPC one and over the same engine
// (cpp-httplib, a thread per connection from a pool sized for every request the engine can hold
// at once): GET /v1/models, POST /v1/completions and /v1/chat/completions (streamed as
// server-sent events when asked), GET /health (the gRPC health rule) and GET /metrics
// (Prometheus text). Errors are OpenAI's error objects: 400 a bad value, 404 an unknown model or
// route, 429 a full queue, 503 while not serving. A client that goes away cancels its request,
// so its KV blocks come back on every rank at the next step.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "core/engine/engine.h"
#include "rpc/service.h"

namespace httplib {
class Server;
}

namespace qwen3moe::rpc::http {

struct HttpOptions {
  std::string host = "127.0.0.1";
  int port = 8000;  // 0: any free port (port() tells which)
  std::string served_model_name;
  size_t max_body_bytes = 8u << 20;  // a 40960-token chat history is well under 1 MiB
};

class HttpServer {
 public:
  // healthy: the health rule shared with gRPC; metrics: the /metrics text. Binds and starts a
  // listening thread; Error when the address cannot be bound.
  HttpServer(Engine& engine, const ServedModel& model, const HttpOptions& options,
             std::function<bool()> healthy, std::function<std::string()> metrics);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  int port() const { return port_; }
  // New generation requests get 503; requests in flight go on until the engine ends them.
  void start_draining() { draining_ = true; }
  // Waits up to grace for requests in flight to end (the engine ends them at shutdown), then
  // stops listening, ends what is left with 503, and joins the server thread. Idempotent.
  void shutdown(std::chrono::milliseconds grace = std::chrono::milliseconds(2000));

 private:
  void routes();

  Engine& engine_;
  ServedModel model_;
  RequestLimits limits_;
  HttpOptions options_;
  std::function<bool()> healthy_;
  std::function<std::string()> metrics_;
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  int port_ = 0;
  std::atomic<bool> draining_{false};
  std::atomic<bool> stopping_{false};   // waits in handlers give up (shutdown)
  std::atomic<bool> listening_{false};  // listen_after_bind runs (stop() is a no-op before)
  std::atomic<bool> listen_done_{false};
  std::atomic<int> in_flight_{0};  // generation requests not yet answered or streamed out
};

}  // namespace qwen3moe::rpc::http
