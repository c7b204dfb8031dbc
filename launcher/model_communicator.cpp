#include "launcher/model_communicator.h"

#include "kernels/common/check.h"
#include "parallel/comm/host_staged_communicator.h"
#include "parallel/comm/local_device_communicator.h"
#ifdef QWEN3MOE_HAVE_NCCL
#include "parallel/comm/nccl/nccl_communicator.h"
#endif

namespace qwen3moe::launcher {

std::unique_ptr<Communicator> make_model_communicator(const std::string& choice, Backend& backend,
                                                      int device, Communicator& host) {
  QWEN3MOE_CHECK(choice == "auto" || choice == "mpi" || choice == "nccl", "unknown --comm '",
                 choice, "' (expected auto, mpi or nccl)");
  if (backend.name() == "cpu") {
    QWEN3MOE_CHECK(choice != "nccl",
                   "--comm nccl needs --backend cuda (NCCL moves GPU memory; the CPU backend's "
                   "collectives run over MPI)");
    return nullptr;
  }
  if (choice == "nccl") {
#ifdef QWEN3MOE_HAVE_NCCL
    const std::string shared = shared_gpu_reason(host, device);
    QWEN3MOE_CHECK(shared.empty(), "--comm nccl: NCCL needs one GPU per rank, but ", shared,
                   " (use --comm mpi, or as many GPUs as ranks)");
    return make_nccl_communicator(host, backend);
#else
    QWEN3MOE_FAIL(
        "--comm nccl: this build has no NCCL (nccl.h and libnccl were not found "
        "when it was configured); use --comm mpi");
#endif
  }
  if (host.size() == 1) return make_local_device_communicator(backend);
#ifdef QWEN3MOE_HAVE_NCCL
  if (choice == "auto" && shared_gpu_reason(host, device).empty())
    return make_nccl_communicator(host, backend);
#endif
  return make_host_staged_communicator(host, backend);
}

}  // namespace qwen3moe::launcher
