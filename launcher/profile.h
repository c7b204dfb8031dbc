// --profile-a2a DIR and --whatif-redundant R on the model-running subcommands: the all-to-all
// profiler (parallel/profile/a2a_profiler.h) set up around a run and written at its end.
#pragma once

#include <CLI/CLI.hpp>
#include <memory>
#include <string>

#include "core/model/model.h"
#include "parallel/comm/communicator.h"
#include "parallel/profile/a2a_profiler.h"

namespace qwen3moe::launcher {

struct ProfileOptions {
  std::string dir;  // empty: profiler off
  int whatif_redundant = 0;
  int64_t max_steps = 256;  // steps kept in detail (older ones folded into totals); 0: all
};

void add_profile_flags(CLI::App& cmd, ProfileOptions& o);

// Collective on construction and on finish(). While alive, the model records into the
// profiler; set_step numbers the forwards (GenerationOptions::profiler does it for generate).
// finish() writes the files (rank 0); the line saying where is printed when the scope ends,
// after the command's own output. Without finish(), e.g. when the run threw, nothing is
// written, since the peers may not reach the gather.
class A2aProfileScope {
 public:
  A2aProfileScope(const ProfileOptions& o, Model& model, Communicator& comm);
  ~A2aProfileScope();
  A2aProfileScope(const A2aProfileScope&) = delete;
  A2aProfileScope& operator=(const A2aProfileScope&) = delete;

  A2aProfiler* get() { return profiler_.get(); }  // nullptr when off
  void set_step(int64_t step) {
    if (profiler_) profiler_->set_step(step);
  }
  void finish();

 private:
  ProfileOptions options_;
  Model& model_;
  Communicator& comm_;
  std::unique_ptr<A2aProfiler> profiler_;
  bool written_ = false;
};

}  // namespace qwen3moe::launcher
