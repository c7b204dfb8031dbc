// NVTX ranges, so Nsight Systems shows the model's phases (attention, router, experts,
// dispatch, combine ...) on the CPU timeline above the kernels they launch, with the layer
// as the range's payload. Built with CUDA they are NVTX 3 (header-only: a branch when no tool
// is attached); without CUDA they compile to nothing.
#pragma once

#include <cstdint>

#ifdef QWEN3MOE_HAVE_CUDA
#include <nvtx3/nvToolsExt.h>
#endif

namespace qwen3moe {

class NvtxRange {
 public:
  // name: a string literal (NVTX keeps the pointer only for the call).
  NvtxRange(const char* name, int64_t layer) {
#ifdef QWEN3MOE_HAVE_CUDA
    nvtxEventAttributes_t a{};
    a.version = NVTX_VERSION;
    a.size = NVTX_EVENT_ATTRIB_STRUCT_SIZE;
    a.messageType = NVTX_MESSAGE_TYPE_ASCII;
    a.message.ascii = name;
    a.payloadType = NVTX_PAYLOAD_TYPE_INT64;
    a.payload.llValue = layer;
    nvtxRangePushEx(&a);
#else
    (void)name;
    (void)layer;
#endif
  }
  ~NvtxRange() {
#ifdef QWEN3MOE_HAVE_CUDA
    nvtxRangePop();
#endif
  }
  NvtxRange(const NvtxRange&) = delete;
  NvtxRange& operator=(const NvtxRange&) = delete;
};

}  // namespace qwen3moe
