#include "parallel/comm/host_staged_communicator.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "kernels/common/check.h"

namespace qwen3moe {
namespace {

// A host buffer from Backend::alloc_host (pinned on CUDA) that only grows: once the largest
// collective of a step has been seen, no call allocates.
class StagingBuffer {
 public:
  explicit StagingBuffer(Backend& backend) : backend_(backend) {}
  ~StagingBuffer() {
    if (ptr_) backend_.free_host(ptr_);
  }
  StagingBuffer(const StagingBuffer&) = delete;
  StagingBuffer& operator=(const StagingBuffer&) = delete;

  char* reserve(size_t bytes) {
    if (bytes > bytes_) {
      if (ptr_) backend_.free_host(ptr_);
      ptr_ = nullptr;
      // Headroom so a slowly growing batch does not reallocate at every step.
      const size_t grown = std::max(bytes, bytes_ + bytes_ / 2);
      ptr_ = static_cast<char*>(backend_.alloc_host(grown));
      bytes_ = grown;
    }
    return ptr_;
  }

 private:
  Backend& backend_;
  char* ptr_ = nullptr;
  size_t bytes_ = 0;
};

class HostStagedCommunicator final : public Communicator {
 public:
  HostStagedCommunicator(Communicator& host, Backend& backend)
      : host_(host), backend_(backend), send_(backend), recv_(backend) {}

  std::string name() const override { return host_.name() + "+host-staged"; }
  int rank() const override { return host_.rank(); }
  int size() const override { return host_.size(); }

  void all_reduce_sum(float* buf, size_t n) override {
    const size_t bytes = n * sizeof(float);
    float* h = reinterpret_cast<float*>(send_.reserve(bytes));
    backend_.download(h, buf, bytes);
    pass_context();
    host_.all_reduce_sum(h, n);
    backend_.upload(buf, h, bytes);
  }
  void reduce_scatter_sum(const float* send, float* recv, size_t n) override {
    const size_t bytes = n * sizeof(float), W = size_t(size());
    float* hs = reinterpret_cast<float*>(send_.reserve(W * bytes));  // [W * n]
    float* hr = reinterpret_cast<float*>(recv_.reserve(bytes));      // [n]
    backend_.download(hs, send, W * bytes);
    pass_context();
    host_.reduce_scatter_sum(hs, hr, n);
    backend_.upload(recv, hr, bytes);
  }
  void all_gather(const void* send, void* recv, size_t bytes) override {
    const size_t W = size_t(size());
    char* hs = send_.reserve(bytes);
    char* hr = recv_.reserve(W * bytes);
    backend_.download(hs, send, bytes);
    pass_context();
    host_.all_gather(hs, hr, bytes);
    backend_.upload(recv, hr, W * bytes);
  }
  // The staged buffers keep the caller's offsets, so the host call takes the same arrays; only
  // the spans the offsets cover move across the bus (both ends of each span, not the gaps).
  void all_to_all_v(const void* send, const size_t* send_bytes, const size_t* send_offsets,
                    void* recv, const size_t* recv_bytes, const size_t* recv_offsets) override {
    const int W = size();
    size_t send_end = 0, recv_end = 0;
    for (int p = 0; p < W; ++p) {
      if (send_bytes[p]) send_end = std::max(send_end, send_offsets[p] + send_bytes[p]);
      if (recv_bytes[p]) recv_end = std::max(recv_end, recv_offsets[p] + recv_bytes[p]);
    }
    char* hs = send_.reserve(send_end);
    char* hr = recv_.reserve(recv_end);
    const char* ds = static_cast<const char*>(send);
    char* dr = static_cast<char*>(recv);
    for_each_span(send_bytes, send_offsets,
                  [&](size_t off, size_t len) { backend_.download(hs + off, ds + off, len); });
    pass_context();
    host_.all_to_all_v(hs, send_bytes, send_offsets, hr, recv_bytes, recv_offsets);
    for_each_span(recv_bytes, recv_offsets,
                  [&](size_t off, size_t len) { backend_.upload(dr + off, hr + off, len); });
  }
  void broadcast(void* buf, size_t bytes, int root) override {
    char* h = send_.reserve(bytes);
    if (rank() == root) backend_.download(h, buf, bytes);
    pass_context();
    host_.broadcast(h, bytes, root);
    if (rank() != root) backend_.upload(buf, h, bytes);
  }
  // The backend's queued work is finished first, so a barrier also means "my device is done".
  void barrier() override {
    backend_.synchronize();
    pass_context();
    host_.barrier();
  }

 private:
  void pass_context() { host_.set_phase(context().layer, context().phase); }

  // Calls fn(offset, bytes) for the peers' non-empty blocks, merging blocks that touch (the
  // usual packed layout becomes one copy instead of one per peer).
  template <typename Fn>
  void for_each_span(const size_t* bytes, const size_t* offsets, Fn fn) {
    spans_.clear();
    for (int p = 0; p < size(); ++p)
      if (bytes[p]) spans_.push_back({offsets[p], offsets[p] + bytes[p]});
    std::sort(spans_.begin(), spans_.end());
    size_t i = 0;
    while (i < spans_.size()) {
      size_t begin = spans_[i].first, end = spans_[i].second;
      for (++i; i < spans_.size() && spans_[i].first <= end; ++i)
        end = std::max(end, spans_[i].second);
      fn(begin, end - begin);
    }
  }

  Communicator& host_;
  Backend& backend_;
  StagingBuffer send_, recv_;
  std::vector<std::pair<size_t, size_t>> spans_;  // [begin, end) byte ranges, reused
};

}  // namespace

std::unique_ptr<Communicator> make_host_staged_communicator(Communicator& host, Backend& backend) {
  return std::make_unique<HostStagedCommunicator>(host, backend);
}

}  // namespace qwen3moe
