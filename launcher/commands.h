// Each subcommand of the qwen3moe executable lives in its own launcher/cmd_*.cpp file and
// registers itself on the root app here; main.cpp calls every register function.
#pragma once

#include <CLI/CLI.hpp>

namespace qwen3moe::launcher {

void register_logits(CLI::App& app);
void register_generate(CLI::App& app);
void register_init_random(CLI::App& app);
void register_inspect(CLI::App& app);
void register_bench(CLI::App& app);
void register_a2a_bench(CLI::App& app);
void register_tokenize(CLI::App& app);
void register_chat_template(CLI::App& app);
#ifdef QWEN3MOE_HAVE_GRPC
void register_serve(CLI::App& app);
void register_client(CLI::App& app);
#endif

}  // namespace qwen3moe::launcher
