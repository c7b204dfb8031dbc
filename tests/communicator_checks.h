// Every collective of a Communicator whose buffers live in a Backend's memory, with payloads
// that encode (source rank, destination rank, index), so a wrong route, offset or staging copy
// fails naming the element that went astray. Used by the mpi tests (host-staged over MPI, NCCL)
// and the gpu tests (one rank). Each check is collective: every rank of `comm` calls it.
#pragma once

#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "kernels/backend.h"
#include "parallel/comm/communicator.h"

namespace qwen3moe::testing {

// The value rank `src` puts at index i of what it sends to rank `dst`: exact in f32 (< 2^24)
// for up to 8 ranks and 10000 elements, and so are the sums over ranks.
inline float payload(int src, int dst, size_t i) {
  return float(src * 1000000 + dst * 10000 + int(i));
}

// A buffer of `bytes` in the backend's memory, filled with `fill` (host bytes) or 0xff bytes
// (a float NaN pattern, so an element nobody wrote fails every comparison).
class DeviceBuffer {
 public:
  DeviceBuffer(Backend& backend, size_t bytes) : backend_(backend), bytes_(bytes) {
    ptr_ = backend_.alloc(bytes_ + 16);
    std::vector<unsigned char> junk(bytes_ + 16, 0xff);
    backend_.upload(ptr_, junk.data(), junk.size());
  }
  DeviceBuffer(Backend& backend, const std::vector<float>& fill)
      : DeviceBuffer(backend, fill.size() * sizeof(float)) {
    backend_.upload(ptr_, fill.data(), bytes_);
  }
  ~DeviceBuffer() { backend_.free(ptr_); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  float* f() { return static_cast<float*>(ptr_); }
  std::vector<float> host() {
    std::vector<float> h(bytes_ / sizeof(float));
    backend_.synchronize();
    backend_.download(h.data(), ptr_, h.size() * sizeof(float));
    return h;
  }

 private:
  Backend& backend_;
  size_t bytes_;
  void* ptr_ = nullptr;
};

inline void check_all_reduce(Communicator& comm, Backend& backend) {
  const int W = comm.size(), R = comm.rank();
  std::vector<float> h(1001);
  for (size_t i = 0; i < h.size(); ++i) h[i] = float(R + 1) * float(i);
  DeviceBuffer buf(backend, h);
  comm.all_reduce_sum(buf.f(), h.size());
  const std::vector<float> got = buf.host();
  const float ranks_sum = float(W * (W + 1) / 2);
  for (size_t i = 0; i < got.size(); ++i)
    ASSERT_EQ(got[i], ranks_sum * float(i)) << comm.name() << " all_reduce index " << i;
}

inline void check_reduce_scatter(Communicator& comm, Backend& backend) {
  const int W = comm.size(), R = comm.rank();
  const size_t n = 37;
  std::vector<float> h(size_t(W) * n);
  for (int p = 0; p < W; ++p)
    for (size_t i = 0; i < n; ++i) h[size_t(p) * n + i] = payload(R, p, i);
  DeviceBuffer send(backend, h), recv(backend, n * sizeof(float));
  comm.reduce_scatter_sum(send.f(), recv.f(), n);
  const std::vector<float> got = recv.host();
  for (size_t i = 0; i < n; ++i) {
    float expect = 0;
    for (int s = 0; s < W; ++s) expect += payload(s, R, i);
    ASSERT_EQ(got[i], expect) << comm.name() << " reduce_scatter index " << i;
  }
}

inline void check_all_gather(Communicator& comm, Backend& backend) {
  const int W = comm.size(), R = comm.rank();
  const size_t n = 13;
  std::vector<float> h(n);
  for (size_t i = 0; i < n; ++i) h[i] = payload(R, 0, i);
  DeviceBuffer send(backend, h), recv(backend, size_t(W) * n * sizeof(float));
  comm.all_gather(send.f(), recv.f(), n * sizeof(float));
  const std::vector<float> got = recv.host();
  for (int s = 0; s < W; ++s)
    for (size_t i = 0; i < n; ++i)
      ASSERT_EQ(got[size_t(s) * n + i], payload(s, 0, i))
          << comm.name() << " all_gather from rank " << s << " index " << i;
}

// Uneven counts, zero counts to some peers, a self-send, gaps between the blocks, and the
// blocks in reverse peer order in the receive buffer (offsets need not follow rank order).
inline void check_all_to_all_v(Communicator& comm, Backend& backend) {
  const int W = comm.size(), R = comm.rank();
  const size_t w = size_t(W), gap = 3;  // floats left untouched between blocks
  auto count = [](int src, int dst) { return size_t((src * 7 + dst * 3) % 5); };  // has zeros
  std::vector<size_t> sb(w), so(w), rb(w), ro(w);
  size_t s_total = 0, r_total = 0;
  for (int p = 0; p < W; ++p) {
    sb[size_t(p)] = count(R, p) * sizeof(float);
    so[size_t(p)] = s_total;
    s_total += sb[size_t(p)] + gap * sizeof(float);
  }
  for (int p = W - 1; p >= 0; --p) {
    rb[size_t(p)] = count(p, R) * sizeof(float);
    ro[size_t(p)] = r_total;
    r_total += rb[size_t(p)] + gap * sizeof(float);
  }
  std::vector<float> h(s_total / sizeof(float), -7.0f);
  for (int p = 0; p < W; ++p)
    for (size_t i = 0; i < count(R, p); ++i)
      h[so[size_t(p)] / sizeof(float) + i] = payload(R, p, i);
  DeviceBuffer send(backend, h);
  DeviceBuffer recv(backend, std::vector<float>(r_total / sizeof(float), -1.0f));
  comm.all_to_all_v(send.f(), sb.data(), so.data(), recv.f(), rb.data(), ro.data());
  const std::vector<float> got = recv.host();
  std::vector<bool> written(got.size(), false);
  for (int s = 0; s < W; ++s)
    for (size_t i = 0; i < count(s, R); ++i) {
      const size_t at = ro[size_t(s)] / sizeof(float) + i;
      written[at] = true;
      ASSERT_EQ(got[at], payload(s, R, i))
          << comm.name() << " all_to_all_v from rank " << s << " index " << i;
    }
  for (size_t i = 0; i < got.size(); ++i) {
    if (written[i]) continue;
    ASSERT_EQ(got[i], -1.0f) << comm.name() << " all_to_all_v wrote the gap at " << i;
  }
}

inline void check_broadcast(Communicator& comm, Backend& backend) {
  const int W = comm.size(), R = comm.rank();
  for (int root = 0; root < W; ++root) {
    std::vector<float> h(17, -1.0f);
    if (R == root)
      for (size_t i = 0; i < h.size(); ++i) h[i] = payload(root, 0, i);
    DeviceBuffer buf(backend, h);
    comm.broadcast(buf.f(), h.size() * sizeof(float), root);
    const std::vector<float> got = buf.host();
    for (size_t i = 0; i < got.size(); ++i)
      ASSERT_EQ(got[i], payload(root, 0, i)) << comm.name() << " broadcast root " << root;
  }
}

// Twice each: the calls differ in size, so staging buffers both grow and get reused warm.
inline void check_every_collective(Communicator& comm, Backend& backend) {
  for (int round = 0; round < 2; ++round) {
    check_all_reduce(comm, backend);
    check_reduce_scatter(comm, backend);
    check_all_gather(comm, backend);
    check_all_to_all_v(comm, backend);
    check_broadcast(comm, backend);
    comm.barrier();
  }
}

}  // namespace qwen3moe::testing
