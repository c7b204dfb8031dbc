#include "launcher/profile.h"

#include <cstdio>
#include <filesystem>

#include "kernels/common/check.h"
#include "launcher/process.h"

namespace qwen3moe::launcher {

void add_profile_flags(CLI::App& cmd, ProfileOptions& o) {
  cmd.add_option("--profile-a2a", o.dir,
                 "Profile the all-to-all: write DIR/a2a.json, DIR/trace.json, DIR/report.html");
  cmd.add_option("--whatif-redundant", o.whatif_redundant,
                 "Placement what-if: give the R hottest experts of each layer a second copy")
      ->capture_default_str();
  cmd.add_option("--profile-a2a-steps", o.max_steps,
                 "Steps the profile keeps in detail (trace, per-step rows): the last N to 2N; "
                 "older steps still count in the per-layer totals. 0: every step")
      ->capture_default_str();
}

A2aProfileScope::A2aProfileScope(const ProfileOptions& o, Model& model, Communicator& comm)
    : options_(o), model_(model), comm_(comm) {
  if (options_.dir.empty()) return;
  const int64_t E = model.config().num_experts;
  // Checked up front on every rank so a bad flag or folder fails before the run, not after.
  run_collectively([&] {
    QWEN3MOE_CHECK(options_.whatif_redundant >= 0 && options_.whatif_redundant <= E,
                   "--whatif-redundant ", options_.whatif_redundant, " must be in [0, ", E,
                   "] (the number of experts)");
    QWEN3MOE_CHECK(options_.max_steps >= 0,
                   "--profile-a2a-steps must be 0 (every step) or a "
                   "step count, got ",
                   options_.max_steps);
    if (comm.rank() != 0) return;
    std::error_code ec;
    std::filesystem::create_directories(options_.dir, ec);
    QWEN3MOE_CHECK(!ec && std::filesystem::is_directory(options_.dir),
                   "--profile-a2a: cannot create directory ", options_.dir,
                   ec ? ": " + ec.message() : std::string());
  });
  profiler_ = std::make_unique<A2aProfiler>(comm.rank(), comm.size(), E, model.moe_layers());
  profiler_->set_max_steps(options_.max_steps);
  profiler_->set_tp(model.topology().tp());
  profiler_->sync_clock(comm);
  model_.set_profiler(profiler_.get());
}

A2aProfileScope::~A2aProfileScope() {
  if (profiler_) model_.set_profiler(nullptr);
  if (written_ && comm_.rank() == 0) {
    const char* d = options_.dir.c_str();
    std::fflush(stdout);
    std::fprintf(stderr, "a2a profile: %s/a2a.json, %s/trace.json, %s/report.html\n", d, d, d);
  }
}

void A2aProfileScope::finish() {
  if (!profiler_) return;
  model_.set_profiler(nullptr);
  run_collectively([&] { profiler_->write(comm_, options_.dir, options_.whatif_redundant); });
  written_ = true;
  profiler_.reset();
}

}  // namespace qwen3moe::launcher
