// libFuzzer target: a .safetensors file (its 8-byte header length, JSON header and the tensors'
// offsets against the file size), opened from memory through a memfd as the loader opens files.
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "core/checkpoint/safetensors.h"
#include "kernels/common/check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const int fd = memfd_create("fuzz.safetensors", MFD_CLOEXEC);
  if (fd < 0) return 0;
  for (size_t done = 0; done < size;) {
    const ssize_t n = write(fd, data + done, size - done);
    if (n <= 0) break;
    done += size_t(n);
  }
  try {
    const qwen3moe::SafetensorsFile file("/proc/self/fd/" + std::to_string(fd));
    // Touch every tensor's first and last byte: the offsets must lie inside the mapping.
    uint8_t sum = 0;
    for (const auto& [name, t] : file.tensors())
      if (t.bytes > 0) sum = uint8_t(sum + t.data[0] + t.data[t.bytes - 1]);
    (void)sum;
  } catch (const qwen3moe::Error&) {
  }
  close(fd);
  return 0;
}
