// End-to-end: `qwen3moe serve` on the tiny MoE fixture as a child process (under mpirun when
// QWEN3MOE_E2E_NP=2), driven through the generated C++ stub: outputs equal `generate`, batching
// keeps them, every bad request gets INVALID_ARGUMENT naming the field, cancellation and
// deadlines give the KV blocks back, health, a full queue, and a clean SIGTERM.
#include <grpcpp/grpcpp.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "core/text/utf8.h"
#include "e2e/server_process.h"
#include "rpc/grpc_health.grpc.pb.h"
#include "rpc/qwen3moe.grpc.pb.h"

namespace qwen3moe::e2e {
namespace {

namespace pb = ::qwen3moe::v1;

struct Outcome {
  grpc::Status status;
  std::vector<int32_t> ids;
  std::string text, finish_reason;
  pb::Usage usage;
};

pb::GenerateRequest ids_request(const std::vector<int32_t>& ids, int max_new_tokens) {
  pb::GenerateRequest r;
  for (int32_t id : ids) r.mutable_token_ids()->add_ids(id);
  r.mutable_sampling()->set_temperature(0);
  r.mutable_sampling()->set_max_new_tokens(max_new_tokens);
  r.mutable_sampling()->set_ignore_eos(true);
  return r;
}

std::string join(const std::vector<int32_t>& ids) {
  std::string s;
  for (int32_t id : ids) s += (s.empty() ? "" : ",") + std::to_string(id);
  return s;
}

class Serve : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(model_dir(
        ::testing::TempDir() + "qwen3moe_e2e_" + std::to_string(getpid()), &has_tokenizer_));
    server_ = new ServerProcess(*dir_, {});
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
    std::filesystem::remove_all(*dir_);
    delete dir_;
  }
  void SetUp() override {
    ASSERT_TRUE(server_->ok());
    channel_ = grpc::CreateChannel(server_->addr(), grpc::InsecureChannelCredentials());
    stub_ = pb::Inference::NewStub(channel_);
  }

  Outcome generate(const pb::GenerateRequest& req, int timeout_ms = 60000) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(timeout_ms));
    Outcome o;
    auto reader = stub_->Generate(&ctx, req);
    pb::GenerateResponse r;
    while (reader->Read(&r)) {
      o.ids.insert(o.ids.end(), r.token_ids().begin(), r.token_ids().end());
      o.text += r.text();
      if (!r.finish_reason().empty()) {
        o.finish_reason = r.finish_reason();
        o.usage = r.usage();
      }
    }
    o.status = reader->Finish();
    return o;
  }

  pb::Stats stats() {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    pb::Stats s;
    EXPECT_TRUE(stub_->GetStats(&ctx, pb::StatsRequest(), &s).ok());
    return s;
  }

  // Every block back in the pool and nothing running, within a few engine steps.
  void expect_all_blocks_free() {
    pb::Stats s;
    const auto until = Clock::now() + std::chrono::seconds(10);
    do {
      s = stats();
      if (s.free_kv_blocks() == s.total_kv_blocks() && s.running() == 0 && s.queued() == 0) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    } while (Clock::now() < until);
    ADD_FAILURE() << "blocks still held: free " << s.free_kv_blocks() << " of "
                  << s.total_kv_blocks() << ", running " << s.running();
  }

  // `qwen3moe generate --json` on the same ranks: the reference output.
  nlohmann::json reference(const std::vector<std::string>& input, int max_new_tokens) {
    std::vector<std::string> args = {"generate",
                                     "--model",
                                     *dir_,
                                     "--temperature",
                                     "0",
                                     "--max-new-tokens",
                                     std::to_string(max_new_tokens),
                                     "--ignore-eos",
                                     "--json"};
    args.insert(args.end(), input.begin(), input.end());
    int status = -1;
    const std::string out = run_cli(args, &status);
    EXPECT_EQ(status, 0) << out;
    // The JSON object is the last line.
    const size_t end = out.find_last_not_of('\n');
    const size_t begin = end == std::string::npos ? 0 : out.rfind('\n', end);
    if (status != 0 || end == std::string::npos) return nlohmann::json::object();
    return nlohmann::json::parse(
        out.substr(begin == std::string::npos ? 0 : begin + 1, end + 1 - (begin + 1)));
  }

  static std::string* dir_;
  static bool has_tokenizer_;
  static ServerProcess* server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<pb::Inference::Stub> stub_;
};

