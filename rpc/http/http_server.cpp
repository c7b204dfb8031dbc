#include "rpc/http/http_server.h"

#include <httplib.h>

#include <chrono>
#include <deque>
#include <utility>

#include "kernels/common/check.h"
#include "rpc/event_queue.h"
#include "rpc/http/connection_probe.h"
#include "rpc/openai/openai_request.h"
#include "rpc/openai/openai_response.h"

namespace qwen3moe::rpc::http {
namespace {

using ojson = nlohmann::ordered_json;
using openai::ApiError;
using openai::Endpoint;
using Clock = std::chrono::steady_clock;

// How often a waiting request looks at its connection and the engine's events.
constexpr std::chrono::milliseconds kPoll{20};
// Connections beyond the engine's running and queued requests: health, metrics, model lists.
constexpr int kSpareConnections = 32;

void reply(httplib::Response& res, int status, const ojson& body) {
  res.status = status;
  res.set_content(openai::dump(body), "application/json");
}

void reply_error(httplib::Response& res, const ApiError& e) {
  reply(res, e.status, e.body());
}

uint64_t next_seed() {
  static std::atomic<uint64_t> counter{uint64_t(Clock::now().time_since_epoch().count())};
  return counter.fetch_add(0x9e3779b97f4a7c15ull);
}

// What the engine's end of a request means for a whole (not streamed) response.
std::optional<ApiError> failure(const GenerationEvent& last) {
  const std::string& r = last.finish_reason;
  if (r == "stop" || r == "length") return std::nullopt;
  if (r == "error") return ApiError(500, "the engine failed: " + last.error, "", "internal_error");
  return ApiError(503, "the request ended early: " + r + " (the server is shutting down)", "",
                  "service_unavailable");
}

// One streamed request's state, shared by the content provider and its releaser.
struct Stream {
  std::shared_ptr<EventQueue> queue;
  std::unique_ptr<openai::ResponseBuilder> builder;
  std::unique_ptr<ConnectionProbe> probe;
  std::deque<GenerationEvent> events;
  uint64_t handle = 0;
  bool done = false;
};

}  // namespace

HttpServer::HttpServer(Engine& engine, const ServedModel& model, const HttpOptions& options,
                       std::function<bool()> healthy, std::function<std::string()> metrics)
    : engine_(engine),
      model_(model),
      options_(options),
      healthy_(std::move(healthy)),
      metrics_(std::move(metrics)),
      server_(std::make_unique<httplib::Server>()) {
  QWEN3MOE_CHECK(options.port >= 0 && options.port <= 65535,
                 "--http-port must be in [0, 65535], got ", options.port);
  limits_.vocab_size = model.config.vocab_size;
  limits_.max_context = model.config.max_position_embeddings;
  limits_.max_stop_strings = model.engine.max_stop_strings;
  limits_.max_stop_length = model.engine.max_stop_length;
  limits_.max_stop_token_ids = model.engine.max_stop_token_ids;
  limits_.tokenizer = model.tokenizer;
  limits_.chat = model.chat;
  limits_.generation = model.generation;

  // A request holds its connection's thread until it ends, so the pool covers every request the
  // engine can hold (running and queued) and a few more for health and metrics.
  const size_t threads =
      size_t(model.engine.max_batch) + size_t(model.engine.max_queue) + size_t(kSpareConnections);
  server_->new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  server_->set_payload_max_length(options.max_body_bytes);
  server_->set_keep_alive_max_count(1000);
  // Every SSE chunk is a small write: without TCP_NODELAY, Nagle holds each one for the ACK.
  server_->set_tcp_nodelay(true);
  routes();
  port_ = options.port == 0
              ? server_->bind_to_any_port(options.host)
              : (server_->bind_to_port(options.host, options.port) ? options.port : -1);
  QWEN3MOE_CHECK(port_ > 0, "cannot listen on ", options.host, ":", options.port,
                 " for http (in use, or not an address of this machine?); --http-port 0 picks a "
                 "free port, --no-http turns http off");
  thread_ = std::thread([this] { server_->listen_after_bind(); });
}

HttpServer::~HttpServer() {
  shutdown();
}

void HttpServer::shutdown() {
  if (!thread_.joinable()) return;
  server_->stop();
  thread_.join();
}

void HttpServer::routes() {
  const std::string name = options_.served_model_name;
  auto model_card = [this, name] {
    return ojson{{"id", name},   {"object", "model"},
                 {"created", 0}, {"owned_by", "qwen3moe"},
                 {"root", name}, {"max_model_len", model_.config.max_position_embeddings}};
  };
  server_->Get("/v1/models", [model_card](const httplib::Request&, httplib::Response& res) {
    reply(res, 200, {{"object", "list"}, {"data", ojson::array({model_card()})}});
  });
  server_->Get(R"(/v1/models/(.+))", [model_card, name](const httplib::Request& req,
                                                        httplib::Response& res) {
    if (req.matches[1] != name)
      return reply_error(
          res, ApiError(404, "The model '" + std::string(req.matches[1]) + "' does not exist",
                        "model", "invalid_request_error", "model_not_found"));
    reply(res, 200, model_card());
  });
  server_->Get("/health", [this](const httplib::Request&, httplib::Response& res) {
    const bool ok = healthy_() && !draining_;
    res.status = ok ? 200 : 503;
    res.set_content(ok ? "" : "not serving\n", "text/plain");
  });
  server_->Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(metrics_(), "text/plain; version=0.0.4; charset=utf-8");
  });

  auto generate = [this, name](Endpoint endpoint, const httplib::Request& req,
                               httplib::Response& res) {
    if (draining_)
      return reply_error(res,
                         ApiError(503, "the server is shutting down", "", "service_unavailable"));
    if (!healthy_())
      return reply_error(res, ApiError(503, "the engine has made no progress: not serving", "",
                                       "service_unavailable"));
    openai::OpenAiRequest request;
    try {
      request = openai::parse_request(endpoint, req.body, limits_, name);
    } catch (const ApiError& e) {
      return reply_error(res, e);
    }
    auto queue = std::make_shared<EventQueue>();
    uint64_t handle = 0;
    try {
      handle = engine_.submit(std::move(request.parsed.generation),
                              [queue](const GenerationEvent& e) { queue->push(e); });
    } catch (const QueueFull& e) {
      return reply_error(res, ApiError(429, e.what(), "", "rate_limit_exceeded"));
    } catch (const std::exception& e) {
      if (draining_)
        return reply_error(res,
                           ApiError(503, "the server is shutting down", "", "service_unavailable"));
      return reply_error(res, ApiError(400, e.what()));
    }
    auto builder =
        std::make_unique<openai::ResponseBuilder>(request, name, model_.tokenizer, next_seed());
    auto probe = std::make_unique<ConnectionProbe>(req.local_addr, req.local_port, req.remote_addr,
                                                   req.remote_port);
    if (!request.stream) {
      std::deque<GenerationEvent> events;
      for (;;) {
        if (!probe->alive()) {
          engine_.cancel(handle);
          res.status = 499;  // nobody reads it: the client is gone
          return;
        }
        if (!queue->drain(events, kPoll)) continue;
        for (; !events.empty(); events.pop_front()) {
          const GenerationEvent& e = events.front();
          builder->add(e);
          if (e.finish_reason.empty()) continue;
          if (const auto err = failure(e)) return reply_error(res, *err);
          return reply(res, 200, builder->response());
        }
      }
    }
    auto stream = std::make_shared<Stream>();
    stream->queue = std::move(queue);
    stream->builder = std::move(builder);
    stream->probe = std::move(probe);
    stream->handle = handle;
    res.set_header("Cache-Control", "no-cache");
    res.set_header("X-Accel-Buffering", "no");
    res.set_chunked_content_provider(
        "text/event-stream",
        [this, stream](size_t, httplib::DataSink& sink) {
          if (stream->done) {
            sink.done();
            return true;
          }
          if (!stream->probe->alive()) return false;  // the releaser cancels
          if (!stream->queue->drain(stream->events, kPoll)) return true;
          std::string out;
          for (; !stream->events.empty(); stream->events.pop_front()) {
            const GenerationEvent& e = stream->events.front();
            out += stream->builder->stream(e);
            if (!e.finish_reason.empty()) stream->done = true;
          }
          if (!out.empty() && !sink.write(out.data(), out.size())) return false;
          if (stream->done) sink.done();
          return true;
        },
        [this, stream](bool) {
          if (!stream->done) engine_.cancel(stream->handle);
        });
  };
  server_->Post("/v1/completions", [generate](const httplib::Request& req, httplib::Response& res) {
    generate(Endpoint::kCompletions, req, res);
  });
  server_->Post("/v1/chat/completions",
                [generate](const httplib::Request& req, httplib::Response& res) {
                  generate(Endpoint::kChatCompletions, req, res);
                });

  // Routes that match nothing, bodies past the limit, and exceptions: OpenAI's error shape.
  server_->set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;
    if (res.status == 404)
      return reply_error(res, ApiError(404, "no route " + req.method + " " + req.path, "",
                                       "invalid_request_error", "not_found"));
    if (res.status == 413)
      return reply_error(res, ApiError(413, "the request body is too large", ""));
    reply_error(res, ApiError(res.status, "http error " + std::to_string(res.status), ""));
  });
  server_->set_exception_handler(
      [](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
        std::string what = "unknown error";
        try {
          std::rethrow_exception(ep);
        } catch (const std::exception& e) {
          what = e.what();
        } catch (...) {
        }
        reply_error(res, ApiError(500, what, "", "internal_error"));
      });
}

}  // namespace qwen3moe::rpc::http
