// World size 1: every collective is the identity (or a copy when send and recv differ).
#include <cstring>

#include "kernels/common/check.h"
#include "parallel/comm/communicator.h"

namespace qwen3moe {
namespace {

void copy_if_distinct(void* dst, const void* src, size_t bytes) {
  if (dst != src && bytes) std::memmove(dst, src, bytes);
}

class LocalCommunicator final : public Communicator {
 public:
  std::string name() const override { return "local"; }
  int rank() const override { return 0; }
  int size() const override { return 1; }
  void all_reduce_sum(float*, size_t) override {}
  void reduce_scatter_sum(const float* send, float* recv, size_t n) override {
    copy_if_distinct(recv, send, n * sizeof(float));
  }
  void all_gather(const void* send, void* recv, size_t bytes) override {
    copy_if_distinct(recv, send, bytes);
  }
  void all_to_all_v(const void* send, const size_t* send_bytes, const size_t* send_offsets,
                    void* recv, const size_t*, const size_t* recv_offsets) override {
    copy_if_distinct(static_cast<char*>(recv) + recv_offsets[0],
                     static_cast<const char*>(send) + send_offsets[0], send_bytes[0]);
  }
  void broadcast(void*, size_t, int) override {}
  void barrier() override {}
  std::unique_ptr<Communicator> split(int, int) override {
    return std::make_unique<LocalCommunicator>();
  }
};

}  // namespace

std::unique_ptr<Communicator> Communicator::split(int, int) {
  QWEN3MOE_FAIL("the ", name(), " communicator cannot be split into groups");
}

std::unique_ptr<Communicator> make_local_communicator() {
  return std::make_unique<LocalCommunicator>();
}

}  // namespace qwen3moe
