// The qwen3moe executable: parses the command line and runs one subcommand. Every error ends
// the process with one line naming the problem and exit status 1.
#include <cstdio>
#include <exception>
#include <string>

#include "kernels/common/check.h"
#include "launcher/commands.h"
#include "launcher/process.h"

int main(int argc, char** argv) {
  using qwen3moe::launcher::rank_prefix;
  try {
    qwen3moe::launcher::init_process(&argc, &argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "qwen3moe: error: %s\n", e.what());
    return 1;
  }
  CLI::App app{"qwen3moe: exact, observable Qwen3 / Qwen3-MoE inference"};
  app.require_subcommand(1);
  app.set_help_all_flag("--help-all", "Print help for every subcommand");
  // The version and the parts this build has (backends, collectives, servers).
  std::string parts = "cpu";
#ifdef QWEN3MOE_HAVE_CUDA
  parts += ", cuda";
#endif
#ifdef QWEN3MOE_HAVE_MPI
  parts += ", mpi";
#endif
#ifdef QWEN3MOE_HAVE_NCCL
  parts += ", nccl";
#endif
#ifdef QWEN3MOE_HAVE_GRPC
  parts += ", grpc, openai http";
#endif
  app.set_version_flag("--version",
                       std::string("qwen3moe ") + QWEN3MOE_VERSION + " (" + parts + ")");
  using namespace qwen3moe::launcher;
  register_logits(app);
  register_generate(app);
  register_init_random(app);
  register_inspect(app);
  register_bench(app);
  register_a2a_bench(app);
  register_tokenize(app);
  register_chat_template(app);
#ifdef QWEN3MOE_HAVE_GRPC
  register_serve(app);
  register_client(app);
#endif
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // Every rank parses the same arguments, so every rank agrees on a bad flag.
    if (e.get_exit_code() == 0) {
      if (qwen3moe::launcher::process().root()) app.exit(e);
      return 0;
    }
    std::fprintf(stderr, "%sqwen3moe: error: %s\n", rank_prefix().c_str(), e.what());
    qwen3moe::launcher::fail_job(true);
  } catch (const qwen3moe::launcher::AgreedError& e) {
    std::fprintf(stderr, "%sqwen3moe: error: %s\n", rank_prefix().c_str(), e.what());
    qwen3moe::launcher::fail_job(true);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%sqwen3moe: error: %s\n", rank_prefix().c_str(), e.what());
    qwen3moe::launcher::fail_job(false);
  }
  return 0;
}