std::string* Serve::dir_ = nullptr;
bool Serve::has_tokenizer_ = false;
ServerProcess* Serve::server_ = nullptr;

TEST_F(Serve, HealthServingAndModelInfo) {
  auto health = grpc::health::v1::Health::NewStub(channel_);
  for (const char* service : {"", "qwen3moe.v1.Inference"}) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    grpc::health::v1::HealthCheckRequest req;
    req.set_service(service);
    grpc::health::v1::HealthCheckResponse reply;
    ASSERT_TRUE(health->Check(&ctx, req, &reply).ok());
    EXPECT_EQ(reply.status(), grpc::health::v1::HealthCheckResponse::SERVING) << service;
  }
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  pb::ModelInfo info;
  ASSERT_TRUE(stub_->GetModelInfo(&ctx, pb::ModelInfoRequest(), &info).ok());
  EXPECT_EQ(info.architecture(), "Qwen3MoeForCausalLM");
  EXPECT_EQ(info.vocab_size(), 512);
  EXPECT_EQ(info.max_position_embeddings(), 4096);
  EXPECT_EQ(info.world_size(), world_size());
  EXPECT_EQ(info.dp(), dp_size());
  EXPECT_EQ(info.tp(), world_size() / dp_size());
  EXPECT_EQ(stats().groups_size(), dp_size());
  EXPECT_EQ(info.has_tokenizer(), has_tokenizer_);
  EXPECT_GT(info.kv_total_blocks(), 0);
  EXPECT_NE(server_->serving_line().find("(world " + std::to_string(world_size())),
            std::string::npos)
      << server_->serving_line();
}

TEST_F(Serve, GreedyIdsEqualGenerate) {
  const std::vector<int32_t> prompt = {1, 2, 3, 100, 200, 300, 400};
  const nlohmann::json ref = reference({"--ids", join(prompt)}, 24);
  const Outcome o = generate(ids_request(prompt, 24));
  ASSERT_TRUE(o.status.ok()) << o.status.error_message();
  EXPECT_EQ(o.ids, ref["output_ids"].get<std::vector<int32_t>>());
  EXPECT_EQ(o.finish_reason, "length");
  EXPECT_EQ(o.usage.prompt_tokens(), 7);
  EXPECT_EQ(o.usage.completion_tokens(), 24);
  if (has_tokenizer_) {
    EXPECT_EQ(o.text, ref["text"].get<std::string>());
  }
}

// The same 40-token prompt twice through the server: the second reuses two cached blocks
// (GetStats counts them), and both outputs equal `generate`'s.
TEST_F(Serve, PrefixCacheHitsAndKeepsTheOutput) {
  std::vector<int32_t> prompt;
  for (int i = 0; i < 40; ++i) prompt.push_back(int32_t((i * 29 + 3) % 512));
  const nlohmann::json ref = reference({"--ids", join(prompt)}, 8);
  const pb::Stats before = stats();
  for (int round = 0; round < 2; ++round) {
    const Outcome o = generate(ids_request(prompt, 8));
    ASSERT_TRUE(o.status.ok()) << o.status.error_message();
    EXPECT_EQ(o.ids, ref["output_ids"].get<std::vector<int32_t>>()) << "round " << round;
  }
  const pb::Stats after = stats();
  EXPECT_EQ(after.prefix_query_tokens() - before.prefix_query_tokens(), 80);
  EXPECT_GE(after.prefix_hit_tokens() - before.prefix_hit_tokens(), 32);
  EXPECT_GT(after.cached_kv_blocks(), 0);
  expect_all_blocks_free();
}

