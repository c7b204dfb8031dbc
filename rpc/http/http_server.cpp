#include "rpc/http/http_server.h"

#include <httplib.h>

#include <chrono>
#include <deque>
#include <utility>

#include "kernels/common/check.h"
#include "rpc/api_request.h"
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

// One streamed request's state, shared by the content provider and its releaser.
struct Stream {
  std::atomic<int>* in_flight = nullptr;  // the server's count, decremented once at the end
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
  limits_ = model.limits();

  // A request holds its connection's thread until it ends, so the pool covers every request the
  // engine can hold (running and queued) and a few more for health and metrics.
  const size_t threads =
      size_t(model.engine.max_batch) + size_t(model.engine.max_queue) + size_t(kSpareConnections);
  server_->new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  server_->set_payload_max_length(options.max_body_bytes);
  server_->set_keep_alive_max_count(1000);
  // An idle keep-alive connection holds a pool thread: let it go soon, so health and metrics
  // find a thread under load.
  server_->set_keep_alive_timeout(2);
  // Every SSE chunk is a small write: without TCP_NODELAY, Nagle holds each one for the ACK.
  server_->set_tcp_nodelay(true);
  routes();
  port_ = options.port == 0
              ? server_->bind_to_any_port(options.host)
              : (server_->bind_to_port(options.host, options.port) ? options.port : -1);
  QWEN3MOE_CHECK(port_ > 0, "cannot listen on ", options.host, ":", options.port,
                 " for http (in use, or not an address of this machine?); --http-port 0 picks a "
                 "free port, --no-http turns http off");
  thread_ = std::thread([this] {
    listening_ = true;
    server_->listen_after_bind();
    listen_done_ = true;
  });
}

HttpServer::~HttpServer() {
  shutdown();
}

void HttpServer::shutdown(std::chrono::milliseconds grace) {
  if (!thread_.joinable()) return;
  draining_ = true;
  const auto until = Clock::now() + grace;
  while (in_flight_ > 0 && Clock::now() < until)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  stopping_ = true;
  // stop() only takes effect once listening began: wait for the thread to get there.
  while (!listening_ || (!server_->is_running() && !listen_done_))
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
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
    auto builder =
        std::make_unique<openai::ResponseBuilder>(request, name, model_.tokenizer, fresh_seed());
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
    auto probe = std::make_unique<ConnectionProbe>(req.local_addr, req.local_port, req.remote_addr,
                                                   req.remote_port);
    ++in_flight_;
    if (!request.stream) {
      struct Done {
        std::atomic<int>& n;
        ~Done() { --n; }
      } done{in_flight_};
      std::deque<GenerationEvent> events;
      for (;;) {
        if (!probe->alive() || stopping_) {
          engine_.cancel(handle);
          if (stopping_)
            return reply_error(res, ApiError(503, "the server shut down during the request", "",
                                             "service_unavailable"));
          res.status = 499;  // nobody reads it: the client is gone
          return;
        }
        if (!queue->drain(events, kPoll)) continue;
        for (; !events.empty(); events.pop_front()) {
          const GenerationEvent& e = events.front();
          builder->add(e);
          if (e.finish_reason.empty()) continue;
          if (const auto err = openai::early_end_error(e)) return reply_error(res, *err);
          return reply(res, 200, builder->response());
        }
      }
    }
    auto stream = std::make_shared<Stream>();
    stream->in_flight = &in_flight_;
    stream->queue = std::move(queue);
    stream->builder = std::move(builder);
    stream->probe = std::move(probe);
    stream->handle = handle;
    res.set_header("Cache-Control", "no-cache");
    res.set_header("X-Accel-Buffering", "no");
    // The provider runs outside cpp-httplib's exception handler: nothing may escape it.
    res.set_chunked_content_provider(
        "text/event-stream",
        [this, stream](size_t, httplib::DataSink& sink) {
          try {
            if (stream->done) {
              sink.done();
              return true;
            }
            if (!stream->probe->alive() || stopping_) return false;  // the releaser cancels
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
          } catch (const std::exception& e) {
            const std::string err =
                openai::sse(ApiError(500, e.what(), "", "internal_error").body()) +
                "data: [DONE]\n\n";
            sink.write(err.data(), err.size());
            return false;
          }
        },
        [this, stream](bool) noexcept {
          try {
            if (!stream->done) engine_.cancel(stream->handle);
          } catch (...) {
            // Out of memory while cancelling: the request then runs to its end.
          }
          --*stream->in_flight;
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
