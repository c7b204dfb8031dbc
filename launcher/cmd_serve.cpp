// qwen3moe serve: the model behind a gRPC server. Under mpirun every rank loads its share of
// the weights and a KV cache of the same number of blocks; rank 0 runs the gRPC server and the
// engine's scheduler on a thread, the other ranks follow its step plans. SIGTERM or SIGINT
// stops accepting, cancels what is in flight (each stream gets a status), ends the followers
// with the shutdown plan, and every rank exits 0.
#ifdef QWEN3MOE_HAVE_GRPC

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "core/checkpoint/generation_config.h"
#include "core/engine/engine.h"
#include "core/text/chat_template.h"
#include "core/text/tokenizer.h"
#include "kernels/common/check.h"
#include "kernels/common/split.h"
#include "launcher/commands.h"
#include "launcher/process.h"
#include "launcher/profile.h"
#include "launcher/runtime.h"
#include "rpc/http/http_server.h"
#include "rpc/metrics/prometheus_text.h"
#include "rpc/server.h"

namespace qwen3moe::launcher {
namespace {

struct ServeFlags {
  RuntimeOptions runtime;
  std::string tokenizer_dir;  // default: the model folder
  rpc::ServerOptions server;
  rpc::http::HttpOptions http;
  bool no_http = false;
  int32_t default_max_tokens = rpc::kDefaultMaxNewTokens;
  EngineOptions engine;
  int64_t kv_blocks = 0;                // 0: sized from max_batch x context, capped by memory
  double kv_memory_gb = 0;              // 0: a quarter of the free memory, at most 16 GiB (CPU)
  double gpu_memory_utilization = 0.9;  // CUDA: the device share weights + workspace + KV may use
  ProfileOptions profile;
  bool enforce_eager = false;  // no backend graphs
  bool no_prefix_cache = false;
};

constexpr int64_t kBlockSize = 16;

std::atomic<int> g_signal{0};
extern "C" void on_stop_signal(int sig) {
  g_signal = sig;
}

// The default cache: room for max_batch sequences of the full context, cut down to the memory
// budget. Every rank must hold the same number of blocks (block tables are global), so the
// smallest rank's figure wins.
int64_t default_kv_blocks(const Runtime& rt, const ServeFlags& f) {
  const ModelConfig& c = rt.config;
  const int64_t bytes_per_token = int64_t(KvCache::bytes_per_token(c, *rt.topo, rt.kv_dtype));
  const int64_t want_tokens = int64_t(f.engine.max_batch) * c.max_position_embeddings;
  double budget = f.kv_memory_gb * double(1ull << 30);
  if (budget <= 0 && rt.backend->name() == "cuda") {
    // What the device may still give: the utilization's share of it, less what the weights
    // and the workspace (allocated for the largest step first) already hold.
    const Backend::MemoryInfo m = rt.backend->memory_info();
    const double used = double(m.total - m.free);
    budget = f.gpu_memory_utilization * double(m.total) - used;
    QWEN3MOE_CHECK(budget > 0, "--gpu-memory-utilization ", f.gpu_memory_utilization,
                   " leaves no KV cache: weights and workspace use ", used / 1e9, " GB of the ",
                   double(m.total) / 1e9, " GB GPU");
  } else if (budget <= 0) {
    budget = std::min(double(rt.backend->memory_info().free) / 4, 16.0 * double(1ull << 30));
  }
  const int64_t afford = int64_t(budget / double(bytes_per_token * kBlockSize));
  int64_t blocks = std::min(ceil_div(want_tokens, kBlockSize), afford);
  std::vector<int64_t> all(static_cast<size_t>(rt.comm->size()));
  rt.comm->all_gather(&blocks, all.data(), sizeof(int64_t));
  return *std::min_element(all.begin(), all.end());
}

void run_serve(const ServeFlags& f) {
  // Installed before anything starts threads, so no signal ends the process mid-request.
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
  // A client that hangs up mid-stream must cost only its own request: writes to its socket then
  // fail with EPIPE instead of ending the process.
  std::signal(SIGPIPE, SIG_IGN);

  Process& proc = process();
  const bool root = proc.root();
  std::optional<Tokenizer> tokenizer;
  std::optional<ChatTemplate> chat;
  GenerationConfig generation;
  const std::string tok_dir = f.tokenizer_dir.empty() ? f.runtime.model_dir : f.tokenizer_dir;
  run_collectively([&] {
    QWEN3MOE_CHECK(f.kv_blocks >= 0, "--kv-blocks must be >= 0, got ", f.kv_blocks);
    QWEN3MOE_CHECK(f.server.stall_timeout > 0, "--stall-timeout must be positive, got ",
                   f.server.stall_timeout);
    QWEN3MOE_CHECK(f.server.port >= 0 && f.server.port <= 65535,
                   "--port must be in [0, 65535], got ", f.server.port);
    QWEN3MOE_CHECK(f.default_max_tokens > 0, "--default-max-tokens must be positive, got ",
                   f.default_max_tokens);
    QWEN3MOE_CHECK(f.no_http || (f.http.port >= 0 && f.http.port <= 65535),
                   "--http-port must be in [0, 65535], got ", f.http.port);
    // Only rank 0 turns text into ids and ids into text, and samples.
    if (!root) return;
    generation = GenerationConfig::load(f.runtime.model_dir);
    const std::filesystem::path dir(tok_dir);
    if (std::filesystem::exists(dir / "tokenizer.json")) tokenizer = Tokenizer::load(tok_dir);
    if (tokenizer && std::filesystem::exists(dir / "tokenizer_config.json")) {
      try {
        chat = ChatTemplate::load(tok_dir);
      } catch (const std::exception& e) {
        std::fprintf(stderr, "qwen3moe serve: no chat input: %s\n", e.what());
      }
    }
  });
  auto rt = load_runtime(f.runtime);
  set_a2a_capacity(*rt, f.runtime, f.engine.max_batch);  // a decode step of the whole batch
  // Decode steps as graph replays (CUDA), padded to a few shapes, on every rank (the followers
  // run the same steps); only where a graph will replay: collectives a graph can hold (world 1
  // or NCCL) and no profiler (it times steps op by op), or the padding would only cost.
  const Communicator& model_comm = rt->model_comm ? *rt->model_comm : *rt->comm;
  EngineOptions engine_options = f.engine;
  engine_options.prefix_cache = !f.no_prefix_cache;
  engine_options.graph_padding = !f.enforce_eager && rt->backend->has_graphs() &&
                                 (model_comm.size() == 1 || model_comm.graph_capturable()) &&
                                 f.profile.dir.empty();
  rt->model->set_graphs(engine_options.graph_padding);

  std::unique_ptr<KvCache> cache;
  std::unique_ptr<Engine> engine;
  std::unique_ptr<rpc::InferenceServer> server;
  std::unique_ptr<rpc::http::HttpServer> http;
  run_collectively([&] {
    QWEN3MOE_CHECK(f.gpu_memory_utilization > 0 && f.gpu_memory_utilization <= 1,
                   "--gpu-memory-utilization must be in (0, 1], got ", f.gpu_memory_utilization);
    // The workspace of the largest step (a full decode batch plus a prefill chunk) first, so
    // the KV budget sees it.
    QWEN3MOE_CHECK(f.engine.max_batch > 0 && f.engine.max_batch <= 65536,
                   "--max-batch must be "
                   "in [1, 65536], got ",
                   f.engine.max_batch);
    QWEN3MOE_CHECK(f.engine.prefill_budget > 0 && f.engine.prefill_budget <= (1 << 20),
                   "--prefill-budget must be in [1, 1048576], got ", f.engine.prefill_budget);
    rt->model->reserve_for(int64_t(f.engine.max_batch) + f.engine.prefill_budget);
    const int64_t blocks = f.kv_blocks > 0 ? f.kv_blocks : default_kv_blocks(*rt, f);
    QWEN3MOE_CHECK(blocks > 0, "no memory for even one KV block (--kv-memory-gb)");
    cache = std::make_unique<KvCache>(rt->config, *rt->topo, *rt->backend, blocks, kBlockSize,
                                      rt->kv_dtype);
    engine = std::make_unique<Engine>(*rt->model, *cache, *rt->comm,
                                      tokenizer ? &*tokenizer : nullptr, engine_options);
    if (!root) return;
    rpc::ServedModel served;
    served.config = rt->config;
    served.world = rt->topo->world();
    served.dp = rt->topo->dp();
    served.tp = rt->topo->tp();
    served.ep = rt->topo->ep();
    served.kv_block_size = cache->block_size();
    served.kv_total_blocks = cache->num_blocks();
    served.engine = engine_options;
    served.tokenizer = tokenizer ? &*tokenizer : nullptr;
    served.chat = chat ? &*chat : nullptr;
    served.generation = generation;
    served.default_max_new_tokens = f.default_max_tokens;
    // Bound before any rank starts following, so a taken port fails every rank cleanly.
    server = std::make_unique<rpc::InferenceServer>(*engine, served, f.server);
    if (!f.no_http) {
      rpc::http::HttpOptions http_options = f.http;
      http_options.host = f.server.host;
      if (http_options.served_model_name.empty())
        http_options.served_model_name =
            std::filesystem::path(f.runtime.model_dir).lexically_normal().filename().string();
      if (http_options.served_model_name.empty())  // a folder given with a trailing slash
        http_options.served_model_name = std::filesystem::path(f.runtime.model_dir)
                                             .lexically_normal()
                                             .parent_path()
                                             .filename()
                                             .string();
      rpc::InferenceServer* grpc_server = server.get();
      Engine* eng = engine.get();
      const ExchangeCounters* exchange = rt->model->exchange_counters();
      const std::string model_name = http_options.served_model_name;
      http = std::make_unique<rpc::http::HttpServer>(
          *engine, served, http_options, [grpc_server] { return grpc_server->serving(); },
          [eng, exchange, model_name] {
            return rpc::prometheus_text(model_name, eng->stats(), eng->metrics(), exchange);
          });
    }
    std::fprintf(
        stderr, "qwen3moe serve: KV cache %lld blocks of %lld tokens (%.1f MB per rank)%s\n",
        static_cast<long long>(cache->num_blocks()), static_cast<long long>(cache->block_size()),
        double(cache->num_blocks() * cache->block_size()) * double(cache->bytes_per_token()) / 1e6,
        tokenizer ? "" : "; no tokenizer: token_ids input only");
  });
  A2aProfileScope profile(f.profile, *rt->model, *rt->comm);

  if (!root) {
    engine->follow();
    profile.finish();
    return;
  }

  std::atomic<bool> engine_done{false};
  std::string engine_error;
  std::thread engine_thread([&] {
    try {
      engine->serve();
    } catch (const std::exception& e) {
      engine_error = e.what();
    }
    engine_done = true;
  });
  if (http)
    std::printf("openai-compatible http on http://%s:%d/v1\n", f.server.host.c_str(), http->port());
  std::printf("serving %s on %s:%d (world %d, dp %d, tp %d)\n", f.runtime.model_dir.c_str(),
              f.server.host.c_str(), server->port(), rt->topo->world(), rt->topo->dp(),
              rt->topo->tp());
  std::fflush(stdout);

  while (g_signal == 0 && !engine_done) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  if (g_signal != 0)
    std::fprintf(stderr, "qwen3moe serve: signal %d: shutting down\n", int(g_signal));
  server->start_draining();
  if (http) http->start_draining();
  engine->shutdown();  // cancels what runs and waits; serve() then sends the shutdown plan
  engine_thread.join();
  server->shutdown(std::chrono::seconds(2));
  if (http) http->shutdown();
  http.reset();
  server.reset();
  // A failed step leaves the followers inside a collective: only aborting the job ends them.
  QWEN3MOE_CHECK(engine_error.empty(), "the engine stopped: ", engine_error);
  profile.finish();
}

}  // namespace

void register_serve(CLI::App& app) {
  auto* cmd = app.add_subcommand("serve", "Serve the model over gRPC (rank 0 listens)");
  auto f = std::make_shared<ServeFlags>();
  cmd->add_option("--model", f->runtime.model_dir, "Hugging Face model folder")->required();
  cmd->add_option("--tokenizer", f->tokenizer_dir,
                  "Folder with tokenizer.json and tokenizer_config.json (default: --model)");
  cmd->add_option("--host", f->server.host,
                  "Address to listen on (loopback by default; anything wider is on you)")
      ->capture_default_str();
  cmd->add_option("--port", f->server.port, "Port to listen on (0: any free port)")
      ->capture_default_str();
  cmd->add_option("--http-port", f->http.port,
                  "Port of the OpenAI-compatible HTTP API on --host (0: any free port)")
      ->capture_default_str();
  cmd->add_flag("--no-http", f->no_http, "Serve gRPC only: no OpenAI-compatible HTTP API");
  cmd->add_option("--served-model-name", f->http.served_model_name,
                  "The model name of the HTTP API (default: the --model folder's name)");
  cmd->add_option("--default-max-tokens", f->default_max_tokens,
                  "Tokens a request that sets no length may generate (unless the model's "
                  "generation_config.json says; cut to what the context leaves). Each request "
                  "reserves KV for its prompt + this at admission")
      ->capture_default_str();
  cmd->add_option("--max-batch", f->engine.max_batch, "Sequences running at once (per DP group)")
      ->capture_default_str();
  cmd->add_option("--max-queue", f->engine.max_queue,
                  "Waiting requests; beyond this Generate gets RESOURCE_EXHAUSTED")
      ->capture_default_str();
  cmd->add_option("--prefill-budget", f->engine.prefill_budget,
                  "Prompt tokens per step (chunked prefill; per DP group)")
      ->capture_default_str();
  cmd->add_option("--kv-blocks", f->kv_blocks,
                  "KV cache blocks of 16 tokens (default: max-batch x context, capped by "
                  "--kv-memory-gb)");
  cmd->add_option("--kv-memory-gb", f->kv_memory_gb,
                  "Memory cap of the default KV cache per rank (default: on CUDA, from "
                  "--gpu-memory-utilization; on the CPU a quarter of the free memory, at most 16)");
  cmd->add_option("--gpu-memory-utilization", f->gpu_memory_utilization,
                  "--backend cuda: the share of each GPU that weights, workspace and the KV cache "
                  "may use; the KV cache gets what the rest leaves (smallest rank wins)")
      ->capture_default_str();
  cmd->add_option("--stall-timeout", f->server.stall_timeout,
                  "Seconds with work waiting and no engine step before health says NOT_SERVING")
      ->capture_default_str();
  cmd->add_flag("--no-prefix-cache", f->no_prefix_cache,
                "Recompute every prompt: no reuse of the KV blocks of prefixes already computed");
  cmd->add_flag("--enforce-eager", f->enforce_eager,
                "Run every step op by op: no CUDA graphs (by default decode steps are padded to "
                "batch-size buckets and replayed as graphs)");
  add_runtime_flags(*cmd, f->runtime);
  add_profile_flags(*cmd, f->profile);
  cmd->callback([f] { run_serve(*f); });
}

}  // namespace qwen3moe::launcher

#endif  // QWEN3MOE_HAVE_GRPC