TEST_F(Serve, TextPromptTokenizeAndStopString) {
  if (!has_tokenizer_) GTEST_SKIP() << "QWEN3MOE_TOKENIZER_DIR is not set";
  // Single characters encode to byte-level ids, inside the fixture's 512-token vocabulary.
  const nlohmann::json ref = reference({"--prompt", "x"}, 24);
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    pb::TokenizeRequest req;
    req.set_text("x");
    pb::TokenizeResponse reply;
    ASSERT_TRUE(stub_->Tokenize(&ctx, req, &reply).ok());
    EXPECT_EQ(std::vector<int32_t>(reply.ids().begin(), reply.ids().end()),
              ref["prompt_ids"].get<std::vector<int32_t>>());
  }
  pb::GenerateRequest req = ids_request({}, 24);
  req.set_prompt("x");
  const Outcome o = generate(req);
  ASSERT_TRUE(o.status.ok()) << o.status.error_message();
  EXPECT_EQ(o.ids, ref["output_ids"].get<std::vector<int32_t>>());
  const std::string text = ref["text"].get<std::string>();
  EXPECT_EQ(o.text, text);

  // A stop string from the middle of that text ends the output exactly before it.
  // (ASCII, so the stop string is valid UTF-8 whatever random text the tiny model makes.)
  size_t at = 2;
  auto ascii = [&](size_t i) { return text[i] >= 0x20 && text[i] < 0x7f; };
  while (at + 1 < text.size() && !(ascii(at) && ascii(at + 1))) ++at;
  if (at + 1 >= text.size()) GTEST_SKIP() << "no ASCII pair in " << text;
  const std::string stop = text.substr(at, 2);
  req.mutable_sampling()->add_stop(stop);
  const Outcome cut = generate(req);
  ASSERT_TRUE(cut.status.ok()) << cut.status.error_message();
  EXPECT_EQ(cut.finish_reason, "stop");
  EXPECT_EQ(cut.text, text.substr(0, text.find(stop)));
}

// Every streamed message carries whole UTF-8 characters only, even where the tiny model emits
// byte-level tokens that split a character; the messages joined equal generate's text.
TEST_F(Serve, StreamedTextChunksAreWholeUtf8) {
  if (!has_tokenizer_) GTEST_SKIP() << "QWEN3MOE_TOKENIZER_DIR is not set";
  int split_characters = 0;
  for (const std::vector<int32_t>& prompt :
       std::vector<std::vector<int32_t>>{{200, 201, 202}, {160, 170, 180, 190}, {240, 159}}) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    auto reader = stub_->Generate(&ctx, ids_request(prompt, 40));
    pb::GenerateResponse r;
    std::string text;
    std::vector<int32_t> ids;
    while (reader->Read(&r)) {
      EXPECT_EQ(utf8::first_invalid(r.text()), std::string::npos)
          << "a message with a partial character: " << ::testing::PrintToString(r.text());
      text += r.text();
      // A message whose new ids leave a character open sends less text than they decode to.
      for (int32_t id : r.token_ids()) ids.push_back(id);
      if (r.token_ids_size() > 0 && r.text().empty()) ++split_characters;
    }
    ASSERT_TRUE(reader->Finish().ok());
    const nlohmann::json ref = reference({"--ids", join(prompt)}, 40);
    EXPECT_EQ(ids, ref["output_ids"].get<std::vector<int32_t>>());
    EXPECT_EQ(text, ref["text"].get<std::string>());
  }
  std::printf("messages that held back a partial character: %d\n", split_characters);
}

TEST_F(Serve, SixteenConcurrentRequestsGetTheirOwnOutputs) {
  const std::vector<std::vector<int32_t>> prompts = {
      {5, 6, 7}, {11, 22, 33, 44, 55, 66, 77, 88, 99}, {500}, {42, 42, 42, 42, 42}};
  std::vector<std::vector<int32_t>> want;
  for (const auto& p : prompts)
    want.push_back(reference({"--ids", join(p)}, 16)["output_ids"].get<std::vector<int32_t>>());
  std::vector<Outcome> got(16);
  std::vector<std::thread> threads;
  for (size_t i = 0; i < got.size(); ++i)
    threads.emplace_back([&, i] { got[i] = generate(ids_request(prompts[i % 4], 16)); });
  for (auto& t : threads) t.join();
  for (size_t i = 0; i < got.size(); ++i) {
    ASSERT_TRUE(got[i].status.ok()) << i << ": " << got[i].status.error_message();
    EXPECT_EQ(got[i].ids, want[i % 4]) << "request " << i;
  }
  expect_all_blocks_free();
  // With DP groups the requests spread: every group finished some, its blocks all back.
  const pb::Stats s = stats();
  ASSERT_EQ(s.groups_size(), dp_size());
  for (const pb::DpGroupStats& g : s.groups()) {
    EXPECT_GT(g.requests_finished(), 0) << "group " << g.group();
    EXPECT_EQ(g.free_kv_blocks(), g.total_kv_blocks()) << "group " << g.group();
  }
}

