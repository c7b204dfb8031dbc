#include "parallel/comm/local_device_communicator.h"

namespace qwen3moe {
namespace {

class LocalDeviceCommunicator final : public Communicator {
 public:
  explicit LocalDeviceCommunicator(Backend& backend) : backend_(backend) {}
  std::string name() const override { return "local-" + backend_.name(); }
  int rank() const override { return 0; }
  int size() const override { return 1; }
  void all_reduce_sum(float*, size_t) override {}
  void reduce_scatter_sum(const float* send, float* recv, size_t n) override {
    backend_.copy(recv, send, n * sizeof(float));
  }
  void all_gather(const void* send, void* recv, size_t bytes) override {
    backend_.copy(recv, send, bytes);
  }
  void all_to_all_v(const void* send, const size_t* send_bytes, const size_t* send_offsets,
                    void* recv, const size_t*, const size_t* recv_offsets) override {
    backend_.copy(static_cast<char*>(recv) + recv_offsets[0],
                  static_cast<const char*>(send) + send_offsets[0], send_bytes[0]);
  }
  void broadcast(void*, size_t, int) override {}
  void barrier() override { backend_.synchronize(); }

 private:
  Backend& backend_;
};

}  // namespace

std::unique_ptr<Communicator> make_local_device_communicator(Backend& backend) {
  return std::make_unique<LocalDeviceCommunicator>(backend);
}

}  // namespace qwen3moe
