#include "rpc/server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>
#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <thread>

#include "kernels/common/check.h"

namespace qwen3moe::rpc {
namespace {

// The names health answers for: "" is the whole server, as grpc_health_probe asks by default.
const char* const kHealthServices[] = {"", "qwen3moe.v1.Inference"};

// How often the stall watcher reads the engine's statistics.
constexpr std::chrono::milliseconds kWatchPeriod{250};

// Whether host:port can be bound now, asked with a plain socket before gRPC tries: a taken port
// is then our one error line, not gRPC's internal log line followed by ours.
bool can_bind(const std::string& host, int port) {
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  std::string name = host;
  if (name.size() > 2 && name.front() == '[' && name.back() == ']')
    name = name.substr(1, name.size() - 2);  // [::1]
  if (getaddrinfo(name.c_str(), std::to_string(port).c_str(), &hints, &found) != 0)
    return true;  // let gRPC say what is wrong with the address
  bool ok = true;
  for (addrinfo* a = found; a != nullptr && ok; a = a->ai_next) {
    const int fd = socket(a->ai_family, a->ai_socktype, a->ai_protocol);
    if (fd < 0) continue;
    const int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));  // as gRPC binds
    ok = bind(fd, a->ai_addr, a->ai_addrlen) == 0 || errno != EADDRINUSE;
    close(fd);
  }
  freeaddrinfo(found);
  return ok;
}

}  // namespace

InferenceServer::InferenceServer(Engine& engine, const ServedModel& model,
                                 const ServerOptions& options)
    : engine_(engine), options_(options), service_(engine, model) {
  QWEN3MOE_CHECK(options.port >= 0 && options.port <= 65535, "--port must be in [0, 65535], got ",
                 options.port);
  QWEN3MOE_CHECK(options.stall_timeout > 0, "--stall-timeout must be positive, got ",
                 options.stall_timeout);
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  const std::string address = options.host + ":" + std::to_string(options.port);
  QWEN3MOE_CHECK(options.port == 0 || can_bind(options.host, options.port), "cannot listen on ",
                 address, ": the port is in use (--port 0 picks a free one)");
  // Loopback by default; the operator chooses a wider --host knowingly. No SO_REUSEPORT: a
  // second server on a taken port must fail, not share its traffic.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.AddListeningPort(address, grpc::InsecureServerCredentials(), &port_);
  builder.RegisterService(&service_);
  server_ = builder.BuildAndStart();
  QWEN3MOE_CHECK(server_ != nullptr && port_ > 0, "cannot listen on ", address,
                 " (in use, or not an address of this machine?)");
  set_health(true);
  watcher_ = std::thread([this] { watch_stalls(); });
}

InferenceServer::~InferenceServer() {
  shutdown(std::chrono::milliseconds(0));
}

void InferenceServer::set_health(bool serving) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (shut_down_) return;
    serving_ = serving;
  }
  service_.set_serving(serving);
  if (auto* health = server_->GetHealthCheckService())
    for (const char* name : kHealthServices) health->SetServingStatus(name, serving);
}

void InferenceServer::watch_stalls() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stop_cv_.wait_for(lock, kWatchPeriod, [&] { return stopping_; })) {
    lock.unlock();
    const EngineStats s = engine_.stats();
    const bool stalled =
        (s.running > 0 || s.queued > 0) && s.seconds_since_step > options_.stall_timeout;
    lock.lock();
    if (stopping_) break;
    if (stalled == !serving_) continue;
    lock.unlock();
    if (stalled)
      std::fprintf(stderr,
                   "qwen3moe serve: no engine step for %.1f s with %d running, %d "
                   "queued: health NOT_SERVING\n",
                   s.seconds_since_step, s.running, s.queued);
    set_health(!stalled);
    lock.lock();
  }
}

void InferenceServer::start_draining() {
  service_.start_draining();
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  stop_cv_.notify_all();
  if (watcher_.joinable()) watcher_.join();
  set_health(false);
}

void InferenceServer::shutdown(std::chrono::milliseconds grace) {
  start_draining();
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (shut_down_) return;
    shut_down_ = true;
  }
  // Handlers end their calls with UNAVAILABLE while draining; gRPC's Shutdown cancels whatever
  // is still open (CANCELLED), so it waits, within the grace, for the handlers to finish and
  // for calls to stop arriving.
  const auto until = std::chrono::steady_clock::now() + grace;
  constexpr auto kQuiet = std::chrono::milliseconds(100);
  while (std::chrono::steady_clock::now() < until &&
         (service_.calls_in_flight() > 0 ||
          std::chrono::steady_clock::now() - service_.last_call() < kQuiet))
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  const auto left = std::max(until - std::chrono::steady_clock::now(),
                             std::chrono::steady_clock::duration::zero());
  server_->Shutdown(std::chrono::system_clock::now() +
                    std::chrono::duration_cast<std::chrono::system_clock::duration>(left));
  server_->Wait();
}

}  // namespace qwen3moe::rpc