TEST_F(Serve, EachBadRequestIsInvalidArgumentNamingTheField) {
  struct Case {
    const char* name;
    std::function<void(pb::GenerateRequest&)> edit;
    std::vector<std::string> names;
  };
  const std::vector<Case> cases = {
      {"no input", [](pb::GenerateRequest& r) { r.clear_input(); }, {"input"}},
      {"empty prompt", [](pb::GenerateRequest& r) { r.set_prompt(""); }, {"prompt"}},
      {"empty ids",
       [](pb::GenerateRequest& r) { r.mutable_token_ids()->clear_ids(); },
       {"token_ids"}},
      {"id beyond vocab",
       [](pb::GenerateRequest& r) { r.mutable_token_ids()->add_ids(512); },
       {"token_ids", "512"}},
      {"negative id",
       [](pb::GenerateRequest& r) { r.mutable_token_ids()->add_ids(-1); },
       {"token_ids", "-1"}},
      {"beyond context",
       [](pb::GenerateRequest& r) { r.mutable_sampling()->set_max_new_tokens(4095); },
       {"max_new_tokens", "4095", "4096"}},
      {"negative temperature",
       [](pb::GenerateRequest& r) { r.mutable_sampling()->set_temperature(-0.5f); },
       {"temperature", "-0.5"}},
      {"nan temperature",
       [](pb::GenerateRequest& r) {
         r.mutable_sampling()->set_temperature(std::numeric_limits<float>::quiet_NaN());
       },
       {"temperature", "nan"}},
      {"top_p above 1",
       [](pb::GenerateRequest& r) { r.mutable_sampling()->set_top_p(1.5f); },
       {"top_p", "1.5"}},
      {"negative top_p",
       [](pb::GenerateRequest& r) { r.mutable_sampling()->set_top_p(-0.25f); },
       {"top_p", "-0.25"}},
      {"negative top_k",
       [](pb::GenerateRequest& r) { r.mutable_sampling()->set_top_k(-2); },
       {"top_k", "-2"}},
      {"negative max_new_tokens",
       [](pb::GenerateRequest& r) { r.mutable_sampling()->set_max_new_tokens(-3); },
       {"max_new_tokens", "-3"}},
      {"unknown role",
       [](pb::GenerateRequest& r) {
         auto* m = r.mutable_chat()->add_messages();
         m->set_role("wizard");
         m->set_content("hi");
       },
       {"role", "wizard"}},
      {"too many stops",
       [](pb::GenerateRequest& r) {
         for (int i = 0; i < 9; ++i) r.mutable_sampling()->add_stop("s" + std::to_string(i));
       },
       {"stop", "9"}},
      {"too long stop",
       [](pb::GenerateRequest& r) { r.mutable_sampling()->add_stop(std::string(65, 'a')); },
       {"stop", "65"}},
      // Invalid UTF-8 on the wire: protobuf's own parser would refuse it before the service,
      // and gRPC would answer INTERNAL with no message (rpc/wire/utf8_checked_requests.h).
      {"invalid UTF-8 prompt",
       [](pb::GenerateRequest& r) { r.set_prompt("ab\xff\xfe"); },
       {"prompt", "UTF-8", "offset 2"}},
      {"invalid UTF-8 chat content",
       [](pb::GenerateRequest& r) {
         auto* chat = r.mutable_chat();
         chat->add_messages()->set_role("user");
         auto* m = chat->add_messages();
         m->set_role("user");
         m->set_content("ok \xc3\x28");
       },
       {"chat.messages[1].content", "UTF-8"}},
      {"invalid UTF-8 stop string",
       [](pb::GenerateRequest& r) {
         r.mutable_sampling()->add_stop("fine");
         r.mutable_sampling()->add_stop("\xed\xa0\x80");  // a surrogate
       },
       {"sampling.stop[1]", "UTF-8"}},
  };
  for (const Case& c : cases) {
    pb::GenerateRequest req = ids_request({1, 2, 3}, 4);
    c.edit(req);
    const Outcome o = generate(req, 10000);
    EXPECT_EQ(o.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
        << c.name << ": " << o.status.error_message();
    for (const std::string& n : c.names)
      EXPECT_NE(o.status.error_message().find(n), std::string::npos)
          << c.name << ": message does not name '" << n << "': " << o.status.error_message();
  }
  expect_all_blocks_free();
}

TEST_F(Serve, CancelledStreamGivesItsBlocksBack) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  auto reader = stub_->Generate(&ctx, ids_request({1, 2, 3}, 4000));
  pb::GenerateResponse r;
  int messages = 0;
  while (messages < 3 && reader->Read(&r)) ++messages;
  ASSERT_EQ(messages, 3);
  const pb::Stats during = stats();
  EXPECT_LT(during.free_kv_blocks(), during.total_kv_blocks());
  ctx.TryCancel();
  while (reader->Read(&r)) {
  }
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
  expect_all_blocks_free();
}

