#include "parallel/comm/mpi/collective_watchdog.h"

#define OMPI_SKIP_MPICXX 1
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>

#include <cstdio>
#include <cstring>
#include <sstream>
#include <string>
#include <vector>

#include "kernels/common/check.h"

namespace qwen3moe {
namespace {

constexpr int kQueryTag = 0x51;
constexpr int kReplyTag = 0x52;

MPI_Comm& as_comm(void* p) {
  return *static_cast<MPI_Comm*>(p);
}

void copy_name(char (&dst)[24], const char* src) {
  std::strncpy(dst, src ? src : "", sizeof(dst) - 1);
  dst[sizeof(dst) - 1] = '\0';
}

std::string describe(int64_t seq, const char* op, int64_t step, int64_t layer, const char* phase) {
  std::ostringstream os;
  os << op << " #" << seq;
  std::vector<std::string> where;
  if (step >= 0) where.push_back("step " + std::to_string(step));
  if (layer >= 0) where.push_back("layer " + std::to_string(layer));
  if (phase && *phase) where.push_back(phase);
  if (!where.empty()) {
    os << " (";
    for (size_t i = 0; i < where.size(); ++i) os << (i ? ", " : "") << where[i];
    os << ")";
  }
  return os.str();
}

}  // namespace

CollectiveWatchdog::CollectiveWatchdog(double timeout_seconds) : timeout_s_(timeout_seconds) {
  QWEN3MOE_CHECK(timeout_seconds > 0, "--collective-timeout must be positive, got ",
                 timeout_seconds);
  int provided = 0;
  MPI_Query_thread(&provided);
  QWEN3MOE_CHECK(provided == MPI_THREAD_MULTIPLE,
                 "the collective watchdog needs MPI_THREAD_MULTIPLE; this MPI provides level ",
                 provided);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
  MPI_Comm_size(MPI_COMM_WORLD, &world_);
  comm_ = new MPI_Comm;
  MPI_Comm_dup(MPI_COMM_WORLD, &as_comm(comm_));
  thread_ = std::thread([this] { run(); });
}

CollectiveWatchdog::~CollectiveWatchdog() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
  MPI_Comm_free(&as_comm(comm_));
  delete static_cast<MPI_Comm*>(comm_);
}

void CollectiveWatchdog::enter(const char* op, const CollectiveContext& c) {
  std::lock_guard<std::mutex> lock(mu_);
  ++state_.entered;
  state_.inside = 1;
  state_.step = c.step;
  state_.layer = c.layer;
  copy_name(state_.op, op);
  copy_name(state_.phase, c.phase);
  entered_at_ = std::chrono::steady_clock::now();
}

void CollectiveWatchdog::leave() {
  std::lock_guard<std::mutex> lock(mu_);
  ++state_.completed;
  state_.inside = 0;
  state_.last_step = state_.step;
  state_.last_layer = state_.layer;
  std::memcpy(state_.last_op, state_.op, sizeof(state_.op));
  std::memcpy(state_.last_phase, state_.phase, sizeof(state_.phase));
}

CollectiveWatchdog::State CollectiveWatchdog::snapshot() const {
  std::lock_guard<std::mutex> lock(mu_);
  State s = state_;
  if (s.inside)
    s.waited_s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - entered_at_).count();
  return s;
}

namespace {
// Answers one pending query, if any. True when it did.
bool serve_query(MPI_Comm comm, const CollectiveWatchdog::State& s) {
  int flag = 0;
  MPI_Status st;
  MPI_Iprobe(MPI_ANY_SOURCE, kQueryTag, comm, &flag, &st);
  if (!flag) return false;
  int dummy = 0;
  MPI_Recv(&dummy, 1, MPI_INT, st.MPI_SOURCE, kQueryTag, comm, MPI_STATUS_IGNORE);
  MPI_Send(&s, sizeof(s), MPI_BYTE, st.MPI_SOURCE, kReplyTag, comm);
  return true;
}
}  // namespace

void CollectiveWatchdog::run() {
  bool reported = false;
  auto deferred_until = std::chrono::steady_clock::time_point::max();
  while (!stop_) {
    const State s = snapshot();
    if (serve_query(as_comm(comm_), s)) continue;
    const bool overdue = s.inside && s.waited_s > timeout_s_;
    if (overdue && (!reported || std::chrono::steady_clock::now() > deferred_until)) {
      reported = true;
      report_hang();
      // A lower rank waiting in the same collective reports; if the job still has not ended
      // after another timeout, this rank reports after all.
      deferred_until =
          std::chrono::steady_clock::now() + std::chrono::milliseconds(int64_t(timeout_s_ * 1000));
    }
    if (!s.inside) {
      reported = false;
      deferred_until = std::chrono::steady_clock::time_point::max();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

void CollectiveWatchdog::report_hang() {
  MPI_Comm comm = as_comm(comm_);
  const State me = snapshot();
  std::vector<State> peers(static_cast<size_t>(world_));
  std::vector<char> answered(static_cast<size_t>(world_), 0);
  peers[size_t(rank_)] = me;
  answered[size_t(rank_)] = 1;
  for (int p = 0; p < world_; ++p) {
    if (p == rank_) continue;
    int dummy = 0;
    MPI_Request req;
    MPI_Isend(&dummy, 1, MPI_INT, p, kQueryTag, comm, &req);
    MPI_Request_free(&req);
  }
  // Answers come from the peers' watchdog threads, which run even when their main thread is
  // stuck; a peer whose process is gone never answers.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  int pending = world_ - 1;
  while (pending > 0 && std::chrono::steady_clock::now() < deadline) {
    serve_query(comm, snapshot());
    int flag = 0;
    MPI_Status st;
    MPI_Iprobe(MPI_ANY_SOURCE, kReplyTag, comm, &flag, &st);
    if (!flag) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
      continue;
    }
    State s;
    MPI_Recv(&s, sizeof(s), MPI_BYTE, st.MPI_SOURCE, kReplyTag, comm, MPI_STATUS_IGNORE);
    if (!answered[size_t(st.MPI_SOURCE)]) --pending;
    answered[size_t(st.MPI_SOURCE)] = 1;
    peers[size_t(st.MPI_SOURCE)] = s;
  }
  // The lowest rank waiting in this same collective speaks for all of them.
  for (int p = 0; p < rank_; ++p)
    if (answered[size_t(p)] && peers[size_t(p)].inside && peers[size_t(p)].entered == me.entered)
      return;

  std::ostringstream msg;
  msg << "collective " << describe(me.entered, me.op, me.step, me.layer, me.phase)
      << " did not complete within " << timeout_s_ << " s:";
  bool any = false;
  for (int p = 0; p < world_; ++p) {
    const State& s = peers[size_t(p)];
    if (!answered[size_t(p)]) {
      msg << (any ? ";" : "") << " rank " << p << " did not answer (process gone?)";
      any = true;
    } else if (s.entered < me.entered) {
      msg << (any ? ";" : "") << " rank " << p << " did not arrive (last completed "
          << describe(s.completed, s.last_op, s.last_step, s.last_layer, s.last_phase) << ")";
      any = true;
    }
  }
  if (!any) msg << " every rank arrived, the transfer itself is stuck (network?)";
  std::fprintf(stderr, "[rank %d] qwen3moe: error: %s\n", rank_, msg.str().c_str());
  std::fflush(stderr);
  MPI_Abort(MPI_COMM_WORLD, 1);
}

}  // namespace qwen3moe
