// The NCCL member of the project's one check family (kernels/common/check.h,
// kernels/cuda/cuda_check.h): a failed NCCL call becomes a qwen3moe::Error naming the call,
// file:line, NCCL's error string and NCCL's last-error detail (which names the cause: a duplicate
// GPU, a network failure...).
#pragma once

#include <nccl.h>

#include "kernels/common/check.h"

#define QWEN3MOE_NCCL_CHECK(call)                                                                \
  do {                                                                                           \
    const ncclResult_t res_ = (call);                                                            \
    if (res_ != ncclSuccess)                                                                     \
      ::qwen3moe::detail::fail(__FILE__, __LINE__, #call, " failed: ", ncclGetErrorString(res_), \
                               " (", ncclGetLastError(nullptr), ")");                            \
  } while (0)