TEST_F(Serve, FiftyMillisecondDeadline) {
  const auto start = Clock::now();
  const Outcome o = generate(ids_request({1, 2, 3}, 4000), 50);
  EXPECT_EQ(o.status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED) << o.status.error_message();
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(5));
  expect_all_blocks_free();
}

// A server of its own: one running, one waiting, the next is refused.
TEST(ServeLimits, FullQueueIsResourceExhausted) {
  const std::string dir =
      model_dir(::testing::TempDir() + "qwen3moe_e2e_queue_" + std::to_string(getpid()));
  ServerProcess server(dir, {"--max-batch", "1", "--max-queue", "1"});
  ASSERT_TRUE(server.ok());
  auto stub = pb::Inference::NewStub(
      grpc::CreateChannel(server.addr(), grpc::InsecureChannelCredentials()));
  auto queued = [&] {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    pb::Stats s;
    EXPECT_TRUE(stub->GetStats(&ctx, pb::StatsRequest(), &s).ok());
    return s.queued();
  };
  grpc::ClientContext waiting_ctx, refused_ctx;
  for (auto* c : {&waiting_ctx, &refused_ctx})
    c->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  // One running request per DP group fills every group's batch of one.
  std::vector<std::unique_ptr<grpc::ClientContext>> running_ctx;
  std::vector<std::unique_ptr<grpc::ClientReader<pb::GenerateResponse>>> running;
  pb::GenerateResponse r;
  for (int g = 0; g < dp_size(); ++g) {
    running_ctx.push_back(std::make_unique<grpc::ClientContext>());
    running_ctx.back()->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    running.push_back(
        stub->Generate(running_ctx.back().get(), ids_request({1, 2, int32_t(3 + g)}, 4000)));
    ASSERT_TRUE(running.back()->Read(&r));  // admitted
  }
  auto waiting = stub->Generate(&waiting_ctx, ids_request({4, 5, 6}, 4000));
  const auto until = Clock::now() + std::chrono::seconds(10);
  while (queued() < 1 && Clock::now() < until)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  ASSERT_EQ(queued(), 1);
  auto refused = stub->Generate(&refused_ctx, ids_request({7, 8, 9}, 4));
  EXPECT_FALSE(refused->Read(&r));
  const grpc::Status st = refused->Finish();
  EXPECT_EQ(st.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << st.error_message();
  EXPECT_NE(st.error_message().find("queue"), std::string::npos) << st.error_message();
  for (auto& c : running_ctx) c->TryCancel();
  waiting_ctx.TryCancel();
  for (auto& stream : running) {
    while (stream->Read(&r)) {
    }
    stream->Finish();
  }
  waiting->Finish();
  std::filesystem::remove_all(dir);
}

TEST(ServeLimits, SigtermEndsStreamsAndExitsZero) {
  const std::string dir =
      model_dir(::testing::TempDir() + "qwen3moe_e2e_term_" + std::to_string(getpid()));
  ServerProcess server(dir, {});
  ASSERT_TRUE(server.ok());
  auto stub = pb::Inference::NewStub(
      grpc::CreateChannel(server.addr(), grpc::InsecureChannelCredentials()));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  auto reader = stub->Generate(&ctx, ids_request({1, 2, 3}, 4000));
  pb::GenerateResponse r;
  ASSERT_TRUE(reader->Read(&r));
  std::atomic<int> exit_status{-2};
  std::thread term([&] { exit_status = server.terminate(std::chrono::seconds(30)); });
  while (reader->Read(&r)) {
  }
  const grpc::Status st = reader->Finish();
  term.join();
  EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAVAILABLE) << st.error_message();
  EXPECT_EQ(exit_status, 0) << server.log();
  std::filesystem::remove_all(dir);
}

