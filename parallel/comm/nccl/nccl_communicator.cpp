#include "parallel/comm/nccl/nccl_communicator.h"

#include <cuda_runtime.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <vector>

#include "kernels/cuda/cuda_check.h"
#include "parallel/comm/nccl/nccl_check.h"

namespace qwen3moe {
namespace {

class NcclCommunicator final : public Communicator {
 public:
  NcclCommunicator(Communicator& host, Backend& backend)
      : backend_(backend), stream_(cuda_stream(backend)), rank_(host.rank()), size_(host.size()) {
    // Rank 0's id, or its failure, reaches every rank: no rank is left waiting for an id.
    struct Bootstrap {
      ncclUniqueId id;
      int32_t result;
    } boot{};
    if (rank_ == 0) boot.result = int32_t(ncclGetUniqueId(&boot.id));
    host.broadcast(&boot, sizeof(boot), 0);
    QWEN3MOE_CHECK(boot.result == int32_t(ncclSuccess), "ncclGetUniqueId failed on rank 0: ",
                   ncclGetErrorString(ncclResult_t(boot.result)));
    QWEN3MOE_NCCL_CHECK(ncclCommInitRank(&comm_, size_, boot.id, rank_));
    scratch_ = static_cast<float*>(backend_.alloc(sizeof(float)));
  }
  ~NcclCommunicator() override {
    // Destructors must not throw; a failure here has nothing left to stop.
    cudaStreamSynchronize(stream_);
    ncclCommDestroy(comm_);
    cudaFree(scratch_);
  }
  NcclCommunicator(const NcclCommunicator&) = delete;
  NcclCommunicator& operator=(const NcclCommunicator&) = delete;

  std::string name() const override { return "nccl"; }
  int rank() const override { return rank_; }
  int size() const override { return size_; }

  void all_reduce_sum(float* buf, size_t n) override {
    QWEN3MOE_NCCL_CHECK(ncclAllReduce(buf, buf, n, ncclFloat32, ncclSum, comm_, stream_));
  }
  void reduce_scatter_sum(const float* send, float* recv, size_t n) override {
    QWEN3MOE_NCCL_CHECK(ncclReduceScatter(send, recv, n, ncclFloat32, ncclSum, comm_, stream_));
  }
  void all_gather(const void* send, void* recv, size_t bytes) override {
    QWEN3MOE_NCCL_CHECK(ncclAllGather(send, recv, bytes, ncclUint8, comm_, stream_));
  }
  // NCCL has no all-to-all-v: one send and one receive per peer with bytes to move, grouped
  // so that NCCL runs them together (in any order, without deadlock). The self-pair is a
  // send and a receive like any other.
  void all_to_all_v(const void* send, const size_t* send_bytes, const size_t* send_offsets,
                    void* recv, const size_t* recv_bytes, const size_t* recv_offsets) override {
    const char* s = static_cast<const char*>(send);
    char* r = static_cast<char*>(recv);
    QWEN3MOE_NCCL_CHECK(ncclGroupStart());
    for (int p = 0; p < size_; ++p) {
      if (send_bytes[p])
        QWEN3MOE_NCCL_CHECK(
            ncclSend(s + send_offsets[p], send_bytes[p], ncclUint8, p, comm_, stream_));
      if (recv_bytes[p])
        QWEN3MOE_NCCL_CHECK(
            ncclRecv(r + recv_offsets[p], recv_bytes[p], ncclUint8, p, comm_, stream_));
    }
    QWEN3MOE_NCCL_CHECK(ncclGroupEnd());
  }
  void broadcast(void* buf, size_t bytes, int root) override {
    QWEN3MOE_NCCL_CHECK(ncclBroadcast(buf, buf, bytes, ncclUint8, root, comm_, stream_));
  }
  // NCCL collectives are stream operations (captured since NCCL 2.9).
  bool graph_capturable() const override { return true; }
  // A one-element all-reduce every rank must join, then wait for it: when barrier returns,
  // every rank has reached it and this rank's queued work is done.
  void barrier() override {
    QWEN3MOE_NCCL_CHECK(ncclAllReduce(scratch_, scratch_, 1, ncclFloat32, ncclSum, comm_, stream_));
    QWEN3MOE_CUDA_CHECK(cudaStreamSynchronize(stream_));
  }

 private:
  Backend& backend_;
  cudaStream_t stream_;
  int rank_, size_;
  ncclComm_t comm_ = nullptr;
  float* scratch_ = nullptr;  // [1] on the device, the barrier's operand
};

}  // namespace

std::unique_ptr<Communicator> make_nccl_communicator(Communicator& host, Backend& backend) {
  return std::make_unique<NcclCommunicator>(host, backend);
}

std::string shared_gpu_reason(Communicator& host, int device) {
  // One fixed-size record per rank: "hostname bus-id".
  constexpr size_t kRecord = 320;
  std::vector<char> mine(kRecord, '\0');
  char hostname[256] = {};
  gethostname(hostname, sizeof(hostname) - 1);
  char bus[64] = {};
  QWEN3MOE_CUDA_CHECK(cudaDeviceGetPCIBusId(bus, int(sizeof(bus)), device));
  std::snprintf(mine.data(), kRecord, "%s %s", hostname, bus);
  const size_t W = size_t(host.size());
  std::vector<char> all(W * kRecord);
  host.all_gather(mine.data(), all.data(), kRecord);
  for (size_t a = 0; a < W; ++a)
    for (size_t b = a + 1; b < W; ++b)
      if (std::strncmp(&all[a * kRecord], &all[b * kRecord], kRecord) == 0) {
        const std::string rec(&all[a * kRecord]);
        const size_t space = rec.find(' ');
        return "ranks " + std::to_string(a) + " and " + std::to_string(b) + " share GPU " +
               rec.substr(space + 1) + " on host " + rec.substr(0, space);
      }
  return "";
}

}  // namespace qwen3moe
