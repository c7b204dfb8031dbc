// The qwen3moe executable: parses the command line and runs one subcommand. Every error ends
// the process with one line naming the problem and exit status 1.
#include <cstdio>
#include <exception>

#include "kernels/check.h"
#include "launcher/commands.h"

int main(int argc, char** argv) {
  CLI::App app{"qwen3moe: exact, observable Qwen3 / Qwen3-MoE inference"};
  app.require_subcommand(1);
  app.set_help_all_flag("--help-all", "Print help for every subcommand");
  using namespace qwen3moe::launcher;
  register_logits(app);
  register_generate(app);
  register_init_random(app);
  register_inspect(app);
  register_bench(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const qwen3moe::Error& e) {
    std::fprintf(stderr, "qwen3moe: error: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "qwen3moe: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