// serve --profile-a2a writes the profile at shutdown, and it conserves the tokens the requests
// moved: every MoE layer routed (prompt + new - 1) x top-k token-expert pairs per request, also
// over the steps folded out of the detail.
TEST(ServeProfile, ProfileWrittenAtShutdownConservesTokens) {
  const std::string dir =
      model_dir(::testing::TempDir() + "qwen3moe_e2e_prof_" + std::to_string(getpid()));
  const std::string prof = dir + "/prof";
  // A detail ring of 4 steps: the run's 12 steps fold (collectively, across ranks) twice.
  ServerProcess server(dir, {"--profile-a2a", prof, "--profile-a2a-steps", "4"});
  ASSERT_TRUE(server.ok());
  auto stub = pb::Inference::NewStub(
      grpc::CreateChannel(server.addr(), grpc::InsecureChannelCredentials()));
  const std::vector<std::vector<int32_t>> prompts = {{1, 2, 3}, {7, 8, 9, 10, 11}};
  const int new_tokens = 6;
  int64_t tokens = 0;
  for (const auto& prompt : prompts) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    auto reader = stub->Generate(&ctx, ids_request(prompt, new_tokens));
    pb::GenerateResponse r;
    while (reader->Read(&r)) {
    }
    ASSERT_TRUE(reader->Finish().ok());
    tokens += int64_t(prompt.size()) + new_tokens - 1;
  }
  ASSERT_EQ(server.terminate(std::chrono::seconds(30)), 0) << server.log();

  std::ifstream in(prof + "/a2a.json");
  ASSERT_TRUE(in.good()) << "no " << prof << "/a2a.json; log:\n" << server.log();
  const nlohmann::json a2a = nlohmann::json::parse(in);
  std::ifstream cfg_in(dir + "/config.json");
  const nlohmann::json cfg = nlohmann::json::parse(cfg_in);
  const int64_t k = cfg["num_experts_per_tok"];
  EXPECT_EQ(a2a["world_size"], world_size());
  ASSERT_EQ(a2a["layers"].size(), cfg["num_hidden_layers"].get<size_t>());
  for (const auto& layer : a2a["layers"]) {
    if (!layer["moe"].get<bool>()) continue;
    int64_t pairs = 0;
    for (int64_t c : layer["tokens_per_expert"].get<std::vector<int64_t>>()) pairs += c;
    EXPECT_EQ(pairs, tokens * k) << "layer " << layer["layer"];
    // One rank exchanges nothing (dispatch is the identity); more send the routed rows.
    if (world_size() > 1)
      EXPECT_GT(layer["dispatch_bytes"].get<uint64_t>(), 0u);
    else
      EXPECT_EQ(layer["dispatch_bytes"].get<uint64_t>(), 0u);
  }
  // Exchanges carry the engine's step numbers: every step of the run is one (each request
  // needs at least new_tokens of them), not all in step 0.
  if (world_size() > 1) {
    EXPECT_GE(a2a["totals"]["steps"].get<int64_t>(), 2 * new_tokens) << a2a["totals"].dump();
    EXPECT_GE(a2a["totals"]["steps_in_detail"].get<int64_t>(), 4) << a2a["totals"].dump();
    EXPECT_LE(a2a["totals"]["steps_in_detail"].get<int64_t>(), 7) << a2a["totals"].dump();
  }
  EXPECT_TRUE(std::filesystem::exists(prof + "/trace.json"));
  EXPECT_TRUE(std::filesystem::exists(prof + "/report.html"));
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace qwen3moe::e2e
