#include "parallel/comm/mpi/mpi_communicator.h"

// The C API only: the deprecated C++ bindings need a library we do not link.
#define OMPI_SKIP_MPICXX 1
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>

#include <climits>
#include <cstdlib>
#include <vector>

#include "kernels/common/check.h"
#include "parallel/comm/mpi/collective_watchdog.h"

namespace qwen3moe {
namespace {

// MPI_CHECK(call): an Error naming the MPI call and MPI's message.
#define QWEN3MOE_MPI_CHECK(call)                                          \
  do {                                                                    \
    const int rc_ = (call);                                               \
    if (rc_ != MPI_SUCCESS) {                                             \
      char msg_[MPI_MAX_ERROR_STRING];                                    \
      int len_ = 0;                                                       \
      MPI_Error_string(rc_, msg_, &len_);                                 \
      QWEN3MOE_FAIL(#call, " failed: ", std::string(msg_, size_t(len_))); \
    }                                                                     \
  } while (0)

int as_int_count(size_t n, const char* what) {
  QWEN3MOE_CHECK(n <= size_t(INT_MAX), what, ": ", n, " bytes exceed MPI's int count limit");
  return int(n);
}

// Brackets one collective for the watchdog (when there is one).
class Watched {
 public:
  Watched(CollectiveWatchdog* w, const char* op, const CollectiveContext& c) : w_(w) {
    if (w_) w_->enter(op, c);
  }
  ~Watched() {
    if (w_) w_->leave();
  }
  Watched(const Watched&) = delete;
  Watched& operator=(const Watched&) = delete;

 private:
  CollectiveWatchdog* w_;
};

class MpiCommunicator final : public Communicator {
 public:
  // The world, watched when timeout_seconds > 0.
  explicit MpiCommunicator(double timeout_seconds) : MpiCommunicator(MPI_COMM_WORLD) {
    if (timeout_seconds > 0) watchdog_ = std::make_unique<CollectiveWatchdog>(timeout_seconds);
  }
  // A group split from the world (owned: freed with it). Unwatched: the watchdog compares
  // collective counts across the whole world, and groups run different collectives; a rank
  // stuck in a group collective still stalls the world's next one, which is watched.
  explicit MpiCommunicator(MPI_Comm comm) : comm_(comm) {
    QWEN3MOE_MPI_CHECK(MPI_Comm_rank(comm_, &rank_));
    QWEN3MOE_MPI_CHECK(MPI_Comm_size(comm_, &size_));
    send_counts_.resize(size_t(size_));
    send_displs_.resize(size_t(size_));
    recv_counts_.resize(size_t(size_));
    recv_displs_.resize(size_t(size_));
  }
  ~MpiCommunicator() override {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (comm_ != MPI_COMM_WORLD && !finalized) MPI_Comm_free(&comm_);
  }
  MpiCommunicator(const MpiCommunicator&) = delete;
  MpiCommunicator& operator=(const MpiCommunicator&) = delete;
  std::string name() const override { return "mpi"; }
  int rank() const override { return rank_; }
  int size() const override { return size_; }

  void all_reduce_sum(float* buf, size_t n) override {
    Watched w(watchdog_.get(), "all_reduce", context());
    QWEN3MOE_MPI_CHECK(
        MPI_Allreduce(MPI_IN_PLACE, buf, as_int_count(n, "all_reduce"), MPI_FLOAT, MPI_SUM, comm_));
  }
  void reduce_scatter_sum(const float* send, float* recv, size_t n) override {
    Watched w(watchdog_.get(), "reduce_scatter", context());
    QWEN3MOE_MPI_CHECK(MPI_Reduce_scatter_block(send, recv, as_int_count(n, "reduce_scatter"),
                                                MPI_FLOAT, MPI_SUM, comm_));
  }
  void all_gather(const void* send, void* recv, size_t bytes) override {
    Watched w(watchdog_.get(), "all_gather", context());
    const int n = as_int_count(bytes, "all_gather");
    QWEN3MOE_MPI_CHECK(MPI_Allgather(send, n, MPI_BYTE, recv, n, MPI_BYTE, comm_));
  }
  void all_to_all_v(const void* send, const size_t* send_bytes, const size_t* send_offsets,
                    void* recv, const size_t* recv_bytes, const size_t* recv_offsets) override {
    Watched w(watchdog_.get(), "all_to_all_v", context());
    for (int p = 0; p < size_; ++p) {
      send_counts_[size_t(p)] = as_int_count(send_bytes[p], "all_to_all_v");
      send_displs_[size_t(p)] = as_int_count(send_offsets[p], "all_to_all_v");
      recv_counts_[size_t(p)] = as_int_count(recv_bytes[p], "all_to_all_v");
      recv_displs_[size_t(p)] = as_int_count(recv_offsets[p], "all_to_all_v");
    }
    QWEN3MOE_MPI_CHECK(MPI_Alltoallv(send, send_counts_.data(), send_displs_.data(), MPI_BYTE, recv,
                                     recv_counts_.data(), recv_displs_.data(), MPI_BYTE, comm_));
  }
  void broadcast(void* buf, size_t bytes, int root) override {
    Watched w(watchdog_.get(), "broadcast", context());
    QWEN3MOE_MPI_CHECK(MPI_Bcast(buf, as_int_count(bytes, "broadcast"), MPI_BYTE, root, comm_));
  }
  void barrier() override {
    Watched w(watchdog_.get(), "barrier", context());
    QWEN3MOE_MPI_CHECK(MPI_Barrier(comm_));
  }
  std::unique_ptr<Communicator> split(int color, int key) override {
    MPI_Comm group = MPI_COMM_NULL;
    QWEN3MOE_MPI_CHECK(MPI_Comm_split(comm_, color, key, &group));
    return std::make_unique<MpiCommunicator>(group);
  }

 private:
  MPI_Comm comm_ = MPI_COMM_WORLD;
  int rank_ = 0, size_ = 1;
  std::vector<int> send_counts_, send_displs_, recv_counts_, recv_displs_;
  std::unique_ptr<CollectiveWatchdog> watchdog_;
};

}  // namespace

bool launched_by_mpi() {
  for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "MPI_LOCALNRANKS"})
    if (std::getenv(v)) return true;
  return false;
}

MpiSession::MpiSession(int* argc, char*** argv) {
  int provided = 0;
  // MULTIPLE: the collective watchdog's thread talks to its peers while the main thread
  // waits inside a collective.
  QWEN3MOE_MPI_CHECK(MPI_Init_thread(argc, argv, MPI_THREAD_MULTIPLE, &provided));
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
}

MpiSession::~MpiSession() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) MPI_Finalize();
}

void MpiSession::abort_job(int code) {
  MPI_Abort(MPI_COMM_WORLD, code);
  std::exit(code);
}

std::unique_ptr<Communicator> make_mpi_communicator(double collective_timeout_seconds) {
  return std::make_unique<MpiCommunicator>(collective_timeout_seconds);
}

}  // namespace qwen3moe
